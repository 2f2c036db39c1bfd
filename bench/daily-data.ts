/**
 * The daily-flush data set (issue #16): `messages` JSON events of about 300 bytes, all on ONE day
 * (the day a daily flush covers), over 3 partitions. Every 5th message repeats an earlier
 * event_id (chosen with a fixed seed) with a higher version, i.e. a larger `amount` and a later
 * `event_time`, so consolidation decides which row survives. The Kafka key is the event_id, so a
 * key's versions stay in one partition, in order. Produced once per size into a topic named
 * after its version (like `ensureDataSet`).
 *
 * The MERGE cases also need a target table that already holds 30 days: {@link prefillPayload}
 * makes those rows, part of the flush day's overlapping the data set's keys.
 */
import { createTopic, produceMessages, type OutgoingMessage } from '../dist/tools/kafka-admin.js';
import { BENCH_DAYS_COLUMN, messagesIn, seededRandom } from './data-set.js';

/** The day every message of the data set falls on. */
export const FLUSH_DAY = '2026-11-23';
/** Days the MERGE target holds before the run, the flush day last. */
export const PREFILL_DAYS = 30;
export const PREFILL_ROWS_PER_DAY = 20_000;
/** Pre-filled rows of the flush day whose event_id the data set also carries (merge updates). */
export const PREFILL_OVERLAP = 10_000;

const TYPES = ['view', 'click', 'cart', 'purchase'];
const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
];

const pad = (n: number) => String(n).padStart(2, '0');

/** One event's JSON; `seq` spreads the fields and orders event_time within the day. */
export function payload(eventId: string, version: number, day: string, seq: number): string {
  // Later messages get later times (a repeat is later than what it repeats, up to ~1M per day).
  const second = Math.floor(seq / 12) % 86_400;
  return JSON.stringify({
    event_id: eventId,
    user_id: `user-${seq % 50_000}`,
    event_type: TYPES[seq % TYPES.length],
    // A later version of an event carries a larger amount: the consolidated row shows which won.
    amount: Math.round((seq % 10_000) * 1.37) / 100 + version * 1000,
    quantity: seq % 7,
    event_time: `${day}T${pad(Math.floor(second / 3600))}:${pad(Math.floor(second / 60) % 60)}:${pad(second % 60)}Z`,
    page: `/catalog/category-${seq % 120}/item-${seq % 9973}?ref=campaign-${seq % 31}`,
    user_agent: AGENTS[seq % AGENTS.length],
    [BENCH_DAYS_COLUMN]: day,
  });
}

/** Distinct event_ids in a data set of `messages` (every 5th message is a repeat). */
export function distinctEvents(messages: number): number {
  return messages - Math.floor(messages / 5);
}

/** The data set's messages: event_ids `evt-0..distinct-1`, repeats of a random earlier one. */
function* events(messages: number): Generator<OutgoingMessage> {
  const random = seededRandom(16);
  const versions = new Uint16Array(distinctEvents(messages));
  let distinct = 0;
  for (let m = 0; m < messages; m++) {
    const id = m % 5 === 4 ? Math.floor(random() * distinct) : distinct++;
    const eventId = `evt-${id}`;
    const version = m % 5 === 4 ? (versions[id] = (versions[id] ?? 0) + 1) : 0;
    yield { key: eventId, value: payload(eventId, version, FLUSH_DAY, m) };
  }
}

/** The pre-filled days, oldest first, ending with the flush day. */
export function prefillDays(): string[] {
  const last = Date.parse(`${FLUSH_DAY}T00:00:00Z`);
  return Array.from({ length: PREFILL_DAYS }, (_, i) => new Date(last - (PREFILL_DAYS - 1 - i) * 86_400_000).toISOString().slice(0, 10));
}

/**
 * Row `j` of a pre-filled day: on the flush day the first {@link PREFILL_OVERLAP} rows carry
 * event_ids of the data set (spread over it, so MERGE updates them), the rest keys of their own.
 */
export function prefillPayload(day: string, j: number, distinct: number): string {
  const step = Math.max(1, Math.floor(distinct / PREFILL_OVERLAP));
  const eventId = day === FLUSH_DAY && j < PREFILL_OVERLAP ? `evt-${j * step}` : `old-${day}-${j}`;
  return payload(eventId, 0, day, j);
}

/** Rows the table should hold after each mode (the MERGE target's pre-fill included). */
export function expectedRows(mode: string, messages: number): number {
  const distinct = distinctEvents(messages);
  if (mode === 'insert') return messages;
  if (mode === 'dedup') return distinct;
  const overlap = Math.min(PREFILL_OVERLAP, distinct);
  return PREFILL_DAYS * PREFILL_ROWS_PER_DAY + distinct - overlap;
}


/** The topic holding the daily data set of `messages`, produced now unless already complete. */
export async function ensureDailyDataSet(brokers: string, messages: number): Promise<{ topic: string; messages: number }> {
  for (let attempt = 1; ; attempt += 1) {
    const topic = `kdr_bench_daily_v1_${messages}_${attempt}`;
    const created = await createTopic(brokers, topic, 3);
    if (!created) {
      if ((await messagesIn(brokers, topic)) === messages) return { topic, messages };
      continue; // an interrupted earlier run: use a fresh topic
    }
    await produceMessages(brokers, topic, events(messages));
    return { topic, messages };
  }
}
