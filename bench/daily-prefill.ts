/**
 * Pre-fills the MERGE target of the daily benchmark, in its own process so that the measured
 * process's peak RSS is the ingest's alone:
 * `node dist-bench/daily-prefill.js <table> <distinct>` prints one JSON line.
 *
 * Writes {@link PREFILL_DAYS} days of {@link PREFILL_ROWS_PER_DAY} rows through the library
 * (a stage fed packed messages as the consumer packs them, then `commitRows`), one commit per
 * day, as a daily flush would have left the table. The positions go to a topic of its own
 * (`prefill`), so they never touch the measured pipeline's.
 */
import { DeltaTarget } from '../dist/index.js';
import { packPartition0 } from './pack.js';
import { BENCH_DAYS_COLUMN } from './data-set.js';
import { PREFILL_ROWS_PER_DAY, prefillDays, prefillPayload } from './daily-data.js';

async function main(): Promise<void> {
  const [table, distinctArg] = process.argv.slice(2);
  const distinct = Number(distinctArg);
  if (!table || !Number.isInteger(distinct)) throw new Error('usage: daily-prefill.ts <table> <distinct>');
  const started = performance.now();
  const target = await DeltaTarget.open(table);
  const stage = target.createStage({ partitionColumn: BENCH_DAYS_COLUMN, daySource: 'column', timezone: 'UTC', rejectUnknownFields: false, topics: ['prefill'] });
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  const appIds = [{ topicIndex: 0, partition: 0, appId: 'kdr-bench-prefill:0' }];
  let offset = 0;
  let rows = 0;
  for (const day of prefillDays()) {
    const payloads = Array.from({ length: PREFILL_ROWS_PER_DAY }, (_, j) => prefillPayload(day, j, distinct));
    const appended = await stage.append(packPartition0(payloads, offset));
    if (appended.rejected.length > 0) throw new Error(`pre-fill rejected ${appended.rejected.length} rows: ${appended.rejected[0]?.reason}`);
    offset += payloads.length;
    rows += (await target.commitRows(stage.take(), appIds, { maxAttempts: 3 })).rowsWritten;
  }
  process.stdout.write(`${JSON.stringify({ rows, seconds: (performance.now() - started) / 1000 })}\n`);
}

await main();
