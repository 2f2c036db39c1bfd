/**
 * A pipeline configured in code rather than by a YAML file: a job that derives its settings from
 * its own inputs (here environment variables) builds the same document a file would hold and
 * hands it to `parseConfig`, which validates it exactly like a file. It then ingests until it has
 * caught up with the topics and exits: a batch or backfill job.
 *
 *   KAFKA_BROKERS=127.0.0.1:9092 TOPICS=orders TABLE=/data/orders TIMEZONE=Europe/Paris \
 *     node --import tsx examples/custom-config.ts
 *
 * The records carry an event time (`created_at`, epoch milliseconds) rather than the table's day
 * column: the day partition is derived from it in TIMEZONE. Records repeating an `id` are
 * consolidated to the one with the greatest `seq`. Records that cannot become rows go to a
 * dead-letter table of our choosing.
 *
 * Prints the run summary as JSON on stdout. An invalid configuration exits with 2 after listing
 * every problem, one per key, as the CLI does.
 */
import { ConfigError, Pipeline, createLogger, parseConfig, type Config } from 'kafka-delta-rust';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

const table = required('TABLE');
// The same shape as config.yaml (snake_case keys); parseConfig fills in the defaults.
const settings = {
  kafka: {
    broker: required('KAFKA_BROKERS'),
    topics: required('TOPICS').split(','),
    group_id: process.env.GROUP_ID ?? 'custom-config-example',
    start_from: 'earliest',
  },
  delta: {
    table_path: table,
    partition_column: 'date_col',
    partition_source: { kind: 'field', field: 'created_at', timezone: process.env.TIMEZONE ?? 'UTC' },
  },
  dead_letter: { kind: 'delta', table_path: `${table}__rejected` },
  dedup: { keys: ['id'], order_by: 'seq', strategy: 'last' },
  // One flush at the end of a catch-up run, unless the backlog is larger than this.
  batch: { batch_interval: 300, batch_size: 200_000 },
  logging: { level: process.env.LOG_LEVEL ?? 'warn', format: 'json' },
  monitoring: { enabled: false },
};

function validated(): Config {
  try {
    return parseConfig(settings);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) console.error(`${problem.key}: ${problem.message}`);
    process.exit(2);
  }
}

const config = validated();

const pipeline = new Pipeline(config, { untilCaughtUp: true, logger: createLogger(config.logging) });
const summary = await pipeline.run();
console.log(JSON.stringify(summary));
