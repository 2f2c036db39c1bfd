/**
 * Checkpoints (issue #13): a table kept for months is read from its checkpoints, not from every
 * JSON commit. Our commits write one every `delta.checkpointInterval` versions, with the txn
 * actions in it, so that where each partition resumes survives the log's cleanup, which the same
 * commits run past `delta.logRetentionDuration`. Proved against the real broker: with every JSON
 * commit a checkpoint covers gone, Python's deltalake reads the exact rows and a restarted
 * pipeline resumes without a duplicate or a gap. The `checkpoint` subcommand does the same on
 * demand, for operators who schedule it.
 */
import test from 'ava';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { txnAppId } from '../ts/index.js';
import { createTopic, produceMessages, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { runCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, lastCheckpoint, readTable, txnVersions } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const PARTITIONS = 2;
const DAYS = ['2026-11-21', '2026-11-22'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Events `from..from+count-1`, event k on partition k % PARTITIONS. */
function events(topic: string, from: number, count: number): OutgoingMessage[] {
  return Array.from({ length: count }, (_, i) => {
    const seq = from + i;
    const value = { id: `${topic}-${seq}`, seq, amount: seq / 10, note: `n${seq % 7}`, date_col: DAYS[seq % 2] };
    return { value: JSON.stringify(value), partition: seq % PARTITIONS };
  });
}

function ids(topic: string, count: number): string[] {
  return Array.from({ length: count }, (_, k) => `${topic}-${k}`).sort();
}

function idsOf(rows: Array<Record<string, unknown>>): string[] {
  return rows.map((r) => String(r.id)).sort();
}

/** Removes the JSON commits up to `version` the cleanup left: a reader must then start from the checkpoint. */
function removeCommitsUpTo(table: string, version: number): number {
  const log = join(table, '_delta_log');
  const covered = readdirSync(log).filter((f) => /^\d{20}\.json$/.test(f) && Number(f.slice(0, 20)) <= version);
  for (const file of covered) rmSync(join(log, file));
  return covered.length;
}

test.serial('[integration] commits write checkpoints holding the txn actions; with the covered JSON commits gone, Python reads the exact rows and a restart resumes exactly', async (t) => {
  const topic = uniqueName('kdr_checkpoint');
  await createTopic(BROKERS, topic, PARTITIONS);
  const dir = tempDir();
  const table = join(dir, 'events');
  // A log retention of a second: a checkpoint's commit also removes the JSON commits it covers
  // once they are older than that.
  createTableWithPython(table, EVENT_COLUMNS, ['date_col'], {
    'delta.checkpointInterval': '2',
    'delta.logRetentionDuration': 'interval 1 second',
  });
  const group = uniqueName('kdr_group');
  const configPath = writeConfig(dir, testConfig({ topics: [topic], group, tablePath: table }));
  const appIds = Array.from({ length: PARTITIONS }, (_, p) => txnAppId(group, topic, p));

  // Four runs of 450 events: at least four commits after the table's creation.
  for (let wave = 0; wave < 4; wave++) {
    await produceMessages(BROKERS, topic, events(topic, wave * 450, 450));
    const run = runCli(['--config', configPath, '--until-caught-up']);
    t.is(run.status, 0, run.stderr);
    await sleep(1_200);
  }
  const log = join(table, '_delta_log');
  t.false(existsSync(join(log, `${'0'.repeat(20)}.json`)), 'the expired commits before a checkpoint are cleaned up');

  const checkpoint = lastCheckpoint(table);
  // Four commits at an interval of 2: the last checkpoint is at least the second (the cleanup
  // removes the checkpoints before it, too).
  t.true(checkpoint.version >= 3, `the last checkpoint at version ${checkpoint.version}`);
  // Every partition's position is in the checkpoint, at most where the table's newest version has it.
  const newest = txnVersions(table, appIds);
  for (const appId of appIds) {
    const inCheckpoint = checkpoint.txns[appId] ?? -1;
    t.true(inCheckpoint > 0, `${appId} in the checkpoint: ${inCheckpoint}`);
    t.true(inCheckpoint <= (newest[appId] ?? -1), `${appId}: ${inCheckpoint} <= ${newest[appId]}`);
  }

  removeCommitsUpTo(table, checkpoint.version);
  t.false(readdirSync(log).some((f) => f.endsWith('.json') && Number(f.slice(0, 20)) <= checkpoint.version));
  t.deepEqual(idsOf(readTable(table).rows), ids(topic, 1800), 'Python reads the rows from the checkpoint on');
  t.deepEqual(txnVersions(table, appIds), newest, 'and the same positions');

  await produceMessages(BROKERS, topic, events(topic, 1800, 600));
  const second = runCli(['--config', configPath, '--until-caught-up']);
  t.is(second.status, 0, second.stderr);
  t.deepEqual(idsOf(readTable(table).rows), ids(topic, 2400), 'resumed from the checkpoint: no duplicate, no gap');
});

test.serial('[integration] the checkpoint subcommand checkpoints the newest version with every position and cleans the expired log', async (t) => {
  const topic = uniqueName('kdr_checkpoint_cli');
  await createTopic(BROKERS, topic, PARTITIONS);
  const dir = tempDir();
  const table = join(dir, 'events');
  // The default interval (100): the ingestion writes no checkpoint of its own here.
  createTableWithPython(table, EVENT_COLUMNS, ['date_col'], { 'delta.logRetentionDuration': 'interval 1 second' });
  const group = uniqueName('kdr_group');
  const configPath = writeConfig(dir, testConfig({ topics: [topic], group, tablePath: table }));
  const appIds = Array.from({ length: PARTITIONS }, (_, p) => txnAppId(group, topic, p));
  for (let wave = 0; wave < 3; wave++) {
    await produceMessages(BROKERS, topic, events(topic, wave * 300, 300));
    const run = runCli(['--config', configPath, '--until-caught-up']);
    t.is(run.status, 0, run.stderr);
  }
  const log = join(table, '_delta_log');
  t.false(readdirSync(log).some((f) => f.endsWith('.checkpoint.parquet')), 'no checkpoint before the command');
  await sleep(1_200);

  const result = runCli(['checkpoint', '--config', configPath]);
  t.is(result.status, 0, result.stderr);
  const newestVersion = readTable(table).version;
  const checkpoint = lastCheckpoint(table);
  t.is(checkpoint.version, newestVersion, 'the newest version is checkpointed');
  t.regex(result.stdout, new RegExp(`checkpoint at version ${newestVersion}, [1-9]\\d* expired log files removed`));
  t.deepEqual(checkpoint.txns, txnVersions(table, appIds), 'with every partition position');
  const own = `${String(newestVersion).padStart(20, '0')}.json`;
  t.deepEqual(readdirSync(log).filter((f) => f.endsWith('.json')), [own], 'every JSON commit before it expired and was removed');
  t.deepEqual(idsOf(readTable(table).rows), ids(topic, 900), 'Python reads the rows from the checkpoint on');

  await produceMessages(BROKERS, topic, events(topic, 900, 300));
  const resumed = runCli(['--config', configPath, '--until-caught-up']);
  t.is(resumed.status, 0, resumed.stderr);
  t.deepEqual(idsOf(readTable(table).rows), ids(topic, 1200), 'resumed from the checkpoint: no duplicate, no gap');
});
