/**
 * `--until-caught-up`: the high watermark of every partition of the subscribed topics is captured
 * at start, and the run ends once each of them is covered: read by this consumer, or recorded in
 * the table by another member of the group. Partitions held by a member that died are covered
 * once the group hands them to us after its session times out.
 */
import type { Message } from 'node-rdkafka';
import { OFFSET_BEGINNING, partitionKey, type KafkaSource, type PartitionRef, type PartitionStart } from '../kafka/consumer.js';

interface Progress {
  readonly ref: PartitionRef;
  /** The offset to reach: the high watermark at start. */
  readonly target: number;
  /** The next offset to read, as far as we know. */
  next: number;
}

/** Where committed positions come from for partitions another member consumes. */
export type RecordedPositions = (parts: readonly PartitionRef[]) => Promise<Map<string, number>>;

/** How often the table is asked about partitions we do not own. */
const RECHECK_MS = 1000;

/** Tracks every partition's progress towards the watermark seen at start. */
export class CaughtUpTracker {
  readonly #progress = new Map<string, Progress>();
  readonly #recorded: RecordedPositions;
  #lastCheck = 0;

  constructor(recorded: RecordedPositions) {
    this.#recorded = recorded;
  }

  /** Captures the watermarks of every partition of `topics`; `startFrom` places the ones never written. */
  async init(source: KafkaSource, topics: readonly string[], startFrom: 'earliest' | 'latest'): Promise<void> {
    const refs: PartitionRef[] = [];
    for (const topic of topics) for (const partition of await source.partitionsOf(topic)) refs.push({ topic, partition });
    const recorded = await this.#recorded(refs);
    for (const ref of refs) {
      const { low, high } = await source.watermarks(ref);
      const committed = recorded.get(partitionKey(ref.topic, ref.partition));
      let next = committed !== undefined ? committed + 1 : startFrom === 'earliest' ? low : high;
      // A recorded position outside the log is lost: the assignment decides where reading
      // resumes (kafka.on_position_lost); until then the partition counts as unread.
      if (next < low || next > high) next = low;
      this.#progress.set(partitionKey(ref.topic, ref.partition), { ref, target: high, next });
    }
  }

  /** Newly assigned partitions start where the table says. */
  assigned(starts: readonly PartitionStart[]): void {
    for (const s of starts) {
      const p = this.#progress.get(partitionKey(s.topic, s.partition));
      if (p && s.offset >= 0) p.next = Math.max(p.next, s.offset);
      else if (p && s.offset !== OFFSET_BEGINNING) p.next = Math.max(p.next, p.target);
    }
  }

  /** Advances the partitions of a consumed batch (looked up once per run of one partition). */
  consumed(messages: readonly Message[]): void {
    let current: Progress | undefined;
    let topic = '';
    let partition = -1;
    for (const m of messages) {
      if (m.partition !== partition || m.topic !== topic) {
        topic = m.topic;
        partition = m.partition;
        current = this.#progress.get(partitionKey(topic, partition));
      }
      if (current && m.offset + 1 > current.next) current.next = m.offset + 1;
    }
  }

  /** A partition reported it has nothing more to read for now. */
  reachedEnd(eof: PartitionStart): void {
    const p = this.#progress.get(partitionKey(eof.topic, eof.partition));
    if (p && eof.offset > p.next) p.next = eof.offset;
  }

  /** Whether every partition is covered; asks the table about the ones we do not own. */
  async isCaughtUp(assigned: readonly PartitionRef[]): Promise<boolean> {
    const pending = [...this.#progress.values()].filter((p) => p.next < p.target);
    if (pending.length === 0) return true;
    const owned = new Set(assigned.map((a) => partitionKey(a.topic, a.partition)));
    const elsewhere = pending.filter((p) => !owned.has(partitionKey(p.ref.topic, p.ref.partition)));
    if (elsewhere.length === 0 || Date.now() - this.#lastCheck < RECHECK_MS) return false;
    this.#lastCheck = Date.now();
    const recorded = await this.#recorded(elsewhere.map((p) => p.ref));
    for (const p of elsewhere) {
      const committed = recorded.get(partitionKey(p.ref.topic, p.ref.partition));
      if (committed !== undefined) p.next = Math.max(p.next, committed + 1);
    }
    return pending.every((p) => p.next >= p.target);
  }
}
