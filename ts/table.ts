/**
 * The target Delta table, wrapping the native `DeltaTarget`: open, inspect, check writability,
 * read the Kafka positions recorded in its log, and commit staged segments.
 */
import {
  DeltaTarget as NativeDeltaTarget,
  createTable as nativeCreateTable,
  type CheckpointResult,
  type ColumnSpec,
  type CommitResult,
  type DayFiles,
  type DeadLetterRecord,
  type DedupOptions,
  type MergeOptions,
  type MergeStats,
  type OptimizeOptions,
  type DuplicateOffset,
  type OffsetAudit,
  type OffsetGap,
  type PartitionOffsets,
  type OffsetColumns,
  type OptimizeResult,
  type PartitionAppId,
  type PartitionSummary,
  type StorageRetryOptions,
  type TableInfo,
  type TxnVersion,
  type VacuumOptions,
  type VacuumResult,
  type WriteMode,
} from './native.js';
import { native, nativeSync } from './errors.js';
import { DEFAULT_STORAGE_RETRY } from './storage-retry.js';
import { nativeSegment, type StagedSegment } from './segment.js';
import { Stage, nativeStage, type StageOptions } from './stage.js';

export type { CheckpointResult, ColumnSpec, CommitResult, DayFiles, DeadLetterRecord, DedupOptions, TxnVersion, MergeOptions, MergeStats, DuplicateOffset, OffsetAudit, OffsetColumns, OffsetGap, OptimizeOptions, OptimizeResult, PartitionAppId, PartitionOffsets, PartitionSummary, StorageRetryOptions, TableInfo, VacuumOptions, VacuumResult, WriteMode };

/** How {@link DeltaTarget.commitRows} writes a segment's rows. */
export interface RowCommitOptions {
  /** Attempts before a commit conflict is reported as `CommitConflictError` (at least 1). */
  maxAttempts: number;
  /** Consolidate each day's rows on these keys first; absent: every row is written. */
  dedup?: DedupOptions;
  /** MERGE into the table on these keys instead of appending. */
  merge?: MergeOptions;
}

/** A Delta table that kafka-delta-rust writes into. */
export class DeltaTarget {
  readonly #native: NativeDeltaTarget;

  private constructor(handle: NativeDeltaTarget) {
    this.#native = handle;
  }

  /**
   * Opens an existing table; throws `TableNotFoundError` when there is none at `uri`.
   * `storageRetry`: how transient storage failures of its reads and commits are retried
   * (default `DEFAULT_STORAGE_RETRY`: 300 s, waits from 0.5 s doubling to 30 s).
   */
  static async open(uri: string, storageOptions: Record<string, string> = {}, storageRetry: StorageRetryOptions = DEFAULT_STORAGE_RETRY): Promise<DeltaTarget> {
    return new DeltaTarget(await native(NativeDeltaTarget.open(uri, storageOptions, storageRetry)));
  }

  /** Opens the dead-letter table at `uri`, creating it (partitioned by day) when absent. */
  static async openDeadLetters(uri: string, storageOptions: Record<string, string> = {}, storageRetry: StorageRetryOptions = DEFAULT_STORAGE_RETRY): Promise<DeltaTarget> {
    return new DeltaTarget(await native(NativeDeltaTarget.openDeadLetters(uri, storageOptions, storageRetry)));
  }

  /** The table's location. */
  get uri(): string {
    return this.#native.uri;
  }

