/**
 * Tables in object stores: an s3:// table on a local S3 endpoint (moto) and an az:// table on a
 * local Azure Blob endpoint (Azurite), written by the CLI with storage options from the config,
 * read back by Python's deltalake through the same APIs.
 */
import test, { type ExecutionContext } from 'ava';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { txnAppId } from '../ts/pipeline/identity.js';
import { runCli } from './helpers/cli.js';
import { startLocalAzure } from './helpers/azure.js';
import { EVENT_COLUMNS, createTableWithPython, readTable, txnVersions, type StorageOptions } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';
import { startLocalS3 } from './helpers/s3.js';

interface Store {
  table: string;
  storage: StorageOptions;
  /** The storage option holding the secret, passed through `credentials.delta_credentials`. */
  secretOption: string;
}

/** Every message lands once, dead letters beside the table, a rerun writes nothing, no secret is printed. */
async function ingestsExactlyOnce(t: ExecutionContext, store: Store): Promise<void> {
  createTableWithPython(store.table, EVENT_COLUMNS, ['date_col'], {}, store.storage);
  const topic = uniqueName('kdr_store');
  await createTopic(BROKERS, topic, 3);
  const days = ['2026-11-22', '2026-11-23'];
  const messages = Array.from({ length: 900 }, (_, i) => ({
    key: `k${i % 13}`,
    value: JSON.stringify({ id: `e${i}`, seq: i, amount: i / 2, note: null, date_col: days[i % 2] }),
  }));
  await produceMessages(BROKERS, topic, [...messages.slice(0, 450), { value: '{"id": 1', partition: 0 }, ...messages.slice(450)]);

  const { [store.secretOption]: secret, ...plain } = store.storage;
  t.truthy(secret);
  const group = uniqueName('kdr_group');
  const configPath = writeConfig(
    tempDir(),
    testConfig({
      topics: [topic],
      group,
      tablePath: store.table,
      extra: {
        delta: { storage_options: plain },
        credentials: { delta_credentials: { [store.secretOption]: secret } },
      },
    }),
  );
  const run = runCli(['--config', configPath, '--until-caught-up', '--logging.level=DEBUG']);
  t.is(run.status, 0, run.stderr);
  t.false(`${run.stdout}\n${run.stderr}`.includes(secret as string), 'the secret is not in the output');

  const read = readTable(store.table, store.storage);
  t.is(read.rows.length, 900);
  t.deepEqual(
    read.rows.map((r) => String(r.id)).sort(),
    messages.map((_, i) => `e${i}`).sort(),
  );
  for (const row of read.rows) t.is(row.date_col, days[Number(row.seq) % 2]);
  const dead = readTable(`${store.table}__dead_letters`, store.storage).rows;
  t.deepEqual(
    dead.map((d) => [d.partition, d.reason]),
    [[0, 'malformed_json']],
  );
  const ids = [0, 1, 2].map((p) => txnAppId(group, topic, p));
  const covered = Object.values(txnVersions(store.table, ids, store.storage)).reduce<number>((n, v) => n + (v === null ? 0 : v + 1), 0);
  t.is(covered, 901);

  // A second run finds its positions in the table's log and writes nothing.
  const again = runCli(['--config', configPath, '--until-caught-up']);
  t.is(again.status, 0, again.stderr);
  t.is(readTable(store.table, store.storage).version, read.version);
}

test('[integration] an s3:// table receives every message once, dead letters beside it, credentials never logged', async (t) => {
  const s3 = await startLocalS3();
  t.teardown(() => s3.stop());
  const bucket = uniqueName('lake').replaceAll('_', '-').toLowerCase();
  s3.createBucket(bucket);
  await ingestsExactlyOnce(t, { table: `s3://${bucket}/warehouse/events`, storage: s3.storageOptions, secretOption: 'AWS_SECRET_ACCESS_KEY' });
});

test('[integration] an az:// table receives every message once, dead letters beside it, credentials never logged', async (t) => {
  const azure = await startLocalAzure();
  t.teardown(() => azure.stop());
  const container = uniqueName('lake').replaceAll('_', '-').toLowerCase();
  await azure.createContainer(container);
  await ingestsExactlyOnce(t, {
    table: azure.tableUri(container, 'warehouse/events'),
    storage: azure.storageOptions,
    secretOption: 'azure_storage_account_key',
  });
});
