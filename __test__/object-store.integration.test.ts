/**
 * A table in an object store: an s3:// table on a local S3 endpoint (moto), written by the CLI
 * with storage options from the config, read back by Python's deltalake through the same API.
 */
import test from 'ava';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { txnAppId } from '../ts/pipeline/identity.js';
import { runCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable, txnVersions } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';
import { startLocalS3 } from './helpers/s3.js';

test('[integration] an s3:// table receives every message once, dead letters beside it, credentials never logged', async (t) => {
  const s3 = await startLocalS3();
  t.teardown(() => s3.stop());
  const bucket = uniqueName('lake').replaceAll('_', '-').toLowerCase();
  s3.createBucket(bucket);
  const table = `s3://${bucket}/warehouse/events`;
  createTableWithPython(table, EVENT_COLUMNS, ['date_col'], {}, s3.storageOptions);

  const topic = uniqueName('kdr_s3');
  await createTopic(BROKERS, topic, 3);
  const days = ['2026-11-22', '2026-11-23'];
  const messages = Array.from({ length: 900 }, (_, i) => ({
    key: `k${i % 13}`,
    value: JSON.stringify({ id: `e${i}`, seq: i, amount: i / 2, note: null, date_col: days[i % 2] }),
  }));
  await produceMessages(BROKERS, topic, [...messages.slice(0, 450), { value: '{"id": 1', partition: 0 }, ...messages.slice(450)]);

  const { AWS_SECRET_ACCESS_KEY: secret, ...plain } = s3.storageOptions;
  const group = uniqueName('kdr_group');
  const configPath = writeConfig(
    tempDir(),
    testConfig({
      topics: [topic],
      group,
      tablePath: table,
      extra: {
        delta: { storage_options: plain },
        credentials: { delta_credentials: { AWS_SECRET_ACCESS_KEY: secret } },
      },
    }),
  );
  const run = runCli(['--config', configPath, '--until-caught-up', '--logging.level=DEBUG']);
  t.is(run.status, 0, run.stderr);
  t.false(`${run.stdout}\n${run.stderr}`.includes(secret as string), 'the secret key is not in the output');

  const read = readTable(table, s3.storageOptions);
  t.is(read.rows.length, 900);
  t.deepEqual(
    read.rows.map((r) => String(r.id)).sort(),
    messages.map((_, i) => `e${i}`).sort(),
  );
  for (const row of read.rows) t.is(row.date_col, days[Number(row.seq) % 2]);
  const dead = readTable(`${table}__dead_letters`, s3.storageOptions).rows;
  t.deepEqual(
    dead.map((d) => [d.partition, d.reason]),
    [[0, 'malformed_json']],
  );
  const ids = [0, 1, 2].map((p) => txnAppId(group, topic, p));
  const covered = Object.values(txnVersions(table, ids, s3.storageOptions)).reduce<number>((n, v) => n + (v === null ? 0 : v + 1), 0);
  t.is(covered, 901);

  // A second run finds its positions in the table's log and writes nothing.
  const again = runCli(['--config', configPath, '--until-caught-up']);
  t.is(again.status, 0, again.stderr);
  t.is(readTable(table, s3.storageOptions).version, read.version);
});
