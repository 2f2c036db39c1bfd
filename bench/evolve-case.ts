/**
 * The decode cost of schema evolution (issue #13), without a broker:
 * `node dist-bench/evolve-case.js <dir> <off|on> <batches>` prints one JSON line.
 *
 * Stages `<batches>` batches of {@link BATCH} messages into a fresh table, with
 * `delta.schema_evolution` off or on. From the middle batch on every message carries a field the
 * table lacks (`region`, a string, and `level`, an integer): with evolution off it is ignored;
 * on, the first such batch is decoded twice (strict, then with the columns added) and the
 * following ones read `level` once more as a float while it is pending (no commit in between).
 * Reported: the median ms per batch before the field, the ms of the batch bringing it, and the
 * median after.
 */
import { BASE_COLUMNS, openBenchStage, packPartition0 } from './pack.js';

const BATCH = 10_000;
const DAY = '2026-11-23';

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function main(): Promise<void> {
  const [dir, mode, batchesArg] = process.argv.slice(2);
  const batches = Number(batchesArg);
  if (!dir || (mode !== 'off' && mode !== 'on') || !Number.isInteger(batches) || batches < 4) {
    throw new Error('usage: evolve-case.js <dir> <off|on> <batches >= 4>');
  }
  const stage = await openBenchStage(dir, BASE_COLUMNS, { addColumns: mode === 'on' });
  const arrives = Math.floor(batches / 2);
  const ms: number[] = [];
  for (let b = 0; b < batches; b += 1) {
    const payloads = Array.from({ length: BATCH }, (_, i) => {
      const n = b * BATCH + i;
      const extra = b >= arrives ? { region: n % 2 === 0 ? 'eu' : 'us', level: n % 7 } : {};
      return JSON.stringify({ id: `e${n}`, seq: n, amount: n / 4, note: n % 3 === 0 ? null : 'a note', date_col: DAY, ...extra });
    });
    const batch = packPartition0(payloads, b * BATCH);
    const started = performance.now();
    const appended = await stage.append(batch);
    ms.push(performance.now() - started);
    if (appended.rejected.length > 0) throw new Error(`rejected ${appended.rejected.length}: ${appended.rejected[0]?.reason}`);
  }
  const before = median(ms.slice(1, arrives));
  const after = median(ms.slice(arrives + 1));
  process.stdout.write(
    `${JSON.stringify({
      case: `evolve-${mode}`,
      seconds: ms.reduce((a, b) => a + b, 0) / 1000,
      mode,
      batch: BATCH,
      batches,
      beforeMs: before,
      arrivalMs: ms[arrives] ?? 0,
      afterMs: after,
      stagedRows: stage.stagedRows,
    })}\n`,
  );
}

await main();
