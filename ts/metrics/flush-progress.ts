/** Gauges of the flush in progress, read from the native core when Prometheus scrapes. */
import { Gauge, type Registry } from 'prom-client';
import { nativeFlushProgress, type FlushPhase } from '../native.js';

const PHASES: readonly FlushPhase[] = ['idle', 'consolidate', 'write', 'commit'];

/**
 * `kafka_delta_flush_rows_done` / `_rows_total` (the staged rows of the flush in progress and
 * how many were read, consolidated or written so far) and `kafka_delta_flush_phase` (1 for the
 * phase it is in): a daily flush of a large day takes minutes, and these show it moving.
 */
export function registerFlushProgress(registers: Registry[]): void {
  new Gauge({
    name: 'kafka_delta_flush_rows_done',
    help: 'Staged rows the flush in progress has read and consolidated or written so far; process-wide.',
    registers,
    collect() {
      this.set(nativeFlushProgress().rowsDone);
    },
  });
  new Gauge({
    name: 'kafka_delta_flush_rows_total',
    help: 'Staged rows of the flush in progress; process-wide.',
    registers,
    collect() {
      this.set(nativeFlushProgress().rowsTotal);
    },
  });
  new Gauge({
    name: 'kafka_delta_flush_phase',
    help: 'The phase of the flush in progress (1) among idle, consolidate, write and commit; process-wide.',
    labelNames: ['phase'],
    registers,
    collect() {
      const { phase } = nativeFlushProgress();
      for (const p of PHASES) this.set({ phase: p }, p === phase ? 1 : 0);
    },
  });
}
