/**
 * The Kafka dead-letter sink: each message that cannot become a row is produced, with its raw
 * key and payload, to the dead-letter topic, with headers naming where it came from and why.
 * A flush waits until the broker acknowledged every dead letter before it commits the positions
 * past them, so none is lost; after a crash between the two the replay produces them again
 * (at-least-once: the `kdr.*` headers identify duplicates).
 */
import Kafka from 'node-rdkafka';
import type { Message, MessageHeader } from 'node-rdkafka';
import { KafkaError } from '../errors.js';

/** librdkafka's "local queue full" code. */
const QUEUE_FULL = -184;

/** Why a message is dead-lettered. */
export interface DeadLetterReason {
  readonly reason: string;
  readonly detail: string;
}

/** Produces dead letters to a topic and tracks their acknowledgements. */
export class KafkaDeadLetterSink {
  readonly #topic: string;
  readonly #producer: Kafka.Producer;
  #pending = 0;
  #failure: KafkaError | undefined;
  #drained: Array<() => void> = [];

  constructor(brokers: string, topic: string, properties: Readonly<Record<string, string>>) {
    this.#topic = topic;
    this.#producer = new Kafka.Producer({
      ...properties,
      'bootstrap.servers': brokers,
      'enable.idempotence': true,
      'linger.ms': 5,
      dr_cb: true,
    });
    this.#producer.on('delivery-report', (err) => {
      if (err) this.#failure ??= new KafkaError('KAFKA_DEAD_LETTER', `producing a dead letter to ${topic} failed: ${err.message}`);
      this.#pending -= 1;
      if (this.#pending === 0) for (const done of this.#drained.splice(0)) done();
    });
  }

  /** Connects the producer. */
  async connect(): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.#producer.connect({ timeout: 30_000 }, (err) =>
        err ? reject(new KafkaError('KAFKA_CONNECT', `cannot connect the dead-letter producer: ${err.message}`)) : resolve(),
      ),
    );
    this.#producer.setPollInterval(50);
  }

  /** Queues one dead letter. */
  async send(message: Message, why: DeadLetterReason): Promise<void> {
    const headers: MessageHeader[] = [
      { 'kdr.topic': message.topic },
      { 'kdr.partition': String(message.partition) },
      { 'kdr.offset': String(message.offset) },
      { 'kdr.timestamp': String(message.timestamp ?? -1) },
      { 'kdr.reason': why.reason },
      { 'kdr.detail': why.detail },
    ];
    const key = message.key === undefined ? null : message.key;
    for (;;) {
      try {
        this.#producer.produce(this.#topic, null, message.value, key, message.timestamp ?? Date.now(), undefined, headers);
        this.#pending += 1;
        return;
      } catch (error) {
        if ((error as { code?: number }).code !== QUEUE_FULL) {
          throw new KafkaError('KAFKA_DEAD_LETTER', `cannot queue a dead letter: ${String(error)}`, { cause: error });
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }

  /** Resolves once every dead letter queued so far is acknowledged; throws if one failed. */
  async flush(): Promise<void> {
    if (this.#pending > 0) {
      this.#producer.flush(30_000, () => {});
      await new Promise<void>((resolve) => this.#drained.push(resolve));
    }
    if (this.#failure) throw this.#failure;
  }

  /** Flushes and disconnects. */
  async disconnect(): Promise<void> {
    await this.flush().catch(() => undefined);
    await new Promise<void>((resolve) => this.#producer.disconnect(() => resolve()));
  }
}
