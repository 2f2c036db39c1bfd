/**
 * Whether the consumer reaches its brokers, for `/readyz` and `kafka_delta_broker_up`: librdkafka
 * reconnects by itself and the pipeline never exits for an outage, so this is what tells an
 * operator (or an orchestrator's readiness probe) that it is waiting for the cluster.
 *
 * "All brokers down" turns it off at once; each statistics report (`statistics.interval.ms`)
 * sets it from the brokers' connection states: reachable while any broker is `UP`.
 */
import type { Logger } from '../log.js';

/** librdkafka's error code when every broker connection is down (`RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN`). */
const ALL_BROKERS_DOWN = -187;

/** The part of librdkafka's statistics JSON read here (STATISTICS.md: `brokers`). */
interface BrokerStatistics {
  brokers?: Record<string, { source?: string; state?: string }>;
}

/** Whether any real broker (not librdkafka's internal one) is connected, from one report. */
export function brokersUpInStatistics(json: string): boolean | undefined {
  const stats = JSON.parse(json) as BrokerStatistics;
  const brokers = Object.values(stats.brokers ?? {}).filter((b) => b.source !== 'internal');
  if (brokers.length === 0) return undefined;
  return brokers.some((b) => b.state === 'UP');
}

/** Tracks broker reachability from librdkafka's errors and statistics. */
export class BrokerHealth {
  readonly #log: Logger;
  #reachable = true;
  readonly #listeners: Array<(reachable: boolean) => void> = [];

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Whether the brokers were reachable at the last report. */
  get reachable(): boolean {
    return this.#reachable;
  }

  /** Calls `listener` on every change. */
  onChange(listener: (reachable: boolean) => void): void {
    this.#listeners.push(listener);
  }

  /** An `event.error` of the client. */
  error(err: { code?: number }): void {
    if (err.code === ALL_BROKERS_DOWN) this.#set(false);
  }

  /** An `event.stats` report. */
  statistics(event: { message?: string }): void {
    if (typeof event.message !== 'string') return;
    let up: boolean | undefined;
    try {
      up = brokersUpInStatistics(event.message);
    } catch {
      return;
    }
    if (up !== undefined) this.#set(up);
  }

  #set(reachable: boolean): void {
    if (reachable === this.#reachable) return;
    this.#reachable = reachable;
    if (reachable) this.#log.info('Kafka brokers reachable again');
    else this.#log.warn('Kafka brokers unreachable: retrying (not ready until they answer)');
    for (const listener of this.#listeners) listener(reachable);
  }
}
