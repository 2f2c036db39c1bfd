import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadConfig, parseConfig, redactConfig, type Config } from '../ts/config/index.js';
import { ConfigError } from '../ts/errors.js';
import { kafkaProperties } from '../ts/pipeline/identity.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = (name: string) => path.join(here, 'fixtures', name);
const repoConfig = path.join(here, '..', 'config.yaml');

/** A minimal valid document; `extra` sections are merged over it (one level deep). */
function doc(extra: Record<string, Record<string, unknown>> = {}): Record<string, unknown> {
  const base: Record<string, Record<string, unknown>> = {
    kafka: { broker: 'localhost:9092', topic: 'events', group_id: 'g' },
    delta: { table_path: '/data/events', partition_column: 'date_col' },
  };
  for (const [k, v] of Object.entries(extra)) base[k] = { ...base[k], ...v };
  return base;
}

/** parseConfig that must fail; returns the error. */
function fails(t: ExecutionContext, raw: unknown, env: Record<string, string> = {}): ConfigError {
  const err = t.throws(() => parseConfig(raw, { env }), { instanceOf: ConfigError });
  if (!(err instanceof ConfigError)) throw new Error('expected a ConfigError');
  return err;
}

function problem(err: ConfigError, key: string): string {
  const p = err.problems.find((q) => q.key === key);
  if (p === undefined) throw new Error(`no problem on ${key}; got: ${err.message}`);
  return p.message;
}

const ok = (raw: unknown, env: Record<string, string> = {}): Config => parseConfig(raw, { env });

test('the original README sample fails on batch.batch_interval only', async (t) => {
  const err = await t.throwsAsync(loadConfig({ path: fixture('original-sample.yaml'), env: {} }), { instanceOf: ConfigError });
  t.is(err?.problems.length, 1);
  t.is(err?.problems[0]?.key, 'batch.batch_interval');
  t.regex(err?.problems[0]?.message ?? '', /expected a number of seconds, got the string "100,".*trailing comma/);
  t.true(err?.message.includes('batch.batch_interval: expected a number of seconds'));
});

test('the fixed README sample maps faithfully', async (t) => {
  const c = await loadConfig({ path: fixture('original-sample-fixed.yaml'), env: {} });
  t.is(c.kafka.brokers, 'localhost:9092');
  t.deepEqual(c.kafka.topics, ['topic_a']);
  t.is(c.kafka.groupId, 'kafka-delta-consumer-group');
  t.is(c.kafka.maxPollRecords, 5000);
  t.is(c.delta.tablePath, '/path/to/delta-table');
  t.is(c.delta.partitionColumn, 'date_col');
  t.is(c.delta.mode, 'INSERT');
  t.is(c.logging.level, 'info');
  t.deepEqual(c.monitoring, { enabled: true, host: 'localhost', port: 9090, endpoint: '/metrics' });
  t.deepEqual(c.concurrency, { numThreads: 4, retryAttempts: 3 });
  t.is(c.batch.batchIntervalSeconds, 100);
  t.is(c.batch.batchSize, 1000);
  t.is(c.credentials.kafkaUsername, 'user');
  t.is(c.credentials.kafkaPassword, 'pass');
  t.is(c.credentials.deltaCredentials, 'gcp');
  t.is(c.credentials.securityProtocol, 'SASL_SSL');
  t.deepEqual(c.deadLetter, { kind: 'delta', tablePath: '/path/to/delta-table__dead_letters' });
});

test('the repository config.yaml loads with the quickstart settings', async (t) => {
  const c = await loadConfig({ path: repoConfig, env: {} });
  t.is(c.kafka.brokers, '127.0.0.1:9092');
  t.deepEqual(c.kafka.topics, ['kdr_quickstart_events']);
  t.is(c.kafka.groupId, 'kdr-quickstart');
  t.is(c.delta.tablePath, '.data/quickstart/events');
  t.is(c.delta.partitionColumn, 'date_col');
  t.is(c.delta.mode, 'INSERT');
  t.deepEqual(c.delta.partitionSource, { kind: 'column', timezone: 'UTC' });
  t.deepEqual(c.deadLetter, { kind: 'delta', tablePath: '.data/quickstart/events__dead_letters' });
  t.deepEqual(c.monitoring, { enabled: true, host: '127.0.0.1', port: 9090, endpoint: '/metrics' });
  t.is(c.batch.batchIntervalSeconds, 10);
  t.is(c.batch.batchSize, 100000);
  t.deepEqual(c.dedup.keys, ['event_id']);
  t.deepEqual(c.logging, { level: 'info', format: 'pretty' });
  t.is(c.buffer.maxMemoryBytes, 256 * 2 ** 20);
  t.deepEqual(c.credentials, { saslMechanism: 'PLAIN', securityProtocol: 'SASL_SSL' });
  t.deepEqual(parseConfig(parseYaml(await readFile(repoConfig, 'utf8')), { env: {} }), c);
});

