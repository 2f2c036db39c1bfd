/**
 * The native core through the library API, without Kafka: decode, stage, commit with positions,
 * and the exactly-once bookkeeping, read back with Python's deltalake.
 */
import test from 'ava';
import { join } from 'node:path';
import { DeltaTarget, TableNotFoundError, nativeVersions } from '../ts/index.js';
import type { MessageBatch } from '../ts/stage.js';
import { EVENT_COLUMNS, createTableWithPython, readTable, txnVersions } from './helpers/delta.js';
import { tempDir } from './helpers/env.js';

function batch(payloads: string[], partition: number, firstOffset: number): MessageBatch {
  const bytes = payloads.map((p) => Buffer.from(p));
  let at = 0;
  return {
    payloads: Buffer.concat(bytes),
    payloadEnds: Uint32Array.from(bytes, (b) => (at += b.length)),
    topicIndexes: new Uint16Array(payloads.length),
    partitions: new Int32Array(payloads.length).fill(partition),
    offsets: Float64Array.from(payloads, (_, i) => firstOffset + i),
    timestamps: new Float64Array(payloads.length).fill(Date.UTC(2026, 10, 23)),
  };
}

const event = (seq: number, day: string) => JSON.stringify({ id: `e${seq}`, seq, amount: seq, note: null, date_col: day });

async function openStaged(table: string) {
  const target = await DeltaTarget.open(table);
  const stage = target.createStage({
    partitionColumn: 'date_col',
    daySource: 'column',
    timezone: 'UTC',
    rejectUnknownFields: false,
    topics: ['events'],
  });
  // The stage owns these partitions, from wherever Kafka would start them.
  stage.assigned([0, 1, 2, 3].map((partition) => ({ topicIndex: 0, partition })));
  return { target, stage };
}

test('the native core reports its library versions', (t) => {
  const v = nativeVersions();
  t.regex(v.core, /^\d+\.\d+\.\d+$/);
  t.regex(v.deltalake, /^1\.\d+\.\d+$/);
  t.regex(v.arrow, /^\d+\.\d+\.\d+$/);
});

test('opening a missing table throws TableNotFoundError', async (t) => {
  await t.throwsAsync(DeltaTarget.open(join(tempDir(), 'nothing-here')), { instanceOf: TableNotFoundError });
});

test('a segment commits rows and positions in one version; committing it again writes nothing', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const { target, stage } = await openStaged(table);
  const appended = await stage.append(batch([event(1, '2026-11-22'), '{"oops"', event(2, '2026-11-23')], 0, 10));
  t.is(appended.staged, 2);
  t.deepEqual(
    appended.rejected.map((r) => [r.partition, r.offset, r.reason]),
    [[0, 11, 'malformed_json']],
  );
  const segment = stage.take();
  t.deepEqual(segment.days, ['2026-11-22', '2026-11-23']);
  t.deepEqual(segment.positions(), [{ topicIndex: 0, partition: 0, lastOffset: 12 }]);
  const appIds = [{ topicIndex: 0, partition: 0, appId: 'test:events:0' }];

  const first = await target.commitRows(segment, appIds, { maxAttempts: 3 });
  t.is(first.rowsWritten, 2);
  t.is(first.version, 1);
  const read = readTable(table);
  t.deepEqual(
    read.rows.map((r) => [r.id, r.date_col]).sort(),
    [
      ['e1', '2026-11-22'],
      ['e2', '2026-11-23'],
    ],
  );
  t.deepEqual(txnVersions(table, ['test:events:0']), { 'test:events:0': 12 });

  // A replay (a crash between the Delta commit and the Kafka commit) finds everything written.
  const again = await target.commitRows(segment, appIds, { maxAttempts: 3 });
  t.is(again.version ?? undefined, undefined, "nothing new: no commit");
  t.is(again.rowsSkipped, 2);
  t.is(readTable(table).version, 1);
  t.deepEqual(await target.txnVersions(['test:events:0', 'other']), new Map([['test:events:0', 12]]));
});

