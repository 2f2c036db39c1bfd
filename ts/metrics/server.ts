/**
 * The HTTP endpoint operators scrape: metrics at the configured path, `/healthz` (the process
 * is alive) and `/readyz` (the pipeline is consuming). With a token, the metrics need
 * `Authorization: Bearer <token>` (Prometheus: `authorization: { credentials_file: ... }`); the
 * probes stay open, as they tell nothing but up or ready. No response carries an internal error.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  /** Interface to bind; `127.0.0.1` keeps the endpoint local, `0.0.0.0` exposes it. */
  host: string;
  /** Port to listen on; 0 picks a free one (read it back from {@link MetricsServer.port}). */
  port: number;
  /** URL path serving the Prometheus text, e.g. `/metrics`. */
  endpoint: string;
  /** The registry rendered at {@link MetricsServerOptions.endpoint}, e.g. `pipeline.metrics.registry`. */
  registry: Registry;
  /** Whether the pipeline is ready (consuming, table reachable). */
  ready: () => boolean;
  /** A bearer token the metrics require; none: they are open. */
  token?: string;
  /** Told of a failure to render the metrics (the response says only that they are unavailable). */
  onError?: (error: unknown) => void;
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Whether the request carries the token, compared in constant time. */
function authorized(req: IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const header = req.headers.authorization ?? '';
  const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : '';
  return timingSafeEqual(digest(given), digest(token));
}

/** A running metrics server. */
export interface MetricsServer {
  /** The port it listens on (useful with port 0). */
  readonly port: number;
  /** Stops listening; resolves once the server is closed. */
  close(): Promise<void>;
}

/** Starts the metrics server. */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === options.endpoint && !authorized(req, options.token)) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer' });
      res.end('unauthorized\n');
    } else if (path === options.endpoint) {
      options.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': options.registry.contentType });
          res.end(text);
        })
        .catch((error: unknown) => {
          options.onError?.(error);
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('metrics unavailable\n');
        });
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
    } else if (path === '/readyz') {
      const ready = options.ready();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ready ? 'ready\n' : 'not ready\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
