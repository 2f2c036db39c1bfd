/**
 * End to end against the real broker and real tables on disk, read back with Python's deltalake:
 * every message lands exactly once, in its day's partition, across kills and restarts.
 */
import test from 'ava';
import { join } from 'node:path';
import { createTopic, produceMessages, readTopic, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { txnAppId } from '../ts/pipeline/identity.js';
import { killRunsAt, runCli, startCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable, setTxnWithPython, txnVersions } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const DAYS = ['2026-11-21', '2026-11-22', '2026-11-23'];

/** `count` events numbered from `from`, spread over three days and the partitions by key. */
function events(topic: string, from: number, count: number): OutgoingMessage[] {
  return Array.from({ length: count }, (_, k) => {
    const seq = from + k;
    const value = { id: `${topic}-${seq}`, seq, amount: seq / 10, note: `n${seq % 7}`, date_col: DAYS[seq % 3] };
    return { key: `k${seq % 11}`, value: JSON.stringify(value) };
  });
}

interface Fixture {
  dir: string;
  table: string;
  topics: string[];
  group: string;
  configPath: string;
}

async function fixture(options: { topics?: number; batchSize?: number; batchInterval?: number; extra?: Record<string, Record<string, unknown>> } = {}): Promise<Fixture> {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topics = Array.from({ length: options.topics ?? 1 }, () => uniqueName('kdr_it'));
  for (const t of topics) await createTopic(BROKERS, t, 3);
  const group = uniqueName('kdr_group');
  const configPath = writeConfig(
    dir,
    testConfig({ topics, group, tablePath: table, batchSize: options.batchSize, batchInterval: options.batchInterval, extra: options.extra }),
  );
  return { dir, table, topics, group, configPath };
}

function idsOf(rows: Array<Record<string, unknown>>): string[] {
  return rows.map((r) => String(r.id)).sort();
}

function expectedIds(topics: string[], count: number): string[] {
  return topics.flatMap((t) => Array.from({ length: count }, (_, k) => `${t}-${k}`)).sort();
}

test('[integration] two topics × 3 partitions land exactly once, each row in its day', async (t) => {
  const f = await fixture({ topics: 2 });
  const perTopic = 3000;
  for (const topic of f.topics) await produceMessages(BROKERS, topic, events(topic, 0, perTopic));

  const run = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(run.status, 0, run.stderr);

  const read = readTable(f.table);
  t.deepEqual(idsOf(read.rows), expectedIds(f.topics, perTopic));
  t.deepEqual(read.partition_columns, ['date_col']);
  for (const row of read.rows) t.is(row.date_col, DAYS[Number(row.seq) % 3]);
  const sample = read.rows.find((r) => r.id === `${f.topics[0]}-42`);
  t.deepEqual(sample, { id: `${f.topics[0]}-42`, seq: 42, amount: 4.2, note: 'n0', date_col: DAYS[0] });

  // The log records each partition's last offset; together they cover every message.
  const ids = f.topics.flatMap((topic) => [0, 1, 2].map((p) => txnAppId(f.group, topic, p)));
  const versions = txnVersions(f.table, ids);
  const covered = Object.values(versions).reduce<number>((n, v) => n + (v === null ? 0 : v + 1), 0);
  t.is(covered, 2 * perTopic);
});

test('[integration] a restart after a clean stop consumes nothing twice', async (t) => {
  const f = await fixture();
  const topic = f.topics[0] as string;
  await produceMessages(BROKERS, topic, events(topic, 0, 500));
  t.is(runCli(['--config', f.configPath, '--until-caught-up']).status, 0);
  const first = readTable(f.table);

  const idle = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(idle.status, 0, idle.stderr);
  t.is(readTable(f.table).version, first.version, 'nothing new: no commit');

  await produceMessages(BROKERS, topic, events(topic, 500, 300));
  t.is(runCli(['--config', f.configPath, '--until-caught-up']).status, 0);
  t.deepEqual(idsOf(readTable(f.table).rows), expectedIds([topic], 800));
});

test('[integration] positions recorded by another writer decide where consumption starts', async (t) => {
  const f = await fixture();
  const topic = f.topics[0] as string;
  await produceMessages(
    BROKERS,
    topic,
    events(topic, 0, 60).map((m) => ({ ...m, partition: 0 })),
  );
  // Another writer already holds offsets 0..39 of partition 0.
  setTxnWithPython(f.table, txnAppId(f.group, topic, 0), 39);
  t.is(runCli(['--config', f.configPath, '--until-caught-up']).status, 0);
  const seqs = readTable(f.table)
    .rows.map((r) => Number(r.seq))
    .sort((a, b) => a - b);
  t.deepEqual(seqs, Array.from({ length: 20 }, (_, k) => 40 + k));
});

test('[integration] bad messages go to the dead-letter table with reasons; the good ones around them land', async (t) => {
  const f = await fixture();
  const topic = f.topics[0] as string;
  const good = events(topic, 0, 30).map((m) => ({ ...m, partition: 1 }));
  const bad: OutgoingMessage[] = [
    { value: '{"id": "broken", "seq": ', partition: 1 },
    { value: '{"id": "wrong-type", "seq": "many", "date_col": "2026-11-23"}', partition: 1 },
    { value: '{"seq": 5, "date_col": "2026-11-23"}', partition: 1 },
    { value: '{"id": "no-day", "date_col": "last tuesday"}', partition: 1 },
    { value: '[1, 2, 3]', partition: 1 },
    { value: null, partition: 1 },
  ];
  await produceMessages(BROKERS, topic, [...good.slice(0, 10), ...bad, ...good.slice(10)]);
  const run = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(run.status, 0, run.stderr);

  t.deepEqual(idsOf(readTable(f.table).rows), expectedIds([topic], 30));
  const dead = readTable(`${f.table}__dead_letters`).rows.sort((a, b) => Number(a.offset) - Number(b.offset));
  t.deepEqual(
    dead.map((d) => [d.topic, d.partition, d.offset, d.reason]),
    [
      [topic, 1, 10, 'malformed_json'],
      [topic, 1, 11, 'type_mismatch'],
      [topic, 1, 12, 'missing_field'],
      [topic, 1, 13, 'no_day'],
      [topic, 1, 14, 'not_an_object'],
      [topic, 1, 15, 'tombstone'],
    ],
  );
  t.is(Buffer.from(String(dead[0]?.payload), 'hex').toString(), '{"id": "broken", "seq": ');
  t.regex(String(dead[2]?.detail), /"id"/);
  t.regex(String(dead[3]?.detail), /last tuesday/);
  // The partition's position moved past the dead letters too.
  t.is(txnVersions(f.table, [txnAppId(f.group, topic, 1)])[txnAppId(f.group, topic, 1)], 35);
});

test('[integration] kill -9 at several points, including during flushes, then restart: each message exactly once', async (t) => {
  // Enough messages for runs of several seconds, in many small flushes, so each kill lands
  // mid-run. A killed member holds its partitions until its session times out: keep that short.
  const f = await fixture({
    batchSize: 500,
    batchInterval: 0.2,
    extra: { kafka: { max_poll_records: 500, properties: { 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 500 } } },
  });
  const topic = f.topics[0] as string;
  const total = 100_000;
  await produceMessages(BROKERS, topic, events(topic, 0, total));

  // Kill while the 2nd flush of a run is being committed, after the 5th commit of the next run,
  // and at a moment chosen by time alone.
  const { killed, outputs } = await killRunsAt(
    ['--config', f.configPath, '--until-caught-up', '--logging.level=DEBUG'],
    [{ line: /"msg":"flush started"/, count: 2 }, { line: /"msg":"flush committed"/, count: 5 }, { afterMs: 1500 }],
  );
  t.true(killed >= 2, `at least two runs were killed before finishing (${killed}):\n${outputs.join('\n')}`);
  const final = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(final.status, 0, final.stderr);
  const read = readTable(f.table);
  t.is(read.rows.length, total);
  t.deepEqual(idsOf(read.rows), expectedIds([topic], total));
});

test('[integration] SIGTERM stops consuming, commits what is staged, and exits 0', async (t) => {
  const f = await fixture({ batchInterval: 3600 });
  const topic = f.topics[0] as string;
  await produceMessages(BROKERS, topic, events(topic, 0, 1000));
  const cli = startCli(['--config', f.configPath, '--logging.level=DEBUG']);
  // Everything is staged; with an hour-long interval and a large batch size nothing is flushed.
  await cli.waitFor(/"msg":"batch staged".*"consumed":1000\b/);
  t.notRegex(cli.output(), /flush committed/);
  cli.child.kill('SIGTERM');
  t.is(await cli.exited, 0, cli.output().slice(-3000));
  t.deepEqual(idsOf(readTable(f.table).rows), expectedIds([topic], 1000));
});

test('[integration] with a Kafka dead-letter topic, bad messages are produced there with their origin and reason', async (t) => {
  const deadTopic = uniqueName('kdr_dead');
  await createTopic(BROKERS, deadTopic, 1);
  const f = await fixture({ extra: { dead_letter: { kind: 'kafka', topic: deadTopic } } });
  const topic = f.topics[0] as string;
  const good = events(topic, 0, 10).map((m) => ({ ...m, partition: 2 }));
  await produceMessages(BROKERS, topic, [...good.slice(0, 5), { key: 'bad-key', value: 'not json', partition: 2 }, ...good.slice(5)]);
  const run = runCli(['--config', f.configPath, '--until-caught-up']);
  t.is(run.status, 0, run.stderr);
  t.deepEqual(idsOf(readTable(f.table).rows), expectedIds([topic], 10));
  const [dead] = await readTopic(BROKERS, deadTopic, 1);
  t.is(dead?.value?.toString(), 'not json');
  t.is(dead?.key, 'bad-key');
  t.like(dead?.headers, { 'kdr.topic': topic, 'kdr.partition': '2', 'kdr.offset': '5', 'kdr.reason': 'malformed_json' });
});

test('[integration] Kafka metadata lands in the columns it is mapped to; the day can come from the Kafka timestamp', async (t) => {
  const dir = tempDir();
  const table = join(dir, 'with_metadata');
  createTableWithPython(
    table,
    [
      ['id', 'string', false],
      ['kafka_topic', 'string', true],
      ['kafka_partition', 'integer', true],
      ['kafka_offset', 'long', true],
      ['kafka_ts', 'timestamp', true],
      ['kafka_key', 'string', true],
      ['kafka_headers', 'string', true],
      ['day', 'date', false],
    ],
    ['day'],
  );
  const topic = uniqueName('kdr_meta');
  await createTopic(BROKERS, topic, 3);
  const ts = Date.UTC(2026, 10, 23, 22, 30);
  await produceMessages(BROKERS, topic, [
    { key: 'user-7', value: '{"id":"m1"}', partition: 0, timestamp: ts, headers: { source: 'app', trace: 'abc' } },
  ]);
  const configPath = writeConfig(
    dir,
    testConfig({
      topics: [topic],
      group: uniqueName('kdr_group'),
      tablePath: table,
      partitionColumn: 'day',
      extra: {
        delta: {
          partition_source: { kind: 'kafka_timestamp', timezone: 'Asia/Tokyo' },
          kafka_metadata: {
            topic: 'kafka_topic',
            partition: 'kafka_partition',
            offset: 'kafka_offset',
            timestamp: 'kafka_ts',
            key: 'kafka_key',
            headers: 'kafka_headers',
          },
        },
      },
    }),
  );
  const run = runCli(['--config', configPath, '--until-caught-up']);
  t.is(run.status, 0, run.stderr);
  const [row] = readTable(table).rows;
  t.like(row, { id: 'm1', kafka_topic: topic, kafka_partition: 0, kafka_offset: 0, kafka_key: 'user-7', day: '2026-11-24' });
  t.deepEqual(JSON.parse(String(row?.kafka_headers)), { source: 'app', trace: 'abc' });
  t.is(new Date(String(row?.kafka_ts)).getTime(), ts);
});

test('[integration] credentials never appear in the output of a DEBUG run', async (t) => {
  const password = 'pw-0f8e7d6c5b4a-never-printed';
  // SASL credentials are configured, but the local broker speaks PLAINTEXT: the property wins
  // over the protocol the credentials imply, so the run works and logs everything it does.
  const f = await fixture({
    extra: {
      // librdkafka's own debug output on too: it is logged through the same masking.
      kafka: { properties: { 'security.protocol': 'plaintext', debug: 'conf,security,broker' } },
      credentials: { kafka_username: 'ingest', kafka_password: password },
    },
  });
  const topic = f.topics[0] as string;
  await produceMessages(BROKERS, topic, [...events(topic, 0, 50), { value: '{"id": ' }]);
  const run = runCli(['--config', f.configPath, '--until-caught-up', '--logging.level=TRACE']);
  t.is(run.status, 0, run.stderr);
  t.deepEqual(idsOf(readTable(f.table).rows), expectedIds([topic], 50));
  const output = `${run.stdout}\n${run.stderr}`;
  t.regex(output, /"msg":"configuration"/, 'the configuration was logged');
  t.false(output.includes(password), 'the password is not in the output');
  t.false(output.includes(password.slice(3, 15)), 'nor a part of it');
});

test('[integration] an error that carries a credential is masked where it is logged and printed', (t) => {
  const password = 'pw-9a8b7c6d5e4f-never-printed';
  const dir = tempDir();
  // Contrived on purpose: the credential ends up in the text of the error that stops the run.
  const config = testConfig({
    topics: [uniqueName('kdr_mask')],
    group: uniqueName('kdr_group'),
    tablePath: join(dir, `no-table-${password}`),
    extra: { credentials: { kafka_username: 'ingest', kafka_password: password } },
  });
  const run = runCli(['--config', writeConfig(dir, config), '--logging.level=DEBUG']);
  t.is(run.status, 3, run.stderr);
  const output = `${run.stdout}\n${run.stderr}`;
  t.regex(output, /no-table-\*\*\*/, 'the error is reported, masked');
  t.false(output.includes(password), 'the password is not in the output');
});
