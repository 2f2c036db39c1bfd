/** How a configuration maps onto the native stage's decoding options and commit options. */
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { Config } from '../config/index.js';
import type { DaySourceKind, StageOptions, StagingOptions } from '../stage.js';
import type { DedupOptions, MergeOptions } from '../table.js';

/**
 * Where staged rows spill beyond `buffer.max_memory`: a directory per consumer group and table
 * under `buffer.staging_dir`, so pipelines sharing a staging root never read each other's rows.
 */
export function stagingOptions(config: Config, tableUri: string): StagingOptions {
  const identity = `${config.kafka.groupId}\u0000${tableUri}`;
  const tag = createHash('sha256').update(identity).digest('hex').slice(0, 12);
  const group = config.kafka.groupId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
  return {
    dir: resolve(join(config.buffer.stagingDir, `${group}-${tag}`)),
    maxMemoryBytes: config.buffer.maxMemoryBytes,
    identity,
    bucketKeys: consolidationKeys(config),
  };
}

/** The decoding options of the configured table, topics and day source; no staging. */
export function stageOptions(config: Config): StageOptions {
  const source = config.delta.partitionSource;
  const { topic, partition, offset, timestamp, key, headers } = config.delta.kafkaMetadata;
  return {
    partitionColumn: config.delta.partitionColumn,
    daySource: source.kind as DaySourceKind,
    dayField: source.kind === 'field' ? source.field : undefined,
    timezone: source.timezone,
    rejectUnknownFields: config.delta.unknownFields === 'reject',
    addColumns: config.delta.schemaEvolution === 'add_columns',
    topics: [...config.kafka.topics],
    topicsGrow: config.kafka.topicPattern !== undefined,
    kafkaMetadata: { topic, partition, offset, timestamp, key, headers },
    rejectNullKeys: config.dedup.nullKeys === 'dead_letter' ? consolidationKeys(config) : [],
    epochUnit: config.delta.epochUnit,
    dayWindowYears: config.delta.dayWindowYears,
    format: config.kafka.format,
    transform: {
      filter: config.transform.filter,
      columns: Object.entries(config.transform.columns).map(([name, expression]) => ({ name, expression })),
    },
  };
}

/** Whether a table column or a `transform` expression reads the messages' headers (packed only then). */
export function headersRead(config: Config): boolean {
  const expressions = [config.transform.filter ?? '', ...Object.values(config.transform.columns)];
  return config.delta.kafkaMetadata.headers !== undefined || expressions.some((e) => /\bkafka_headers\b/i.test(e));
}

/**
 * The keys rows are consolidated on: `dedup.keys`, or in MERGE mode the merge keys (a MERGE
 * needs one source row per key, so it always consolidates).
 */
export function consolidationKeys(config: Config): string[] {
  return config.delta.mode === 'MERGE' ? [...config.delta.mergeKeys] : [...config.dedup.keys];
}

/** How the configured table's rows are consolidated and written at each flush. */
export function writeOptions(config: Config): { dedup?: DedupOptions; merge?: MergeOptions } {
  const keys = consolidationKeys(config);
  const dedup: DedupOptions | undefined =
    keys.length === 0 ? undefined : { keys, orderBy: config.dedup.orderBy, strategy: config.dedup.strategy };
  const merge: MergeOptions | undefined =
    config.delta.mode === 'MERGE'
      ? { keys, partitionColumn: config.delta.partitionColumn, deleteWhen: config.delta.deleteWhen }
      : undefined;
  return { dedup, merge };
}
