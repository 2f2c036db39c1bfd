/**
 * Fault-injection tools for the exactly-once suite (__test__/faults.integration.test.ts): a seeded
 * random source, producers that report where each message landed (partition and offset, so the
 * expected dead letters are known exactly), CLI runs killed with SIGKILL at a chosen moment, and
 * an exact comparison of row sets that names what is missing, duplicated, unexpected or changed.
 */
import Kafka from 'node-rdkafka';
import type { DeliveryReport, LibrdKafkaError } from 'node-rdkafka';
import { connectProducer, type OutgoingMessage } from '../../ts/tools/kafka-admin.js';
import { startCli, type RunningCli } from './cli.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Randomness

/** A small seeded PRNG (mulberry32): the same seed gives the same sequence. */
export class Rng {
  #state: number;
  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** One of the entries, with probability proportional to its weight. */
  weighted<T>(entries: ReadonlyArray<readonly [T, number]>): T {
    const total = entries.reduce((n, [, w]) => n + w, 0);
    let at = this.next() * total;
    for (const [value, w] of entries) {
      at -= w;
      if (at < 0) return value;
    }
    return (entries[entries.length - 1] as readonly [T, number])[0];
  }
}

/** KDR_FAULTS_SEED if set (to replay a run), else a fresh seed. */
export function faultSeed(): number {
  const fromEnv = process.env.KDR_FAULTS_SEED;
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (!Number.isSafeInteger(n)) throw new Error(`KDR_FAULTS_SEED must be an integer, got ${fromEnv}`);
    return n >>> 0;
  }
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Producing with delivery positions

/** Where the broker stored a message. */
export interface Delivered {
  readonly partition: number;
  readonly offset: number;
}

/** librdkafka's "local queue full". */
const QUEUE_FULL = -184;

/**
 * A connected idempotent producer whose `send` resolves with the partition and offset the broker
 * acknowledged, so tests know the exact (topic, partition, offset) of every message.
 */
export class TrackedProducer {
  readonly #producer: Kafka.Producer;
  readonly #pending = new Map<number, { resolve: (d: Delivered) => void; reject: (e: Error) => void }>();
  #next = 0;

  private constructor(producer: Kafka.Producer) {
    this.#producer = producer;
    producer.on('delivery-report', (err: LibrdKafkaError, report: DeliveryReport) => {
      const id = report.opaque as number;
      const waiter = this.#pending.get(id);
      if (!waiter) return;
      this.#pending.delete(id);
      if (err) waiter.reject(new Error(`delivery failed: ${err.message}`));
      else waiter.resolve({ partition: report.partition, offset: report.offset });
    });
    producer.setPollInterval(10);
  }

  static async connect(brokers: string): Promise<TrackedProducer> {
    return new TrackedProducer(await connectProducer(brokers));
  }

  /** Queues a message; resolves once the broker acknowledged it. */
  async send(topic: string, m: OutgoingMessage): Promise<Delivered> {
    const id = this.#next++;
    const delivered = new Promise<Delivered>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    const value = m.value === null ? null : Buffer.isBuffer(m.value) ? m.value : Buffer.from(m.value);
    const headers = m.headers ? Object.entries(m.headers).map(([k, v]) => ({ [k]: v })) : undefined;
    for (;;) {
      try {
        this.#producer.produce(topic, m.partition ?? null, value, m.key ?? null, m.timestamp ?? Date.now(), id, headers);
        break;
      } catch (error) {
        if ((error as { code?: number }).code !== QUEUE_FULL) {
          this.#pending.delete(id);
          throw error;
        }
        await sleep(10);
      }
    }
    return delivered;
  }

