/**
 * When to flush: at `batchSize` staged rows, every `intervalSeconds` after the last flush started,
 * and at the instants of a daily time or cron schedule read in an IANA time zone, whichever comes
 * first.
 *
 * This is bookkeeping only, with no timers: the consume loop polls Kafka with a short timeout, so
 * asking {@link FlushSchedule.due} once per iteration already notices a due flush when no
 * messages arrive, and an injected {@link Clock} lets tests cross midnight or a DST change
 * without waiting for it.
 */
import { Cron } from 'croner';
import type { BatchConfig } from '../config/index.js';
import { ConfigError } from '../errors.js';

/** A source of the current time, injected so that tests control it. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** The process's wall clock (`Date.now()`). */
export const systemClock: Clock = { now: () => Date.now() };

/** Why a flush is due: enough staged rows, the interval elapsed, or a scheduled instant passed. */
export type FlushTrigger = 'size' | 'interval' | 'schedule';

/** What a {@link FlushSchedule} watches; every trigger is optional, but at least one is needed. */
export interface FlushScheduleOptions {
  /** A daily time `"HH:MM"` or a 5-field cron expression (`"0 0 * * *"`). */
  schedule?: string;
  /** IANA time zone in which {@link FlushScheduleOptions.schedule} is read, e.g. `Europe/Berlin`. */
  timezone: string;
  /** Seconds from the start of one flush to the next; fractions allowed. */
  intervalSeconds?: number;
  /** Staged rows at which a flush is due. */
  batchSize?: number;
}

const DAILY = /^([01]\d|2[0-3]):([0-5]\d)$/;

/**
 * The 5-field cron pattern of a schedule: a daily `"HH:MM"` becomes `"MM HH * * *"`; a cron
 * expression is returned with its whitespace normalized. Does not check validity.
 */
export function cronPattern(schedule: string): string {
  const text = schedule.trim();
  const daily = DAILY.exec(text);
  if (daily) return `${Number(daily[2])} ${Number(daily[1])} * * *`;
  return text.split(/\s+/).join(' ');
}

function compile(schedule: string, timezone: string | undefined): Cron {
  // '5-part' refuses the seconds and year fields croner would otherwise accept, so a schedule
  // means what it means to cron(8). 'no-wildcard' treats lists and ranges of hours ("30 2,14")
  // as fixed times, as cron(8) does, so they too fire once in a repeated DST hour; steps and
  // wildcards keep firing on real time. Without a callback, croner only computes times: no timer.
  return new Cron(cronPattern(schedule), { timezone, mode: '5-part', fixedTimeRule: 'no-wildcard' });
}

/**
 * Why `schedule` cannot be used (croner's reason, or that it never fires), or undefined when it
 * can. The format check ("HH:MM" or five fields) is the config schema's; this adds field ranges,
 * names and impossible dates such as `0 0 31 2 *`.
 */
export function scheduleProblem(schedule: string): string | undefined {
  let cron: Cron;
  try {
    cron = compile(schedule, undefined);
  } catch (error) {
    return error instanceof Error ? error.message.replace(/^CronPattern: /, '').replace(/\.$/, '') : String(error);
  }
  return cron.nextRun() === null ? 'never fires' : undefined;
}

/**
 * Decides when the pipeline flushes. Call {@link FlushSchedule.due} on every loop iteration and
 * {@link FlushSchedule.flushed} whenever a flush starts, whatever started it.
 *
 * Scheduled instants are computed by croner in the configured time zone: a fixed time (no `*` or
 * step in the minute and hour fields) that falls into a spring-forward gap fires at the first
 * instant after the gap, and one that occurs twice in autumn fires once, at its first
 * occurrence; schedules with steps or wildcards (every 15 minutes) follow real time through
 * both. Instants missed while a flush ran (or while the process was stalled) make one flush, not
 * one per instant.
 */
export class FlushSchedule {
  readonly #clock: Clock;
  readonly #schedule: string | undefined;
  readonly #timezone: string;
  readonly #cron: Cron | undefined;
  readonly #intervalMs: number | undefined;
  readonly #batchSize: number | undefined;
  #lastFlushAt: number;
  #nextScheduledAt: number | undefined;

