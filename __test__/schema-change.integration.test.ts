/**
 * The table's schema changed by another writer under a running pipeline (Python's deltalake adds
 * a column): rows staged and spilled in the old schema still commit (the new column null), also
 * after a restart with them on disk, and the stage decodes with the new schema from the next
 * flush on.
 */
import test from 'ava';
import { join } from 'node:path';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { runCli, startCli } from './helpers/cli.js';
import { EVENT_COLUMNS, addColumnWithPython, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';
import { DAY, event, openStage, pack } from './helpers/stage.js';

const appIds = [{ topicIndex: 0, partition: 0, appId: 'schema-test:0' }];

test('rows spilled before another writer adds a column commit with it null; later messages fill it', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  // Every append spills (a 1-byte cap): the old-schema rows are on disk, as after a crash.
  const { target, stage } = await openStage(table, {});
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  const batch = (from: number, count: number, extra: Record<string, unknown> = {}) =>
    pack(Array.from({ length: count }, (_, k) => ({ partition: 0, offset: from + k, payload: event(`e${from + k}`, extra) })));
  await stage.append(batch(0, 40, { region: 'ignored: not a column yet' }));
  t.true(stage.spilledRows === 40);

  addColumnWithPython(table, 'region', 'string');
  await stage.append(batch(40, 10, { region: 'also before the flush' }));
  t.is((await target.commitRows(stage.take(), appIds, { maxAttempts: 3 })).rowsWritten, 50);
  t.deepEqual(target.followSchema(stage), ['region']);
  t.deepEqual(target.followSchema(stage), [], 'once');

  await stage.append(batch(50, 10, { region: 'eu' }));
  t.is((await target.commitRows(stage.take(), appIds, { maxAttempts: 3 })).rowsWritten, 10);
  const rows = readTable(table).rows.sort((a, b) => Number(String(a.id).slice(1)) - Number(String(b.id).slice(1)));
  t.deepEqual(
    rows.map((r) => [r.id, r.region]),
    Array.from({ length: 60 }, (_, k) => [`e${k}`, k < 50 ? null : 'eu']),
  );
});

test('[integration] a restart with spill files in the old schema commits them into the new one', async (t) => {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_schema');
  await createTopic(BROKERS, topic, 1);
  const message = (k: number, region: string | null) => ({ partition: 0, value: JSON.stringify({ id: `e${k}`, seq: k, date_col: DAY, region }) });
  await produceMessages(BROKERS, topic, Array.from({ length: 1000 }, (_, k) => message(k, 'before the column')));
  const base = { topics: [topic], group: uniqueName('kdr_group'), tablePath: table };
  const staging = join(dir, 'staging');
  // A daily schedule: a stop keeps the staged rows (spilled past the 1-byte cap) for the next start.
  const far = new Date(Date.now() + 12 * 3600_000);
  const schedule = `${String(far.getUTCHours()).padStart(2, '0')}:${String(far.getUTCMinutes()).padStart(2, '0')}`;
  const batch = { schedule, timezone: 'UTC', batch_interval: 3600, batch_size: 1_000_000 };
  const daily = testConfig({ ...base, extra: { batch, buffer: { staging_dir: staging, max_memory: 1 } } });
  const first = startCli(['--config', writeConfig(dir, daily, 'daily.yaml'), '--logging.level=DEBUG']);
  await first.waitFor(/"msg":"batch staged".*"consumed":1000\b/);
  first.child.kill('SIGTERM');
  t.is(await first.exited, 0, first.output().slice(-3000));
  t.notRegex(first.output(), /flush committed/);

  addColumnWithPython(table, 'region', 'string');
  await produceMessages(BROKERS, topic, Array.from({ length: 500 }, (_, k) => message(1000 + k, 'eu')));
  const restart = runCli(['--config', writeConfig(dir, testConfig({ ...base, extra: { buffer: { staging_dir: staging, max_memory: 1 } } })), '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr.slice(-3000));
  t.regex(restart.stderr, /"msg":"staging recovered"/);
  const rows = readTable(table).rows.sort((a, b) => Number(a.seq) - Number(b.seq));
  t.deepEqual(
    rows.map((r) => [r.id, r.region]),
    Array.from({ length: 1500 }, (_, k) => [`e${k}`, k < 1000 ? null : 'eu']),
  );
});
