/**
 * `kafka-delta-rust vacuum` (issue #13) removes only what it may: data files no version
 * references once past the table's `delta.deletedFileRetentionDuration`, never younger than 7
 * days unless `--force`, and the orphans of writes that never committed; every file of the newest
 * version stays. Tables come from the real broker and are compacted and read back by Python's
 * deltalake.
 */
import test from 'ava';
import { copyFileSync, existsSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Pipeline, parseConfig } from '../ts/index.js';
import { createTopic, produceMessages, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { runCli } from './helpers/cli.js';
import { capturingLogger } from './helpers/log.js';
import { EVENT_COLUMNS, activeFiles, compactWithPython, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const DAYS = ['2026-11-21', '2026-11-22'];
const DAY = 86_400_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function events(topic: string, from: number, count: number): OutgoingMessage[] {
  return Array.from({ length: count }, (_, i) => {
    const seq = from + i;
    const value = { id: `${topic}-${seq}`, seq, amount: seq / 10, note: `n${seq % 7}`, date_col: DAYS[seq % 2] };
    return { value: JSON.stringify(value), partition: 0 };
  });
}

/** Every Parquet file under the table's partition directories, relative to its root, sorted. */
function dataFiles(table: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('_')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.parquet')) out.push(relative(table, path));
    }
  };
  walk(table);
  return out.sort();
}

/** A logger keeping the messages of INFO and above. */
/** The first lines of a vacuum's output list the files, indented. */
function listed(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('  '))
    .map((l) => l.trim())
    .sort();
}

/** Two orphans beside a data file, as flushes killed before their commit leave: ten days old, and just written. */
function plantOrphans(table: string, sampleFile: string): { oldOrphan: string; youngOrphan: string } {
  const sample = join(table, sampleFile);
  const oldOrphan = join(`date_col=${DAYS[0]}`, 'part-00000-orphan-old.snappy.parquet');
  const youngOrphan = join(`date_col=${DAYS[0]}`, 'part-00000-orphan-young.snappy.parquet');
  copyFileSync(sample, join(table, oldOrphan));
  copyFileSync(sample, join(table, youngOrphan));
  const tenDaysAgo = new Date(Date.now() - 10 * DAY);
  utimesSync(join(table, oldOrphan), tenDaysAgo, tenDaysAgo);
  return { oldOrphan, youngOrphan };
}

test.serial('[integration] vacuum removes old orphans, keeps young tombstones below 7 days unless forced, and never a file of the newest version', async (t) => {
  const topic = uniqueName('kdr_vacuum');
  await createTopic(BROKERS, topic, 1);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col'], { 'delta.deletedFileRetentionDuration': 'interval 1 second' });
  const configPath = writeConfig(dir, testConfig({ topics: [topic], group: uniqueName('kdr_group'), tablePath: table }));
  for (let wave = 0; wave < 3; wave++) {
    await produceMessages(BROKERS, topic, events(topic, wave * 200, 200));
    const run = runCli(['--config', configPath, '--until-caught-up']);
    t.is(run.status, 0, run.stderr);
  }
  const written = dataFiles(table);
  t.true(compactWithPython(table).removed >= 4, 'the small files compacted away');
  const active = activeFiles(table);
  const tombstoned = written.filter((f) => !active.includes(f));
  t.true(tombstoned.length >= 4);

  const { oldOrphan, youngOrphan } = plantOrphans(table, active[0] ?? '');
  await sleep(1_500);

  const dry = runCli(['vacuum', '--config', configPath, '--dry-run']);
  t.is(dry.status, 0, dry.stderr);
  t.deepEqual(listed(dry.stdout), [oldOrphan], 'the 7-day floor keeps the young tombstones and the young orphan');
  t.regex(dry.stdout, /would remove 1 files older than 168 hours/);
  t.true(existsSync(join(table, oldOrphan)), 'a dry run removes nothing');

  const plain = runCli(['vacuum', '--config', configPath]);
  t.is(plain.status, 0, plain.stderr);
  t.deepEqual(listed(plain.stdout), [oldOrphan]);
  t.deepEqual(dataFiles(table), [...new Set([...written, ...active, youngOrphan])].sort(), 'only the old orphan went');

  const forced = runCli(['vacuum', '--config', configPath, '--force']);
  t.is(forced.status, 0, forced.stderr);
  t.deepEqual(listed(forced.stdout), [...tombstoned, youngOrphan].sort(), 'forced: the table\'s own retention of a second');
  t.regex(forced.stdout, /older than 0\.000\d+ hours/);
  t.deepEqual(dataFiles(table), active, 'every file of the newest version stays');
  t.true(statSync(join(table, active[0] ?? '')).size > 0);
  t.deepEqual(
    readTable(table).rows.map((r) => String(r.id)).sort(),
    Array.from({ length: 600 }, (_, k) => `${topic}-${k}`).sort(),
    'Python reads every row after the vacuum',
  );
});

test.serial('[integration] maintenance.vacuum removes an old orphan beside running ingestion, once a day', async (t) => {
  const topic = uniqueName('kdr_vacuum_scheduled');
  await createTopic(BROKERS, topic, 1);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const group = uniqueName('kdr_group');
  await produceMessages(BROKERS, topic, events(topic, 0, 200));
  const first = runCli(['--config', writeConfig(dir, testConfig({ topics: [topic], group, tablePath: table })), '--until-caught-up']);
  t.is(first.status, 0, first.stderr);
  const { oldOrphan, youngOrphan } = plantOrphans(table, activeFiles(table)[0] ?? '');

  const logs: string[] = [];
  const config = parseConfig(
    testConfig({ topics: [topic], group, tablePath: table, batchInterval: 0.3, extra: { maintenance: { vacuum: true, optimize: false, interval: 1 } } }),
  );
  const pipeline = new Pipeline(config, { logger: capturingLogger(logs) });
  await pipeline.start();
  for (let wave = 1; wave < 8; wave++) {
    await produceMessages(BROKERS, topic, events(topic, wave * 200, 200));
    await sleep(500);
  }
  await pipeline.stop();

  t.false(existsSync(join(table, oldOrphan)), 'the old orphan is gone');
  t.true(existsSync(join(table, youngOrphan)), 'the young one stays (7-day floor)');
  t.is(logs.filter((m) => m === 'table vacuumed').length, 1, 'one vacuum over several checks: once a day');
  t.false(logs.some((m) => m.startsWith('table maintenance')), 'no maintenance failure');
  for (const f of activeFiles(table)) t.true(existsSync(join(table, f)), `${f} of the newest version stays`);
  t.deepEqual(
    readTable(table).rows.map((r) => String(r.id)).sort(),
    Array.from({ length: 1600 }, (_, k) => `${topic}-${k}`).sort(),
    'Python reads every row: the first run\'s 200 and the 1,400 ingested beside the vacuum',
  );
});
