/**
 * Consolidation for embedders: the native dedup a flush runs, applied to Arrow data a service
 * already holds (for example built with the `apache-arrow` package).
 */
import { dedupArrowIpc, type DedupOptions } from './native.js';
import { native } from './errors.js';

export type { DedupOptions };

/**
 * Consolidates the rows of an Arrow IPC stream so that each key appears once, exactly as a
 * flush does, on the native worker pool (never on the event loop).
 *
 * - `last` (default) keeps the row with the greatest `orderBy` value per key (nulls order first;
 *   ties and a missing `orderBy` go to the later row of the input), `first` the smallest
 *   (ties to the earlier row), and `merge` folds the rows of a key in that order, each column
 *   taking its last non-null value.
 * - Rows with a null in any key column are kept as they are.
 * - The result is an Arrow IPC stream with the input's schema; rows follow the input order of
 *   each key's kept row (its first row for `merge`).
 *
 * Throws `SchemaMismatchError` when a key or the order column is not in the schema.
 */
export function dedup(ipcStream: Uint8Array, options: DedupOptions): Promise<Buffer> {
  const input = Buffer.isBuffer(ipcStream)
    ? ipcStream
    : Buffer.from(ipcStream.buffer, ipcStream.byteOffset, ipcStream.byteLength);
  return native(dedupArrowIpc(input, { ...options, keys: [...options.keys] }));
}
