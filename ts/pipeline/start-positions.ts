/**
 * Where each newly assigned partition starts: after the position the table records (or staging
 * recovered), or at `kafka.start_from` when there is none. A recorded position outside the
 * partition's log (offsets deleted by retention or DeleteRecords, or the topic deleted and
 * recreated) is never handed to librdkafka, which would jump to its reset position without a
 * word: `kafka.on_position_lost` decides, here, before the partition is assigned. A position
 * beyond the log's end (a recreated topic) moves back: the stage is told which recorded version
 * the new reading replaces, and its first commit records the new, lower position.
 */
import type { PositionLostPolicy, StartFrom } from '../config/index.js';
import { PositionLostError, type LostPosition } from '../errors.js';
import { OFFSET_BEGINNING, partitionKey, type PartitionRef, type PartitionStart } from '../kafka/consumer.js';

/** A partition's log start offset and high watermark. */
export interface Watermarks {
  readonly low: number;
  readonly high: number;
}

/** A newly assigned partition and the last offset the table (or staging) holds for it. */
export interface AssignedPartition extends PartitionRef {
  /** The last offset recorded; undefined when nothing of the partition was ever committed. */
  readonly last: number | undefined;
  /** Overrides `startFrom` for it (a topic created after the pipeline started: `earliest`). */
  readonly startFrom?: StartFrom;
}

/** What {@link startPositions} works with. */
export interface StartPositionOptions {
  readonly startFrom: StartFrom;
  readonly onPositionLost: PositionLostPolicy;
  readonly watermarks: (p: PartitionRef) => Promise<Watermarks>;
}

/** A lost position that `kafka.on_position_lost` moved to the log start or the end. */
export interface MovedPosition extends LostPosition {
  /** Where reading resumes. */
  readonly resumeAt: number;
  /**
   * Offsets skipped: the deleted ones, plus with `latest` the unread ones up to the end; for a
   * recreated log, the new log's offsets before `resumeAt`.
   */
  readonly skipped: number;
  /** True when the log was recreated below the recorded position: reading starts over. */
  readonly recreated: boolean;
}

/** Where each partition starts, and the lost positions that were moved. */
export interface StartPositions {
  readonly starts: PartitionStart[];
  readonly moved: MovedPosition[];
}

/** One line about a lost position, for errors and logs. */
export function describeLost(p: LostPosition): string {
  const why =
    p.next < p.low
      ? `offsets ${p.next}..${p.low - 1} were deleted (retention or DeleteRecords)`
      : 'the log ends before it (the topic was deleted and recreated, or its log truncated)';
  return (
    `${p.topic}[${p.partition}]: the table records offsets up to txn version ${p.next - 1} (next offset ${p.next}), ` +
    `but the log holds ${p.low}..${p.high - 1} (log start ${p.low}, high watermark ${p.high}): ${why}`
  );
}

/** The offsets a moved position skips, in words. */
export function skippedRange(m: MovedPosition): string {
  if (m.recreated) return m.resumeAt > m.low ? `offsets ${m.low}..${m.resumeAt - 1} of the new log` : 'none (the new log is read from its start)';
  return `offsets ${m.next}..${m.resumeAt - 1}`;
}

/** The error for lost positions under `kafka.on_position_lost: fail`. */
export function positionLostError(lost: readonly LostPosition[]): PositionLostError {
  const lines = lost.map((p) => `  - ${describeLost(p)}`).join('\n');
  const advice =
    'Nothing was skipped. To go on, set kafka.on_position_lost to earliest (resume at the log start) ' +
    'or latest (resume at the high watermark), accepting the loss.';
  return new PositionLostError(`recorded Kafka positions are out of range, so reading on would skip messages the table never got:\n${lines}\n${advice}`, lost);
}

/**
 * The start of every partition: `last + 1` when a position is recorded and still in the log;
 * for a lost one, what `onPositionLost` says (or a {@link PositionLostError} naming every lost
 * partition with `fail`); with nothing recorded, the log start is left to Kafka (`earliest`) and `latest`
 * is resolved to the high watermark now, as an offset, so that the stage can record it and a
 * restart before the partition's first message resumes there rather than at a later end.
 */
export async function startPositions(parts: readonly AssignedPartition[], options: StartPositionOptions): Promise<StartPositions> {
  const resolved = await Promise.all(
    parts.map(async (p): Promise<{ start: PartitionStart; lost?: LostPosition }> => {
      const ref = { topic: p.topic, partition: p.partition };
      if (p.last === undefined && (p.startFrom ?? options.startFrom) === 'earliest') return { start: { ...ref, offset: OFFSET_BEGINNING } };
      const { low, high } = await options.watermarks(ref);
      if (p.last === undefined) return { start: { ...ref, offset: high } };
      const next = p.last + 1;
      if (next >= low && next <= high) return { start: { ...ref, offset: next } };
      return { start: { ...ref, offset: next }, lost: { ...ref, next, low, high } };
    }),
  );
  const lost = resolved.flatMap((r) => (r.lost ? [r.lost] : []));
  const policy = options.onPositionLost;
  if (policy === 'fail') {
    if (lost.length > 0) throw positionLostError(lost);
    return { starts: resolved.map((r) => r.start), moved: [] };
  }
  const moved = lost.map((l): MovedPosition => {
    const resumeAt = policy === 'earliest' ? l.low : l.high;
    const recreated = l.next > l.high;
    return { ...l, resumeAt, recreated, skipped: recreated ? resumeAt - l.low : resumeAt - l.next };
  });
  const byKey = new Map(moved.map((m) => [partitionKey(m.topic, m.partition), m.resumeAt]));
  const starts = resolved.map(({ start }) => ({ ...start, offset: byKey.get(partitionKey(start.topic, start.partition)) ?? start.offset }));
  return { starts, moved };
}
