/**
 * The rules `kafka.format` sets on other keys. Change events (`debezium`) update and delete
 * rows, so they are merged on the table's key, the latest change of a key wins, and deletes
 * come from the events themselves.
 */
import type { MessageFormat } from '../native.js';

/** What a message's value holds, from `kafka.format`. */
export const MESSAGE_FORMATS = ['json', 'debezium'] as const satisfies readonly MessageFormat[];

/**
 * Adds a problem for each key that contradicts the configured format. `raw` reads a key of the
 * document as written (undefined when absent); values that fail their own schema are reported
 * there, not here.
 */
export function formatProblems(raw: (path: string) => unknown, add: (key: string, message: string) => void): void {
  const text = (path: string) => {
    const value = raw(path);
    return typeof value === 'string' ? value.toLowerCase() : undefined;
  };
  const format = text('kafka.format') ?? 'json';
  const changeTime = text('delta.partition_source.kind') === 'change_time';
  if (format !== 'debezium') {
    if (changeTime) add('delta.partition_source.kind', 'change_time (a change event\'s ts_ms) needs kafka.format: debezium');
    return;
  }
  const because = 'with kafka.format: debezium';
  const mode = raw('delta.mode');
  if (typeof mode !== 'string' || mode.toUpperCase() !== 'MERGE') {
    add('delta.mode', `must be MERGE ${because} (change events update and delete rows by the table's key, delta.merge_keys)`);
  }
  const strategy = text('dedup.strategy');
  if (strategy !== undefined && strategy !== 'last') {
    add('dedup.strategy', `must be last ${because} (the latest change of a row is its state)`);
  }
  if (raw('delta.delete_when') !== undefined) add('delta.delete_when', `is not allowed ${because}: events with op d delete their row`);
  if (text('delta.schema_evolution') === 'add_columns') {
    add('delta.schema_evolution', `add_columns is not supported ${because}: declare the row image's columns in the table`);
  }
}
