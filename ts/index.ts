/**
 * kafka-delta-rust: stream Kafka topics into an existing Delta Lake table, exactly once.
 *
 * ```ts
 * import { Pipeline, loadConfig } from 'kafka-delta-rust';
 * const pipeline = new Pipeline(await loadConfig({ path: './config.yaml' }));
 * await pipeline.run();
 * ```
 *
 * @packageDocumentation
 */
// First: a missing native binary is reported with the platform and the package to install.
import './native-guard.js';
export { loadConfig, parseConfig, redactConfig } from './config/index.js';
export type * from './config/index.js';
export * from './errors.js';
export { dedup } from './dedup.js';
export type { DedupOptions } from './dedup.js';
export { createLogger, silentLogger } from './log.js';
export type { Logger, LogFields, LoggerOptions } from './log.js';
export { PipelineMetrics } from './metrics/metrics.js';
export type { MaintenanceMetrics } from './metrics/maintenance.js';
export { startMetricsServer } from './metrics/server.js';
export type { MetricsServer, MetricsServerOptions } from './metrics/server.js';
export { Pipeline } from './pipeline/pipeline.js';
export type { DeadLetterEvent, FlushSummary, PipelineEvents, PipelineOptions, RunSummary } from './pipeline/pipeline.js';
export { txnAppId } from './pipeline/identity.js';
export { validateTarget } from './pipeline/validate.js';
export { formatVerifyReport, verifyTable } from './verify.js';
export type { PartitionVerdict, VerifyReport } from './verify.js';
export type { KafkaPartitionState } from './kafka/group-positions.js';
export type { ValidationReport } from './pipeline/validate.js';
export { DeltaTarget, createTable } from './table.js';
export { DEFAULT_STORAGE_RETRY } from './storage-retry.js';
export type { CheckpointResult, ColumnSpec, CommitResult, DayFiles, DeadLetterRecord, MergeOptions, MergeStats, DuplicateOffset, OffsetAudit, OffsetColumns, OffsetGap, OptimizeOptions, OptimizeResult, PartitionAppId, PartitionOffsets, RowCommitOptions, TableInfo, TxnVersion, VacuumOptions, VacuumResult, WriteMode } from './table.js';
export { Stage } from './stage.js';
export { StagedSegment } from './segment.js';
export type {
  AppendResult,
  MessageBatch,
  PartitionPosition,
  PartitionStartPosition,
  RejectedMessage,
  StageOptions,
  StagingOptions,
  StagingRecovery,
  DerivedColumn,
  TransformOptions,
} from './stage.js';
export type { TopicTally } from './kafka/packer.js';
export { FlushSchedule, systemClock, type Clock, type FlushTrigger, type FlushScheduleOptions } from './pipeline/schedule.js';
export { configureThreads, nativeFlushProgress, nativeMemory, nativeStepTotals, nativeVersions } from './native.js';
export type { FlushPhase, FlushProgressTotals, NativeMemory, NativeStepTotals, StepTotals } from './native.js';
