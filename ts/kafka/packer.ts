/**
 * Packs a consumed batch into a few flat buffers so it crosses into native code in one call:
 * payloads back to back with their end offsets, plus typed arrays of positions.
 */
import type { Message } from 'node-rdkafka';
import type { MessageBatch } from '../stage.js';

/** Bytes of a message value or key (strings are UTF-8 encoded). */
function bytesOf(value: Buffer | string | null | undefined): Buffer | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

/**
 * Packs `messages`. `topicIndex` maps each topic to its index in the stage's topic list;
 * `withKeys` also packs message keys (when a table column takes them).
 */
export function packMessages(
  messages: readonly Message[],
  topicIndex: ReadonlyMap<string, number>,
  withKeys: boolean,
): MessageBatch {
  const n = messages.length;
  let payloadBytes = 0;
  let keyBytes = 0;
  for (const m of messages) {
    payloadBytes += m.value?.length ?? 0;
    if (withKeys) keyBytes += bytesOf(m.key)?.length ?? 0;
  }
  const payloads = Buffer.allocUnsafe(payloadBytes);
  const payloadEnds = new Uint32Array(n);
  const topicIndexes = new Uint16Array(n);
  const partitions = new Int32Array(n);
  const offsets = new Float64Array(n);
  const timestamps = new Float64Array(n);
  const keys = withKeys ? Buffer.allocUnsafe(keyBytes) : undefined;
  const keyEnds = withKeys ? new Uint32Array(n) : undefined;

  let at = 0;
  let keyAt = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i] as Message;
    const value = m.value;
    if (value) at += value.copy(payloads, at);
    payloadEnds[i] = at;
    const index = topicIndex.get(m.topic);
    if (index === undefined) throw new Error(`message from unexpected topic ${JSON.stringify(m.topic)}`);
    topicIndexes[i] = index;
    partitions[i] = m.partition;
    offsets[i] = m.offset;
    timestamps[i] = typeof m.timestamp === 'number' && m.timestamp >= 0 ? m.timestamp : -1;
    if (keys && keyEnds) {
      const key = bytesOf(m.key);
      if (key) keyAt += key.copy(keys, keyAt);
      keyEnds[i] = keyAt;
    }
  }
  return { payloads, payloadEnds, topicIndexes, partitions, offsets, timestamps, keys, keyEnds };
}