test('defaults fill a minimal document', (t) => {
  const c = ok(doc());
  t.is(c.kafka.startFrom, 'earliest');
  t.is(c.kafka.consumeTimeoutMs, 100);
  t.is(c.delta.unknownFields, 'ignore');
  t.is(c.delta.schemaEvolution, 'none');
  t.deepEqual(c.delta.kafkaMetadata, {});
  t.deepEqual(c.delta.mergeKeys, []);
  t.false('deleteWhen' in c.delta);
  t.deepEqual(c.logging, { level: 'info', format: 'json' });
  t.deepEqual(c.monitoring, { enabled: true, host: '127.0.0.1', port: 9090, endpoint: '/metrics' });
  t.deepEqual(c.concurrency, { numThreads: 0, retryAttempts: 3 });
  t.deepEqual(c.batch, { batchIntervalSeconds: 60, batchSize: 100000, timezone: 'UTC' });
  t.deepEqual(c.dedup, { keys: [], strategy: 'last', nullKeys: 'keep' });
  t.deepEqual(c.buffer, { maxMemoryBytes: 268435456, maxDiskBytes: 10 * 2 ** 30, stagingDir: '.kafka-delta-staging' });
  t.deepEqual(c.credentials, { saslMechanism: 'PLAIN', securityProtocol: 'SASL_SSL' });
  t.is(ok(doc({ credentials: { security_protocol: 'sasl_plaintext', sasl_mechanism: 'scram-sha-512' } })).credentials.securityProtocol, 'SASL_PLAINTEXT');
});

test('kafka.topic_pattern: anchored, alone or beside topics; refused when not a usable pattern', (t) => {
  const pattern = (topic_pattern: string, extra: Record<string, Record<string, unknown>> = {}) =>
    doc({ ...extra, kafka: { topic: undefined, topic_pattern, ...extra.kafka } });
  const alone = ok(pattern('orders-.*'));
  t.deepEqual([alone.kafka.topics, alone.kafka.topicPattern], [[], '^orders-.*']);
  t.is(kafkaProperties(alone)['topic.metadata.refresh.interval.ms'], '30000', 'new topics found within 30 s by default');
  const both = ok(doc({ kafka: { topic_pattern: '^orders-.*', properties: { 'topic.metadata.refresh.interval.ms': '1000' } } }));
  t.deepEqual([both.kafka.topics, both.kafka.topicPattern], [['events'], '^orders-.*']);
  t.is(kafkaProperties(both)['topic.metadata.refresh.interval.ms'], '1000');
  t.is(kafkaProperties(ok(doc()))['topic.metadata.refresh.interval.ms'], undefined);
  t.regex(problem(fails(t, pattern('orders-(')), 'kafka.topic_pattern'), /not a regular expression/);
  t.regex(problem(fails(t, pattern('orders-.*?')), 'kafka.topic_pattern'), /lazy quantifier/);
  t.regex(problem(fails(t, pattern('(?!x)orders')), 'kafka.topic_pattern'), /look-around/);
  const dead = fails(t, pattern('orders-.*', { dead_letter: { kind: 'kafka', topic: 'orders-dead' } }));
  t.regex(problem(dead, 'dead_letter.topic'), /must not match kafka.topic_pattern/);
  t.regex(problem(fails(t, doc({ kafka: { topic: undefined } })), 'kafka.topic'), /kafka.topic_pattern/);
});

test('kafka.format: debezium needs MERGE with the last change winning, and owns deletes', (t) => {
  const cdc = (delta: Record<string, unknown>, extra: Record<string, Record<string, unknown>> = {}) =>
    doc({ ...extra, kafka: { format: 'debezium' }, delta: { merge_keys: ['id'], ...delta } });
  const config = ok(cdc({ mode: 'MERGE', partition_source: { kind: 'change_time' } }));
  t.like(config, { kafka: { format: 'debezium' }, delta: { partitionSource: { kind: 'change_time' } } });
  t.is(ok(doc()).kafka.format, 'json');
  t.regex(problem(fails(t, cdc({})), 'delta.mode'), /must be MERGE with kafka.format: debezium/);
  t.regex(problem(fails(t, cdc({ mode: 'MERGE' }, { dedup: { strategy: 'first' } })), 'dedup.strategy'), /must be last/);
  t.regex(problem(fails(t, cdc({ mode: 'MERGE', delete_when: 'x' })), 'delta.delete_when'), /op d delete/);
  t.regex(problem(fails(t, cdc({ mode: 'MERGE', schema_evolution: 'add_columns' })), 'delta.schema_evolution'), /not supported/);
  t.regex(problem(fails(t, doc({ delta: { partition_source: { kind: 'change_time' } } })), 'delta.partition_source.kind'), /needs kafka.format: debezium/);
  t.regex(problem(fails(t, doc({ kafka: { format: 'avro' } })), 'kafka.format'), /json, debezium/);
});