  /**
   * Starts counting the interval now and arms the first scheduled instant after now.
   *
   * @throws {ConfigError} when no trigger is given, the interval is not a positive number, the
   *   batch size is not a positive integer, or the schedule is invalid.
   */
  constructor(options: FlushScheduleOptions, clock: Clock = systemClock) {
    const { schedule, timezone, intervalSeconds, batchSize } = options;
    if (schedule === undefined && intervalSeconds === undefined && batchSize === undefined) {
      throw new ConfigError([{ key: 'batch', message: 'a flush schedule needs a schedule, an interval or a batch size' }], 'invalid flush schedule');
    }
    if (intervalSeconds !== undefined && !(intervalSeconds > 0 && Number.isFinite(intervalSeconds))) {
      throw new ConfigError([{ key: 'batch.batch_interval', message: `must be a positive number of seconds, got ${intervalSeconds}` }], 'invalid flush schedule');
    }
    if (batchSize !== undefined && !(Number.isSafeInteger(batchSize) && batchSize >= 1)) {
      throw new ConfigError([{ key: 'batch.batch_size', message: `must be a positive integer, got ${batchSize}` }], 'invalid flush schedule');
    }
    this.#clock = clock;
    this.#schedule = schedule;
    this.#timezone = timezone;
    this.#intervalMs = intervalSeconds === undefined ? undefined : intervalSeconds * 1000;
    this.#batchSize = batchSize;
    this.#lastFlushAt = clock.now();
    try {
      this.#cron = schedule === undefined ? undefined : compile(schedule, timezone);
      // croner checks the time zone only when it first computes a time: do it here, not in due().
      this.#nextScheduledAt = this.#nextAfter(this.#lastFlushAt);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConfigError([{ key: 'batch.schedule', message: `${JSON.stringify(schedule)} in ${timezone}: ${reason}` }], 'invalid flush schedule');
    }
  }

  /** A schedule for the `batch` section of a loaded configuration. */
  static fromConfig(batch: BatchConfig, clock: Clock = systemClock): FlushSchedule {
    return new FlushSchedule(
      { schedule: batch.schedule, timezone: batch.timezone, intervalSeconds: batch.batchIntervalSeconds, batchSize: batch.batchSize },
      clock,
    );
  }

  /**
   * The trigger that makes a flush due now, or undefined. A time trigger is due with no rows
   * staged too: whether an empty flush does anything is the caller's decision. Stays due until
   * {@link FlushSchedule.flushed} is called, so a check made while a flush is still running is
   * not lost.
   *
   * When several are due, `schedule` wins over `interval`, which wins over `size`: the trigger
   * only labels the flush (logs, metrics), and a configured wall-clock time is the most telling.
   *
   * @param stagedRows rows staged and not yet flushed.
   */
  due(stagedRows: number): FlushTrigger | undefined {
    const now = this.#clock.now();
    if (this.#nextScheduledAt !== undefined && now >= this.#nextScheduledAt) return 'schedule';
    if (this.#intervalMs !== undefined && now - this.#lastFlushAt >= this.#intervalMs) return 'interval';
    if (this.#batchSize !== undefined && stagedRows >= this.#batchSize) return 'size';
    return undefined;
  }

  /**
   * Records that a flush started now: the interval counts from here, and the next scheduled
   * instant is the first one after now. Instants that passed before are covered by this flush,
   * which is why they are skipped rather than fired one by one.
   */
  flushed(): void {
    const now = this.#clock.now();
    this.#lastFlushAt = now;
    this.#nextScheduledAt = this.#nextAfter(now);
  }

  /** The armed scheduled instant (possibly already passed and due), or undefined without a schedule. */
  nextScheduledAt(): Date | undefined {
    return this.#nextScheduledAt === undefined ? undefined : new Date(this.#nextScheduledAt);
  }

  /**
   * One line for logs, e.g. `at 02:00 daily (cron "0 2 * * *", Europe/Berlin), next
   * 2026-03-29T01:00:00.000Z; every 60 s; at 100000 staged rows`.
   */
  describe(): string {
    const parts: string[] = [];
    if (this.#schedule !== undefined) {
      const pattern = cronPattern(this.#schedule);
      const daily = DAILY.test(this.#schedule.trim());
      const when = daily ? `at ${this.#schedule.trim()} daily (cron "${pattern}", ${this.#timezone})` : `on cron "${pattern}" (${this.#timezone})`;
      const at = this.#nextScheduledAt;
      const next = at === undefined ? 'never again' : `next ${new Date(at).toISOString()}`;
      parts.push(`${when}, ${next}`);
    }
    if (this.#intervalMs !== undefined) parts.push(`every ${this.#intervalMs / 1000} s`);
    if (this.#batchSize !== undefined) parts.push(`at ${this.#batchSize} staged rows`);
    return parts.join('; ');
  }

  #nextAfter(now: number): number | undefined {
    return this.#cron?.nextRun(new Date(now))?.getTime();
  }
}
