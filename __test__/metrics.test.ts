/** Metrics without a broker: consumer lag read from librdkafka statistics, its gauge, and the metrics server's authentication and errors. */
import test from 'ava';
import { lagsFromStatistics, parseStatistics, stoppedFromStatistics, type LibrdkafkaStatistics } from '../ts/kafka/statistics.js';
import { Gauge, Registry } from 'prom-client';
import { PipelineMetrics } from '../ts/metrics/metrics.js';
import { startMetricsServer } from '../ts/metrics/server.js';
import { join } from 'node:path';
import { EVENT_COLUMNS, createTableWithPython, readTable } from './helpers/delta.js';
import { nativeMemory } from '../ts/index.js';
import { tempDir } from './helpers/env.js';
import { openStage, pack, range } from './helpers/stage.js';

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
  t.deepEqual(lagsFromStatistics(parseStatistics(STATISTICS) ?? {}), [
    { topic: 'events', partition: 0, lag: 20 },
    { topic: 'clicks', partition: 2, lag: 0 },
  ]);
});

test('partitions librdkafka stopped fetching (fetch state none) come from the statistics too', (t) => {
  const stats: LibrdkafkaStatistics = {
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
  };
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

/** A fresh table and a stage holding `rows` events of partition 0, staged in native memory. */
async function stagedEvents(rows: number) {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const { target, stage } = await openStage(table);
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  const messages = range(0, 0, rows - 1);
  const appended = await stage.append(pack(messages));
  return { table, target, stage, messages, appended };
}

test.serial("the native memory gauge reads jemalloc: live bytes grow with a native allocation, resident holds them", async (t) => {
  const metrics = new PipelineMetrics({ defaultMetrics: false });
  const read = async () => {
    const values = (await metrics.registry.getSingleMetric('kafka_delta_native_memory_bytes')?.get())?.values ?? [];
    const of = (kind: string) => values.find((v) => v.labels.kind === kind)?.value ?? Number.NaN;
    return { allocated: of('allocated'), resident: of('resident') };
  };
  const before = await read();
  t.true(before.allocated > 0, `allocated ${before.allocated}`);
  t.true(before.resident >= before.allocated, `resident ${before.resident} ≥ allocated ${before.allocated}`);
  // Staged rows are native Arrow allocations: 200k events held by a stage.
  const { appended } = await stagedEvents(200_000);
  t.is(appended.stagedRows, 200_000);
  const staged = await read();
  t.true(staged.allocated > before.allocated + 8 * 2 ** 20, `allocated ${before.allocated} → ${staged.allocated}`);
  t.true(staged.resident >= staged.allocated);
});

test.serial('a committed segment frees its rows in memory at release, not when V8 collects its handle', async (t) => {
  const { table, target, stage, messages } = await stagedEvents(200_000);
  const segment = stage.take();
  await target.commitRows(segment, [{ topicIndex: 0, partition: 0, appId: 't:0' }], { maxAttempts: 3 });
  const held = nativeMemory().allocatedBytes;
  await segment.release();
  const released = nativeMemory().allocatedBytes;
  // Before, release() deleted spill files only: a daemon's committed segments kept their rows
  // until garbage collection, which does not see native memory (+50 MiB per 250k-row flush).
  t.true(held - released > 8 * 2 ** 20, `allocated ${held} → ${released} after release`);
  t.is(segment.rows, 0);
  const ids = readTable(table).rows.map((r) => String(r.id)).sort();
  t.deepEqual(ids, messages.map((m) => (JSON.parse(m.payload) as { id: string }).id).sort());
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

test('with a token the metrics need it as a bearer token; the probes stay open; errors are not served', async (t) => {
  const metrics = new PipelineMetrics();
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0, endpoint: '/metrics', registry: metrics.registry, ready: () => true, token: 's3cret-token' });
  const url = (path: string) => `http://127.0.0.1:${server.port}${path}`;
  try {
    const open = await fetch(url('/metrics'));
    t.is(open.status, 401);
    t.is(open.headers.get('www-authenticate'), 'Bearer');
    t.false((await open.text()).includes('kafka_delta'), 'no metrics without the token');
    t.is((await fetch(url('/metrics'), { headers: { authorization: 'Bearer wrong' } })).status, 401);
    const ok = await fetch(url('/metrics'), { headers: { authorization: 'Bearer s3cret-token' } });
    t.is(ok.status, 200);
    t.regex(await ok.text(), /kafka_delta_/);
    t.is((await fetch(url('/readyz'))).status, 200);
    t.is((await fetch(url('/healthz'))).status, 200);
  } finally {
    await server.close();
  }

  // A registry that fails to render: the response says so, without the internal error text.
  const failing = new Registry();
  new Gauge({ name: 'failing_gauge', help: 'throws', registers: [failing], collect: () => { throw new Error('internal detail /secret/path'); } });
  const errors: unknown[] = [];
  const broken = await startMetricsServer({ host: '127.0.0.1', port: 0, endpoint: '/metrics', registry: failing, ready: () => true, onError: (e) => errors.push(e) });
  try {
    const response = await fetch(`http://127.0.0.1:${broken.port}/metrics`);
    t.is(response.status, 500);
    t.is(await response.text(), 'metrics unavailable\n');
    t.regex(String(errors[0]), /internal detail/);
  } finally {
    await broken.close();
  }
});
