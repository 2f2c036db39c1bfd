/**
 * The examples run as a user would run them, against the real broker: examples/http-service.ts
 * embeds the pipeline in an HTTP service whose status page and merged metrics reflect the ingestion.
 */
import test from 'ava';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { startNode } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, uniqueName } from './helpers/env.js';

const HTTP_SERVICE = fileURLToPath(new URL('../examples/http-service.ts', import.meta.url));

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