test('mode UPSERT names delta.mode, the value and the allowed values', (t) => {
  const err = fails(t, doc({ delta: { mode: 'UPSERT' } }));
  t.is(err.problems.length, 1);
  const msg = problem(err, 'delta.mode');
  t.true(msg.includes('"UPSERT"'));
  t.true(msg.includes('INSERT') && msg.includes('MERGE'));
  t.true(err.message.includes('delta.mode'));
  t.is(ok(doc({ delta: { mode: 'merge', merge_keys: ['id'] } })).delta.mode, 'MERGE');
});

test('schema_evolution names the key: an unknown value, and add_columns with unknown_fields: reject', (t) => {
  t.is(ok(doc({ delta: { schema_evolution: 'ADD_COLUMNS' } })).delta.schemaEvolution, 'add_columns');
  t.regex(problem(fails(t, doc({ delta: { schema_evolution: 'merge' } })), 'delta.schema_evolution'), /none, add_columns.*"merge"/);
  const err = fails(t, doc({ delta: { schema_evolution: 'add_columns', unknown_fields: 'reject' } }));
  t.deepEqual(err.problems.map((p) => p.key), ['delta.schema_evolution']);
  t.regex(problem(err, 'delta.schema_evolution'), /cannot be combined with delta\.unknown_fields: reject/);
});

test('unknown keys are problems with a did-you-mean hint', (t) => {
  const err = fails(t, doc({ kafka: { gruop_id: 'x' }, batch: { batch_sise: 3, flux_capacitor: 1 }, delta: { topic: 't' } }));
  t.is(problem(err, 'kafka.gruop_id'), 'unknown key (did you mean `group_id`?)');
  t.is(problem(err, 'batch.batch_sise'), 'unknown key (did you mean `batch_size`?)');
  t.is(problem(err, 'batch.flux_capacitor'), 'unknown key');
  t.is(problem(err, 'delta.topic'), 'unknown key (did you mean `kafka.topic`?)');
  t.regex(problem(fails(t, { ...doc(), loging: {} }), 'loging'), /did you mean `logging`/);
  // free-form maps accept any key
  t.notThrows(() => ok(doc({ kafka: { properties: { 'fetch.min.bytes': 1 } }, delta: { storage_options: { AWS_REGION: 'x' } } })));
});

test('every missing required key is listed at once', (t) => {
  const err = fails(t, {});
  t.deepEqual(
    err.problems.map((p) => p.key).sort(),
    ['delta.partition_column', 'delta.table_path', 'kafka.broker', 'kafka.group_id', 'kafka.topic'],
  );
  t.true(err.problems.every((p) => p.message.startsWith('is required')));
  const more = fails(t, { kafka: { topics: [] }, delta: { mode: 'MERGE' }, monitoring: { port: 'x' } });
  t.truthy(problem(more, 'kafka.topic'));
  t.truthy(problem(more, 'delta.merge_keys'));
  t.truthy(problem(more, 'monitoring.port'));
  t.truthy(problem(more, 'delta.table_path'));
});

test('topic and topics are merged without duplicates; brokers may be a list', (t) => {
  const c = ok(doc({ kafka: { topic: 'a', topics: ['b', 'a', 'c'] } }));
  t.deepEqual(c.kafka.topics, ['a', 'b', 'c']);
  t.deepEqual(ok(doc({ kafka: { topic: undefined, topics: ['x'] } })).kafka.topics, ['x']);
  const b = ok({ ...doc(), kafka: { brokers: ['h1:9092', 'h2:9092'], topic: 't', group_id: 'g' } });
  t.is(b.kafka.brokers, 'h1:9092,h2:9092');
  t.is(ok(doc({ kafka: { broker: 'h1:1, h2:2' } })).kafka.brokers, 'h1:1,h2:2');
  t.truthy(problem(fails(t, doc({ kafka: { brokers: 'h:1' } })), 'kafka.brokers'));
  t.truthy(problem(fails(t, doc({ kafka: { topics: ['ok', ''] } })), 'kafka.topics[1]'));
});

test('${VAR} and ${VAR:-default} are substituted; a missing variable is a problem', (t) => {
  const env = { BROKER: 'b:9092', PORT: '9100', ON: 'false' };
  const c = ok(doc({
    kafka: { broker: '${BROKER}', group_id: 'grp-${SUFFIX:-dev}' },
    monitoring: { port: '${PORT}', enabled: '${ON}' },
    delta: { delete_when: undefined, table_path: '/t/$${literal}' },
  }), env);
  t.is(c.kafka.brokers, 'b:9092');
  t.is(c.kafka.groupId, 'grp-dev');
  t.is(c.monitoring.port, 9100);
  t.false(c.monitoring.enabled);
  t.is(c.delta.tablePath, '/t/${literal}');
  const err = fails(t, doc({ kafka: { group_id: '${NOPE}' }, batch: { batch_size: '${SIZE}' } }), {});
  t.regex(problem(err, 'kafka.group_id'), /environment variable NOPE is not set/);
  t.regex(problem(err, 'batch.batch_size'), /environment variable SIZE is not set/);
  // a number embedded in a longer string stays a string, hence an error for numeric keys
  t.truthy(problem(fails(t, doc({ monitoring: { port: '${PORT}0 ' } }), env), 'monitoring.port'));
  t.regex(problem(fails(t, doc({ kafka: { group_id: '${bad name}' } })), 'kafka.group_id'), /malformed/);
});

