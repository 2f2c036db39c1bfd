/**
 * Configuration of kafka-delta-rust: the normalized {@link Config} type and the functions that
 * build it from YAML ({@link loadConfig}) or from a plain object ({@link parseConfig}).
 *
 * The YAML file uses snake_case keys (`batch.batch_interval`); the normalized config uses
 * camelCase (`batch.batchIntervalSeconds`) and has every default filled in. See `config.yaml` at
 * the package root for every key, its default and its meaning.
 */

import type { TableSchema } from './table-schema.js';
import type { EpochUnit, MessageFormat, StorageRetryOptions } from '../native.js';

export { parseConfig, loadConfig, redactConfig } from './load.js';
export type { ParseConfigOptions, LoadConfigOptions } from './load.js';

/** How records are written to the table: appended, or merged on the merge keys. */
export type WriteMode = 'INSERT' | 'MERGE';

/** Which record wins among records sharing the same dedup keys. */
export type DedupStrategy = 'last' | 'first' | 'merge';

/** Log verbosity, most severe first. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** Log line format: one JSON object per line, or human-readable text. */
export type LogFormat = 'json' | 'pretty';

/** Where to start reading a partition for which the table holds no committed offset. */
export type StartFrom = 'earliest' | 'latest';

/**
 * What to do when the position the table records for a partition is no longer in the partition's
 * log (below its log start: retention or DeleteRecords; above its high watermark: the topic was
 * deleted and recreated): stop with an error, or go on from the log start or the end.
 */
export type PositionLostPolicy = 'fail' | 'earliest' | 'latest';

/** What to do with JSON fields that are not columns of the table. */
export type UnknownFieldsPolicy = 'ignore' | 'reject';

/**
 * Whether the table's schema follows the records: `none`, or `add_columns` (a field the table
 * lacks becomes a nullable column, added by the commit of its rows).
 */
export type SchemaEvolution = 'none' | 'add_columns';

/** The unit of epoch numbers in event-time fields and timestamp columns: `s`, `ms` or `us`. */
export type { EpochUnit, MessageFormat, StorageRetryOptions };
export type { TableSchema } from './table-schema.js';

/** What to do with records whose dedup keys are null or missing. */
export type NullKeysPolicy = 'keep' | 'dead_letter';

/** SASL mechanism used with the Kafka credentials. */
export type SaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

/**
 * Kafka security protocol: SASL over TLS or over plaintext (with the Kafka credentials), or TLS
 * without SASL (`SSL`: no credentials; a client certificate in {@link KafkaTlsConfig} if the
 * broker asks for one).
 */
export type SecurityProtocol = 'SASL_SSL' | 'SASL_PLAINTEXT' | 'SSL';

/** Informational name of the storage credentials provider. */
export type DeltaCredentialsProvider = 'local' | 'aws' | 'gcp' | 'azure';

/** Kafka settings. */
export interface KafkaConfig {
  /** Bootstrap brokers, comma-separated (`host:port,host:port`), from `kafka.broker`/`kafka.brokers`. */
  brokers: string;
  /**
   * Topics to consume (no duplicates), from `kafka.topic` and/or `kafka.topics`; empty only when
   * `topicPattern` is set.
   */
  topics: string[];
  /**
   * `kafka.topic_pattern`: a regular expression (POSIX extended, anchored at the start with `^`);
   * every topic it matches is consumed too, those created while running included (found at
   * librdkafka's metadata refresh, `topic.metadata.refresh.interval.ms`); a topic created after
   * the start is read from its beginning whatever `startFrom` says.
   */
  topicPattern?: string;
  /**
   * What message values hold (`kafka.format`): `json`, one JSON object per row, or `debezium`,
   * Debezium change events in JSON (bare or with the converter's schema): `op` c, r and u
   * upsert the `after` image, d deletes the row of the `before` image, tombstones are skipped.
   * `debezium` needs MERGE mode. Default `json`.
   */
  format: MessageFormat;
  /** Consumer group id (`kafka.group_id`). */
  groupId: string;
  /** Maximum number of records taken from the consumer per poll, 1..100000. Default 5000. */
  maxPollRecords: number;
  /** Where to start when the table holds no offset for a partition. Default `earliest`. */
  startFrom: StartFrom;
  /**
   * What to do when a partition's recorded position is out of its log's range (at assignment,
   * or found by librdkafka while reading): `fail` stops the pipeline with a
   * `PositionLostError`; `earliest` / `latest` go on from the log start / the high
   * watermark, logging a warning with the skipped range. A position above the high watermark
   * (a recreated topic) stops the pipeline with any policy: it cannot move back. Default `fail`.
   */
  onPositionLost: PositionLostPolicy;
  /** How long one poll waits for records, in milliseconds, 1..60000. Default 100. */
  consumeTimeoutMs: number;
  /**
   * Extra librdkafka properties, values stringified. Never contains `group.id`,
   * `enable.auto.commit`, `bootstrap.servers` or `auto.offset.reset`, which kafka-delta-rust
   * owns. Default `{}`.
   */
  properties: Record<string, string>;
  /**
   * TLS files (`kafka.tls`), when any is set; they imply TLS (`SSL`, or `SASL_SSL` with
   * credentials). Default: not set (librdkafka's default CA store, no client certificate).
   */
  tls?: KafkaTlsConfig;
}

