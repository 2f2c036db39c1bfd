/** The tests' independent view of Delta tables: Python's deltalake (not our Rust writer). */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const READER = fileURLToPath(new URL('./delta_reader.py', import.meta.url));

function python<T>(args: string[]): T {
  const out = execFileSync('python3', [READER, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
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
export function readTable(path: string): TableRead {
  return python<TableRead>(['read', path]);
}

/** The txn versions recorded for app ids (null where none). */
export function txnVersions(path: string, appIds: string[]): Record<string, number | null> {
  return python(['txn', path, ...appIds]);
}

/** Creates an empty table: columns as [name, type, nullable]. */
export function createTableWithPython(
  path: string,
  columns: Array<[string, string, boolean]>,
  partitionBy: string[],
  properties: Record<string, string> = {},
): void {
  python(['create', path, JSON.stringify(columns), partitionBy.join(','), JSON.stringify(properties)]);
}

/** Records a txn version for an app id with an empty commit, as another writer would. */
export function setTxnWithPython(path: string, appId: string, version: number): void {
  python(['set-txn', path, appId, String(version)]);
}

/** The sample schema used by most tests (the partition column last). */
export const EVENT_COLUMNS: Array<[string, string, boolean]> = [
  ['id', 'string', false],
  ['seq', 'long', true],
  ['amount', 'double', true],
  ['note', 'string', true],
  ['date_col', 'string', false],
];
