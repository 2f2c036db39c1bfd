/**
 * The raw node-rdkafka consumer the benches measure the pipeline against: a fresh group from the
 * earliest offset, no auto commit, a short fetch backoff, read in `consume(1000)` batches as the
 * pipeline reads. The module is passed in: worker threads load node-rdkafka themselves.
 */
import type NodeRdkafka from 'node-rdkafka';
import type { KafkaConsumer, Message } from 'node-rdkafka';

/** A connected consumer subscribed to `topic` in group `group`. */
export async function connectRawConsumer(kafka: typeof NodeRdkafka, brokers: string, topic: string, group: string): Promise<KafkaConsumer> {
  const consumer = new kafka.KafkaConsumer(
    { 'bootstrap.servers': brokers, 'group.id': group, 'enable.auto.commit': false, 'fetch.queue.backoff.ms': 10 },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
  consumer.setDefaultConsumeTimeout(100);
  consumer.subscribe([topic]);
  return consumer;
}

/** The next batch of up to 1,000 messages (empty after 100 ms without any). */
export function consumeBatch(consumer: KafkaConsumer): Promise<Message[]> {
  return new Promise<Message[]>((resolve, reject) => consumer.consume(1000, (err, m) => (err ? reject(err) : resolve(m))));
}

/** Leaves the group. */
export function disconnect(consumer: KafkaConsumer): Promise<void> {
  return new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
}
