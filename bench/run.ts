/**
 * `npm run bench`: the measurements behind BENCHMARKS.md. It builds the package (dist/) and
 * compiles bench/ to dist-bench/ first, and runs from there: each case is plain JavaScript on
 * the package's build, as a user's process is (through tsx's loader, whose thread and
 * transpiler hold ~33 MiB, every peak RSS read higher than the product's). Each case runs in its own process,
 * `BENCH_REPEATS` times (default 3); the median is reported with the min and max. Results are
 * printed as tables and written to bench/results/<time>.json.
 *
 * - dedup: 1M and 10M rows (20% duplicate keys) consolidated by the native core on 1 and 2
 *   threads and by a plain TypeScript Map (`BENCH_SIZES` limits the sizes).
 * - e2e: against the local broker (started if needed), a data set of `BENCH_EVENTS` (default 1M)
 *   events of ~300 B plus 5% repeats: raw consumption, then the pipeline into a fresh table with
 *   INSERT and with MERGE; messages/s, MB/s, peak RSS, CPU seconds per 1 M messages (the whole
 *   process, every thread) and the native steps' share.
 *
 * - daily (issue #16, only when named in `BENCH_CASES`): `BENCH_EVENTS` messages of ONE day, 20%
 *   repeating an earlier event_id, all written by ONE flush: INSERT, INSERT + dedup and MERGE
 *   (into 30 pre-filled days), each with `buffer.max_memory` 64 MiB (`-capped`) and 16 GiB
 *   (`-uncapped`); `BENCH_DAILY_MODES` picks them. A mode that fails (e.g. out of memory) is
 *   recorded with its error and the others still run.
 *
 * - commit (issue #13, no broker): the commit overhead at 3, 100 and 1,000 partitions
 *   (`BENCH_COMMIT_PARTITIONS`), `BENCH_COMMIT_FLUSHES` (default 60) flushes of the same 3,000
 *   rows each into a fresh table: the median flush and the median read of every txn version.
 *
 * - lifecycle (issue #13, no broker, only when named): a table of `BENCH_LIFECYCLE_DAYS` (30)
 *   days × `BENCH_LIFECYCLE_FILES` (1,000) small files, its snapshot load and a MERGE of one
 *   day, before and after compacting every day.
 * - evolve (issue #13, no broker, only when named): decoding `BENCH_EVOLVE_BATCHES` (20) batches
 *   of 10,000 messages with `delta.schema_evolution` off and on, two new fields from the middle on.
 * - transform (issue #14, no broker, only when named): decoding `BENCH_TRANSFORM_BATCHES` (20)
 *   batches of 10,000 messages with no transform, a filter, and a filter with 2 derived columns;
 *   and the same records as Debezium change events (`kafka.format: debezium`).
 *
 * - freshness (issue #17, only when named): a producer process sends `BENCH_FRESH_RATES`
 *   (20000,50000) messages a second for `BENCH_FRESH_SECONDS` (30) while the pipeline runs with
 *   `batch_interval: 1`: the delay from each record's Kafka timestamp to the commit holding it.
 *
 * `BENCH_CASES=dedup`, `e2e`, `commit`, `lifecycle`, `evolve`, `transform`, `freshness` or `daily` runs one group; `BENCH_E2E_MODES` picks e2e modes (`append` and
 * `append-capped`: INSERT without dedup, one flush at the end, uncapped vs `buffer.max_memory`
 * 64 MiB, to compare peak RSS).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDataSet } from './data-set.js';
import { ensureDailyDataSet } from './daily-data.js';

interface Timed {
  case: string;
  seconds: number;
}

interface DedupResult extends Timed {
  impl: string;
  threads: number;
  rows: number;
  kept: number;
  rowsPerSecond: number;
  /** Native only: the whole `dedup()` call, Arrow IPC read and write included. */
  callSeconds?: number;
}

interface StepShare {
  seconds: number;
  rowsPerSecond: number;
}

interface E2eResult extends Timed {
  messages: number;
  rows: number;
  flushes: number;
  messagesPerSecond: number;
  megabytesPerSecond: number;
  peakRssMiB: number;
  cpuSeconds: number;
  cpuSecondsPerMillion: number;
  decode: StepShare;
  dedup: StepShare;
  write: StepShare;
}

