/**
 * `kafka.format: debezium` against the real broker: a captured-shape stream of a Postgres
 * connector's change events (snapshot reads, inserts, updates, deletes each followed by its
 * tombstone, a truncate, a message that is not an event), replayed in small flushes and in two
 * runs, with staged changes spilled to disk, leaves the table equal to the source's final state, computed here by applying the same
 * events to a map. The table is read back by Python deltalake.
 */
import test from 'ava';
import { join } from 'node:path';
import { Pipeline, parseConfig } from '../ts/index.js';
import { createTopic, produceMessages, type OutgoingMessage } from '../ts/tools/kafka-admin.js';
import { createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, farAwayDailyTime, tempDir, testConfig, uniqueName } from './helpers/env.js';
import { until } from './helpers/faults.js';

const COLUMNS: Array<[string, string, boolean]> = [
  ['id', 'long', false],
  ['name', 'string', true],
  ['email', 'string', true],
  ['signup_day', 'string', false],
];
const PARTITIONS = 3;

interface Customer {
  id: number;
  name: string | null;
  email: string | null;
  signup_day: string;
}

/** A deterministic pseudo-random sequence (xorshift), so a failure replays the same events. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/**
 * The source database and the events its connector emits: every change is applied to `rows`
 * and produced as the connector would, on the partition of its key.
 */
class Source {
  readonly rows = new Map<number, Customer>();
  readonly messages: OutgoingMessage[] = [];
  #lsn = 1000;
  #nextId = 1;
  constructor(readonly topic: string) {}

  #emit(op: 'r' | 'c' | 'u' | 'd', before: Customer | null, after: Customer | null, ts: number): void {
    const id = (after ?? before)?.id ?? 0;
    this.#lsn += 8;
    const envelope = {
      before,
      after,
      source: { version: '2.7.3.Final', connector: 'postgresql', name: 'shop', ts_ms: ts - 3, snapshot: op === 'r' ? 'true' : 'false', db: 'shop', schema: 'public', table: 'customers', txId: this.#lsn / 8, lsn: this.#lsn },
      op,
      ts_ms: ts,
      transaction: null,
    };
    // Odd keys come with the JSON converter's schema wrapping, even ones bare (schemas.enable=false).
    const value = id % 2 === 1 ? { schema: { type: 'struct', optional: false, name: 'shop.public.customers.Envelope' }, payload: envelope } : envelope;
    const key = JSON.stringify({ id });
    this.messages.push({ key, value: JSON.stringify(value), partition: id % PARTITIONS });
    if (op === 'd') this.messages.push({ key, value: null, partition: id % PARTITIONS });
  }

  snapshot(count: number, ts: number): void {
    for (let i = 0; i < count; i += 1) this.insert(ts, 'r');
  }

  insert(ts: number, op: 'r' | 'c' = 'c'): void {
    const id = this.#nextId++;
    const row: Customer = { id, name: `customer ${id}`, email: id % 5 === 0 ? null : `c${id}@example.com`, signup_day: `2026-11-${String(10 + (id % 3)).padStart(2, '0')}` };
    this.rows.set(id, row);
    this.#emit(op, null, row, ts);
  }

  update(id: number, ts: number, version: number): void {
    const before = this.rows.get(id);
    if (!before) return;
    const after = { ...before, name: `customer ${id} v${version}`, email: version % 4 === 0 ? null : `c${id}.v${version}@example.com` };
    this.rows.set(id, after);
    this.#emit('u', before, after, ts);
  }

  delete(id: number, ts: number): void {
    const before = this.rows.get(id);
    if (!before) return;
    this.rows.delete(id);
    this.#emit('d', before, null, ts);
  }

  /** Random inserts, updates and deletes of what exists. */
  churn(changes: number, seed: number, ts: number): void {
    const next = random(seed);
    for (let i = 0; i < changes; i += 1) {
      const ids = [...this.rows.keys()];
      const pick = ids[Math.floor(next() * ids.length)] ?? 0;
      const roll = next();
      if (roll < 0.25 || ids.length === 0) this.insert(ts + i);
      else if (roll < 0.8) this.update(pick, ts + i, i);
      else this.delete(pick, ts + i);
    }
  }

  expected(): Array<[number, string | null, string | null, string]> {
    return [...this.rows.values()].map((r) => [r.id, r.name, r.email, r.signup_day] as [number, string | null, string | null, string]).sort((a, b) => a[0] - b[0]);
  }
}

function tableRows(table: string): Array<[number, string | null, string | null, string]> {
  return readTable(table)
    .rows.map((r) => [Number(r.id), r.name, r.email, r.signup_day] as [number, string | null, string | null, string])
    .sort((a, b) => a[0] - b[0]);
}

/** An empty customers table and a topic with a source's snapshot and first changes (not produced yet). */
async function replayFixture(prefix: string, snapshot: number, changes: number, seed: number) {
  const table = join(tempDir(), 'customers');
  createTableWithPython(table, COLUMNS, ['signup_day']);
  const topic = uniqueName(prefix);
  await createTopic(BROKERS, topic, PARTITIONS);
  const source = new Source(topic);
  const ts = Date.parse('2026-11-20T08:00:00Z');
  source.snapshot(snapshot, ts);
  source.churn(changes, seed, ts + 1_000);
  return { table, topic, source, ts };
}

