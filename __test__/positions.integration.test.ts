/**
 * Where a partition starts on assignment, against the real broker (issue #12, scenarios 3 and 7):
 * a recorded position the log no longer holds stops the pipeline or, after DeleteRecords, moves
 * as `kafka.on_position_lost` says, never silently (a recreated topic moves the position back to
 * the new log); and with
 * `start_from: latest` a partition idle at the first commit resumes, after a kill -9, where the
 * first assignment put it. Tables are read back with Python's deltalake.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pipeline, PositionLostError, createLogger, parseConfig, silentLogger, txnAppId } from '../ts/index.js';
import { KafkaSource, type PartitionRef } from '../ts/kafka/consumer.js';
import { createTopic, deleteTopic, produceMessages, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { runCli, startCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable, txnVersions } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const KAFKA_SH = fileURLToPath(new URL('../scripts/kafka/kafka.sh', import.meta.url));
const DAYS = ['2026-11-21', '2026-11-22'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Events `from..from+count-1`, event k on partition k % partitions (so offsets are known). */
function events(topic: string, from: number, count: number, partitions: number): OutgoingMessage[] {
  return Array.from({ length: count }, (_, i) => {
    const seq = from + i;
    const value = { id: `${topic}-${seq}`, seq, amount: seq / 10, note: `n${seq % 7}`, date_col: DAYS[seq % 2] };
    return { value: JSON.stringify(value), partition: seq % partitions };
  });
}

/** The ids of the events whose seq passes `keep`, sorted. */
function idsWhere(topic: string, upTo: number, keep: (seq: number) => boolean = () => true): string[] {
  return Array.from({ length: upTo }, (_, k) => k)
    .filter(keep)
    .map((k) => `${topic}-${k}`)
    .sort();
}

function idsOf(rows: Array<Record<string, unknown>>): string[] {
  return rows.map((r) => String(r.id)).sort();
}

interface Fixture {
  table: string;
  group: string;
  raw: Record<string, unknown>;
  configPath: string;
}

function fixture(topic: string, extra: Record<string, Record<string, unknown>> = {}, batch: { size?: number; interval?: number } = {}): Fixture {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const group = uniqueName('kdr_group');
  const raw = testConfig({ topics: [topic], group, tablePath: table, batchSize: batch.size, batchInterval: batch.interval, extra });
  return { table, group, raw, configPath: writeConfig(dir, raw) };
}

/** Kafka's DeleteRecordsCommand: partition 0 of `topic` keeps offsets from `before` on. */
function deleteRecordsBefore(topic: string, partition: number, before: number): void {
  const file = join(tempDir(), 'offsets.json');
  writeFileSync(file, JSON.stringify({ version: 1, partitions: [{ topic, partition, offset: before }] }));
  const r = spawnSync('bash', [KAFKA_SH, 'run-class', 'org.apache.kafka.tools.DeleteRecordsCommand', '--bootstrap-server', BROKERS, '--offset-json-file', file], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`DeleteRecordsCommand failed (${r.status}): ${r.stderr}${r.stdout}`);
  if (!new RegExp(`low_watermark: ${before}`).test(r.stdout)) throw new Error(`unexpected DeleteRecordsCommand output: ${r.stdout}`);
}

/** Deletes `topic` and creates it again, empty, once the broker lets it. */
async function recreateTopic(topic: string, partitions: number): Promise<void> {
  await deleteTopic(BROKERS, topic);
  const deadline = Date.now() + 60_000;
  while (!(await createTopic(BROKERS, topic, partitions).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`topic ${topic} could not be created again`);
    await sleep(500);
  }
}

/** The JSON log records of a run whose `msg` matches. */
function records(output: string, msg: RegExp): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => typeof r.msg === 'string' && msg.test(r.msg));
}

async function metricValue(pipeline: Pipeline, name: string, topic: string): Promise<number | undefined> {
  const metric = await pipeline.metrics.registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => v.labels.topic === topic)?.value;
}