/**
 * TLS files for the Kafka connection, PEM, absolute paths (checked when the configuration is
 * loaded). An encrypted key's password goes in `kafka.properties` as `ssl.key.password`.
 */
export interface KafkaTlsConfig {
  /** CA certificates the broker's certificate is verified against (a file, or a directory). */
  caFile?: string;
  /** Client certificate, for brokers that authenticate clients by certificate (mTLS). */
  certFile?: string;
  /** The client certificate's private key. */
  keyFile?: string;
}

/** Kafka metadata to store in table columns: metadata field → column name. */
export interface KafkaMetadataColumns {
  /** Column receiving the record's topic. */
  topic?: string;
  /** Column receiving the record's partition number. */
  partition?: string;
  /** Column receiving the record's offset. */
  offset?: string;
  /** Column receiving the record's Kafka timestamp. */
  timestamp?: string;
  /** Column receiving the record's key. */
  key?: string;
  /** Column receiving the record's headers. */
  headers?: string;
}

/** How the day partition of a record is derived. */
export type PartitionSource =
  | {
      /** The record carries the partition column's value itself (a date or a timestamp). */
      kind: 'column';
      /** IANA time zone used to turn a timestamp into a day. Default `UTC`. */
      timezone: string;
    }
  | {
      /** The day is derived from an event field (ISO-8601 string, or an epoch number in {@link DeltaConfig.epochUnit}). */
      kind: 'field';
      /** Name of the JSON field holding the event time. */
      field: string;
      /** IANA time zone used to turn the event time into a day. Default `UTC`. */
      timezone: string;
    }
  | {
      /** The day is derived from the Kafka record timestamp. */
      kind: 'kafka_timestamp';
      /** IANA time zone used to turn the Kafka timestamp into a day. Default `UTC`. */
      timezone: string;
    }
  | {
      /** The day is derived from a change event's `ts_ms` (with `kafka.format: debezium`). */
      kind: 'change_time';
      /** IANA time zone used to turn `ts_ms` into a day. Default `UTC`. */
      timezone: string;
    };

