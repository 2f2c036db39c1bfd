/**
 * Exactly once at the native core, through the library API and without Kafka: which staged rows
 * a commit may write (ownership, spilled generations, the table's positions), dead letters
 * across a config change, and the table's properties changing under a running writer. Tables
 * are read back with Python's deltalake.
 */
import test from 'ava';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { join } from 'node:path';
import { DeltaTarget, UnsupportedTableError } from '../ts/index.js';
import { EVENT_COLUMNS, createTableWithPython, readTable, setPropertyWithPython, txnVersions } from './helpers/delta.js';
import { tempDir } from './helpers/env.js';
import { DAY, event, openStage, pack, range } from './helpers/stage.js';

const ids = (partition: number, from: number, to: number) => range(partition, from, to).map((m) => `p${partition}-${m.offset}`);

const appIds = (partitions: number[]) => partitions.map((p) => ({ topicIndex: 0, partition: p, appId: `t:${p}` }));

function newTable(): string {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  return table;
}

const sortedIds = (table: string) => readTable(table).rows.map((r) => String(r.id)).sort();

test('a revoked partition spilled after the revoke flush is never committed by its old owner', async (t) => {
  const table = newTable();
  // Every append spills (a 1-byte memory cap).
  const { target, stage } = await openStage(table, {});
  stage.assigned([0, 1].map((p) => ({ topicIndex: 0, partition: p, nextOffset: 0 })));
  await stage.append(pack([...range(0, 0, 99), ...range(1, 0, 99)]));
  // The flush on revoke commits both partitions up to 99.
  t.is((await target.commitRows(stage.take(), appIds([0, 1]), { maxAttempts: 3 })).rowsWritten, 200);
  // The consume loop goes on until the unassign: partition 1 spills once more, then is revoked.
  await stage.append(pack([...range(0, 100, 199), ...range(1, 100, 199)]));
  t.true(stage.spilledRows > 0, 'the rows after the revoke flush were spilled');
  await stage.forgetPartitions([{ topicIndex: 0, partition: 1, lastOffset: -1 }]);
  // Messages of partition 1 already fetched still arrive after the revoke.
  await stage.append(pack([...range(0, 200, 249), ...range(1, 200, 249)]));
  const segment = stage.take();
  t.deepEqual(segment.positions(), [{ topicIndex: 0, partition: 0, lastOffset: 249 }]);
  await target.commitRows(segment, appIds([0, 1]), { maxAttempts: 3 });
  t.deepEqual(sortedIds(table), [...ids(0, 0, 249), ...ids(1, 0, 99)].sort());
  t.deepEqual(txnVersions(table, ['t:0', 't:1']), { 't:0': 249, 't:1': 99 });
});

test('a partition revoked and assigned back is read again from the table without writing its stale spill twice', async (t) => {
  const table = newTable();
  const { target, stage } = await openStage(table, {});
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  await stage.append(pack(range(0, 0, 49)));
  await target.commitRows(stage.take(), appIds([0]), { maxAttempts: 3 });
  await stage.append(pack(range(0, 50, 99)));
  await stage.forgetPartitions([{ topicIndex: 0, partition: 0, lastOffset: -1 }]);
  // Nobody committed meanwhile: it comes back at the table's position and is read again.
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 50 }]);
  await stage.append(pack(range(0, 50, 120)));
  await target.commitRows(stage.take(), appIds([0]), { maxAttempts: 3 });
  t.deepEqual(sortedIds(table), ids(0, 0, 120).sort());
});

test('messages of a partition never assigned are not staged', async (t) => {
  const table = newTable();
  const { target, stage } = await openStage(table);
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  const result = await stage.append(pack([...range(0, 0, 9), ...range(5, 0, 9)]));
  t.is(result.stagedRows, 10);
  await target.commitRows(stage.take(), appIds([0, 5]), { maxAttempts: 3 });
  t.deepEqual(sortedIds(table), ids(0, 0, 9).sort());
});