test.serial('[integration] DeleteRecords past the recorded position: fail stops naming it, earliest goes on without the deleted rows', async (t) => {
  const topic = uniqueName('kdr_lost');
  await createTopic(BROKERS, topic, 3);
  const f = fixture(topic);
  await produceMessages(BROKERS, topic, events(topic, 0, 3000, 3));
  const first = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(first.status, 0, first.stderr);
  t.deepEqual(idsOf(readTable(f.table).rows), idsWhere(topic, 3000));

  // Partition 0 now holds offsets 0..1999; the table records up to 999. Drop 1000..1879.
  await produceMessages(BROKERS, topic, events(topic, 3000, 3000, 3));
  deleteRecordsBefore(topic, 0, 1880);

  const started = Date.now();
  const failed = runCli(['--config', f.configPath, '--until-caught-up']);
  const seconds = (Date.now() - started) / 1000;
  t.log(`default restart: exit ${failed.status} after ${seconds.toFixed(1)} s, ${readTable(f.table).rows.length} of 6000 rows`);
  t.is(failed.status, 4, failed.stderr);
  const final = failed.stderr.split('\n').filter((l) => l.startsWith('kafka-delta-rust: ')).join('\n');
  t.regex(final, /recorded Kafka positions are out of range/);
  t.true(
    failed.stderr.includes(
      `${topic}[0]: the table records offsets up to txn version 999 (next offset 1000), but the log holds 1880..1999 (log start 1880, high watermark 2000): offsets 1000..1879 were deleted`,
    ),
    failed.stderr.slice(-3000),
  );
  t.regex(failed.stderr, /set kafka\.on_position_lost to earliest .* or latest/);
  t.notRegex(failed.stderr, new RegExp(`${topic}\\[[12]\\]: the table records`), 'partitions still in range are not named');
  t.regex(failed.stderr, /"level":"error","msg":"pipeline stopped on an error/);
  t.deepEqual(idsOf(readTable(f.table).rows), idsWhere(topic, 3000), 'nothing was written');

  // earliest: in-process, to read the metrics too.
  const lines: string[] = [];
  const config = parseConfig({ ...f.raw, kafka: { ...(f.raw.kafka as Record<string, unknown>), on_position_lost: 'earliest' } }, { env: {} });
  const pipeline = new Pipeline(config, { untilCaughtUp: true, logger: createLogger({ level: 'info', format: 'json', write: (l) => lines.push(l) }) });
  const summary = await pipeline.run();
  t.is(summary.messages, 3000 - 880);
  const deleted = (seq: number) => seq >= 3000 && seq % 3 === 0 && Math.floor(seq / 3) < 1880;
  t.deepEqual(idsOf(readTable(f.table).rows), idsWhere(topic, 6000, (seq) => !deleted(seq)));
  const warned = records(lines.join('\n'), /^recorded position lost/);
  t.is(warned.length, 1, lines.join('\n'));
  t.like(warned[0], {
    level: 'warn',
    topic,
    partition: 0,
    recordedVersion: 999,
    logStart: 1880,
    highWatermark: 2000,
    resumeAt: 1880,
    skipped: 'offsets 1000..1879',
    skippedOffsets: 880,
  });
  t.is(await metricValue(pipeline, 'kafka_delta_positions_lost_total', topic), 1);
  t.is(await metricValue(pipeline, 'kafka_delta_offsets_skipped_total', topic), 880);
});

test.serial('[integration] a recreated topic below the recorded position: fail stops naming it; earliest reads the new log from its start and records it', async (t) => {
  const topic = uniqueName('kdr_recreated');
  await createTopic(BROKERS, topic, 2);
  await produceMessages(BROKERS, topic, events(topic, 0, 1000, 2));
  const f = fixture(topic);
  t.is(runCli(['--config', f.configPath, '--until-caught-up']).status, 0);

  // Each partition now holds offsets 0..149; the table records up to 499 of the old log.
  await recreateTopic(topic, 2);
  await produceMessages(BROKERS, topic, events(topic, 1000, 300, 2));

  const failed = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(failed.status, 4, failed.stderr);
  for (const p of [0, 1]) {
    t.true(
      failed.stderr.includes(
        `${topic}[${p}]: the table records offsets up to txn version 499 (next offset 500), but the log holds 0..149 (log start 0, high watermark 150): the log ends before it (the topic was deleted and recreated`,
      ),
      failed.stderr.slice(-3000),
    );
  }
  t.regex(failed.stderr, /set kafka\.on_position_lost to earliest .* or latest/);
  t.deepEqual(idsOf(readTable(f.table).rows), idsWhere(topic, 1000), 'nothing written by the failed start');

  const early = runCli(['--config', f.configPath, '--until-caught-up', '--kafka.on_position_lost=earliest']);
  t.is(early.status, 0, early.stderr.slice(-3000));
  t.regex(early.stderr, /"msg":"recorded position lost; resuming as kafka.on_position_lost: earliest says".*"resumeAt":0.*"skipped":"none \(the new log is read from its start\)"/);
  t.deepEqual(idsOf(readTable(f.table).rows), idsWhere(topic, 1300), 'every message of the new log, once');
  t.deepEqual(
    txnVersions(f.table, [0, 1].map((p) => txnAppId(f.group, topic, p))),
    Object.fromEntries([0, 1].map((p) => [txnAppId(f.group, topic, p), 149])),
    'the positions moved back to the new log',
  );
  // From there on the partition is an ordinary one: new messages, the default policy.
  await produceMessages(BROKERS, topic, events(topic, 1300, 100, 2));
  const next = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(next.status, 0, next.stderr.slice(-3000));
  t.deepEqual(idsOf(readTable(f.table).rows), idsWhere(topic, 1400));
});

/**
 * start_from latest, nothing spilled before a kill; a short session so that the restart does not
 * wait 45 s for the killed member to leave the group.
 */
const LATEST_KILLED = { kafka: { start_from: 'latest', properties: { 'session.timeout.ms': 6000 } }, buffer: { max_memory: '1GiB' } };

/** A source whose assignments start at `offset` (past the log end), as if it went out of range. */
function sourceAt(topic: string, offset: number, properties: Record<string, string>, log = silentLogger): KafkaSource {
  const options = { brokers: BROKERS, groupId: uniqueName('kdr_group'), topics: [topic], maxPollRecords: 500, consumeTimeoutMs: 100, properties };
  const listener = {
    onAssign: async (parts: readonly PartitionRef[]) => parts.map((p) => ({ ...p, offset })),
    onRevoke: async () => {},
  };
  return new KafkaSource(options, listener, log);
}

test.serial('[integration] a position out of range while reading: consume() rejects with a PositionLostError naming it, or librdkafka moves it with a warning', async (t) => {
  const topic = uniqueName('kdr_midrun');
  await createTopic(BROKERS, topic, 1);
  await produceMessages(BROKERS, topic, events(topic, 0, 100, 1));

  // The default (kafka.on_position_lost: fail): librdkafka reports it instead of jumping.
  const failing = sourceAt(topic, 5000, {});
  await failing.connect();
  let error: unknown;
  try {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline && error === undefined; ) {
      const messages = await failing.consume().catch((e: unknown) => ((error = e), []));
      t.is(messages.length, 0, 'nothing is read from a position out of range');
    }
  } finally {
    await failing.disconnect();
  }
  t.true(error instanceof PositionLostError, String(error));
  if (!(error instanceof PositionLostError)) return;
  t.is(error.code, 'KAFKA_POSITION_LOST');
  t.deepEqual(error.positions, [{ topic, partition: 0, next: 5000, low: 0, high: 100 }]);
  t.regex(error.message, new RegExp(`out of range while reading .*: ${topic}\\[0\\] at offset 5000 \\(log start 0, high watermark 100\\)\\..*kafka\\.on_position_lost`));

  // latest: librdkafka moves it; the warning and the listener name the partition.
  const lines: string[] = [];
  const moving = sourceAt(topic, 5000, { 'auto.offset.reset': 'latest' }, createLogger({ level: 'warn', format: 'json', write: (l) => lines.push(l) }));
  const resets: string[] = [];
  moving.onPositionReset((p, detail) => resets.push(`${p.topic}[${p.partition}] ${detail}`));
  await moving.connect();
  try {
    for (const deadline = Date.now() + 30_000; Date.now() < deadline && resets.length === 0; ) await moving.consume();
  } finally {
    await moving.disconnect();
  }
  t.is(resets.length, 1, lines.join('\n'));
  t.regex(resets[0] ?? '', new RegExp(`^${topic}\\[0\\] .*${topic} \\[0\\]: offset reset \\(at offset 5000.*Offset out of range`));
  const warned = records(lines.join('\n'), /went out of range while reading/);
  t.like(warned[0], { level: 'warn', topic, partition: 0 });
});

