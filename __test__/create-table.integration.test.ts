/**
 * `delta.create_if_missing` (issue #13): the table declared in `delta.schema` is created on first
 * start. Two instances of one group started at the same moment on a missing table both come up,
 * the log holds one CREATE, and every message lands exactly once, as Python's deltalake reads it
 * back with the declared columns, partition column and properties. `validate` shows what would be
 * created; a declaration that cannot be created is a config error naming its key.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../ts/index.js';
import { openOrCreateTarget } from '../ts/pipeline/open-table.js';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { runCli, startCli } from './helpers/cli.js';
import { capturingLogger } from './helpers/log.js';
import { describeTable, readTable, tableHistory } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const SCHEMA = {
  columns: [
    { name: 'id', type: 'string', nullable: false },
    { name: 'seq', type: 'long' },
    { name: 'amount', type: 'decimal(10,2)' },
    { name: 'date_col', type: 'string', nullable: false },
  ],
  properties: { 'delta.checkpointInterval': 7 },
};

const events = (topic: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({
    value: JSON.stringify({ id: `${topic}-${i}`, seq: i, amount: i / 4, date_col: i % 2 === 0 ? '2026-11-23' : '2026-11-24' }),
    partition: i % 4,
  }));

test.serial('[integration] two instances started at once on a missing table: one CREATE, every message once, the declared schema', async (t) => {
  const topic = uniqueName('kdr_create');
  await createTopic(BROKERS, topic, 4);
  await produceMessages(BROKERS, topic, events(topic, 800));
  const dir = tempDir();
  const table = join(dir, 'events');
  const group = uniqueName('kdr_group');
  const configs = ['a', 'b'].map((name) =>
    writeConfig(dir, testConfig({ topics: [topic], group, tablePath: table, extra: { delta: { create_if_missing: true, schema: SCHEMA } } }), `${name}.yaml`),
  );

  const shown = runCli(['validate', '--config', configs[0] ?? '']);
  t.is(shown.status, 0, shown.stderr);
  t.regex(shown.stdout, /missing; the first start creates it \(delta\.create_if_missing\), partitioned by \[date_col\]/);
  t.regex(shown.stdout, /amount decimal\(10,2\)\n {2}date_col string not null\n {2}property delta\.checkpointInterval = 7/);
  t.false(existsSync(join(table, '_delta_log')), 'validate creates nothing');

  const runs = configs.map((config) => startCli(['--config', config, '--until-caught-up']));
  const codes = await Promise.all(runs.map((r) => r.exited));
  t.deepEqual(codes, [0, 0], runs.map((r) => r.output()).join('\n---\n'));
  const logs = runs.map((r) => r.output()).join('\n');
  t.is((logs.match(/"msg":"table created"/g) ?? []).length, 1, 'one instance reports the creation');
  t.log(`the other instance: ${/another writer meanwhile/.test(logs) ? 'lost the race to create it' : 'found it created'}`);

  const described = describeTable(table);
  t.deepEqual(described.columns, [
    ['id', 'string', false],
    ['seq', 'long', true],
    ['amount', 'decimal(10,2)', true],
    ['date_col', 'string', false],
  ]);
  t.deepEqual(described.partition_columns, ['date_col']);
  t.is(described.configuration['delta.checkpointInterval'], '7');
  const creates = tableHistory(table).filter((h) => h.operation === 'CREATE TABLE');
  t.deepEqual(creates.map((h) => h.version), [0], 'the log holds one CREATE, at version 0');
  const rows = readTable(table).rows.map((r) => `${String(r.id)} ${String(r.seq)} ${String(r.amount)} ${String(r.date_col)}`).sort();
  const expected = events(topic, 800).map((e) => {
    const v = JSON.parse(e.value) as { id: string; seq: number; amount: number; date_col: string };
    return `${v.id} ${v.seq} ${v.amount.toFixed(2)} ${v.date_col}`;
  });
  t.deepEqual(rows, expected.sort(), 'every message exactly once');
});

test.serial('[integration] openers racing to create the same missing table all open it, and the log holds one CREATE', async (t) => {
  const table = join(tempDir(), 'raced');
  const config = parseConfig(testConfig({ topics: ['t'], group: 'g', tablePath: table, extra: { delta: { create_if_missing: true, schema: SCHEMA } } }));
  const lines: string[] = [];
  const targets = await Promise.all(Array.from({ length: 4 }, () => openOrCreateTarget(config, capturingLogger(lines))));
  t.deepEqual(targets.map((target) => target.info().version), [0, 0, 0, 0]);
  t.deepEqual(tableHistory(table).map((h) => h.operation), ['CREATE TABLE']);
  t.is(lines.filter((l) => l === 'table created').length, 1, lines.join('\n'));
  // An opener that starts after the CREATE landed just opens the table: at most the other three lost the race.
  t.true(lines.filter((l) => l.startsWith('table created by another writer')).length <= 3, lines.join('\n'));
});

test('a declared table that cannot be created is a config error naming the key', (t) => {
  const base = testConfig({ topics: ['t'], group: 'g', tablePath: join(tempDir(), 'missing') });
  const problems = (delta: Record<string, unknown>) => {
    const error = t.throws(() => parseConfig({ ...base, delta: { ...(base.delta as object), ...delta } }), { instanceOf: ConfigError });
    return (error as ConfigError).problems.map((p) => `${p.key}: ${p.message}`);
  };
  t.deepEqual(problems({ create_if_missing: true }), ['delta.schema: is required when delta.create_if_missing is true (the columns of the table to create)']);
  t.deepEqual(problems({ schema: { columns: [{ name: 'id', type: 'string' }] } }), [
    'delta.schema.columns: must include the partition column "date_col" (delta.partition_column)',
  ]);
  const badType = problems({ schema: { columns: [{ name: 'date_col', type: 'varchar' }] } });
  t.is(badType.length, 1);
  t.regex(badType[0] ?? '', /^delta\.schema\.columns\[0\]\.type: .*a Delta type: string, long/);
  const twice = problems({ schema: { columns: [{ name: 'date_col', type: 'string' }, { name: 'date_col', type: 'long' }] } });
  t.regex(twice[0] ?? '', /^delta\.schema\.columns\[1\]\.name: expected each column name once, got the string "date_col"/);
  const parsed = parseConfig({ ...base, delta: { ...(base.delta as object), create_if_missing: true, schema: SCHEMA } });
  t.true(parsed.delta.createIfMissing);
  t.deepEqual(parsed.delta.schema?.properties, { 'delta.checkpointInterval': '7' });
  t.deepEqual(parsed.delta.schema?.columns[2], { name: 'amount', dataType: 'decimal(10,2)', nullable: true });
  t.false(parseConfig(base).delta.createIfMissing, 'off by default');
});
