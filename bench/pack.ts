/** Messages packed for a stage without a broker, as the consumer packs them. */
import type { MessageBatch } from '../dist/index.js';

/** Packs JSON payloads of partition 0 from `firstOffset` on, as `ts/kafka/packer.ts` packs them. */
export function packPartition0(payloads: readonly string[], firstOffset: number): MessageBatch {
  const bytes = payloads.map((p) => Buffer.from(p));
  let at = 0;
  return {
    payloads: Buffer.concat(bytes),
    payloadEnds: Uint32Array.from(bytes, (b) => (at += b.length)),
    topicIndexes: new Uint16Array(bytes.length),
    partitions: new Int32Array(bytes.length),
    offsets: Float64Array.from(bytes, (_, i) => firstOffset + i),
    timestamps: new Float64Array(bytes.length).fill(Date.now()),
  };
}
