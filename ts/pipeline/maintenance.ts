/**
 * Table upkeep beside ingestion: every `maintenance.interval` seconds, compaction of the closed
 * days that have small files (and of the open day past a file count), one commit per day, and
 * once a day a vacuum. Each compaction plans on the table's newest version, so a day another
 * instance compacted first is found with nothing to do, and it changes no data
 * (`dataChange=false`): ingestion's appends never conflict with it, and a MERGE into the same
 * day that does is retried by whichever commit came second. A failure is logged and counted,
 * and the next check tries again: ingestion never waits for or stops on maintenance.
 */
import type { Config, MaintenanceConfig } from '../config/index.js';
import type { Logger } from '../log.js';
import type { MaintenanceMetrics } from '../metrics/maintenance.js';
import type { DayFiles, DeltaTarget, OptimizeResult } from '../table.js';
import type { Clock } from './schedule.js';

const DAY_MS = 86_400_000;

/** The calendar day (`YYYY-MM-DD`) of the instant `ms` in the IANA time zone `timezone`. */
export function dayIn(ms: number, timezone: string): string {
  // en-CA formats dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(ms));
}

/**
 * The first day not closed at `nowMs`: a day is closed `afterSeconds` after its end (midnight in
 * `timezone`), so the days before the day of `nowMs - afterSeconds` are.
 */
export function firstOpenDay(nowMs: number, timezone: string, afterSeconds: number): string {
  return dayIn(nowMs - afterSeconds * 1000, timezone);
}

/**
 * The days worth compacting, oldest first: closed days with at least two small files, and days
 * not closed yet with more small files than `openDayFiles` (when it is above 0).
 */
export function daysToCompact(days: readonly DayFiles[], firstOpen: string, openDayFiles: number): DayFiles[] {
  return days.filter((d) => (d.day < firstOpen ? d.smallFiles >= 2 : openDayFiles > 0 && d.smallFiles > openDayFiles));
}

/** How {@link compactDays} writes. */
export interface CompactOptions {
  dayColumn: string;
  targetFileSizeBytes: number;
  memoryBudgetBytes?: number;
  maxAttempts: number;
}

/** Compacts the days one after the other, each in a commit of its own; resolves with what each did. */
export async function compactDays(
  target: DeltaTarget,
  days: readonly string[],
  options: CompactOptions,
  onDay: (result: OptimizeResult) => void = () => {},
): Promise<OptimizeResult[]> {
  const out: OptimizeResult[] = [];
  for (const day of days) {
    const result = await target.optimizeDay(options.dayColumn, day, {
      targetSizeBytes: options.targetFileSizeBytes,
      memoryBudgetBytes: options.memoryBudgetBytes,
      maxAttempts: options.maxAttempts,
    });
    onDay(result);
    out.push(result);
  }
  return out;
}

/** What {@link MaintenanceScheduler} needs. */
export interface MaintenanceDeps {
  target: DeltaTarget;
  config: Config;
  metrics: MaintenanceMetrics;
  log: Logger;
  clock: Clock;
}

/** Runs the checks on a timer; {@link MaintenanceScheduler.check} runs one by hand. */
export class MaintenanceScheduler {
  readonly #deps: MaintenanceDeps;
  readonly #settings: MaintenanceConfig;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastVacuum = Number.NEGATIVE_INFINITY;

  constructor(deps: MaintenanceDeps) {
    this.#deps = deps;
    this.#settings = deps.config.maintenance;
  }

  /** Whether any task is configured. */
  get enabled(): boolean {
    return this.#settings.optimize || this.#settings.vacuum;
  }

  /** Starts the timer: the first check comes one interval from now. */
  start(): void {
    if (!this.enabled || this.#timer) return;
    this.#timer = setInterval(() => {
      this.#running ??= this.check().finally(() => {
        this.#running = undefined;
      });
    }, this.#settings.intervalSeconds * 1000);
    // Maintenance alone never keeps the process alive.
    this.#timer.unref();
  }

  /** Stops the timer; resolves when a check in progress has finished. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One check: the compactions due, then the vacuum when a day has passed since the last. */
  async check(): Promise<void> {
    if (this.#settings.optimize || this.#settings.optimizeOpenDayFiles > 0) await this.#guarded('optimize', () => this.#compact());
    if (this.#settings.vacuum && this.#deps.clock.now() - this.#lastVacuum >= DAY_MS) {
      await this.#guarded('vacuum', () => this.#vacuum());
    }
  }

  async #compact(): Promise<void> {
    const { target, config, metrics, log, clock } = this.#deps;
    const s = this.#settings;
    const column = config.delta.partitionColumn;
    const days = await target.dayFiles(column, s.targetFileSizeBytes);
    metrics.dayFiles(target.uri, days);
    const firstOpen = firstOpenDay(clock.now(), config.delta.partitionSource.timezone, s.optimizeAfterSeconds);
    const due = daysToCompact(days, s.optimize ? firstOpen : '', s.optimizeOpenDayFiles);
    if (due.length === 0) return;
    log.debug('compacting days', { days: due.map((d) => d.day).join(',') });
    await compactDays(
      target,
      due.map((d) => d.day),
      {
        dayColumn: column,
        targetFileSizeBytes: s.targetFileSizeBytes,
        memoryBudgetBytes: config.buffer.maxMemoryBytes,
        maxAttempts: config.concurrency.retryAttempts + 1,
      },
      (r) => {
        metrics.compacted(target.uri, r);
        if (r.filesRemoved > 0) {
          log.info('day compacted', { day: r.day, filesRemoved: r.filesRemoved, filesAdded: r.filesAdded, bytesRewritten: r.bytesRewritten, version: r.version });
        }
      },
    );
  }

  async #vacuum(): Promise<void> {
    const { target, metrics, log, clock } = this.#deps;
    const result = await target.vacuum();
    this.#lastVacuum = clock.now();
    metrics.vacuumed(target.uri, result.files.length);
    log.info('table vacuumed', { filesRemoved: result.files.length, retentionHours: result.retentionHours });
  }

  async #guarded(task: 'optimize' | 'vacuum', work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      this.#deps.metrics.failed(this.#deps.target.uri, task);
      this.#deps.log.warn(`table maintenance (${task}) failed; the next check tries again`, { error });
    }
  }
}
