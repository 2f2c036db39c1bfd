/**
 * `kafka.topic_pattern` against the real broker: a topic created while the pipeline runs is
 * picked up at the next metadata refresh and written exactly once beside the first; rows staged
 * for pattern-found topics survive a restart in which the pattern also matches a new topic (the
 * staging's topic list keeps its indexes). Tables are read back by Python deltalake.
 */
import test from 'ava';
import { join } from 'node:path';
import { Pipeline, parseConfig } from '../ts/index.js';
import { txnAppId } from '../ts/pipeline/identity.js';
import { verifyTable } from '../ts/verify.js';
import { createTopic, produceMessages, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { runCli, startCli } from './helpers/cli.js';
import { capturingLogger } from './helpers/log.js';
import { EVENT_COLUMNS, createTableWithPython, readTable, txnVersions } from './helpers/delta.js';
import { BROKERS, farAwayDailyTime, memberConfig, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const DAY = '2026-11-30';

function events(topic: string, count: number): OutgoingMessage[] {
  return Array.from({ length: count }, (_, seq) => ({
    key: `k${seq}`,
    partition: seq % 2,
    value: JSON.stringify({ id: `${topic}-${seq}`, seq, amount: seq / 4, note: 'n', date_col: DAY }),
  }));
}

function ids(topic: string, count: number): string[] {
  return Array.from({ length: count }, (_, seq) => `${topic}-${seq}`);
}

/** The txn version the table records per partition of each topic (2 partitions each). */
function recorded(table: string, group: string, topics: readonly string[]): Record<string, number | null> {
  const appIds = topics.flatMap((topic) => [0, 1].map((p) => txnAppId(group, topic, p)));
  return txnVersions(table, appIds);
}

function expectedVersions(group: string, counts: ReadonlyArray<[string, number]>): Record<string, number> {
  // `events` alternates partitions: of n messages, partition 0 holds ceil(n/2), partition 1 floor(n/2).
  return Object.fromEntries(
    counts.flatMap(([topic, n]) => [
      [txnAppId(group, topic, 0), Math.ceil(n / 2) - 1],
      [txnAppId(group, topic, 1), Math.floor(n / 2) - 1],
    ]),
  );
}

async function until(what: string, check: () => boolean, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('[integration] a topic created while running that matches kafka.topic_pattern is consumed too, exactly once', async (t) => {
  const base = uniqueName('kdr_pat');
  const [first, later, other] = [`${base}_orders`, `${base}_refunds`, `${uniqueName('kdr_nopat')}_orders`];
  await createTopic(BROKERS, first, 2);
  await createTopic(BROKERS, other, 2);
  await produceMessages(BROKERS, first, events(first, 40));
  await produceMessages(BROKERS, other, events(other, 10));
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const group = uniqueName('kdr_group');
  const config = parseConfig(
    testConfig({
      topics: [],
      group,
      tablePath: table,
      extra: { kafka: { topic_pattern: `${base}_.*`, properties: { 'topic.metadata.refresh.interval.ms': '1000' } } },
    }),
  );
  t.is(config.kafka.topicPattern, `^${base}_.*`, 'anchored at the start for librdkafka');
  const pipeline = new Pipeline(config);
  await pipeline.start();
  try {
    const written = () => {
      try {
        return readTable(table).rows.length;
      } catch {
        return 0;
      }
    };
    await until('the first topic in the table', () => written() >= 40);
    await createTopic(BROKERS, later, 2);
    await produceMessages(BROKERS, later, events(later, 30));
    await until('the topic created later in the table', () => written() >= 70);
  } finally {
    await pipeline.stop();
  }
  const rows = readTable(table).rows.map((r) => String(r.id));
  t.deepEqual(rows.sort(), [...ids(first, 40), ...ids(later, 30)].sort(), 'both topics, each row once; the unmatched topic not at all');
  t.deepEqual(recorded(table, group, [first, later]), expectedVersions(group, [[first, 40], [later, 30]]));
  // `verify` reads the group's positions of the topics the pattern matches now, not the other one.
  const report = await verifyTable(config);
  t.deepEqual(
    report.partitions.map((p) => [p.topic, p.partition, p.tableOffset, p.lag]),
    // 40 and 30 messages over two partitions: each partition's last offset is 19 and 14.
    [first, later].flatMap((topic) => [0, 1].map((partition) => [topic, partition, topic === first ? 19 : 14, 0])),
  );
  t.deepEqual(report.problems, []);
});

test('[integration] with start_from latest, a topic created after the start is read from its beginning', async (t) => {
  const base = uniqueName('kdr_patlatest');
  const [first, later] = [`${base}_old`, `${base}_new`];
  await createTopic(BROKERS, first, 2);
  await produceMessages(BROKERS, first, events(first, 10));
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const logged: string[] = [];
  const config = parseConfig(
    testConfig({
      topics: [],
      group: uniqueName('kdr_group'),
      tablePath: table,
      extra: { kafka: { topic_pattern: `^${base}_.*`, start_from: 'latest', properties: { 'topic.metadata.refresh.interval.ms': '3000' } } },
    }),
  );
  const pipeline = new Pipeline(config, { logger: capturingLogger(logged) });
  await pipeline.start();
  try {
    await until('the first assignment', () => logged.includes('partitions assigned'));
    // Produced before the refresh finds the topic: "latest" at its assignment would skip them.
    await createTopic(BROKERS, later, 2);
    await produceMessages(BROKERS, later, events(later, 20));
    await until('the new topic in the table', () => readTable(table).rows.length >= 20, 30_000);
  } finally {
    await pipeline.stop();
  }
  // The first topic's messages predate the start: start_from latest skips them.
  t.deepEqual(readTable(table).rows.map((r) => String(r.id)).sort(), ids(later, 20).sort());
});

test.serial('[integration] rows staged for pattern-found topics survive a restart whose pattern matches a new topic first', async (t) => {
  const base = uniqueName('kdr_patrs');
  const [a, b, c] = [`${base}_b1`, `${base}_b2`, `${base}_a0`];
  await createTopic(BROKERS, a, 2);
  await createTopic(BROKERS, b, 2);
  await produceMessages(BROKERS, a, events(a, 300));
  await produceMessages(BROKERS, b, events(b, 200));
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const group = uniqueName('kdr_group');
  // The flush is an hour away: at the stop, the staged rows are persisted to the staging directory.
  const configPath = writeConfig(
    dir,
    testConfig({
      topics: [],
      group,
      tablePath: table,
      batchInterval: 3600,
      extra: { kafka: { topic_pattern: `^${base}_.*` }, batch: { schedule: farAwayDailyTime(), timezone: 'UTC' } },
    }),
  );
  const cli = startCli(['--config', configPath, '--logging.level=DEBUG']);
  await cli.waitFor(/"msg":"batch staged".*"consumed":500\b/);
  cli.child.kill('SIGTERM');
  t.is(await cli.exited, 0, cli.output().slice(-3000));
  t.regex(cli.output(), /"persisted":true/);

  // c sorts before a and b: matched at the restart, it is appended to the staged list, not put first.
  await createTopic(BROKERS, c, 2);
  await produceMessages(BROKERS, c, events(c, 50));
  const restart = runCli(['--config', configPath, '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr.slice(-3000));
  t.regex(restart.stderr, /"msg":"staging recovered".*"rows":500\b/);
  t.regex(restart.stderr, /"msg":"pipeline stopped".*"messages":50\b/, 'only the new topic was read from Kafka');
  const rows = readTable(table).rows.map((r) => String(r.id));
  t.deepEqual(rows.sort(), [...ids(a, 300), ...ids(b, 200), ...ids(c, 50)].sort());
  t.deepEqual(recorded(table, group, [a, b, c]), expectedVersions(group, [[a, 300], [b, 200], [c, 50]]));
});

test.serial('[integration] two instances on one pattern, one killed while a new topic is taken in: the table is exact', async (t) => {
  const base = uniqueName('kdr_patfleet');
  const [first, later] = [`${base}_a`, `${base}_b`];
  await createTopic(BROKERS, first, 4);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const g = { dir, topic: first, table, group: uniqueName('kdr_group') };
  const configFor = (name: string) => {
    const member = memberConfig(g, name, { batchInterval: 0.5, maxMemory: '2MiB' });
    const kafka = member.kafka as { properties: Record<string, unknown> };
    const pattern = { ...kafka, topics: [], topic_pattern: `^${base}_.*`, properties: { ...kafka.properties, 'topic.metadata.refresh.interval.ms': 1000 } };
    return writeConfig(dir, { ...member, kafka: pattern }, `${name}.yaml`);
  };
  const wide = (topic: string, n: number) => events(topic, n).map((m, i) => ({ ...m, partition: i % 4 }));
  await produceMessages(BROKERS, first, wide(first, 4000));
  const a = startCli(['--config', configFor('a')]);
  const b = startCli(['--config', configFor('b')]);
  await Promise.all([a.waitFor(/partitions assigned/), b.waitFor(/partitions assigned/)]);
  await createTopic(BROKERS, later, 4);
  await produceMessages(BROKERS, later, wide(later, 3000));
  await b.waitFor(/kafka.topic_pattern matched new topics/);
  // b dies with whatever it staged of both topics; a takes its partitions over.
  b.child.kill('SIGKILL');
  await b.exited;
  await until('both topics in the table', () => readTable(table).rows.length >= 7000);
  a.child.kill('SIGTERM');
  t.is(await a.exited, 0, a.output().slice(-2000));
  const rows = readTable(table).rows.map((r) => String(r.id));
  t.deepEqual(rows.sort(), [...ids(first, 4000), ...ids(later, 3000)].sort());
});

