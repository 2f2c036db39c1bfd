import test from 'ava';
import { parseConfig } from '../ts/config/index.js';
import { ConfigError } from '../ts/errors.js';
import { cronPattern, FlushSchedule, scheduleProblem, systemClock, type Clock, type FlushScheduleOptions, type FlushTrigger } from '../ts/pipeline/schedule.js';

/** A clock the test moves by hand. */
class FakeClock implements Clock {
  t: number;
  constructor(iso: string) {
    this.t = Date.parse(iso);
  }
  now(): number {
    return this.t;
  }
  set(iso: string): void {
    this.t = Date.parse(iso);
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const iso = (d: Date | undefined) => d?.toISOString();

/**
 * Runs a pipeline-like loop from `from` to `to`: checks every `stepMs` (the consume loop's poll
 * timeout), flushes (with zero rows staged) whenever a trigger is due, and returns when it did.
 */
function sweep(options: FlushScheduleOptions, from: string, to: string, stepMs = 30 * SECOND): { at: string; trigger: FlushTrigger }[] {
  const clock = new FakeClock(from);
  const schedule = new FlushSchedule(options, clock);
  const fired: { at: string; trigger: FlushTrigger }[] = [];
  for (; clock.t <= Date.parse(to); clock.advance(stepMs)) {
    const trigger = schedule.due(0);
    if (trigger !== undefined) {
      fired.push({ at: new Date(clock.t).toISOString(), trigger });
      schedule.flushed();
    }
  }
  return fired;
}
const times = (fired: { at: string }[]) => fired.map((f) => f.at);

test('"HH:MM" becomes the cron "MM HH * * *"; cron expressions pass through', (t) => {
  t.is(cronPattern('02:00'), '0 2 * * *');
  t.is(cronPattern(' 23:59 '), '59 23 * * *');
  t.is(cronPattern('*/15  * * *   1-5'), '*/15 * * * 1-5');
  t.is(scheduleProblem('02:30'), undefined);
  t.is(scheduleProblem('0 0 * * MON-FRI'), undefined);
  t.regex(scheduleProblem('61 * * * *') ?? '', /minute/);
  t.is(scheduleProblem('0 0 31 2 *'), 'never fires');
  t.regex(scheduleProblem('0 0 0 * * *') ?? '', /5 parts/);
});

test('daily 02:00 in UTC fires at 02:00 UTC each day, not before', (t) => {
  const clock = new FakeClock('2026-03-28T12:00:00Z');
  const s = new FlushSchedule({ schedule: '02:00', timezone: 'UTC' }, clock);
  t.is(iso(s.nextScheduledAt()), '2026-03-29T02:00:00.000Z');
  clock.set('2026-03-29T01:59:59.999Z');
  t.is(s.due(0), undefined);
  clock.set('2026-03-29T02:00:00Z');
  t.is(s.due(0), 'schedule');
  t.is(s.due(0), 'schedule', 'stays due until a flush starts');
  s.flushed();
  t.is(s.due(0), undefined);
  t.is(iso(s.nextScheduledAt()), '2026-03-30T02:00:00.000Z');

  const fired = sweep({ schedule: '02:00', timezone: 'UTC' }, '2026-03-27T12:00:00Z', '2026-03-31T12:00:00Z');
  t.deepEqual(times(fired), ['2026-03-28T02:00:00.000Z', '2026-03-29T02:00:00.000Z', '2026-03-30T02:00:00.000Z', '2026-03-31T02:00:00.000Z']);
  t.true(fired.every((f) => f.trigger === 'schedule'));
});

test('daily 02:00 in Europe/Berlin across spring forward (2026-03-29): the missing 02:00 fires at 03:00 CEST', (t) => {
  const fired = sweep({ schedule: '02:00', timezone: 'Europe/Berlin' }, '2026-03-27T12:00:00Z', '2026-03-31T12:00:00Z');
  t.deepEqual(times(fired), [
    '2026-03-28T01:00:00.000Z', // 02:00 CET (UTC+1)
    '2026-03-29T01:00:00.000Z', // 02:00 does not exist; 03:00 CEST, the first instant after the gap
    '2026-03-30T00:00:00.000Z', // 02:00 CEST (UTC+2)
    '2026-03-31T00:00:00.000Z',
  ]);
});

test('daily 02:00 in Europe/Berlin across fall back (2026-10-25): the repeated 02:00 fires once', (t) => {
  const fired = sweep({ schedule: '02:00', timezone: 'Europe/Berlin' }, '2026-10-23T12:00:00Z', '2026-10-27T12:00:00Z');
  t.deepEqual(times(fired), [
    '2026-10-24T00:00:00.000Z', // 02:00 CEST (UTC+2)
    '2026-10-25T00:00:00.000Z', // the first 02:00 (CEST); not again at 02:00 CET an hour later
    '2026-10-26T01:00:00.000Z', // 02:00 CET (UTC+1)
    '2026-10-27T01:00:00.000Z',
  ]);
});

test('a cron with an hour list is a fixed time too: once in the repeated hour, after the gap in spring', (t) => {
  t.deepEqual(times(sweep({ schedule: '30 2,14 * * *', timezone: 'Europe/Berlin' }, '2026-10-24T18:00:00Z', '2026-10-25T18:00:00Z')), [
    '2026-10-25T00:30:00.000Z', // 02:30 CEST only, not 02:30 CET
    '2026-10-25T13:30:00.000Z', // 14:30 CET
  ]);
  t.deepEqual(times(sweep({ schedule: '30 2,14 * * *', timezone: 'Europe/Berlin' }, '2026-03-28T18:00:00Z', '2026-03-29T18:00:00Z')), [
    '2026-03-29T01:00:00.000Z', // 02:30 does not exist: 03:00 CEST
    '2026-03-29T12:30:00.000Z', // 14:30 CEST
  ]);
});

test('a cron "*/15 * * * *" fires every quarter hour, also through the fall-back hour', (t) => {
  t.deepEqual(times(sweep({ schedule: '*/15 * * * *', timezone: 'UTC' }, '2026-05-04T10:07:00Z', '2026-05-04T11:10:00Z', 10 * SECOND)), [
    '2026-05-04T10:15:00.000Z', '2026-05-04T10:30:00.000Z', '2026-05-04T10:45:00.000Z', '2026-05-04T11:00:00.000Z',
  ]);
  // 02:00-03:00 local happens twice in Berlin that night: eight quarter hours in two UTC hours.
  const berlin = sweep({ schedule: '*/15 * * * *', timezone: 'Europe/Berlin' }, '2026-10-24T23:55:00Z', '2026-10-25T01:50:00Z');
  t.is(berlin.length, 8);
  t.is(berlin[0]?.at, '2026-10-25T00:00:00.000Z');
  t.is(berlin[7]?.at, '2026-10-25T01:45:00.000Z');
});

test('a cron "0 0 * * *" is read in the configured time zone', (t) => {
  const clock = new FakeClock('2026-07-01T12:00:00Z');
  t.is(iso(new FlushSchedule({ schedule: '0 0 * * *', timezone: 'America/New_York' }, clock).nextScheduledAt()), '2026-07-02T04:00:00.000Z');
  t.is(iso(new FlushSchedule({ schedule: '0 0 * * *', timezone: 'Asia/Kolkata' }, clock).nextScheduledAt()), '2026-07-01T18:30:00.000Z');
});

test('interval only: due interval seconds after the last flush started, rows or not', (t) => {
  const clock = new FakeClock('2026-01-01T00:00:00Z');
  const s = new FlushSchedule({ intervalSeconds: 60, timezone: 'UTC' }, clock);
  t.is(s.nextScheduledAt(), undefined);
  clock.advance(60 * SECOND - 1);
  t.is(s.due(1_000_000), undefined, 'no size trigger without batchSize');
  clock.advance(1);
  t.is(s.due(0), 'interval');
  clock.advance(5 * SECOND); // the flush starts a bit late (another one was in flight)
  s.flushed();
  clock.advance(60 * SECOND - 1);
  t.is(s.due(0), undefined, 'counts from the last flush start, not from the last due');
  clock.advance(1);
  t.is(s.due(0), 'interval');
  t.deepEqual(times(sweep({ intervalSeconds: 0.5, timezone: 'UTC' }, '2026-01-01T00:00:00Z', '2026-01-01T00:00:01.600Z', 100)), [
    '2026-01-01T00:00:00.500Z', '2026-01-01T00:00:01.000Z', '2026-01-01T00:00:01.500Z',
  ]);
});

test('size only: due at batchSize staged rows, never by time', (t) => {
  const clock = new FakeClock('2026-01-01T00:00:00Z');
  const s = new FlushSchedule({ batchSize: 100, timezone: 'UTC' }, clock);
  t.is(s.due(99), undefined);
  t.is(s.due(100), 'size');
  t.is(s.due(250), 'size');
  clock.advance(365 * 24 * HOUR);
  t.is(s.due(0), undefined);
});

test('several triggers due at once: schedule wins over interval, interval over size', (t) => {
  const clock = new FakeClock('2026-01-01T01:00:00Z');
  const s = new FlushSchedule({ schedule: '02:00', timezone: 'UTC', intervalSeconds: 3600, batchSize: 10 }, clock);
  t.is(s.due(9), undefined);
  t.is(s.due(10), 'size');
  clock.set('2026-01-01T02:00:00Z'); // the interval (01:00 + 1 h) and the schedule both due
  t.is(s.due(10), 'schedule');
  s.flushed();
  clock.set('2026-01-01T03:00:00Z');
  t.is(s.due(10), 'interval');
  t.is(s.due(0), 'interval');
});

test('whichever comes first: a size flush before 02:00 neither skips nor moves the scheduled flush', (t) => {
  const clock = new FakeClock('2026-01-01T00:00:00Z');
  const s = new FlushSchedule({ schedule: '02:00', timezone: 'UTC', batchSize: 100 }, clock);
  clock.set('2026-01-01T01:59:30Z');
  t.is(s.due(100), 'size');
  s.flushed();
  t.is(iso(s.nextScheduledAt()), '2026-01-01T02:00:00.000Z');
  clock.set('2026-01-01T02:00:00Z');
  t.is(s.due(3), 'schedule');
});

test('a scheduled flush resets the interval, which counts from the last flush start', (t) => {
  const clock = new FakeClock('2026-01-01T01:30:00Z');
  const s = new FlushSchedule({ schedule: '02:00', timezone: 'UTC', intervalSeconds: 3600 }, clock);
  clock.set('2026-01-01T02:00:00Z');
  t.is(s.due(0), 'schedule');
  s.flushed();
  clock.set('2026-01-01T02:30:00Z'); // the interval alone would have fired here
  t.is(s.due(0), undefined);
  clock.set('2026-01-01T03:00:00Z');
  t.is(s.due(0), 'interval');
});

test('no double fire after a long flush: passed instants make one flush, then the next future one is armed', (t) => {
  const clock = new FakeClock('2026-05-04T09:59:00Z');
  const s = new FlushSchedule({ schedule: '*/15 * * * *', timezone: 'UTC' }, clock);
  clock.set('2026-05-04T10:00:00Z');
  t.is(s.due(5), 'schedule');
  s.flushed();
  // The flush runs 50 minutes; the loop keeps asking, but cannot start another one meanwhile.
  for (let m = 1; m < 50; m++) {
    clock.set(`2026-05-04T10:${String(m).padStart(2, '0')}:00Z`);
    t.is(s.due(5), m < 15 ? undefined : 'schedule');
  }
  clock.set('2026-05-04T10:50:00Z'); // 10:15, 10:30 and 10:45 passed
  t.is(s.due(5), 'schedule');
  s.flushed();
  t.is(iso(s.nextScheduledAt()), '2026-05-04T11:00:00.000Z');
  clock.set('2026-05-04T10:50:30Z');
  t.is(s.due(5), undefined);

  // A process stalled for three days flushes once, then waits for the next 02:00.
  const daily = new FlushSchedule({ schedule: '02:00', timezone: 'Europe/Berlin' }, clock);
  clock.set('2026-05-07T12:00:00Z');
  t.is(daily.due(0), 'schedule');
  daily.flushed();
  t.is(daily.due(0), undefined);
  t.is(iso(daily.nextScheduledAt()), '2026-05-08T00:00:00.000Z');
});

test('a due time trigger fires with zero staged rows', (t) => {
  const clock = new FakeClock('2026-01-01T23:59:00Z');
  const s = new FlushSchedule({ schedule: '0 0 * * *', timezone: 'UTC', batchSize: 100_000 }, clock);
  clock.set('2026-01-02T00:00:00Z');
  t.is(s.due(0), 'schedule');
});

test('a flush schedule needs a trigger and valid values', (t) => {
  t.throws(() => new FlushSchedule({ timezone: 'UTC' }), { instanceOf: ConfigError, message: /schedule, an interval or a batch size/ });
  t.throws(() => new FlushSchedule({ timezone: 'UTC', intervalSeconds: 0 }), { instanceOf: ConfigError });
  t.throws(() => new FlushSchedule({ timezone: 'UTC', intervalSeconds: Number.NaN }), { instanceOf: ConfigError });
  t.throws(() => new FlushSchedule({ timezone: 'UTC', batchSize: 0.5 }), { instanceOf: ConfigError });
  t.throws(() => new FlushSchedule({ timezone: 'UTC', schedule: '61 * * * *' }), { instanceOf: ConfigError, message: /"61 \* \* \* \*"/ });
  t.throws(() => new FlushSchedule({ timezone: 'Mars/Olympus', schedule: '02:00' }), { instanceOf: ConfigError });
});

test('describe() names every trigger and the next scheduled instant', (t) => {
  const clock = new FakeClock('2026-03-28T12:00:00Z');
  const s = new FlushSchedule({ schedule: '02:00', timezone: 'Europe/Berlin', intervalSeconds: 60, batchSize: 100_000 }, clock);
  t.is(s.describe(), 'at 02:00 daily (cron "0 2 * * *", Europe/Berlin), next 2026-03-29T01:00:00.000Z; every 60 s; at 100000 staged rows');
  t.is(new FlushSchedule({ schedule: '*/15 * * * *', timezone: 'UTC' }, clock).describe(), 'on cron "*/15 * * * *" (UTC), next 2026-03-28T12:15:00.000Z');
});

test('fromConfig: a schedule alone in the config fires on schedule only', (t) => {
  const base = { kafka: { broker: 'b:9092', topic: 't', group_id: 'g' }, delta: { table_path: '/d', partition_column: 'day' } };
  const clock = new FakeClock('2026-10-24T12:00:00Z');
  const config = parseConfig({ ...base, batch: { schedule: '02:00', timezone: 'Europe/Berlin' } }, { env: {} });
  const s = FlushSchedule.fromConfig(config.batch, clock);
  clock.set('2026-10-24T23:59:00Z');
  t.is(s.due(10_000_000), undefined, 'no default interval or size');
  clock.set('2026-10-25T00:00:00Z');
  t.is(s.due(0), 'schedule');

  const defaults = FlushSchedule.fromConfig(parseConfig(base, { env: {} }).batch, clock);
  t.is(defaults.describe(), 'every 60 s; at 100000 staged rows');
  t.true(Math.abs(systemClock.now() - Date.now()) < 1000);
});