test('credentials come from *_file siblings and KAFKA_DELTA_* variables', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'kdr-config-'));
  await writeFile(path.join(dir, 'pass'), '  file-pass\n');
  await writeFile(path.join(dir, 'user'), 'file-user\n');
  const creds = { kafka_username_file: 'user', kafka_password_file: path.join(dir, 'pass') };
  const c = parseConfig(doc({ credentials: creds }), { env: {}, baseDir: dir });
  t.is(c.credentials.kafkaUsername, 'file-user');
  t.is(c.credentials.kafkaPassword, 'file-pass');
  const envOver = parseConfig(doc({ credentials: creds }), { env: { KAFKA_DELTA_KAFKA_PASSWORD: 'env-pass' }, baseDir: dir });
  t.is(envOver.credentials.kafkaPassword, 'env-pass');
  t.is(envOver.credentials.kafkaUsername, 'file-user');
  const both = ok(doc({ credentials: { kafka_username: 'u', kafka_password: 'p' } }), {
    KAFKA_DELTA_KAFKA_USERNAME: 'eu', KAFKA_DELTA_KAFKA_PASSWORD: 'ep',
  });
  t.deepEqual([both.credentials.kafkaUsername, both.credentials.kafkaPassword], ['eu', 'ep']);
  const missing = path.join(dir, 'nope');
  const err = fails(t, doc({ credentials: { kafka_username: 'u', kafka_password_file: missing } }));
  t.true(problem(err, 'credentials.kafka_password_file').includes(missing));
  t.is(err.problems.length, 1);
  const twice = fails(t, doc({ credentials: { kafka_username: 'u', kafka_password: 'p', kafka_password_file: missing } }));
  t.regex(problem(twice, 'credentials.kafka_password_file'), /not both/);
  t.regex(problem(fails(t, doc({ credentials: { kafka_username: 'u' } })), 'credentials.kafka_password'), /required/);
});

test('secrets never appear in problems nor in redactConfig output', (t) => {
  const secret = 'Zebra-Secret-8675309';
  const err = fails(t, {
    ...doc({ batch: { batch_interval: '100,' }, delta: { mode: 'UPSERT' } }),
    credentials: { kafka_username: 'u', kafka_password: 12345, kafka_pasword: secret, delta_credentials: { AWS_SECRET_ACCESS_KEY: [secret] } },
    kafka: { broker: 'b', topic: 't', group_id: 'g', properties: { 'sasl.password': [secret], 'group.id': 'x' } },
  });
  t.false(err.message.includes(secret));
  t.false(err.message.includes('12345'));
  t.true(problem(err, 'credentials.kafka_password').includes('<redacted>'));
  t.true(problem(err, 'credentials.delta_credentials').length > 0);
  t.true(err.problems.length >= 6);

  const c = ok({
    ...doc({ delta: { storage_options: { AWS_SECRET_ACCESS_KEY: secret, AWS_REGION: 'eu-west-1' } } }),
    kafka: { broker: 'b', topic: 't', group_id: 'g', properties: { 'sasl.password': secret, 'fetch.min.bytes': 1 } },
    credentials: { kafka_username: 'u', kafka_password: secret, delta_credentials: { AZURE_STORAGE_ACCOUNT_KEY: secret } },
  });
  const r = redactConfig(c);
  t.false(JSON.stringify(r).includes(secret));
  t.is(r.credentials.kafkaPassword, '<redacted>');
  t.is(r.credentials.kafkaUsername, 'u');
  t.is(r.delta.storageOptions['AWS_REGION'], 'eu-west-1');
  t.is(r.delta.storageOptions['AZURE_STORAGE_ACCOUNT_KEY'], '<redacted>');
  t.is(r.kafka.properties['fetch.min.bytes'], '1');
  t.is(c.credentials.kafkaPassword, secret, 'the original is untouched');
});

