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

/**
 * A value passed to the library's API is not one it accepts (e.g. a segment not taken from a
 * `Stage`, an option out of range). Code `INVALID_ARGUMENT`.
 */
export class InvalidArgumentError extends KafkaDeltaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', message, options);
  }
}

/** An internal error of the native core: a bug, please report it. */
export class InternalError extends KafkaDeltaError {}

type ErrorConstructor = new (code: string, message: string, options?: { cause?: unknown }) => KafkaDeltaError;
/** Makes the typed error of one native code. */
type ErrorFactory = (code: string, message: string, options: { cause?: unknown }) => KafkaDeltaError;
const typed = (Cls: ErrorConstructor): ErrorFactory => (code, message, options) => new Cls(code, message, options);

/**
 * Native error codes (native/error.rs, `CoreError::code`) and the class each maps onto; a test
 * checks this list against the native one (`nativeErrorCodes`).
 */
const NATIVE_CODES: Readonly<Record<string, ErrorFactory>> = {
  TABLE_NOT_FOUND: typed(TableNotFoundError),
  UNSUPPORTED_TABLE: typed(UnsupportedTableError),
  SCHEMA_MISMATCH: typed(SchemaMismatchError),
  COMMIT_CONFLICT: typed(CommitConflictError),
  STORAGE: typed(StorageError),
  STORAGE_UNAVAILABLE: typed(StorageError),
  STAGING: typed(StagingError),
  INVALID_ARGUMENT: (_code, message, options) => new InvalidArgumentError(message, options),
  INTERNAL: typed(InternalError),
};

/**
 * The native codes this side maps.
 *
 * @internal For the test that checks them against the native list.
 */
export function mappedNativeCodes(): string[] {
  return Object.keys(NATIVE_CODES);
}

/**
 * Turns an error thrown by the native core into the matching typed error. The native core sets
 * `code` on the errors it throws (as data) and the Rust cause chain as `cause`; anything else
 * it throws (napi's own argument checks) is an {@link InternalError}: the library calls it.
 *
 * @internal The library's own plumbing: every error it throws is already typed.
 */
export function fromNativeError(err: unknown): unknown {
  if (err instanceof KafkaDeltaError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  const make = typeof code === 'string' ? NATIVE_CODES[code] : undefined;
  if (make === undefined || typeof code !== 'string') return new InternalError('INTERNAL', message, { cause: err });
  return make(code, message, { cause: err });
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
