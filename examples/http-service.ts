/**
 * Embedding kafka-delta-rust in a small HTTP service: the pipeline runs inside the service's own
 * process, its metrics are merged into the service's registry, and its flushes feed a status page.
 *
 *   KAFKA_BROKERS=127.0.0.1:9092 TOPIC=events TABLE=/data/events PORT=8080 \
 *     node --import tsx examples/http-service.ts
 *
 * GET /status   the last flush, run totals and the committed position of each partition (JSON)
 * GET /metrics  the service's own series and the pipeline's, in one Prometheus text
 * SIGTERM       stops the pipeline (it commits what is staged) and the server, then exits 0
 */
import { createServer } from 'node:http';
import { Counter, Registry } from 'prom-client';
import { Pipeline, createLogger, parseConfig, type FlushSummary } from 'kafka-delta-rust';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

const config = parseConfig({
  kafka: { broker: required('KAFKA_BROKERS'), topic: required('TOPIC'), group_id: process.env.GROUP_ID ?? 'http-service' },
  delta: { table_path: required('TABLE'), partition_column: process.env.PARTITION_COLUMN ?? 'date_col' },
  dedup: { keys: (process.env.DEDUP_KEYS ?? '').split(',').filter(Boolean) },
  batch: { batch_interval: Number(process.env.BATCH_INTERVAL ?? 1), batch_size: 50_000 },
  // The service serves the metrics itself, next to its own.
  monitoring: { enabled: false },
});

const log = createLogger({ level: 'info', format: 'json' });
const pipeline = new Pipeline(config, { logger: log });

// The service's own series live in its registry; the pipeline's registry is merged in at scrape.
const serviceRegistry = new Registry();
const statusRequests = new Counter({ name: 'http_service_status_requests_total', help: 'GET /status requests.', registers: [serviceRegistry] });

let lastFlush: FlushSummary | undefined;
let rowsWritten = 0;
let deadLetters = 0;
/** The next offset to read per `topic[partition]`, as committed to the table. */
const committed: Record<string, number> = {};
pipeline.on('flush', (summary) => {
  lastFlush = summary;
  rowsWritten += summary.rowsWritten;
  for (const p of summary.positions) committed[`${p.topic}[${p.partition}]`] = p.offset;
});
pipeline.on('deadLetter', () => {
  deadLetters += 1;
});
pipeline.on('error', (error) => {
  log.error('pipeline failed', { error });
  process.exitCode = 1;
});

const server = createServer((req, res) => {
  void (async () => {
    if (req.url === '/status') {
      statusRequests.inc();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ running: pipeline.running, rowsWritten, deadLetters, committed, lastFlush }));
    } else if (req.url === '/metrics') {
      const merged = Registry.merge([serviceRegistry, pipeline.metrics.registry]);
      res.writeHead(200, { 'content-type': merged.contentType });
      res.end(await merged.metrics());
    } else {
      res.writeHead(404).end();
    }
  })().catch((error: unknown) => {
    res.writeHead(500).end(String(error));
  });
});

await pipeline.start();
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => {
  const address = server.address();
  log.info('http service listening', { port: typeof address === 'object' && address ? address.port : undefined });
});

process.once('SIGTERM', () => {
  void (async () => {
    await pipeline.stop();
    server.close();
    log.info('http service stopped', { rowsWritten });
  })();
});
