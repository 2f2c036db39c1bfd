/**
 * One daily-flush measurement (issue #16) in its own process, against the local broker:
 * `node dist-bench/daily-case.js <insert|dedup|merge>-<capped|uncapped> <topic> <messages>`
 * prints one JSON line.
 *
 * The whole data set is staged and written in ONE flush, as `batch.schedule: "02:00"` would do
 * with a day of data: INSERT without dedup, INSERT consolidating on event_id (`last`), or MERGE
 * on event_id into a table already holding 30 days (pre-filled by a child process, not
 * measured). `capped` sets `buffer.max_memory: 64MiB` (rows spill to Arrow IPC files),
 * `uncapped` 16 GiB (never spills).
 *
 * Memory is sampled every 200 ms: VmRSS (split at the moment the last message was consumed, so
 * staging and the flush show apart), the staging directory's size and the pipeline's staged
 * bytes gauges. Peak RSS is the process's high-water mark (VmHWM).
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pipeline, createTable, nativeFlushProgress, nativeMemory, nativeStepTotals, parseConfig } from '../dist/index.js';
import { BENCH_COLUMNS, BENCH_DAYS_COLUMN } from './data-set.js';
import { distinctEvents, expectedRows } from './daily-data.js';

/** `BENCH_TRACE=<file>`: every memory sample is appended there (time, RSS, flush progress). */
const TRACE = process.env.BENCH_TRACE;
const BROKERS = `127.0.0.1:${process.env.KAFKA_PORT ?? '9092'}`;
const KINDS = ['insert', 'dedup', 'merge'] as const;
type Kind = (typeof KINDS)[number];

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

function statusKiB(field: 'VmHWM' | 'VmRSS' | 'RssAnon' | 'RssFile'): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0);
}

/** Bytes under `dir`; files vanish while a flush releases them, so misses count as 0. */
function dirBytes(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const path = join(dir, name);
    try {
      const s = statSync(path);
      total += s.isDirectory() ? dirBytes(path) : s.size;
    } catch {
      // released meanwhile
    }
  }
  return total;
}

/** Sums a prom-client metric's values matching `labels` (`series`: one series of a histogram, e.g. `_sum`). */
async function metricSum(run: Pipeline, name: string, labels: Record<string, string> = {}, series?: string): Promise<number> {
  const metric = await run.metrics.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? [])
    .filter((v: { metricName?: string; labels: Record<string, string | number | undefined> }) => (series === undefined || v.metricName === `${name}${series}`) && Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((n, v) => n + v.value, 0);
}

interface Samples {
  rssIngestKiB: number;
  rssFlushKiB: number;
  /** Of the flush's sampled peak: anonymous memory vs mapped files (page cache counted in RSS). */
  rssAnonFlushKiB: number;
  rssFileFlushKiB: number;
  spillDirBytes: number;
  spillGaugeBytes: number;
  stagedMemoryBytes: number;
  consumedAtSeconds: number;
}

/** Samples memory and staging every 200 ms until stopped. */
function sampler(run: Pipeline, stagingDir: string, messages: number, started: number): { stop: () => Promise<Samples> } {
  const s: Samples = { rssIngestKiB: 0, rssFlushKiB: 0, rssAnonFlushKiB: 0, rssFileFlushKiB: 0, spillDirBytes: 0, spillGaugeBytes: 0, stagedMemoryBytes: 0, consumedAtSeconds: 0 };
  let busy: Promise<void> = Promise.resolve();
  const sample = async () => {
    const consumed = await metricSum(run, 'kafka_delta_messages_consumed_total');
    const rss = statusKiB('VmRSS');
    if (consumed < messages) s.rssIngestKiB = Math.max(s.rssIngestKiB, rss);
    else {
      if (s.consumedAtSeconds === 0) s.consumedAtSeconds = (performance.now() - started) / 1000;
      s.rssFlushKiB = Math.max(s.rssFlushKiB, rss);
      s.rssAnonFlushKiB = Math.max(s.rssAnonFlushKiB, statusKiB('RssAnon'));
      s.rssFileFlushKiB = Math.max(s.rssFileFlushKiB, statusKiB('RssFile'));
    }
    if (TRACE) {
      const p = nativeFlushProgress();
      // Node's share of the anonymous memory: V8's heap and the Buffers outside it (Kafka payloads).
      const js = process.memoryUsage();
      const native = nativeMemory();
      const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
      appendFileSync(TRACE, `${((performance.now() - started) / 1000).toFixed(1)} rss=${rss >> 10} anon=${statusKiB('RssAnon') >> 10} file=${statusKiB('RssFile') >> 10} heap=${mib(js.heapTotal)} external=${mib(js.external)} native=${mib(native.allocatedBytes)}/${mib(native.residentBytes)} consumed=${consumed} flush=${p.phase}:${p.rowsDone}/${p.rowsTotal}\n`);
    }
    s.spillDirBytes = Math.max(s.spillDirBytes, dirBytes(stagingDir));
    s.spillGaugeBytes = Math.max(s.spillGaugeBytes, await metricSum(run, 'kafka_delta_staged_bytes', { location: 'disk' }));
    s.stagedMemoryBytes = Math.max(s.stagedMemoryBytes, await metricSum(run, 'kafka_delta_staged_bytes', { location: 'memory' }));
  };
  const timer = setInterval(() => {
    busy = busy.then(sample);
  }, 200);
  return {
    stop: async () => {
      clearInterval(timer);
      await busy;
      await sample();
      return s;
    },
  };
}

