/**
 * Exactly once in a fleet: rebalances while spilling, and the Kafka dead-letter sink with
 * staging, against the real broker and real tables read back with Python's deltalake.
 */
import test from 'ava';
import { join } from 'node:path';
import { Pipeline, parseConfig } from '../ts/index.js';
import { createTopic, deleteTopic, produceMessages, readTopic, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { runCli, startCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, memberConfig, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function events(topic: string, from: number, count: number, bad: (seq: number) => boolean = () => false): OutgoingMessage[] {
  return Array.from({ length: count }, (_, k) => {
    const seq = from + k;
    const value = bad(seq) ? `not json ${seq}` : JSON.stringify({ id: `${topic}-${seq}`, seq, amount: seq / 10, note: 'x'.repeat(200), date_col: '2026-11-23' });
    return { key: `k${seq}`, value };
  });
}

const expectedIds = (topic: string, seqs: number[]) => seqs.map((s) => `${topic}-${s}`).sort();
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const idsOf = (rows: Array<Record<string, unknown>>) => rows.map((r) => String(r.id)).sort();

/** Produces `total` messages in waves of `wave` until done or `stop()` says so. */
async function steadyProduction(topic: string, total: number, wave: number, pauseMs: number): Promise<void> {
  for (let from = 0; from < total; from += wave) {
    await produceMessages(BROKERS, topic, events(topic, from, Math.min(wave, total - from)));
    await sleep(pauseMs);
  }
}

test.serial('[integration] two instances with a 2 MiB cap, the second joining and leaving several times under steady traffic: the table is exact', async (t) => {
  const topic = uniqueName('kdr_joins');
  await createTopic(BROKERS, topic, 6);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const g = { dir, topic, table, group: uniqueName('kdr_group') };
  const configFor = (name: string) => writeConfig(dir, memberConfig(g, name, { batchInterval: 0.5, maxMemory: '2MiB' }), `${name}.yaml`);
  const total = 40_000;
  const a = startCli(['--config', configFor('a')]);
  await a.waitFor(/partitions assigned/);
  const production = steadyProduction(topic, total, 1000, 150);
  let joins = 0;
  for (let round = 0; round < 4; round += 1) {
    const b = startCli(['--config', configFor(`b${round}`)]);
    await b.waitFor(/partitions assigned/);
    joins += 1;
    await sleep(1200);
    b.child.kill('SIGTERM');
    t.is(await b.exited, 0, b.output().slice(-2000));
  }
  await production;
  const deadline = Date.now() + 90_000;
  while (readTable(table).rows.length < total && Date.now() < deadline) await sleep(500);
  a.child.kill('SIGTERM');
  t.is(await a.exited, 0, a.output().slice(-2000));
  t.is(joins, 4);
  t.regex(a.output(), /partitions revoked/);
  t.deepEqual(idsOf(readTable(table).rows), expectedIds(topic, range(total)));
});

test.serial('[integration] Kafka dead letters: a missing topic stops the start naming it; persisted dead letters are produced after the restart', async (t) => {
  const topic = uniqueName('kdr_dlq_src');
  const deadTopic = uniqueName('kdr_dlq');
  await createTopic(BROKERS, topic, 2);
  const total = 3000;
  const bad = (seq: number) => seq % 100 === 7;
  await produceMessages(BROKERS, topic, events(topic, 0, total, bad));
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const far = new Date(Date.now() + 12 * 3600_000);
  const schedule = `${String(far.getUTCHours()).padStart(2, '0')}:${String(far.getUTCMinutes()).padStart(2, '0')}`;
  const config = writeConfig(
    dir,
    testConfig({
      topics: [topic],
      group: uniqueName('kdr_group'),
      tablePath: table,
      extra: {
        dead_letter: { kind: 'kafka', topic: deadTopic },
        batch: { schedule, timezone: 'UTC', batch_interval: 3600 },
        buffer: { staging_dir: join(dir, 'staging'), max_memory: '256KiB' },
      },
    }),
  );
  const missing = runCli(['--config', config, '--until-caught-up'], { timeoutMs: 120_000 });
  t.not(missing.status, 0);
  t.regex(missing.stderr, new RegExp(`dead-letter topic ${deadTopic} does not exist`));
  t.is(readTable(table).version, 0, 'nothing was committed');

  await createTopic(BROKERS, deadTopic, 1);
  // Consume everything, stop before the daily flush: rows and dead letters are persisted.
  const staged = startCli(['--config', config, '--logging.level=DEBUG']);
  await staged.waitFor(new RegExp(`"msg":"batch staged".*"consumed":${total}\\b`));
  staged.child.kill('SIGTERM');
  t.is(await staged.exited, 0, staged.output().slice(-2000));
  t.regex(staged.output(), /"msg":"stopping before the scheduled flush: staged rows kept on disk for the next start"/, staged.output().split('\n').filter((l) => !/batch staged|dead-letter sink/.test(l)).join('\n'));
  t.is(readTable(table).version, 0, 'nothing committed at the stop');

  const restart = runCli(['--config', config, '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr.slice(-3000));
  t.regex(restart.stderr, /"msg":"staging recovered"/, staged.output().split('\n').filter((l) => /staging|spilled|revoked|stopping/.test(l)).join('\n'));
  const deadSeqs = range(total).filter(bad);
  const letters = await readTopic(BROKERS, deadTopic, deadSeqs.length);
  const produced = new Set(letters.map((l) => `${l.headers['kdr.partition']}:${l.headers['kdr.offset']}`));
  t.is(produced.size, deadSeqs.length, 'every dead letter is in the topic');
  t.true(letters.every((l) => l.headers['kdr.reason'] === 'malformed_json' && String(l.value).startsWith('not json ')));
  const payloads = new Set(letters.map((l) => String(l.value)));
  t.deepEqual([...payloads].sort(), deadSeqs.map((s) => `not json ${s}`).sort());
  t.deepEqual(idsOf(readTable(table).rows), expectedIds(topic, range(total).filter((s) => !bad(s))));
});

test.serial('[integration] flushes asked for at once under load while a second instance joins and leaves: the table is exact', async (t) => {
  const topic = uniqueName('kdr_flushes');
  await createTopic(BROKERS, topic, 4);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const g = { dir, topic, table, group: uniqueName('kdr_group') };
  const raw = (name: string) => memberConfig(g, name, { batchInterval: 0.3, maxMemory: '512KiB' });
  const total = 20_000;
  const a = new Pipeline(parseConfig(raw('a')));
  await a.start();
  let stopping = false;
  let asked = 0;
  // A library user hammering flush() while the schedule and the rebalances flush too.
  const hammer = (async () => {
    while (!stopping) {
      await Promise.all([a.flush(), a.flush(), a.flush()]);
      asked += 3;
      await sleep(100);
    }
  })();
  const production = steadyProduction(topic, total, 1000, 100);
  for (let round = 0; round < 2; round += 1) {
    await sleep(1500);
    const b = startCli(['--config', writeConfig(dir, raw(`b${round}`), `b${round}.yaml`)]);
    await b.waitFor(/partitions assigned/);
    await sleep(1500);
    b.child.kill('SIGTERM');
    t.is(await b.exited, 0, b.output().slice(-2000));
  }
  await production;
  const deadline = Date.now() + 90_000;
  while (readTable(table).rows.length < total && Date.now() < deadline) await sleep(500);
  stopping = true;
  await hammer;
  await a.stop();
  t.true(asked > 30, `${asked} flushes asked for`);
  t.deepEqual(idsOf(readTable(table).rows), expectedIds(topic, range(total)));
});

test.serial('[integration] Kafka dead letters: a refused delivery mid-run stops the pipeline naming the topic and commits nothing past it', async (t) => {
  const topic = uniqueName('kdr_dlq_fail_src');
  const deadTopic = uniqueName('kdr_dlq_fail');
  await createTopic(BROKERS, topic, 1);
  await createTopic(BROKERS, deadTopic, 1);
  const bad = (seq: number) => seq % 50 === 3;
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const config = writeConfig(
    dir,
    testConfig({
      topics: [topic],
      group: uniqueName('kdr_group'),
      tablePath: table,
      batchInterval: 0.5,
      extra: { dead_letter: { kind: 'kafka', topic: deadTopic }, kafka: { properties: { 'message.timeout.ms': '3000' } } },
    }),
  );
  const cli = startCli(['--config', config]);
  await produceMessages(BROKERS, topic, events(topic, 0, 500, bad));
  await cli.waitFor(/"msg":"flush committed".*"deadLetters":10\b/);
  const before = readTable(table).version;
  await deleteTopic(BROKERS, deadTopic);
  await sleep(1000);
  await produceMessages(BROKERS, topic, events(topic, 500, 500, bad));
  const code = await Promise.race([cli.exited, sleep(60_000).then(() => 'still running')]);
  t.not(code, 0, 'the pipeline stopped');
  t.not(code, 'still running');
  t.regex(cli.output(), new RegExp(`dead letter\\(s\\) could not be delivered to ${deadTopic}`));
  t.is(readTable(table).version, before, 'nothing committed past the undelivered dead letters');
  t.deepEqual(idsOf(readTable(table).rows), expectedIds(topic, range(500).filter((s) => !bad(s))));

  await createTopic(BROKERS, deadTopic, 1);
  const restart = runCli(['--config', config, '--until-caught-up']);
  t.is(restart.status, 0, restart.stderr.slice(-3000));
  t.deepEqual(idsOf(readTable(table).rows), expectedIds(topic, range(1000).filter((s) => !bad(s))));
  const letters = await readTopic(BROKERS, deadTopic, 10);
  t.deepEqual(letters.map((l) => Number(l.headers['kdr.offset'])).sort((a, b) => a - b), range(1000).filter(bad).filter((s) => s >= 500));
});
