/**
 * The examples run as a user would run them, against the real broker:
 * - examples/http-service.ts embeds the pipeline in an HTTP service whose status page and merged
 *   metrics reflect the ingestion;
 * - examples/custom-config.ts builds its configuration in code (event-time days in a time zone,
 *   consolidation, its own dead-letter table) and ingests until caught up;
 * - examples/read-metrics.ts ingests until caught up and prints series read from the registry.
 */
import test from 'ava';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { startNode } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, uniqueName } from './helpers/env.js';

const example = (name: string) => fileURLToPath(new URL(`../examples/${name}`, import.meta.url));
const HTTP_SERVICE = example('http-service.ts');
const CUSTOM_CONFIG = example('custom-config.ts');
const READ_METRICS = example('read-metrics.ts');

test('[integration] examples/http-service.ts ingests, reports its flushes, serves merged metrics, stops on SIGTERM', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_example');
  await createTopic(BROKERS, topic, 3);
  const messages = Array.from({ length: 300 }, (_, i) => ({
    key: `k${i % 7}`,
    value: JSON.stringify({ id: `e${i % 250}`, seq: i, date_col: i % 2 === 0 ? '2026-11-22' : '2026-11-23' }),
  }));
  await produceMessages(BROKERS, topic, messages);

  const service = startNode(['--import', 'tsx', HTTP_SERVICE], {
    KAFKA_BROKERS: BROKERS,
    TOPIC: topic,
    TABLE: table,
    GROUP_ID: uniqueName('kdr_group'),
    DEDUP_KEYS: 'id',
    PORT: '0',
  });
  t.teardown(() => service.child.kill('SIGKILL'));
  const listening = await service.waitFor(/"msg":"http service listening"/);
  const port = (JSON.parse(listening) as { port: number }).port;
  const base = `http://127.0.0.1:${port}`;

  // ids e0..e249, e0..e49 twice (each pair in the same day): consolidated when both copies meet
  // in one flush, appended twice when a flush boundary splits a pair (INSERT mode).
  let status: { running: boolean; rowsWritten: number; committed: Record<string, number> } = { running: false, rowsWritten: 0, committed: {} };
  const deadline = Date.now() + 60_000;
  const committedMessages = () => Object.values(status.committed).reduce((n, next) => n + next, 0);
  while (Date.now() < deadline) {
    status = (await (await fetch(`${base}/status`)).json()) as typeof status;
    if (committedMessages() >= 300) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  t.true(status.running);
  t.is(committedMessages(), 300, 'every partition committed up to its end');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.regex(metrics, /^http_service_status_requests_total \d+$/m, 'the service’s own series');
  t.regex(metrics, new RegExp(`^kafka_delta_messages_consumed_total\\{topic="${topic}"\\} 300$`, 'm'), 'the pipeline’s series');

  service.child.kill('SIGTERM');
  t.is(await service.exited, 0, service.output().slice(-3000));
  const rows = readTable(table).rows;
  t.is(rows.length, status.rowsWritten);
  t.deepEqual([...new Set(rows.map((r) => r.id))].length, 250);
});

