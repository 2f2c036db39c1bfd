/**
 * Bounded memory with durable staging, the flush schedule, and ownership changes, against the
 * real broker and real tables read back with Python's deltalake.
 */
import test from 'ava';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pipeline, parseConfig, type FlushSummary } from '../ts/index.js';
import type { Clock } from '../ts/pipeline/schedule.js';
import { createTopic, produceMessages, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { runCli, startCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, farAwayDailyTime, memberConfig, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const DAYS = ['2026-11-21', '2026-11-22'];
const FILLER_NOTE = 'y'.repeat(300);

function events(topic: string, from: number, count: number, days = DAYS, noteBytes = 200): OutgoingMessage[] {
  const filler = 'x'.repeat(noteBytes);
  return Array.from({ length: count }, (_, k) => {
    const seq = from + k;
    const value = { id: `${topic}-${seq}`, seq, amount: seq / 10, note: `${seq % 7}${filler}`, date_col: days[seq % days.length] };
    return { key: `k${seq % 13}`, value: JSON.stringify(value) };
  });
}

function expectedIds(topic: string, count: number): string[] {
  return Array.from({ length: count }, (_, k) => `${topic}-${k}`).sort();
}

function idsOf(rows: Array<Record<string, unknown>>): string[] {
  return rows.map((r) => String(r.id)).sort();
}

interface Fixture {
  dir: string;
  table: string;
  staging: string;
  group: string;
  configPath: string;
}

function fixture(topic: string, extra: Record<string, Record<string, unknown>>, batchInterval = 3600): Fixture {
  const dir = tempDir();
  const table = join(dir, 'events');
  const staging = join(dir, 'staging');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const group = uniqueName('kdr_group');
  const config = testConfig({
    topics: [topic],
    group,
    tablePath: table,
    batchInterval,
    batchSize: 10_000_000,
    extra: { ...extra, buffer: { staging_dir: staging, ...extra.buffer } },
  });
  return { dir, table, staging, group, configPath: writeConfig(dir, config) };
}

interface ManifestRange {
  topic: number;
  partition: number;
  last: number;
}
interface Manifest {
  generations: Array<{ ranges: ManifestRange[]; files: Array<{ name: string; rows: number }> }>;
}

/** The manifest of the one pipeline staging under `root`, if written yet. */
function manifestUnder(root: string): Manifest | undefined {
  if (!existsSync(root)) return undefined;
  for (const sub of readdirSync(root)) {
    const path = join(root, sub, 'manifest.json');
    if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  }
  return undefined;
}

function arrowFilesUnder(root: string): number {
  if (!existsSync(root)) return 0;
  return readdirSync(root).reduce((n, sub) => n + readdirSync(join(root, sub)).filter((f) => f.endsWith('.arrow')).length, 0);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function peakRssMiB(output: string): number {
  const match = /"msg":"pipeline stopped".*"peakRssMiB":(\d+)/.exec(output);
  if (!match) throw new Error(`no peak RSS in the output:\n${output.slice(-2000)}`);
  return Number(match[1]);
}

test.serial('[integration] a 4 MiB memory cap spills to disk, keeps peak RSS under the uncapped run, and the table is exact', async (t) => {
  const topic = uniqueName('kdr_spill');
  await createTopic(BROKERS, topic, 3);
  const total = 200_000;
  // ~1 KB notes: what is staged (~200 MB of Arrow uncapped) dwarfs the run-to-run noise of RSS.
  await produceMessages(BROKERS, topic, events(topic, 0, total, DAYS, 1000));

  const capped = fixture(topic, { buffer: { max_memory: '4MiB' } });
  const cli = startCli(['--config', capped.configPath, '--until-caught-up', '--logging.level=DEBUG']);
  let spillFiles = 0;
  while (cli.child.exitCode === null) {
    spillFiles = Math.max(spillFiles, arrowFilesUnder(capped.staging));
    await sleep(20);
  }
  t.is(await cli.exited, 0, cli.output().slice(-3000));
  t.true(spillFiles > 0, 'spill files appeared while consuming');
  // The spill is logged by the native core; its records reach the CLI's logger at their level.
  const spills = cli.output().split('\n').filter((l) => /"level":"debug","msg":"staged rows spilled to disk".*"source":"native","target":"kafka_delta_rust::segment"/.test(l)).length;
  t.true(spills >= 10, `200k rows over a 4 MiB cap spill many times (${spills})`);
  t.is(arrowFilesUnder(capped.staging), 0, 'spill files are removed after the commit');

  const uncapped = fixture(topic, { buffer: { max_memory: '1GiB' } });
  const free = runCli(['--config', uncapped.configPath, '--until-caught-up']);
  t.is(free.status, 0, free.stderr);

  const cappedPeak = peakRssMiB(cli.output());
  const freePeak = peakRssMiB(free.stderr);
  t.log(`peak RSS: ${cappedPeak} MiB with a 4 MiB cap (${spills} spills), ${freePeak} MiB uncapped; ${total} messages`);
  t.true(cappedPeak < freePeak, `capped ${cappedPeak} MiB < uncapped ${freePeak} MiB`);

  for (const f of [capped, uncapped]) {
    const read = readTable(f.table);
    t.deepEqual(idsOf(read.rows), expectedIds(topic, total));
  }
});

test.serial('[integration] kill -9 with rows spilled but not committed: the restart resumes after the manifest and the table is exact', async (t) => {
  const topic = uniqueName('kdr_spillkill');
  await createTopic(BROKERS, topic, 3);
  const total = 60_000;
  await produceMessages(BROKERS, topic, events(topic, 0, total));
  const f = fixture(topic, { buffer: { max_memory: '1MiB' }, kafka: { max_poll_records: 500 } });

  const cli = startCli(['--config', f.configPath]);
  let manifest: Manifest | undefined;
  const deadline = Date.now() + 60_000;
  for (;;) {
    manifest = manifestUnder(f.staging);
    const rows = manifest?.generations.flatMap((g) => g.files).reduce((n, file) => n + file.rows, 0) ?? 0;
    if (rows >= 20_000 || Date.now() > deadline) break;
    await sleep(5);
  }
  cli.child.kill('SIGKILL');
  await cli.exited;
  t.regex(cli.output(), /partitions assigned/);
  t.notRegex(cli.output(), /flush committed/, 'nothing was committed before the kill');
  manifest = manifestUnder(f.staging);
  if (!manifest) return t.fail('no staging manifest after the kill');
  const lastByPartition = new Map<number, number>();
  for (const r of manifest.generations.flatMap((g) => g.ranges)) {
    lastByPartition.set(r.partition, Math.max(lastByPartition.get(r.partition) ?? -1, r.last));
  }
  const durable = [...lastByPartition.values()].reduce((n, last) => n + last + 1, 0);
  t.true(durable >= 20_000, `the manifest covers ${durable} messages`);

  const restart = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr);
  t.regex(restart.stderr, /"msg":"staging recovered"/);
  const stopped = /"msg":"pipeline stopped".*"messages":(\d+)/.exec(restart.stderr);
  t.is(Number(stopped?.[1]), total - durable, 'the restart consumed only what the manifest does not cover');
  t.deepEqual(idsOf(readTable(f.table).rows), expectedIds(topic, total));
  t.is(arrowFilesUnder(f.staging), 0);
});

/** A clock the test moves by hand. */
class ManualClock implements Clock {
  constructor(public at: number) {}
  now(): number {
    return this.at;
  }
}

async function consumedTotal(pipeline: Pipeline): Promise<number> {
  const metric = await pipeline.metrics.registry.getSingleMetric('kafka_delta_messages_consumed_total')?.get();
  return (metric?.values ?? []).reduce((n, v) => n + v.value, 0);
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

test.serial('[integration] a daily schedule flushes at the day boundary of a test clock: one commit per day', async (t) => {
  const topic = uniqueName('kdr_daily');
  await createTopic(BROKERS, topic, 3);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const raw = testConfig({ topics: [topic], group: uniqueName('kdr_group'), tablePath: table });
  const config = parseConfig({
    ...raw,
    batch: { schedule: '00:00', timezone: 'Europe/Berlin' },
    buffer: { staging_dir: join(dir, 'staging'), max_memory: '1MiB' },
  });
  t.is(config.batch.batchIntervalSeconds, undefined, 'with a schedule there is no default interval');
  // 23:30 in Berlin on the first day.
  const clock = new ManualClock(Date.parse('2026-11-21T22:30:00Z'));
  const pipeline = new Pipeline(config, { clock });
  const flushes: FlushSummary[] = [];
  pipeline.on('flush', (s) => flushes.push(s));
  await pipeline.start();

  await produceMessages(BROKERS, topic, events(topic, 0, 3000, ['2026-11-21']));
  await until('day 1 is consumed', async () => (await consumedTotal(pipeline)) === 3000);
  clock.at = Date.parse('2026-11-21T22:59:00Z');
  await sleep(1500);
  t.is(flushes.length, 0, 'no flush before midnight');

  clock.at = Date.parse('2026-11-21T23:00:01Z');
  await until('the midnight flush', () => flushes.length === 1);
  t.deepEqual(flushes[0]?.days, ['2026-11-21']);
  t.is(flushes[0]?.rowsWritten, 3000);

  await produceMessages(BROKERS, topic, events(topic, 3000, 2000, ['2026-11-22']));
  await until('day 2 is consumed', async () => (await consumedTotal(pipeline)) === 5000);
  clock.at = Date.parse('2026-11-22T23:00:05Z');
  // No message arrives after this: the schedule alone makes the flush.
  await until('the second midnight flush', () => flushes.length === 2);
  t.deepEqual(flushes[1]?.days, ['2026-11-22']);
  t.is(flushes[1]?.rowsWritten, 2000);
  await pipeline.stop();

  const read = readTable(table);
  // Version 0 is the table's creation; then one commit per day and nothing at the stop.
  t.is(read.version, 2, `commits: ${read.operations.join(', ')}`);
  t.deepEqual(flushes.map((f) => f.version), [1, 2]);
  t.deepEqual(idsOf(read.rows), expectedIds(topic, 5000));
  t.deepEqual(
    [...new Set(read.rows.map((r) => String(r.date_col)))].sort(),
    ['2026-11-21', '2026-11-22'],
  );
});

test.serial('[integration] two instances on 6 partitions, one killed mid-run: the survivor takes over and the table is exact', async (t) => {
  const topic = uniqueName('kdr_pair');
  await createTopic(BROKERS, topic, 6);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const g = { dir, topic, table, group: uniqueName('kdr_group') };
  const configFor = (name: string) => writeConfig(dir, memberConfig(g, name, { batchInterval: 0.3, maxMemory: '2MiB' }), `${name}.yaml`);
  const a = startCli(['--config', configFor('a')]);
  await a.waitFor(/partitions assigned/);
  const waves = 10;
  const perWave = 3000;
  let b: ReturnType<typeof startCli> | undefined;
  for (let w = 0; w < waves; w += 1) {
    await produceMessages(BROKERS, topic, events(topic, w * perWave, perWave));
    if (w === 2) {
      b = startCli(['--config', configFor('b')]);
      await b.waitFor(/partitions assigned/);
    }
    if (w === 5) {
      await a.waitFor(/flush committed/);
      a.child.kill('SIGKILL');
    }
    await sleep(400);
  }
  await a.exited;
  if (!b) return t.fail('the second instance never started');
  const total = waves * perWave;
  await until('the survivor has written every message', () => readTable(table).rows.length >= total, 90_000);
  b.child.kill('SIGTERM');
  t.is(await b.exited, 0, b.output().slice(-3000));
  t.regex(a.output(), /partitions revoked/, 'the first instance gave partitions up when the second joined');
  const rows = readTable(table).rows;
  t.is(rows.length, total, 'no duplicates');
  t.deepEqual(idsOf(rows), expectedIds(topic, total));
});


/**
 * `total` messages on a fresh topic, staged by a CLI run whose daily flush is hours away, then
 * SIGTERM: the staged rows end up in the staging directory, not in the table.
 */
async function stageThenStop(prefix: string, total: number) {
  const topic = uniqueName(prefix);
  await createTopic(BROKERS, topic, 3);
  await produceMessages(BROKERS, topic, events(topic, 0, total));
  const f = fixture(topic, { batch: { schedule: farAwayDailyTime(), timezone: 'UTC' } });
  const cli = startCli(['--config', f.configPath, '--logging.level=DEBUG']);
  await cli.waitFor(new RegExp(`"msg":"batch staged".*"consumed":${total}\\b`));
  cli.child.kill('SIGTERM');
  return { topic, f, cli, exitCode: await cli.exited };
}

test.serial('[integration] SIGTERM before a scheduled flush persists the staged rows; the restart commits them without re-reading Kafka', async (t) => {
  const total = 5000;
  const { topic, f, cli, exitCode } = await stageThenStop('kdr_persist', total);
  t.is(exitCode, 0, cli.output().slice(-3000));
  t.regex(cli.output(), /"msg":"stopping before the scheduled flush: staged rows kept on disk for the next start".*"persisted":true/);
  t.notRegex(cli.output(), /flush committed/);
  t.is(readTable(f.table).version, 0, 'nothing was committed at the stop');
  const covered = (manifestUnder(f.staging)?.generations ?? []).flatMap((g) => g.files).reduce((n, file) => n + file.rows, 0);
  t.is(covered, total, 'every staged row is in the staging directory');

  // A catch-up run commits at its end (as the schedule would at its time).
  const restart = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr);
  t.regex(restart.stderr, /"msg":"staging recovered".*"rows":5000/);
  t.regex(restart.stderr, /"msg":"pipeline stopped".*"messages":0\b/, 'nothing was read again from Kafka');
  t.deepEqual(idsOf(readTable(f.table).rows), expectedIds(topic, total));
  t.is(arrowFilesUnder(f.staging), 0);
});

test.serial('[integration] over buffer.max_disk, consumption pauses and flushes early, then resumes; the table is exact', async (t) => {
  const topic = uniqueName('kdr_disk');
  await createTopic(BROKERS, topic, 3);
  const total = 40_000;
  await produceMessages(BROKERS, topic, events(topic, 0, total));
  // An hour-long interval: every flush in this run is one forced by the disk limit (or the end).
  const f = fixture(topic, { buffer: { max_memory: '512KiB', max_disk: '2MiB' }, kafka: { max_poll_records: 500 } });
  const run = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(run.status, 0, run.stderr);
  const count = (pattern: RegExp) => run.stderr.split('\n').filter((l) => pattern.test(l)).length;
  const paused = count(/consumption paused, flushing early/);
  const resumed = count(/consumption resumed/);
  const flushes = count(/"msg":"flush committed"/);
  t.log(`${paused} pauses, ${resumed} resumes, ${flushes} flushes for ${total} messages`);
  t.true(paused >= 1, 'consumption paused at least once');
  t.true(resumed >= 1, 'and resumed');
  t.true(flushes >= 2, 'early flushes happened before the end of the run');
  t.deepEqual(idsOf(readTable(f.table).rows), expectedIds(topic, total));
  t.is(arrowFilesUnder(f.staging), 0);
});

test.serial('[integration] a stop whose flush outlasts shutdown.grace_period exits 0 anyway, and the restart makes the table exact', async (t) => {
  const topic = uniqueName('kdr_grace');
  await createTopic(BROKERS, topic, 3);
  const total = 20_000;
  await produceMessages(BROKERS, topic, events(topic, 0, total));
  const f = fixture(topic, { shutdown: { grace_period: 0.001 }, buffer: { max_memory: '1MiB' } });
  const cli = startCli(['--config', f.configPath, '--logging.level=DEBUG']);
  await cli.waitFor(new RegExp(`"msg":"batch staged".*"consumed":${total}\\b`));
  cli.child.kill('SIGTERM');
  t.is(await cli.exited, 0, cli.output().slice(-3000));
  t.regex(cli.output(), /stop grace period over before the flush committed/);
  const restart = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr);
  t.deepEqual(idsOf(readTable(f.table).rows), expectedIds(topic, total));
});

test.serial('[integration] consolidation at the flush covers spilled and in-memory rows alike', async (t) => {
  const topic = uniqueName('kdr_spilldedup');
  await createTopic(BROKERS, topic, 3);
  const keys = 2000;
  const versions = 10;
  // Key k's versions arrive spread over the whole run, so they land in different spills.
  const messages = Array.from({ length: keys * versions }, (_, i) => {
    const key = i % keys;
    const seq = i;
    return { key: `k${key}`, value: JSON.stringify({ id: `${topic}-${key}`, seq, amount: 1, note: FILLER_NOTE, date_col: DAYS[key % 2] }) };
  });
  await produceMessages(BROKERS, topic, messages);
  const f = fixture(topic, { buffer: { max_memory: '256KiB' }, dedup: { keys: ['id'], order_by: 'seq', strategy: 'last' } });
  const run = runCli(['--config', f.configPath, '--until-caught-up', '--logging.level=DEBUG']);
  t.is(run.status, 0, run.stderr);
  const spills = run.stderr.split('\n').filter((l) => l.includes('"msg":"staged rows spilled to disk"')).length;
  t.true(spills >= 3, `rows were spilled several times (${spills})`);
  const rows = readTable(f.table).rows;
  t.is(rows.length, keys, 'one row per key');
  const wrong = rows.filter((r) => Number(r.seq) < (versions - 1) * keys);
  t.is(wrong.length, 0, 'each key kept its last version');
});

test.serial('[integration] a damaged spill file is not used: its range is read again from Kafka and the table is exact', async (t) => {
  const total = 4000;
  const { topic, f, cli, exitCode } = await stageThenStop('kdr_damaged', total);
  t.is(exitCode, 0, cli.output().slice(-3000));

  // Flip one byte in the middle of a spill file: same size, different CRC.
  const sub = readdirSync(f.staging).find((d) => existsSync(join(f.staging, d, 'manifest.json'))) as string;
  const file = readdirSync(join(f.staging, sub)).find((n) => n.endsWith('.arrow')) as string;
  const path = join(f.staging, sub, file);
  const bytes = readFileSync(path);
  const at = Math.floor(bytes.length / 2);
  bytes[at] = (bytes[at] as number) ^ 0xff;
  writeFileSync(path, bytes);

  const restart = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr);
  t.regex(restart.stderr, /"msg":"staged data dropped; its range is read again from Kafka".*does not match the manifest/);
  t.regex(restart.stderr, new RegExp(`"msg":"pipeline stopped".*"messages":${total}\\b`), 'everything was read again');
  t.deepEqual(idsOf(readTable(f.table).rows), expectedIds(topic, total));
  t.is(arrowFilesUnder(f.staging), 0);
});
