/**
 * The one home of the storage retry defaults: `delta.storage_retry` in the config and
 * `DeltaTarget.open` without a policy both take them from here (the native core has none).
 */
import type { StorageRetryOptions } from './native.js';

/** Five minutes of retries per operation, waiting from 0.5 s, doubling up to 30 s. */
export const DEFAULT_STORAGE_RETRY: Readonly<StorageRetryOptions> = Object.freeze({
  budgetSeconds: 300,
  initialBackoffSeconds: 0.5,
  maxBackoffSeconds: 30,
});
