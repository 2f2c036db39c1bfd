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
/** "Message size too large", from librdkafka itself or from the broker. */
const MSG_SIZE_TOO_LARGE = 10;
/** The most of a refused payload the first cut keeps; each further refusal halves it. */
const FIRST_CUT_BYTES = 512 * 1024;

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

/** A dead letter produced and not acknowledged yet, with the payload it was sent with. */
interface InFlight {
  readonly letter: OutgoingDeadLetter;
  readonly sent: Buffer | null;
}

/** Reports a dead letter delivered with its payload cut (the topic refused it whole). */
export type OnPayloadCut = (letter: OutgoingDeadLetter, sentBytes: number, topic: string) => void;

/**
 * Whether a delivery failed because the record is too large for the topic. node-rdkafka's
 * delivery reports carry librdkafka's error text only (their code is -1).
 */
function tooLarge(err: { code?: number; message: string }): boolean {
  return err.code === MSG_SIZE_TOO_LARGE || /message size too large/i.test(err.message);
}

/** Produces dead letters to a topic and tracks their acknowledgements. */
export class DeadLetterProducer {
  readonly #topic: string;
  readonly #producer: Kafka.Producer;
  readonly #onCut: OnPayloadCut;
  readonly #inFlight = new Map<number, InFlight>();
  #nextId = 0;
  #pending = 0;
  #failures: string[] = [];
  #drained: Array<() => void> = [];

  constructor(brokers: string, topic: string, properties: Readonly<Record<string, string>>, onCut: OnPayloadCut) {
    this.#topic = topic;
    this.#onCut = onCut;
    // A dead letter that cannot be delivered must fail its flush within a minute, not
    // librdkafka's default five; `kafka.properties` can set another timeout.
    const timeout = properties['message.timeout.ms'] ?? '60000';
    this.#producer = new Kafka.Producer(
      {
        // A dead letter is as large as the message it holds, which the source topic took
        // (compressed, perhaps): compress too, and let the broker, not librdkafka's 1 MB
        // default, say what the dead-letter topic accepts.
        'compression.type': 'lz4',
        'message.max.bytes': 64 * 1024 * 1024,
        ...properties,
        'bootstrap.servers': brokers,
        'enable.idempotence': true,
        'linger.ms': 5,
        dr_cb: true,
      },
      { 'message.timeout.ms': Number(timeout) },
    );
    this.#producer.on('delivery-report', (err, report) => this.#delivered(err, report.opaque as number));
  }

  #delivered(err: Kafka.LibrdKafkaError | null, id: number): void {
    const flight = this.#inFlight.get(id);
    this.#inFlight.delete(id);
    if (err && tooLarge(err) && flight) {
      // Sent again, smaller, before this one stops counting: a flush waits for both.
      this.#pending += 1;
      void this.#sendCut(flight)
        .catch((error: unknown) => this.#failures.push(String(error)))
        .finally(() => this.#settle());
    } else if (err) {
      this.#failures.push(err.message);
    } else if (flight && (flight.sent?.length ?? 0) < (flight.letter.payload?.length ?? 0)) {
      this.#onCut(flight.letter, flight.sent?.length ?? 0, this.#topic);
    }
    this.#settle();
  }

  #settle(): void {
    this.#pending -= 1;
    if (this.#pending === 0) for (const done of this.#drained.splice(0)) done();
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
    await this.#produce(letter, letter.payload ?? null);
  }

  /**
   * A payload the topic refused whole is sent cut (halved at each further refusal), marked
   * `kdr.payload_truncated` with its full length: the dead letter is delivered once, loudly, and
   * the whole message stays at its coordinates in the source topic. Failing instead would stop
   * the pipeline at the same message on every start.
   */
  async #sendCut(flight: InFlight): Promise<void> {
    const sent = flight.sent?.length ?? 0;
    const keep = Math.min(FIRST_CUT_BYTES, Math.floor(sent / 2));
    if (sent === 0 || keep < 1024) {
      throw new KafkaError('KAFKA_DEAD_LETTER', `${this.#topic} refuses even a dead letter without its payload (message too large)`);
    }
    await this.#produce(flight.letter, (flight.sent as Buffer).subarray(0, keep));
  }

  async #produce(letter: OutgoingDeadLetter, payload: Buffer | null): Promise<void> {
    const headers: MessageHeader[] = [
      { 'kdr.topic': letter.topic },
      { 'kdr.partition': String(letter.partition) },
      { 'kdr.offset': String(letter.offset) },
      { 'kdr.timestamp': String(letter.timestamp ?? -1) },
      { 'kdr.reason': letter.reason },
      { 'kdr.detail': letter.detail },
    ];
    const whole = letter.payload?.length ?? 0;
    if (payload !== null && payload.length < whole) headers.push({ 'kdr.payload_truncated': String(whole) });
    for (;;) {
      const id = this.#nextId++;
      try {
        this.#inFlight.set(id, { letter, sent: payload });
        this.#producer.produce(this.#topic, null, payload, letter.key ?? null, letter.timestamp ?? Date.now(), id, headers);
        this.#pending += 1;
        return;
      } catch (error) {
        this.#inFlight.delete(id);
        const code = (error as { code?: number }).code;
        if (code === MSG_SIZE_TOO_LARGE && payload !== null) {
          this.#pending += 1;
          try {
            return await this.#sendCut({ letter, sent: payload });
          } finally {
            this.#settle();
          }
        }
        if (code !== QUEUE_FULL) {
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
