/**
 * Hostile input against the real broker, real tables read back with Python's deltalake: every
 * kind of payload a producer can get wrong, mixed into a large run, is a dead letter with its
 * own reason (its detail bounded, its bytes kept whole), never a stopped partition; the good
 * messages around them all land; and no payload reaches the log above DEBUG.
 */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createTopic, produceMessages, readTopic, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { produceWithJavaClient } from './helpers/broker.js';
import { runCli } from './helpers/cli.js';
import { createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const DAY = '2026-11-23';
/** In every hostile value: it must never appear in a log line at INFO. */
const MARKER = 'HOSTILE-VALUE-7c1f';
const MB = 1_000_000;

const COLUMNS: Array<[string, string, boolean]> = [
  ['id', 'string', false],
  ['seq', 'long', true],
  ['note', 'string', true],
  ['at', 'timestamp', true],
  ['kkey', 'string', false],
  ['date_col', 'string', false],
];

const good = (id: string, extra: Record<string, unknown> = {}) => JSON.stringify({ id, seq: 1, note: 'n', date_col: DAY, ...extra });
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const nestedObject = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;

/** Each hostile message, with the reason its dead letter must carry (null: it is a good row). */
function hostile(): Array<{ name: string; message: OutgoingMessage; reason: string | null }> {
  const invalidUtf8 = Buffer.concat([Buffer.from(`{"id":"utf8","note":"${MARKER}`), Buffer.from([0xff, 0xfe]), Buffer.from(`","date_col":"${DAY}"}`)]);
  return [
    { name: 'invalid UTF-8', message: { key: 'k', value: invalidUtf8 }, reason: 'malformed_json' },
    { name: 'an array', message: { key: 'k', value: `[1, "${MARKER}"]` }, reason: 'not_an_object' },
    { name: 'a string', message: { key: 'k', value: `"${MARKER}"` }, reason: 'not_an_object' },
    { name: 'a number', message: { key: 'k', value: '42' }, reason: 'not_an_object' },
    { name: 'only whitespace', message: { key: 'k', value: ' \n\t ' }, reason: 'empty_payload' },
    { name: 'a tombstone', message: { key: 'k', value: null }, reason: 'tombstone' },
    { name: 'wrong type', message: { key: 'k', value: good('wrong', { seq: MARKER }) }, reason: 'type_mismatch' },
    { name: 'missing id', message: { key: 'k', value: JSON.stringify({ seq: 1, note: MARKER, date_col: DAY }) }, reason: 'missing_field' },
    { name: 'null day', message: { key: 'k', value: good('nullday', { date_col: null }) }, reason: 'no_day' },
    { name: 'unparseable day', message: { key: 'k', value: good('badday', { date_col: MARKER }) }, reason: 'no_day' },
    { name: 'far-future day', message: { key: 'k', value: good('future', { date_col: '2999-01-01' }) }, reason: 'day_out_of_range' },
    { name: '5,000-deep array', message: { key: 'k', value: nested(5000) }, reason: 'not_an_object' },
    { name: '5,000-deep value of a column', message: { key: 'k', value: `{"id":"deep-bad","note":${nestedObject(5000)},"date_col":"${DAY}"}` }, reason: 'type_mismatch' },
    { name: '5,000-deep unknown field', message: { key: 'k', value: `{"id":"deep-ok","extra":${nestedObject(5000)},"date_col":"${DAY}"}` }, reason: null },
    { name: 'no key into a NOT NULL key column', message: { value: good('keyless') }, reason: 'no_key' },
    { name: 'a key that is not UTF-8', message: { key: Buffer.from([0xc3, 0x28]), value: good('binkey') }, reason: 'key_not_utf8' },
    { name: '1 MB valid', message: { key: 'k', value: good('big-ok', { note: 'v'.repeat(MB) }) }, reason: null },
    { name: '1 MB invalid', message: { key: 'k', value: good('big-bad', { seq: `${MARKER}${'x'.repeat(MB)}` }) }, reason: 'type_mismatch' },
    { name: 'epoch milliseconds in a timestamp column', message: { key: 'k', value: good('epoch-ms', { at: Date.UTC(2026, 10, 23, 12, 0, 0, 123) }) }, reason: null },
  ];
}

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

test('[integration] every hostile payload mixed into a large run is a dead letter with its reason; every good message lands', async (t) => {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_hostile');
  await createTopic(BROKERS, topic, 3);
  // An empty value, kept empty by Kafka's Java client, in a topic of its own (offset 0).
  const emptyTopic = uniqueName('kdr_empty');
  await createTopic(BROKERS, emptyTopic, 1);
  produceWithJavaClient(BROKERS, emptyTopic, ['']);
  // 20,000 good messages on partition 0, each hostile one every 1,000 of them.
  const cases = hostile();
  const messages: OutgoingMessage[] = [];
  const expectedIds: string[] = [];
  const expectedDead: Array<[string, number, string]> = [[emptyTopic, 0, 'empty_payload']];
  const offsetOf = new Map<string, number>();
  for (let i = 0; i < 20_000; i += 1) {
    const hostileCase = i % 1000 === 500 ? cases[(i - 500) / 1000] : undefined;
    if (hostileCase) {
      offsetOf.set(hostileCase.name, messages.length);
      if (hostileCase.reason === null) expectedIds.push(String(JSON.parse(String(hostileCase.message.value)).id));
      else expectedDead.push([topic, messages.length, hostileCase.reason]);
      messages.push({ ...hostileCase.message, partition: 0 });
    }
    expectedIds.push(`g${i}`);
    messages.push({ key: `k${i % 7}`, value: good(`g${i}`, { seq: i }), partition: 0 });
  }
  t.is(expectedDead.length - 1 + expectedIds.length - 20_000, cases.length, 'every case is in the run');
  await produceMessages(BROKERS, topic, messages);
  const config = testConfig({
    topics: [topic, emptyTopic],
    group: uniqueName('kdr_group'),
    tablePath: table,
    batchSize: 1_000_000,
    batchInterval: 3600,
    extra: { delta: { kafka_metadata: { key: 'kkey' } } },
  });
  const run = runCli(['--config', writeConfig(dir, config), '--until-caught-up']);
  t.is(run.status, 0, run.stderr.slice(-3000));

  const rows = readTable(table).rows;
  t.deepEqual(rows.map((r) => String(r.id)).sort(), expectedIds.sort());
  const bigOk = rows.find((r) => r.id === 'big-ok');
  t.is(String(bigOk?.note).length, MB);
  t.is(rows.find((r) => r.id === 'epoch-ms')?.at, '2026-11-23T12:00:00.123000+00:00');

  const dead = readTable(`${table}__dead_letters`).rows.sort((a, b) => String(a.topic).localeCompare(String(b.topic)) || Number(a.offset) - Number(b.offset));
  t.deepEqual(
    dead.map((d) => [d.topic, Number(d.offset), d.reason]),
    expectedDead.sort((a, b) => a[0].localeCompare(b[0]) || a[1] - b[1]),
  );
  for (const d of dead) t.true(String(d.detail).length <= 1024, `detail of ${String(d.reason)} is bounded`);
  const bigBad = offsetOf.get('1 MB invalid') ?? -1;
  const sent = Buffer.from(messages[bigBad]?.value ?? '');
  const kept = dead.find((d) => d.topic === topic && Number(d.offset) === bigBad)?.payload;
  t.is(sha(Buffer.from(String(kept), 'hex')), sha(sent), 'the 1 MB dead letter keeps its whole payload');
  t.is(dead.find((d) => d.reason === 'tombstone')?.payload, null, 'a tombstone has no payload, not an empty one');
  t.is(dead.find((d) => d.topic === emptyTopic)?.payload, '', 'an empty value is kept empty');

  // One WARN line per reason and flush with its count (one flush here); no payload at INFO.
  const output = `${run.stdout}\n${run.stderr}`;
  t.false(output.includes(MARKER), 'no hostile value in the log');
  const count = (pairs: Array<[string, number]>) => {
    const counts = new Map<string, number>();
    for (const [what, n] of pairs) counts.set(what, (counts.get(what) ?? 0) + n);
    return [...counts.entries()].sort();
  };
  const lines = output.split('\n').filter((l) => l.includes('"msg":"messages sent to the dead-letter sink"'));
  const logged = lines.map((l) => JSON.parse(l) as { topic: string; reason: string; count: number });
  const expectedCounts = count(expectedDead.map(([t, , reason]) => [`${t} ${reason}`, 1]));
  t.deepEqual(count(logged.map((l) => [`${l.topic} ${l.reason}`, l.count])), expectedCounts);
  t.is(logged.length, expectedCounts.length, 'one line per topic and reason');
  // Nothing else at WARN or ERROR: not the kernel's "No files in log segment" when the
  // dead-letter table is created, nor delta-rs's skipped statistics of its binary columns.
  const alarms = output.split('\n').filter((l) => /"level":"(warn|error)"/.test(l) && !l.includes('"msg":"messages sent to the dead-letter sink"'));
  t.deepEqual(alarms, []);
});

test('[integration] a keyless message gives a nullable key column null; an empty key stays empty', async (t) => {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, [['id', 'string', false], ['kkey', 'string', true], ['date_col', 'string', false]], ['date_col']);
  const topic = uniqueName('kdr_keys');
  await createTopic(BROKERS, topic, 1);
  const messages: OutgoingMessage[] = [];
  for (let i = 0; i < 600; i += 1) {
    const key = [undefined, '', `key-${i}`][i % 3];
    messages.push({ ...(key === undefined ? {} : { key }), value: JSON.stringify({ id: `m${i}`, date_col: DAY }) });
  }
  await produceMessages(BROKERS, topic, messages);
  const config = testConfig({ topics: [topic], group: uniqueName('kdr_group'), tablePath: table, extra: { delta: { kafka_metadata: { key: 'kkey' } } } });
  const run = runCli(['--config', writeConfig(dir, config), '--until-caught-up']);
  t.is(run.status, 0, run.stderr.slice(-3000));
  const rows = readTable(table).rows.sort((a, b) => Number(String(a.id).slice(1)) - Number(String(b.id).slice(1)));
  t.deepEqual(
    rows.map((r) => r.kkey),
    messages.map((m) => (m.key === undefined ? null : String(m.key))),
  );
});

