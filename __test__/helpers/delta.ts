/** The tests' independent view of Delta tables: Python's deltalake (not our Rust writer). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const READER = fileURLToPath(new URL('./delta_reader.py', import.meta.url));

/** Storage options for object-store tables, as delta-rs takes them. */
export type StorageOptions = Record<string, string>;

function python<T>(args: string[], storage: StorageOptions = {}): T {
  const env = { ...process.env, KDR_STORAGE_OPTIONS: JSON.stringify(storage) };
  const out = execFileSync('python3', [READER, ...args], { encoding: 'utf8', maxBuffer: 1 << 30, env });
  return JSON.parse(out) as T;
}

/** A table as Python's deltalake reads it. */
export interface TableRead {
  version: number;
  partition_columns: string[];
  files: number;
  commits: number;
  operations: string[];
  rows: Array<Record<string, unknown>>;
}

/** Reads every row of a table. */
export function readTable(path: string, storage: StorageOptions = {}): TableRead {
  return python<TableRead>(['read', path], storage);
}

/** The txn versions recorded for app ids (null where none). */
export function txnVersions(path: string, appIds: string[], storage: StorageOptions = {}): Record<string, number | null> {
  return python(['txn', path, ...appIds], storage);
}

/** Creates an empty table: columns as [name, type, nullable]. */
export function createTableWithPython(
  path: string,
  columns: Array<[string, string, boolean]>,
  partitionBy: string[],
  properties: Record<string, string> = {},
  storage: StorageOptions = {},
): void {
  python(['create', path, JSON.stringify(columns), partitionBy.join(','), JSON.stringify(properties)], storage);
}

/** Records a txn version for an app id with an empty commit, as another writer would. */
export function setTxnWithPython(path: string, appId: string, version: number): void {
  python(['set-txn', path, appId, String(version)]);
}

/** Sets a table property, as another writer would. */
export function setPropertyWithPython(path: string, key: string, value: string): void {
  python(['set-property', path, key, value]);
}

/** Adds a nullable column (a Delta primitive type name, e.g. `string`), as another writer would. */
export function addColumnWithPython(path: string, name: string, type: string): void {
  python(['add-column', path, name, type]);
}

/** The last checkpoint of a local table: its version and the txn versions its Parquet file holds. */
export function lastCheckpoint(path: string): { version: number; txns: Record<string, number> } {
  return python(['checkpoint', path]);
}

/** Compacts the small files, as another writer's optimize would. */
export function compactWithPython(path: string): { removed: number; added: number } {
  return python(['compact', path]);
}

/** The data files of the newest version, relative to the table's root, sorted. */
export function activeFiles(path: string): string[] {
  return python(['files', path]);
}

/** The table's commits, newest first, as Python reads its history. */
export function tableHistory(path: string): Array<{ version: number; operation: string }> {
  return python(['history', path]);
}

/** The table's schema (`[name, type, nullable]` in order), partition columns and properties, as Python reads them. */
export function describeTable(path: string): { columns: Array<[string, string, boolean]>; partition_columns: string[]; configuration: Record<string, string> } {
  return python(['describe', path]);
}

/** Data files of the newest version per day partition (`<column>=<day>/...`), as Python lists them. */
export function filesPerDay(path: string, column = 'date_col'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const file of activeFiles(path)) {
    const match = new RegExp(`(?:^|/)${column}=([^/]+)/`).exec(file);
    const day = match?.[1] ?? '';
    out[day] = (out[day] ?? 0) + 1;
  }
  return out;
}

/** Deletes the rows matching a SQL predicate, as another writer would. */
export function deleteWithPython(path: string, predicate: string): void {
  python(['delete', path, predicate]);
}

/** Appends rows, as another writer would. */
export function appendWithPython(path: string, rows: Array<Record<string, unknown>>): void {
  const text = JSON.stringify(rows);
  if (text.length < 100_000) {
    python(['append', path, text]);
    return;
  }
  // Large row sets go through a file: an argument that long exceeds the OS limit.
  const file = join(mkdtempSync(join(tmpdir(), 'kdr-rows-')), 'rows.json');
  writeFileSync(file, text);
  python(['append', path, `@${file}`]);
}

/** The sample schema used by most tests (the partition column last). */
export const EVENT_COLUMNS: Array<[string, string, boolean]> = [
  ['id', 'string', false],
  ['seq', 'long', true],
  ['amount', 'double', true],
  ['note', 'string', true],
  ['date_col', 'string', false],
];
