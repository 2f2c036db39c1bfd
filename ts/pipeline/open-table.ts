/**
 * Opening the target table on start, creating it first when `delta.create_if_missing` says so.
 */
import type { Config } from '../config/index.js';
import { TableNotFoundError } from '../errors.js';
import type { Logger } from '../log.js';
import { DeltaTarget, createTable } from '../table.js';

/** Opens the configured table; a missing one is created from `delta.schema` when allowed. */
export async function openOrCreateTarget(config: Config, log: Logger): Promise<DeltaTarget> {
  const { delta } = config;
  const open = () => DeltaTarget.open(delta.tablePath, delta.storageOptions, delta.storageRetry);
  try {
    return await open();
  } catch (error) {
    if (!(error instanceof TableNotFoundError) || !delta.createIfMissing || delta.schema === undefined) throw error;
  }
  try {
    const created = await createTable(delta.tablePath, delta.schema.columns, [delta.partitionColumn], delta.storageOptions, delta.schema.properties);
    log.info('table created', { table: created.uri, version: created.version, columns: created.columns.length, partitionedBy: delta.partitionColumn });
  } catch (error) {
    // Instances starting at once race to commit version 0: the log takes one, and the others
    // find a table there and open it (it is then checked against the configuration as any is).
    try {
      const target = await open();
      log.info('table created by another writer meanwhile; opening it', { table: target.uri });
      return target;
    } catch {
      throw error;
    }
  }
  return open();
}
