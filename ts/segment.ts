/**
 * A segment: what one flush commits (rows by day, in memory and spilled, dead letters, and the
 * Kafka positions covered), taken out of a `Stage`.
 */
import type { PartitionPosition, StagedSegment as NativeStagedSegment } from './native.js';
import { InvalidArgumentError, native, nativeSync } from './errors.js';

const segmentHandles = new WeakMap<StagedSegment, NativeStagedSegment>();

/** The native handle of a segment, for `DeltaTarget` commits. Not part of the public API. */
export function nativeSegment(segment: StagedSegment): NativeStagedSegment {
  const handle = segmentHandles.get(segment);
  if (!handle) throw new InvalidArgumentError('not a segment taken from a Stage');
  return handle;
}

/** What one flush commits: rows by day, dead letters, and the Kafka positions covered. */
export class StagedSegment {
  readonly #native: NativeStagedSegment;

  /** @internal */
  constructor(handle: NativeStagedSegment) {
    this.#native = handle;
    segmentHandles.set(this, handle);
  }

  /** Rows in the segment. */
  get rows(): number {
    return nativeSync(() => this.#native.rows);
  }

  /** Dead letters in the segment. */
  get deadLetters(): number {
    return nativeSync(() => this.#native.deadLetters);
  }

  /** Days (`YYYY-MM-DD`) the segment writes into. */
  get days(): string[] {
    return nativeSync(() => this.#native.days);
  }

  /** The last offset covered per topic-partition. */
  positions(): PartitionPosition[] {
    return nativeSync(() => this.#native.positions());
  }

  /** Rows of the segment that were spilled to disk. */
  get spilledRows(): number {
    return nativeSync(() => this.#native.spilledRows);
  }

  /** Frees the segment: its rows in memory and its spill files; call once the table holds its rows. */
  release(): Promise<void> {
    return native(this.#native.release());
  }
}