test('byte sizes accept numbers and unit strings', (t) => {
  const sizes: [unknown, number][] = [
    [1024, 1024], ['256MiB', 256 * 2 ** 20], ['1GiB', 2 ** 30], ['512MB', 512e6], ['1.5 KiB', 1536],
    ['10gib', 10 * 2 ** 30], ['2048', 2048], ['64 B', 64],
  ];
  for (const [input, bytes] of sizes) {
    t.is(ok(doc({ buffer: { max_memory: input } })).buffer.maxMemoryBytes, bytes, String(input));
  }
  for (const bad of ['lots', '1 GB extra', '5 PiB', 0, -1, 1.5, '', true]) {
    t.regex(problem(fails(t, doc({ buffer: { max_disk: bad } })), 'buffer.max_disk'), /byte size/, String(bad));
  }
});

test('CLI-like overrides are deep-merged over the file', async (t) => {
  const c = await loadConfig({
    path: fixture('original-sample-fixed.yaml'),
    env: {},
    overrides: { kafka: { broker: 'host:9092', topics: undefined }, batch: { batch_interval: 5 }, logging: { format: 'pretty' } },
  });
  t.is(c.kafka.brokers, 'host:9092');
  t.is(c.kafka.groupId, 'kafka-delta-consumer-group');
  t.deepEqual(c.kafka.topics, ['topic_a']);
  t.is(c.batch.batchIntervalSeconds, 5);
  t.is(c.batch.batchSize, 1000);
  t.deepEqual(c.logging, { level: 'info', format: 'pretty' });
  // the original's only problem can be fixed by an override
  const fixed = await loadConfig({ path: fixture('original-sample.yaml'), env: {}, overrides: { batch: { batch_interval: 100 } } });
  t.is(fixed.batch.batchIntervalSeconds, 100);
});

test('kafka.properties rejects keys kafka-delta-rust owns and stringifies values', (t) => {
  const err = fails(t, doc({ kafka: { properties: { 'group.id': 'x', 'enable.auto.commit': true, 'bootstrap.servers': 'b' } } }));
  t.regex(problem(err, 'kafka.properties.group.id'), /kafka\.group_id/);
  t.truthy(problem(err, 'kafka.properties.enable.auto.commit'));
  t.regex(problem(err, 'kafka.properties.bootstrap.servers'), /kafka\.broker/);
  const c = ok(doc({ kafka: { properties: { 'fetch.min.bytes': 1, 'enable.partition.eof': false, 'client.id': 'c' } } }));
  t.deepEqual(c.kafka.properties, { 'fetch.min.bytes': '1', 'enable.partition.eof': 'false', 'client.id': 'c' });
});

test('partition_source kind field requires field, other kinds forbid it', (t) => {
  t.regex(problem(fails(t, doc({ delta: { partition_source: { kind: 'field' } } })), 'delta.partition_source.field'), /required/);
  t.regex(problem(fails(t, doc({ delta: { partition_source: { field: 'ts' } } })), 'delta.partition_source.field'), /only allowed/);
  const c = ok(doc({ delta: { partition_source: { kind: 'field', field: 'event_time', timezone: 'Europe/Paris' } } }));
  t.deepEqual(c.delta.partitionSource, { kind: 'field', field: 'event_time', timezone: 'Europe/Paris' });
  t.deepEqual(ok(doc({ delta: { partition_source: { kind: 'kafka_timestamp' } } })).delta.partitionSource, { kind: 'kafka_timestamp', timezone: 'UTC' });
});

test('time zones are validated', (t) => {
  const err = fails(t, doc({ delta: { partition_source: { timezone: 'Mars/Olympus' } }, batch: { timezone: 'Nowhere' } }));
  t.regex(problem(err, 'delta.partition_source.timezone'), /IANA time zone.*"Mars\/Olympus"/);
  t.truthy(problem(err, 'batch.timezone'));
  t.is(ok(doc({ batch: { timezone: 'America/New_York' } })).batch.timezone, 'America/New_York');
});

test('MERGE needs keys; delete_when is MERGE only; dedup keys are the default merge keys', (t) => {
  t.regex(problem(fails(t, doc({ delta: { mode: 'MERGE' } })), 'delta.merge_keys'), /MERGE/);
  const c = ok(doc({ delta: { mode: 'MERGE', delete_when: "op = 'd'" }, dedup: { keys: ['id'], order_by: 'ts' } }));
  t.deepEqual(c.delta.mergeKeys, ['id']);
  t.is(c.delta.deleteWhen, "op = 'd'");
  t.is(c.dedup.orderBy, 'ts');
  t.regex(problem(fails(t, doc({ delta: { delete_when: 'x' } })), 'delta.delete_when'), /MERGE/);
  t.regex(problem(fails(t, doc({ dedup: { keys: ['a', 'a'] } })), 'dedup.keys[1]'), /duplicate/);
  const both = { delta: { mode: 'MERGE', merge_keys: ['id', 'day'] } };
  t.deepEqual(ok(doc({ ...both, dedup: { keys: ['day', 'id'] } })).delta.mergeKeys, ['id', 'day']);
  t.regex(problem(fails(t, doc({ ...both, dedup: { keys: ['id'] } })), 'dedup.keys'), /must equal delta\.merge_keys/);
});

