/**
 * When to stop fetching: staging over `buffer.max_disk`, or a staging disk too full to spill
 * the rows over `buffer.max_memory`. Either way the consumer stays in its group (its partitions
 * are paused, `consume` keeps being called) and a flush is asked for early, since a commit is
 * what frees memory and spill files. A full disk is retried with growing waits; fetching
 * resumes when both conditions are gone.
 */
import type { KafkaSource } from '../kafka/consumer.js';
import type { Logger } from '../log.js';
import type { PipelineMetrics } from '../metrics/metrics.js';
import type { Stage } from '../stage.js';

/** The first wait before spilling again on a full disk; it doubles up to the longest. */
const FIRST_RETRY_MS = 1_000;
const LONGEST_RETRY_MS = 30_000;

/** What {@link Backpressure} works with. */
export interface BackpressureOptions {
  source: KafkaSource;
  stage: Stage;
  /** Asks for a flush now (false when one is already running or queued). */
  requestFlush: () => void;
  maxDiskBytes: number;
  log: Logger;
  metrics: PipelineMetrics;
}

/** Pauses and resumes fetching on staging limits; call {@link Backpressure.apply} once per loop. */
export class Backpressure {
  readonly #o: BackpressureOptions;
  #overDisk = false;
  /** Why the last spill failed on a full disk, while it has not succeeded since. */
  #diskFull: string | undefined;
  #retryAt = 0;
  #retryMs = FIRST_RETRY_MS;

  constructor(options: BackpressureOptions) {
    this.#o = options;
  }

  /** Notes an append's report: set when the rows over the memory cap could not be spilled. */
  noteSpillBlocked(reason: string | null | undefined): void {
    if (reason && !this.#diskFull) this.#enterDiskFull(reason);
  }

  /** Pauses or resumes fetching; while the disk is full, tries the spill again when due. */
  async apply(): Promise<void> {
    const o = this.#o;
    if (this.#diskFull !== undefined && performance.now() >= this.#retryAt) {
      const still = await o.stage.retrySpill();
      if (still) {
        this.#retryMs = Math.min(this.#retryMs * 2, LONGEST_RETRY_MS);
        this.#retryAt = performance.now() + this.#retryMs;
        o.log.debug('staging disk still full', { retryInMs: this.#retryMs });
      } else {
        this.#diskFull = undefined;
        o.metrics.stagingDiskFull(false);
        o.log.info('staging disk has room again (or a flush took the rows): spilling resumed');
      }
    }
    const onDisk = o.stage.spilledBytes;
    const overDisk = onDisk > o.maxDiskBytes;
    if (overDisk !== this.#overDisk) {
      this.#overDisk = overDisk;
      if (overDisk) o.log.warn('staging is over buffer.max_disk: consumption paused, flushing early', { bytes: onDisk, maxDisk: o.maxDiskBytes });
      else o.log.info('staging back under buffer.max_disk', { bytes: onDisk, maxDisk: o.maxDiskBytes });
    }
    const pause = overDisk || this.#diskFull !== undefined;
    if (pause) o.requestFlush();
    if (pause && !o.source.paused) o.source.pause();
    else if (!pause && o.source.paused) {
      o.source.resume();
      o.log.info('consumption resumed');
    }
  }

  #enterDiskFull(reason: string): void {
    this.#diskFull = reason;
    this.#retryMs = FIRST_RETRY_MS;
    this.#retryAt = performance.now() + this.#retryMs;
    this.#o.metrics.stagingDiskFull(true);
    this.#o.log.warn('staging disk full: rows kept in memory, consumption paused, flushing early; spilling is retried', { reason });
  }
}
