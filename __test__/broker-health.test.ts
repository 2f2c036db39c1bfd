import test from 'ava';
import { BrokerHealth } from '../ts/kafka/broker-health.js';
import { brokersUpInStatistics, parseStatistics, type LibrdkafkaStatistics } from '../ts/kafka/statistics.js';
import { silentLogger } from '../ts/log.js';

const stats = (brokers: Record<string, { source: string; state: string }>): LibrdkafkaStatistics => ({ brokers });

test('brokers are reachable while any real broker is UP; the internal one does not count', (t) => {
  t.true(brokersUpInStatistics(stats({ a: { source: 'learned', state: 'UP' }, b: { source: 'configured', state: 'DOWN' } })));
  t.false(brokersUpInStatistics(stats({ i: { source: 'internal', state: 'UP' }, a: { source: 'learned', state: 'TRY_CONNECT' } })));
  t.is(brokersUpInStatistics(stats({ i: { source: 'internal', state: 'UP' } })), undefined);
  t.is(brokersUpInStatistics({}), undefined);
  t.is(parseStatistics('not json'), undefined);
  t.is(parseStatistics('7'), undefined);
  t.deepEqual(parseStatistics(JSON.stringify(stats({ a: { source: 'learned', state: 'UP' } }))), stats({ a: { source: 'learned', state: 'UP' } }));
});

test('all-brokers-down turns health off at once; a report with a broker UP turns it on, each change told once', (t) => {
  const health = new BrokerHealth(silentLogger);
  const changes: boolean[] = [];
  health.onChange((up) => changes.push(up));
  health.error({ code: -195 });
  t.true(health.reachable, 'a transport error alone is not an outage');
  health.error({ code: -187 });
  health.error({ code: -187 });
  t.false(health.reachable);
  health.statistics(stats({ a: { source: 'learned', state: 'CONNECT' } }));
  t.false(health.reachable);
  health.statistics(stats({ a: { source: 'learned', state: 'UP' } }));
  t.true(health.reachable);
  t.deepEqual(changes, [false, true]);
});
