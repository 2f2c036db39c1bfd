#!/usr/bin/env node
/**
 * The quickstart's sample data: `prepare` creates the day-partitioned table and the topics from a
 * config and produces sample events (with duplicates and a few malformed ones); `summary` prints
 * what landed, from the tables' logs.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type Config } from '../config/index.js';
import { DeltaTarget, createTable, type ColumnSpec } from '../table.js';
import { createTopic, produceMessages, type OutgoingMessage } from './kafka-admin.js';

/** The sample table's columns; `date_col`-style day partition named by the config. */
export function sampleColumns(partitionColumn: string): ColumnSpec[] {
  return [
    { name: 'event_id', dataType: 'string', nullable: false },
    { name: 'user_id', dataType: 'string', nullable: true },
    { name: 'event_type', dataType: 'string', nullable: true },
    { name: 'amount', dataType: 'double', nullable: true },
    { name: 'event_time', dataType: 'timestamp', nullable: true },
    { name: partitionColumn, dataType: 'string', nullable: false },
  ];
}

const EVENT_TYPES = ['view', 'click', 'cart', 'purchase'];

/**
 * `count` sample events over two days, deterministic for a seed: every 20th event is sent twice
 * (a producer retry), and `malformed` events of each kind the dead-letter sink must catch.
 */
export function* sampleEvents(count: number, partitionColumn: string, malformed = 4): Generator<OutgoingMessage> {
  const days = ['2026-11-22', '2026-11-23'];
  for (let i = 0; i < count; i++) {
    const day = days[i % 2] as string;
    const event = {
      event_id: `evt-${i}`,
      user_id: `user-${i % 97}`,
      event_type: EVENT_TYPES[i % EVENT_TYPES.length],
      amount: Math.round((i % 1000) * 1.37 * 100) / 100,
      event_time: `${day}T${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:00Z`,
      [partitionColumn]: day,
    };
    const value = JSON.stringify(event);
    yield { key: event.user_id, value };
    if (i % 20 === 0) yield { key: event.user_id, value };
  }
  const bad = [
    '{"event_id": "bad-json", "amount": ',
    `{"event_id": "bad-type", "amount": "lots", "${partitionColumn}": "2026-11-23"}`,
    `{"user_id": "no-id", "${partitionColumn}": "2026-11-23"}`,
    `{"event_id": "bad-day", "${partitionColumn}": "someday"}`,
  ];
  for (let i = 0; i < malformed; i++) yield { key: 'malformed', value: bad[i % bad.length] as string };
}

async function prepare(config: Config, events: number): Promise<void> {
  const table = config.delta.tablePath;
  if (!existsSync(join(table, '_delta_log'))) {
    await createTable(table, sampleColumns(config.delta.partitionColumn), [config.delta.partitionColumn]);
    console.log(`created table ${table} (partitioned by ${config.delta.partitionColumn})`);
  } else {
    console.log(`table ${table} exists`);
  }
  for (const topic of config.kafka.topics) {
    if (await createTopic(config.kafka.brokers, topic, 3)) {
      const sent = await produceMessages(config.kafka.brokers, topic, sampleEvents(events, config.delta.partitionColumn));
      console.log(`created topic ${topic} (3 partitions) and produced ${sent} sample events`);
    } else {
      console.log(`topic ${topic} exists; no new sample events (delete .kafka and .data to start over)`);
    }
  }
}

async function summary(config: Config): Promise<void> {
  const target = await DeltaTarget.open(config.delta.tablePath, config.delta.storageOptions);
  const partitions = await target.partitionSummary();
  const total = partitions.reduce((n, p) => n + p.rows, 0);
  console.log(`\n${target.uri}: version ${await target.refresh()}, ${total} rows`);
  for (const p of partitions) console.log(`  ${p.partition}: ${p.rows} rows in ${p.files} file(s)`);
  if (config.deadLetter.kind === 'delta' && existsSync(join(config.deadLetter.tablePath, '_delta_log'))) {
    const dlq = await DeltaTarget.open(config.deadLetter.tablePath, config.delta.storageOptions);
    const dead = (await dlq.partitionSummary()).reduce((n, p) => n + p.rows, 0);
    console.log(`dead letters: ${dead} in ${config.deadLetter.tablePath}`);
  }
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  const at = rest.indexOf('--config');
  const path = at >= 0 ? rest[at + 1] : './config.yaml';
  const config = await loadConfig({ path });
  if (command === 'prepare') await prepare(config, Number(process.env.KDR_SAMPLE_EVENTS ?? 20000));
  else if (command === 'summary') await summary(config);
  else throw new Error('usage: sample.js prepare|summary [--config FILE]');
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
