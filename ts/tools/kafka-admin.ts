/**
 * Small Kafka utilities for the sample data, tests and benchmarks: create and delete topics and
 * produce messages, with node-rdkafka.
 */
import Kafka from 'node-rdkafka';
import type { LibrdKafkaError } from 'node-rdkafka';

/** librdkafka's "topic already exists" and "local queue full" codes. */
const TOPIC_ALREADY_EXISTS = 36;
const QUEUE_FULL = -184;

/**
 * Creates a topic (replication factor 1, with `config` such as `max.message.bytes`) unless it
 * exists; resolves true when it created it.
 */
export async function createTopic(brokers: string, topic: string, partitions: number, config: Record<string, string> = {}): Promise<boolean> {
  const admin = Kafka.AdminClient.create({ 'bootstrap.servers': brokers });
  try {
    return await new Promise<boolean>((resolve, reject) => {
      admin.createTopic({ topic, num_partitions: partitions, replication_factor: 1, config }, 30_000, (err: LibrdKafkaError) => {
        if (!err) resolve(true);
        else if (err.code === TOPIC_ALREADY_EXISTS) resolve(false);
        else reject(new Error(`cannot create topic ${topic}: ${err.message}`));
      });
    });
  } finally {
    admin.disconnect();
  }
}

/** Deletes a topic; resolves once the controller accepted the deletion. */
export async function deleteTopic(brokers: string, topic: string): Promise<void> {
  const admin = Kafka.AdminClient.create({ 'bootstrap.servers': brokers });
  try {
    await new Promise<void>((resolve, reject) => {
      admin.deleteTopic(topic, 30_000, (err: LibrdKafkaError) => (err ? reject(new Error(`cannot delete topic ${topic}: ${err.message}`)) : resolve()));
    });
  } finally {
    admin.disconnect();
  }
}

/** A message to produce. */
export interface OutgoingMessage {
  value: Buffer | string | null;
  /** Absent: the message has no key (not an empty one). */
  key?: Buffer | string;
  /** A partition, or the partitioner's choice by key. */
  partition?: number;
  /** Epoch milliseconds. */
  timestamp?: number;
  headers?: Record<string, string>;
}

/** A connected producer for sample data and tests: batched, compressed, idempotent, with delivery reports. */
export async function connectProducer(brokers: string): Promise<Kafka.Producer> {
  const producer = new Kafka.Producer({
    'bootstrap.servers': brokers,
    'linger.ms': 5,
    'batch.num.messages': 10000,
    'queue.buffering.max.messages': 200000,
    'compression.type': 'lz4',
    // Up to what the broker takes (a compressed batch of up to 1 MiB by default), not 1 MB raw.
    'message.max.bytes': 16 * 1024 * 1024,
    'enable.idempotence': true,
    dr_cb: true,
  });
  await new Promise<void>((resolve, reject) => {
    producer.connect({ timeout: 30_000 }, (err) => (err ? reject(new Error(`producer cannot connect to ${brokers}: ${err.message}`)) : resolve()));
  });
  return producer;
}

/** Produces messages and waits until the broker acknowledged all of them. */
export async function produceMessages(brokers: string, topic: string, messages: Iterable<OutgoingMessage>): Promise<number> {
  const producer = await connectProducer(brokers);
  let sent = 0;
  let acked = 0;
  let failure: Error | undefined;
  producer.on('delivery-report', (err) => {
    if (err) failure ??= new Error(`delivery failed: ${err.message}`);
    acked += 1;
  });
  producer.setPollInterval(20);
  try {
    for (const m of messages) {
      const value = m.value === null ? null : Buffer.isBuffer(m.value) ? m.value : Buffer.from(m.value);
      for (;;) {
        try {
          const headers = m.headers ? Object.entries(m.headers).map(([k, v]) => ({ [k]: v })) : undefined;
          producer.produce(topic, m.partition ?? null, value, m.key ?? null, m.timestamp ?? Date.now(), undefined, headers);
          break;
        } catch (error) {
          if ((error as { code?: number }).code !== QUEUE_FULL) throw error;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      sent += 1;
      if (failure) throw failure;
    }
    await new Promise<void>((resolve, reject) => producer.flush(60_000, (err) => (err ? reject(err) : resolve())));
    // Delivery reports reach JS well after the broker acknowledged (millions queue up): wait
    // as long as they keep coming, and give up only after 30 s without one.
    let lastAcked = acked;
    let lastProgress = Date.now();
    while (acked < sent && Date.now() - lastProgress < 30_000) {
      await new Promise((r) => setTimeout(r, 20));
      if (acked > lastAcked) {
        lastAcked = acked;
        lastProgress = Date.now();
      }
    }
    if (failure) throw failure;
    if (acked < sent) throw new Error(`only ${acked} of ${sent} messages were acknowledged`);
    return sent;
  } finally {
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  }
}

/** A message read back from a topic. */
export interface ReadMessage {
  partition: number;
  offset: number;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** Reads `count` messages of a topic from the beginning (or fails after `timeoutMs`). */
export async function readTopic(brokers: string, topic: string, count: number, timeoutMs = 60_000): Promise<ReadMessage[]> {
  const consumer = new Kafka.KafkaConsumer(
    { 'bootstrap.servers': brokers, 'group.id': `kdr-reader-${process.pid}-${Date.now()}`, 'enable.auto.commit': false },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
  consumer.setDefaultConsumeTimeout(200);
  consumer.subscribe([topic]);
  const out: ReadMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  try {
    while (out.length < count) {
      if (Date.now() > deadline) throw new Error(`read ${out.length} of ${count} messages from ${topic}`);
      const batch = await new Promise<Kafka.Message[]>((resolve, reject) =>
        consumer.consume(1000, (err, messages) => (err ? reject(err) : resolve(messages))),
      );
      for (const m of batch) {
        const headers: Record<string, string> = {};
        for (const h of m.headers ?? []) for (const [k, v] of Object.entries(h)) headers[k] = Buffer.isBuffer(v) ? v.toString() : String(v);
        out.push({ partition: m.partition, offset: m.offset, key: m.key === undefined || m.key === null ? null : String(m.key), value: m.value, headers });
      }
    }
    return out;
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}
