/**
 * Freshness: `node dist-bench/freshness-case.js <rate> <seconds>` runs the pipeline (INSERT,
 * `batch_interval: 1`) on a fresh topic while a producer process sends `rate` messages a second
 * for `seconds`, and prints one JSON line: the delay from each record's Kafka timestamp to the
 * flush that made it visible (the Delta commit, as the pipeline's `flush` event reports it),
 * p50 / p90 / p99 / max over every record sent after the first WARMUP_S seconds.
 *
 * Which commit holds a record comes from the flush events' positions (the next offset per
 * partition); each record's timestamp is read back from the topic after the run.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Kafka from 'node-rdkafka';
import { Pipeline, createTable, parseConfig, type FlushSummary } from '../dist/index.js';
import { createTopic } from '../dist/tools/kafka-admin.js';
import { BENCH_COLUMNS, BENCH_DAYS_COLUMN, watermarks } from './data-set.js';

const BROKERS = `127.0.0.1:${process.env.KAFKA_PORT ?? '9092'}`;
const PARTITIONS = 3;
/** Records sent in the first seconds (the group joining, code paging in) are not counted. */
const WARMUP_S = 3;

interface FlushMark {
  at: number;
  positions: FlushSummary['positions'];
}

/** Every record's Kafka timestamp, by partition and offset. */
async function timestampsOf(topic: string, highs: number[]): Promise<Float64Array[]> {
  const consumer = new Kafka.KafkaConsumer({ 'bootstrap.servers': BROKERS, 'group.id': `bench-fresh-read-${process.pid}`, 'enable.auto.commit': false }, {});
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
  const out = highs.map((h) => new Float64Array(h).fill(Number.NaN));
  try {
    consumer.assign(highs.map((_, partition) => ({ topic, partition, offset: 0 })));
    let read = 0;
    const total = highs.reduce((a, b) => a + b, 0);
    while (read < total) {
      const batch = await new Promise<Kafka.Message[]>((resolve, reject) => consumer.consume(5000, (err, m) => (err ? reject(err) : resolve(m))));
      for (const m of batch) {
        const times = out[m.partition];
        if (times && m.offset < times.length) times[m.offset] = m.timestamp ?? Number.NaN;
      }
      read += batch.length;
    }
    return out;
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}

const quantile = (sorted: Float64Array, q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

async function main(): Promise<void> {
  const [rateArg, secondsArg] = process.argv.slice(2);
  const rate = Number(rateArg);
  const seconds = Number(secondsArg);
  if (!(rate > 0) || !(seconds > WARMUP_S)) throw new Error(`usage: freshness-case.js <rate> <seconds > ${WARMUP_S}>`);
  const topic = `kdr_bench_fresh_${rate}_${Date.now()}`;
  await createTopic(BROKERS, topic, PARTITIONS);
  const dir = mkdtempSync(join(tmpdir(), 'kdr-bench-fresh-'));
  try {
    const table = join(dir, 'events');
    await createTable(table, BENCH_COLUMNS, [BENCH_DAYS_COLUMN]);
    const config = parseConfig({
      kafka: { broker: BROKERS, topic, group_id: `bench-fresh-${process.pid}`, start_from: 'earliest' },
      delta: { table_path: table, partition_column: BENCH_DAYS_COLUMN, mode: 'INSERT' },
      batch: { batch_interval: 1 },
      logging: { level: 'WARN' },
      monitoring: { enabled: false },
    });
    const pipeline = new Pipeline(config);
    const flushes: FlushMark[] = [];
    pipeline.on('flush', (s) => flushes.push({ at: Date.now(), positions: s.positions }));
    await pipeline.start();
    await new Promise((r) => setTimeout(r, 3000));

    const producer = join(dirname(fileURLToPath(import.meta.url)), 'freshness-producer.js');
    const producedAt = Date.now();
    const { stdout } = await promisify(execFile)(process.execPath, [producer, BROKERS, topic, String(rate), String(seconds)]);
    const produced = JSON.parse(stdout.trim()) as { sent: number; rate: number; lateTicks: number };

    const highs = (await watermarks(BROKERS, topic, PARTITIONS)).map((m) => m.high);
    const committed = () => {
      const last = flushes.at(-1);
      return highs.every((h, partition) => (last?.positions.find((p) => p.partition === partition)?.offset ?? 0) >= h);
    };
    const deadline = Date.now() + 120_000;
    while (!committed() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const summary = await pipeline.stop();
    if (!committed()) throw new Error('the pipeline did not commit every record within 120 s');

    const times = await timestampsOf(topic, highs);
    const delays: number[] = [];
    const next = new Array<number>(PARTITIONS).fill(0);
    for (const f of flushes) {
      for (const p of f.positions) {
        const partitionTimes = times[p.partition];
        if (!partitionTimes) continue;
        for (let o = next[p.partition] ?? 0; o < p.offset && o < partitionTimes.length; o += 1) {
          const ts = partitionTimes[o] ?? Number.NaN;
          if (ts >= producedAt + WARMUP_S * 1000) delays.push(f.at - ts);
        }
        next[p.partition] = Math.max(next[p.partition] ?? 0, p.offset);
      }
    }
    const sorted = Float64Array.from(delays).sort();
    const status = readFileSync('/proc/self/status', 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    process.stdout.write(
      `${JSON.stringify({
        case: `freshness-${rate}`,
        seconds,
        targetRate: rate,
        producedRate: produced.rate,
        producerLateTicks: produced.lateTicks,
        messages: summary?.messages ?? 0,
        flushes: flushes.filter((f) => f.positions.length > 0).length,
        measuredRecords: sorted.length,
        p50Ms: quantile(sorted, 0.5),
        p90Ms: quantile(sorted, 0.9),
        p99Ms: quantile(sorted, 0.99),
        maxMs: sorted[sorted.length - 1] ?? Number.NaN,
        peakRssMiB: hwm,
      })}\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
