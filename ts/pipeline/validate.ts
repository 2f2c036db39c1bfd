/**
 * `validate`: checks a configuration against its target table without consuming anything.
 */
import type { Config, TableSchema } from '../config/index.js';
import { ConfigError, InvalidArgumentError, SchemaMismatchError, TableNotFoundError, type ConfigProblem } from '../errors.js';
import { DeltaTarget, type TableInfo } from '../table.js';
import { stageOptions } from './stage-options.js';

/**
 * Settings this version accepts in the file but cannot honour yet. Refusing them beats silently
 * running without them (e.g. appending duplicates when dedup was asked for).
 */
export function checkSupported(_config: Config): void {
  // Empty since batch.schedule became supported; kept so the next such setting has a home.
  const problems: ConfigProblem[] = [];
  if (problems.length > 0) throw new ConfigError(problems, 'configuration uses features not available yet');
}

/** What `validate` found. */
export interface ValidationReport {
  /** The table, when it exists. */
  readonly table?: TableInfo;
  /** When the table is missing and `delta.create_if_missing` is set: what the first start creates. */
  readonly wouldCreate?: TableSchema;
  /** Where dead letters go. */
  readonly deadLetterSink: string;
}

/**
 * Opens the target table and checks it fits the configuration: writable by delta-rs with
 * exactly-once bookkeeping, partitioned by the configured day column, and holding every column
 * the configuration names. Throws a typed error naming the first problem. A missing table with
 * `delta.create_if_missing` is reported as what would be created.
 */
export async function validateTarget(config: Config): Promise<ValidationReport> {
  checkSupported(config);
  const deadLetterSink =
    config.deadLetter.kind === 'delta' ? `Delta table ${config.deadLetter.tablePath}` : `Kafka topic ${config.deadLetter.topic}`;
  let target: DeltaTarget;
  try {
    target = await DeltaTarget.open(config.delta.tablePath, config.delta.storageOptions, config.delta.storageRetry);
  } catch (error) {
    const { createIfMissing, schema } = config.delta;
    if (error instanceof TableNotFoundError && createIfMissing && schema !== undefined) return { wouldCreate: schema, deadLetterSink };
    throw error;
  }
  return { table: checkTableFits(config, target), deadLetterSink };
}

/**
 * Checks an opened table against the configuration (what {@link validateTarget} checks, without
 * opening anything); returns the table's description. Throws a typed error naming the problem.
 */
export function checkTableFits(config: Config, target: DeltaTarget): TableInfo {
  target.checkWritable(config.delta.mode);
  const info = target.info();
  const columns = new Set(info.columns.map((c) => c.name));
  const problems: string[] = [];
  if (!info.partitionColumns.includes(config.delta.partitionColumn)) {
    problems.push(
      `delta.partition_column is ${JSON.stringify(config.delta.partitionColumn)} but the table is partitioned by ` +
        `[${info.partitionColumns.join(', ')}]`,
    );
  }
  const named: Array<[string, readonly string[]]> = [
    ['dedup.keys', config.dedup.keys],
    ['delta.merge_keys', config.delta.mergeKeys],
    ['dedup.order_by', config.dedup.orderBy === undefined ? [] : [config.dedup.orderBy]],
    ['delta.kafka_metadata', Object.values(config.delta.kafkaMetadata).filter((v): v is string => v !== undefined)],
  ];
  for (const [key, names] of named) {
    for (const name of names) {
      if (!columns.has(name)) problems.push(`${key} names column ${JSON.stringify(name)}, which the table does not have`);
    }
  }
  if (config.delta.deleteWhen !== undefined) {
    try {
      target.checkDeleteWhen(config.delta.deleteWhen);
    } catch (error) {
      const reason = error instanceof Error ? error.message.replace(/^invalid argument: /, '') : String(error);
      throw new ConfigError([{ key: 'delta.delete_when', message: `${JSON.stringify(config.delta.deleteWhen)} ${reason}` }]);
    }
  }
  if (problems.length > 0) {
    throw new SchemaMismatchError('SCHEMA_MISMATCH', `the table at ${info.uri} does not fit the configuration:\n  - ${problems.join('\n  - ')}`);
  }
  // Building a stage resolves the day source, metadata columns and transform against the schema.
  try {
    target.createStage(stageOptions(config));
  } catch (error) {
    // The native core names the transform key its expression came from: a configuration problem.
    const named = error instanceof InvalidArgumentError ? /^(?:invalid argument: )?(transform\.[^:]+): ([\s\S]*)$/.exec(error.message) : null;
    if (named?.[1] !== undefined) throw new ConfigError([{ key: named[1], message: named[2] ?? '' }]);
    throw error;
  }
  return info;
}
