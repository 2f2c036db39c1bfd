/** How a configuration maps onto the native stage's decoding options. */
import type { Config } from '../config/index.js';
import type { DaySourceKind, StageOptions } from '../stage.js';

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
  };
}
