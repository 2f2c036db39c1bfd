/**
 * The Delta dead-letter sink: dead letters are committed to the dead-letter table with the
 * Kafka positions they cover, one commit per flush. Which ones are new is decided by the rows'
 * table's positions; those a crashed earlier flush already wrote here are looked up and not
 * written twice.
 */
import type { StagedSegment } from '../segment.js';
import type { DeltaTarget, PartitionAppId } from '../table.js';
import type { DeadLetterSink } from './sink.js';

/** Dead letters into a Delta table. */
export class DeltaDeadLetterSink implements DeadLetterSink {
  readonly #table: DeltaTarget;
  readonly #maxAttempts: number;

  constructor(table: DeltaTarget, maxAttempts: number) {
    this.#table = table;
    this.#maxAttempts = maxAttempts;
  }

  /** The dead-letter table. */
  get table(): DeltaTarget {
    return this.#table;
  }

  get description(): string {
    return this.#table.uri;
  }

  async deliver(segment: StagedSegment, appIds: readonly PartitionAppId[], rows: DeltaTarget): Promise<number> {
    if (segment.deadLetters === 0) return 0;
    const result = await this.#table.commitDeadLetters(segment, appIds, this.#maxAttempts, rows);
    return result.rowsWritten;
  }

  async close(): Promise<void> {}
}
