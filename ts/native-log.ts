/**
 * Native log records (delta-rs, DataFusion, object_store and our Rust core) forwarded into the
 * pipeline's logger, so one level and one format cover both sides. The native side queues
 * records; this drains the queue on a short timer (and on demand), never from a native thread.
 */
import type { Logger, LogLevel } from './log.js';
import { drainNativeLogs, setNativeLogLevel, type NativeLogRecord } from './native.js';

const DRAIN_INTERVAL_MS = 500;

/** Forwards native records to a logger until stopped. */
export class NativeLogForwarder {
  readonly #log: Logger;
  readonly #timer: NodeJS.Timeout;

  /**
   * Starts keeping native records at `level` and forwarding them to `log`, which masks the
   * credentials (`maskingLogger`): a library that prints a connection string or storage options
   * must not leak one.
   */
  constructor(log: Logger, level: LogLevel | 'off') {
    this.#log = log;
    setNativeLogLevel(level);
    this.#timer = setInterval(() => this.drain(), DRAIN_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Forwards every record queued so far. */
  drain(): void {
    const { records, dropped } = drainNativeLogs();
    for (const record of records) this.#forward(record);
    if (dropped > 0) this.#log.warn('native log records dropped: the queue was full', { dropped });
  }

  /** Forwards what is queued and stops keeping native records. */
  stop(): void {
    clearInterval(this.#timer);
    this.drain();
    setNativeLogLevel('off');
  }

  #forward(record: NativeLogRecord): void {
    if (record.level === 'off') return;
    const fields: Record<string, unknown> = { source: 'native', target: record.target };
    for (const f of record.fields) fields[f.name] = f.value;
    this.#log[record.level](record.message, fields);
  }
}
