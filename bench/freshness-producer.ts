/**
 * The steady producer of the freshness case, in its own process so that its CPU is not the
 * pipeline's: `node dist-bench/freshness-producer.js <brokers> <topic> <rate> <seconds>` sends
 * `rate` events a second (~300 B each, round-robin over 3 partitions, Kafka timestamp = the time
 * of the send) for `seconds`, then prints one JSON line with what it sent.
 */
import { connectProducer } from '../dist/tools/kafka-admin.js';
import { BENCH_DAYS_COLUMN } from './data-set.js';

/** librdkafka's "queue full": wait for deliveries and try again. */
const QUEUE_FULL = -184;
const TICK_MS = 5;

function eventValue(i: number, day: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      event_id: `fresh-${i}`,
      user_id: `user-${i % 50_000}`,
      event_type: i % 2 === 0 ? 'view' : 'click',
      amount: Math.round((i % 10_000) * 1.37) / 100,
      quantity: i % 7,
      event_time: new Date().toISOString(),
      page: `/catalog/category-${i % 120}/item-${i % 9973}?ref=campaign-${i % 31}`,
      user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
      [BENCH_DAYS_COLUMN]: day,
    }),
  );
}

async function main(): Promise<void> {
  const [brokers, topic, rateArg, secondsArg] = process.argv.slice(2);
  const rate = Number(rateArg);
  const seconds = Number(secondsArg);
  if (!brokers || !topic || !(rate > 0) || !(seconds > 0)) throw new Error('usage: freshness-producer.js <brokers> <topic> <rate> <seconds>');
  const producer = await connectProducer(brokers);
  producer.setPollInterval(10);
  const day = new Date().toISOString().slice(0, 10);
  const total = Math.round(rate * seconds);
  const started = performance.now();
  let sent = 0;
  let lateTicks = 0;
  while (sent < total) {
    // As many as the steady rate says by now: a slow tick is caught up by the next one.
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
    if (due - sent > rate / 10) lateTicks += 1;
    while (sent < due) {
      try {
        producer.produce(topic, sent % 3, eventValue(sent, day), `user-${sent % 50_000}`, Date.now());
        sent += 1;
      } catch (error) {
        if ((error as { code?: number }).code !== QUEUE_FULL) throw error;
        break;
      }
    }
    await new Promise((r) => setTimeout(r, TICK_MS));
  }
  const producedSeconds = (performance.now() - started) / 1000;
  await new Promise<void>((resolve, reject) => producer.flush(60_000, (err) => (err ? reject(err) : resolve())));
  await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  process.stdout.write(`${JSON.stringify({ sent, producedSeconds, rate: sent / producedSeconds, lateTicks })}\n`);
}

await main();
