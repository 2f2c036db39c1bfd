/**
 * One end-to-end measurement in its own process, against the local broker:
 * `node dist-bench/e2e-case.js <consume|insert|merge> <topic> <messages>` prints one JSON
 * line.
 *
 * - consume: node-rdkafka `consume(1000)` in a loop, messages discarded (our consumer's ceiling,
 *   with the same librdkafka settings the pipeline uses).
 * - insert / merge: the Pipeline from the broker to a fresh Delta table, until caught up; MERGE on
 *   `event_id`, consolidating repeats.
 *
 * Peak RSS is the process's high-water mark (VmHWM), read from /proc at the end; CPU seconds
 * are the process's user + system time (all threads) from before connecting to the end.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Kafka from 'node-rdkafka';
import { Pipeline, createTable, nativeStepTotals, parseConfig } from '../dist/index.js';
import { BENCH_COLUMNS, BENCH_DAYS_COLUMN } from './data-set.js';
import { connectRawConsumer, consumeBatch, disconnect } from './raw-consumer.js';

const BROKERS = `127.0.0.1:${process.env.KAFKA_PORT ?? '9092'}`;

function peakRssMiB(): number {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0) / 1024;
}

async function consumeOnly(topic: string, expected: number): Promise<{ seconds: number; messages: number; bytes: number }> {
  const consumer = await connectRawConsumer(Kafka, BROKERS, topic, `bench-consume-${process.pid}-${Date.now()}`);
  let messages = 0;
  let bytes = 0;
  let started = 0;
  while (messages < expected) {
    const batch = await consumeBatch(consumer);
    if (batch.length > 0 && started === 0) started = performance.now();
    messages += batch.length;
    for (const m of batch) bytes += m.size;
  }
  const seconds = (performance.now() - started) / 1000;
  await disconnect(consumer);
  return { seconds, messages, bytes };
}

type PipelineMode = 'insert' | 'merge' | 'append' | 'append-capped';
const MODES: readonly string[] = ['consume', 'insert', 'merge', 'append', 'append-capped'];

/** Bench settings per mode: `append*` stage the whole run and flush once, to show the memory cap. */
function modeSettings(mode: PipelineMode, dir: string): Record<string, unknown> {
  if (mode === 'insert' || mode === 'merge') return { batch: { batch_interval: 60, batch_size: 250_000 } };
  return {
    batch: { batch_interval: 86_400, batch_size: 1e12 },
    buffer: { max_memory: mode === 'append-capped' ? '64MiB' : '16GiB', staging_dir: join(dir, 'staging') },
  };
}

async function pipeline(mode: PipelineMode, topic: string): Promise<{ seconds: number; messages: number; bytes: number; rows: number; flushes: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'kdr-bench-'));
  const table = join(dir, 'events');
  try {
    await createTable(table, BENCH_COLUMNS, [BENCH_DAYS_COLUMN]);
    const config = parseConfig({
      kafka: { broker: BROKERS, topic, group_id: `bench-${mode}-${process.pid}-${Date.now()}`, max_poll_records: 5000 },
      delta: {
        table_path: table,
        partition_column: BENCH_DAYS_COLUMN,
        mode: mode === 'merge' ? 'MERGE' : 'INSERT',
        ...(mode === 'merge' ? { merge_keys: ['event_id'] } : {}),
      },
      dedup: mode === 'insert' ? { keys: ['event_id'] } : {},
      ...modeSettings(mode, dir),
      logging: { level: 'WARN' },
      monitoring: { enabled: false },
    });
    const run = new Pipeline(config, { untilCaughtUp: true });
    const summary = await run.run();
    const consumed = await run.metrics.registry.getSingleMetric('kafka_delta_bytes_consumed_total')?.get();
    const bytes = (consumed?.values ?? []).reduce((n, v) => n + v.value, 0);
    return { seconds: summary.seconds, messages: summary.messages, bytes, rows: summary.rowsWritten, flushes: summary.flushes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const [mode, topic, countArg] = process.argv.slice(2);
  const expected = Number(countArg);
  if (mode === undefined || !MODES.includes(mode) || !topic || !Number.isInteger(expected)) {
    throw new Error(`usage: e2e-case.ts <${MODES.join('|')}> <topic> <messages>`);
  }
  // The whole process's CPU (every thread: librdkafka's, the native core's, V8's) from here on.
  const cpuBefore = process.cpuUsage();
  const result =
    mode === 'consume' ? { ...(await consumeOnly(topic, expected)), rows: 0, flushes: 0 } : await pipeline(mode as PipelineMode, topic);
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const steps = nativeStepTotals();
  const perSecond = (rows: number, seconds: number) => (seconds > 0 ? rows / seconds : 0);
  const line = {
    case: `e2e-${mode}`,
    messages: result.messages,
    rows: result.rows,
    flushes: result.flushes,
    seconds: result.seconds,
    messagesPerSecond: perSecond(result.messages, result.seconds),
    megabytesPerSecond: perSecond(result.bytes / 1e6, result.seconds),
    peakRssMiB: peakRssMiB(),
    cpuSeconds,
    cpuSecondsPerMillion: result.messages > 0 ? (cpuSeconds * 1e6) / result.messages : 0,
    decode: { seconds: steps.decode.seconds, rowsPerSecond: perSecond(steps.decode.rows, steps.decode.seconds) },
    dedup: { seconds: steps.dedup.seconds, rowsPerSecond: perSecond(steps.dedup.rows, steps.dedup.seconds) },
    write: { seconds: steps.write.seconds, rowsPerSecond: perSecond(steps.write.rows, steps.write.seconds) },
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

await main();
