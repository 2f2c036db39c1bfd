/**
 * The Kafka side: a node-rdkafka consumer in a `consume(n)` loop, with manual offsets and a
 * rebalance callback that asks the pipeline where each newly assigned partition starts (the
 * Delta log decides) before assigning it. It knows nothing of Delta.
 */
import Kafka from 'node-rdkafka';
import type { Assignment, ConsumerGlobalConfig, ConsumerTopicConfig, LibrdKafkaError, Message } from 'node-rdkafka';
import { KafkaDeltaError, KafkaError, PositionLostError, type LostPosition } from '../errors.js';
import type { Logger } from '../log.js';
import { BrokerHealth } from './broker-health.js';
import { lagsFromStatistics, parseStatistics, stoppedFromStatistics, type LibrdkafkaStatistics } from './statistics.js';

/** librdkafka's rebalance event codes. */
const ASSIGN_PARTITIONS = -175;
const REVOKE_PARTITIONS = -174;
/**
 * librdkafka's "no offset to automatically reset to": a position went out of range and
 * `auto.offset.reset` is `error`. librdkafka then stops fetching the partition.
 */
const ERR_AUTO_OFFSET_RESET = -140;
/** librdkafka's logical offsets. */
export const OFFSET_BEGINNING = -2;
export const OFFSET_END = -1;

/** A topic-partition. */
export interface PartitionRef {
  readonly topic: string;
  readonly partition: number;
}

/** Where a partition starts: an offset, or a logical one (OFFSET_BEGINNING / OFFSET_END). */
export interface PartitionStart extends PartitionRef {
  readonly offset: number;
}

/** The pipeline's side of a rebalance. */
export interface RebalanceListener {
  /** Where each newly assigned partition starts. */
  onAssign(partitions: readonly PartitionRef[]): Promise<readonly PartitionStart[]>;
  /** The partitions are being taken away: drop or settle what is staged for them. */
  onRevoke(partitions: readonly PartitionRef[]): Promise<void>;
}

/** Options of {@link KafkaSource}. */
export interface KafkaSourceOptions {
  brokers: string;
  groupId: string;
  topics: readonly string[];
  /** Messages per `consume` call. */
  maxPollRecords: number;
  /** How long one `consume` call waits for messages. */
  consumeTimeoutMs: number;
  /** librdkafka properties; ours (group, commits, rebalance) cannot be overridden. */
  properties: Readonly<Record<string, string>>;
}

/** A key for maps over partitions. */
export function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/** Defaults chosen for throughput; every one can be overridden through `kafka.properties`. */
const DEFAULT_PROPERTIES: Readonly<Record<string, string>> = {
  // librdkafka stops fetching a partition for fetch.queue.backoff.ms once its local queue is
  // full; the 1 s default starves a fast consumer (see BENCHMARKS.md: 2.5x with 10 ms).
  'fetch.queue.backoff.ms': '10',
  'partition.assignment.strategy': 'cooperative-sticky',
  'socket.keepalive.enable': 'true',
  // Consumer lag for the metrics comes from librdkafka's statistics.
  'statistics.interval.ms': '5000',
  // Report a position out of range rather than jump past what was never read; the pipeline
  // sets the value of kafka.on_position_lost.
  'auto.offset.reset': 'error',
};

/** How far a partition's committed position is behind its high watermark. */
export interface PartitionLag extends PartitionRef {
  /** Messages between the last offset committed after a Delta commit and the high watermark. */
  readonly lag: number;
}

/** librdkafka's warning when `auto.offset.reset` moved a position: `[thrd:main]: <topic> [<partition>]: offset reset ...`. */
const OFFSET_RESET_LOG = /^(?:\[thrd:[^\]]*\]: )?(.+) \[(\d+)\]: offset reset /;

/**
 * A connection failure no retry can cure, from one librdkafka log line (facility FAIL, written
 * at once; the matching error events wait for the first poll, after `connect` timed out): the
 * broker refused the SASL login, or a side refused the other's TLS certificate. librdkafka's
 * text names the mechanism and never the password.
 */
