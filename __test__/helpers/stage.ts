/** Staging through the library API without Kafka: messages packed as the consumer packs them, and event stages. */
import { join } from 'node:path';
import { DeltaTarget, PipelineMetrics, silentLogger, type Stage } from '../../ts/index.js';
import { DeltaDeadLetterSink } from '../../ts/dead-letters/delta-sink.js';
import { DeadLetterTally } from '../../ts/dead-letters/tally.js';
import { Flusher, type FlushSummary } from '../../ts/pipeline/flush.js';
import type { MessageBatch, StagingOptions } from '../../ts/stage.js';
import { tempDir } from './env.js';

/** The day every test event falls on. */
export const DAY = '2026-11-23';

/** One message: its partition, offset and JSON payload. */
export interface Msg {
  partition: number;
  offset: number;
  payload: string;
}

/** Packs messages of topic #0 the way `ts/kafka/packer.ts` does. */
export function pack(messages: readonly Msg[]): MessageBatch {
  const bytes = messages.map((m) => Buffer.from(m.payload));
  let at = 0;
  return {
    payloads: Buffer.concat(bytes),
    payloadEnds: Uint32Array.from(bytes, (b) => (at += b.length)),
    topicIndexes: new Uint16Array(messages.length),
    partitions: Int32Array.from(messages, (m) => m.partition),
    offsets: Float64Array.from(messages, (m) => m.offset),
    timestamps: new Float64Array(messages.length).fill(Date.UTC(2026, 10, 23)),
  };
}

/** An event of the sample schema (EVENT_COLUMNS) on {@link DAY}. */
export const event = (id: string, extra: Record<string, unknown> = {}) => JSON.stringify({ id, seq: 1, amount: 1, note: null, date_col: DAY, ...extra });

/** Messages `from..to` of a partition, ids `p<partition>-<offset>`. */
export function range(partition: number, from: number, to: number): Msg[] {
  return Array.from({ length: to - from + 1 }, (_, i) => ({ partition, offset: from + i, payload: event(`p${partition}-${from + i}`) }));
}

/**
 * Opens the table and a stage of topic `events` with days from `date_col`; with `staging`, it
 * spills to a fresh directory (by default past 1 byte: every append spills).
 */
export async function openStage(
  table: string,
  staging?: Partial<StagingOptions>,
  rejectUnknownFields = false,
  addColumns = false,
): Promise<{ target: DeltaTarget; stage: Stage }> {
  const target = await DeltaTarget.open(table);
  const stage = target.createStage({
    partitionColumn: 'date_col',
    daySource: 'column',
    timezone: 'UTC',
    rejectUnknownFields,
    addColumns,
    topics: ['events'],
    staging: staging && { dir: join(tempDir(), 'staging'), maxMemoryBytes: 1, identity: 'test', ...staging },
  });
  return { target, stage };
}

/**
 * A flusher of `stage` into `target` as the pipeline builds one, without Kafka: dead letters go
 * to `<table>__dead_letters`, txn app ids are `<appPrefix>:<partition>`, Kafka offsets are not
 * committed.
 */
export async function testFlusher(
  table: string,
  target: DeltaTarget,
  stage: Stage,
  appPrefix: string,
  onFlush: (summary: FlushSummary) => void = () => undefined,
): Promise<Flusher> {
  return new Flusher({
    target,
    deadLetters: new DeltaDeadLetterSink(await DeltaTarget.openDeadLetters(`${table}__dead_letters`), 3),
    stage,
    topics: ['events'],
    appId: (_topic, partition) => `${appPrefix}:${partition}`,
    maxAttempts: 3,
    write: {},
    metrics: new PipelineMetrics(),
    log: silentLogger,
    commitKafkaOffsets: () => undefined,
    onFlush,
    deadLetterTally: new DeadLetterTally(),
  });
}
