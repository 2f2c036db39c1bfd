/**
 * Prometheus metrics of one pipeline (prom-client). The names are a contract: dashboards and
 * alerts are built on them.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TopicTally } from '../kafka/packer.js';
import type { FlushSummary } from '../pipeline/flush.js';
import { nativeStepTotals, nativeStorageRetries, type NativeStepTotals } from '../native.js';
import { registerFlushProgress } from './flush-progress.js';
import { registerNativeMemory } from './native-memory.js';
import { MaintenanceMetrics } from './maintenance.js';

const NATIVE_STEPS = ['decode', 'dedup', 'write'] as const satisfies ReadonlyArray<keyof NativeStepTotals>;

/**
 * A counter whose value is read from the native core's totals at scrape time (prom-client counters
 * only count up, so each collect resets it to the total).
 */
function nativeStepCounter(name: string, help: string, field: 'seconds' | 'calls' | 'rows', registers: Registry[]): Counter<'step'> {
  return new Counter({
    name,
    help,
    labelNames: ['step'],
    registers,
    collect() {
      const totals = nativeStepTotals();
      this.reset();
      for (const step of NATIVE_STEPS) this.inc({ step }, totals[step][field]);
    },
  });
}

/** The pipeline's metrics, in a registry of their own that an embedder can merge. */
export class PipelineMetrics {
  /** The registry holding every series below. */
  readonly registry: Registry;
  /** Compaction and vacuum series. */
  readonly maintenance: MaintenanceMetrics;
  readonly #messagesConsumed: Counter<'topic'>;
  readonly #messagesFiltered: Counter<'topic'>;
  readonly #bytesConsumed: Counter<'topic'>;
  readonly #recordsWritten: Counter<'table'>;
  readonly #recordsDeduplicated: Counter<'table'>;
  readonly #deadLetters: Counter<'topic' | 'reason'>;
  readonly #flushDuration: Histogram;
  readonly #commitDuration: Histogram;
  readonly #commitRetries: Counter;
  readonly #commitConflicts: Counter;
  readonly #stagedRecords: Gauge<'location'>;
  readonly #stagedBytes: Gauge<'location'>;
  readonly #tableVersion: Gauge<'table'>;
  readonly #lastCommit: Gauge<'table'>;
  readonly #consumerLag: Gauge<'topic' | 'partition'>;
  readonly #positionsLost: Counter<'topic'>;
  readonly #offsetsSkipped: Counter<'topic'>;
  readonly #stagingDiskFull: Gauge;
  readonly #brokerUp: Gauge;
  readonly #stagingDiskFullTotal: Counter;
  readonly #columnsAdded: Counter;

