/**
 * `delta.schema_evolution: add_columns`: a JSON field the table lacks becomes a nullable column
 * (a field of a struct column a struct field), added by the commit that writes its rows; while
 * the column is pending its type widens across records (integer and float make float), once its
 * rows were taken for a commit a record of another type is a dead letter. Read back by Python.
 */
import test from 'ava';
import { join } from 'node:path';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { runCli, startCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, describeTable, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';
import { DAY, event, openStage, pack } from './helpers/stage.js';

const appIds = [{ topicIndex: 0, partition: 0, appId: 'evolution-test:0' }];
const byId = (a: Record<string, unknown>, b: Record<string, unknown>) => Number(String(a.id).slice(1)) - Number(String(b.id).slice(1));

test('new fields and struct fields become columns in the commit of their rows; pending types widen, settled ones never change', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, [...EVENT_COLUMNS, ['device', 'struct<model:string>', true]], ['date_col']);
  // Every append spills: the rows before the new fields are on disk in the old schema.
  const { target, stage } = await openStage(table, {}, false, true);
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  const batch = (from: number, count: number, extra: (k: number) => Record<string, unknown>) =>
    pack(Array.from({ length: count }, (_, i) => ({ partition: 0, offset: from + i, payload: event(`e${from + i}`, extra(from + i)) })));

  await stage.append(batch(0, 10, () => ({ device: { model: 'a' } })));
  const widened = await stage.append(batch(10, 10, (k) => ({ region: 'eu', level: k, device: { model: 'b', os: 'ios' } })));
  t.deepEqual(widened.rejected, [], 'a new field is not a dead letter');
  // `level` arrived as integers; fractions before the commit make it a double column.
  await stage.append(batch(20, 10, (k) => ({ region: null, level: k + 0.5 })));
  const first = await target.commitRows(stage.take(), appIds, { maxAttempts: 3 });
  t.is(first.rowsWritten, 30);
  t.deepEqual([...first.columnsAdded].sort(), ['device.os', 'level', 'region']);
  t.deepEqual(target.followSchema(stage), [], 'our own columns are no news');

  // Settled: a string in the double column is a dead letter; a number still fits.
  const after = await stage.append(batch(30, 2, (k) => ({ level: k === 30 ? 'high' : 7 })));
  t.deepEqual(after.rejected.map((r) => [r.offset, r.reason]), [[30, 'type_mismatch']]);
  const second = await target.commitRows(stage.take(), appIds, { maxAttempts: 3 });
  t.is(second.rowsWritten, 1);
  t.deepEqual(second.columnsAdded, []);

  const columns = describeTable(table).columns;
  t.deepEqual(columns.slice(EVENT_COLUMNS.length + 1), [['level', 'double', true], ['region', 'string', true]]);
  t.deepEqual(columns.find((c) => c[0] === 'device'), ['device', { type: 'struct', fields: [
    { name: 'model', type: 'string', nullable: true, metadata: {} },
    { name: 'os', type: 'string', nullable: true, metadata: {} },
  ] }, true]);
  const rows = readTable(table).rows.sort(byId);
  const expected = (k: number) => {
    if (k < 10) return [`e${k}`, null, null, { model: 'a', os: null }];
    if (k < 20) return [`e${k}`, 'eu', k, { model: 'b', os: 'ios' }];
    if (k < 30) return [`e${k}`, null, k + 0.5, null];
    return [`e${k}`, null, 7, null];
  };
  t.deepEqual(rows.map((r) => [r.id, r.region, r.level, r.device]), [...Array.from({ length: 30 }, (_, k) => expected(k)), expected(31)]);
});

test('[integration] a field producers start sending mid-run becomes a column, logged once', async (t) => {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_evolve');
  await createTopic(BROKERS, topic, 1);
  const message = (k: number, extra: Record<string, unknown>) => ({ partition: 0, value: JSON.stringify({ id: `e${k}`, seq: k, date_col: DAY, ...extra }) });
  await produceMessages(BROKERS, topic, Array.from({ length: 300 }, (_, k) => message(k, {})));
  const config = testConfig({ topics: [topic], group: uniqueName('kdr_group'), tablePath: table, extra: { delta: { schema_evolution: 'add_columns' } } });
  const cli = startCli(['--config', writeConfig(dir, config)]);
  await cli.waitFor(/"msg":"flush committed".*"rows":300\b/);

  await produceMessages(BROKERS, topic, Array.from({ length: 200 }, (_, k) => message(300 + k, { region: k % 2 === 0 ? 'eu' : 'us' })));
  await cli.waitFor(/"msg":"column added to the table".*"column":"region"/);
  await cli.waitFor(/"msg":"flush committed".*"rows":\d+/);
  cli.child.kill('SIGTERM');
  t.is(await cli.exited, 0, cli.output().slice(-3000));
  t.is(cli.output().match(/column added to the table/g)?.length, 1, cli.output().slice(-3000));

  t.deepEqual(describeTable(table).columns.at(-1), ['region', 'string', true]);
  const rows = readTable(table).rows.sort(byId);
  t.deepEqual(
    rows.map((r) => [r.id, r.region]),
    Array.from({ length: 500 }, (_, k) => [`e${k}`, k < 300 ? null : (k - 300) % 2 === 0 ? 'eu' : 'us']),
  );
});