test.serial('[integration] start_from latest: a partition idle at the first commit resumes after kill -9 where the first assignment put it', async (t) => {
  const topic = uniqueName('kdr_latest');
  await createTopic(BROKERS, topic, 3);
  // Before the pipeline's first assignment: never to be read (start_from latest).
  await produceMessages(BROKERS, topic, events(topic, 0, 30, 3));
  // A flush at 300 staged rows, none by time; nothing spilled or persisted before the kill.
  const f = fixture(topic, LATEST_KILLED, { size: 300, interval: 3600 });
  const cli = startCli(['--config', f.configPath, '--logging.level=DEBUG']);
  await cli.waitFor(/"msg":"partitions assigned"/);
  // Partition 0 alone reaches the batch size: the first commit covers no message of 1 and 2.
  await produceMessages(BROKERS, topic, events(topic, 30, 300, 1).map((m) => ({ ...m, partition: 0 })));
  await cli.waitFor(/"msg":"flush committed"/);
  await produceMessages(BROKERS, topic, events(topic, 330, 150, 3));
  await cli.waitFor(/"msg":"batch staged".*"consumed":450\b/);
  cli.child.kill('SIGKILL');
  await cli.exited;
  t.is(cli.output().split('\n').filter((l) => /"msg":"flush committed"/.test(l)).length, 1, 'one commit before the kill');

  const restart = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr);
  t.log(`after the restart: ${readTable(f.table).rows.length} of the 450 rows produced after the first assignment`);
  t.deepEqual(idsOf(readTable(f.table).rows), idsWhere(topic, 480, (seq) => seq >= 30), 'everything produced after the first assignment, once');
});

test.serial('[integration] start_from latest: kill -9 before the first flush, the restart resumes where the first assignment put every partition', async (t) => {
  const topic = uniqueName('kdr_latest_first');
  await createTopic(BROKERS, topic, 3);
  await produceMessages(BROKERS, topic, events(topic, 0, 30, 3));
  const f = fixture(topic, LATEST_KILLED, { size: 1_000_000, interval: 3600 });
  const cli = startCli(['--config', f.configPath, '--logging.level=DEBUG']);
  await cli.waitFor(/"msg":"partitions assigned"/);
  await produceMessages(BROKERS, topic, events(topic, 30, 150, 3));
  await cli.waitFor(/"msg":"batch staged".*"consumed":150\b/);
  cli.child.kill('SIGKILL');
  await cli.exited;
  t.notRegex(cli.output(), /"msg":"flush committed"/, 'nothing was flushed before the kill');

  const restart = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr);
  t.log(`after the restart: ${readTable(f.table).rows.length} of the 150 rows produced after the first assignment`);
  t.deepEqual(idsOf(readTable(f.table).rows), idsWhere(topic, 180, (seq) => seq >= 30), 'everything produced after the first assignment, once');
});
