/**
 * A fault-injecting HTTP proxy in front of a local object store (moto's S3): it forwards
 * requests and, as told, answers some with 503 Slow Down without forwarding, forwards some and
 * then cuts the connection before the answer (the store did the work, the client cannot know),
 * holds some without answering (a client timeout), or refuses everything for a while (an
 * outage). Faults are drawn from a seeded source, so a failing run can be replayed.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Rng } from './faults.js';

/** What the proxy did to one request. */
export type Fault = 'slow_down' | 'cut_after_forward' | 'hold';

/** What the proxy is told to do. */
export interface FaultPlan {
  /** Fraction of requests given a fault, drawn per request. */
  rate: number;
  /** Relative weights of the faults drawn. */
  weights: Readonly<Record<Fault, number>>;
  /** Every Nth commit (a PUT of `_delta_log/<version>.json`) is forwarded, then cut. 0: never. */
  cutEveryNthCommit: number;
}

const HEALTHY: FaultPlan = { rate: 0, weights: { slow_down: 1, cut_after_forward: 0, hold: 0 }, cutEveryNthCommit: 0 };

/** A commit file of the Delta log, as the S3 client PUTs it (path-style URLs). */
const COMMIT_PUT = /\/_delta_log\/\d{20}\.json(\?|$)/;

/** How long a held request is kept before its socket is closed (well past the client timeout). */
const HOLD_MS = 60_000;

/** A running proxy: its endpoint, what it did so far, and the plan to change at will. */
export class FaultProxy {
  readonly #server: Server;
  readonly #target: URL;
  readonly #rng: Rng;
  #plan: FaultPlan = HEALTHY;
  #outageUntil = 0;
  #commits = 0;
  readonly #held = new Set<IncomingMessage>();
  /** Requests forwarded, faults by kind, and commits cut after the store wrote them. */
  readonly counts = { forwarded: 0, slow_down: 0, cut_after_forward: 0, hold: 0, outage: 0, commitsCut: 0 };

  private constructor(server: Server, target: URL, seed: number) {
    this.#server = server;
    this.#target = target;
    this.#rng = new Rng(seed);
  }

  /** Starts a proxy on a free local port in front of `target` (e.g. moto's endpoint). */
  static async start(target: string, seed: number): Promise<FaultProxy> {
    const server = createServer();
    const proxy = new FaultProxy(server, new URL(target), seed);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => proxy.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** The URL clients use instead of the store's. */
  get endpoint(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Replaces the plan (a healthy one: `{ rate: 0, ... }`). */
  setPlan(plan: Partial<FaultPlan>): void {
    this.#plan = { ...HEALTHY, ...plan };
  }

  /** Answers every request with 503 for `ms` milliseconds (Infinity: until {@link endOutage}). */
  outage(ms: number): void {
    this.#outageUntil = Date.now() + ms;
  }

  endOutage(): void {
    this.#outageUntil = 0;
  }

  async stop(): Promise<void> {
    for (const req of this.#held) req.socket.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Exposed for the server callback only. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    if (Date.now() < this.#outageUntil) {
      this.counts.outage += 1;
      this.#slowDown(req, res);
      return;
    }
    const isCommit = req.method === 'PUT' && COMMIT_PUT.test(req.url ?? '');
    if (isCommit && this.#plan.cutEveryNthCommit > 0) {
      this.#commits += 1;
      if (this.#commits % this.#plan.cutEveryNthCommit === 0) {
        this.#forward(req, res, true);
        return;
      }
    }
    const fault = this.#rng.chance(this.#plan.rate) ? this.#rng.weighted(Object.entries(this.#plan.weights) as Array<[Fault, number]>) : undefined;
    if (fault === 'slow_down') {
      this.counts.slow_down += 1;
      this.#slowDown(req, res);
    } else if (fault === 'hold') {
      this.counts.hold += 1;
      this.#held.add(req);
      req.resume();
      setTimeout(() => {
        this.#held.delete(req);
        req.socket.destroy();
      }, HOLD_MS).unref();
    } else {
      this.#forward(req, res, fault === 'cut_after_forward');
    }
  }

  /** S3's throttling answer, after reading (and dropping) the request body. */
  #slowDown(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    req.on('end', () => {
      const body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';
      res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  }

  /** Forwards to the store; `cut`: once the store has answered, close the client's connection instead. */
  #forward(req: IncomingMessage, res: ServerResponse, cut: boolean): void {
    this.counts.forwarded += 1;
    const upstream = request(
      { host: this.#target.hostname, port: this.#target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (cut) {
          answer.resume();
          answer.on('end', () => {
            this.counts.cut_after_forward += 1;
            if (req.method === 'PUT' && COMMIT_PUT.test(req.url ?? '') && (answer.statusCode ?? 500) < 300) this.counts.commitsCut += 1;
            req.socket.destroy();
          });
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  }
}