  constructor(options: { registry?: Registry; defaultMetrics?: boolean } = {}) {
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    const registers = [registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
    this.#messagesConsumed = new Counter({
      name: 'kafka_delta_messages_consumed_total',
      help: 'Kafka messages consumed.',
      labelNames: ['topic'],
      registers,
    });
    this.#messagesFiltered = new Counter({
      name: 'kafka_delta_messages_filtered_total',
      help: 'Kafka messages transform.filter dropped (consumed, not written, not dead letters).',
      labelNames: ['topic'],
      registers,
    });
    this.#bytesConsumed = new Counter({
      name: 'kafka_delta_bytes_consumed_total',
      help: 'Payload bytes consumed.',
      labelNames: ['topic'],
      registers,
    });
    this.#recordsWritten = new Counter({
      name: 'kafka_delta_records_written_total',
      help: 'Rows committed to the Delta table.',
      labelNames: ['table'],
      registers,
    });
    this.#recordsDeduplicated = new Counter({
      name: 'kafka_delta_records_deduplicated_total',
      help: 'Rows consolidated away at flush: duplicates of a key, or folded into its merged row.',
      labelNames: ['table'],
      registers,
    });
    this.#deadLetters = new Counter({
      name: 'kafka_delta_dead_letters_total',
      help: 'Messages sent to the dead-letter sink, by reason.',
      labelNames: ['topic', 'reason'],
      registers,
    });
    this.#columnsAdded = new Counter({
      name: 'kafka_delta_columns_added_total',
      help: 'Columns (and struct fields) schema evolution added to the table, by column path.',
      labelNames: ['table', 'column'],
      registers,
    });
    this.#flushDuration = new Histogram({
      name: 'kafka_delta_flush_duration_seconds',
      help: 'Time from taking a staged segment to its committed Delta version.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.#commitDuration = new Histogram({
      name: 'kafka_delta_commit_duration_seconds',
      help: 'Time spent writing files and committing one Delta transaction.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.#commitRetries = new Counter({
      name: 'kafka_delta_commit_retries_total',
      help: 'Commit attempts repeated after a conflict.',
      registers,
    });
    this.#commitConflicts = new Counter({
      name: 'kafka_delta_commit_conflicts_total',
      help: 'Commits that met a concurrent writer.',
      registers,
    });
    this.#stagedRecords = new Gauge({
      name: 'kafka_delta_staged_records',
      help: 'Rows staged for the next flush.',
      labelNames: ['location'],
      registers,
    });
    this.#stagedBytes = new Gauge({
      name: 'kafka_delta_staged_bytes',
      help: 'Bytes staged for the next flush.',
      labelNames: ['location'],
      registers,
    });
    this.#tableVersion = new Gauge({
      name: 'kafka_delta_table_version',
      help: 'The Delta table version last seen or committed.',
      labelNames: ['table'],
      registers,
    });
    this.#lastCommit = new Gauge({
      name: 'kafka_delta_last_commit_timestamp_seconds',
      help: 'Unix time of the last successful commit.',
      labelNames: ['table'],
      registers,
    });
    nativeStepCounter('kafka_delta_native_step_seconds_total', 'Seconds spent in native steps: decode (JSON to Arrow), dedup (consolidation), write (Parquet and commit); process-wide.', 'seconds', registers);
    nativeStepCounter('kafka_delta_native_step_calls_total', 'Calls of native steps; process-wide.', 'calls', registers);
    nativeStepCounter('kafka_delta_native_step_rows_total', 'Rows through native steps (decode: messages, dedup: rows in, write: rows written); process-wide.', 'rows', registers);
    registerFlushProgress(registers);
    registerNativeMemory(registers);
    this.maintenance = new MaintenanceMetrics(registers);
    this.#brokerUp = new Gauge({
      name: 'kafka_delta_broker_up',
      help: '1 while the consumer reaches a Kafka broker, 0 while every broker is unreachable (librdkafka keeps retrying).',
      registers,
    });
    this.#stagingDiskFull = new Gauge({
      name: 'kafka_delta_staging_disk_full',
      help: '1 while the staging disk is too full to spill the rows over buffer.max_memory (consumption paused, retried), else 0.',
      registers,
    });
    this.#stagingDiskFullTotal = new Counter({
      name: 'kafka_delta_staging_disk_full_total',
      help: 'Times spilling was blocked by a full staging disk.',
      registers,
    });
    new Counter({
      name: 'kafka_delta_storage_retries_total',
      help: 'Transient storage failures (timeouts, 5xx, throttling, a full disk) of table reads and commits retried after the object store\'s own retries; process-wide.',
      registers,
      collect() {
        this.reset();
        this.inc(nativeStorageRetries());
      },
    });
    this.#consumerLag = new Gauge({
      name: 'kafka_delta_consumer_lag',
      help: 'Messages between the position committed after the last Delta commit and the high watermark (librdkafka statistics).',
      labelNames: ['topic', 'partition'],
      registers,
    });
    this.#positionsLost = new Counter({
      name: 'kafka_delta_positions_lost_total',
      help: 'Recorded partition positions found below the log start (retention, DeleteRecords) and moved forward by kafka.on_position_lost.',
      labelNames: ['topic'],
      registers,
    });
    this.#offsetsSkipped = new Counter({
      name: 'kafka_delta_offsets_skipped_total',
      help: 'Offsets never read because a lost position was moved forward (where known).',
      labelNames: ['topic'],
      registers,
    });
  }

  /** Counts a lost position moved by `kafka.on_position_lost`, and the offsets it skipped where known. */
  positionLost(topic: string, skipped: number | undefined): void {
    this.#positionsLost.inc({ topic });
    if (skipped !== undefined && skipped > 0) this.#offsetsSkipped.inc({ topic }, skipped);
  }

  /** Records the lag of the partitions this consumer owns; drops partitions it no longer owns. */
  consumerLag(lags: ReadonlyArray<{ topic: string; partition: number; lag: number }>): void {
    this.#consumerLag.reset();
    for (const l of lags) this.#consumerLag.set({ topic: l.topic, partition: String(l.partition) }, l.lag);
  }

  /** Counts a consumed batch from the packer's tally per topic (indexed like `topics`). */
  consumed(topics: readonly string[], tally: TopicTally): void {
    tally.messages.forEach((count, i) => {
      const topic = topics[i] ?? `#${i}`;
      this.#messagesConsumed.inc({ topic }, count);
      this.#bytesConsumed.inc({ topic }, tally.bytes[i] ?? 0);
    });
  }

  /** Counts the messages `transform.filter` dropped from a staged batch, by topic index. */
  filtered(topics: readonly string[], counts: readonly number[]): void {
    counts.forEach((count, i) => {
      if (count > 0) this.#messagesFiltered.inc({ topic: topics[i] ?? `#${i}` }, count);
    });
  }

  /** Records what is staged now: rows and bytes in memory, and spilled to disk. */
  staged(rows: number, bytes: number, disk: { rows: number; bytes: number } = { rows: 0, bytes: 0 }): void {
    this.#stagedRecords.set({ location: 'memory' }, rows - disk.rows);
    this.#stagedBytes.set({ location: 'memory' }, bytes);
    this.#stagedRecords.set({ location: 'disk' }, disk.rows);
    this.#stagedBytes.set({ location: 'disk' }, disk.bytes);
  }

  /** Records whether the consumer reaches its brokers. */
  brokerUp(up: boolean): void {
    this.#brokerUp.set(up ? 1 : 0);
  }

  /** Records that spilling became blocked by a full staging disk (`true`), or unblocked. */
  stagingDiskFull(full: boolean): void {
    if (full) this.#stagingDiskFullTotal.inc();
    this.#stagingDiskFull.set(full ? 1 : 0);
  }

  /** Counts a dead letter. */
  deadLetter(topic: string, reason: string): void {
    this.#deadLetters.inc({ topic, reason });
  }

  /** Records the table version seen. */
  tableVersion(table: string, version: number): void {
    this.#tableVersion.set({ table }, version);
  }

  /** Records a committed flush. */
  flushed(table: string, summary: FlushSummary, commitSeconds: number, attempts: number): void {
    this.#recordsWritten.inc({ table }, summary.rowsWritten);
    this.#recordsDeduplicated.inc({ table }, summary.rowsDeduplicated);
    for (const column of summary.columnsAdded) this.#columnsAdded.inc({ table, column });
    this.#flushDuration.observe(summary.durationMs / 1000);
    this.#commitDuration.observe(commitSeconds);
    if (attempts > 1) {
      this.#commitConflicts.inc(attempts - 1);
      this.#commitRetries.inc(attempts - 1);
    }
    if (summary.version !== undefined) {
      this.#tableVersion.set({ table }, summary.version);
      this.#lastCommit.set({ table }, Date.now() / 1000);
    }
  }
}