export function connectRefusal(event: { fac?: string; message?: string }, brokers: string, properties: Readonly<Record<string, string>>): KafkaError | undefined {
  if (event.fac !== 'FAIL' || typeof event.message !== 'string') return undefined;
  const detail = event.message.replace(/^\[thrd:[^\]]*\]: /, '');
  if (detail.includes('SASL authentication error')) {
    const mechanism = properties['sasl.mechanisms'] ?? properties['sasl.mechanism'] ?? 'GSSAPI';
    const user = properties['sasl.username'];
    return new KafkaError('KAFKA_AUTHENTICATION', `SASL authentication failed (${mechanism})${user === undefined ? '' : ` for user ${user}`} at ${brokers}: ${detail}`);
  }
  if (/certificate verify failed|alert (?:bad certificate|certificate required|unknown ca)/.test(detail)) {
    return new KafkaError('KAFKA_TLS', `TLS handshake with Kafka at ${brokers} failed (see kafka.tls): ${detail}`);
  }
  return undefined;
}

/** Consumes the configured topics in batches. */
export class KafkaSource {
  readonly #options: KafkaSourceOptions;
  readonly #listener: RebalanceListener;
  readonly #log: Logger;
  readonly #consumer: Kafka.KafkaConsumer;
  /** Rebalance events are handled one after another, in the order they came. */
  #rebalances: Promise<void> = Promise.resolve();
  #paused = false;
  readonly #assigned = new Map<string, PartitionRef>();
  /** Where each assigned partition started (for naming it when its position is lost). */
  readonly #starts = new Map<string, number>();
  /** Owned partitions librdkafka had stopped fetching at the last statistics report. */
  #stopped = new Set<string>();
  #positionResets: Array<(p: PartitionRef, detail: string) => void> = [];
  readonly #lagListeners: Array<(lags: PartitionLag[]) => void> = [];
  #fatal: KafkaDeltaError | undefined;
  /** Whether the brokers are reachable (for readiness). */
  readonly health: BrokerHealth;