test('rows at or below the recorded position are dropped; the rest commit', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const { target, stage } = await openStaged(table);
  const appIds = [{ topicIndex: 0, partition: 3, appId: 'p3' }];
  await stage.append(batch([event(1, '2026-11-23'), event(2, '2026-11-23')], 3, 0));
  await target.commitRows(stage.take(), appIds, { maxAttempts: 3 });
  // The same messages again plus new ones, as after a crash before the Kafka commit.
  await stage.append(batch([event(1, '2026-11-23'), event(2, '2026-11-23'), event(3, '2026-11-23')], 3, 0));
  const result = await target.commitRows(stage.take(), appIds, { maxAttempts: 3 });
  t.is(result.rowsWritten, 1);
  t.is(result.rowsSkipped, 2);
  t.deepEqual(readTable(table).rows.map((r) => r.id).sort(), ['e1', 'e2', 'e3']);
});

test('a segment of only dead letters still moves the position', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const { target, stage } = await openStaged(table);
  await stage.append(batch(['nope', '{"id": 1}'], 2, 40));
  const segment = stage.take();
  t.is(segment.rows, 0);
  t.is(segment.deadLetters, 2);
  const dlq = await DeltaTarget.openDeadLetters(`${table}__dead_letters`);
  const appIds = [{ topicIndex: 0, partition: 2, appId: 'p2' }];
  t.is((await dlq.commitDeadLetters(segment, appIds, 3)).rowsWritten, 2);
  const result = await target.commitRows(segment, appIds, { maxAttempts: 3 });
  t.is(result.rowsWritten, 0);
  t.is(typeof result.version, 'number');
  t.deepEqual(txnVersions(table, ['p2']), { p2: 41 });
  const dead = readTable(`${table}__dead_letters`).rows;
  t.deepEqual(dead.map((d) => [d.offset, d.reason]).sort(), [
    [40, 'malformed_json'],
    [41, 'type_mismatch'],
  ]);
});

test('two writers racing to commit the same offsets: one commits, the other writes nothing', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const appIds = [{ topicIndex: 0, partition: 0, appId: 'race:events:0' }];
  const payloads = Array.from({ length: 500 }, (_, i) => event(i, i % 2 === 0 ? '2026-11-22' : '2026-11-23'));
  // Two instances (think: a zombie after a rebalance) staged the same messages.
  const writers = await Promise.all([openStaged(table), openStaged(table)]);
  const segments = await Promise.all(
    writers.map(async ({ stage }) => {
      await stage.append(batch(payloads, 0, 0));
      return stage.take();
    }),
  );
  const results = await Promise.all(writers.map(({ target }, i) => target.commitRows(segments[i]!, appIds, { maxAttempts: 5 })));
  t.deepEqual(results.map((r) => r.rowsWritten).sort((a, b) => a - b), [0, 500], JSON.stringify(results));
  const read = readTable(table);
  t.is(read.rows.length, 500);
  t.is(new Set(read.rows.map((r) => r.id)).size, 500);
  t.is(txnVersions(table, ['race:events:0'])['race:events:0'], 499);
});

test('two writers racing on different partitions both commit (the log takes both appends)', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const writers = await Promise.all([openStaged(table), openStaged(table)]);
  const results = await Promise.all(
    writers.map(async ({ target, stage }, p) => {
      await stage.append(batch(Array.from({ length: 300 }, (_, i) => event(p * 1000 + i, '2026-11-23')), p, 0));
      return target.commitRows(stage.take(), [{ topicIndex: 0, partition: p, appId: `race:events:${p}` }], { maxAttempts: 5 });
    }),
  );
  t.deepEqual(results.map((r) => r.rowsWritten), [300, 300]);
  const read = readTable(table);
  t.is(read.rows.length, 600);
  t.deepEqual(txnVersions(table, ['race:events:0', 'race:events:1']), { 'race:events:0': 299, 'race:events:1': 299 });
  t.log(`attempts: ${results.map((r) => r.attempts).join(', ')}`);
});
