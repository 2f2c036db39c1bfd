/** How a configuration maps onto the native stage's decoding options and commit options. */
import type { Config } from '../config/index.js';
import type { DaySourceKind, StageOptions } from '../stage.js';
import type { DedupOptions, MergeOptions } from '../table.js';

/** The decoding options of the configured table, topics and day source. */
export function stageOptions(config: Config): StageOptions {
  const source = config.delta.partitionSource;
  const { topic, partition, offset, timestamp, key, headers } = config.delta.kafkaMetadata;
  return {
    partitionColumn: config.delta.partitionColumn,
    daySource: source.kind as DaySourceKind,
    dayField: source.kind === 'field' ? source.field : undefined,
    timezone: source.timezone,
    rejectUnknownFields: config.delta.unknownFields === 'reject',
    topics: [...config.kafka.topics],
    kafkaMetadata: { topic, partition, offset, timestamp, key, headers },
    rejectNullKeys: config.dedup.nullKeys === 'dead_letter' ? consolidationKeys(config) : [],
  };
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
