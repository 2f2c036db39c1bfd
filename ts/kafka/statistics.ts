/**
 * librdkafka's statistics report (`event.stats`, every `statistics.interval.ms`), parsed once
 * per report and read by three listeners: the lag gauge, the stopped-partition check and the
 * broker health. The fields are those of librdkafka's STATISTICS.md that we read.
 */

/** A topic-partition as a report names it (the consumer's `PartitionRef`). */
export interface StatisticsPartition {
  readonly topic: string;
  readonly partition: number;
}

/** A partition's lag in a report (the consumer's `PartitionLag`). */
export interface StatisticsLag extends StatisticsPartition {
  readonly lag: number;
}

/** The part of a statistics report read here. */
export interface LibrdkafkaStatistics {
  readonly topics?: Record<string, { partitions?: Record<string, { partition?: number; consumer_lag?: number; fetch_state?: string }> }>;
  readonly brokers?: Record<string, { source?: string; state?: string }>;
}

/** A report's JSON, or undefined when it is not an object (a report that cannot be read is skipped). */
export function parseStatistics(json: unknown): LibrdkafkaStatistics | undefined {
  if (typeof json !== 'string') return undefined;
  try {
    const stats: unknown = JSON.parse(json);
    return typeof stats === 'object' && stats !== null ? (stats as LibrdkafkaStatistics) : undefined;
  } catch {
    return undefined;
  }
}

/** The real partitions of a report (partition -1 is librdkafka's internal unassigned queue). */
function* partitionsOf(stats: LibrdkafkaStatistics) {
  for (const [topic, t] of Object.entries(stats.topics ?? {})) {
    for (const p of Object.values(t.partitions ?? {})) {
      if (p.partition !== undefined && p.partition >= 0) yield { topic, partition: p.partition, stats: p };
    }
  }
}

/**
 * Partitions whose fetch state is `none`: librdkafka stopped fetching them (what it does after
 * a position out of range with `auto.offset.reset: error`).
 */
export function stoppedFromStatistics(stats: LibrdkafkaStatistics): StatisticsPartition[] {
  const out: StatisticsPartition[] = [];
  for (const p of partitionsOf(stats)) if (p.stats.fetch_state === 'none') out.push({ topic: p.topic, partition: p.partition });
  return out;
}

/** Per-partition lags; a lag of -1 means unknown yet and is left out. */
export function lagsFromStatistics(stats: LibrdkafkaStatistics): StatisticsLag[] {
  const lags: StatisticsLag[] = [];
  for (const p of partitionsOf(stats)) {
    const lag = p.stats.consumer_lag;
    if (lag !== undefined && lag >= 0) lags.push({ topic: p.topic, partition: p.partition, lag });
  }
  return lags;
}

/** Whether any real broker (not librdkafka's internal one) is connected; undefined when none is listed. */
export function brokersUpInStatistics(stats: LibrdkafkaStatistics): boolean | undefined {
  const brokers = Object.values(stats.brokers ?? {}).filter((b) => b.source !== 'internal');
  if (brokers.length === 0) return undefined;
  return brokers.some((b) => b.state === 'UP');
}
