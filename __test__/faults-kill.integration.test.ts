/**
 * Exactly once in a real fleet (issue #12), fault injection 1: kill -9 at random moments (seeded;
 * the seed is logged, KDR_FAULTS_SEED replays the plan) aimed at start-up and staging recovery,
 * consumption, spills, flushes and commits, with spilling on, in three modes: INSERT, INSERT +
 * dedup.keys, MERGE. Malformed messages are mixed in and must each be in the dead-letter table
 * once. Against real parts (the broker of scripts/kafka/kafka.sh, Delta tables read back with
 * Python's deltalake, the CLI as shipped in dist/); every test compares the EXACT row set and
 * dead-letter set. Size: the default fits CI; KDR_FAULTS_FULL=1 runs more data and kills.
 */
import test, { type ExecutionContext } from 'ava';

import { join } from 'node:path';

import { createTopic } from '../ts/tools/kafka-admin.js';

import { runCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';
import { Rng, countLines, runAndKill, tally, type KillOutcome, type KillPlan } from './helpers/faults.js';
import { FULL, SEED, SIZE, DAYS, PARTITIONS, DEBUG, Row, Produced, DeadLetterRow, badMessage, produceAll, assertRows, assertDeadLetters, spillFiles, keep, SPILLED, COMMITTED, STOPPED, NOTE, insertWorkload, type Workload } from './helpers/fault-checks.js';

type Mode = 'INSERT' | 'INSERT + dedup.keys' | 'MERGE';

const MERGE_COLUMNS: Array<[string, string, boolean]> = [
  ['id', 'string', false],
  ['version', 'long', true],
  ['name', 'string', true],
  ['amount', 'double', true],
  ['op', 'string', true],
  ['date_col', 'string', false],
];

/**
 * INSERT + dedup.keys [id], order_by seq, strategy last: one row per key and day, the version with
 * the greatest seq. Consolidation covers one flush, so every run flushes only at its end and a
 * chunk (fresh keys) is produced only once the previous one is committed: each key's versions are
 * consolidated in one flush, however the kills split its staging into spills and recoveries.
 * Versions of a key are spread over the partitions and both days; some are sent twice (retries).
 */
function dedupWorkload(topic: string): Workload {
  let seq = 0;
  let chunkNo = 0;
  const versions = 4;
  return {
    columns: EVENT_COLUMNS,
    extra: { batch: { batch_interval: 3600, batch_size: 100_000_000 }, dedup: { keys: ['id'], order_by: 'seq', strategy: 'last' } },
    oneFlushPerRun: true,
    chunk(rng) {
      const c = chunkNo++;
      const out: Produced[] = [];
      for (let v = 0; v < versions; v += 1) {
        for (let k = 0; k < SIZE.dedupKeysPerChunk; k += 1) {
          const s = seq++;
          const partition = rng.int(0, PARTITIONS - 1);
          if (rng.chance(0.01)) {
            out.push(badMessage(rng, s, partition));
            continue;
          }
          const row = { id: `${topic}-c${c}-k${k}`, seq: s, amount: v, note: `v${v}${NOTE}`, date_col: rng.pick(DAYS) };
          const p: Produced = { message: { key: String(row.id), value: JSON.stringify(row), partition }, row };
          out.push(p);
          if (rng.chance(0.03)) out.push({ ...p }); // a producer retry: the same record again
        }
      }
      return out;
    },
    expected(produced) {
      const best = new Map<string, Row>();
      for (const p of produced) {
        if (!p.row) continue;
        const key = `${String(p.row.id)}/${String(p.row.date_col)}`;
        const cur = best.get(key);
        if (!cur || Number(p.row.seq) > Number(cur.seq)) best.set(key, p.row);
      }
      return [...best.values()];
    },
    keyOf: (r) => `${String(r.id)}/${String(r.date_col)}`,
  };
}

/**
 * MERGE on id (each key has one day and one partition), order_by version, tombstones op = 'd':
 * the final state is each key's greatest version, absent when that is a tombstone. Keys are
 * updated in every chunk (so across flushes), some deleted and created again, and some get a late
 * older version (which must lose) while they were never deleted.
 */
function mergeWorkload(): Workload {
  let seq = 0;
  const version = new Map<number, number>();
  const everDeleted = new Set<number>();
  return {
    columns: MERGE_COLUMNS,
    extra: {
      batch: { batch_interval: 1.5, batch_size: 5000 },
      delta: { mode: 'MERGE', merge_keys: ['id'], delete_when: "op = 'd'" },
      dedup: { order_by: 'version' },
    },
    oneFlushPerRun: false,
    chunk(rng) {
      return Array.from({ length: SIZE.mergeChunk }, () => {
        const s = seq++;
        const k = rng.int(0, SIZE.mergeKeys - 1);
        const partition = k % PARTITIONS;
        if (rng.chance(0.01)) return badMessage(rng, s, partition);
        const current = version.get(k) ?? 0;
        let row: Row;
        if (current >= 2 && !everDeleted.has(k) && rng.chance(0.03)) {
          // A late record: older than what was sent before; never replaces it.
          row = { id: `k${k}`, version: current - 1, name: 'late', amount: -1, op: null, date_col: DAYS[k % 2] };
        } else {
          const v = current + 1;
          version.set(k, v);
          const tombstone = v >= 2 && rng.chance(0.06);
          if (tombstone) everDeleted.add(k);
          row = tombstone
            ? { id: `k${k}`, version: v, name: null, amount: null, op: 'd', date_col: DAYS[k % 2] }
            : { id: `k${k}`, version: v, name: `v${v}-${s}-${NOTE}`, amount: k * v, op: null, date_col: DAYS[k % 2] };
        }
        return { message: { key: `k${k}`, value: JSON.stringify(row), partition }, row };
      });
    },
    expected(produced) {
      const last = new Map<string, Row>();
      for (const p of produced) {
        if (!p.row) continue;
        const cur = last.get(String(p.row.id));
        if (!cur || Number(p.row.version) > Number(cur.version)) last.set(String(p.row.id), p.row);
      }
      return [...last.values()].filter((r) => r.op !== 'd');
    },
    keyOf: (r) => String(r.id),
  };
}

/** A random kill moment, aimed at one phase of a run. */
function killPlan(rng: Rng, oneFlushPerRun: boolean, staging: string): KillPlan {
  const phase = rng.weighted([
    ['start-up', 1],
    ['recovery', 3],
    ['after recovery', 1],
    ['assignment', 1],
    ['consume', 3],
    ['spill', 3],
    ['after spill', 2],
    ['flush', 3],
    ['commit', 2],
    ['time', 2],
  ] as const);
  // A run consumes its backlog in a fraction of a second (one chunk or more, 400 per batch) with
  // one or two flushes (batch_size 5,000) plus the last one: the counts stay within that.
  const flushNo = oneFlushPerRun ? 1 : rng.int(1, 2);
  switch (phase) {
    case 'start-up':
      // Node start-up, config, opening the table.
      return { phase, delayMs: 0, maxWaitMs: rng.int(100, 900) };
    case 'recovery':
      // From the CLI's first log line through opening the table and re-staging spilled rows.
      return { phase, line: /"msg":"configuration"/, delayMs: rng.int(0, 700) };
    case 'after recovery':
      return { phase, line: /"msg":"(staging recovered|pipeline started)"/, delayMs: rng.int(0, 40) };
    case 'assignment':
      return { phase, line: /"msg":"partitions assigned"/, delayMs: rng.int(0, 150) };
    case 'consume':
      return { phase, line: /"msg":"batch staged"/, count: rng.int(1, 12), delayMs: rng.int(0, 20) };
    case 'spill': {
      // The moment a new spill file appears: while it is written, before the manifest lists it.
      const before = spillFiles(staging);
      const wanted = rng.int(1, 2);
      let seen = 0;
      const known = new Set(before);
      return {
        phase,
        delayMs: rng.int(0, 3),
        maxWaitMs: 60_000,
        probe: () => {
          for (const f of spillFiles(staging)) {
            if (!known.has(f)) {
              known.add(f);
              seen += 1;
            }
          }
          return seen >= wanted;
        },
      };
    }
    case 'after spill':
      // Native records reach the log asynchronously: this line may come a little after the spill.
      return { phase, line: SPILLED, count: rng.int(1, 2), delayMs: rng.int(0, 10) };
    case 'flush':
      return { phase, line: /"msg":"flush started"/, count: flushNo, delayMs: rng.int(0, 400) };
    case 'commit':
      return { phase, line: COMMITTED, count: flushNo, delayMs: rng.int(0, 15) };
    case 'time':
      return { phase, delayMs: 0, maxWaitMs: rng.int(200, 2000) };
  }
}

/** Runs a mode's kill campaign, then a clean catch-up run, and compares. */
async function killCampaign(t: ExecutionContext, mode: Mode, salt: number): Promise<void> {
  const seed = (SEED + salt) >>> 0;
  const rng = new Rng(seed);
  t.log(`seed ${seed} (KDR_FAULTS_SEED=${SEED}; ${FULL ? 'full' : 'default'} size)`);
  const topic = uniqueName('kdr_faults');
  await createTopic(BROKERS, topic, PARTITIONS);
  const workload = mode === 'INSERT' ? insertWorkload(topic) : mode === 'MERGE' ? mergeWorkload() : dedupWorkload(topic);
  const dir = tempDir();
  const table = join(dir, 'events');
  const staging = join(dir, 'staging');
  createTableWithPython(table, workload.columns, ['date_col']);
  const group = uniqueName('kdr_group');
  const configPath = writeConfig(
    dir,
    testConfig({
      topics: [topic],
      group,
      tablePath: table,
      extra: {
        ...workload.extra,
        kafka: {
          max_poll_records: 400,
          // Static membership: a restarted run takes its predecessor's place at once instead of
          // waiting for the killed member's session to time out.
          properties: { 'group.instance.id': `${group}-solo`, 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 500 },
        },
        buffer: { staging_dir: staging, max_memory: '2MiB' },
      },
    }),
  );
  const args = ['--config', configPath, '--until-caught-up', DEBUG];

  const produced: Produced[] = [];
  const dead: DeadLetterRow[] = [];
  let chunks = 0;
  const produce = async () => {
    chunks += 1;
    const chunk = workload.chunk(rng);
    await produceAll(BROKERS, topic, chunk, dead);
    produced.push(...chunk);
  };

  const outcomes: KillOutcome[] = [];
  const started = Date.now();
  let landed = 0;
  let committedSinceChunk = true;
  for (let attempt = 0; landed < SIZE.kills && attempt < SIZE.kills * 3; attempt += 1) {
    // INSERT and MERGE: new data before every run. Dedup: a chunk of fresh keys only once the
    // previous one is committed (see dedupWorkload).
    if (!workload.oneFlushPerRun || committedSinceChunk) {
      await produce();
      committedSinceChunk = false;
    }
    const outcome = await runAndKill(args, killPlan(rng, workload.oneFlushPerRun, staging));
    outcomes.push(outcome);
    // A kill counts once it came before the run was over (the last flush and disconnect done).
    if (outcome.landed && !STOPPED.test(outcome.output)) landed += 1;
    if (outcome.exit === 0 || COMMITTED.test(outcome.output)) committedSinceChunk = true;
  }
  const campaignSeconds = (Date.now() - started) / 1000;

  const final = runCli(['--config', configPath, '--until-caught-up', DEBUG], { timeoutMs: 240_000 });
  const all = [...outcomes.map((o) => o.output), final.stderr].join('\n');
  const midRun = outcomes.filter((o) => o.landed && !STOPPED.test(o.output));
  const killedBy = tally(midRun.map((o) => o.plan.phase));
  const lastBefore = tally(midRun.map((o) => o.lastMsg));
  const atExit = outcomes.filter((o) => o.landed && STOPPED.test(o.output)).length;
  t.log(
    `${mode}: ${outcomes.length} runs in ${campaignSeconds.toFixed(1)} s, ${landed} killed mid-run, ` +
      `${atExit} more killed while exiting, ${produced.length} messages (${dead.length} bad) in ${chunks} chunk(s)`,
  );
  t.log(`kills by aim: ${JSON.stringify(killedBy)}`);
  t.log(`kills by last log line: ${JSON.stringify(lastBefore)}`);
  t.log(
    `log lines over all runs: ${countLines(all, SPILLED)} spills, ${countLines(all, /"msg":"flush started"/)} flushes started, ` +
      `${countLines(all, COMMITTED)} committed, ${countLines(all, /"msg":"staging recovered"/)} staging recoveries, ` +
      `${countLines(all, /staged data dropped/)} staged data dropped, ${countLines(all, /"msg":"partitions revoked"/)} revocations`,
  );

  t.is(final.status, 0, `the clean run finishes: ${final.stderr.slice(-3000)}`);
  t.true(landed >= SIZE.kills, `${landed} of ${SIZE.kills} kills landed mid-run`);
  t.true(countLines(all, SPILLED) > 0, 'rows were spilled');
  const failedRuns = outcomes
    .filter((o) => !o.landed && o.exit !== 0)
    .map((o) => `exit ${o.exit ?? o.signal} after ${o.ms} ms (aimed at ${o.plan.phase}); full output in ${keep(dir, o.output)}:\n${o.output.slice(-2000)}`);
  t.deepEqual(failedRuns, [], 'every run that was not killed exited 0');

  assertRows(t, table, workload.expected(produced), (r) => workload.keyOf(r), `${mode}: the table is exact`);
  assertDeadLetters(t, table, dead);
}

test.serial(`[integration] faults: kill -9 at ≥${SIZE.kills} random moments, INSERT with spilling: every row exactly once, every dead letter once`, async (t) => {
  t.timeout(FULL ? 40 * 60_000 : 10 * 60_000);
  await killCampaign(t, 'INSERT', 1);
});

test.serial(`[integration] faults: kill -9 at ≥${SIZE.kills} random moments, INSERT + dedup.keys with spilling: the last version per key and day, once`, async (t) => {
  t.timeout(FULL ? 40 * 60_000 : 10 * 60_000);
  await killCampaign(t, 'INSERT + dedup.keys', 2);
});

test.serial(`[integration] faults: kill -9 at ≥${SIZE.kills} random moments, MERGE with spilling: the final state per key`, async (t) => {
  t.timeout(FULL ? 40 * 60_000 : 10 * 60_000);
  await killCampaign(t, 'MERGE', 3);
});

// ---------------------------------------------------------------------------------------------