  /** Schema, partitioning, protocol and properties at the loaded version. */
  info(): TableInfo {
    return nativeSync(() => this.#native.info());
  }

  /**
   * Throws `UnsupportedTableError` when the table needs writer features delta-rs cannot write,
   * would expire the positions we record, or is append-only while `mode` is MERGE.
   */
  checkWritable(mode: WriteMode): void {
    nativeSync(() => this.#native.checkWritable(mode));
  }

  /** Throws (code `INVALID_ARGUMENT`) when `deleteWhen` is not a SQL condition over the table's columns. */
  checkDeleteWhen(deleteWhen: string): void {
    nativeSync(() => this.#native.checkDeleteWhen(deleteWhen));
  }

  /** Rows and files per partition at the latest version, from the log's statistics. */
  partitionSummary(): Promise<PartitionSummary[]> {
    return native(this.#native.partitionSummary());
  }

  /** Reloads the latest version; returns it. */
  refresh(): Promise<number> {
    return native(this.#native.refresh());
  }

  /**
   * Writes a checkpoint of the newest version (with every partition's position in it), then
   * removes the log files before it older than the table's `delta.logRetentionDuration`.
   */
  checkpoint(): Promise<CheckpointResult> {
    return native(this.#native.checkpoint());
  }

  /**
   * Removes the data files no version references (rewritten by a MERGE or a compaction, or left
   * by a write killed before its commit) once older than the table's
   * `delta.deletedFileRetentionDuration`, and never younger than 7 days unless `force`.
   */
  vacuum(options: Partial<VacuumOptions> = {}): Promise<VacuumResult> {
    return native(this.#native.vacuum({ dryRun: options.dryRun ?? false, force: options.force ?? false }));
  }

  /**
   * Every day's data files at the newest version (oldest day first), from the log: how many, how
   * many no larger than `targetSizeBytes` (what a compaction would rewrite), and their bytes.
   */
  dayFiles(dayColumn: string, targetSizeBytes: number): Promise<DayFiles[]> {
    return native(this.#native.dayFiles(dayColumn, targetSizeBytes));
  }

  /**
   * Scans the newest version's Kafka coordinate columns for offsets held by more than one row
   * and offsets missing between each partition's first and last (the dead-letter table's rows
   * fill them); lists at most `limit` of each, counts all.
   */
  auditOffsets(columns: OffsetColumns, deadLetters?: DeltaTarget, limit = 100): Promise<OffsetAudit> {
    return native(this.#native.auditOffsets(columns, deadLetters === undefined ? undefined : deadLetters.#native, limit));
  }

  /**
   * Compacts one day's small files into files of about `targetSizeBytes`, in a commit of its own
   * that changes no data (`dataChange=false`); a day with nothing to compact commits nothing.
   * Conflicts with ingestion of the same day are retried on the newest version.
   */
  optimizeDay(dayColumn: string, day: string, options: OptimizeOptions): Promise<OptimizeResult> {
    return native(this.#native.optimizeDay(dayColumn, day, options));
  }

  /** The last offsets recorded for these app ids; ids never written are absent from the map. */
  async txnVersions(appIds: readonly string[]): Promise<Map<string, number>> {
    const versions = await native(this.#native.txnVersions([...appIds]));
    const out = new Map<string, number>();
    for (const v of versions) if (v.version !== undefined && v.version !== null) out.set(v.appId, v.version);
    return out;
  }

  /** A stage that decodes messages into rows of this table. */
  createStage(options: StageOptions): Stage {
    return nativeSync(() => Stage.wrap(this.#native.createStage(options)));
  }

  /**
   * Makes `stage` decode with the table's schema as loaded now, when another writer changed it
   * (rows already staged are read into it at their commit); returns the columns added.
   */
  followSchema(stage: Stage): string[] {
    return nativeSync(() => this.#native.followSchema(nativeStage(stage)));
  }

  /**
   * Commits the segment's rows together with the Kafka positions it covers: rows the table
   * already holds are left out, the rest consolidated per day (with `dedup`) and appended, or
   * merged (with `merge`).
   */
  async commitRows(segment: StagedSegment, appIds: readonly PartitionAppId[], options: RowCommitOptions): Promise<CommitResult> {
    const { maxAttempts, dedup, merge } = options;
    return native(this.#native.commit(nativeSegment(segment), [...appIds], { part: 'rows', maxAttempts, dedup, merge }));
  }

  /**
   * Commits the segment's dead letters together with the Kafka positions it covers. `rows` is
   * the table the segment's rows go to: its recorded positions decide which dead letters are
   * new (it is the record of what was handled), so a config change that turns more messages
   * into dead letters on a replay never loses them. Without it, this table's own positions do.
   */
  async commitDeadLetters(
    segment: StagedSegment,
    appIds: readonly PartitionAppId[],
    maxAttempts: number,
    rows?: DeltaTarget,
  ): Promise<CommitResult> {
    const positionsFrom = rows === undefined ? undefined : rows.#native;
    return native(this.#native.commit(nativeSegment(segment), [...appIds], { part: 'dead_letters', maxAttempts }, positionsFrom));
  }

  /**
   * The segment's dead letters this table has not handled yet (above its recorded positions),
   * for a dead-letter sink outside Delta. A replay after a crash returns them again.
   */
  async pendingDeadLetters(segment: StagedSegment, appIds: readonly PartitionAppId[]): Promise<DeadLetterRecord[]> {
    return native(this.#native.pendingDeadLetters(nativeSegment(segment), [...appIds]));
  }

  /**
   * Records where partitions start (`version`: the offset before the first one to read) for the
   * app ids the table has no version for yet, in one commit of txn actions; resolves with the
   * ids it recorded.
   */
  recordStarts(starts: readonly TxnVersion[], maxAttempts: number): Promise<string[]> {
    return native(this.#native.recordStarts([...starts], maxAttempts));
  }
}

/**
 * Creates an empty Delta table with the given table properties: what `delta.create_if_missing`
 * does on first start, and the quickstart, tests and tooling. Fails when a table is there.
 */
export function createTable(
  uri: string,
  columns: readonly ColumnSpec[],
  partitionColumns: readonly string[],
  storageOptions: Record<string, string> = {},
  properties: Record<string, string> = {},
): Promise<TableInfo> {
  return native(nativeCreateTable(uri, [...columns], [...partitionColumns], storageOptions, properties));
}