/** Target Delta table settings. */
export interface DeltaConfig {
  /** Table location: a local path (relative paths are relative to the process cwd) or a URI. */
  tablePath: string;
  /** Name of the day partition column of the table. */
  partitionColumn: string;
  /** INSERT (append) or MERGE (upsert on {@link DeltaConfig.mergeKeys}). */
  mode: WriteMode;
  /** How the day partition of a record is derived. Default: the partition column's own field. */
  partitionSource: PartitionSource;
  /** What to do with JSON fields that are not table columns. Default `ignore`. */
  unknownFields: UnknownFieldsPolicy;
  /** Whether new JSON fields become columns. Default `none`. */
  schemaEvolution: SchemaEvolution;
  /** Kafka metadata stored in table columns. Default `{}` (none). */
  kafkaMetadata: KafkaMetadataColumns;
  /**
   * Unit of epoch numbers in the event-time field and in timestamp columns (a number in a
   * timestamp column would otherwise be read in the column's microseconds). Default `ms`.
   */
  epochUnit: EpochUnit;
  /** A record whose day is more than this many years from today is a dead letter. Default 10. */
  dayWindowYears: number;
  /** Columns matching source to target rows in MERGE mode. Default: `dedup.keys`. */
  mergeKeys: string[];
  /** SQL predicate over source columns; matching rows delete the target row (MERGE only). */
  deleteWhen?: string;
  /** Options for the delta-rs object store (credentials merged in from `credentials.delta_credentials`). */
  storageOptions: Record<string, string>;
  /**
   * How transient storage failures (timeouts, 5xx, throttling, a full disk) of the table's reads
   * and commits are retried, on top of the object store's own short retries.
   */
  storageRetry: StorageRetryOptions;
  /**
   * Create the table from {@link DeltaConfig.schema} when it does not exist yet (on first start;
   * instances starting at once create it once). Default false: a missing table is an error.
   */
  createIfMissing: boolean;
  /** The table to create, partitioned by {@link DeltaConfig.partitionColumn}. */
  schema?: TableSchema;
}

/** Where records that cannot be written go. */
export type DeadLetterConfig =
  | {
      /** Dead letters are appended to a Delta table. */
      kind: 'delta';
      /** Dead letter table location. Default: `<delta.table_path>__dead_letters`. */
      tablePath: string;
    }
  | {
      /** Dead letters are produced to a Kafka topic. */
      kind: 'kafka';
      /** Dead letter topic (must not be one of the consumed topics). */
      topic: string;
    };

/** Logging settings. */
export interface LoggingConfig {
  /** Minimum level logged. Default `info`. */
  level: LogLevel;
  /** Line format. Default `json`. */
  format: LogFormat;
  /**
   * A file the lines are appended to instead of standard error; the CLI reopens it on SIGHUP
   * (logrotate moves it away, then signals). Default: standard error.
   */
  file?: string;
}

/** Prometheus metrics endpoint settings. */
export interface MonitoringConfig {
  /** Whether the metrics HTTP endpoint is served. Default `true`. */
  enabled: boolean;
  /** Interface to listen on. Default `127.0.0.1`. */
  host: string;
  /** Port to listen on, 0..65535 (0 picks a free port). Default 9090. */
  port: number;
  /** URL path of the metrics, starting with `/`. Default `/metrics`. */
  endpoint: string;
}

/** Parallelism and retry settings. */
export interface ConcurrencyConfig {
  /** Worker threads of the native core; 0 means one per CPU. Default 0. */
  numThreads: number;
  /** How many times a failed commit or write is retried, 0..100. Default 3. */
  retryAttempts: number;
}

/** When staged records are committed to the table. */
export interface BatchConfig {
  /**
   * Seconds between commits (fractions allowed). Default 60, or not set (no interval trigger)
   * when {@link BatchConfig.schedule} is set.
   */
  batchIntervalSeconds?: number;
  /**
   * Maximum number of records staged before a commit is forced. Default 100000, or not set (no
   * size trigger) when {@link BatchConfig.schedule} is set.
   */
  batchSize?: number;
  /**
   * Optional daily time `HH:MM` or 5-field cron expression at which commits happen; a commit
   * happens at whichever of schedule, interval and size comes first.
   */
  schedule?: string;
  /** IANA time zone in which {@link BatchConfig.schedule} is read. Default `UTC`. */
  timezone: string;
}

/** Deduplication of records within a batch. */
export interface DedupConfig {
  /** Columns identifying a record; `[]` disables deduplication. Default `[]`. */
  keys: string[];
  /** Column ordering duplicates; default: their Kafka position (partition, offset). */
  orderBy?: string;
  /** Which duplicate wins: the last, the first, or a merge of their non-null fields. Default `last`. */
  strategy: DedupStrategy;
  /** Records with null/missing keys are kept or sent to the dead letter target. Default `keep`. */
  nullKeys: NullKeysPolicy;
}

/** Limits of the local staging buffer. */
export interface BufferConfig {
  /** Maximum memory used by staged records, in bytes. Default 256 MiB. */
  maxMemoryBytes: number;
  /** Maximum disk used by spilled staged records, in bytes. Default 10 GiB. */
  maxDiskBytes: number;
  /** Directory for spilled records (relative to the process cwd). Default `.kafka-delta-staging`. */
  stagingDir: string;
}

