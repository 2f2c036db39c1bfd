/**
 * Packs a consumed batch into a few flat buffers so it crosses into native code in one call:
 * payloads back to back with their end offsets, plus typed arrays of positions.
 */
import type { Message } from 'node-rdkafka';
import type { MessageBatch } from '../stage.js';
import { InternalError } from '../errors.js';

/** Bytes of a message value or key (strings are UTF-8 encoded). */
function bytesOf(value: Buffer | string | null | undefined): Buffer | null {
  if (value === null || value === undefined) return null;
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

/** A message's headers as one JSON object of strings (repeated names keep the last value). */
function headersJson(headers: Message['headers']): string {
  if (!headers || headers.length === 0) return '';
  const out: Record<string, string> = {};
  for (const header of headers) {
    for (const [name, value] of Object.entries(header)) out[name] = Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
  }
  return JSON.stringify(out);
}

/** Bits of a message's `absent` flags: what the message does not have (null, not empty). */
export const ABSENT_VALUE = 1;
export const ABSENT_KEY = 2;

/** Which optional message parts to pack (only those a table column takes). */
export interface PackOptions {
  keys: boolean;
  headers: boolean;
}

/** Messages and payload bytes of a packed batch per topic, indexed like the stage's topic list. */
export interface TopicTally {
  messages: number[];
  bytes: number[];
}

/** Packs one optional byte column: values back to back with their end offsets. */
function packColumn(values: ReadonlyArray<Buffer | null>): { bytes: Buffer; ends: Uint32Array } {
  const ends = new Uint32Array(values.length);
  let at = 0;
  values.forEach((v, i) => {
    at += v?.length ?? 0;
    ends[i] = at;
  });
  return { bytes: Buffer.concat(values.filter((v): v is Buffer => v !== null), at), ends };
}

/** Adds a run of one topic to `tally`. */
function addRun(tally: TopicTally | undefined, topic: number, messages: number, bytes: number): void {
  if (!tally || topic < 0 || messages === 0) return;
  tally.messages[topic] = (tally.messages[topic] ?? 0) + messages;
  tally.bytes[topic] = (tally.bytes[topic] ?? 0) + bytes;
}

/**
 * Packs `messages`. `topicIndex` maps each topic to its index in the stage's topic list;
 * keys and headers are packed only when asked for. When `tally` is given, the messages and
 * payload bytes of each topic are added to it (the metrics need them; counted here, in the
 * pass that copies, rather than in a pass of their own).
 */
export function packMessages(
  messages: readonly Message[],
  topicIndex: ReadonlyMap<string, number>,
  options: PackOptions = { keys: false, headers: false },
  tally?: TopicTally,
): MessageBatch {
  const n = messages.length;
  const withKeys = options.keys;
  // One pass for the sizes, one to copy: no per-message arrays or slices.
  let payloadBytes = 0;
  let keyBytes = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i] as Message;
    payloadBytes += m.value?.length ?? 0;
    if (withKeys && m.key) keyBytes += typeof m.key === 'string' ? Buffer.byteLength(m.key) : m.key.length;
  }
  const payloads = Buffer.allocUnsafe(payloadBytes);
  const payloadEnds = new Uint32Array(n);
  const topicIndexes = new Uint16Array(n);
  const partitions = new Int32Array(n);
  const offsets = new Float64Array(n);
  const timestamps = new Float64Array(n);
  // A tombstone (null value) and a keyless message differ from empty ones; spans cannot say so.
  const absent = new Uint8Array(n);
  const keys = withKeys ? Buffer.allocUnsafe(keyBytes) : undefined;
  const keyEnds = withKeys ? new Uint32Array(n) : undefined;
  let at = 0;
  let keyAt = 0;
  let lastTopic = '';
  let lastIndex = -1;
  let runStart = 0;
  let runBytesStart = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i] as Message;
    // Batches come in runs of one partition: look the topic up once per run.
    if (m.topic !== lastTopic || lastIndex < 0) {
      const index = topicIndex.get(m.topic);
      if (index === undefined) throw new InternalError('INTERNAL', `message from unexpected topic ${JSON.stringify(m.topic)}`);
      addRun(tally, lastIndex, i - runStart, at - runBytesStart);
      lastTopic = m.topic;
      lastIndex = index;
      runStart = i;
      runBytesStart = at;
    }
    const value = m.value;
    if (value) at += value.copy(payloads, at);
    payloadEnds[i] = at;
    const key = m.key;
    absent[i] = (value === null || value === undefined ? ABSENT_VALUE : 0) | (key === null || key === undefined ? ABSENT_KEY : 0);
    if (keys && keyEnds) {
      if (key) keyAt += typeof key === 'string' ? keys.write(key, keyAt, 'utf8') : key.copy(keys, keyAt);
      keyEnds[i] = keyAt;
    }
    topicIndexes[i] = lastIndex;
    partitions[i] = m.partition;
    offsets[i] = m.offset;
    timestamps[i] = typeof m.timestamp === 'number' && m.timestamp >= 0 ? m.timestamp : -1;
  }
  addRun(tally, lastIndex, n - runStart, at - runBytesStart);
  const batch: MessageBatch = { payloads, payloadEnds, topicIndexes, partitions, offsets, timestamps, absent };
  if (keys && keyEnds) {
    batch.keys = keys;
    batch.keyEnds = keyEnds;
  }
  if (options.headers) {
    const headers = packColumn(messages.map((m) => bytesOf(headersJson(m.headers)) ?? null));
    batch.headers = headers.bytes;
    batch.headerEnds = headers.ends;
  }
  return batch;
}