test('[integration] examples/custom-config.ts: a config built in code derives days in its time zone, consolidates, dead-letters', async (t) => {
  const table = join(tempDir(), 'orders');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_example_custom');
  await createTopic(BROKERS, topic, 2);
  // 23:30 UTC on 2026-11-22 is already 00:30 on 2026-11-23 in Paris (UTC+1 in November).
  const lateEvening = Date.parse('2026-11-22T23:30:00Z');
  const noon = Date.parse('2026-11-22T12:00:00Z');
  const messages = [
    // o0..o9 at noon, o10..o19 late in the evening; each id sent twice with seq 1 then 2.
    ...Array.from({ length: 40 }, (_, i) => {
      const n = i % 20;
      const seq = i < 20 ? 1 : 2;
      return { key: `o${n}`, value: JSON.stringify({ id: `o${n}`, seq, note: `v${seq}`, created_at: n < 10 ? noon : lateEvening }) };
    }),
    { key: 'bad', value: '{"id": "broken",' },
  ];
  await produceMessages(BROKERS, topic, messages);

  const env = { KAFKA_BROKERS: BROKERS, TOPICS: topic, TABLE: table, GROUP_ID: uniqueName('kdr_group'), TIMEZONE: 'Europe/Paris' };
  const run = startNode(['--import', 'tsx', CUSTOM_CONFIG], env);
  t.teardown(() => run.child.kill('SIGKILL'));
  t.is(await run.exited, 0, run.output().slice(-3000));
  const summary = JSON.parse(run.output().trim().split('\n').filter((l) => l.startsWith('{"messages"')).pop() ?? '{}') as Record<string, number>;
  t.like(summary, { messages: 41, rowsWritten: 20, rowsDeduplicated: 20, deadLetters: 1 });

  const rows = readTable(table).rows;
  t.is(rows.length, 20);
  t.true(rows.every((r) => r.seq === 2 && r.note === 'v2'), 'the greatest seq of each id won');
  const day = (id: string) => rows.find((r) => r.id === id)?.date_col;
  t.is(day('o3'), '2026-11-22');
  t.is(day('o13'), '2026-11-23', 'the day is taken in Europe/Paris, not UTC');
  const rejected = readTable(`${table}__rejected`).rows;
  t.is(rejected.length, 1);
  t.like(rejected[0], { topic, reason: 'malformed_json' });

  const invalid = startNode(['--import', 'tsx', CUSTOM_CONFIG], { ...env, TIMEZONE: 'Mars/Olympus_Mons' });
  t.is(await invalid.exited, 2);
  t.regex(invalid.output(), /delta\.partition_source\.timezone/);
});

test('[integration] examples/read-metrics.ts prints series that match what was ingested', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_example_metrics');
  await createTopic(BROKERS, topic, 3);
  // 120 records over 100 ids (e0..e19 twice, the second copy identical: a producer retry), plus
  // 3 that are cut-off JSON and 2 whose seq is not a number.
  const messages = [
    ...Array.from({ length: 120 }, (_, i) => ({ key: `e${i % 100}`, value: JSON.stringify({ id: `e${i % 100}`, seq: i % 100, date_col: '2026-11-22' }) })),
    ...Array.from({ length: 3 }, (_, i) => ({ key: `x${i}`, value: `{"id": "x${i}", "seq":` })),
    ...Array.from({ length: 2 }, (_, i) => ({ key: `y${i}`, value: JSON.stringify({ id: `y${i}`, seq: 'seven', date_col: '2026-11-22' }) })),
  ];
  await produceMessages(BROKERS, topic, messages);

  const run = startNode(['--import', 'tsx', READ_METRICS], {
    KAFKA_BROKERS: BROKERS,
    TOPIC: topic,
    TABLE: table,
    GROUP_ID: uniqueName('kdr_group'),
    DEDUP_KEYS: 'id',
  });
  t.teardown(() => run.child.kill('SIGKILL'));
  t.is(await run.exited, 0, run.output().slice(-3000));

  /** `name{labels} value` lines → value by `name{labels}`. */
  const samples = new Map<string, number>();
  for (const line of run.output().split('\n')) {
    const m = /^(kafka_delta_[a-z_]+(?:\{.*\})?) (\S+)$/.exec(line);
    if (m) samples.set(m[1]!, Number(m[2]));
  }
  t.log([...samples].map(([k, v]) => `${k} ${v}`).join('\n'));
  const read = readTable(table);
  /** The one sample of a per-table series; its label names our table (a path or a file:// URI). */
  const ofTable = (name: string) => {
    const found = [...samples].filter(([key]) => key.startsWith(`${name}{table=`));
    t.is(found.length, 1, `one ${name} sample`);
    t.true(found[0]?.[0].includes(table), found[0]?.[0]);
    return found[0]?.[1];
  };

  t.is(samples.get(`kafka_delta_messages_consumed_total{topic="${topic}"}`), messages.length);
  t.is(read.rows.length, 100);
  t.is(ofTable('kafka_delta_records_written_total'), read.rows.length);
  t.is(ofTable('kafka_delta_records_deduplicated_total'), 20);
  t.is(ofTable('kafka_delta_table_version'), read.version);
  t.is(samples.get(`kafka_delta_dead_letters_total{topic="${topic}",reason="malformed_json"}`), 3);
  t.is(samples.get(`kafka_delta_dead_letters_total{topic="${topic}",reason="type_mismatch"}`), 2);
  t.true((samples.get('kafka_delta_flush_duration_seconds_count') ?? 0) >= 1);
});