  /** Waits until everything queued was sent. */
  flush(timeoutMs = 60_000): Promise<void> {
    return new Promise<void>((resolve, reject) => this.#producer.flush(timeoutMs, (err) => (err ? reject(err) : resolve())));
  }

  disconnect(): Promise<void> {
    return new Promise<void>((resolve) => this.#producer.disconnect(() => resolve()));
  }
}

/** Produces `messages` and returns where each landed (same order). */
export async function produceTracked(brokers: string, topic: string, messages: readonly OutgoingMessage[]): Promise<Delivered[]> {
  const producer = await TrackedProducer.connect(brokers);
  try {
    const acks: Array<Promise<Delivered>> = [];
    for (const m of messages) {
      const ack = producer.send(topic, m);
      ack.catch(() => {}); // reported by Promise.all below
      acks.push(ack);
    }
    await producer.flush();
    return await Promise.all(acks);
  } finally {
    await producer.disconnect();
  }
}

/** A message a {@link SteadyProducer} sent, and where it landed. */
export interface SentMessage<T> {
  readonly index: number;
  readonly meta: T;
  readonly delivered: Delivered;
}

/**
 * Produces `make(i)` for i = 0, 1, ... at about `perSecond` messages a second until stopped, from
 * one idempotent producer (no duplicates, per-partition order kept).
 */
export class SteadyProducer<T> {
  readonly #sent: Array<Promise<SentMessage<T>>> = [];
  #stop = false;
  #loop: Promise<void> | undefined;
  #producer: TrackedProducer | undefined;

  constructor(
    readonly brokers: string,
    readonly topic: string,
    readonly make: (i: number) => { message: OutgoingMessage; meta: T },
    readonly perSecond: number,
  ) {}

  async start(): Promise<void> {
    const producer = await TrackedProducer.connect(this.brokers);
    this.#producer = producer;
    this.#loop = (async () => {
      const started = Date.now();
      let i = 0;
      while (!this.#stop) {
        const due = Math.floor(((Date.now() - started) / 1000) * this.perSecond);
        for (; i < due && !this.#stop; i += 1) {
          const { message, meta } = this.make(i);
          const index = i;
          const sent = producer.send(this.topic, message).then((delivered) => ({ index, meta, delivered }));
          sent.catch(() => {}); // reported by stop()
          this.#sent.push(sent);
        }
        await sleep(20);
      }
    })();
  }

  /** How many messages were handed to the producer so far. */
  get count(): number {
    return this.#sent.length;
  }

  /** Stops producing, waits for every acknowledgement and returns what was sent. */
  async stop(): Promise<Array<SentMessage<T>>> {
    this.#stop = true;
    await this.#loop;
    const producer = this.#producer;
    if (!producer) return [];
    try {
      await producer.flush();
      return await Promise.all(this.#sent);
    } finally {
      await producer.disconnect();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Killing runs

/**
 * When to kill a run: once `line` has matched `count` log lines (or `maxWaitMs` after the start,
 * whichever comes first; without `line`, `maxWaitMs` after the start), then `delayMs` later.
 */
export interface KillPlan {
  /** What the kill aims at (consume, spill, flush, commit, recovery, ...), for the record. */
  readonly phase: string;
  readonly line?: RegExp;
  readonly count?: number;
  readonly delayMs: number;
  readonly maxWaitMs?: number;
  /** Another condition to wait for (polled every few milliseconds), e.g. a file appearing. */
  readonly probe?: () => boolean;
}

/** What happened to one run. */
export interface KillOutcome {
  readonly plan: KillPlan;
  /** The process was still running when SIGKILL was sent. */
  readonly landed: boolean;
  /** The trigger line (or probe) was seen (else the wait ran out). */
  readonly lineSeen: boolean;
  /** Exit code (null when ended by a signal). */
  readonly exit: number | null;
  /** The signal that ended it, if any (SIGKILL when it was ours). */
  readonly signal: NodeJS.Signals | null;
  /** The last log message before the kill. */
  readonly lastMsg: string;
  readonly output: string;
  readonly ms: number;
}

/** Counts complete log lines matching a pattern as they arrive. */
function lineCounter(cli: RunningCli, pattern: RegExp | undefined): () => number {
  let matched = 0;
  let partial = '';
  const onData = (chunk: Buffer) => {
    if (!pattern) return;
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) if (pattern.test(l)) matched += 1;
  };
  cli.child.stdout?.on('data', onData);
  cli.child.stderr?.on('data', onData);
  return () => matched;
}

function alive(cli: RunningCli): boolean {
  return cli.child.exitCode === null && cli.child.signalCode === null;
}

/** The `msg` of the last complete JSON log line. */
export function lastMessage(output: string): string {
  const lines = output.split('\n');
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const m = /"msg":"([^"]*)"/.exec(lines[i] as string);
    if (m) return m[1] as string;
  }
  return '(no log line)';
}

/** Kills a running CLI with SIGKILL according to `plan` (unless it exits first). */
export async function killWhen(cli: RunningCli, plan: KillPlan, started = Date.now()): Promise<{ landed: boolean; lineSeen: boolean; lastMsg: string }> {
  const matches = lineCounter(cli, plan.line);
  const maxWait = plan.maxWaitMs ?? 60_000;
  let lineSeen = false;
  while (alive(cli)) {
    if ((plan.line && matches() >= (plan.count ?? 1)) || plan.probe?.()) {
      lineSeen = true;
      break;
    }
    if (Date.now() - started >= maxWait) break;
    await sleep(2);
  }
  const delayUntil = Date.now() + plan.delayMs;
  while (alive(cli) && Date.now() < delayUntil) await sleep(Math.min(2, delayUntil - Date.now()));
  if (!alive(cli)) return { landed: false, lineSeen, lastMsg: lastMessage(cli.output()) };
  const lastMsg = lastMessage(cli.output());
  cli.child.kill('SIGKILL');
  return { landed: true, lineSeen, lastMsg };
}