test('a crash between the two commits of a flush, then a config change that makes more dead letters: every message lands in one table', async (t) => {
  const table = newTable();
  const deadPath = `${table}__dead_letters`;
  const dead = await DeltaTarget.openDeadLetters(deadPath);
  // Offsets 3 and 7 are not JSON; 5 has a field the table lacks (a dead letter only once
  // unknown fields are rejected).
  const messages = range(0, 0, 9).map((m) =>
    m.offset === 3 || m.offset === 7 ? { ...m, payload: 'not json' } : m.offset === 5 ? { ...m, payload: event('p0-5', { extra: 1 }) } : m,
  );
  const first = await openStage(table);
  first.stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  await first.stage.append(pack(messages));
  const crashed = first.stage.take();
  t.is(await dead.commitDeadLetters(crashed, appIds([0]), 3, first.target).then((r) => r.rowsWritten), 2);
  // ... and the rows' commit never happened. The operator now rejects unknown fields.
  const second = await openStage(table, undefined, true);
  second.stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  await second.stage.append(pack(messages));
  const replay = second.stage.take();
  t.is(await dead.commitDeadLetters(replay, appIds([0]), 3, second.target).then((r) => r.rowsWritten), 1, 'only offset 5 is new');
  await second.target.commitRows(replay, appIds([0]), { maxAttempts: 3 });
  // A second replay (a crash after the rows' commit, before Kafka's) adds nothing anywhere.
  t.is(await dead.commitDeadLetters(replay, appIds([0]), 3, second.target).then((r) => r.rowsWritten), 0);
  t.deepEqual(sortedIds(table), ['p0-0', 'p0-1', 'p0-2', 'p0-4', 'p0-6', 'p0-8', 'p0-9']);
  const letters = readTable(deadPath).rows.map((r) => [Number(r.offset), String(r.reason)]).sort((a, b) => Number(a[0]) - Number(b[0]));
  t.deepEqual(letters, [
    [3, 'malformed_json'],
    [5, 'unknown_field'],
    [7, 'malformed_json'],
  ]);
});

test('a table that starts expiring txn entries under a running writer stops its next commit, the rows table and the dead-letter table alike', async (t) => {
  for (const which of ['rows', 'dead_letters'] as const) {
    const table = newTable();
    const deadPath = `${table}__dead_letters`;
    const dead = await DeltaTarget.openDeadLetters(deadPath);
    const { target, stage } = await openStage(table);
    stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
    await stage.append(pack([...range(0, 0, 4), { partition: 0, offset: 5, payload: 'nope' }]));
    const segment = stage.take();
    setPropertyWithPython(which === 'rows' ? table : deadPath, 'delta.setTransactionRetentionDuration', 'interval 1 days');
    const commit = which === 'rows' ? target.commitRows(segment, appIds([0]), { maxAttempts: 3 }) : dead.commitDeadLetters(segment, appIds([0]), 3, target);
    const error = await t.throwsAsync(commit, { instanceOf: UnsupportedTableError });
    t.regex(error?.message ?? '', /delta\.setTransactionRetentionDuration/);
  }
});

type Strategy = 'last' | 'first' | 'merge';
interface Version {
  key: number;
  seq: number;
  amount: number | null;
  note: string | null;
}
interface Op {
  who: 'A' | 'B';
  what: 'read' | 'commit';
  size: number;
}

/** What one flush of these messages (offset order) writes: each key consolidated. */
function consolidated(messages: ReadonlyArray<Version & { offset: number }>, strategy: Strategy, orderBy: boolean): string[] {
  const groups = new Map<number, Array<Version & { offset: number }>>();
  for (const m of messages) groups.set(m.key, [...(groups.get(m.key) ?? []), m]);
  return [...groups.values()].map((group) => {
    const sorted = [...group].sort((a, b) => (orderBy && a.seq !== b.seq ? a.seq - b.seq : a.offset - b.offset));
    const winner = strategy === 'first' ? sorted[0] : sorted[sorted.length - 1];
    let row = { seq: winner?.seq ?? null, amount: winner?.amount ?? null, note: winner?.note ?? null };
    if (strategy === 'merge') {
      row = { seq: null, amount: null, note: null };
      for (const m of sorted) row = { seq: m.seq, amount: m.amount ?? row.amount, note: m.note ?? row.note };
    }
    return JSON.stringify({ id: `k${group[0]?.key}`, ...row });
  });
}

