/**
 * One dedup measurement in its own process (the native pool's size is fixed at first use):
 * `node dist-bench/dedup-case.js <rows> <native|typescript> [threads]` prints one JSON line.
 *
 * Data: `rows` records (id, version, name, amount); 80% distinct ids, 20% repeats of earlier ids,
 * in shuffled order. Both implementations keep the greatest version per id (`last`).
 */
import { Float64, Int32, Table, Utf8, tableFromIPC, tableToIPC, vectorFromArray } from 'apache-arrow';
import { configureThreads, dedup, nativeStepTotals } from '../dist/index.js';
import { seededRandom } from './data-set.js';

interface Row {
  id: string;
  version: number;
  name: string;
  amount: number;
}

export function makeRows(n: number): Row[] {
  const rand = seededRandom(42);
  const distinct = Math.floor(n * 0.8);
  const rows: Row[] = new Array<Row>(n);
  for (let r = 0; r < n; r += 1) {
    const key = r < distinct ? r : Math.floor(rand() * distinct);
    rows[r] = { id: `user-${key}`, version: Math.floor(rand() * 1000), name: `name-${r % 9973}-payload`, amount: r / 7 };
  }
  for (let r = n - 1; r > 0; r -= 1) {
    const k = Math.floor(rand() * (r + 1));
    const swap = rows[r] as Row;
    rows[r] = rows[k] as Row;
    rows[k] = swap;
  }
  return rows;
}

function typescriptDedup(rows: readonly Row[]): Row[] {
  const best = new Map<string, number>();
  for (let r = 0; r < rows.length; r += 1) {
    const row = rows[r] as Row;
    const seen = best.get(row.id);
    if (seen === undefined || (rows[seen] as Row).version <= row.version) best.set(row.id, r);
  }
  const kept = [...best.values()].sort((a, b) => a - b);
  return kept.map((r) => rows[r] as Row);
}

async function main(): Promise<void> {
  const [rowsArg, impl, threadsArg] = process.argv.slice(2);
  const n = Number(rowsArg);
  if (!Number.isInteger(n) || n <= 0 || (impl !== 'native' && impl !== 'typescript')) {
    throw new Error('usage: dedup-case.ts <rows> <native|typescript> [threads]');
  }
  const rows = makeRows(n);
  let seconds: number;
  let kept: number;
  if (impl === 'typescript') {
    const started = performance.now();
    kept = typescriptDedup(rows).length;
    seconds = (performance.now() - started) / 1000;
  } else {
    const threads = configureThreads(Number(threadsArg ?? 0));
    const ipc = tableToIPC(
      new Table({
        id: vectorFromArray(rows.map((r) => r.id), new Utf8()),
        version: vectorFromArray(rows.map((r) => r.version), new Int32()),
        name: vectorFromArray(rows.map((r) => r.name), new Utf8()),
        amount: vectorFromArray(rows.map((r) => r.amount), new Float64()),
      }),
      'stream',
    );
    rows.length = 0;
    // Timed: the library call as an embedder makes it, IPC read and write included; the native
    // step counter gives the consolidation alone (what a flush spends).
    const stepBefore = nativeStepTotals().dedup.seconds;
    const started = performance.now();
    const out = await dedup(ipc, { keys: ['id'], orderBy: 'version' });
    const callSeconds = (performance.now() - started) / 1000;
    seconds = nativeStepTotals().dedup.seconds - stepBefore;
    kept = tableFromIPC(out).numRows;
    const result = { case: 'dedup', impl, threads, rows: n, kept, seconds, rowsPerSecond: n / seconds, callSeconds };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  process.stdout.write(`${JSON.stringify({ case: 'dedup', impl, threads: 1, rows: n, kept, seconds, rowsPerSecond: n / seconds })}\n`);
}

await main();
