/**
 * Several consumers in one process (issue #17's question): `node dist-bench/consumers-case.js
 * <topic> <messages> <consumers>` starts `consumers` worker threads, each with its own
 * node-rdkafka consumer in one new group (so the topic's partitions are split between them), each
 * in a `consume(1000)` loop that packs every batch as the pipeline does and discards it, until
 * the group has read `messages`. Prints one JSON line: the rate from the first message to the
 * last, and the process's CPU seconds per 1 M messages.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { packMessages } from '../dist/kafka/packer.js';
import { connectRawConsumer, consumeBatch, disconnect } from './raw-consumer.js';

const BROKERS = `127.0.0.1:${process.env.KAFKA_PORT ?? '9092'}`;

interface Job {
  topic: string;
  group: string;
  /** Shared: [messages read by all, first and last message times in µs since the epoch]. */
  counters: SharedArrayBuffer;
  expected: number;
}

async function consumeInWorker(job: Job): Promise<void> {
  // Loaded by the workers only: an addon that is not context-aware loads once per process.
  const { default: Kafka } = await import('node-rdkafka');
  const counters = new BigInt64Array(job.counters);
  const consumer = await connectRawConsumer(Kafka, BROKERS, job.topic, job.group);
  const topicIndex = new Map([[job.topic, 0]]);
  while (Atomics.load(counters, 0) < BigInt(job.expected)) {
    const batch = await consumeBatch(consumer);
    if (batch.length === 0) continue;
    Atomics.compareExchange(counters, 1, 0n, BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)));
    packMessages(batch, topicIndex, { keys: true, headers: false });
    const before = Atomics.add(counters, 0, BigInt(batch.length));
    if (before < BigInt(job.expected) && before + BigInt(batch.length) >= BigInt(job.expected)) {
      Atomics.store(counters, 2, BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)));
    }
  }
  await disconnect(consumer);
}

async function main(): Promise<void> {
  const [topic, countArg, consumersArg] = process.argv.slice(2);
  const expected = Number(countArg);
  const consumers = Number(consumersArg ?? 1);
  if (!topic || !Number.isInteger(expected) || !(consumers >= 1)) throw new Error('usage: consumers-case.js <topic> <messages> <consumers>');
  const counters = new SharedArrayBuffer(24);
  const job: Job = { topic, group: `bench-consumers-${process.pid}-${Date.now()}`, counters, expected };
  const cpuBefore = process.cpuUsage();
  const workers = Array.from({ length: consumers }, () => new Worker(new URL(import.meta.url), { workerData: job }));
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve, reject) => {
          w.on('error', reject);
          w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited ${code}`))));
        }),
    ),
  );
  const cpu = process.cpuUsage(cpuBefore);
  const view = new BigInt64Array(counters);
  const messages = Number(view[0]);
  const seconds = (Number(view[2]) - Number(view[1])) / 1e6;
  process.stdout.write(
    `${JSON.stringify({
      case: `consumers-${consumers}`,
      consumers,
      messages,
      seconds,
      messagesPerSecond: messages / seconds,
      cpuSecondsPerMillion: ((cpu.user + cpu.system) / 1e6 / messages) * 1e6,
    })}\n`,
  );
}

if (isMainThread) await main();
else {
  await consumeInWorker(workerData as Job);
  parentPort?.close();
}
