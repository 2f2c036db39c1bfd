/**
 * `--until-caught-up`: the high watermark of each partition is captured when it is assigned, and
 * the run ends once every assigned partition has been read up to it.
 */
import type { Message } from 'node-rdkafka';
import { OFFSET_BEGINNING, partitionKey, type KafkaSource, type PartitionRef, type PartitionStart } from '../kafka/consumer.js';

interface Progress {
  /** The offset to reach (the high watermark at assignment). */
  target: number;
  /** The next offset to read. */
  next: number;
}

/** Tracks each partition's progress towards the watermark seen when it was assigned. */
export class CaughtUpTracker {
  readonly #progress = new Map<string, Progress>();

  /** Captures the watermarks of newly assigned partitions and where they start. */
  async track(starts: readonly PartitionStart[], source: KafkaSource): Promise<void> {
    for (const s of starts) {
      const { low, high } = await source.watermarks(s);
      const next = s.offset >= 0 ? s.offset : s.offset === OFFSET_BEGINNING ? low : high;
      this.#progress.set(partitionKey(s.topic, s.partition), { target: high, next });
    }
  }

  /** Advances the partitions of a consumed batch. */
  consumed(messages: readonly Message[]): void {
    for (const m of messages) {
      const p = this.#progress.get(partitionKey(m.topic, m.partition));
      if (p && m.offset + 1 > p.next) p.next = m.offset + 1;
    }
  }

  /** A partition reported it has nothing more to read for now. */
  reachedEnd(eof: PartitionStart): void {
    const p = this.#progress.get(partitionKey(eof.topic, eof.partition));
    if (p && eof.offset > p.next) p.next = eof.offset;
  }

  /** Stops tracking revoked partitions. */
  forget(parts: readonly PartitionRef[]): void {
    for (const p of parts) this.#progress.delete(partitionKey(p.topic, p.partition));
  }

  /** Whether every assigned partition has reached its target (and at least one is assigned). */
  isCaughtUp(assigned: readonly PartitionRef[]): boolean {
    if (assigned.length === 0) return false;
    return assigned.every((a) => {
      const p = this.#progress.get(partitionKey(a.topic, a.partition));
      return p !== undefined && p.next >= p.target;
    });
  }
}