function pipelineConfig(kind: Kind, capped: boolean, topic: string, table: string, stagingDir: string): ReturnType<typeof parseConfig> {
  return parseConfig({
    kafka: { broker: BROKERS, topic, group_id: `bench-daily-${kind}-${process.pid}-${Date.now()}`, max_poll_records: 5000 },
    delta: {
      table_path: table,
      partition_column: BENCH_DAYS_COLUMN,
      mode: kind === 'merge' ? 'MERGE' : 'INSERT',
      ...(kind === 'merge' ? { merge_keys: ['event_id'] } : {}),
    },
    dedup: kind === 'dedup' ? { keys: ['event_id'], strategy: 'last' } : {},
    // One flush for the whole run: neither the interval nor the size triggers before the end.
    batch: { batch_interval: 86_400, batch_size: 1e12 },
    buffer: { max_memory: capped ? '64MiB' : '16GiB', staging_dir: stagingDir },
    logging: { level: 'WARN' },
    monitoring: { enabled: false },
  });
}

/** The table's row count and version, read by Python's deltalake (an independent reader). */
function readBack(table: string): { rows: number; version: number } {
  // os._exit: deltalake's runtime threads can keep the interpreter from exiting.
  const script = [
    'import json, os, sys',
    'from deltalake import DeltaTable',
    'dt = DeltaTable(sys.argv[1])',
    'print(json.dumps({"rows": dt.to_pyarrow_dataset().count_rows(), "version": dt.version()}), flush=True)',
    'os._exit(0)',
  ].join('\n');
  return JSON.parse(execFileSync('python3', ['-c', script, table], { encoding: 'utf8' })) as { rows: number; version: number };
}

async function main(): Promise<void> {
  const [mode, topic, countArg] = process.argv.slice(2);
  const [kind, cap] = (mode ?? '').split('-') as [Kind, string];
  const messages = Number(countArg);
  if (!KINDS.includes(kind) || (cap !== 'capped' && cap !== 'uncapped') || !topic || !Number.isInteger(messages)) {
    throw new Error('usage: daily-case.ts <insert|dedup|merge>-<capped|uncapped> <topic> <messages>');
  }
  const dir = mkdtempSync(join(tmpdir(), 'kdr-bench-daily-'));
  const table = join(dir, 'events');
  const stagingDir = join(dir, 'staging');
  try {
    await createTable(table, BENCH_COLUMNS, [BENCH_DAYS_COLUMN]);
    let prefill = { rows: 0, seconds: 0 };
    if (kind === 'merge') {
      const out = execFileSync(process.execPath, [here('./daily-prefill.js'), table, String(distinctEvents(messages))], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      prefill = JSON.parse(out.trim().split('\n').pop() ?? '') as typeof prefill;
    }
    const run = new Pipeline(pipelineConfig(kind, cap === 'capped', topic, table, stagingDir), { untilCaughtUp: true });
    const started = performance.now();
    const samples = sampler(run, stagingDir, messages, started);
    const summary = await run.run();
    const wallSeconds = (performance.now() - started) / 1000;
    const s = await samples.stop();
    const peakRssMiB = statusKiB('VmHWM') / 1024;
    const steps = nativeStepTotals();
    const after = readBack(table);
    const line = {
      case: `daily-${mode}`,
      messages: summary.messages,
      rowsWritten: summary.rowsWritten,
      rows: after.rows,
      expectedRows: expectedRows(kind, messages),
      tableVersion: after.version,
      flushes: summary.flushes,
      seconds: summary.seconds,
      wallSeconds,
      // The one flush (consolidation, MERGE / write, commit), from the pipeline's histogram.
      flushSeconds: await metricSum(run, 'kafka_delta_flush_duration_seconds', {}, '_sum'),
      // When the sampler first saw every message consumed (±200 ms).
      consumedAtSeconds: s.consumedAtSeconds,
      messagesPerSecond: summary.seconds > 0 ? summary.messages / summary.seconds : 0,
      peakRssMiB,
      peakRssIngestMiB: s.rssIngestKiB / 1024,
      peakRssFlushMiB: s.rssFlushKiB / 1024,
      peakRssAnonFlushMiB: s.rssAnonFlushKiB / 1024,
      peakRssFileFlushMiB: s.rssFileFlushKiB / 1024,
      spillBytes: s.spillDirBytes,
      spillGaugeBytes: s.spillGaugeBytes,
      stagedMemoryBytes: s.stagedMemoryBytes,
      prefillRows: prefill.rows,
      prefillSeconds: prefill.seconds,
      steps: { decode: steps.decode.seconds, dedup: steps.dedup.seconds, write: steps.write.seconds },
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
