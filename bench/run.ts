/**
 * `npm run bench`: the measurements behind BENCHMARKS.md. Each case runs in its own process;
 * the results are printed as a table and written to bench/results/<time>.json.
 *
 * Cases: dedup of 1M and 10M rows (20% duplicate keys) by the native core on 1 and 2 threads and
 * by a plain TypeScript Map. `BENCH_SIZES=1000000` limits the sizes; each case runs
 * `BENCH_REPEATS` times (default 3) and the median is reported with the min and max.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

interface Result {
  case: string;
  impl: string;
  threads: number;
  rows: number;
  kept: number;
  seconds: number;
  rowsPerSecond: number;
  /** Native only: the whole `dedup()` call, Arrow IPC read and write included. */
  callSeconds?: number;
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

function runCase(script: string, args: string[]): Result {
  const out = execFileSync(process.execPath, ['--max-old-space-size=12288', '--import', 'tsx', here(script), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  const line = out.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Result;
}

const sizes = (process.env.BENCH_SIZES ?? '1000000,10000000').split(',').map(Number);
const repeats = Math.max(1, Number(process.env.BENCH_REPEATS ?? 3));

/** The run with the median time, annotated with the spread of all runs. */
function median(runs: Result[]): Result & { minSeconds: number; maxSeconds: number; runs: number } {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  const mid = sorted[Math.floor(sorted.length / 2)] as Result;
  const minSeconds = sorted[0]?.seconds ?? mid.seconds;
  const maxSeconds = sorted[sorted.length - 1]?.seconds ?? mid.seconds;
  return { ...mid, minSeconds, maxSeconds, runs: runs.length };
}

const results: Array<ReturnType<typeof median>> = [];
for (const rows of sizes) {
  for (const [impl, threads] of [
    ['typescript', '1'],
    ['native', '1'],
    ['native', '2'],
  ] as const) {
    const runs: Result[] = [];
    for (let i = 0; i < repeats; i += 1) {
      const result = runCase('./dedup-case.ts', [String(rows), impl, threads]);
      runs.push(result);
      process.stderr.write(`${result.case} ${result.impl} ×${result.threads} ${rows} rows: ${result.seconds.toFixed(3)} s\n`);
    }
    results.push(median(runs));
  }
}

const rate = (r: Result) => `${(r.rowsPerSecond / 1e6).toFixed(2)} M rows/s`;
console.log(`\n| case | rows | implementation | threads | kept rows | seconds (median of ${repeats}) | min–max | throughput | dedup() call incl. IPC |`);
console.log('|---|---:|---|---:|---:|---:|---:|---:|---:|');
for (const r of results) {
  const call = r.callSeconds === undefined ? '' : `${r.callSeconds.toFixed(3)} s`;
  const spread = `${r.minSeconds.toFixed(3)}–${r.maxSeconds.toFixed(3)}`;
  const cells = [r.case, r.rows.toLocaleString('en'), r.impl, r.threads, r.kept.toLocaleString('en'), r.seconds.toFixed(3), spread, rate(r), call];
  console.log(`| ${cells.join(' | ')} |`);
}
for (const rows of sizes) {
  const of = (impl: string, threads: number) => results.find((r) => r.rows === rows && r.impl === impl && r.threads === threads);
  const ts = of('typescript', 1);
  const one = of('native', 1);
  const two = of('native', 2);
  if (ts && one && two) {
    console.log(
      `\n${rows.toLocaleString('en')} rows: native ×1 is ${(ts.seconds / one.seconds).toFixed(1)}× TypeScript, ` +
        `×2 is ${(ts.seconds / two.seconds).toFixed(1)}×; 2 threads speed up ${(one.seconds / two.seconds).toFixed(2)}×`,
    );
  }
}

const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
mkdirSync(here('./results'), { recursive: true });
const file = here(`./results/${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ machine, results }, null, 2));
console.log(`\nresults: ${file}`);
