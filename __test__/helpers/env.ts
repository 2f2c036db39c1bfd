/** Shared test setup: the local broker, unique names, temporary folders and config files. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** The broker `npm test` starts (scripts/kafka/kafka.sh). */
export const BROKERS = `127.0.0.1:${process.env.KAFKA_PORT ?? '9092'}`;

let counter = 0;

/** A name no other test (or earlier run) uses. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter}`;
}

/** A fresh temporary folder. */
export function tempDir(prefix = 'kdr-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes a YAML config file into `dir` and returns its path. */
/** A daily time about twelve hours from now (UTC), so a test run never reaches it. */
export function farAwayDailyTime(): string {
  const at = new Date(Date.now() + 12 * 3600_000);
  return `${String(at.getUTCHours()).padStart(2, '0')}:${String(at.getUTCMinutes()).padStart(2, '0')}`;
}

export function writeConfig(dir: string, config: Record<string, unknown>, name = 'config.yaml'): string {
  const path = join(dir, name);
  writeFileSync(path, stringify(config));
  return path;
}

/** A pipeline config for a test: its own topics, group and table, small batches, no HTTP port. */
export function testConfig(options: {
  topics: string[];
  group: string;
  tablePath: string;
  partitionColumn?: string;
  batchSize?: number;
  batchInterval?: number;
  extra?: Record<string, Record<string, unknown>>;
}): Record<string, unknown> {
  const extra = options.extra ?? {};
  return {
    ...extra,
    kafka: { broker: BROKERS, topics: options.topics, group_id: options.group, max_poll_records: 2000, ...extra.kafka },
    delta: { table_path: options.tablePath, partition_column: options.partitionColumn ?? 'date_col', ...extra.delta },
    logging: { level: 'INFO', format: 'json', ...extra.logging },
    monitoring: { enabled: false, ...extra.monitoring },
    batch: { batch_interval: options.batchInterval ?? 1, batch_size: options.batchSize ?? 100000, ...extra.batch },
    // Every test pipeline gets its own staging directory.
    buffer: { staging_dir: join(tempDir(), 'staging'), ...extra.buffer },
  };
}

/** What the instances of one consumer group in a test share. */
export interface GroupFixture {
  dir: string;
  topic: string;
  group: string;
  table: string;
}

/**
 * The config of one instance of a consumer group: its own staging directory, small polls, a
 * memory cap, and a short session so that a killed member leaves the group within seconds (the
 * default 45 s only slows takeovers down).
 */
export function memberConfig(g: GroupFixture, name: string, options: { batchInterval: number; maxMemory: string }): Record<string, unknown> {
  return testConfig({
    topics: [g.topic],
    group: g.group,
    tablePath: g.table,
    batchInterval: options.batchInterval,
    extra: {
      kafka: { max_poll_records: 300, properties: { 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 500 } },
      buffer: { staging_dir: join(g.dir, `staging-${name}`), max_memory: options.maxMemory },
    },
  });
}
