/**
 * The Kafka side: a node-rdkafka consumer in a `consume(n)` loop, with manual offsets and a
 * rebalance callback that asks the pipeline where each newly assigned partition starts (the
 * Delta log decides) before assigning it. It knows nothing of Delta.
 */
import Kafka from 'node-rdkafka';
import type { Assignment, ConsumerGlobalConfig, LibrdKafkaError, Message } from 'node-rdkafka';
import { KafkaError } from '../errors.js';
import type { Logger } from '../log.js';

/** librdkafka's rebalance event codes. */
const ASSIGN_PARTITIONS = -175;
const REVOKE_PARTITIONS = -174;
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
};

/** How far a partition's committed position is behind its high watermark. */
export interface PartitionLag extends PartitionRef {
  /** Messages between the last offset committed after a Delta commit and the high watermark. */
  readonly lag: number;
}

/** The shape of librdkafka's statistics JSON we read (see its STATISTICS.md). */
interface LibrdkafkaStatistics {
  topics?: Record<string, { partitions?: Record<string, { partition?: number; consumer_lag?: number }> }>;
}

/** Per-partition lags from one librdkafka statistics report. */
export function lagsFromStatistics(json: string): PartitionLag[] {
  const stats = JSON.parse(json) as LibrdkafkaStatistics;
  const lags: PartitionLag[] = [];
  for (const [topic, t] of Object.entries(stats.topics ?? {})) {
    for (const p of Object.values(t.partitions ?? {})) {
      // Partition -1 is librdkafka's internal unassigned queue; lag -1 means unknown yet.
      if (p.partition === undefined || p.partition < 0 || p.consumer_lag === undefined || p.consumer_lag < 0) continue;
      lags.push({ topic, partition: p.partition, lag: p.consumer_lag });
    }
  }
  return lags;
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
  #fatal: KafkaError | undefined;

  constructor(options: KafkaSourceOptions, listener: RebalanceListener, log: Logger) {
    this.#options = options;
    this.#listener = listener;
    this.#log = log;
    const config: ConsumerGlobalConfig = {
      ...DEFAULT_PROPERTIES,
      ...options.properties,
      'bootstrap.servers': options.brokers,
      'group.id': options.groupId,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'enable.partition.eof': true,
      offset_commit_cb: true,
      // node-rdkafka calls this with the consumer as `this`; we need our own state instead.
      rebalance_cb: (err: LibrdKafkaError, assignment: Assignment[]) => this.#onRebalance(err, assignment),
    } as ConsumerGlobalConfig;
    this.#consumer = new Kafka.KafkaConsumer(config, {});
    this.#consumer.on('event.error', (err) => this.#log.warn('kafka client error', { error: err }));
    this.#consumer.on('offset.commit', (err, offsets) => {
      if (err) this.#log.warn('committing Kafka offsets failed (the Delta log stays authoritative)', { error: err });
      else this.#log.debug('committed Kafka offsets', { partitions: offsets.length });
    });
  }

  #onRebalance(err: LibrdKafkaError, assignment: Assignment[]): void {
    const cooperative = this.#consumer.rebalanceProtocol() === 'COOPERATIVE';
    const parts: PartitionRef[] = assignment.map((a) => ({ topic: a.topic, partition: a.partition }));
    this.#rebalances = this.#rebalances.then(async () => {
      try {
        if (err.code === ASSIGN_PARTITIONS) {
          const starts = await this.#listener.onAssign(parts);
          for (const p of parts) this.#assigned.set(partitionKey(p.topic, p.partition), p);
          if (cooperative) this.#consumer.incrementalAssign([...starts]);
          else this.#consumer.assign([...starts]);
          if (this.#paused) this.#consumer.pause(parts.map((p) => ({ topic: p.topic, partition: p.partition })));
          this.#log.info('partitions assigned', {
            partitions: starts.map((s) => `${s.topic}[${s.partition}]@${s.offset}`).join(','),
          });
        } else if (err.code === REVOKE_PARTITIONS) {
          await this.#listener.onRevoke(parts);
          for (const p of parts) this.#assigned.delete(partitionKey(p.topic, p.partition));
          if (cooperative) this.#consumer.incrementalUnassign(assignment);
          else this.#consumer.unassign();
          this.#log.info('partitions revoked', { partitions: parts.map((p) => `${p.topic}[${p.partition}]`).join(',') });
        } else {
          this.#log.warn('rebalance error', { error: err });
        }
      } catch (error) {
        if (!this.#consumer.isConnected()) return;
        this.#fatal = new KafkaError('KAFKA_REBALANCE', `handling a rebalance failed: ${String(error)}`, { cause: error });
        this.#log.error('handling a rebalance failed', { error });
      }
    });
  }

  /** Connects and subscribes. */
  async connect(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#consumer.connect({ timeout: 30_000 }, (err) => {
        if (err) reject(new KafkaError('KAFKA_CONNECT', `cannot connect to Kafka at ${this.#options.brokers}: ${err.message}`, { cause: err }));
        else resolve();
      });
    });
    this.#consumer.setDefaultConsumeTimeout(this.#options.consumeTimeoutMs);
    this.#consumer.subscribe([...this.#options.topics]);
  }

  /** The next batch: up to `maxPollRecords` messages, or fewer after `consumeTimeoutMs`. */
  consume(): Promise<Message[]> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    return new Promise((resolve, reject) => {
      this.#consumer.consume(this.#options.maxPollRecords, (err, messages) => {
        if (err) reject(new KafkaError('KAFKA_CONSUME', `consuming failed: ${err.message}`, { cause: err }));
        else resolve(messages);
      });
    });
  }

  /** Calls `listener` with the lag of every assigned partition at each statistics interval. */
  onLag(listener: (lags: PartitionLag[]) => void): void {
    this.#consumer.on('event.stats', (event: { message?: string }) => {
      try {
        if (typeof event.message === 'string') {
          const owned = lagsFromStatistics(event.message).filter((l) => this.#assigned.has(partitionKey(l.topic, l.partition)));
          listener(owned);
        }
      } catch (error) {
        this.#log.debug('unreadable librdkafka statistics', { error });
      }
    });
  }

  /** Calls `listener` when a partition has no more messages for now (`enable.partition.eof`). */
  onPartitionEof(listener: (p: PartitionStart) => void): void {
    this.#consumer.on('partition.eof', (eof) => listener({ topic: eof.topic, partition: eof.partition, offset: eof.offset }));
  }

  /** Waits until rebalance events received so far are handled. */
  settled(): Promise<void> {
    return this.#rebalances;
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