test('two owners of a partition, one spilling, committing interleaved parts: the table is what one flush per part gives (property)', async (t) => {
  const version = fc.record({
    key: fc.nat(3),
    seq: fc.nat(3),
    amount: fc.option(fc.nat(100), { nil: null }),
    note: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: null }),
  });
  const op = fc.record({ who: fc.constantFrom<'A' | 'B'>('A', 'B'), what: fc.constantFrom<'read' | 'commit'>('read', 'read', 'commit'), size: fc.integer({ min: 1, max: 12 }) });
  const cases = fc.record({
    versions: fc.array(version, { minLength: 8, maxLength: 40 }),
    strategy: fc.constantFrom<Strategy>('last', 'first', 'merge'),
    orderBy: fc.boolean(),
    ops: fc.array(op, { minLength: 4, maxLength: 14 }),
  });
  await fc.assert(
    fc.asyncProperty(cases, async ({ versions, strategy, orderBy, ops }) => {
      const messages = versions.map((v, offset) => ({ ...v, offset }));
      const table = newTable();
      const dedup = { keys: ['id'], strategy, orderBy: orderBy ? 'seq' : undefined };
      // A spills every append (the spilled rows used to be consolidated there); B does not.
      const members = { A: await openStage(table, {}), B: await openStage(table) };
      const read = { A: 0, B: 0 };
      const since = { A: 0, B: 0 };
      let recorded = -1;
      const expected: string[] = [];
      for (const m of Object.values(members)) m.stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
      const commit = async (who: 'A' | 'B') => {
        const part = messages.slice(since[who], read[who]);
        since[who] = read[who];
        if (part.length === 0) return;
        expected.push(...consolidated(part.filter((m) => m.offset > recorded), strategy, orderBy));
        recorded = Math.max(recorded, read[who] - 1);
        await members[who].target.commitRows(members[who].stage.take(), appIds([0]), { maxAttempts: 5, dedup });
      };
      for (const { who, what, size } of [...ops, { who: 'A', what: 'commit', size: 0 } as Op, { who: 'B', what: 'commit', size: 0 } as Op]) {
        if (what === 'commit') {
          await commit(who);
          continue;
        }
        const chunk = messages.slice(read[who], read[who] + size);
        if (chunk.length === 0) continue;
        read[who] += chunk.length;
        const payloads = chunk.map((m) => ({
          partition: 0,
          offset: m.offset,
          payload: JSON.stringify({ id: `k${m.key}`, seq: m.seq, amount: m.amount, note: m.note, date_col: DAY }),
        }));
        await members[who].stage.append(pack(payloads));
      }
      const rows = readTable(table).rows.map((r) => JSON.stringify({ id: r.id, seq: r.seq, amount: r.amount, note: r.note }));
      assert.deepStrictEqual(rows.sort(), expected.sort(), JSON.stringify({ strategy, orderBy, ops }));
    }),
    { numRuns: 30 },
  );
  t.pass();
});

test('a spilled generation of dead letters only still counts for the rows commit: the positions move past it', async (t) => {
  const table = newTable();
  const dead = await DeltaTarget.openDeadLetters(`${table}__dead_letters`);
  const { target, stage } = await openStage(table, {});
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  await stage.append(pack(range(0, 0, 4)));
  await target.commitRows(stage.take(), appIds([0]), { maxAttempts: 3 });
  // A run of bad messages fills a whole spill, then good ones follow.
  await stage.append(pack(range(0, 5, 9).map((m) => ({ ...m, payload: 'not json' }))));
  await stage.append(pack(range(0, 10, 19)));
  const segment = stage.take();
  t.is(await dead.commitDeadLetters(segment, appIds([0]), 3, target).then((r) => r.rowsWritten), 5);
  await target.commitRows(segment, appIds([0]), { maxAttempts: 3 });
  t.deepEqual(sortedIds(table), [...ids(0, 0, 4), ...ids(0, 10, 19)].sort());
  t.deepEqual(txnVersions(table, ['t:0']), { 't:0': 19 });
});
