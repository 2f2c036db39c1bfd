/**
 * Compaction (issue #13): a flush a second writes a file a second per day it touches; the
 * pipeline's maintenance compacts each closed day into target-size files, in commits of its own,
 * while ingestion goes on. Proved against the real broker, in INSERT and MERGE mode: late rows of
 * the closed day keep arriving while it is compacted and rows of an open day keep flowing, and
 * the result is the exact rows (Python's deltalake reads them), one file for the closed day, the
 * open day untouched, compactions between ingestion's commits, and no failed commit. The
 * `optimize` subcommand does the same on demand.
 */
import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { Pipeline, parseConfig, type FlushSummary } from '../ts/index.js';
import { dayIn } from '../ts/pipeline/maintenance.js';
import { createTopic, produceMessages, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { runCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, filesPerDay, readTable, tableHistory } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const PARTITIONS = 2;
/** Long closed. */
const CLOSED = '2026-11-20';
/** Two days ahead: not closed while the test runs. */
const OPEN = dayIn(Date.now() + 2 * 86_400_000, 'UTC');
/** MERGE mode: the closed day's events cycle through this many ids, so later waves update rows. */
const MERGE_IDS = 400;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Mode = 'INSERT' | 'MERGE';

/** Closed-day events `from..from+count-1`: in MERGE mode ids repeat, each on one partition. */
function closedEvents(mode: Mode, from: number, count: number): OutgoingMessage[] {
  return Array.from({ length: count }, (_, i) => {
    const seq = from + i;
    const key = mode === 'MERGE' ? seq % MERGE_IDS : seq;
    return { value: JSON.stringify({ id: `c-${key}`, seq, amount: seq, note: 'closed', date_col: CLOSED }), partition: key % PARTITIONS };
  });
}

function openEvents(from: number, count: number): OutgoingMessage[] {
  return Array.from({ length: count }, (_, i) => {
    const seq = from + i;
    return { value: JSON.stringify({ id: `o-${seq}`, seq, amount: seq, note: 'open', date_col: OPEN }), partition: seq % PARTITIONS };
  });
}

/** What the table must hold: every open-day event, and per closed-day id its last event. */
function expectedRows(sent: OutgoingMessage[]): string[] {
  const last = new Map<string, string>();
  for (const m of sent) {
    const v = JSON.parse(String(m.value)) as { id: string; amount: number; date_col: string };
    last.set(v.id, `${v.id}|${v.amount}|${v.date_col}`);
  }
  return [...last.values()].sort();
}

function rowsOf(table: string): string[] {
  return readTable(table).rows.map((r) => `${String(r.id)}|${Number(r.amount)}|${String(r.date_col)}`).sort();
}

async function metricValue(pipeline: Pipeline, name: string): Promise<number> {
  const metric = (await pipeline.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? []).reduce((sum, v) => sum + Number(v.value), 0);
}

async function compactsWhileIngesting(t: ExecutionContext, mode: Mode): Promise<void> {
  const topic = uniqueName(`kdr_optimize_${mode.toLowerCase()}`);
  await createTopic(BROKERS, topic, PARTITIONS);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const config = parseConfig(
    testConfig({
      topics: [topic],
      group: uniqueName('kdr_group'),
      tablePath: table,
      batchInterval: 0.3,
      extra: {
        delta: { mode },
        dedup: mode === 'MERGE' ? { keys: ['id'] } : {},
        maintenance: { interval: 1, optimize_after: 0 },
      },
    }),
  );
  const pipeline = new Pipeline(config);
  const errors: Error[] = [];
  const flushes: FlushSummary[] = [];
  pipeline.on('error', (e) => errors.push(e));
  pipeline.on('flush', (s) => flushes.push(s));
  await pipeline.start();

  // Late rows of the closed day and rows of the open day, a wave every 400 ms: the checks (every
  // second) compact the closed day between, and during, the flushes that keep adding to it.
  const sent: OutgoingMessage[] = [];
  const send = async (messages: OutgoingMessage[]) => {
    sent.push(...messages);
    await produceMessages(BROKERS, topic, messages);
  };
  for (let wave = 0; wave < 8; wave++) {
    await send([...closedEvents(mode, wave * 100, 100), ...openEvents(wave * 50, 50)]);
    await sleep(400);
  }
  for (let wave = 8; wave < 12; wave++) {
    await send(openEvents(wave * 50, 50));
    await sleep(400);
  }
  // Until the closed day holds all its rows in one file (the last check after its last append).
  const closedRows = expectedRows(sent).filter((r) => r.endsWith(`|${CLOSED}`)).length;
  const target = pipeline.target;
  if (!target) throw new Error('the pipeline has no table');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const summary = (await target.partitionSummary()).find((p) => p.partition === `date_col=${CLOSED}`);
    if (summary && summary.rows === closedRows && summary.files === 1) break;
    if (Date.now() > deadline) t.fail(`the closed day was not compacted into one file: ${JSON.stringify(summary)}`);
    if (Date.now() > deadline) break;
    await sleep(250);
  }
  const compactions = await metricValue(pipeline, 'kafka_delta_compactions_total');
  const failures = await metricValue(pipeline, 'kafka_delta_maintenance_failures_total');
  const conflicts = await metricValue(pipeline, 'kafka_delta_commit_conflicts_total');
  t.log(`${compactions} compactions, ${conflicts} ingestion commit conflicts retried`);
  await pipeline.stop();

  t.deepEqual(errors, [], 'no flush failed');
  t.is(failures, 0, 'no compaction failed');
  t.true(compactions >= 1, `${compactions} compactions`);
  t.deepEqual(rowsOf(table), expectedRows(sent), 'the exact rows, as Python reads them');
  const files = filesPerDay(table);
  t.is(files[CLOSED], 1, 'the closed day is one file');
  t.true((files[OPEN] ?? 0) > 1, `the open day is left alone: ${files[OPEN]} files`);
  const history = tableHistory(table);
  const optimized = history.filter((h) => h.operation === 'OPTIMIZE').map((h) => h.version);
  const ingested = history.filter((h) => h.operation === 'WRITE' || h.operation === 'MERGE').map((h) => h.version);
  t.true(optimized.length >= 1);
  t.true(Math.min(...optimized) < Math.max(...ingested), 'compacted between ingestion commits, not after them');
  t.true(flushes.length >= 5, `${flushes.length} flushes`);
}