test('dead letters: defaults, URIs, and the kafka kind', (t) => {
  t.deepEqual(ok(doc({ delta: { table_path: 's3://bucket/events/' } })).deadLetter, { kind: 'delta', tablePath: 's3://bucket/events__dead_letters' });
  t.deepEqual(ok(doc({ dead_letter: { kind: 'kafka', topic: 'dlq' } })).deadLetter, { kind: 'kafka', topic: 'dlq' });
  t.regex(problem(fails(t, doc({ dead_letter: { kind: 'kafka' } })), 'dead_letter.topic'), /required/);
  t.regex(problem(fails(t, doc({ dead_letter: { kind: 'kafka', topic: 'events' } })), 'dead_letter.topic'), /consumed/);
  t.regex(problem(fails(t, doc({ dead_letter: { table_path: '/data/events' } })), 'dead_letter.table_path'), /differ/);
});

test('other value checks: schedule, endpoint, metadata columns, nulls', (t) => {
  t.is(ok(doc({ batch: { schedule: '02:30' } })).batch.schedule, '02:30');
  t.is(ok(doc({ batch: { schedule: '*/15  * * * 1-5' } })).batch.schedule, '*/15 * * * 1-5');
  t.truthy(problem(fails(t, doc({ batch: { schedule: '24:00' } })), 'batch.schedule'));
  t.truthy(problem(fails(t, doc({ batch: { schedule: '* * *' } })), 'batch.schedule'));
  t.truthy(problem(fails(t, doc({ monitoring: { endpoint: 'metrics' } })), 'monitoring.endpoint'));
  t.truthy(problem(fails(t, doc({ batch: { batch_interval: 0 } })), 'batch.batch_interval'));
  t.is(ok(doc({ batch: { batch_interval: 0.5 } })).batch.batchIntervalSeconds, 0.5);
  t.regex(problem(fails(t, doc({ delta: { kafka_metadata: { topic: 'k', offset: 'k' } } })), 'delta.kafka_metadata.offset'), /already used/);
  t.deepEqual(ok(doc({ delta: { kafka_metadata: { offset: '_off' } } })).delta.kafkaMetadata, { offset: '_off' });
  t.is(ok(doc({ batch: { schedule: null }, dedup: { order_by: null }, dead_letter: {} })).batch.schedule, undefined);
  t.is(ok(doc({ logging: { level: 'DEBUG' } })).logging.level, 'debug');
});

test('batch defaults: 60 s and 100000 rows without a schedule, unset with one unless given', (t) => {
  t.deepEqual(ok(doc()).batch, { batchIntervalSeconds: 60, batchSize: 100000, timezone: 'UTC' });
  t.deepEqual(ok(doc({ batch: { schedule: null } })).batch, { batchIntervalSeconds: 60, batchSize: 100000, timezone: 'UTC' });
  const daily = ok(doc({ batch: { schedule: '02:00', timezone: 'Europe/Berlin' } })).batch;
  t.deepEqual(daily, { schedule: '02:00', timezone: 'Europe/Berlin' });
  t.false('batchIntervalSeconds' in daily);
  t.false('batchSize' in daily);
  t.deepEqual(ok(doc({ batch: { schedule: '0 0 * * *', batch_size: 500 } })).batch, { schedule: '0 0 * * *', batchSize: 500, timezone: 'UTC' });
  t.deepEqual(ok(doc({ batch: { schedule: '0 0 * * *', batch_interval: 3600 } })).batch, {
    schedule: '0 0 * * *', batchIntervalSeconds: 3600, timezone: 'UTC',
  });
  t.deepEqual(ok(doc({ batch: { schedule: '0 0 * * *', batch_interval: null, batch_size: null } })).batch, { schedule: '0 0 * * *', timezone: 'UTC' });
  t.is(ok(doc({ batch: { batch_size: 7 } })).batch.batchIntervalSeconds, 60);
  t.is(ok(doc({ batch: { batch_interval: 7 } })).batch.batchSize, 100000);
  // a schedule does not relax the other keys' checks
  const err = fails(t, doc({ batch: { schedule: '02:00', batch_interval: -1, batch_size: 0 } }));
  t.regex(problem(err, 'batch.batch_interval'), /greater than 0/);
  t.regex(problem(err, 'batch.batch_size'), /at least 1/);
});

