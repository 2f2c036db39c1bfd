/**
 * The library's `dedup` on Arrow IPC data (the same native code a flush runs), checked against a
 * small reference implementation written here, over random keys, orders and duplicates.
 */
import test from 'ava';
import fc from 'fast-check';
import { Float64, Int32, Table, Utf8, tableFromIPC, tableToIPC, vectorFromArray } from 'apache-arrow';
import { SchemaMismatchError, dedup, type DedupOptions } from '../ts/index.js';

interface Row {
  id: string | null;
  version: number | null;
  name: string | null;
  amount: number | null;
}
type Strategy = NonNullable<DedupOptions['strategy']>;

function toIpc(rows: readonly Row[]): Uint8Array {
  const table = new Table({
    id: vectorFromArray(rows.map((r) => r.id), new Utf8()),
    version: vectorFromArray(rows.map((r) => r.version), new Int32()),
    name: vectorFromArray(rows.map((r) => r.name), new Utf8()),
    amount: vectorFromArray(rows.map((r) => r.amount), new Float64()),
  });
  return tableToIPC(table, 'stream');
}

function fromIpc(bytes: Uint8Array): Row[] {
  return tableFromIPC(bytes)
    .toArray()
    .map((r: Row) => ({ id: r.id, version: r.version, name: r.name, amount: r.amount }));
}

/** The semantics, spelled out plainly: group by id, order by (version nulls first, arrival). */
function reference(rows: readonly Row[], strategy: Strategy, orderBy: 'version' | undefined): Row[] {
  const before = (a: number, b: number): number => {
    if (orderBy !== undefined) {
      const va = rows[a]?.version ?? null;
      const vb = rows[b]?.version ?? null;
      if (va !== vb) {
        if (va === null) return -1;
        if (vb === null) return 1;
        return va - vb;
      }
    }
    return a - b;
  };
  const groups = new Map<string, number[]>();
  const singles: number[][] = [];
  rows.forEach((row, i) => {
    if (row.id === null) singles.push([i]);
    else groups.set(row.id, [...(groups.get(row.id) ?? []), i]);
  });
  const members = [...groups.values(), ...singles].map((m) => [...m].sort(before));
  if (strategy !== 'merge') {
    const kept = members.map((m) => (strategy === 'last' ? m[m.length - 1] : m[0]) as number).sort((a, b) => a - b);
    return kept.map((i) => rows[i] as Row);
  }
  members.sort((a, b) => Math.min(...a) - Math.min(...b));
  const lastNonNull = <K extends keyof Row>(m: number[], key: K): Row[K] => {
    for (let k = m.length - 1; k >= 0; k -= 1) {
      const value = (rows[m[k] as number] as Row)[key];
      if (value !== null) return value;
    }
    return null as Row[K];
  };
  return members.map((m) => ({
    id: lastNonNull(m, 'id'),
    version: lastNonNull(m, 'version'),
    name: lastNonNull(m, 'name'),
    amount: lastNonNull(m, 'amount'),
  }));
}

const row: fc.Arbitrary<Row> = fc.record({
  id: fc.option(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'ü', ''), { freq: 8 }),
  version: fc.option(fc.integer({ min: 0, max: 4 }), { freq: 6 }),
  name: fc.option(fc.string({ maxLength: 3 }), { freq: 3 }),
  amount: fc.option(fc.integer({ min: -5, max: 5 }), { freq: 3 }),
});
/** Rows plus exact repeats of some of them (producer retries). */
const rowsWithRepeats = fc
  .tuple(fc.array(row, { minLength: 0, maxLength: 60 }), fc.array(fc.nat(), { maxLength: 10 }))
  .map(([rows, repeats]) => (rows.length === 0 ? rows : [...rows, ...repeats.map((k) => rows[k % rows.length] as Row)]));

test('dedup matches the reference for random keys, orders, nulls and repeats', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      rowsWithRepeats,
      fc.constantFrom<Strategy>('last', 'first', 'merge'),
      fc.constantFrom<'version' | undefined>('version', undefined),
      async (rows, strategy, orderBy) => {
        const out = fromIpc(await dedup(toIpc(rows), { keys: ['id'], orderBy, strategy }));
        t.deepEqual(out, reference(rows, strategy, orderBy));
      },
    ),
    { numRuns: 300 },
  );
});

test('dedup on two key columns keeps one row per distinct pair', async (t) => {
  const rows: Row[] = [
    { id: 'a', version: 1, name: 'x', amount: 1 },
    { id: 'a', version: 1, name: 'z', amount: 2 },
    { id: 'a', version: 2, name: 'x', amount: 3 },
    { id: 'b', version: 1, name: 'y', amount: 4 },
  ];
  const out = fromIpc(await dedup(toIpc(rows), { keys: ['id', 'version'] }));
  // (a,1) twice: the last one (amount 2) wins; (a,2) and (b,1) once each.
  t.deepEqual(
    out.map((r) => r.amount),
    [2, 3, 4],
  );
});

test('dedup names a key column the data does not have', async (t) => {
  const error = await t.throwsAsync(dedup(toIpc([{ id: 'a', version: 1, name: null, amount: null }]), { keys: ['user_id'] }));
  t.true(error instanceof SchemaMismatchError, String(error));
  t.regex(error?.message ?? '', /"user_id"/);
});
