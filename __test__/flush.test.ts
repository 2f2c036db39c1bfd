/**
 * The flusher against a real native stage and a real table (no Kafka): flushes asked for at
 * once, from several callers, while batches keep arriving, commit one at a time and in order,
 * and the table holds every row exactly once.
 */
import test from 'ava';
import { join } from 'node:path';
import type { FlushSummary } from '../ts/pipeline/flush.js';
import { EVENT_COLUMNS, createTableWithPython, readTable, txnVersions } from './helpers/delta.js';
import { tempDir } from './helpers/env.js';
import { openStage, pack, range, testFlusher } from './helpers/stage.js';

/** `count` events of a partition from offset `from`, ids `p<partition>-<offset>`. */
const batch = (partition: number, from: number, count: number) => pack(range(partition, from, from + count - 1));

test('flushes asked for at once by several callers while batches arrive commit one at a time, in order, each row once', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  // Every append spills (the spill files of each flush are released after its commit).
  const { target, stage } = await openStage(table, {});
  stage.assigned([0, 1].map((partition) => ({ topicIndex: 0, partition, nextOffset: 0 })));
  const summaries: FlushSummary[] = [];
  const flusher = await testFlusher(table, target, stage, 'flush-test', (s) => summaries.push(s));
  const asked: Array<Promise<FlushSummary | undefined>> = [];
  const rounds = 25;
  const perBatch = 40;
  for (let round = 0; round < rounds; round += 1) {
    await stage.append(batch(round % 2, Math.floor(round / 2) * perBatch, perBatch));
    // A library user, the schedule and a revoke, all at once.
    asked.push(flusher.flush(), flusher.flush());
    flusher.requestFlush();
    if (round % 5 === 0) await Promise.all(asked);
  }
  await Promise.all(asked);
  await flusher.settle();
  const versions = summaries.map((s) => s.version).filter((v): v is number => v !== undefined);
  t.deepEqual(versions, [...versions].sort((a, b) => a - b), 'commits in the order they were asked for');
  t.is(new Set(versions).size, versions.length);
  const expected: string[] = [];
  for (let round = 0; round < rounds; round += 1) {
    for (let i = 0; i < perBatch; i += 1) expected.push(`p${round % 2}-${Math.floor(round / 2) * perBatch + i}`);
  }
  const rows = readTable(table).rows.map((r) => String(r.id));
  t.deepEqual(rows.sort(), expected.sort());
  t.deepEqual(txnVersions(table, ['flush-test:0', 'flush-test:1']), { 'flush-test:0': 12 * perBatch + perBatch - 1, 'flush-test:1': 11 * perBatch + perBatch - 1 });
  t.is(stage.spilledBytes, 0, 'every spill file was released');
});
