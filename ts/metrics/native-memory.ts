/** The native core's heap, read from jemalloc when Prometheus scrapes. */
import { Gauge, type Registry } from 'prom-client';
import { nativeMemory } from '../native.js';

/**
 * `kafka_delta_native_memory_bytes{kind}`: `allocated` (live native allocations: staged Arrow,
 * the flush's unit and writer buffers) and `resident` (what jemalloc holds in RAM for them).
 * Beside `process_resident_memory_bytes` it tells an operator sizing `buffer.max_memory` which
 * part of the process's memory the native core holds and which Node and librdkafka hold.
 */
export function registerNativeMemory(registers: Registry[]): void {
  new Gauge({
    name: 'kafka_delta_native_memory_bytes',
    help: "Bytes of the native core's heap (jemalloc): allocated (live allocations) and resident (held in RAM); process-wide.",
    labelNames: ['kind'],
    registers,
    collect() {
      const memory = nativeMemory();
      this.set({ kind: 'allocated' }, memory.allocatedBytes);
      this.set({ kind: 'resident' }, memory.residentBytes);
    },
  });
}
