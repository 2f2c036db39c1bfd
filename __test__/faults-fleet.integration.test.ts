/**
 * Exactly once in a real fleet (issue #12), fault injection 3: three CLI instances in one
 * consumer group, killed (-9) and joining at random under steady production, spilling on; then a
 * last instance runs until caught up, and every id is in the table exactly once.
 */

import test from 'ava';
import { join } from 'node:path';

import { createTopic } from '../ts/tools/kafka-admin.js';

import { runCli, startCli, type RunningCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';
import { Rng, SteadyProducer, countLines, killWhen, sleep, type KillPlan } from './helpers/faults.js';
import { FULL, SEED, SIZE, DAYS, DEBUG, Row, Produced, DeadLetterRow, badMessage, assertRows, assertDeadLetters, spillFiles, keep, SPILLED, COMMITTED } from './helpers/fault-checks.js';
const FLEET_NOTE = 'f'.repeat(1000);

test.serial('[integration] faults: three instances in one group, killed (-9) and joining at random under steady production, spilling on: every id exactly once', async (t) => {
  t.timeout(FULL ? 30 * 60_000 : 8 * 60_000);
  const seed = (SEED + 5) >>> 0;
  const rng = new Rng(seed);
  const dataRng = new Rng((seed ^ 0x9e3779b9) >>> 0);
  t.log(`seed ${seed} (KDR_FAULTS_SEED=${SEED}); ${SIZE.fleetSeconds} s of production at ${SIZE.fleetRate} messages/s`);
  const partitions = 6;
  const topic = uniqueName('kdr_fleet');
  await createTopic(BROKERS, topic, partitions);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const group = uniqueName('kdr_group');
  const slots = ['a', 'b', 'c'] as const;
  type Slot = (typeof slots)[number];
  // One config per slot: its own staging directory, kept across the slot's restarts (a pod's volume).
  const configs = new Map<Slot, string>(
    slots.map((slot) => [
      slot,
      writeConfig(
        dir,
        testConfig({
          topics: [topic],
          group,
          tablePath: table,
          extra: {
            kafka: { max_poll_records: 300, properties: { 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 500 } },
            // ~2 MB/s over at most three instances, committed every 4 s: spills between commits.
            batch: { batch_interval: 4, batch_size: 100_000 },
            buffer: { staging_dir: join(dir, `staging-${slot}`), max_memory: '2MiB' },
          },
        }),
        `${slot}.yaml`,
      ),
    ]),
  );
  const start = (slot: Slot) => startCli(['--config', configs.get(slot) as string, DEBUG]);

  const producer = new SteadyProducer<Produced>(
    BROKERS,
    topic,
    (i) => {
      const partition = dataRng.int(0, partitions - 1);
      if (dataRng.chance(0.004)) {
        const bad = badMessage(dataRng, i, partition);
        return { message: bad.message, meta: bad };
      }
      const row = { id: `${topic}-${i}`, seq: i, amount: i / 10, note: `${i % 7}${FLEET_NOTE}`, date_col: DAYS[i % 2] };
      const message = { key: `k${i % 97}`, value: JSON.stringify(row), partition };
      return { message, meta: { message, row } };
    },
    SIZE.fleetRate,
  );

  const running = new Map<Slot, RunningCli>();
  const ended: string[] = [];
  const events: string[] = [];
  const selfExits: string[] = [];
  const t0 = Date.now();
  const stamp = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
  for (const slot of slots) running.set(slot, start(slot));
  let kills = 0;
  let joins = 0;
  let sent: Awaited<ReturnType<typeof producer.stop>> = [];
  try {
    await producer.start();
    const end = Date.now() + SIZE.fleetSeconds * 1000;
    while (Date.now() < end) {
      await sleep(rng.int(500, 2500));
      for (const [slot, cli] of running) {
        if (cli.child.exitCode !== null || cli.child.signalCode !== null) {
          selfExits.push(`${slot} exited by itself at ${stamp()} with ${cli.child.exitCode ?? cli.child.signalCode} (output in ${keep(dir, cli.output())}):\n${cli.output().slice(-2000)}`);
          ended.push(cli.output());
          running.delete(slot);
        }
      }
      const slot = rng.pick(slots);
      const cli = running.get(slot);
      if (cli && (running.size > 1 || rng.chance(0.3))) {
        const aim = rng.weighted([
          ['now', 2],
          ['flush', 2],
          ['spill', 2],
          ['rebalance', 2],
        ] as const);
        const staging = join(dir, `staging-${slot}`);
        const known = spillFiles(staging);
        const plan: KillPlan =
          aim === 'now'
            ? { phase: aim, delayMs: 0, maxWaitMs: 0 }
            : aim === 'flush'
              ? { phase: aim, line: /"msg":"flush started"/, delayMs: rng.int(0, 300), maxWaitMs: 4000 }
              : aim === 'spill'
                ? // The moment the instance writes a new spill file.
                  { phase: aim, delayMs: rng.int(0, 3), maxWaitMs: 4000, probe: () => [...spillFiles(staging)].some((f) => !known.has(f)) }
                : { phase: aim, line: /"msg":"partitions (assigned|revoked)"/, delayMs: rng.int(0, 100), maxWaitMs: 4000 };
        const r = await killWhen(cli, plan);
        await cli.exited;
        ended.push(cli.output());
        running.delete(slot);
        if (r.landed) {
          kills += 1;
          events.push(`${stamp()} kill ${slot} (${aim}${r.lineSeen ? '' : ', by time'}; after "${r.lastMsg}")`);
        } else {
          selfExits.push(`${slot} exited by itself at ${stamp()} with ${cli.child.exitCode ?? cli.child.signalCode} (output in ${keep(dir, cli.output())}):\n${cli.output().slice(-2000)}`);
        }
      } else if (!cli) {
        running.set(slot, start(slot));
        joins += 1;
        events.push(`${stamp()} join ${slot}`);
      }
    }
  } finally {
    sent = await producer.stop();
  }
  events.push(`${stamp()} production stopped: ${sent.length} messages`);

  // The survivors stop cleanly on SIGTERM; then one instance runs until caught up.
  const survivorExits: string[] = [];
  for (const [slot, cli] of running) {
    // An instance that joined a moment ago may not handle signals yet (Node still starting).
    await cli.waitFor(/"msg":"pipeline started"/, 60_000).catch(() => undefined);
    cli.child.kill('SIGTERM');
    const code = await cli.exited;
    ended.push(cli.output());
    if (code !== 0) survivorExits.push(`${slot}: exit ${code ?? cli.child.signalCode} (output in ${keep(dir, cli.output())})\n${cli.output().slice(-2000)}`);
  }
  const final = runCli(['--config', configs.get('a') as string, '--until-caught-up', DEBUG], { timeoutMs: 240_000 });
  ended.push(final.stderr);
  const all = ended.join('\n');
  t.log(`${kills} kills, ${joins} joins over ${SIZE.fleetSeconds} s; ${sent.length} messages produced`);
  t.log(events.join('\n'));
  t.log(
    `log lines over all instances: ${countLines(all, SPILLED)} spills, ${countLines(all, COMMITTED)} commits, ` +
      `${countLines(all, /"msg":"partitions revoked"/)} revocations, ${countLines(all, /"msg":"staging recovered"/)} staging recoveries, ` +
      `${countLines(all, /staged data dropped/)} staged data dropped, ${countLines(all, /flush on revoke failed/)} failed flushes on revoke`,
  );

  // The table and the dead letters first (the main claim), then how the instances behaved.
  const rows: Row[] = [];
  const dead: DeadLetterRow[] = [];
  for (const s of sent) {
    if (s.meta.row) rows.push(s.meta.row);
    if (s.meta.deadReason) dead.push({ topic, partition: s.delivered.partition, offset: s.delivered.offset, reason: s.meta.deadReason });
  }
  t.is(final.status, 0, `the last instance catches up: ${final.stderr.slice(-3000)}`);
  assertRows(t, table, rows, (r) => String(r.id), 'every produced id exactly once');
  assertDeadLetters(t, table, dead);
  if (selfExits.length > 0) t.log(`instances that exited by themselves:\n${selfExits.map((e) => e.split('\n').slice(0, 1).concat(e.split('\n').slice(-3)).join('\n')).join('\n')}`);
  t.deepEqual(selfExits, [], 'no instance exited by itself');
  t.deepEqual(survivorExits, [], 'the survivors exit 0 on SIGTERM');
  t.true(kills >= (FULL ? 20 : 8), `instances were killed (${kills})`);
  t.true(joins >= 1, `instances joined (${joins})`);
  t.true(countLines(all, SPILLED) > 0, 'rows were spilled');
});