test.serial('[integration] INSERT: the closed day is compacted while its late rows and the open day are ingested', (t) => compactsWhileIngesting(t, 'INSERT'));

test.serial('[integration] MERGE: the closed day is compacted while its rows are merged into and the open day ingested', (t) => compactsWhileIngesting(t, 'MERGE'));

test.serial('[integration] the optimize subcommand compacts the closed days, or the days named, one commit each', async (t) => {
  const topic = uniqueName('kdr_optimize_cli');
  await createTopic(BROKERS, topic, PARTITIONS);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const configPath = writeConfig(dir, testConfig({ topics: [topic], group: uniqueName('kdr_group'), tablePath: table }));
  const sent: OutgoingMessage[] = [];
  for (let run = 0; run < 3; run++) {
    const messages = [...closedEvents('INSERT', run * 100, 100), ...openEvents(run * 100, 100)];
    sent.push(...messages);
    await produceMessages(BROKERS, topic, messages);
    const result = runCli(['--config', configPath, '--until-caught-up']);
    t.is(result.status, 0, result.stderr);
  }
  const before = filesPerDay(table);
  t.true((before[CLOSED] ?? 0) >= 3 && (before[OPEN] ?? 0) >= 3, JSON.stringify(before));

  const closed = runCli(['optimize', '--config', configPath]);
  t.is(closed.status, 0, closed.stderr);
  t.regex(closed.stdout, new RegExp(`${CLOSED}: ${before[CLOSED]} files -> 1 \\(\\d+ bytes rewritten\\) at version \\d+`));
  t.regex(closed.stdout, /1 of 1 days compacted/);
  t.deepEqual(filesPerDay(table), { [CLOSED]: 1, [OPEN]: before[OPEN] }, 'only the closed day');

  const again = runCli(['optimize', '--config', configPath]);
  t.is(again.status, 0, again.stderr);
  t.regex(again.stdout, /0 of 0 days compacted/, 'nothing left to compact');

  const named = runCli(['optimize', '--config', configPath, '--day', OPEN, '--day', CLOSED]);
  t.is(named.status, 0, named.stderr);
  t.regex(named.stdout, new RegExp(`${OPEN}: ${before[OPEN]} files -> 1 `));
  t.regex(named.stdout, new RegExp(`${CLOSED}: nothing to compact`));
  t.deepEqual(filesPerDay(table), { [CLOSED]: 1, [OPEN]: 1 });
  t.deepEqual(rowsOf(table), expectedRows(sent), 'the exact rows, as Python reads them');
  t.is(tableHistory(table).filter((h) => h.operation === 'OPTIMIZE').length, 2, 'one commit per day compacted');
});