  constructor(options: KafkaSourceOptions, listener: RebalanceListener, log: Logger) {
    this.#options = options;
    this.#listener = listener;
    this.#log = log;
    this.health = new BrokerHealth(log);
    // node-rdkafka replaces the default topic configuration with its second argument, dropping
    // a topic-level property set in the global one: the reset policy must go there.
    const { 'auto.offset.reset': reset, ...properties } = { ...DEFAULT_PROPERTIES, ...options.properties };
    const config: ConsumerGlobalConfig = {
      ...properties,
      'bootstrap.servers': options.brokers,
      'group.id': options.groupId,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'enable.partition.eof': true,
      offset_commit_cb: true,
      // node-rdkafka calls this with the consumer as `this`; we need our own state instead.
      rebalance_cb: (err: LibrdKafkaError, assignment: Assignment[]) => this.#onRebalance(err, assignment),
    } as ConsumerGlobalConfig;
    this.#consumer = new Kafka.KafkaConsumer(config, { 'auto.offset.reset': reset } as ConsumerTopicConfig);
    this.#consumer.on('event.error', (err) => this.#log.warn('kafka client error', { error: err }));
    this.#consumer.on('event.stats', (event: { message?: string }) => this.#onStatistics(event));
    this.#consumer.on('event.error', (err) => this.health.error(err));
    this.#consumer.on('event.log', (event: { fac?: string; message?: string }) => this.#onLibrdkafkaLog(event));
    this.#consumer.on('offset.commit', (err, offsets) => {
      if (err) this.#log.warn('committing Kafka offsets failed (the Delta log stays authoritative)', { error: err });
      else this.#log.debug('committed Kafka offsets', { partitions: offsets.length });
    });
  }

  #onRebalance(err: LibrdKafkaError, assignment: Assignment[]): void {
    const cooperative = this.#consumer.rebalanceProtocol() === 'COOPERATIVE';
    const parts: PartitionRef[] = assignment.map((a) => ({ topic: a.topic, partition: a.partition }));
    let answered = false;
    this.#rebalances = this.#rebalances.then(async () => {
      try {
        if (err.code === ASSIGN_PARTITIONS) {
          const starts = await this.#listener.onAssign(parts);
          for (const p of parts) this.#assigned.set(partitionKey(p.topic, p.partition), p);
          for (const s of starts) this.#starts.set(partitionKey(s.topic, s.partition), s.offset);
          answered = true;
          if (cooperative) this.#consumer.incrementalAssign([...starts]);
          else this.#consumer.assign([...starts]);
          if (this.#paused) this.#consumer.pause(parts.map((p) => ({ topic: p.topic, partition: p.partition })));
          this.#log.info('partitions assigned', {
            partitions: starts.map((s) => `${s.topic}[${s.partition}]@${s.offset}`).join(','),
          });
        } else if (err.code === REVOKE_PARTITIONS) {
          await this.#listener.onRevoke(parts);
          // A partition whose assignment failed (a lost position) was never handed to librdkafka.
          const owned = assignment.filter((a) => this.#assigned.has(partitionKey(a.topic, a.partition)));
          for (const p of parts) this.#assigned.delete(partitionKey(p.topic, p.partition));
          for (const p of parts) this.#starts.delete(partitionKey(p.topic, p.partition));
          if (cooperative) this.#consumer.incrementalUnassign(owned);
          else this.#consumer.unassign();
          this.#log.info('partitions revoked', { partitions: parts.map((p) => `${p.topic}[${p.partition}]`).join(',') });
        } else {
          this.#log.warn('rebalance error', { error: err });
        }
      } catch (error) {
        if (!this.#consumer.isConnected()) return;
        // librdkafka waits for an answer to an assignment, even to close: answer with nothing.
        if (err.code === ASSIGN_PARTITIONS && !answered) this.#assignNothing(cooperative);
        // Our own typed errors (a lost position) keep their class, code and message.
        this.#fatal ??=
          error instanceof KafkaDeltaError
            ? error
            : new KafkaError('KAFKA_REBALANCE', `handling a rebalance failed: ${String(error)}`, { cause: error });
        this.#log.error('handling a rebalance failed', { error });
      }
    });
  }

  #assignNothing(cooperative: boolean): void {
    try {
      if (cooperative) this.#consumer.incrementalAssign([]);
      else this.#consumer.assign([]);
    } catch (error) {
      this.#log.debug('answering a failed assignment failed', { error });
    }
  }

  /** Connects and subscribes. */
  /** Connects, runs `beforeSubscribe` (which may read metadata), then subscribes. */
  async connect(beforeSubscribe?: () => Promise<void>): Promise<void> {
    // A refused login or certificate fails the start at once (exit 4 from the CLI) instead of
    // retrying until the timeout; after the start, librdkafka's retries go on as for any outage.
    // The connect left in flight ends by its own timeout (librdkafka does not cut its metadata
    // wait short; a process exiting meanwhile waits for it too), then node-rdkafka closes it.
    let onLog: ((event: { fac?: string; message?: string }) => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onLog = (event) => {
          const refused = connectRefusal(event, this.#options.brokers, this.#options.properties);
          if (refused) reject(refused);
        };
        this.#consumer.on('event.log', onLog);
        this.#consumer.connect({ timeout: 30_000 }, (err) => {
          if (err) reject(new KafkaError('KAFKA_CONNECT', `cannot connect to Kafka at ${this.#options.brokers}: ${err.message}`, { cause: err }));
          else resolve();
        });
      });
    } finally {
      if (onLog) this.#consumer.off('event.log', onLog);
    }
    this.#consumer.setDefaultConsumeTimeout(this.#options.consumeTimeoutMs);
    await beforeSubscribe?.();
    this.#consumer.subscribe([...this.#options.topics]);
  }

  /** The next batch: up to `maxPollRecords` messages, or fewer after `consumeTimeoutMs`. */
  consume(): Promise<Message[]> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    return new Promise((resolve, reject) => {
      this.#consumer.consume(this.#options.maxPollRecords, (err, messages) => {
        if (err?.code === ERR_AUTO_OFFSET_RESET) this.#positionLost(err).then(reject, reject);
        else if (err) reject(new KafkaError('KAFKA_CONSUME', `consuming failed: ${err.message}`, { cause: err }));
        else resolve(messages);
      });
    });
  }

  /**
   * Calls `listener` when librdkafka moved a position that went out of range while reading, as
   * `auto.offset.reset` (`earliest` / `latest`) says; `detail` is librdkafka's own account.
   */
  onPositionReset(listener: (p: PartitionRef, detail: string) => void): void {
    this.#positionResets.push(listener);
  }

  /**
   * The error for a position found out of range while reading. librdkafka's consume error does
   * not say which partition: the ones whose position is outside their watermarks are named.
   */
  async #positionLost(cause?: unknown): Promise<PositionLostError> {
    const positions = new Map<string, number>();
    try {
      for (const p of this.#consumer.position()) if (p.offset >= 0) positions.set(partitionKey(p.topic, p.partition), p.offset);
    } catch (error) {
      this.#log.debug('cannot read consumer positions', { error });
    }
    const lost: LostPosition[] = [];
    for (const ref of this.assignedPartitions()) {
      const key = partitionKey(ref.topic, ref.partition);
      const next = positions.get(key) ?? this.#starts.get(key);
      if (next === undefined || next < 0) continue;
      try {
        const { low, high } = await this.watermarks(ref);
        if (next < low || next > high) lost.push({ ...ref, next, low, high });
      } catch (error) {
        this.#log.debug('cannot read watermarks', { partition: `${ref.topic}[${ref.partition}]`, error });
      }
    }
    const which =
      lost.length > 0
        ? lost.map((l) => `${l.topic}[${l.partition}] at offset ${l.next} (log start ${l.low}, high watermark ${l.high})`).join(', ')
        : 'librdkafka did not say which partition';
    return new PositionLostError(
      `a partition's position went out of range while reading (offsets deleted by retention or DeleteRecords, or the topic ` +
        `recreated): ${which}. Stopped instead of skipping. To go on, set kafka.on_position_lost to earliest or latest, accepting the loss.`,
      lost,
      cause === undefined ? undefined : { cause },
    );
  }

  /**
   * A safety net for the consume error above: node-rdkafka drops it when messages of other
   * partitions came in the same call, and the partition then stalls without a word. A partition
   * we own that librdkafka has stopped fetching in two reports in a row is taken as lost.
   */
  #checkStopped(stats: LibrdkafkaStatistics): void {
    if (this.#fatal) return;
    const stopped = stoppedFromStatistics(stats).filter((p) => this.#assigned.has(partitionKey(p.topic, p.partition)));
    const keys = new Set(stopped.map((p) => partitionKey(p.topic, p.partition)));
    const again = [...keys].some((k) => this.#stopped.has(k));
    this.#stopped = keys;
    if (!again) return;
    void this.#positionLost().then((error) => {
      if (error.positions.length === 0) return;
      this.#fatal ??= error;
      this.#log.error('a partition position was lost while reading', { error });
    });
  }

  /** librdkafka logs each position it reset; with `earliest` / `latest` that skipped offsets. */
  #onLibrdkafkaLog(event: { fac?: string; message?: string }): void {
    if (event.fac !== 'OFFSET' || typeof event.message !== 'string') return;
    const match = OFFSET_RESET_LOG.exec(event.message);
    // "to offset INVALID" is the reset `error` refuses (logged with `debug` only): consume reports it.
    if (!match || event.message.includes(' to offset INVALID')) return;
    const ref = { topic: match[1] ?? '', partition: Number(match[2]) };
    if (!this.#assigned.has(partitionKey(ref.topic, ref.partition))) return;
    this.#log.warn('a partition position went out of range while reading; librdkafka moved it as kafka.on_position_lost says', {
      topic: ref.topic,
      partition: ref.partition,
      detail: event.message,
    });
    for (const listener of this.#positionResets) listener(ref, event.message);
  }

  /** Calls `listener` with the lag of every assigned partition at each statistics interval. */
  onLag(listener: (lags: PartitionLag[]) => void): void {
    this.#lagListeners.push(listener);
  }

  /** One statistics report, parsed once for its readers. */
  #onStatistics(event: { message?: string }): void {
    const stats = parseStatistics(event.message);
    if (stats === undefined) {
      this.#log.debug('unreadable librdkafka statistics');
      return;
    }
    this.health.statistics(stats);
    this.#checkStopped(stats);
    if (this.#lagListeners.length === 0) return;
    const owned = lagsFromStatistics(stats).filter((l) => this.#assigned.has(partitionKey(l.topic, l.partition)));
    for (const listener of this.#lagListeners) listener(owned);
  }

  /** Calls `listener` when a partition has no more messages for now (`enable.partition.eof`). */
  onPartitionEof(listener: (p: PartitionStart) => void): void {
    this.#consumer.on('partition.eof', (eof) => listener({ topic: eof.topic, partition: eof.partition, offset: eof.offset }));
  }

  /**
   * Waits until rebalance events received so far are handled; rejects with the failure of one
   * (a run may end, caught up, before its next consume would have reported it).
   */
  async settled(): Promise<void> {
    await this.#rebalances;
    if (this.#fatal) throw this.#fatal;
  }

  /** Partitions currently assigned to this consumer (and already positioned). */
  assignedPartitions(): PartitionRef[] {
    return [...this.#assigned.values()];
  }

  /**
   * Stops fetching from every assigned partition (consume keeps the group membership alive and
   * returns nothing) until {@link KafkaSource.resume}. Partitions assigned meanwhile start paused.
   */
  pause(): void {
    this.#paused = true;
    const parts = this.assignedPartitions();
    if (parts.length > 0) this.#consumer.pause(parts.map((p) => ({ topic: p.topic, partition: p.partition })));
  }

  /** Fetches again from every assigned partition. */
  resume(): void {
    this.#paused = false;
    const parts = this.assignedPartitions();
    if (parts.length > 0) this.#consumer.resume(parts.map((p) => ({ topic: p.topic, partition: p.partition })));
  }

  /** Whether fetching is paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Records progress in Kafka (for lag tools); `offset` is the next offset to read. */
  commitOffsets(positions: readonly PartitionStart[]): void {
    const owned = positions.filter((p) => this.#assigned.has(partitionKey(p.topic, p.partition)));
    if (owned.length === 0) return;
    try {
      this.#consumer.commit(owned.map((p) => ({ topic: p.topic, partition: p.partition, offset: p.offset })));
    } catch (error) {
      this.#log.warn('committing Kafka offsets failed (the Delta log stays authoritative)', { error });
    }
  }

  /** The partition ids of a topic, from the cluster's metadata. */
  partitionsOf(topic: string, timeoutMs = 10_000): Promise<number[]> {
    return new Promise((resolve, reject) => {
      this.#consumer.getMetadata({ topic, timeout: timeoutMs }, (err, metadata) => {
        const found = metadata?.topics.find((t) => t.name === topic);
        if (err || !found) reject(new KafkaError('KAFKA_METADATA', `cannot read the partitions of ${topic}: ${err?.message ?? 'no such topic'}`, { cause: err }));
        else resolve(found.partitions.map((p) => p.id).sort((a, b) => a - b));
      });
    });
  }

  /** The names of every topic in the cluster, from its metadata. */
  topicNames(timeoutMs = 10_000): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.#consumer.getMetadata({ allTopics: true, timeout: timeoutMs }, (err, metadata) => {
        if (err) reject(new KafkaError('KAFKA_METADATA', `cannot read the topics of the cluster: ${err.message}`, { cause: err }));
        else resolve(metadata.topics.map((t) => t.name));
      });
    });
  }

  /** The low and high watermarks of a partition. */
  watermarks(p: PartitionRef, timeoutMs = 10_000): Promise<{ low: number; high: number }> {
    return new Promise((resolve, reject) => {
      this.#consumer.queryWatermarkOffsets(p.topic, p.partition, timeoutMs, (err, offsets) => {
        if (err) reject(new KafkaError('KAFKA_WATERMARKS', `cannot read watermarks of ${p.topic}[${p.partition}]: ${err.message}`, { cause: err }));
        else resolve({ low: offsets.lowOffset, high: offsets.highOffset });
      });
    });
  }

  /** Leaves the group and closes the connection. */
  async disconnect(): Promise<void> {
    if (!this.#consumer.isConnected()) return;
    await new Promise<void>((resolve) => {
      this.#consumer.disconnect(() => resolve());
    });
  }
}
