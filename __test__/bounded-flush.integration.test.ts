/**
 * A day far larger than `buffer.max_memory`, staged whole and written in ONE consolidating
 * flush (INSERT + dedup, MERGE with `delete_when` into a table that already holds the day): the
 * flush consolidates it one unit of key buckets at a time, so the process's peak RSS stays
 * near what the cap allows instead of growing with the day, and the table read back by Python's
 * deltalake is exactly the reference computed here. Then kill -9 at several points of such a
 * flush: the restarted run leaves the same exact table.
 */
import test from 'ava';
import { join } from 'node:path';
import { createTopic, produceMessages, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { killRunsAt, runCli } from './helpers/cli.js';
import { appendWithPython, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const DAY = '2026-11-22';
const OTHER_DAY = '2026-11-21';
const FULL = process.env.KDR_BOUNDED_FULL === '1';
/** Distinct keys; every fifth message repeats an earlier key with a higher version. */
const KEYS = FULL ? 400_000 : 100_000;
const CAP = '2MiB';

const COLUMNS: Array<[string, string, boolean]> = [
  ['id', 'string', true],
  ['version', 'long', true],
  ['note', 'string', true],
  ['op', 'string', true],
  ['date_col', 'string', false],
];

type Row = {
  id: string;
  version: number;
  note: string;
  op: string;
  date_col: string;
};

/** A fixed pseudo-random sequence (the same run every time). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** The messages, ~400 B each: keys in order, with repeats of earlier keys interleaved. */
function dataSet(): Row[] {
  const random = lcg(16);
  const rows: Row[] = [];
  const versions = new Map<string, number>();
  const filler = 'x'.repeat(300);
  for (let i = 0; i < KEYS; i++) {
    const id = `k-${i}`;
    versions.set(id, 1);
    rows.push({ id, version: 1, note: `${filler}-${i}-1`, op: 'upsert', date_col: DAY });
    if (i % 4 === 3) {
      const earlier = `k-${Math.floor(random() * i)}`;
      const version = (versions.get(earlier) ?? 1) + 1 + Math.floor(random() * 3);
      versions.set(earlier, version);
      const op = random() < 0.1 ? 'delete' : 'upsert';
      rows.push({ id: earlier, version, note: `${filler}-${earlier}-${version}`, op, date_col: DAY });
    }
  }
  return rows;
}

function messages(rows: Row[]): OutgoingMessage[] {
  return rows.map((r) => ({ key: r.id, value: JSON.stringify(r) }));
}

/** The greatest version per key (ties: the later message). */
function winners(rows: Row[]): Map<string, Row> {
  const best = new Map<string, Row>();
  for (const r of rows) {
    const held = best.get(r.id);
    if (!held || r.version >= held.version) best.set(r.id, r);
  }
  return best;
}

function sorted(rows: Array<Record<string, unknown>>): string[] {
  return rows.map((r) => JSON.stringify([r.date_col, r.id, r.version, r.note, r.op])).sort();
}

function peakRssMiB(output: string): number {
  const match = /"msg":"pipeline stopped".*"peakRssMiB":(\d+)/.exec(output);
  if (!match) throw new Error(`no peak RSS in the output:\n${output.slice(-2000)}`);
  return Number(match[1]);
}

function progressLines(output: string): number {
  return output.split('\n').filter((l) => l.includes('"msg":"flush progress: consolidated a bucket range"')).length;
}

const produced = (async () => {
  const topic = uniqueName('kdr_bounded');
  await createTopic(BROKERS, topic, 3);
  const rows = dataSet();
  await produceMessages(BROKERS, topic, messages(rows));
  return { topic, rows };
})();

interface Setup {
  table: string;
  configPath: string;
}

function setup(topic: string, mode: 'dedup' | 'merge', maxMemory: string): Setup {
  const dir = tempDir();
  const table = join(dir, 'records');
  createTableWithPython(table, COLUMNS, ['date_col']);
  const delta: Record<string, unknown> =
    mode === 'merge' ? { mode: 'MERGE', merge_keys: ['id'], delete_when: "op = 'delete'" } : {};
  const config = testConfig({
    topics: [topic],
    group: uniqueName('kdr_group'),
    tablePath: table,
    batchInterval: 3600,
    batchSize: 100_000_000,
    extra: {
      delta,
      dedup: mode === 'dedup' ? { keys: ['id'], order_by: 'version' } : { order_by: 'version' },
      buffer: { max_memory: maxMemory, staging_dir: join(dir, 'staging') },
      kafka: { max_poll_records: 5000, properties: { 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 500 } },
    },
  });
  return { table, configPath: writeConfig(dir, config) };
}

/** The table before a MERGE: rows of the flushed day (some of its keys, an older version) and another day. */
function preFill(table: string): Row[] {
  const rows: Row[] = [];
  for (let i = 0; i < KEYS; i += 7) rows.push({ id: `k-${i}`, version: 0, note: 'before', op: 'upsert', date_col: DAY });
  for (let i = 0; i < 2000; i++) rows.push({ id: `k-${i}`, version: 0, note: 'other day', op: 'upsert', date_col: OTHER_DAY });
  appendWithPython(table, rows);
  return rows;
}

/** What the table holds after the MERGE of `incoming` into `before`. */
function merged(before: Row[], incoming: Row[]): Row[] {
  const table = new Map(before.map((r) => [`${r.date_col}/${r.id}`, r]));
  for (const w of winners(incoming).values()) {
    const key = `${w.date_col}/${w.id}`;
    if (w.op === 'delete') table.delete(key);
    else table.set(key, w);
  }
  return [...table.values()];
}

function run(configPath: string): string {
  const result = runCli(['--config', configPath, '--until-caught-up'], { timeoutMs: 600_000 });
  if (result.status !== 0) throw new Error(`exit ${result.status}:\n${result.stderr.slice(-3000)}`);
  return result.stderr;
}

test.serial('[integration] one INSERT + dedup flush of a day ~30x the memory cap: consolidated unit by unit, exact rows, bounded RSS', async (t) => {
  const { topic, rows } = await produced;
  const capped = setup(topic, 'dedup', CAP);
  const output = run(capped.configPath);
  const units = progressLines(output);
  t.true(units >= 8, `the day is consolidated in several units (${units})`);
  t.deepEqual(sorted(readTable(capped.table).rows), sorted([...winners(rows).values()]));

  const uncapped = setup(topic, 'dedup', '4GiB');
  const free = run(uncapped.configPath);
  t.deepEqual(sorted(readTable(uncapped.table).rows), sorted([...winners(rows).values()]));
  const [cappedRss, freeRss] = [peakRssMiB(output), peakRssMiB(free)];
  t.log(`peak RSS: ${cappedRss} MiB capped at ${CAP}, ${freeRss} MiB uncapped; ${units} units`);
  t.true(cappedRss < freeRss - 60, `the cap bounds the flush (${cappedRss} vs ${freeRss} MiB)`);
});

test.serial('[integration] one MERGE flush with delete_when into a table holding the day, ~30x the memory cap: exact final state, bounded RSS', async (t) => {
  const { topic, rows } = await produced;
  const capped = setup(topic, 'merge', CAP);
  const before = preFill(capped.table);
  const output = run(capped.configPath);
  t.true(progressLines(output) >= 8, 'the day is consolidated in several units');
  t.deepEqual(sorted(readTable(capped.table).rows), sorted(merged(before, rows)));

  const uncapped = setup(topic, 'merge', '4GiB');
  preFill(uncapped.table);
  const free = run(uncapped.configPath);
  const [cappedRss, freeRss] = [peakRssMiB(output), peakRssMiB(free)];
  t.log(`peak RSS: ${cappedRss} MiB capped at ${CAP}, ${freeRss} MiB uncapped`);
  t.true(cappedRss < freeRss - 60, `the cap bounds the MERGE (${cappedRss} vs ${freeRss} MiB)`);
});

test.serial('[integration] kill -9 at several points of a long consolidating MERGE flush, then restart: the exact final state', async (t) => {
  const { topic, rows } = await produced;
  const capped = setup(topic, 'merge', CAP);
  const before = preFill(capped.table);
  // Each run is killed a little further into the flush: 0 to 450 ms after it started (a restart
  // recovers the spilled day and flushes it again from the start). The trigger is the flush's
  // own start line, written at once; native progress lines reach the output only every 500 ms,
  // so a kill waiting for them could land after a fast flush had committed.
  const flushStarted = /"msg":"flush started"/;
  const { killed } = await killRunsAt(
    ['--config', capped.configPath, '--until-caught-up', '--logging.level=DEBUG'],
    [0, 50, 100, 200, 300, 450].map((delayMs) => ({ line: flushStarted, count: 1, delayMs })),
  );
  t.log(`killed during the flush ${killed} times of 6`);
  t.true(killed >= 3, `killed during the flush (${killed} times of 6)`);
  run(capped.configPath);
  t.deepEqual(sorted(readTable(capped.table).rows), sorted(merged(before, rows)));
});
