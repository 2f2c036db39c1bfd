/**
 * Reading the pipeline's metrics in code instead of scraping them over HTTP: a catch-up job that
 * reports, when it is done, what it consumed, wrote, consolidated and dead-lettered, read from the
 * same prom-client registry a Prometheus scrape would render (`pipeline.metrics.registry`). A job
 * could as well push them to a Pushgateway or log them.
 *
 *   KAFKA_BROKERS=127.0.0.1:9092 TOPIC=events TABLE=/data/events DEDUP_KEYS=id \
 *     node --import tsx examples/read-metrics.ts
 *
 * Prints one line per sample, in Prometheus' text notation (`name{label="value"} value`): the
 * series below, and the count and sum of the flush duration histogram.
 */
import { Pipeline, parseConfig } from 'kafka-delta-rust';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

const config = parseConfig({
  kafka: { broker: required('KAFKA_BROKERS'), topic: required('TOPIC'), group_id: process.env.GROUP_ID ?? 'read-metrics-example' },
  delta: { table_path: required('TABLE'), partition_column: process.env.PARTITION_COLUMN ?? 'date_col' },
  dedup: { keys: (process.env.DEDUP_KEYS ?? '').split(',').filter(Boolean) },
  // Nothing listens: the registry is read directly.
  monitoring: { enabled: false },
});

/** The series reported; see the README's Metrics table for all of them. */
const SELECTED = new Set([
  'kafka_delta_messages_consumed_total',
  'kafka_delta_records_written_total',
  'kafka_delta_records_deduplicated_total',
  'kafka_delta_dead_letters_total',
  'kafka_delta_table_version',
  'kafka_delta_flush_duration_seconds',
]);

const pipeline = new Pipeline(config, { untilCaughtUp: true });
await pipeline.run();

for (const metric of await pipeline.metrics.registry.getMetricsAsJSON()) {
  if (!SELECTED.has(metric.name)) continue;
  for (const sample of metric.values) {
    // A histogram's samples are its buckets, sum and count; the buckets are left out here.
    const name = 'metricName' in sample && typeof sample.metricName === 'string' ? sample.metricName : metric.name;
    if (name.endsWith('_bucket')) continue;
    const labels = Object.entries(sample.labels)
      .map(([key, value]) => `${key}=${JSON.stringify(String(value))}`)
      .join(',');
    console.log(`${name}${labels ? `{${labels}}` : ''} ${sample.value}`);
  }
}
