/**
 * Flushing: take the staged segment, commit its dead letters and then its rows (each commit
 * carrying the Kafka positions it covers), then record progress in Kafka. At most one flush is
 * in flight; consumption goes on meanwhile into a fresh stage.
 */
import type { PartitionStart } from '../kafka/consumer.js';
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
  /** Days (`YYYY-MM-DD`) written into. */
  readonly days: readonly string[];
  /** The next offset to read per topic-partition after this flush. */
  readonly positions: readonly PartitionStart[];
  readonly durationMs: number;
}

/** What {@link Flusher} works with. */
export interface FlusherOptions {
  target: DeltaTarget;
  deadLetters: DeltaTarget | undefined;
  stage: Stage;
  topics: readonly string[];
  appId: (topic: string, partition: number) => string;
  maxAttempts: number;
  /** Consolidation and MERGE settings of each row commit. */
  write: { dedup?: DedupOptions; merge?: MergeOptions };
  metrics: PipelineMetrics;
  log: Logger;
  commitKafkaOffsets: (positions: readonly PartitionStart[]) => void;
  /** Waits until dead letters sent elsewhere (a Kafka topic) are durable. */
  beforeCommit: () => Promise<void>;
  onFlush: (summary: FlushSummary) => void;
}

/** Runs flushes one at a time and remembers the first failure. */
export class Flusher {
  readonly #o: FlusherOptions;
  #inflight: Promise<FlushSummary | undefined> | undefined;
  #failure: unknown;
  readonly totals = { rowsWritten: 0, rowsDeduplicated: 0, deadLetters: 0, flushes: 0 };

  constructor(options: FlusherOptions) {
    this.#o = options;
  }

  /** Rethrows the failure of an earlier flush: nothing may be committed after a lost segment. */
  throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Starts a flush unless one is in flight; returns whether it started. */
  requestFlush(): boolean {
    this.throwIfFailed();
    if (this.#inflight) return false;
    const flight = this.#flushOnce();
    this.#inflight = flight;
    flight.then(
      () => {
        if (this.#inflight === flight) this.#inflight = undefined;
      },
      (error: unknown) => {
        this.#failure ??= error;
        if (this.#inflight === flight) this.#inflight = undefined;
      },
    );
    return true;
  }

  /** Waits for the flush in flight, if any; rethrows its failure. */
  async settle(): Promise<void> {
    if (this.#inflight) await this.#inflight.catch(() => undefined);
    this.throwIfFailed();
  }

  /** Flushes now (after the flush in flight) and waits for it. */
  async flush(): Promise<FlushSummary | undefined> {
    await this.settle();
    const flight = this.#flushOnce();
    this.#inflight = flight;
    try {
      return await flight;
    } catch (error) {
      this.#failure ??= error;
      throw error;
    } finally {
      if (this.#inflight === flight) this.#inflight = undefined;
    }
  }

  async #flushOnce(): Promise<FlushSummary | undefined> {
    const o = this.#o;
    const segment = o.stage.take();
    const positions = segment.positions();
    if (positions.length === 0) return undefined;
    const started = performance.now();
    const topicOf = (index: number) => o.topics[index] ?? `#${index}`;
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
    let deadLetters = 0;
    if (segment.deadLetters > 0 && o.deadLetters) {
      const dl = await o.deadLetters.commitDeadLetters(segment, appIds, o.maxAttempts);
      deadLetters = dl.rowsWritten;
    }
    await o.beforeCommit();
    const commitStarted = performance.now();
    const result = await o.target.commitRows(segment, appIds, { maxAttempts: o.maxAttempts, ...o.write });
    const commitSeconds = (performance.now() - commitStarted) / 1000;
    // The table holds the rows now; their spill files (if any) can go.
    await segment.release();
    const next = positions.map((p) => ({ topic: topicOf(p.topicIndex), partition: p.partition, offset: p.lastOffset + 1 }));
    o.commitKafkaOffsets(next);

    const summary: FlushSummary = {
      version: result.version ?? undefined,
      rowsWritten: result.rowsWritten,
      rowsSkipped: result.rowsSkipped,
      rowsDeduplicated: result.rowsDeduplicated,
      merge: result.merge ?? undefined,
      deadLetters,
      days,
      positions: next,
      durationMs: performance.now() - started,
    };
    this.totals.rowsWritten += result.rowsWritten;
    this.totals.rowsDeduplicated += result.rowsDeduplicated;
    this.totals.deadLetters += deadLetters;
    this.totals.flushes += 1;
    o.metrics.flushed(o.target.uri, summary, commitSeconds, result.attempts);
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
    o.onFlush(summary);
    return summary;
  }
}
