/**
 * `transform.filter` and `transform.columns` through the pipeline against the real broker: the
 * filtered messages are consumed (positions advance past them) but neither written nor dead
 * letters, derived columns read nested fields and the Kafka context, a row whose expression
 * fails is a dead letter with its reason, and a bad expression is a configuration error naming
 * its key. The table is read back by Python deltalake.
 */
import test from 'ava';
import { join } from 'node:path';
import { ConfigError, Pipeline, parseConfig } from '../ts/index.js';
import { txnAppId } from '../ts/pipeline/identity.js';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { createTableWithPython, readTable, txnVersions } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName } from './helpers/env.js';

const COLUMNS: Array<[string, string, boolean]> = [
  ['id', 'string', false],
  ['event_type', 'string', true],
  ['geo', 'struct<country:string>', true],
  ['qty_text', 'string', true],
  ['country', 'string', true],
  ['qty', 'long', true],
  ['origin', 'string', true],
  ['date_col', 'string', false],
];

const TRANSFORM = {
  filter: `event_type <> 'heartbeat' AND coalesce(kafka_headers, '') NOT LIKE '%"replay":"yes"%'`,
  columns: {
    country: 'upper(geo.country)',
    qty: 'CAST(qty_text AS BIGINT) * 10',
    origin: "concat(kafka_topic, ':', CAST(kafka_partition AS VARCHAR), ':', CAST(kafka_offset AS VARCHAR), ':', kafka_key)",
  },
};

test('[integration] the filter drops heartbeats as consumed, derived columns are computed, a failing row is a dead letter', async (t) => {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_transform');
  await createTopic(BROKERS, topic, 1);
  const day = '2026-11-23';
  const payloads = [
    { id: 'e0', event_type: 'click', geo: { country: 'fr' }, qty_text: '1' },
    { id: 'h1', event_type: 'heartbeat' },
    { id: 'e2', event_type: 'view', geo: { country: 'de' }, qty_text: '2' },
    { id: 'e3', event_type: 'view', qty_text: 'many' },
    { id: 'e4', event_type: 'click', geo: null, qty_text: null },
    { id: 'h5', event_type: 'heartbeat', qty_text: 'not a number either' },
    { id: 'e6', event_type: null, geo: { country: 'it' }, qty_text: '3' },
    { id: 'e7', event_type: 'click', qty_text: '4' },
    { id: 'e8', event_type: 'click', qty_text: '5' },
  ];
  // e8, the last message, is a replay by its header; e7 has other headers.
  const headers = (id: string) => (id === 'e8' ? { replay: 'yes' } : id === 'e7' ? { replay: 'no' } : undefined);
  await produceMessages(
    BROKERS,
    topic,
    payloads.map((p) => ({ value: JSON.stringify({ ...p, date_col: day }), key: `k-${p.id}`, partition: 0, headers: headers(p.id) })),
  );

  const config = parseConfig(
    testConfig({ topics: [topic], group: uniqueName('kdr_group'), tablePath: table, extra: { transform: TRANSFORM } }),
  );
  const pipeline = new Pipeline(config, { untilCaughtUp: true });
  const summary = await pipeline.run();

  // e6's null event_type makes the predicate null, not true: filtered as SQL's WHERE would.
  const rows = readTable(table).rows.map((r) => [r.id, r.country, r.qty, r.origin]);
  t.deepEqual(rows.sort(), [
    ['e0', 'FR', 10, `${topic}:0:0:k-e0`],
    ['e2', 'DE', 20, `${topic}:0:2:k-e2`],
    ['e4', null, null, `${topic}:0:4:k-e4`],
    ['e7', null, 40, `${topic}:0:7:k-e7`],
  ]);
  const dead = readTable(`${table}__dead_letters`).rows.map((r) => [r.offset, r.reason, String(r.detail).split(':')[0]]);
  t.deepEqual(dead, [[3, 'transform_failed', 'transform.columns.qty']]);
  t.like(summary, { messages: 9, rowsWritten: 4, deadLetters: 1 });
  // The table's position covers every message: the last one, filtered, included.
  const appId = txnAppId(config.kafka.groupId, topic, 0);
  t.deepEqual(txnVersions(table, [appId]), { [appId]: 8 });
  const filtered = await pipeline.metrics.registry.getSingleMetric('kafka_delta_messages_filtered_total')?.get();
  t.deepEqual(filtered?.values.map((v) => [v.labels.topic, v.value]), [[topic, 4]]);
});

test('[integration] an expression that does not plan is a configuration error naming its key', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, COLUMNS, ['date_col']);
  const config = parseConfig(
    testConfig({
      topics: [uniqueName('kdr_transform_bad')],
      group: uniqueName('kdr_group'),
      tablePath: table,
      extra: { transform: { filter: 'event_type <> 1', columns: { country: 'upper(geo.nation)' } } },
    }),
  );
  const error = await t.throwsAsync(new Pipeline(config, { untilCaughtUp: true }).run(), { instanceOf: ConfigError });
  t.is(error?.problems[0]?.key, 'transform.columns.country');
  t.regex(error?.problems[0]?.message ?? '', /nation/);
});