test('a bad batch.schedule or batch.timezone is a ConfigError naming the key', (t) => {
  for (const bad of ['24:00', '2:30', '* * *', '0 0 * * * *', '61 * * * *', '0 25 * * *', '0 0 31 2 *', '0 0 * * FUNDAY', '@daily', '', 230]) {
    const err = fails(t, doc({ batch: { schedule: bad } }));
    t.is(err.problems.length, 1, String(bad));
    t.regex(problem(err, 'batch.schedule'), /daily time "HH:MM".*5-field cron expression/, String(bad));
    t.true(err.message.includes('batch.schedule: expected'), String(bad));
  }
  t.regex(problem(fails(t, doc({ batch: { schedule: '61 * * * *' } })), 'batch.schedule'), /minute.*got the string "61 \* \* \* \*"/);
  t.regex(problem(fails(t, doc({ batch: { schedule: '0 0 31 2 *' } })), 'batch.schedule'), /never fires/);
  const tz = fails(t, doc({ batch: { schedule: '02:00', timezone: 'Mars/Olympus' } }));
  t.is(tz.problems.length, 1);
  t.regex(problem(tz, 'batch.timezone'), /IANA time zone.*"Mars\/Olympus"/);
  t.is(ok(doc({ batch: { schedule: '0 0 * * mon-fri' } })).batch.schedule, '0 0 * * mon-fri');
  t.is(ok(doc({ batch: { schedule: '0 0 L * ?' } })).batch.schedule, '0 0 L * ?');
});

test('a missing file, bad YAML and a non-map document are ConfigErrors', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'kdr-config-'));
  const missing = path.join(dir, 'absent.yaml');
  const e1 = await t.throwsAsync(loadConfig({ path: missing }), { instanceOf: ConfigError });
  t.true(e1?.message.includes(missing));
  const bad = path.join(dir, 'bad.yaml');
  await writeFile(bad, 'kafka:\n  broker: "x"\n  topic: [a,\n');
  const e2 = await t.throwsAsync(loadConfig({ path: bad }), { instanceOf: ConfigError });
  t.regex(e2?.problems[0]?.message ?? '', /line \d+, column \d+/);
  const leaky = path.join(dir, 'leaky.yaml');
  await writeFile(leaky, 'credentials:\n  kafka_password: "Leaky-Pass-31337\n');
  const e3 = await t.throwsAsync(loadConfig({ path: leaky }), { instanceOf: ConfigError });
  t.false(e3?.message.includes('Leaky-Pass-31337'));
  t.is(fails(t, ['a']).problems[0]?.key, 'config');
});

test('kafka.on_position_lost: fail by default, earliest or latest, anything else names the key', (t) => {
  t.is(ok(doc()).kafka.onPositionLost, 'fail');
  t.is(ok(doc({ kafka: { on_position_lost: 'Earliest' } })).kafka.onPositionLost, 'earliest');
  t.is(ok(doc({ kafka: { on_position_lost: 'latest' } })).kafka.onPositionLost, 'latest');
  const err = fails(t, doc({ kafka: { on_position_lost: 'skip' } }));
  t.is(err.problems.length, 1);
  t.is(problem(err, 'kafka.on_position_lost'), 'expected one of fail, earliest, latest, got the string "skip"');
  t.true(err.message.includes('kafka.on_position_lost'));
  t.regex(problem(fails(t, doc({ kafka: { on_position_lost: true } })), 'kafka.on_position_lost'), /one of fail, earliest, latest/);
  // librdkafka's own reset would contradict the policy: it is derived from it instead.
  const reset = fails(t, doc({ kafka: { properties: { 'auto.offset.reset': 'earliest' } } }));
  t.regex(problem(reset, 'kafka.properties.auto.offset.reset'), /kafka\.on_position_lost/);
});

test('delta.epoch_unit is ms by default, s or us otherwise; delta.day_window_years is 10 by default', (t) => {
  t.is(ok(doc()).delta.epochUnit, 'ms');
  t.is(ok(doc()).delta.dayWindowYears, 10);
  t.is(ok(doc({ delta: { epoch_unit: 'S' } })).delta.epochUnit, 's');
  t.is(ok(doc({ delta: { day_window_years: 50 } })).delta.dayWindowYears, 50);
  t.is(problem(fails(t, doc({ delta: { epoch_unit: 'minutes' } })), 'delta.epoch_unit'), 'expected one of s, ms, us, got the string "minutes"');
  t.regex(problem(fails(t, doc({ delta: { day_window_years: 0 } })), 'delta.day_window_years'), /from 1 to 1000/);
});

test('credentials.metrics_token comes from a file or KAFKA_DELTA_METRICS_TOKEN and is redacted', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kdr-token-'));
  writeFileSync(path.join(dir, 'token'), 'tok-from-file\n');
  const fromFile = parseConfig(doc({ credentials: { metrics_token_file: 'token' } }), { baseDir: dir });
  t.is(fromFile.credentials.metricsToken, 'tok-from-file');
  t.is(redactConfig(fromFile).credentials.metricsToken, '<redacted>');
  t.is(parseConfig(doc(), { env: { KAFKA_DELTA_METRICS_TOKEN: 'tok-env' } }).credentials.metricsToken, 'tok-env');
  t.is(ok(doc()).credentials.metricsToken, undefined);
});

/** A self-signed certificate and its key (PEM) in `dir`, made with openssl as an operator would. */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const [cert, key] = [path.join(dir, `${name}.crt`), path.join(dir, `${name}.key`)];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

