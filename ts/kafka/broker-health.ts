/**
 * Whether the consumer reaches its brokers, for `/readyz` and `kafka_delta_broker_up`: librdkafka
 * reconnects by itself and the pipeline never exits for an outage, so this is what tells an
 * operator (or an orchestrator's readiness probe) that it is waiting for the cluster.
 *
 * "All brokers down" turns it off at once; each statistics report (`statistics.interval.ms`)
 * sets it from the brokers' connection states: reachable while any broker is `UP`.
 */
import type { Logger } from '../log.js';
import { brokersUpInStatistics, type LibrdkafkaStatistics } from './statistics.js';

/** librdkafka's error code when every broker connection is down (`RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN`). */
const ALL_BROKERS_DOWN = -187;

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

  /** A statistics report (parsed by the consumer, `parseStatistics`). */
  statistics(stats: LibrdkafkaStatistics): void {
    const up = brokersUpInStatistics(stats);
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
