/**
 * When the pipeline's maintenance compacts a day (issue #13): once closed, `optimize_after` past
 * midnight in the partition's time zone, and only with small files left; and its config keys.
 */
import test from 'ava';
import { parseConfig } from '../ts/config/index.js';
import { ConfigError } from '../ts/errors.js';
import { dayIn, daysToCompact, firstOpenDay } from '../ts/pipeline/maintenance.js';

const base = { kafka: { broker: 'b:9092', topic: 't', group_id: 'g' }, delta: { table_path: '/tmp/t', partition_column: 'day' } };

test('a day closes optimize_after past its midnight, in the partition time zone', (t) => {
  // 2026-12-02T23:30Z is already 2026-12-03 in Berlin (UTC+1) and still 2026-12-02 in New York.
  const at = Date.parse('2026-12-02T23:30:00Z');
  t.is(dayIn(at, 'UTC'), '2026-12-02');
  t.is(dayIn(at, 'Europe/Berlin'), '2026-12-03');
  t.is(firstOpenDay(at, 'UTC', 0), '2026-12-02', 'in UTC, 12-01 is closed and 12-02 open');
  t.is(firstOpenDay(at, 'Europe/Berlin', 0), '2026-12-03', 'in Berlin 12-02 ended 30 minutes ago');
  t.is(firstOpenDay(at, 'Europe/Berlin', 3600), '2026-12-02', 'but is not closed until an hour past it');
  t.is(firstOpenDay(at, 'America/New_York', 0), '2026-12-02');
  // A DST change: Berlin's 2026-10-25 has 25 hours and ends at 23:00Z.
  t.is(firstOpenDay(Date.parse('2026-10-25T22:59:00Z'), 'Europe/Berlin', 0), '2026-10-25');
  t.is(firstOpenDay(Date.parse('2026-10-25T23:00:00Z'), 'Europe/Berlin', 0), '2026-10-26');
});

test('closed days with two or more small files are compacted; open days only past the threshold', (t) => {
  const day = (d: string, smallFiles: number) => ({ day: d, files: smallFiles + 1, smallFiles, bytes: 0 });
  const days = [day('2026-11-01', 1), day('2026-11-02', 2), day('2026-11-03', 40), day('2026-11-04', 40), day('2026-11-05', 3)];
  t.deepEqual(daysToCompact(days, '2026-11-04', 0).map((d) => d.day), ['2026-11-02', '2026-11-03'], 'one small file is as compact as it gets');
  t.deepEqual(daysToCompact(days, '2026-11-04', 10).map((d) => d.day), ['2026-11-02', '2026-11-03', '2026-11-04']);
  t.deepEqual(daysToCompact(days, '', 2).map((d) => d.day), ['2026-11-03', '2026-11-04', '2026-11-05'], 'open days only (optimize off)');
});

test('maintenance keys: defaults, units, and a bad value names its key', (t) => {
  const m = parseConfig(base).maintenance;
  t.deepEqual(m, { optimize: true, optimizeAfterSeconds: 3600, optimizeOpenDayFiles: 0, targetFileSizeBytes: 128 * 1024 * 1024, intervalSeconds: 300, vacuum: false });
  const set = parseConfig({ ...base, maintenance: { optimize: false, target_file_size: '64MiB', interval: 30, vacuum: true, optimize_open_day_files: 500 } }).maintenance;
  t.deepEqual(set, { optimize: false, optimizeAfterSeconds: 3600, optimizeOpenDayFiles: 500, targetFileSizeBytes: 64 * 1024 * 1024, intervalSeconds: 30, vacuum: true });
  const err = t.throws(() => parseConfig({ ...base, maintenance: { interval: 0, target_file_size: 'big', vacuum: 'yes', optimise: true } }), { instanceOf: ConfigError });
  const keys = err.problems.map((p) => p.key).sort();
  t.deepEqual(keys, ['maintenance.interval', 'maintenance.optimise', 'maintenance.target_file_size', 'maintenance.vacuum']);
  t.regex(err.problems.find((p) => p.key === 'maintenance.interval')?.message ?? '', /at least 1 seconds/);
  t.regex(err.problems.find((p) => p.key === 'maintenance.optimise')?.message ?? '', /optimize/, 'did you mean');
});