test('[integration] a Debezium replay of inserts, updates and deletes leaves the table equal to the source', async (t) => {
  const { table, topic, source, ts } = await replayFixture('kdr_debezium', 40, 400, 7);
  // A truncate and a message that is not an event: dead letters, the partition goes on.
  source.messages.push({ key: '{"id":0}', value: JSON.stringify({ op: 't', ts_ms: ts, before: null, after: null }), partition: 0 });
  source.messages.push({ key: '{"id":0}', value: 'not json at all', partition: 0 });
  source.churn(100, 11, ts + 5_000);
  await produceMessages(BROKERS, topic, source.messages);

  const group = uniqueName('kdr_group');
  const settings = {
    topics: [topic],
    group,
    tablePath: table,
    partitionColumn: 'signup_day',
    batchSize: 100,
    // A small memory cap: staged changes (their delete flags with them) go through spill files.
    extra: { kafka: { format: 'debezium', max_poll_records: 50 }, delta: { mode: 'MERGE', merge_keys: ['id'] }, buffer: { max_memory: '16KiB' } },
  };
  const first = await new Pipeline(parseConfig(testConfig(settings)), { untilCaughtUp: true }).run();
  t.deepEqual(tableRows(table), source.expected());
  t.true(first.flushes >= 3, `the replay took ${first.flushes} flushes`);

  // More changes later, to rows the table holds: a second run applies them.
  const already = source.messages.length;
  source.churn(200, 23, ts + 9_000);
  for (const id of [...source.rows.keys()].slice(0, 5)) source.delete(id, ts + 20_000);
  await produceMessages(BROKERS, topic, source.messages.slice(already));
  const pipeline = new Pipeline(parseConfig(testConfig(settings)), { untilCaughtUp: true });
  await pipeline.run();
  t.deepEqual(tableRows(table), source.expected());

  const dead = readTable(`${table}__dead_letters`).rows.map((r) => [r.partition, r.reason, String(r.detail).slice(0, 12)]);
  t.deepEqual(dead.sort(), [
    [0, 'bad_change_event', 'op "t" (a tr'],
    [0, 'bad_change_event', 'the payload '],
  ]);
  // Only the second run's tombstones are counted by its metrics.
  const tombstones = source.messages.slice(already).filter((m) => m.value === null).length;
  const filtered = await pipeline.metrics.registry.getSingleMetric('kafka_delta_messages_filtered_total')?.get();
  t.is(filtered?.values.reduce((sum, v) => sum + v.value, 0), tombstones);
});

test('[integration] with the day from ts_ms a delete removes the row of its own day', async (t) => {
  const table = join(tempDir(), 'customers');
  createTableWithPython(table, [...COLUMNS, ['change_day', 'string', false]], ['change_day']);
  const topic = uniqueName('kdr_debezium_day');
  await createTopic(BROKERS, topic, 1);
  const row = (version: string) => ({ id: 1, name: version, email: null, signup_day: '2026-11-01' });
  const event = (op: string, before: object | null, after: object | null, day: string) =>
    JSON.stringify({ before, after, op, ts_ms: Date.parse(`${day}T12:00:00Z`) });
  await produceMessages(BROKERS, topic, [
    { value: event('c', null, row('a'), '2026-11-20'), partition: 0 },
    { value: event('u', row('a'), row('b'), '2026-11-20'), partition: 0 },
    { value: event('u', row('b'), row('c'), '2026-11-21'), partition: 0 },
    { value: event('d', row('c'), null, '2026-11-21'), partition: 0 },
    { value: null, partition: 0 },
  ]);
  const config = testConfig({
    topics: [topic],
    group: uniqueName('kdr_group'),
    tablePath: table,
    partitionColumn: 'change_day',
    extra: { kafka: { format: 'debezium' }, delta: { mode: 'MERGE', merge_keys: ['id'], partition_source: { kind: 'change_time' } } },
  });
  const summary = await new Pipeline(parseConfig(config), { untilCaughtUp: true }).run();
  t.deepEqual(readTable(table).rows.map((r) => [r.id, r.name, r.change_day]), [[1, 'b', '2026-11-20']]);
  t.like(summary, { messages: 5, deadLetters: 0 });
});

test('[integration] changes staged to disk at a stop before the scheduled flush keep their deletes across the restart', async (t) => {
  const { table, topic, source } = await replayFixture('kdr_debezium_persist', 30, 300, 5);
  await produceMessages(BROKERS, topic, source.messages);
  const rows = source.messages.filter((m) => m.value !== null).length;

  const config = testConfig({
    topics: [topic],
    group: uniqueName('kdr_group'),
    tablePath: table,
    partitionColumn: 'signup_day',
    extra: {
      kafka: { format: 'debezium', max_poll_records: 50 },
      delta: { mode: 'MERGE', merge_keys: ['id'] },
      batch: { schedule: farAwayDailyTime(), timezone: 'UTC', batch_interval: undefined, batch_size: undefined },
      buffer: { max_memory: '16KiB' },
    },
  });
  const staging = new Pipeline(parseConfig(config));
  const running = staging.run();
  const staged = async () => {
    const values = (await staging.metrics.registry.getSingleMetric('kafka_delta_staged_records')?.get())?.values ?? [];
    return values.reduce((sum, v) => sum + v.value, 0) === rows;
  };
  await until(`${rows} rows are staged`, staged, 60_000, 100);
  await staging.stop();
  await running;
  t.is(readTable(table).version, 0, 'nothing was committed at the stop');

  const restart = await new Pipeline(parseConfig(config), { untilCaughtUp: true }).run();
  t.deepEqual(tableRows(table), source.expected());
  t.is(restart.messages, 0, 'every change came back from the staging directory, none from Kafka');
});
