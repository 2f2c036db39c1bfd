/**
 * The decode cost of `transform` (issue #14), without a broker:
 * `node dist-bench/transform-case.js <dir> <none|filter|filter+columns> <batches>` prints one
 * JSON line.
 *
 * Stages `<batches>` batches of {@link BATCH} messages (one in ten a heartbeat) into a fresh
 * table: as they are (`none`), with `transform.filter: event_type <> 'heartbeat'` (`filter`), and
 * with that filter and two derived columns, `upper(region)` and `CAST(amount * 100 AS BIGINT)`
 * (`filter+columns`); and with no transform, each record wrapped in a Debezium change event
 * (`debezium`: `kafka.format: debezium`, the envelope unwrapped before the decode). Reported: the
 * median ms per batch (the first, warming up, left out) and the messages per second it makes.
 */
import type { StageOptions } from '../dist/index.js';
import { BASE_COLUMNS, openBenchStage, packPartition0 } from './pack.js';

const BATCH = 10_000;
const DAY = '2026-11-23';
const COLUMNS = [
  ...BASE_COLUMNS,
  { name: 'event_type', dataType: 'string', nullable: true },
  { name: 'region', dataType: 'string', nullable: true },
  { name: 'region_code', dataType: 'string', nullable: true },
  { name: 'amount_cents', dataType: 'long', nullable: true },
];
const TRANSFORMS: Record<string, StageOptions['transform']> = {
  none: undefined,
  debezium: undefined,
  filter: { filter: "event_type <> 'heartbeat'" },
  'filter+columns': {
    filter: "event_type <> 'heartbeat'",
    columns: [
      { name: 'region_code', expression: 'upper(region)' },
      { name: 'amount_cents', expression: 'CAST(amount * 100 AS BIGINT)' },
    ],
  },
};

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function main(): Promise<void> {
  const [dir, mode, batchesArg] = process.argv.slice(2);
  const batches = Number(batchesArg);
  if (!dir || mode === undefined || !(mode in TRANSFORMS) || !Number.isInteger(batches) || batches < 2) {
    throw new Error(`usage: transform-case.js <dir> <${Object.keys(TRANSFORMS).join('|')}> <batches >= 2>`);
  }
  const debezium = mode === 'debezium';
  const stage = await openBenchStage(dir, COLUMNS, { transform: TRANSFORMS[mode], format: debezium ? 'debezium' : 'json' });
  // A Postgres connector's envelope around the same record, as a create.
  const source = { version: '2.7.3.Final', connector: 'postgresql', name: 'shop', ts_ms: 1_763_900_000_000, snapshot: 'false', db: 'shop', schema: 'public', table: 'events', lsn: 123_456 };
  const wrap = (record: object) => (debezium ? { before: null, after: record, source, op: 'c', ts_ms: 1_763_900_000_123, transaction: null } : record);
  const ms: number[] = [];
  let filtered = 0;
  for (let b = 0; b < batches; b += 1) {
    const payloads = Array.from({ length: BATCH }, (_, i) => {
      const n = b * BATCH + i;
      const type = n % 10 === 0 ? 'heartbeat' : 'click';
      return JSON.stringify(wrap({ id: `e${n}`, seq: n, amount: n / 4, note: n % 3 === 0 ? null : 'a note', event_type: type, region: n % 2 === 0 ? 'eu' : 'us', date_col: DAY }));
    });
    const batch = packPartition0(payloads, b * BATCH);
    const started = performance.now();
    const appended = await stage.append(batch);
    ms.push(performance.now() - started);
    filtered += appended.filtered.reduce((a, c) => a + c, 0);
    if (appended.rejected.length > 0) throw new Error(`rejected ${appended.rejected.length}: ${appended.rejected[0]?.reason}`);
  }
  const perBatch = median(ms.slice(1));
  process.stdout.write(
    `${JSON.stringify({
      case: `transform-${mode}`,
      seconds: ms.reduce((a, b) => a + b, 0) / 1000,
      mode,
      batch: BATCH,
      batches,
      msPerBatch: perBatch,
      messagesPerSecond: BATCH / (perBatch / 1000),
      filtered,
      stagedRows: stage.stagedRows,
    })}\n`,
  );
}

await main();
