/**
 * Staging, wrapping the native `Stage`: each consumed batch is decoded into rows of the table (in
 * native code, off the event loop) and held per day until a flush takes it as a segment.
 */
import {
  type Stage as NativeStage,
  type AppendResult,
  type MessageBatch,
  type PartitionPosition,
  type PartitionStartPosition,
  type RejectedMessage,
  type StageOptions,
  type StagingOptions,
  type StagingRecovery,
  type KafkaMetadataColumns,
  type DaySourceKind,
  type EpochUnit,
  type DerivedColumn,
  type TransformOptions,
} from './native.js';
import { InternalError, native, nativeSync } from './errors.js';
import { StagedSegment } from './segment.js';

export type {
  AppendResult,
  DaySourceKind,
  EpochUnit,
  KafkaMetadataColumns,
  MessageBatch,
  PartitionPosition,
  PartitionStartPosition,
  RejectedMessage,
  StageOptions,
  StagingOptions,
  StagingRecovery,
  DerivedColumn,
  TransformOptions,
};

const stageHandles = new WeakMap<Stage, NativeStage>();

/** The native handle of a stage, for `DeltaTarget.followSchema`. Not part of the public API. */
export function nativeStage(stage: Stage): NativeStage {
  const handle = stageHandles.get(stage);
  if (!handle) throw new InternalError('INTERNAL', 'not a stage made by DeltaTarget.createStage');
  return handle;
}

/** Rows waiting for the next flush. */
export class Stage {
  readonly #native: NativeStage;

  private constructor(handle: NativeStage) {
    this.#native = handle;
    stageHandles.set(this, handle);
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

  /**
   * Topic-partitions the staging directory holds spilled rows for: look up what the table
   * recorded for them, then {@link Stage.recover}.
   */
  stagingPartitions(): PartitionPosition[] {
    return nativeSync(() => this.#native.stagingPartitions());
  }

  /**
   * Stages again the spilled rows that continue the table's recorded positions (`recorded`: the
   * last offset the table holds per topic-partition) and clears the rest of the staging
   * directory. Call once, before consuming.
   */
  recover(recorded: readonly PartitionPosition[]): Promise<StagingRecovery> {
    return native(this.#native.recover([...recorded]));
  }

  /**
   * Spills the rows in memory to the staging directory now, durably; returns whether anything
   * was written (nothing without staging or with nothing new in memory).
   */
  persist(): Promise<boolean> {
    return native(this.#native.persist());
  }

  /** Gives up the staging directory (its lock) once the stage is no longer used. */
  close(): void {
    nativeSync(() => this.#native.close());
  }

  /**
   * After an append reported `spillBlocked` (the staging disk was full): spills the rows over
   * the memory cap now if there is room again. Resolves with why it is still blocked, or null.
   */
  retrySpill(): Promise<string | null> {
    return native(this.#native.retrySpill());
  }

  /**
   * Takes ownership of newly assigned partitions and tells the stage where their consumption
   * starts; messages of partitions not assigned are never staged.
   */
  assigned(starts: readonly PartitionStartPosition[]): void {
    nativeSync(() => this.#native.assigned([...starts]));
  }

  /**
   * Gives up partitions this consumer no longer owns: their rows in memory are dropped, they are
   * withdrawn from every spilled generation, and their messages still arriving are not staged.
   */
  forgetPartitions(lost: readonly PartitionPosition[]): Promise<void> {
    return native(this.#native.forgetPartitions([...lost]));
  }

  /**
   * The topics messages refer to by index (`MessageBatch.topicIndexes`): the configured ones,
   * or with `topicsGrow` those the staging directory's rows refer to first.
   */
  get topics(): string[] {
    return nativeSync(() => this.#native.topics);
  }

  /**
   * Appends topics a pattern subscription found (those listed already are ignored) and returns
   * the whole list; indexes never change. Call before staging a message of them.
   */
  addTopics(names: readonly string[]): string[] {
    return nativeSync(() => this.#native.addTopics([...names]));
  }

  /** Rows staged now, in memory and spilled to disk. */
  get stagedRows(): number {
    return nativeSync(() => this.#native.stagedRows);
  }

  /** Rows of this stage spilled to disk. */
  get spilledRows(): number {
    return nativeSync(() => this.#native.spilledRows);
  }

  /** Bytes of spill files not yet released (including those of a flush in flight). */
  get spilledBytes(): number {
    return nativeSync(() => this.#native.spilledBytes);
  }

  /** Approximate Arrow memory staged now, in bytes. */
  get stagedBytes(): number {
    return nativeSync(() => this.#native.stagedBytes);
  }
}
