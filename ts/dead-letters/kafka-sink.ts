/**
 * The Kafka dead-letter sink: at each flush, the segment's dead letters the rows' table has not
 * handled are produced to the dead-letter topic and acknowledged before the rows' commit. A
 * crash between the two produces them again (at least once; the `kdr.*` headers identify
 * duplicates), including dead letters that were spilled or persisted and recovered.
 */
import { DeadLetterProducer } from '../kafka/dead-letter-producer.js';
import type { Logger } from '../log.js';
import type { StagedSegment } from '../segment.js';
import type { DeltaTarget, PartitionAppId } from '../table.js';
import type { DeadLetterSink } from './sink.js';

/** Dead letters into a Kafka topic. */
export class KafkaDeadLetterSink implements DeadLetterSink {
  readonly #topic: string;
  readonly #producer: DeadLetterProducer;

  private constructor(topic: string, producer: DeadLetterProducer) {
    this.#topic = topic;
    this.#producer = producer;
  }

  /** Connects a producer; fails with `KafkaError` (code `KAFKA_DEAD_LETTER`) naming the topic when it does not exist. */
  static async open(brokers: string, topic: string, properties: Readonly<Record<string, string>>, log: Logger): Promise<KafkaDeadLetterSink> {
    const producer = new DeadLetterProducer(brokers, topic, properties, (letter, sentBytes) =>
      // Needs action (the topic's max.message.bytes), so ERROR; once per dead letter, never its bytes.
      log.error('the dead-letter topic refused a dead letter whole: sent with its payload cut', {
        deadLetterTopic: topic,
        topic: letter.topic,
        partition: letter.partition,
        offset: letter.offset,
        payloadBytes: letter.payload?.length ?? 0,
        sentBytes,
        hint: `raise max.message.bytes of ${topic} to keep whole payloads; the message stays at its offset in ${letter.topic} until retention`,
      }),
    );
    try {
      await producer.connect();
    } catch (error) {
      await producer.disconnect().catch(() => undefined);
      throw error;
    }
    return new KafkaDeadLetterSink(topic, producer);
  }

  get description(): string {
    return `kafka:${this.#topic}`;
  }

  async deliver(segment: StagedSegment, appIds: readonly PartitionAppId[], rows: DeltaTarget): Promise<number> {
    if (segment.deadLetters === 0) return 0;
    const letters = await rows.pendingDeadLetters(segment, appIds);
    for (const letter of letters) await this.#producer.send(letter);
    await this.#producer.flush();
    return letters.length;
  }

  async close(): Promise<void> {
    await this.#producer.disconnect();
  }
}
