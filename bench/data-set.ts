/**
 * The benchmark data set: JSON events of about 300 bytes over 3 partitions and 2 days, 5% of them
 * sent twice (producer retries), produced once per size into a topic named after its version.
 */
import Kafka from 'node-rdkafka';
import type { ColumnSpec } from '../dist/index.js';
import { createTopic, produceMessages, type OutgoingMessage } from '../dist/tools/kafka-admin.js';

export const BENCH_DAYS_COLUMN = 'date_col';

export const BENCH_COLUMNS: ColumnSpec[] = [
  { name: 'event_id', dataType: 'string', nullable: false },
  { name: 'user_id', dataType: 'string', nullable: true },
  { name: 'event_type', dataType: 'string', nullable: true },
  { name: 'amount', dataType: 'double', nullable: true },
  { name: 'quantity', dataType: 'long', nullable: true },
  { name: 'event_time', dataType: 'timestamp', nullable: true },
  { name: 'page', dataType: 'string', nullable: true },
  { name: 'user_agent', dataType: 'string', nullable: true },
  { name: BENCH_DAYS_COLUMN, dataType: 'string', nullable: false },
];

const DAYS = ['2026-11-22', '2026-11-23'];
const TYPES = ['view', 'click', 'cart', 'purchase'];
const AGENTS = [
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
];

/** mulberry32: a small seeded generator, so every run (and every machine) sees the same data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `distinct` events; every 20th is sent twice. Yields distinct + distinct/20 messages. */
function* events(distinct: number): Generator<OutgoingMessage> {
  for (let i = 0; i < distinct; i++) {
    const day = DAYS[i % 2] as string;
    const value = JSON.stringify({
      event_id: `evt-${i}`,
      user_id: `user-${i % 50_000}`,
      event_type: TYPES[i % TYPES.length],
      amount: Math.round((i % 10_000) * 1.37) / 100,
      quantity: i % 7,
      event_time: `${day}T${String(i % 24).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}:${String(i % 59).padStart(2, '0')}Z`,
      page: `/catalog/category-${i % 120}/item-${i % 9973}?ref=campaign-${i % 31}`,
      user_agent: AGENTS[i % AGENTS.length],
      [BENCH_DAYS_COLUMN]: day,
    });
    const message = { key: `user-${i % 50_000}`, value };
    yield message;
    if (i % 20 === 0) yield message;
  }
}

/** Messages in a data set of `distinct` events. */
export function messageCount(distinct: number): number {
  return distinct + Math.ceil(distinct / 20);
}

/** The low and high watermark of each of a topic's first `partitions` partitions. */
export async function watermarks(brokers: string, topic: string, partitions: number): Promise<Array<{ low: number; high: number }>> {
  const consumer = new Kafka.KafkaConsumer({ 'bootstrap.servers': brokers, 'group.id': `bench-watermarks-${process.pid}` }, {});
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 30_000 }, (err) => (err ? reject(err) : resolve())));
  try {
    const marks: Array<{ low: number; high: number }> = [];
    for (let partition = 0; partition < partitions; partition += 1) {
      marks.push(
        await new Promise<{ low: number; high: number }>((resolve, reject) =>
          consumer.queryWatermarkOffsets(topic, partition, 10_000, (err, o) => (err ? reject(err) : resolve({ low: o.lowOffset, high: o.highOffset }))),
        ),
      );
    }
    return marks;
  } finally {
    await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  }
}

/** Messages a data-set topic (3 partitions) holds. */
export async function messagesIn(brokers: string, topic: string): Promise<number> {
  return (await watermarks(brokers, topic, 3)).reduce((sum, m) => sum + m.high - m.low, 0);
}

/** The topic holding the data set of `distinct` events, produced now unless already complete. */
export async function ensureDataSet(brokers: string, distinct: number): Promise<{ topic: string; messages: number }> {
  const messages = messageCount(distinct);
  for (let attempt = 1; ; attempt += 1) {
    const topic = `kdr_bench_v1_${distinct}_${attempt}`;
    const created = await createTopic(brokers, topic, 3);
    if (!created) {
      if ((await messagesIn(brokers, topic)) === messages) return { topic, messages };
      continue; // an interrupted earlier run: use a fresh topic
    }
    await produceMessages(brokers, topic, events(distinct));
    return { topic, messages };
  }
}
