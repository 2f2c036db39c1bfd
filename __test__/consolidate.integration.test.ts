/**
 * Consolidation and MERGE against the real broker, read back with Python's deltalake: the exact
 * rows each strategy keeps within a flush, MERGE across flushes (updates, per-day keys,
 * tombstones, late records), partition pruning on a 30-day table, and kill -9 during MERGE.
 */
import test from 'ava';
import { join } from 'node:path';
import { Pipeline, parseConfig, type FlushSummary } from '../ts/index.js';
import { createTopic, produceMessages, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { killRunsAt, runCli } from './helpers/cli.js';
import { appendWithPython, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const D1 = '2026-11-22';
const D2 = '2026-11-23';

const COLUMNS: Array<[string, string, boolean]> = [
  ['id', 'string', true],
  ['version', 'long', true],
  ['name', 'string', true],
  ['amount', 'double', true],
  ['op', 'string', true],
  ['date_col', 'string', false],
];

interface Rec {
  id?: string | null;
  version?: number | null;
  name?: string | null;
  amount?: number | null;
  op?: string | null;
  date_col: string;
}

function message(rec: Rec, partition = 0): OutgoingMessage {
  return { key: rec.id ?? 'none', value: JSON.stringify(rec), partition };
}

/** Full rows as the reader returns them (missing fields as null), sorted for comparison. */
function full(recs: Rec[]): Array<Record<string, unknown>> {
  return sortRows(
    recs.map((r) => ({
      id: r.id ?? null,
      version: r.version ?? null,
      name: r.name ?? null,
      amount: r.amount ?? null,
      op: r.op ?? null,
      date_col: r.date_col,
    })),
  );
}

function sortRows(rows: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  const key = (r: Record<string, unknown>) => JSON.stringify([r.date_col, r.id, r.version, r.name, r.amount, r.op]);
  return [...rows].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

async function newTopic(partitions = 1): Promise<string> {
  const topic = uniqueName('kdr_cons');
  await createTopic(BROKERS, topic, partitions);
  return topic;
}

function newTable(): string {
  const table = join(tempDir(), 'records');
  createTableWithPython(table, COLUMNS, ['date_col']);
  return table;
}

/** Runs a pipeline until caught up (one flush unless the batch says otherwise); returns its flushes. */
async function ingest(topic: string, table: string, group: string, extra: Record<string, Record<string, unknown>>): Promise<FlushSummary[]> {
  const config = parseConfig(testConfig({ topics: [topic], group, tablePath: table, batchInterval: 3600, extra }));
  const pipeline = new Pipeline(config, { untilCaughtUp: true });
  const flushes: FlushSummary[] = [];
  pipeline.on('flush', (s) => flushes.push(s));
  await pipeline.run();
  return flushes;
}

// One partition: arrival order is the offset order, which decides ties.
const WITHIN_ONE_FLUSH: Rec[] = [
  { id: 'a', version: 1, name: 'a1', amount: 1, date_col: D1 },
  { id: 'b', version: 1, name: 'b1', amount: 10, date_col: D1 },
  { id: 'a', version: 3, amount: 3, date_col: D1 }, // a partial update: no name
  { id: 'a', version: 2, name: 'a2', amount: 2, date_col: D1 }, // out of order
  { id: 'b', version: 1, name: 'b1', amount: 10, date_col: D1 }, // a producer retry
  { id: 'a', version: 5, name: 'a-d2', amount: 5, date_col: D2 }, // same key, another day
  { id: 'c', version: 1, name: 'c1', date_col: D1 },
  { id: 'c', version: 1, name: 'c1-again', amount: 7, date_col: D1 }, // a tie on version
  { version: 1, name: 'anonymous', date_col: D1 }, // no key
  { version: 1, name: 'anonymous', date_col: D1 },
];

const KEPT_WITHIN_ONE_FLUSH: Record<'last' | 'first' | 'merge', Rec[]> = {
  last: [
    { id: 'a', version: 3, amount: 3, date_col: D1 },
    { id: 'b', version: 1, name: 'b1', amount: 10, date_col: D1 },
    { id: 'c', version: 1, name: 'c1-again', amount: 7, date_col: D1 },
    { id: 'a', version: 5, name: 'a-d2', amount: 5, date_col: D2 },
  ],
  first: [
    { id: 'a', version: 1, name: 'a1', amount: 1, date_col: D1 },
    { id: 'b', version: 1, name: 'b1', amount: 10, date_col: D1 },
    { id: 'c', version: 1, name: 'c1', date_col: D1 },
    { id: 'a', version: 5, name: 'a-d2', amount: 5, date_col: D2 },
  ],
  merge: [
    { id: 'a', version: 3, name: 'a2', amount: 3, date_col: D1 },
    { id: 'b', version: 1, name: 'b1', amount: 10, date_col: D1 },
    { id: 'c', version: 1, name: 'c1-again', amount: 7, date_col: D1 },
    { id: 'a', version: 5, name: 'a-d2', amount: 5, date_col: D2 },
  ],
};
const ANONYMOUS: Rec[] = [
  { version: 1, name: 'anonymous', date_col: D1 },
  { version: 1, name: 'anonymous', date_col: D1 },
];

test('[integration] within one flush each strategy keeps exactly the expected rows; null keys are kept or dead-lettered', async (t) => {
  const topic = await newTopic();
  await produceMessages(BROKERS, topic, WITHIN_ONE_FLUSH.map((r) => message(r)));
  for (const strategy of ['last', 'first', 'merge'] as const) {
    const table = newTable();
    const flushes = await ingest(topic, table, uniqueName('kdr_group'), { dedup: { keys: ['id'], order_by: 'version', strategy } });
    t.is(flushes.length, 1, strategy);
    t.is(flushes[0]?.rowsDeduplicated, 4, strategy);
    t.deepEqual(readTable(table).rows.length, 6, strategy);
    t.deepEqual(sortRows(readTable(table).rows), full([...KEPT_WITHIN_ONE_FLUSH[strategy], ...ANONYMOUS]), strategy);
  }
  const table = newTable();
  await ingest(topic, table, uniqueName('kdr_group'), { dedup: { keys: ['id'], order_by: 'version', null_keys: 'dead_letter' } });
  t.deepEqual(sortRows(readTable(table).rows), full(KEPT_WITHIN_ONE_FLUSH.last));
  const dead = readTable(`${table}__dead_letters`).rows;
  t.deepEqual(
    dead.map((d) => [d.offset, d.reason]).sort(),
    [
      [8, 'null_key'],
      [9, 'null_key'],
    ],
  );
});

for (const strategy of ['last', 'merge'] as const) {
  test(`[integration] MERGE (${strategy}) across flushes: updates replace, keys stay per day, tombstones delete, older versions lose`, async (t) => {
    const topic = await newTopic();
    const table = newTable();
    const group = uniqueName('kdr_group');
    const extra = {
      delta: { mode: 'MERGE', merge_keys: ['id'], delete_when: "op = 'd'" },
      dedup: { order_by: 'version', strategy },
    };
    await produceMessages(BROKERS, topic, [
      message({ id: 'a', version: 1, name: 'a1', amount: 1, date_col: D1 }),
      message({ id: 'b', version: 1, name: 'b1', amount: 10, date_col: D1 }),
      message({ id: 'c', version: 1, name: 'c1', amount: 20, date_col: D1 }),
      message({ id: 'e', version: 4, name: 'e4', amount: 50, date_col: D1 }),
      message({ id: 'a', version: 1, name: 'a-d2', amount: 100, date_col: D2 }),
    ]);
    const first = await ingest(topic, table, group, extra);
    t.like(first[0]?.merge, { rowsInserted: 5, rowsUpdated: 0 });

    await produceMessages(BROKERS, topic, [
      message({ id: 'a', version: 2, amount: 2, date_col: D1 }), // partial: no name
      message({ id: 'c', version: 2, op: 'd', date_col: D1 }), // tombstone
      message({ id: 'd', version: 1, name: 'd1', amount: 40, date_col: D1 }),
      message({ id: 'e', version: 3, name: 'e3-late', amount: 0, date_col: D1 }), // older than the table's
    ]);
    const second = await ingest(topic, table, group, extra);
    t.like(second[0]?.merge, { rowsInserted: 1, rowsUpdated: 1, rowsDeleted: 1 });

    const read = readTable(table);
    t.is(read.operations[0], 'MERGE');
    t.deepEqual(
      sortRows(read.rows),
      full([
        strategy === 'merge'
          ? { id: 'a', version: 2, name: 'a1', amount: 2, date_col: D1 }
          : { id: 'a', version: 2, amount: 2, date_col: D1 },
        { id: 'b', version: 1, name: 'b1', amount: 10, date_col: D1 },
        { id: 'd', version: 1, name: 'd1', amount: 40, date_col: D1 },
        { id: 'e', version: 4, name: 'e4', amount: 50, date_col: D1 },
        { id: 'a', version: 1, name: 'a-d2', amount: 100, date_col: D2 },
      ]),
    );
  });
}

test('[integration] MERGE into a table of 30 days scans only the files of the days in the batch', async (t) => {
  const table = newTable();
  const days = Array.from({ length: 30 }, (_, d) => new Date(Date.UTC(2026, 9, 1 + d)).toISOString().slice(0, 10));
  // Two appends: two files per day, 60 in all.
  for (const round of [0, 1]) {
    appendWithPython(
      table,
      days.flatMap((day) =>
        Array.from({ length: 20 }, (_, k) => ({ id: `r${round}-${k}`, version: 1, name: 'old', amount: k, op: null, date_col: day })),
      ),
    );
  }
  t.is(readTable(table).files, 60);
  const topic = await newTopic();
  const late = days[3] as string;
  const recent = days[29] as string;
  await produceMessages(BROKERS, topic, [
    message({ id: 'r0-1', version: 2, name: 'updated', amount: 1, date_col: late }), // a late record for an older day
    message({ id: 'new', version: 1, name: 'new', amount: 0, date_col: recent }),
  ]);
  const [flush] = await ingest(topic, table, uniqueName('kdr_group'), { delta: { mode: 'MERGE', merge_keys: ['id'] }, dedup: { order_by: 'version' } });
  t.log(`files scanned ${flush?.merge?.filesScanned}, skipped ${flush?.merge?.filesSkipped}, present 60`);
  t.true((flush?.merge?.filesScanned ?? 99) <= 4, `scanned ${flush?.merge?.filesScanned} of 60 files`);
  t.like(flush?.merge, { rowsUpdated: 1, rowsInserted: 1 });
  const rows = readTable(table).rows;
  t.is(rows.length, 30 * 40 + 1);
  t.deepEqual(
    rows.filter((r) => r.name !== 'old').map((r) => [r.id, r.date_col, r.name]).sort(),
    [
      ['new', recent, 'new'],
      ['r0-1', late, 'updated'],
    ],
  );
});

test('[integration] kill -9 during MERGE flushes, then restart: the table equals the expected final state', async (t) => {
  const topic = await newTopic(3);
  const table = newTable();
  const dir = tempDir();
  const configPath = writeConfig(
    dir,
    testConfig({
      topics: [topic],
      group: uniqueName('kdr_group'),
      tablePath: table,
      batchSize: 1000,
      batchInterval: 0.2,
      extra: {
        delta: { mode: 'MERGE', merge_keys: ['id'] },
        dedup: { order_by: 'version' },
        kafka: { max_poll_records: 500, properties: { 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 500 } },
      },
    }),
  );
  // 5,000 keys, each updated 20 times in version order; the key decides the Kafka partition.
  // Small flushes make runs of several seconds, so the kills land mid-run.
  const keys = 5000;
  const updates = 20;
  const recs: Rec[] = [];
  for (let v = 1; v <= updates; v += 1) {
    for (let k = 0; k < keys; k += 1) recs.push({ id: `k${k}`, version: v, name: `v${v}`, amount: k * v, date_col: k % 2 === 0 ? D1 : D2 });
  }
  await produceMessages(
    BROKERS,
    topic,
    recs.map((r) => ({ key: r.id ?? '', value: JSON.stringify(r) })),
  );

  // Kill while the 3rd flush of a run is in progress, during the 6th of the next, and at a moment
  // chosen by time alone.
  const flushStarted = /"msg":"flush started"/;
  const { killed, outputs } = await killRunsAt(
    ['--config', configPath, '--until-caught-up', '--logging.level=DEBUG'],
    [{ line: flushStarted, count: 3 }, { line: flushStarted, count: 6 }, { afterMs: 1500 }],
  );
  t.true(killed >= 2, `at least two runs were killed mid-run (${killed}):\n${outputs.join('\n')}`);
  const final = runCli(['--config', configPath, '--until-caught-up']);
  t.is(final.status, 0, final.stderr);
  const expected = Array.from({ length: keys }, (_, k) => ({
    id: `k${k}`,
    version: updates,
    name: `v${updates}`,
    amount: k * updates,
    date_col: k % 2 === 0 ? D1 : D2,
  }));
  t.deepEqual(sortRows(readTable(table).rows), full(expected));
});
