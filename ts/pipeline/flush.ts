/**
 * Flushing: take the staged segment, deliver its dead letters and then commit its rows (the
 * commit carrying the Kafka positions it covers), then record progress in Kafka. Flushes run one
 * at a time, in the order asked for: a later one must never commit before an earlier one, whose
 * rows it would otherwise make look already recorded. Consumption goes on meanwhile.
 */
import type { DeadLetterSink } from '../dead-letters/sink.js';
import { DeadLetterTally } from '../dead-letters/tally.js';
import type { PartitionStart } from '../kafka/consumer.js';
import { topicAt } from './topics.js';
import type { Logger } from '../log.js';
import type { PipelineMetrics } from '../metrics/metrics.js';
import type { Stage } from '../stage.js';
import type { DeltaTarget, DedupOptions, MergeOptions, MergeStats } from '../table.js';

/** What one flush committed. */
export interface FlushSummary {
  /** The table version committed; absent when the table already held everything. */
  readonly version: number | undefined;
  readonly rowsWritten: number;
  /** Rows the table already held (a replay after a crash). */
  readonly rowsSkipped: number;
  /** Rows folded into another row with the same key, or dropped as its duplicates. */
  readonly rowsDeduplicated: number;
  /** What the MERGE did, in MERGE mode. */
  readonly merge: MergeStats | undefined;
  readonly deadLetters: number;
  /** Columns this flush added to the table (`delta.schema_evolution: add_columns`). */
  readonly columnsAdded: readonly string[];
  /** Days (`YYYY-MM-DD`) written into. */
  readonly days: readonly string[];
  /** The next offset to read per topic-partition after this flush. */
  readonly positions: readonly PartitionStart[];
  readonly durationMs: number;
}

/** What {@link Flusher} works with. */
export interface FlusherOptions {
  target: DeltaTarget;
  deadLetters: DeadLetterSink;
  stage: Stage;
  topics: readonly string[];
  appId: (topic: string, partition: number) => string;
  maxAttempts: number;
  /** Consolidation and MERGE settings of each row commit. */
  write: { dedup?: DedupOptions; merge?: MergeOptions };
  metrics: PipelineMetrics;
  log: Logger;
  commitKafkaOffsets: (positions: readonly PartitionStart[]) => void;
  onFlush: (summary: FlushSummary) => void;
  /** Dead letters staged since the last flush, logged once per reason when it commits. */
  deadLetterTally: DeadLetterTally;
}

/**
 * Runs flushes (and work that must not interleave with them) one at a time, in order, and
 * remembers the first failure: nothing may be committed after a lost segment.
 */
export class Flusher {
  readonly #o: FlusherOptions;
  /** The end of the queue of flushes and exclusive work. */
  #tail: Promise<void> = Promise.resolve();
  /** A flush queued and not started yet: later requests join it (it takes what they want). */
  #queued: Promise<FlushSummary | undefined> | undefined;
  #running = false;
  #failure: unknown;
  readonly totals = { rowsWritten: 0, rowsDeduplicated: 0, deadLetters: 0, flushes: 0 };

  constructor(options: FlusherOptions) {
    this.#o = options;
  }

  /** Rethrows the failure of an earlier flush. */
  throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Queues a flush unless one is running or queued; returns whether it queued one. */
  requestFlush(): boolean {
    this.throwIfFailed();
    if (this.#running || this.#queued) return false;
    this.#queueFlush().catch(() => undefined);
    return true;
  }

  /** Waits for every flush queued so far; rethrows a failure. */
  async settle(): Promise<void> {
    await this.#tail;
    this.throwIfFailed();
  }

  /**
   * Flushes everything staged now and waits for it: joins a flush queued and not started yet,
   * else queues one after the flush running.
   */
  flush(): Promise<FlushSummary | undefined> {
    return this.#queueFlush();
  }

  /** Runs `work` after the flushes queued so far, with no flush running meanwhile. */
  exclusive<T>(work: () => Promise<T> | T): Promise<T> {
    return this.#enqueue(async () => work());
  }

  #enqueue<T>(job: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(job);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  #queueFlush(): Promise<FlushSummary | undefined> {
    if (this.#queued) return this.#queued;
    const flight: Promise<FlushSummary | undefined> = this.#enqueue(async () => {
      if (this.#queued === flight) this.#queued = undefined;
      this.throwIfFailed();
      this.#running = true;
      try {
        return await this.#flushOnce();
      } catch (error) {
        this.#failure ??= error;
        throw error;
      } finally {
        this.#running = false;
      }
    });
    this.#queued = flight;
    return flight;
  }

  async #flushOnce(): Promise<FlushSummary | undefined> {
    const o = this.#o;
    const segment = o.stage.take();
    const tally = o.deadLetterTally.drain();
    const positions = segment.positions();
    if (positions.length === 0) return undefined;
    const started = performance.now();
    const topicOf = (index: number) => topicAt(o.topics, index);
    const appIds = positions.map((p) => ({
      topicIndex: p.topicIndex,
      partition: p.partition,
      appId: o.appId(topicOf(p.topicIndex), p.partition),
    }));
    const days = segment.days;
    o.log.debug('flush started', {
      rows: segment.rows,
      spilledRows: segment.spilledRows,
      deadLetters: segment.deadLetters,
      days: days.join(','),
    });
    // Before the rows' commit moves the positions past them.
    const deadLetters = await o.deadLetters.deliver(segment, appIds, o.target);
    const commitStarted = performance.now();
    const result = await o.target.commitRows(segment, appIds, { maxAttempts: o.maxAttempts, ...o.write });
    const commitSeconds = (performance.now() - commitStarted) / 1000;
    // The table holds the rows now; their spill files (if any) can go.
    await segment.release();
    // A column another writer added is decoded from the next batch on.
    const added = o.target.followSchema(o.stage);
    if (added.length > 0) o.log.info('the table has new columns: decoding them from now on', { columns: added.join(',') });
    const next = positions.map((p) => ({ topic: topicOf(p.topicIndex), partition: p.partition, offset: p.lastOffset + 1 }));
    o.commitKafkaOffsets(next);

    const summary: FlushSummary = {
      version: result.version ?? undefined,
      rowsWritten: result.rowsWritten,
      rowsSkipped: result.rowsSkipped,
      rowsDeduplicated: result.rowsDeduplicated,
      merge: result.merge ?? undefined,
      deadLetters,
      columnsAdded: result.columnsAdded,
      days,
      positions: next,
      durationMs: performance.now() - started,
    };
    this.totals.rowsWritten += result.rowsWritten;
    this.totals.rowsDeduplicated += result.rowsDeduplicated;
    this.totals.deadLetters += deadLetters;
    this.totals.flushes += 1;
    o.metrics.flushed(o.target.uri, summary, commitSeconds, result.attempts);
    for (const column of summary.columnsAdded) o.log.info('column added to the table', { column, version: summary.version });
    o.log.info('flush committed', {
      version: summary.version,
      rows: summary.rowsWritten,
      skipped: summary.rowsSkipped,
      deduplicated: summary.rowsDeduplicated,
      ...(summary.merge && {
        updated: summary.merge.rowsUpdated,
        inserted: summary.merge.rowsInserted,
        deleted: summary.merge.rowsDeleted,
        filesScanned: summary.merge.filesScanned,
        filesSkipped: summary.merge.filesSkipped,
      }),
      deadLetters,
      days: days.join(','),
      ms: Math.round(summary.durationMs),
    });
    DeadLetterTally.log(o.log, o.deadLetters.description, tally);
    o.onFlush(summary);
    return summary;
  }
}