test('kafka.tls files are checked, made absolute and set the ssl.* properties; TLS alone means SSL', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kdr-tls-'));
  selfSigned(dir, 'ca');
  const client = selfSigned(dir, 'client');
  const tls = { ca_file: 'ca.crt', cert_file: 'client.crt', key_file: 'client.key' };
  const c = parseConfig(doc({ kafka: { tls } }), { env: {}, baseDir: dir });
  t.deepEqual(c.kafka.tls, { caFile: path.join(dir, 'ca.crt'), certFile: client.cert, keyFile: client.key });
  const props = kafkaProperties(c);
  t.is(props['security.protocol'], 'ssl');
  t.is(props['ssl.ca.location'], path.join(dir, 'ca.crt'));
  t.is(props['ssl.certificate.location'], client.cert);
  t.is(props['ssl.key.location'], client.key);
  t.false('sasl.mechanisms' in props);

  // With credentials the default SASL_SSL applies; a directory of CA certificates is accepted.
  const sasl = parseConfig(
    doc({ kafka: { tls: { ca_file: dir } }, credentials: { kafka_username: 'u', kafka_password: 'p', sasl_mechanism: 'SCRAM-SHA-512' } }),
    { env: {} },
  );
  t.deepEqual(sasl.kafka.tls, { caFile: dir });
  t.like(kafkaProperties(sasl), { 'security.protocol': 'sasl_ssl', 'sasl.mechanisms': 'SCRAM-SHA-512', 'sasl.username': 'u', 'ssl.ca.location': dir });
  // SSL without kafka.tls: librdkafka's default CA store; without credentials or TLS, plaintext as before.
  const ssl = ok(doc({ credentials: { security_protocol: 'ssl' } }));
  t.is(ssl.credentials.securityProtocol, 'SSL');
  t.is(kafkaProperties(ssl)['security.protocol'], 'ssl');
  t.false('security.protocol' in kafkaProperties(ok(doc())));
  t.false('tls' in ok(doc()).kafka);
});

test('a missing or bad kafka.tls file, or a TLS setting that cannot apply, is a ConfigError naming the key', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kdr-tls-'));
  const a = selfSigned(dir, 'a');
  const b = selfSigned(dir, 'b');
  writeFileSync(path.join(dir, 'junk.pem'), 'not a certificate\n');
  const bad = (tls: Record<string, unknown>, extra: Record<string, Record<string, unknown>> = {}) =>
    t.throws(() => parseConfig(doc({ ...extra, kafka: { ...extra.kafka, tls } }), { env: {}, baseDir: dir }), { instanceOf: ConfigError }) as ConfigError;

  const missing = path.join(dir, 'nope.crt');
  t.regex(problem(bad({ ca_file: 'nope.crt' }), 'kafka.tls.ca_file'), new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} cannot be read \\(ENOENT\\)`));
  t.regex(problem(bad({ ca_file: 'junk.pem' }), 'kafka.tls.ca_file'), /junk\.pem holds no "-----BEGIN CERTIFICATE-----" block \(expected PEM CA certificates/);
  t.regex(problem(bad({ cert_file: a.cert, key_file: a.cert }), 'kafka.tls.key_file'), /holds no "-----BEGIN \.\.\. PRIVATE KEY-----" block/);
  t.is(problem(bad({ cert_file: a.cert, key_file: b.key }), 'kafka.tls.key_file'), 'is not the key of the certificate in kafka.tls.cert_file');
  t.regex(problem(bad({ cert_file: a.cert }), 'kafka.tls.key_file'), /is required when kafka\.tls\.cert_file is set/);
  t.regex(problem(bad({ cafile: a.cert }), 'kafka.tls.cafile'), /did you mean `ca_file`/);
  t.regex(problem(bad({ ca_file: a.cert }, { kafka: { properties: { 'ssl.ca.location': a.cert } } }), 'kafka.tls.ca_file'), /also set as kafka\.properties\.ssl\.ca\.location/);
  t.regex(
    problem(bad({ ca_file: a.cert }, { credentials: { kafka_username: 'u', kafka_password: 'p', security_protocol: 'SASL_PLAINTEXT' } }), 'kafka.tls.ca_file'),
    /needs TLS, but credentials\.security_protocol is SASL_PLAINTEXT/,
  );
  const sslWithPassword = fails(t, doc({ credentials: { kafka_username: 'u', kafka_password: 'Secret-42', security_protocol: 'SSL' } }));
  t.regex(problem(sslWithPassword, 'credentials.security_protocol'), /TLS without SASL/);
  t.false(sslWithPassword.message.includes('Secret-42'));
  t.regex(problem(fails(t, doc({ credentials: { security_protocol: 'TLS' } })), 'credentials.security_protocol'), /one of SASL_SSL, SASL_PLAINTEXT, SSL/);
});
