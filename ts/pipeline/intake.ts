/**
 * The hand-over of consumed batches to the native stage, overlapped with consumption: while the
 * native core decodes and stages batch n on its own threads, the main thread consumes and packs
 * batch n+1. One batch is staged at a time, in the order consumed, so each partition's offsets
 * reach the stage in order, as the positions a commit records require; a second one waits packed.
 * Consumption therefore runs at most one batch ahead of staging, and stops there while the native
 * side falls behind: that is the backpressure.
 */
import type { Message } from 'node-rdkafka';
import type { Logger } from '../log.js';
import type { PipelineMetrics } from '../metrics/metrics.js';
import type { DeadLetterTally } from '../dead-letters/tally.js';
import { packMessages, type PackOptions, type TopicTally } from '../kafka/packer.js';
import type { AppendResult, MessageBatch, RejectedMessage, Stage } from '../stage.js';

/** What {@link Intake} works with. */
export interface IntakeOptions {
  stage: Stage;
  topics: readonly string[];
  topicIndex: ReadonlyMap<string, number>;
  pack: PackOptions;
  metrics: PipelineMetrics;
  log: Logger;
  deadLetterTally: DeadLetterTally;
  /** Called for each message that went to the dead-letter sink, once its batch is staged. */
  onDeadLetter: (rejected: RejectedMessage, topic: string) => void;
  /** Called with why spilling is blocked (a full staging disk) after each staged batch. */
  onSpillBlocked: (reason: string | undefined) => void;
}

/** Stages consumed batches one at a time while the next one is consumed. */
export class Intake {
  readonly #o: IntakeOptions;
  /**
   * The last batch handed over, from its hand-over until it is staged; settles (never rejects).
   * The loop hands over one batch at a time, so the next one only has to wait for this.
   */
  #last: Promise<void> = Promise.resolve();
  /** The first staging failure: every later hand-over and settle() throws it. */
  #failure: unknown;
  #messages = 0;

  constructor(options: IntakeOptions) {
    this.#o = options;
  }

  /** Messages handed over so far. */
  get messages(): number {
    return this.#messages;
  }

  /**
   * Packs `messages` now (beside the batch the native core is staging), waits for that batch to
   * be staged (its failure is thrown here), then starts staging these and returns without
   * waiting for them: the caller consumes the next batch meanwhile.
   */
  async submit(messages: Message[]): Promise<void> {
    if (messages.length === 0) return;
    this.#messages += messages.length;
    const tally: TopicTally = { messages: [], bytes: [] };
    const batch = packMessages(messages, this.#o.topicIndex, this.#o.pack, tally);
    this.#o.metrics.consumed(this.#o.topics, tally);
    const previous = this.#last;
    let done!: () => void;
    // Taken before waiting, so that a settle() meanwhile waits for this batch too.
    this.#last = new Promise<void>((resolve) => (done = resolve));
    try {
      await previous;
      this.#throwIfFailed();
    } catch (error) {
      done();
      throw error;
    }
    // Starts the native append now; the batch's slot is free once it is staged.
    void this.#stage(batch, messages.length).then(done);
  }

  /**
   * Resolves once every batch handed over is staged (rethrows a staging failure). A rebalance
   * waits for it before it flushes or reads positions, so that no batch consumed under the old
   * assignment lands in the stage after the new one is set.
   */
  async settle(): Promise<void> {
    let last: Promise<void>;
    do {
      last = this.#last;
      await last;
    } while (last !== this.#last);
    this.#throwIfFailed();
  }

  /** Stages one batch; records its failure instead of rejecting. */
  async #stage(batch: MessageBatch, count: number): Promise<void> {
    try {
      this.#staged(count, await this.#o.stage.append(batch));
    } catch (error: unknown) {
      this.#failure ??= error;
    }
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** A batch is staged: its metrics, its dead letters, and the spill state. */
  #staged(count: number, result: AppendResult): void {
    const o = this.#o;
    o.metrics.filtered(o.topics, result.filtered);
    o.metrics.staged(result.stagedRows, result.stagedBytes, { rows: result.spilledRows, bytes: result.spilledBytes });
    o.log.debug('batch staged', { messages: count, stagedRows: result.stagedRows, consumed: this.#messages });
    // Dead letters are staged with the rows; the sink gets them at the flush.
    for (const r of result.rejected) {
      const topic = o.topics[r.topicIndex] ?? `#${r.topicIndex}`;
      o.metrics.deadLetter(topic, r.reason);
      o.deadLetterTally.add(topic, r.reason, r.partition, r.offset);
      // The detail may quote the payload: DEBUG only; the flush logs the counts per reason.
      o.log.debug('message sent to the dead-letter sink', { topic, partition: r.partition, offset: r.offset, reason: r.reason, detail: r.detail });
      o.onDeadLetter(r, topic);
    }
    o.onSpillBlocked(result.spillBlocked ?? undefined);
  }
}
