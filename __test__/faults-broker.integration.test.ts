/**
 * Exactly once in a real fleet (issue #12), fault injection 2: a private broker (its own home,
 * ports and data dir; not the shared one other tests use) stopped and restarted under a running
 * pipeline (same data dir), then killed (-9) and restarted: the pipeline keeps running, resumes
 * and catches up by itself, and the table is exact.
 */

import test from 'ava';
import { join } from 'node:path';
import { txnAppId } from '../ts/pipeline/identity.js';
import { createTopic } from '../ts/tools/kafka-admin.js';
import { PrivateBroker } from './helpers/broker.js';
import { startCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, txnVersions } from './helpers/delta.js';
import { freePort } from './helpers/emulators.js';
import { tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';
import { Rng, countLines, sleep, until, type Delivered } from './helpers/faults.js';
import { FULL, SEED, SIZE, DAYS, PARTITIONS, DEBUG, Produced, DeadLetterRow, produceAll, assertRows, assertDeadLetters, SPILLED, COMMITTED, insertWorkload } from './helpers/fault-checks.js';
// 2. The broker stopped and restarted under a running pipeline

/** The private broker of the restart test, stopped and deleted whatever happens. */
let privateBroker: PrivateBroker | undefined;
test.after.always('stop the private broker', async () => {
  await privateBroker?.destroy();
});

/** The last offset of each partition among `delivered`. */
function lastOffsets(delivered: readonly Delivered[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const d of delivered) out.set(d.partition, Math.max(out.get(d.partition) ?? -1, d.offset));
  return out;
}

/** Whether the table records every partition's position at (or past) its last offset. */
function tableCovers(table: string, group: string, topic: string, last: ReadonlyMap<number, number>): boolean {
  const ids = [...last.keys()].map((p) => txnAppId(group, topic, p));
  const versions = txnVersions(table, ids);
  return [...last.entries()].every(([p, offset]) => (versions[txnAppId(group, topic, p)] ?? -1) >= offset);
}

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

test.serial('[integration] faults: the broker stopped and restarted mid-run (same data dir), then crashed (-9) and restarted: the pipeline keeps running, catches up, and the table is exact', async (t) => {
  t.timeout(FULL ? 20 * 60_000 : 8 * 60_000);
  const rng = new Rng((SEED + 4) >>> 0);
  t.log(`seed ${(SEED + 4) >>> 0} (KDR_FAULTS_SEED=${SEED})`);
  const broker = await PrivateBroker.create();
  privateBroker = broker;
  let at = Date.now();
  await broker.up();
  t.log(`private broker up at ${broker.bootstrap} in ${((Date.now() - at) / 1000).toFixed(1)} s (home ${broker.home})`);

  const topic = uniqueName('kdr_restart');
  await createTopic(broker.bootstrap, topic, PARTITIONS);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const group = uniqueName('kdr_group');
  const monitoringPort = await freePort();
  const readyz = async (): Promise<number> => {
    try {
      return (await fetch(`http://127.0.0.1:${monitoringPort}/readyz`)).status;
    } catch {
      return 0;
    }
  };
  const configPath = writeConfig(
    dir,
    testConfig({
      topics: [topic],
      group,
      tablePath: table,
      extra: {
        kafka: {
          broker: broker.bootstrap,
          max_poll_records: 500,
          // A small prefetch queue: consumption needs the broker all along, so an outage interrupts it.
          properties: { 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 500, 'queued.max.messages.kbytes': 2048 },
        },
        batch: { batch_interval: 0.5, batch_size: 5000 },
        buffer: { staging_dir: join(dir, 'staging'), max_memory: '2MiB' },
        monitoring: { enabled: true, host: '127.0.0.1', port: monitoringPort },
      },
    }),
  );
  const workload = insertWorkload(topic, Math.floor(SIZE.restartMessages / 4));
  const produced: Produced[] = [];
  const dead: DeadLetterRow[] = [];
  const delivered: Delivered[] = [];
  const produce = async (chunks: number) => {
    for (let c = 0; c < chunks; c += 1) {
      const chunk = workload.chunk(rng);
      delivered.push(...(await produceAll(broker.bootstrap, topic, chunk, dead)));
      produced.push(...chunk);
    }
  };
  // Half the data before the start: the first outage comes while it is being consumed.
  await produce(2);

  const cli = startCli(['--config', configPath, DEBUG]);
  const exitedEarly: string[] = [];
  const stillRunning = (when: string) => {
    if (cli.child.exitCode !== null || cli.child.signalCode !== null) exitedEarly.push(`${when}: exit ${cli.child.exitCode ?? cli.child.signalCode}`);
  };
  try {
    await cli.waitFor(COMMITTED, 120_000);
    t.is(await readyz(), 200, 'ready while the broker answers');

    // Outage 1: a clean stop (SIGTERM to the broker), a pause, and a start on the same data dir.
    // /readyz turns 503 while no broker answers (librdkafka's statistics come every 5 s).
    at = Date.now();
    await broker.down();
    const stopSeconds = (Date.now() - at) / 1000;
    stillRunning('broker stopped');
    await until('/readyz reports not ready', async () => (await readyz()) === 503, 30_000, 250);
    const unreadyAfter = (Date.now() - at) / 1000;
    await sleep(3000);
    stillRunning('without a broker');
    at = Date.now();
    await broker.up();
    t.log(`outage 1: stop took ${stopSeconds.toFixed(1)} s, unready after ${unreadyAfter.toFixed(1)} s, restart ${((Date.now() - at) / 1000).toFixed(1)} s`);
    stillRunning('broker restarted');
    await until('/readyz reports ready again', async () => (await readyz()) === 200, 60_000, 250);
    t.log(`ready again ${((Date.now() - at) / 1000).toFixed(1)} s after the restart began`);
    await produce(1);

    // Outage 2: the broker process killed (-9) while the pipeline consumes what just arrived.
    const committedSoFar = countLines(cli.output(), COMMITTED);
    await until('a commit after the restart', () => countLines(cli.output(), COMMITTED) > committedSoFar, 120_000, 50);
    const pid = broker.pid();
    if (pid === undefined) throw new Error('the private broker has no pid file');
    process.kill(pid, 'SIGKILL');
    await until('the broker process is gone', () => processGone(pid), 30_000, 50);
    stillRunning('broker killed');
    await sleep(2000);
    at = Date.now();
    await broker.up();
    t.log(`outage 2: restart after kill -9 took ${((Date.now() - at) / 1000).toFixed(1)} s`);
    stillRunning('broker restarted after the crash');
    await produce(1);
    // A few good rows at the end of every partition, so each partition's last offset is a row
    // (the table's position for it is what the wait below looks at).
    const tail: Produced[] = [];
    for (let p = 0; p < PARTITIONS; p += 1) {
      for (let i = 0; i < 3; i += 1) {
        const row = { id: `${topic}-tail-${p}-${i}`, seq: -1, amount: 0, note: 'tail', date_col: DAYS[0] };
        tail.push({ message: { key: `tail${p}`, value: JSON.stringify(row), partition: p }, row });
      }
    }
    delivered.push(...(await produceAll(broker.bootstrap, topic, tail, dead)));
    produced.push(...tail);

    // The pipeline resumes by itself and catches up: the table's positions reach the last offsets.
    const last = lastOffsets(delivered);
    at = Date.now();
    await until(
      'the table covers every partition up to its last offset',
      () => {
        stillRunning('catching up');
        if (exitedEarly.length > 0) throw new Error(`the pipeline exited: ${exitedEarly.join('; ')}\n${cli.output().slice(-4000)}`);
        return tableCovers(table, group, topic, last);
      },
      180_000,
      2000,
    );
    t.log(`caught up ${((Date.now() - at) / 1000).toFixed(1)} s after the last restart`);
  } finally {
    stillRunning('before SIGTERM');
    cli.child.kill('SIGTERM');
  }
  const code = await cli.exited;
  const out = cli.output();
  t.log(
    `${produced.length} messages (${dead.length} bad); pipeline log: ${countLines(out, COMMITTED)} commits, ${countLines(out, SPILLED)} spills, ` +
      `${countLines(out, /"msg":"kafka client error"/)} kafka client errors, ${countLines(out, /"msg":"partitions revoked"/)} revocations, ` +
      `${countLines(out, /committing Kafka offsets failed/)} failed offset commits`,
  );
  t.deepEqual(exitedEarly, [], 'the pipeline never exited while the broker was away');
  t.is(code, 0, `SIGTERM stops it cleanly: ${out.slice(-3000)}`);
  assertRows(t, table, workload.expected(produced), (r) => String(r.id), 'the table is exact');
  assertDeadLetters(t, table, dead);
});

// ---------------------------------------------------------------------------------------------
// 3. A fleet: three instances in one group, killed and joining at random under steady production

