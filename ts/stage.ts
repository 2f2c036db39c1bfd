/**
 * Staging, wrapping the native `Stage`: each consumed batch is decoded into rows of the table (in
 * native code, off the event loop) and held per day until a flush takes it as a segment.
 */
import {
  type Stage as NativeStage,
  type StagedSegment as NativeStagedSegment,
  type AppendResult,
  type MessageBatch,
  type PartitionPosition,
  type RejectedMessage,
  type StageOptions,
  type KafkaMetadataColumns,
  type DaySourceKind,
} from './native.js';
import { native, nativeSync } from './errors.js';

export type {
  AppendResult,
  DaySourceKind,
  KafkaMetadataColumns,
  MessageBatch,
  PartitionPosition,
  RejectedMessage,
  StageOptions,
};

const segmentHandles = new WeakMap<StagedSegment, NativeStagedSegment>();

/** The native handle of a segment, for `DeltaTarget` commits. Not part of the public API. */
export function nativeSegment(segment: StagedSegment): NativeStagedSegment {
  const handle = segmentHandles.get(segment);
  if (!handle) throw new TypeError('not a segment taken from a Stage');
  return handle;
}

/** Rows waiting for the next flush. */
export class Stage {
  readonly #native: NativeStage;

  private constructor(handle: NativeStage) {
    this.#native = handle;
  }

  /** @internal Wraps a native stage made by `DeltaTarget.createStage`. */
  static wrap(handle: NativeStage): Stage {
    return new Stage(handle);
  }

  /** Decodes and stages a packed batch; rejected messages come back with their reasons. */
  append(batch: MessageBatch): Promise<AppendResult> {
    return native(this.#native.append(batch));
  }

  /** Takes everything staged so far; the stage is empty afterwards. */
  take(): StagedSegment {
    return new StagedSegment(nativeSync(() => this.#native.take()));
  }

  /** Drops staged rows of partitions this consumer no longer owns. */
  forgetPartitions(lost: readonly PartitionPosition[]): void {
    nativeSync(() => this.#native.forgetPartitions([...lost]));
  }

  /** Rows staged now. */
  get stagedRows(): number {
    return nativeSync(() => this.#native.stagedRows);
  }

  /** Approximate Arrow memory staged now, in bytes. */
  get stagedBytes(): number {
    return nativeSync(() => this.#native.stagedBytes);
  }
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
}