test('MERGE: a new field updates the matched rows and inserts the rest with it, in one commit', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const { target, stage } = await openStage(table, undefined, false, true);
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  const options = {
    maxAttempts: 3,
    dedup: { keys: ['id'] },
    merge: { keys: ['id'], partitionColumn: 'date_col' },
  };
  const message = (offset: number, id: number, extra: Record<string, unknown> = {}) => ({ partition: 0, offset, payload: event(`e${id}`, { seq: offset, ...extra }) });
  await stage.append(pack([0, 1, 2, 3].map((k) => message(k, k))));
  t.deepEqual((await target.commitRows(stage.take(), appIds, options)).columnsAdded, []);
  // e2 and e3 again, now with a region; e4 and e5 new.
  await stage.append(pack([2, 3, 4, 5].map((id, i) => message(4 + i, id, { region: `r${id}` }))));
  const merged = await target.commitRows(stage.take(), appIds, options);
  t.deepEqual(merged.columnsAdded, ['region']);
  t.like(merged.merge, { rowsUpdated: 2, rowsInserted: 2 });
  const read = readTable(table);
  t.deepEqual(read.operations[0], 'MERGE', 'the column came with the MERGE, not a commit of its own');
  t.deepEqual(
    read.rows.sort(byId).map((r) => [r.id, r.seq, r.region]),
    [['e0', 0, null], ['e1', 1, null], ['e2', 4, 'r2'], ['e3', 5, 'r3'], ['e4', 6, 'r4'], ['e5', 7, 'r5']],
  );
});

test('[integration] rows staged with a new column and spilled before a stop commit it after the restart', async (t) => {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_evolve_restart');
  await createTopic(BROKERS, topic, 1);
  const message = (k: number) => ({ partition: 0, value: JSON.stringify({ id: `e${k}`, seq: k, date_col: DAY, ...(k >= 400 && { region: `r${k % 3}` }) }) });
  await produceMessages(BROKERS, topic, Array.from({ length: 600 }, (_, k) => message(k)));
  const base = { topics: [topic], group: uniqueName('kdr_group'), tablePath: table };
  const evolving = { schema_evolution: 'add_columns' };
  const staging = { staging_dir: join(dir, 'staging'), max_memory: 1 };
  // A daily schedule: the stop keeps the staged rows (spilled past the 1-byte cap) for the next start.
  const far = new Date(Date.now() + 12 * 3600_000);
  const schedule = `${String(far.getUTCHours()).padStart(2, '0')}:${String(far.getUTCMinutes()).padStart(2, '0')}`;
  const daily = testConfig({ ...base, extra: { delta: evolving, batch: { schedule, timezone: 'UTC', batch_interval: 3600, batch_size: 1_000_000 }, buffer: staging } });
  const first = startCli(['--config', writeConfig(dir, daily, 'daily.yaml'), '--logging.level=DEBUG']);
  await first.waitFor(/"msg":"batch staged".*"consumed":600\b/);
  first.child.kill('SIGTERM');
  t.is(await first.exited, 0, first.output().slice(-3000));
  t.notRegex(first.output(), /flush committed/);

  const restart = runCli(['--config', writeConfig(dir, testConfig({ ...base, extra: { delta: evolving, buffer: staging } })), '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr.slice(-3000));
  t.regex(restart.stderr, /"msg":"staging recovered"/);
  t.regex(restart.stderr, /"msg":"column added to the table".*"column":"region"/);
  const rows = readTable(table).rows.sort(byId);
  t.deepEqual(rows.map((r) => [r.id, r.region]), Array.from({ length: 600 }, (_, k) => [`e${k}`, k >= 400 ? `r${k % 3}` : null]));
});
