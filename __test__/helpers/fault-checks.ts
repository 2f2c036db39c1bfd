/** What the fault-injection suites share: sizes, the expected rows and dead letters, and exact comparisons. */
import type { ExecutionContext } from 'ava';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OutgoingMessage } from '../../ts/tools/kafka-admin.js';
import { diffRows, faultSeed, noDiff, produceTracked, type Delivered, type RowDiff, type Rng } from './faults.js';
import { EVENT_COLUMNS, readTable } from './delta.js';

export const FULL = process.env.KDR_FAULTS_FULL === '1';
export const SEED = faultSeed();

/** Sizes: the default for CI, KDR_FAULTS_FULL=1 for a long soak. */
export const SIZE = FULL
  ? { kills: 50, insertChunk: 6000, dedupKeysPerChunk: 3000, mergeKeys: 10_000, mergeChunk: 6000, restartMessages: 160_000, fleetSeconds: 150, fleetRate: 2000 }
  : { kills: 20, insertChunk: 6000, dedupKeysPerChunk: 2500, mergeKeys: 4000, mergeChunk: 6000, restartMessages: 60_000, fleetSeconds: 60, fleetRate: 2000 };

export const DAYS = ['2026-11-21', '2026-11-22'];
export const PARTITIONS = 3;
export const DEBUG = '--logging.level=DEBUG';

export type Row = Record<string, unknown>;

/** A produced message and what it must become: a row, or a dead letter with a reason. */
export interface Produced {
  message: OutgoingMessage;
  row?: Row;
  deadReason?: string;
}

/** What the dead-letter table must hold: each (topic, partition, offset) once, with its reason. */
export interface DeadLetterRow {
  topic: string;
  partition: number;
  offset: number;
  reason: string;
}

export const deadKey = (r: Row) => `${String(r.topic)}/${String(r.partition)}/${String(r.offset)}`;

/** A message that cannot become a row, of one of three kinds, with the reason it gets. */
export function badMessage(rng: Rng, seq: number, partition: number): Produced {
  const kind = rng.pick(['malformed_json', 'type_mismatch', 'not_an_object'] as const);
  const value =
    kind === 'malformed_json'
      ? `{"id": "bad-${seq}", "seq": `
      : kind === 'type_mismatch'
        ? JSON.stringify({ id: `tm-${seq}`, amount: 'many', date_col: DAYS[0] }) // amount is a double in both schemas
        : `[${seq}, "not an object"]`;
  return { message: { key: `bad${seq}`, value, partition }, deadReason: kind };
}

/** Produces, checks each message landed in its partition, and records the expected dead letters. */
export async function produceAll(brokers: string, topic: string, produced: readonly Produced[], dead: DeadLetterRow[]): Promise<Delivered[]> {
  const delivered = await produceTracked(brokers, topic, produced.map((p) => p.message));
  produced.forEach((p, i) => {
    const d = delivered[i] as Delivered;
    if (p.message.partition !== undefined && d.partition !== p.message.partition) throw new Error(`message ${i} landed in partition ${d.partition}`);
    if (p.deadReason) dead.push({ topic, partition: d.partition, offset: d.offset, reason: p.deadReason });
  });
  return delivered;
}

/** One line saying how a diff came out (logged whatever the assertion says). */
export function summary(what: string, d: RowDiff): string {
  return (
    `${what}: ${d.actualRows} rows read, ${d.expectedRows} expected; missing ${d.missing.count}, duplicated ${d.duplicated.count}, ` +
    `unexpected ${d.unexpected.count}, differing ${d.differing.count}`
  );
}

/** The exact comparison of the table with the expected rows. */
export function assertRows(t: ExecutionContext, table: string, expected: readonly Row[], keyOf: (r: Row) => string, what: string): void {
  const rows = readTable(table).rows;
  const d = diffRows(rows, expected, keyOf);
  t.log(summary('table', d));
  t.deepEqual(d, noDiff(expected.length), what);
}

/** The dead-letter table holds exactly the expected (topic, partition, offset), each once, with its reason. */
export function assertDeadLetters(t: ExecutionContext, table: string, expected: readonly DeadLetterRow[]): void {
  const path = `${table}__dead_letters`;
  if (!existsSync(path)) {
    t.fail(`no dead-letter table at ${path}; expected ${expected.length} dead letters`);
    return;
  }
  const rows = readTable(path).rows.map((r) => ({ topic: r.topic, partition: r.partition, offset: r.offset, reason: r.reason }));
  const d = diffRows(rows, expected.map((e) => ({ ...e })), deadKey);
  t.log(summary('dead letters', d));
  t.deepEqual(d, noDiff(expected.length), 'the dead-letter table holds exactly the bad messages, each once');
}

/** Spill files (.arrow) under a staging root, as "<subdir>/<name>". */
export function spillFiles(root: string): Set<string> {
  const out = new Set<string>();
  if (!existsSync(root)) return out;
  for (const sub of readdirSync(root)) {
    try {
      for (const f of readdirSync(join(root, sub))) if (f.endsWith('.arrow')) out.add(`${sub}/${f}`);
    } catch {
      // not a directory, or removed meanwhile
    }
  }
  return out;
}

/** Writes the output of a run that went wrong next to its table, for a look afterwards; returns the path. */
let kept = 0;
export function keep(dir: string, output: string): string {
  kept += 1;
  const path = join(dir, `run-${kept}.log`);
  writeFileSync(path, output);
  return path;
}

export const SPILLED = /"msg":"staged rows spilled to disk"/;
export const COMMITTED = /"msg":"flush committed"/;
export const STOPPED = /"msg":"pipeline stopped"/;

// ---------------------------------------------------------------------------------------------
// 1. kill -9 at random moments, in three modes

/** What a mode produces and expects. */
export interface Workload {
  readonly columns: Array<[string, string, boolean]>;
  readonly extra: Record<string, Record<string, unknown>>;
  /** A run flushes only once, at its end: the consolidation scope is the whole backlog. */
  readonly oneFlushPerRun: boolean;
  /** The next chunk to produce. */
  chunk(rng: Rng): Produced[];
  /** The rows the table must hold, given everything produced (in production order). */
  expected(produced: readonly Produced[]): Row[];
  keyOf(r: Row): string;
}

export const NOTE = 'n'.repeat(500);

/** INSERT: every good message is one row. */
export function insertWorkload(topic: string, chunkSize = SIZE.insertChunk): Workload {
  let seq = 0;
  return {
    columns: EVENT_COLUMNS,
    // ~4,000 rows fill 2 MiB: about one spill per flush of 5,000 rows.
    extra: { batch: { batch_interval: 1.5, batch_size: 5000 } },
    oneFlushPerRun: false,
    chunk(rng) {
      return Array.from({ length: chunkSize }, () => {
        const s = seq++;
        const partition = rng.int(0, PARTITIONS - 1);
        if (rng.chance(0.01)) return badMessage(rng, s, partition);
        const row = { id: `${topic}-${s}`, seq: s, amount: s / 10, note: `${s % 7}${NOTE}`, date_col: rng.pick(DAYS) };
        return { message: { key: `k${s % 17}`, value: JSON.stringify(row), partition }, row };
      });
    },
    expected: (produced) => produced.flatMap((p) => (p.row ? [p.row] : [])),
    keyOf: (r) => String(r.id),
  };
}
