/**
 * Dead-letter sinks: where messages that cannot become rows go. A flush hands its segment to
 * the sink before the rows' commit; the sink delivers every dead letter the rows' table has not
 * handled yet (above its recorded positions) and resolves only once they are durable, so the
 * rows' commit never moves a position past a dead letter that was not delivered, whatever was
 * spilled, persisted or recovered meanwhile.
 */
import type { Config } from '../config/index.js';
import type { Logger } from '../log.js';
import { kafkaProperties } from '../pipeline/identity.js';
import type { StagedSegment } from '../segment.js';
import { DeltaTarget, type PartitionAppId } from '../table.js';
import { DeltaDeadLetterSink } from './delta-sink.js';
import { KafkaDeadLetterSink } from './kafka-sink.js';

/** Where dead letters go. */
export interface DeadLetterSink {
  /** The sink, for logs: a table URI or `kafka:<topic>`. */
  readonly description: string;
  /**
   * Delivers the segment's dead letters that `rows` (the table the segment's rows go to) has
   * not handled; resolves with how many were delivered once they are durable, and throws when
   * any could not be.
   */
  deliver(segment: StagedSegment, appIds: readonly PartitionAppId[], rows: DeltaTarget): Promise<number>;
  /** Releases the sink's connections. */
  close(): Promise<void>;
}

/** Opens the configured sink: a Delta table (created when absent) or a Kafka topic (which must exist). */
export async function openDeadLetterSink(config: Config, log: Logger): Promise<DeadLetterSink> {
  const maxAttempts = config.concurrency.retryAttempts + 1;
  if (config.deadLetter.kind === 'kafka') {
    return KafkaDeadLetterSink.open(config.kafka.brokers, config.deadLetter.topic, kafkaProperties(config), log);
  }
  const table = await DeltaTarget.openDeadLetters(config.deadLetter.tablePath, config.delta.storageOptions, config.delta.storageRetry);
  return new DeltaDeadLetterSink(table, maxAttempts);
}
