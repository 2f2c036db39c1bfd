/**
 * Typed errors of kafka-delta-rust. Every error the library throws is a {@link KafkaDeltaError},
 * so callers can tell the kinds apart with `instanceof`. Errors raised by the native core carry a
 * code (`err.code`) that {@link fromNativeError} maps onto these classes one to one.
 */

/** Base class of every error thrown by kafka-delta-rust. */
export class KafkaDeltaError extends Error {
  /** A stable machine-readable code, e.g. `CONFIG_INVALID`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** One problem found in a configuration: the key path and what is wrong with it. */
export interface ConfigProblem {
  /** Dotted key path, e.g. `batch.batch_interval`. */
  readonly key: string;
  /** What is wrong and what is expected. Never contains a secret value. */
  readonly message: string;
}

/** The configuration is invalid; `problems` lists every problem found, one per key. */
export class ConfigError extends KafkaDeltaError {
  /** Every problem found, one per key (never only the first). */
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], header = 'invalid configuration') {
    super(
      'CONFIG_INVALID',
      `${header}:\n${problems.map((p) => `  - ${p.key}: ${p.message}`).join('\n')}`,
    );
    this.problems = problems;
  }
}

/** The target table does not exist or cannot be opened. */
export class TableNotFoundError extends KafkaDeltaError {}

/** The table's protocol or properties make it unsafe or impossible for us to write to it. */
export class UnsupportedTableError extends KafkaDeltaError {}

/** The table's schema does not fit the configuration (missing columns, wrong partitioning, ...). */
export class SchemaMismatchError extends KafkaDeltaError {}

/** A commit kept conflicting with concurrent writers after all retries. */
export class CommitConflictError extends KafkaDeltaError {}

/** Reading or writing the table's storage failed. */
export class StorageError extends KafkaDeltaError {}

/**
 * The local staging directory (`buffer.staging_dir`) cannot be used: another process holds it,
 * or a spill file cannot be written (e.g. the disk is full).
 */
export class StagingError extends KafkaDeltaError {}

/** Kafka client failures that the pipeline cannot recover from. */
export class KafkaError extends KafkaDeltaError {}

/** A partition position the table records that the partition's log no longer holds. */
export interface LostPosition {
  readonly topic: string;
  readonly partition: number;
  /** The next offset to read by the recorded position (the txn version + 1). */
  readonly next: number;
  /** The partition's log start offset (low watermark). */
  readonly low: number;
  /** The partition's high watermark (the offset the next message will get). */
  readonly high: number;
}

/**
 * A partition's recorded position is outside its log (offsets deleted by retention or
 * DeleteRecords, or the topic deleted and recreated) and `kafka.on_position_lost` is `fail`, so
 * the pipeline stopped instead of skipping. Code `KAFKA_POSITION_LOST`.
 */
export class PositionLostError extends KafkaError {
  /** The partitions found out of range (empty when librdkafka did not say which). */
  readonly positions: readonly LostPosition[];

  constructor(message: string, positions: readonly LostPosition[], options?: { cause?: unknown }) {
    super('KAFKA_POSITION_LOST', message, options);
    this.positions = positions;
  }
}

/** An internal error of the native core: a bug, please report it. */
export class InternalError extends KafkaDeltaError {}

type ErrorClass = new (code: string, message: string, options?: { cause?: unknown }) => KafkaDeltaError;

/** Native error codes (see native/error.rs) and the class each maps onto. */
const NATIVE_CODES: Readonly<Record<string, ErrorClass>> = {
  TABLE_NOT_FOUND: TableNotFoundError,
  UNSUPPORTED_TABLE: UnsupportedTableError,
  SCHEMA_MISMATCH: SchemaMismatchError,
  COMMIT_CONFLICT: CommitConflictError,
  STORAGE: StorageError,
  STAGING: StagingError,
  INVALID_ARGUMENT: InternalError,
  INTERNAL: InternalError,
};

/** The prefix native/error.rs puts on every message: `[KDR:<CODE>] <message>`. */
const NATIVE_PREFIX = /^\[KDR:([A-Z_]+)\] /;

/**
 * Turns an error thrown by the native core into the matching typed error.
 *
 * @internal The library's own plumbing: every error it throws is already typed.
 */
export function fromNativeError(err: unknown): unknown {
  if (err instanceof KafkaDeltaError || !(err instanceof Error)) return err;
  const match = NATIVE_PREFIX.exec(err.message);
  if (!match) return err;
  const code = match[1] ?? 'INTERNAL';
  const message = err.message.slice(match[0].length);
  const Cls = NATIVE_CODES[code] ?? InternalError;
  return new Cls(code, message, { cause: err });
}

/**
 * Calls a synchronous native function and rethrows its failure as a typed error.
 *
 * @internal
 */
export function nativeSync<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw fromNativeError(err);
  }
}

/**
 * Awaits a native promise and rethrows its failure as a typed error.
 *
 * @internal
 */
export async function native<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    throw fromNativeError(err);
  }
}