/** How a stop (SIGTERM, SIGINT, `Pipeline.stop`) behaves. */
export interface ShutdownConfig {
  /**
   * Seconds a stop may spend committing what is staged; past it, staged rows are persisted to
   * the staging directory and the process exits without that commit. Default 30.
   */
  gracePeriodSeconds: number;
}

/**
 * Upkeep of the table the pipeline runs beside its ingestion, each in a commit of its own:
 * compaction of closed days (and optionally of the open day) and a daily vacuum.
 */
export interface MaintenanceConfig {
  /** Compact a day's small files once the day is closed. Default true. */
  optimize: boolean;
  /**
   * Seconds after a day's end (midnight in `delta.partition_source.timezone`) before it counts as
   * closed and is compacted: late records mostly arrive before. Default 3600.
   */
  optimizeAfterSeconds: number;
  /** Compact a day that is not closed yet once it has more small files than this; 0: never. Default 0. */
  optimizeOpenDayFiles: number;
  /** The size compacted files aim at, in bytes; larger files are left alone. Default 128 MiB. */
  targetFileSizeBytes: number;
  /** Seconds between maintenance checks; the first comes one interval after the start. Default 300. */
  intervalSeconds: number;
  /**
   * Remove unreferenced data files older than the table's `delta.deletedFileRetentionDuration`
   * (never younger than 7 days), once a day. Default false.
   */
  vacuum: boolean;
}

/**
 * A filter and derived columns, SQL expressions over each decoded row: the table's columns as
 * read from the JSON plus `kafka_topic`, `kafka_partition`, `kafka_offset`, `kafka_timestamp`,
 * `kafka_key` and `kafka_headers` (a JSON object's text). Evaluated natively per batch.
 */
export interface TransformConfig {
  /** Rows for which this predicate is not true are dropped: counted as consumed, never dead letters. */
  filter?: string;
  /** Table columns computed from an expression instead of read from the JSON, by column name. Default {}. */
  columns: Record<string, string>;
}

/** Kafka and storage credentials. */
export interface CredentialsConfig {
  /** Kafka SASL username. */
  kafkaUsername?: string;
  /** Kafka SASL password. Secret: never logged. */
  kafkaPassword?: string;
  /**
   * Bearer token the metrics endpoint requires (`Authorization: Bearer <token>`), e.g. from
   * `credentials.metrics_token_file`. Secret: never logged. Default: none (no authentication).
   */
  metricsToken?: string;
  /** SASL mechanism. Default `PLAIN`. */
  saslMechanism: SaslMechanism;
  /**
   * Security protocol. `SASL_SSL` / `SASL_PLAINTEXT` apply with the credentials and are ignored
   * without them (plaintext, or TLS when {@link KafkaConfig.tls} is set); `SSL` is TLS without
   * SASL and takes no credentials. Default `SASL_SSL`.
   */
  securityProtocol: SecurityProtocol;
  /** Storage credentials provider name, when given as a name (a map goes into `delta.storageOptions`). */
  deltaCredentials?: DeltaCredentialsProvider;
}

/** The normalized, fully defaulted configuration. */
export interface Config {
  /** Kafka source. */
  kafka: KafkaConfig;
  /** Delta table target. */
  delta: DeltaConfig;
  /** Dead letter target. */
  deadLetter: DeadLetterConfig;
  /** Logging. */
  logging: LoggingConfig;
  /** Prometheus metrics. */
  monitoring: MonitoringConfig;
  /** Parallelism and retries. */
  concurrency: ConcurrencyConfig;
  /** Commit cadence. */
  batch: BatchConfig;
  /** Deduplication. */
  dedup: DedupConfig;
  /** Staging buffer limits. */
  buffer: BufferConfig;
  /** Stop behaviour. */
  shutdown: ShutdownConfig;
  /** Table upkeep beside ingestion. */
  maintenance: MaintenanceConfig;
  /** Filter and derived columns. */
  transform: TransformConfig;
  /** Credentials. */
  credentials: CredentialsConfig;
}