interface DailyResult extends Timed {
  messages: number;
  rows: number;
  expectedRows: number;
  flushes: number;
  wallSeconds: number;
  flushSeconds: number;
  messagesPerSecond: number;
  peakRssMiB: number;
  peakRssIngestMiB: number;
  peakRssFlushMiB: number;
  spillBytes: number;
  spillGaugeBytes: number;
  prefillRows: number;
}

type Spread<T> = T & { minSeconds: number; maxSeconds: number; runs: number };

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const repeats = Math.max(1, Number(process.env.BENCH_REPEATS ?? 3));
const cases = new Set((process.env.BENCH_CASES ?? 'dedup,e2e,commit').split(','));

/**
 * `BENCH_PRELOAD`: a shared library every case process loads first (`LD_PRELOAD`), e.g. Debian's
 * libjemalloc2, to measure node-rdkafka's per-message allocations on another allocator.
 */
const preload = process.env.BENCH_PRELOAD;

function runCase<T>(script: string, args: string[]): T {
  const out = execFileSync(process.execPath, ['--max-old-space-size=12288', here(script.replace(/\.ts$/, '.js')), ...args], {
    env: preload ? { ...process.env, LD_PRELOAD: preload } : process.env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop() ?? '') as T;
}

/** Runs a case `repeats` times; returns the run with the median time and the spread. */
function repeated<T extends Timed>(label: string, script: string, args: string[]): Spread<T> {
  const runs: T[] = [];
  for (let i = 0; i < repeats; i += 1) {
    const result = runCase<T>(script, args);
    runs.push(result);
    process.stderr.write(`${label}: ${result.seconds.toFixed(3)} s\n`);
  }
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  const mid = sorted[Math.floor(sorted.length / 2)] as T;
  return { ...mid, minSeconds: sorted[0]?.seconds ?? mid.seconds, maxSeconds: sorted[sorted.length - 1]?.seconds ?? mid.seconds, runs: runs.length };
}

const table = (header: string[], rows: Array<Array<string | number>>) =>
  [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const spread = (r: Spread<Timed>) => `${r.minSeconds.toFixed(3)}–${r.maxSeconds.toFixed(3)}`;

const dedupResults: Array<Spread<DedupResult>> = [];
if (cases.has('dedup')) {
  const sizes = (process.env.BENCH_SIZES ?? '1000000,10000000').split(',').map(Number);
  for (const rows of sizes) {
    for (const [impl, threads] of [
      ['typescript', '1'],
      ['native', '1'],
      ['native', '2'],
    ] as const) {
      dedupResults.push(repeated<DedupResult>(`dedup ${impl} ×${threads} ${rows} rows`, './dedup-case.ts', [String(rows), impl, threads]));
    }
  }
  console.log(`\nDedup (median of ${repeats}):\n`);
  console.log(
    table(
      ['rows', 'implementation', 'threads', 'kept rows', 'seconds', 'min–max', 'throughput', 'dedup() call incl. IPC'],
      dedupResults.map((r) => [
        r.rows.toLocaleString('en'),
        r.impl,
        r.threads,
        r.kept.toLocaleString('en'),
        r.seconds.toFixed(3),
        spread(r),
        `${(r.rowsPerSecond / 1e6).toFixed(2)} M rows/s`,
        r.callSeconds === undefined ? '' : `${r.callSeconds.toFixed(3)} s`,
      ]),
    ),
  );
  for (const rows of sizes) {
    const of = (impl: string, threads: number) => dedupResults.find((r) => r.rows === rows && r.impl === impl && r.threads === threads);
    const [ts, one, two] = [of('typescript', 1), of('native', 1), of('native', 2)];
    if (ts && one && two) {
      console.log(
        `\n${rows.toLocaleString('en')} rows: native ×1 is ${(ts.seconds / one.seconds).toFixed(1)}× TypeScript, ` +
          `×2 is ${(ts.seconds / two.seconds).toFixed(1)}×; 2 threads speed up ${(one.seconds / two.seconds).toFixed(2)}×`,
      );
    }
  }
}

const e2eResults: Array<Spread<E2eResult>> = [];
if (cases.has('e2e')) {
  execFileSync('bash', [here('../scripts/kafka/kafka.sh'), 'up'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const brokers = `127.0.0.1:${process.env.KAFKA_PORT ?? '9092'}`;
  const events = Number(process.env.BENCH_EVENTS ?? 1_000_000);
  const { topic, messages } = await ensureDataSet(brokers, events);
  const modes = (process.env.BENCH_E2E_MODES ?? 'consume,insert,merge,append,append-capped').split(',');
  for (const mode of modes) {
    e2eResults.push(repeated<E2eResult>(`e2e ${mode} ${messages} messages`, './e2e-case.ts', [mode, topic, String(messages)]));
  }
  const share = (s: StepShare, total: number) => (s.seconds > 0 ? `${s.seconds.toFixed(2)} s (${(s.rowsPerSecond / 1e6).toFixed(2)} M/s, ${((100 * s.seconds) / total).toFixed(0)}%)` : '–');
  console.log(`\nEnd to end, ${messages.toLocaleString('en')} messages from ${topic} (median of ${repeats}):\n`);
  console.log(
    table(
      ['case', 'rows written', 'flushes', 'seconds', 'min–max', 'messages/s', 'MB/s', 'peak RSS', 'CPU s per 1 M', 'decode', 'dedup', 'write'],
      e2eResults.map((r) => [
        r.case,
        r.rows.toLocaleString('en'),
        r.flushes,
        r.seconds.toFixed(2),
        spread(r),
        Math.round(r.messagesPerSecond).toLocaleString('en'),
        r.megabytesPerSecond.toFixed(1),
        `${Math.round(r.peakRssMiB)} MiB`,
        r.cpuSecondsPerMillion.toFixed(1),
        share(r.decode, r.seconds),
        share(r.dedup, r.seconds),
        share(r.write, r.seconds),
      ]),
    ),
  );
  const consume = e2eResults.find((r) => r.case === 'e2e-consume');
  for (const r of e2eResults.filter((x) => x !== consume && consume)) {
    const cpuRatio = consume && consume.cpuSecondsPerMillion > 0 ? r.cpuSecondsPerMillion / consume.cpuSecondsPerMillion : 0;
    console.log(
      `\n${r.case}: ${((100 * r.messagesPerSecond) / (consume?.messagesPerSecond ?? 1)).toFixed(0)}% of the raw consume rate, ` +
        `${cpuRatio.toFixed(1)}x its CPU per message`,
    );
  }
}

const dailyResults: Array<Spread<DailyResult> | { case: string; error: string }> = [];
if (cases.has('daily')) {
  execFileSync('bash', [here('../scripts/kafka/kafka.sh'), 'up'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const brokers = `127.0.0.1:${process.env.KAFKA_PORT ?? '9092'}`;
  const { topic, messages } = await ensureDailyDataSet(brokers, Number(process.env.BENCH_EVENTS ?? 1_000_000));
  const modes = (process.env.BENCH_DAILY_MODES ?? 'insert-uncapped,insert-capped,dedup-uncapped,dedup-capped,merge-uncapped,merge-capped').split(',');
  for (const mode of modes) {
    try {
      dailyResults.push(repeated<DailyResult>(`daily ${mode} ${messages} messages`, './daily-case.ts', [mode, topic, String(messages)]));
    } catch (error) {
      // Out of memory is a result here, not a reason to lose the other modes' figures.
      const e = error as { status?: number | null; signal?: string | null; message?: string };
      dailyResults.push({ case: `daily-${mode}`, error: e.signal ? `killed by ${e.signal}` : `exit ${e.status ?? '?'}: ${(e.message ?? '').split('\n')[0]}` });
    }
  }
  const mib = (mebibytes: number) => `${Math.round(mebibytes)} MiB`;
  console.log(`\nDaily flush, ${messages.toLocaleString('en')} messages of one day from ${topic}, one flush (median of ${repeats}):\n`);
  console.log(
    table(
      ['case', 'rows in table', 'expected', 'flushes', 'seconds', 'flush s', 'messages/s', 'peak RSS', 'RSS staging', 'RSS flush', 'spill peak'],
      dailyResults.map((r) =>
        'error' in r
          ? [r.case, `failed: ${r.error}`, '', '', '', '', '', '', '', '', '']
          : [
              r.case,
              r.rows.toLocaleString('en'),
              r.expectedRows.toLocaleString('en'),
              r.flushes,
              r.seconds.toFixed(2),
              r.flushSeconds.toFixed(2),
              Math.round(r.messagesPerSecond).toLocaleString('en'),
              mib(r.peakRssMiB),
              mib(r.peakRssIngestMiB),
              mib(r.peakRssFlushMiB),
              mib(Math.max(r.spillBytes, r.spillGaugeBytes) / 2 ** 20),
            ],
      ),
    ),
  );
}

interface CommitResult extends Timed {
  partitions: number;
  flushes: number;
  rowsPerFlush: number;
  flushMs: number;
  txnReadMs: number;
}

const commitResults: Array<Spread<CommitResult>> = [];
if (cases.has('commit')) {
  const counts = (process.env.BENCH_COMMIT_PARTITIONS ?? '3,100,1000').split(',').map(Number);
  const flushes = Number(process.env.BENCH_COMMIT_FLUSHES ?? 60);
  for (const partitions of counts) {
    const dir = mkdtempSync(join(tmpdir(), 'kdr-bench-commit-'));
    try {
      commitResults.push(repeated<CommitResult>(`commit ${partitions} partitions`, './commit-case.ts', [dir, String(partitions), String(flushes)]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const base = commitResults[0];
  console.log(`\nCommit overhead by partitions, ${flushes} flushes of ${base?.rowsPerFlush ?? 0} rows each (median flush of the median run of ${repeats}):\n`);
  console.log(
    table(
      ['partitions', 'flush ms', 'min–max s', 'txn versions read ms', `× ${base?.partitions ?? ''} partitions`],
      commitResults.map((r) => [r.partitions, r.flushMs.toFixed(1), spread(r), r.txnReadMs.toFixed(2), (r.flushMs / (base?.flushMs ?? r.flushMs)).toFixed(2)]),
    ),
  );
}

interface EvolveResult extends Timed {
  mode: string;
  batch: number;
  batches: number;
  beforeMs: number;
  arrivalMs: number;
  afterMs: number;
}

const evolveResults: Array<Spread<EvolveResult>> = [];
if (cases.has('evolve')) {
  const batches = Number(process.env.BENCH_EVOLVE_BATCHES ?? 20);
  for (const mode of ['off', 'on']) {
    const dir = mkdtempSync(join(tmpdir(), 'kdr-bench-evolve-'));
    try {
      evolveResults.push(repeated<EvolveResult>(`evolve ${mode}`, './evolve-case.ts', [dir, mode, String(batches)]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`\nDecoding with delta.schema_evolution off and on, ${batches} batches of ${evolveResults[0]?.batch ?? 0} messages, two new fields from the middle batch on (median run of ${repeats}):\n`);
  console.log(
    table(
      ['schema_evolution', 'ms/batch before', 'ms for the batch bringing the fields', 'ms/batch after (pending)'],
      evolveResults.map((r) => [r.mode, r.beforeMs.toFixed(1), r.arrivalMs.toFixed(1), r.afterMs.toFixed(1)]),
    ),
  );
}

interface TransformResult extends Timed {
  mode: string;
  batch: number;
  msPerBatch: number;
  messagesPerSecond: number;
  filtered: number;
}

const transformResults: Array<Spread<TransformResult>> = [];
if (cases.has('transform')) {
  const batches = Number(process.env.BENCH_TRANSFORM_BATCHES ?? 20);
  for (const mode of ['none', 'filter', 'filter+columns', 'debezium']) {
    const dir = mkdtempSync(join(tmpdir(), 'kdr-bench-transform-'));
    try {
      transformResults.push(repeated<TransformResult>(`transform ${mode}`, './transform-case.ts', [dir, mode, String(batches)]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`\nDecoding with transform, ${batches} batches of ${transformResults[0]?.batch ?? 0} messages, one in ten filtered (median run of ${repeats}):\n`);
  console.log(
    table(
      ['transform', 'ms/batch', 'messages/s', 'filtered'],
      transformResults.map((r) => [r.mode, r.msPerBatch.toFixed(1), r.messagesPerSecond.toFixed(0), String(r.filtered)]),
    ),
  );
}

interface FreshnessResult {
  case: string;
  targetRate: number;
  producedRate: number;
  messages: number;
  flushes: number;
  measuredRecords: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  peakRssMiB: number;
}

const freshnessResults: Array<FreshnessResult & { p99RangeMs: [number, number] }> = [];
if (cases.has('freshness')) {
  execFileSync('bash', [here('../scripts/kafka/kafka.sh'), 'up'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const seconds = Number(process.env.BENCH_FRESH_SECONDS ?? 30);
  for (const rate of (process.env.BENCH_FRESH_RATES ?? '20000,50000').split(',').map(Number)) {
    const runs: FreshnessResult[] = [];
    for (let i = 0; i < repeats; i += 1) {
      const r = runCase<FreshnessResult>('./freshness-case.ts', [String(rate), String(seconds)]);
      process.stderr.write(`freshness ${rate}/s: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms\n`);
      runs.push(r);
    }
    const sorted = [...runs].sort((a, b) => a.p99Ms - b.p99Ms);
    const mid = sorted[Math.floor(sorted.length / 2)] as FreshnessResult;
    freshnessResults.push({ ...mid, p99RangeMs: [sorted[0]?.p99Ms ?? mid.p99Ms, sorted.at(-1)?.p99Ms ?? mid.p99Ms] });
  }
  console.log(`\nFreshness, batch_interval 1, ${seconds} s of steady production (run with the median p99 of ${repeats}):\n`);
  console.log(
    table(
      ['target rate', 'produced msgs/s', 'flushes', 'records measured', 'p50 ms', 'p90 ms', 'p99 ms', 'p99 min–max', 'max ms', 'peak RSS'],
      freshnessResults.map((r) => [
        r.targetRate.toLocaleString('en'),
        Math.round(r.producedRate).toLocaleString('en'),
        r.flushes,
        r.measuredRecords.toLocaleString('en'),
        Math.round(r.p50Ms),
        Math.round(r.p90Ms),
        Math.round(r.p99Ms),
        `${Math.round(r.p99RangeMs[0])}–${Math.round(r.p99RangeMs[1])}`,
        Math.round(r.maxMs),
        `${Math.round(r.peakRssMiB)} MiB`,
      ]),
    ),
  );
}

interface LifecycleResult extends Timed {
  days: number;
  filesPerDay: number;
  buildSeconds: number;
  before: { openMs: number; mergeMs: number };
  after: { openMs: number; mergeMs: number };
  compactSeconds: number;
  filesRemoved: number;
  filesAfter: number;
}

const lifecycleResults: LifecycleResult[] = [];
if (cases.has('lifecycle')) {
  const days = Number(process.env.BENCH_LIFECYCLE_DAYS ?? 30);
  const filesPerDay = Number(process.env.BENCH_LIFECYCLE_FILES ?? 1000);
  const dir = mkdtempSync(join(tmpdir(), 'kdr-bench-lifecycle-'));
  try {
    const r = runCase<LifecycleResult>('./lifecycle-case.ts', [dir, String(days), String(filesPerDay)]);
    lifecycleResults.push(r);
    console.log(`\nA ${days}-day table of ${filesPerDay} files a day (built in ${r.buildSeconds.toFixed(1)} s), before and after compacting every day (${r.compactSeconds.toFixed(1)} s, ${r.filesRemoved} files removed, ${r.filesAfter} left):\n`);
    console.log(
      table(
        ['', 'snapshot load ms', 'MERGE of one day ms'],
        [
          ['before', r.before.openMs.toFixed(0), r.before.mergeMs.toFixed(0)],
          ['after', r.after.openMs.toFixed(0), r.after.mergeMs.toFixed(0)],
        ],
      ),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
mkdirSync(here('../bench/results'), { recursive: true });
const file = here(`../bench/results/${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ machine, repeats, dedup: dedupResults, e2e: e2eResults, daily: dailyResults, commit: commitResults, lifecycle: lifecycleResults, evolve: evolveResults, transform: transformResults, freshness: freshnessResults }, null, 2));
console.log(`\nresults: ${file}`);
