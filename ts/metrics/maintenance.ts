/** Metrics of the table upkeep the pipeline runs beside ingestion (compaction and vacuum). */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { DayFiles, OptimizeResult } from '../table.js';

/** Days reported by `kafka_delta_day_files`: the newest ones, so the series stay few over months. */
export const REPORTED_DAYS = 7;

/** The maintenance series, registered in the pipeline's registry. */
export class MaintenanceMetrics {
  readonly #dayFiles: Gauge<'table' | 'day'>;
  readonly #compactions: Counter<'table'>;
  readonly #filesCompacted: Counter<'table'>;
  readonly #bytesRewritten: Counter<'table'>;
  readonly #vacuumed: Counter<'table'>;
  readonly #failures: Counter<'table' | 'task'>;

  constructor(registers: Registry[]) {
    this.#dayFiles = new Gauge({
      name: 'kafka_delta_day_files',
      help: `Data files of each of the table's newest ${REPORTED_DAYS} days, at the last maintenance check.`,
      labelNames: ['table', 'day'],
      registers,
    });
    this.#compactions = new Counter({
      name: 'kafka_delta_compactions_total',
      help: 'Days compacted (one commit each).',
      labelNames: ['table'],
      registers,
    });
    this.#filesCompacted = new Counter({
      name: 'kafka_delta_compaction_files_removed_total',
      help: 'Small files rewritten into larger ones by compactions.',
      labelNames: ['table'],
      registers,
    });
    this.#bytesRewritten = new Counter({
      name: 'kafka_delta_compaction_bytes_rewritten_total',
      help: 'Bytes of the files compactions rewrote.',
      labelNames: ['table'],
      registers,
    });
    this.#vacuumed = new Counter({
      name: 'kafka_delta_vacuum_files_removed_total',
      help: 'Unreferenced data files removed by vacuums.',
      labelNames: ['table'],
      registers,
    });
    this.#failures = new Counter({
      name: 'kafka_delta_maintenance_failures_total',
      help: 'Maintenance tasks that failed (retried at the next check; ingestion goes on).',
      labelNames: ['table', 'task'],
      registers,
    });
  }

  /** The file counts of the newest days, replacing the previous check's. */
  dayFiles(table: string, days: readonly DayFiles[]): void {
    this.#dayFiles.reset();
    for (const d of days.slice(-REPORTED_DAYS)) this.#dayFiles.set({ table, day: d.day }, d.files);
  }

  /** Counts a day's compaction (nothing when it had nothing to do). */
  compacted(table: string, result: OptimizeResult): void {
    if (result.filesRemoved === 0) return;
    this.#compactions.inc({ table });
    this.#filesCompacted.inc({ table }, result.filesRemoved);
    this.#bytesRewritten.inc({ table }, result.bytesRewritten);
  }

  /** Counts the files a vacuum removed. */
  vacuumed(table: string, files: number): void {
    this.#vacuumed.inc({ table }, files);
  }

  /** Counts a failed task. */
  failed(table: string, task: 'optimize' | 'vacuum'): void {
    this.#failures.inc({ table, task });
  }
}