/** Starts the CLI and kills it according to `plan` (unless it finishes first). */
export async function runAndKill(args: string[], plan: KillPlan, env: NodeJS.ProcessEnv = {}): Promise<KillOutcome> {
  const started = Date.now();
  const cli = startCli(args, env);
  const { landed, lineSeen, lastMsg } = await killWhen(cli, plan, started);
  const exit = await cli.exited;
  return { plan, landed, lineSeen, exit, signal: cli.child.signalCode, lastMsg, output: cli.output(), ms: Date.now() - started };
}

/** How many log lines of `output` match. */
export function countLines(output: string, pattern: RegExp): number {
  return output.split('\n').filter((l) => pattern.test(l)).length;
}

/** Counts of values, as a plain object sorted by key (for logs). */
export function tally(values: Iterable<string>): Record<string, number> {
  const out = new Map<string, number>();
  for (const v of values) out.set(v, (out.get(v) ?? 0) + 1);
  return Object.fromEntries([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// ---------------------------------------------------------------------------------------------
// Exact comparison

type Row = Record<string, unknown>;

/** A JSON text of a row with its keys sorted. */
export function canonical(row: Row): string {
  return JSON.stringify(Object.keys(row).sort().map((k) => [k, row[k]]));
}

/** What differs between an actual and an expected multiset of rows (empty lists: identical). */
export interface RowDiff {
  /** Counts: rows read, rows expected. */
  readonly actualRows: number;
  readonly expectedRows: number;
  /** Keys expected and absent. */
  readonly missing: { count: number; sample: string[] };
  /** Keys present more often than expected (with how often). */
  readonly duplicated: { count: number; sample: string[] };
  /** Keys present and not expected. */
  readonly unexpected: { count: number; sample: string[] };
  /** Keys present as often as expected but with other values. */
  readonly differing: { count: number; sample: Array<{ key: string; expected: string[]; actual: string[] }> };
}

/**
 * Compares two multisets of rows grouped by `keyOf`. The result's lists are all empty exactly
 * when the multisets are equal (each expected row present exactly as often, nothing else).
 */
export function diffRows(actual: readonly Row[], expected: readonly Row[], keyOf: (r: Row) => string, sample = 15): RowDiff {
  const group = (rows: readonly Row[]) => {
    const m = new Map<string, string[]>();
    for (const r of rows) {
      const k = keyOf(r);
      const list = m.get(k);
      if (list) list.push(canonical(r));
      else m.set(k, [canonical(r)]);
    }
    for (const list of m.values()) list.sort();
    return m;
  };
  const a = group(actual);
  const e = group(expected);
  const missing: string[] = [];
  const duplicated: string[] = [];
  const unexpected: string[] = [];
  const differing: Array<{ key: string; expected: string[]; actual: string[] }> = [];
  for (const [k, want] of e) {
    const got = a.get(k);
    if (!got) missing.push(k);
    else if (got.length > want.length) duplicated.push(`${k} ×${got.length} (expected ×${want.length})`);
    else if (got.length < want.length) missing.push(`${k} ×${want.length - got.length} of ×${want.length}`);
    else if (got.some((g, i) => g !== want[i])) differing.push({ key: k, expected: want, actual: got });
  }
  for (const k of a.keys()) if (!e.has(k)) unexpected.push(`${k} ×${a.get(k)?.length}`);
  const cut = <T>(xs: T[]) => ({ count: xs.length, sample: xs.sort().slice(0, sample) });
  return {
    actualRows: actual.length,
    expectedRows: expected.length,
    missing: cut(missing),
    duplicated: cut(duplicated),
    unexpected: cut(unexpected),
    differing: { count: differing.length, sample: differing.slice(0, sample) },
  };
}

/** The diff of two identical multisets of `n` rows, to compare a {@link RowDiff} against. */
export function noDiff(n: number): RowDiff {
  const none = { count: 0, sample: [] };
  return { actualRows: n, expectedRows: n, missing: none, duplicated: none, unexpected: none, differing: { count: 0, sample: [] } };
}

/** Polls `check` until it is true or the time is up (then throws, naming `what`). */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(everyMs);
  }
}
