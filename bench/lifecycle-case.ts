/**
 * A table kept for a month (issue #13), without a broker:
 * `node dist-bench/lifecycle-case.js <dir> <days> <files per day>` prints one JSON line.
 *
 * Builds a table of `<days>` days with `<files per day>` small files each, as a flush a minute
 * leaves it: every commit appends {@link ROWS_PER_FILE} rows to each day (one file per day).
 * Then measures, before and after compacting every day (`optimizeDay`, one commit each): the
 * snapshot load (`DeltaTarget.open`, median of {@link OPENS}) and a MERGE of {@link MERGE_ROWS}
 * rows into one day (half of them updating rows of that day).
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { DeltaTarget, createTable, type Stage } from '../dist/index.js';
import { packPartition0 } from './pack.js';

const ROWS_PER_FILE = 20;
const MERGE_ROWS = 2_000;
const OPENS = 3;
const COLUMNS = [
  { name: 'id', dataType: 'string', nullable: false },
  { name: 'seq', dataType: 'long', nullable: true },
  { name: 'date_col', dataType: 'string', nullable: false },
];
const dayName = (d: number) => new Date(Date.UTC(2026, 9, 1) + d * 86_400_000).toISOString().slice(0, 10);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function openMs(table: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < OPENS; i += 1) {
    const started = performance.now();
    await DeltaTarget.open(table);
    times.push(performance.now() - started);
  }
  return median(times);
}

class Writer {
  offset = 0;
  readonly appIds = [{ topicIndex: 0, partition: 0, appId: 'kdr-bench-lifecycle-bench-0' }];
  constructor(
    readonly target: DeltaTarget,
    readonly stage: Stage,
  ) {}

  async commit(payloads: string[], merge: boolean): Promise<number> {
    const appended = await this.stage.append(packPartition0(payloads, this.offset));
    if (appended.rejected.length > 0) throw new Error(`rejected ${appended.rejected.length} rows: ${appended.rejected[0]?.reason}`);
    this.offset += payloads.length;
    const segment = this.stage.take();
    const started = performance.now();
    const options = merge
      ? { maxAttempts: 3, dedup: { keys: ['id'], strategy: 'last' as const }, merge: { keys: ['id'], partitionColumn: 'date_col' } }
      : { maxAttempts: 3 };
    await this.target.commitRows(segment, this.appIds, options);
    await segment.release();
    return performance.now() - started;
  }
}

/** A MERGE into the middle day: half the rows update that day's rows, half are new. */
function mergePayloads(day: string, round: number): string[] {
  return Array.from({ length: MERGE_ROWS }, (_, i) =>
    JSON.stringify({ id: i % 2 === 0 ? `${day}-${i / 2}` : `${day}-m${round}-${i}`, seq: -round, date_col: day }),
  );
}

async function main(): Promise<void> {
  const [dir, daysArg, filesArg] = process.argv.slice(2);
  const [days, filesPerDay] = [Number(daysArg), Number(filesArg)];
  if (!dir || !Number.isInteger(days) || !Number.isInteger(filesPerDay)) throw new Error('usage: lifecycle-case.js <dir> <days> <files per day>');
  const table = join(mkdtempSync(join(dir, 'run-')), 'table');
  await createTable(table, COLUMNS, ['date_col']);
  const opened = await DeltaTarget.open(table);
  const stage = opened.createStage({ partitionColumn: 'date_col', daySource: 'column', timezone: 'UTC', rejectUnknownFields: false, topics: ['bench'] });
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  const writer = new Writer(opened, stage);
  const buildStarted = performance.now();
  for (let f = 0; f < filesPerDay; f += 1) {
    const payloads: string[] = [];
    for (let d = 0; d < days; d += 1) {
      for (let r = 0; r < ROWS_PER_FILE; r += 1) payloads.push(JSON.stringify({ id: `${dayName(d)}-${f * ROWS_PER_FILE + r}`, seq: f, date_col: dayName(d) }));
    }
    await writer.commit(payloads, false);
  }
  const buildSeconds = (performance.now() - buildStarted) / 1000;
  const day = dayName(Math.floor(days / 2));
  const before = { openMs: await openMs(table), mergeMs: await writer.commit(mergePayloads(day, 1), true) };
  const compactStarted = performance.now();
  let filesRemoved = 0;
  for (let d = 0; d < days; d += 1) {
    filesRemoved += (await opened.optimizeDay('date_col', dayName(d), { targetSizeBytes: 128 * 2 ** 20, maxAttempts: 3 })).filesRemoved;
  }
  const compactSeconds = (performance.now() - compactStarted) / 1000;
  const after = { openMs: await openMs(table), mergeMs: await writer.commit(mergePayloads(day, 2), true) };
  const files = (await opened.dayFiles('date_col', 128 * 2 ** 20)).reduce((n, d) => n + d.files, 0);
  process.stdout.write(
    `${JSON.stringify({ case: `lifecycle-${days}x${filesPerDay}`, seconds: before.mergeMs / 1000, days, filesPerDay, buildSeconds, before, compactSeconds, filesRemoved, filesAfter: files, after, version: await opened.refresh() })}\n`,
  );
}

await main();
