/**
 * Where a consumer group stands on its topics, read without joining the group (a running
 * pipeline is not rebalanced): every partition's log start and high watermark, and the offset the
 * group committed there. For `verify`.
 */
import Kafka from 'node-rdkafka';
import type { Config } from '../config/index.js';
import { KafkaError } from '../errors.js';
import { kafkaProperties } from '../pipeline/identity.js';
import { subscribedTopics } from './topic-pattern.js';

/** One topic-partition as Kafka sees it. */
export interface KafkaPartitionState {
  topic: string;
  partition: number;
  /** The first offset the log still holds. */
  logStart: number;
  /** The offset the next message will get. */
  highWatermark: number;
  /** The next offset the group committed; absent when it never committed there. */
  committed?: number;
}

const TIMEOUT_MS = 10_000;

function call<T>(what: string, run: (done: (err: Kafka.LibrdKafkaError | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    run((err, value) => (err ? reject(new KafkaError('KAFKA_METADATA', `cannot read ${what}: ${err.message}`, { cause: err })) : resolve(value)));
  });
}

/** Reads the state of every partition of the configured topics (and those `kafka.topic_pattern` matches now). */
export async function readGroupPositions(config: Config): Promise<KafkaPartitionState[]> {
  const consumer = new Kafka.KafkaConsumer(
    { ...kafkaProperties(config), 'metadata.broker.list': config.kafka.brokers, 'group.id': config.kafka.groupId, 'enable.auto.commit': false },
    {},
  );
  await call<unknown>(`the cluster at ${config.kafka.brokers}`, (done) => consumer.connect({ timeout: TIMEOUT_MS }, done));
  try {
    const refs: Array<{ topic: string; partition: number }> = [];
    let cluster: string[] = [];
    if (config.kafka.topicPattern !== undefined) {
      const all = await call<Kafka.Metadata>('the topics of the cluster', (done) => consumer.getMetadata({ allTopics: true, timeout: TIMEOUT_MS }, done));
      cluster = all.topics.map((t) => t.name);
    }
    for (const topic of subscribedTopics(config.kafka, cluster)) {
      const metadata = await call<Kafka.Metadata>(`the partitions of ${topic}`, (done) => consumer.getMetadata({ topic, timeout: TIMEOUT_MS }, done));
      const found = metadata.topics.find((t) => t.name === topic);
      if (found === undefined || found.partitions.length === 0) throw new KafkaError('KAFKA_METADATA', `topic ${topic} does not exist`);
      for (const p of [...found.partitions].sort((a, b) => a.id - b.id)) refs.push({ topic, partition: p.id });
    }
    const committed = await call<Kafka.TopicPartitionOffset[]>(`the offsets group ${config.kafka.groupId} committed`, (done) =>
      consumer.committed(refs, TIMEOUT_MS, done),
    );
    // One watermark request per partition, all in flight at once (1,000 partitions are not
    // 1,000 round trips in a row).
    const states = await Promise.all(
      refs.map(async (ref): Promise<KafkaPartitionState> => {
        const marks = await call<Kafka.WatermarkOffsets>(`the watermarks of ${ref.topic}[${ref.partition}]`, (done) =>
          consumer.queryWatermarkOffsets(ref.topic, ref.partition, TIMEOUT_MS, done),
        );
        const at = committed.find((c) => c.topic === ref.topic && c.partition === ref.partition)?.offset;
        return { ...ref, logStart: marks.lowOffset, highWatermark: marks.highOffset, ...(at !== undefined && at >= 0 ? { committed: at } : {}) };
      }),
    );
    return states;
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}
