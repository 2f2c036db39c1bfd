/**
 * The Kafka side of the Kafka dead-letter sink: produces dead letters, with their raw key and
 * payload, to the dead-letter topic with `kdr.*` headers naming where each came from and why,
 * and waits until the broker acknowledged every one. It knows nothing of Delta.
 */
import Kafka from 'node-rdkafka';
import type { MessageHeader } from 'node-rdkafka';
import { KafkaError } from '../errors.js';

/** librdkafka's "local queue full" code. */
const QUEUE_FULL = -184;

/** One dead letter: the original message's coordinates and bytes, and why it was rejected. */
export interface OutgoingDeadLetter {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  /** Epoch milliseconds; absent when the message had none. */
  readonly timestamp?: number | null;
  readonly key?: Buffer | null;
  readonly payload?: Buffer | null;
  readonly reason: string;
  readonly detail: string;
}

/** Produces dead letters to a topic and tracks their acknowledgements. */
export class DeadLetterProducer {
  readonly #topic: string;
  readonly #producer: Kafka.Producer;
  #pending = 0;
  #failures: string[] = [];
  #drained: Array<() => void> = [];

  constructor(brokers: string, topic: string, properties: Readonly<Record<string, string>>) {
    this.#topic = topic;
    // A dead letter that cannot be delivered must fail its flush within a minute, not
    // librdkafka's default five; `kafka.properties` can set another timeout.
    const timeout = properties['message.timeout.ms'] ?? '60000';
    this.#producer = new Kafka.Producer(
      {
        ...properties,
        'bootstrap.servers': brokers,
        'enable.idempotence': true,
        'linger.ms': 5,
        dr_cb: true,
      },
      { 'message.timeout.ms': Number(timeout) },
    );
    this.#producer.on('delivery-report', (err) => {
      if (err) this.#failures.push(err.message);
      this.#pending -= 1;
      if (this.#pending === 0) for (const done of this.#drained.splice(0)) done();
    });
  }

  /** Connects the producer and checks that the dead-letter topic exists. */
  async connect(): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.#producer.connect({ timeout: 30_000 }, (err) =>
        err ? reject(new KafkaError('KAFKA_CONNECT', `cannot connect the dead-letter producer: ${err.message}`, { cause: err })) : resolve(),
      ),
    );
    this.#producer.setPollInterval(50);
    await this.#checkTopic();
  }

  async #checkTopic(): Promise<void> {
    const topics = await new Promise<string[]>((resolve, reject) =>
      this.#producer.getMetadata({ timeout: 30_000, allTopics: true }, (err, metadata) =>
        err
          ? reject(new KafkaError('KAFKA_METADATA', `cannot read the topics of the cluster: ${err.message}`, { cause: err }))
          : resolve(metadata.topics.map((t) => t.name)),
      ),
    );
    if (!topics.includes(this.#topic)) {
      throw new KafkaError(
        'KAFKA_DEAD_LETTER',
        `the dead-letter topic ${this.#topic} does not exist; create it (or set dead_letter.topic to one that does)`,
      );
    }
  }

  /** Queues one dead letter. */
  async send(letter: OutgoingDeadLetter): Promise<void> {
    const headers: MessageHeader[] = [
      { 'kdr.topic': letter.topic },
      { 'kdr.partition': String(letter.partition) },
      { 'kdr.offset': String(letter.offset) },
      { 'kdr.timestamp': String(letter.timestamp ?? -1) },
      { 'kdr.reason': letter.reason },
      { 'kdr.detail': letter.detail },
    ];
    for (;;) {
      try {
        this.#producer.produce(this.#topic, null, letter.payload ?? null, letter.key ?? null, letter.timestamp ?? Date.now(), undefined, headers);
        this.#pending += 1;
        return;
      } catch (error) {
        if ((error as { code?: number }).code !== QUEUE_FULL) {
          throw new KafkaError('KAFKA_DEAD_LETTER', `cannot queue a dead letter for ${this.#topic}: ${String(error)}`, { cause: error });
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  /**
   * Resolves once every dead letter queued so far is acknowledged; throws, naming the topic, if
   * the broker refused any (the flush then fails and commits nothing past them).
   */
  async flush(): Promise<void> {
    if (this.#pending > 0) {
      this.#producer.flush(30_000, () => {});
      await new Promise<void>((resolve) => this.#drained.push(resolve));
    }
    const failures = this.#failures.splice(0);
    if (failures.length > 0) {
      throw new KafkaError(
        'KAFKA_DEAD_LETTER',
        `${failures.length} dead letter(s) could not be delivered to ${this.#topic}: ${failures[0] ?? ''}`,
      );
    }
  }

  /** Disconnects; dead letters not acknowledged by now are delivered again by the next flush. */
  async disconnect(): Promise<void> {
    await new Promise<void>((resolve) => this.#producer.disconnect(() => resolve()));
  }
}
