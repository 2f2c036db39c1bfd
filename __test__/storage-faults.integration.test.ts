/**
 * Object-store faults at commit (issue #15): an s3:// table on moto behind a fault-injecting
 * proxy that throttles (503), holds requests past the client timeout, cuts connections after the
 * store did the work (commits included: the commit landed, the client saw an error) and goes
 * down for a while. object_store's own retries are turned down to one, so what reaches the
 * pipeline is what a longer real outage would bring. The table is read back by Python's
 * deltalake straight from moto.
 */
import test from 'ava';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { txnAppId } from '../ts/pipeline/identity.js';
import { startCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable, txnVersions } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { SEED } from './helpers/fault-checks.js';
import { countLines } from './helpers/faults.js';
import { startLocalS3, type LocalS3 } from './helpers/s3.js';

const PARTITIONS = 3;
const DAYS = ['2026-11-22', '2026-11-23'];
const COMMITTED = /"msg":"flush committed"/;
const RETRIED = /storage failure, retrying/;

interface Fixture {
  s3: LocalS3;
  proxy: FaultProxy;
  table: string;
  topic: string;
  group: string;
  ids: string[];
  configPath: string;
}

/** A bucket and table on moto, a proxy in front of it, a topic with `count` messages, a config through the proxy. */
async function fixture(count: number, seed: number, retry: Record<string, number>): Promise<Fixture> {
  const s3 = await startLocalS3();
  const proxy = await FaultProxy.start(s3.endpoint, seed);
  const bucket = uniqueName('faults').replaceAll('_', '-').toLowerCase();
  s3.createBucket(bucket);
  const table = `s3://${bucket}/events`;
  createTableWithPython(table, EVENT_COLUMNS, ['date_col'], {}, s3.storageOptions);
  const topic = uniqueName('kdr_store_faults');
  await createTopic(BROKERS, topic, PARTITIONS);
  const ids = Array.from({ length: count }, (_, i) => `e${i}`);
  await produceMessages(
    BROKERS,
    topic,
    ids.map((id, i) => ({ key: `k${i % 17}`, value: JSON.stringify({ id, seq: i, amount: i / 4, note: null, date_col: DAYS[i % 2] }) })),
  );
  const group = uniqueName('kdr_group');
  const storage = {
    ...s3.storageOptions,
    AWS_ENDPOINT_URL: proxy.endpoint,
    // object_store's own retries of one request, turned down so that faults reach the pipeline.
    max_retries: '1',
    retry_timeout: '2s',
    timeout: '3s',
  };
  const configPath = writeConfig(
    tempDir(),
    testConfig({
      topics: [topic],
      group,
      tablePath: table,
      batchInterval: 0.5,
      batchSize: 1500,
      extra: { kafka: { max_poll_records: 500 }, delta: { storage_options: storage, storage_retry: retry } },
    }),
  );
  return { s3, proxy, table, topic, group, ids, configPath };
}

/** The table's rows by id (sorted, duplicates kept) and whether its positions cover every message. */
function readBack(f: Fixture): { ids: string[]; covered: number } {
  const rows = readTable(f.table, f.s3.storageOptions).rows;
  const apps = Array.from({ length: PARTITIONS }, (_, p) => txnAppId(f.group, f.topic, p));
  const versions = txnVersions(f.table, apps, f.s3.storageOptions);
  const covered = Object.values(versions).reduce<number>((n, v) => n + (v === null ? 0 : v + 1), 0);
  return { ids: rows.map((r) => String(r.id)).sort(), covered };
}

test.serial('[integration] storage faults: throttling, held requests, cut connections (commits that landed included) and an outage are retried; the table is exact', async (t) => {
  t.timeout(8 * 60_000);
  const seed = (SEED + 21) >>> 0;
  t.log(`seed ${seed}`);
  const f = await fixture(12_000, seed, { budget: 120, initial_backoff: 0.2, max_backoff: 2 });
  t.teardown(async () => {
    await f.proxy.stop();
    f.s3.stop();
  });
  f.proxy.setPlan({ rate: 0.15, weights: { slow_down: 4, cut_after_forward: 3, hold: 2 }, cutEveryNthCommit: 2 });
  const cli = startCli(['--config', f.configPath, '--until-caught-up', '--logging.level=DEBUG']);
  // An outage of 6 s once commits are landing, on top of the random faults.
  await cli.waitFor(COMMITTED, 180_000).then(() => f.proxy.outage(6_000), () => undefined);
  const code = await cli.exited;
  const out = cli.output();
  t.log(`faults ${JSON.stringify(f.proxy.counts)}; ${countLines(out, COMMITTED)} commits, ${countLines(out, RETRIED)} retries`);
  t.is(code, 0, out.slice(-4000));
  t.true(f.proxy.counts.commitsCut > 0, 'some commits landed and their answer was cut');
  t.true(f.proxy.counts.outage > 0 && f.proxy.counts.slow_down > 0, 'the outage and throttling were met');
  t.true(countLines(out, RETRIED) > 0, 'the pipeline retried');
  t.false(/"level":"error"/.test(out), 'faults ridden out print no ERROR');

  f.proxy.setPlan({ rate: 0 });
  const read = readBack(f);
  t.deepEqual(read.ids, [...f.ids].sort(), 'every message exactly once');
  t.is(read.covered, f.ids.length, 'the positions cover every message');
});

test.serial('[integration] storage faults: an outage longer than delta.storage_retry.budget stops the pipeline with a StorageError; the next run completes the table exactly', async (t) => {
  t.timeout(6 * 60_000);
  const f = await fixture(4_000, (SEED + 22) >>> 0, { budget: 4, initial_backoff: 0.2, max_backoff: 1 });
  t.teardown(async () => {
    await f.proxy.stop();
    f.s3.stop();
  });
  const first = startCli(['--config', f.configPath]);
  await first.waitFor(COMMITTED, 180_000);
  f.proxy.outage(Infinity);
  const stopped = Date.now();
  const code = await first.exited;
  const seconds = (Date.now() - stopped) / 1000;
  t.log(`stopped ${seconds.toFixed(1)} s into the outage with exit ${code}`);
  const out = first.output();
  t.is(code, 1, out.slice(-3000));
  t.regex(out, /giving up \(delta\.storage_retry\.budget\)/);
  t.true(seconds < 60, 'it gave up within the budget (plus the flush interval and the client timeouts)');

  f.proxy.endOutage();
  const second = startCli(['--config', f.configPath, '--until-caught-up']);
  t.is(await second.exited, 0, second.output().slice(-3000));
  const read = readBack(f);
  t.deepEqual(read.ids, [...f.ids].sort(), 'every message exactly once');
  t.is(read.covered, f.ids.length);
});
