/**
 * The dead letters staged since the last flush, counted per topic and reason, so the log says
 * once per flush and reason how many went to the sink (with the first one's coordinates) instead
 * of one WARN line per message. Details, which may quote a payload, are logged only at DEBUG.
 */
import type { Logger } from '../log.js';

interface Entry {
  topic: string;
  reason: string;
  count: number;
  partition: number;
  offset: number;
}

/** Counts of dead letters per topic and reason, drained by each flush. */
export class DeadLetterTally {
  #entries = new Map<string, Entry>();

  add(topic: string, reason: string, partition: number, offset: number): void {
    const id = `${topic}\u0000${reason}`;
    const entry = this.#entries.get(id);
    if (entry) entry.count += 1;
    else this.#entries.set(id, { topic, reason, count: 1, partition, offset });
  }

  /** Takes the counts so far; the next flush starts from zero. */
  drain(): Entry[] {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    return entries;
  }

  /** One WARN line per topic and reason with its count and the first dead letter's position. */
  static log(log: Logger, sink: string, entries: readonly Entry[]): void {
    for (const e of entries) {
      log.warn('messages sent to the dead-letter sink', {
        sink,
        topic: e.topic,
        reason: e.reason,
        count: e.count,
        firstPartition: e.partition,
        firstOffset: e.offset,
      });
    }
  }
}
