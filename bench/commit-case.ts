/**
 * Commit overhead by the number of topic-partitions (issue #13), without a broker:
 * `node dist-bench/commit-case.js <dir> <partitions> <flushes>` prints one JSON line (a fresh
 * table under `<dir>` each run).
 *
 * Every flush stages {@link ROWS_PER_FLUSH} rows of one day spread evenly over `<partitions>`
 * partitions of one topic and commits them with one txn action per partition, as the pipeline
 * does; the rows, and so the Parquet written, are the same at every partition count, so what
 * grows with the count is the commit's own work (reading and writing the txn versions). The
 * first {@link WARMUP} flushes are left out of the medians.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { DeltaTarget, createTable, type MessageBatch } from '../dist/index.js';

const ROWS_PER_FLUSH = 3_000;
const WARMUP = 3;
const DAY = '2026-11-23';
const COLUMNS = [
  { name: 'id', dataType: 'string', nullable: false },
  { name: 'seq', dataType: 'long', nullable: true },
  { name: 'date_col', dataType: 'date', nullable: false },
];

/** One flush's messages, round-robin over the partitions, packed as `ts/kafka/packer.ts` packs them. */
function flushBatch(partitions: number, flush: number, nextOffsets: number[]): MessageBatch {
  const bytes: Buffer[] = [];
  const parts = new Int32Array(ROWS_PER_FLUSH);
  const offsets = new Float64Array(ROWS_PER_FLUSH);
  for (let i = 0; i < ROWS_PER_FLUSH; i += 1) {
    const partition = i % partitions;
    const offset = nextOffsets[partition] ?? 0;
    nextOffsets[partition] = offset + 1;
    parts[i] = partition;
    offsets[i] = offset;
    bytes.push(Buffer.from(JSON.stringify({ id: `p${partition}-${offset}`, seq: flush, date_col: DAY })));
  }
  let at = 0;
  return {
    payloads: Buffer.concat(bytes),
    payloadEnds: Uint32Array.from(bytes, (b) => (at += b.length)),
    topicIndexes: new Uint16Array(ROWS_PER_FLUSH),
    partitions: parts,
    offsets,
    timestamps: new Float64Array(ROWS_PER_FLUSH).fill(Date.UTC(2026, 10, 23)),
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function main(): Promise<void> {
  const [dir, partitionsArg, flushesArg] = process.argv.slice(2);
  const partitions = Number(partitionsArg);
  const flushes = Number(flushesArg);
  if (!dir || !Number.isInteger(partitions) || !Number.isInteger(flushes) || flushes <= WARMUP) {
    throw new Error(`usage: commit-case.js <dir> <partitions> <flushes > ${WARMUP}>`);
  }
  const table = join(mkdtempSync(join(dir, 'run-')), 'table');
  await createTable(table, COLUMNS, ['date_col']);
  const target = await DeltaTarget.open(table);
  const stage = target.createStage({ partitionColumn: 'date_col', daySource: 'column', timezone: 'UTC', rejectUnknownFields: false, topics: ['bench'] });
  const ids = Array.from({ length: partitions }, (_, p) => p);
  stage.assigned(ids.map((partition) => ({ topicIndex: 0, partition, nextOffset: 0 })));
  const appIds = ids.map((partition) => ({ topicIndex: 0, partition, appId: `kdr-bench-commit-bench-${partition}` }));
  const nextOffsets = ids.map(() => 0);
  const commitMs: number[] = [];
  const txnReadMs: number[] = [];
  let rows = 0;
  for (let flush = 0; flush < flushes; flush += 1) {
    const appended = await stage.append(flushBatch(partitions, flush, nextOffsets));
    if (appended.rejected.length > 0) throw new Error(`rejected ${appended.rejected.length} rows: ${appended.rejected[0]?.reason}`);
    const segment = stage.take();
    const started = performance.now();
    rows += (await target.commitRows(segment, appIds, { maxAttempts: 3 })).rowsWritten;
    const committed = performance.now();
    await segment.release();
    const versions = await target.txnVersions(appIds.map((a) => a.appId));
    const read = performance.now();
    if (versions.size !== partitions) throw new Error(`read ${versions.size} of ${partitions} txn versions`);
    if (flush >= WARMUP) {
      commitMs.push(committed - started);
      txnReadMs.push(read - committed);
    }
  }
  const flushMs = median(commitMs);
  process.stdout.write(
    `${JSON.stringify({
      case: `commit-${partitions}`,
      seconds: flushMs / 1000,
      partitions,
      flushes,
      rows,
      rowsPerFlush: ROWS_PER_FLUSH,
      flushMs,
      txnReadMs: median(txnReadMs),
      version: await target.refresh(),
    })}\n`,
  );
}

await main();
