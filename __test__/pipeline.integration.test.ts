/**
 * The library as an embedding service uses it: a Pipeline from a config object, its events, its
 * run summary and its metrics registry served over HTTP, against the real broker.
 */
import test from 'ava';
import { join } from 'node:path';
import { Pipeline, parseConfig, startMetricsServer, type DeadLetterEvent, type FlushSummary } from '../ts/index.js';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { EVENT_COLUMNS, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName } from './helpers/env.js';

test('[integration] Pipeline events, run summary and served metrics match what was ingested', async (t) => {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_lib');
  await createTopic(BROKERS, topic, 3);
  const good = Array.from({ length: 200 }, (_, i) => ({
    key: `k${i}`,
    value: JSON.stringify({ id: `e${i}`, seq: i, date_col: '2026-11-23' }),
  }));
  await produceMessages(BROKERS, topic, [...good, { value: '{"id":', partition: 0 }, { value: '{"seq": 1, "date_col": "2026-11-23"}', partition: 0 }]);

  const config = parseConfig(
    testConfig({ topics: [topic], group: uniqueName('kdr_group'), tablePath: table, batchSize: 50, extra: { kafka: { max_poll_records: 50 } } }),
  );
  const pipeline = new Pipeline(config, { untilCaughtUp: true });
  const flushes: FlushSummary[] = [];
  const dead: DeadLetterEvent[] = [];
  pipeline.on('flush', (s) => flushes.push(s));
  pipeline.on('deadLetter', (d) => dead.push(d));
  const summary = await pipeline.run();

  t.like(summary, { messages: 202, rowsWritten: 200, deadLetters: 2 });
  t.is(flushes.reduce((n, f) => n + f.rowsWritten, 0), 200);
  t.true(flushes.length >= 2, `50-record polls and batch_size 50 make several flushes (${flushes.length})`);
  t.deepEqual(dead.map((d) => [d.topic, d.partition, d.reason]).sort(), [
    [topic, 0, 'malformed_json'],
    [topic, 0, 'missing_field'],
  ]);
  t.is(readTable(table).rows.length, 200);

  const server = await startMetricsServer({
    host: '127.0.0.1',
    port: 0,
    endpoint: '/metrics',
    registry: pipeline.metrics.registry,
    ready: () => pipeline.running,
  });
  try {
    const base = `http://127.0.0.1:${server.port}`;
    const text = await (await fetch(`${base}/metrics`)).text();
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    t.is(value(`kafka_delta_messages_consumed_total{topic="${topic}"}`), 202);
    t.is(value(`kafka_delta_records_written_total{table="${pipeline.target?.uri}"}`), 200);
    t.is(value(`kafka_delta_dead_letters_total{topic="${topic}",reason="malformed_json"}`), 1);
    t.is(value(`kafka_delta_dead_letters_total{topic="${topic}",reason="missing_field"}`), 1);
    t.is(value('kafka_delta_flush_duration_seconds_count'), flushes.length);
    t.is(value(`kafka_delta_table_version{table="${pipeline.target?.uri}"}`), readTable(table).version);
    t.true(value('process_resident_memory_bytes') > 0);
    // The native steps' totals (this file is the only user of its worker process's native core).
    t.is(value('kafka_delta_native_step_rows_total{step="decode"}'), 202);
    t.is(value('kafka_delta_native_step_rows_total{step="write"}'), 200);
    t.is(value('kafka_delta_native_step_calls_total{step="dedup"}'), 0);
    // The last flush wrote its 200 rows in memory (no spill): done, and idle again.
    t.is(value('kafka_delta_flush_phase{phase="idle"}'), 1);
    t.is(value('kafka_delta_flush_phase{phase="commit"}'), 0);
    t.true(value('kafka_delta_native_step_seconds_total{step="decode"}') > 0);
    t.is(value(`kafka_delta_records_deduplicated_total{table="${pipeline.target?.uri}"}`), 0);
    t.is((await fetch(`${base}/healthz`)).status, 200);
    t.is((await fetch(`${base}/readyz`)).status, 503, 'a stopped pipeline is not ready');
  } finally {
    await server.close();
  }
});