test('[integration] a Kafka dead-letter topic gets a 1 MB dead letter whole, and one it refuses cut, once, with an ERROR', async (t) => {
  // The second topic refuses records over 20 kB: its dead letter is cut, not a crash loop.
  for (const limit of [undefined, '20000']) {
    const deadTopic = uniqueName('kdr_dead');
    await createTopic(BROKERS, deadTopic, 1, limit === undefined ? {} : { 'max.message.bytes': limit });
    const dir = tempDir();
    const table = join(dir, 'events');
    createTableWithPython(table, [['id', 'string', false], ['seq', 'long', true], ['date_col', 'string', false]], ['date_col']);
    const topic = uniqueName('kdr_big');
    await createTopic(BROKERS, topic, 1);
    // Random text: lz4 does not shrink it under the small topic's limit.
    const junk = limit === undefined ? 'y'.repeat(MB) : randomBytes(60_000).toString('base64');
    const bad = good('bad', { seq: `${MARKER}${junk}` });
    await produceMessages(BROKERS, topic, [
      { key: 'a', value: good('before') },
      { key: 'b', value: bad },
      { key: 'c', value: good('after') },
    ]);
    const config = testConfig({ topics: [topic], group: uniqueName('kdr_group'), tablePath: table, extra: { dead_letter: { kind: 'kafka', topic: deadTopic } } });
    const run = runCli(['--config', writeConfig(dir, config), '--until-caught-up']);
    t.is(run.status, 0, run.stderr.slice(-3000));
    t.deepEqual(readTable(table).rows.map((r) => r.id).sort(), ['after', 'before']);
    const [dead] = await readTopic(BROKERS, deadTopic, 1);
    t.like(dead?.headers, { 'kdr.offset': '1', 'kdr.reason': 'type_mismatch' });
    t.true((dead?.headers['kdr.detail'] ?? '').length <= 1024);
    const output = `${run.stdout}\n${run.stderr}`;
    t.false(output.includes(MARKER), 'no payload in the log');
    const errors = output.split('\n').filter((l) => l.includes('"level":"error"'));
    if (limit === undefined) {
      t.is(sha(dead?.value ?? Buffer.alloc(0)), sha(Buffer.from(bad)));
      t.is(dead?.headers['kdr.payload_truncated'], undefined);
      t.deepEqual(errors, []);
    } else {
      t.is(dead?.headers['kdr.payload_truncated'], String(Buffer.byteLength(bad)));
      t.true(Buffer.from(bad).subarray(0, dead?.value?.length).equals(dead?.value ?? Buffer.alloc(1)), 'a prefix of the payload');
      t.is(errors.length, 1, errors.join('\n'));
      t.regex(errors[0] ?? '', /max\.message\.bytes/);
    }
  }
});
