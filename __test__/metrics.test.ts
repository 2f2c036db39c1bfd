/** Metrics without a broker: consumer lag read from librdkafka statistics, and its gauge. */
import test from 'ava';
import { lagsFromStatistics, stoppedFromStatistics } from '../ts/kafka/consumer.js';
import { PipelineMetrics } from '../ts/metrics/metrics.js';

// The parts of a librdkafka statistics report the lag comes from (other fields left out).
const STATISTICS = JSON.stringify({
  name: 'rdkafka#consumer-1',
  topics: {
    events: {
      topic: 'events',
      partitions: {
        '0': { partition: 0, hi_offset: 120, committed_offset: 100, consumer_lag: 20 },
        '1': { partition: 1, hi_offset: 50, committed_offset: -1001, consumer_lag: -1 },
        '-1': { partition: -1, consumer_lag: -1 },
      },
    },
    clicks: { topic: 'clicks', partitions: { '2': { partition: 2, consumer_lag: 0 } } },
  },
});

test('lags come from librdkafka statistics; unknown lags and the internal partition are left out', (t) => {
  t.deepEqual(lagsFromStatistics(STATISTICS), [
    { topic: 'events', partition: 0, lag: 20 },
    { topic: 'clicks', partition: 2, lag: 0 },
  ]);
});

test('partitions librdkafka stopped fetching (fetch state none) come from the statistics too', (t) => {
  const stats = JSON.stringify({
    topics: {
      events: {
        partitions: {
          '0': { partition: 0, fetch_state: 'active' },
          '1': { partition: 1, fetch_state: 'none' },
          '-1': { partition: -1, fetch_state: 'none' },
        },
      },
      clicks: { partitions: { '2': { partition: 2, fetch_state: 'none' }, '3': { partition: 3, fetch_state: 'offset-query' } } },
    },
  });
  t.deepEqual(stoppedFromStatistics(stats), [
    { topic: 'events', partition: 1 },
    { topic: 'clicks', partition: 2 },
  ]);
});

test('lost positions count per topic, and the offsets they skipped where known', async (t) => {
  const metrics = new PipelineMetrics({ defaultMetrics: false });
  metrics.positionLost('events', 880);
  metrics.positionLost('events', undefined);
  const text = await metrics.registry.metrics();
  t.regex(text, /^kafka_delta_positions_lost_total\{topic="events"\} 2$/m);
  t.regex(text, /^kafka_delta_offsets_skipped_total\{topic="events"\} 880$/m);
});

test('the consumer lag gauge shows the partitions of the latest report only', async (t) => {
  const metrics = new PipelineMetrics({ defaultMetrics: false });
  metrics.consumerLag([
    { topic: 'events', partition: 0, lag: 20 },
    { topic: 'events', partition: 1, lag: 5 },
  ]);
  metrics.consumerLag([{ topic: 'events', partition: 0, lag: 7 }]);
  const text = await metrics.registry.metrics();
  t.regex(text, /^kafka_delta_consumer_lag\{topic="events",partition="0"\} 7$/m);
  t.notRegex(text, /partition="1"/);
});

test('the Grafana dashboard queries only series the pipeline exports', async (t) => {
  const { readFileSync } = await import('node:fs');
  const dashboard = JSON.parse(readFileSync(new URL('../monitoring/grafana-dashboard.json', import.meta.url), 'utf8')) as {
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
  };
  const exported = new Set((await new PipelineMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
  const used = new Set<string>();
  for (const panel of dashboard.panels) {
    for (const target of panel.targets) {
      for (const [name] of target.expr.matchAll(/\b(?:kafka_delta|process|nodejs)_[a-z_]+/g)) used.add(name.replace(/_bucket$/, ''));
    }
  }
  t.true(used.size >= 14, [...used].join(', '));
  for (const name of used) t.true(exported.has(name), `${name} is exported`);
});
