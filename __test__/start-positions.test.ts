/** Where assigned partitions start, against made-up watermarks (no broker). */
import test from 'ava';
import { parseConfig } from '../ts/config/index.js';
import { KafkaError, PositionLostError } from '../ts/errors.js';
import { OFFSET_BEGINNING, type PartitionRef } from '../ts/kafka/consumer.js';
import { kafkaProperties } from '../ts/pipeline/identity.js';
import { skippedRange, startPositions, type AssignedPartition, type Watermarks } from '../ts/pipeline/start-positions.js';

/** Watermarks by partition of topic `t`; every query is recorded. */
function logs(byPartition: Record<number, Watermarks>) {
  const asked: number[] = [];
  const watermarks = async (p: PartitionRef): Promise<Watermarks> => {
    asked.push(p.partition);
    const w = byPartition[p.partition];
    if (!w) throw new KafkaError('KAFKA_WATERMARKS', `no partition ${p.partition}`);
    return w;
  };
  return { asked, watermarks };
}

const part = (partition: number, last: number | undefined): AssignedPartition => ({ topic: 't', partition, last });

test('positions inside the log continue after the recorded offset; nothing recorded follows start_from', async (t) => {
  const { asked, watermarks } = logs({ 0: { low: 0, high: 100 }, 1: { low: 50, high: 80 }, 2: { low: 10, high: 40 } });
  const earliest = await startPositions([part(0, 99), part(1, 49), part(2, undefined)], { startFrom: 'earliest', onPositionLost: 'fail', watermarks });
  t.deepEqual(earliest.starts.map((s) => s.offset), [100, 50, OFFSET_BEGINNING], 'at the high watermark and at the log start are in range');
  t.deepEqual(earliest.moved, []);
  t.deepEqual(asked.sort(), [0, 1], 'earliest with nothing recorded is left to Kafka: no query');
  // latest with nothing recorded: the high watermark now, as an offset the stage can record.
  const latest = await startPositions([part(2, undefined)], { startFrom: 'latest', onPositionLost: 'fail', watermarks });
  t.deepEqual(latest.starts, [{ topic: 't', partition: 2, offset: 40 }]);
  // A topic created since the start (a pattern found it) overrides latest with earliest.
  const created = await startPositions([{ ...part(2, undefined), startFrom: 'earliest' }, part(1, undefined)], { startFrom: 'latest', onPositionLost: 'fail', watermarks });
  t.deepEqual(created.starts.map((s) => s.offset), [OFFSET_BEGINNING, 80]);
});

test('fail: one PositionLostError names every lost partition, its version, watermarks and the key', async (t) => {
  const { watermarks } = logs({ 0: { low: 1880, high: 3000 }, 1: { low: 0, high: 500 }, 2: { low: 0, high: 10 } });
  const err = await t.throwsAsync(
    startPositions([part(0, 999), part(1, 1999), part(2, 5)], { startFrom: 'earliest', onPositionLost: 'fail', watermarks }),
    { instanceOf: PositionLostError },
  );
  t.true(err instanceof KafkaError);
  t.is(err?.code, 'KAFKA_POSITION_LOST');
  t.deepEqual(err?.positions, [
    { topic: 't', partition: 0, next: 1000, low: 1880, high: 3000 },
    { topic: 't', partition: 1, next: 2000, low: 0, high: 500 },
  ]);
  const msg = err?.message ?? '';
  t.regex(msg, /t\[0\]: the table records offsets up to txn version 999 \(next offset 1000\), but the log holds 1880\.\.2999 \(log start 1880, high watermark 3000\): offsets 1000\.\.1879 were deleted/);
  t.regex(msg, /t\[1\]: .*txn version 1999 .*log start 0, high watermark 500\): the log ends before it \(the topic was deleted and recreated/);
  t.notRegex(msg, /t\[2\]/);
  t.regex(msg, /set kafka\.on_position_lost to earliest .* or latest/);
});

test('earliest and latest move deleted positions forward and say what they skip', async (t) => {
  const { watermarks } = logs({ 0: { low: 1880, high: 3000 }, 2: { low: 0, high: 10 } });
  const parts = [part(0, 999), part(2, 5)];
  const early = await startPositions(parts, { startFrom: 'latest', onPositionLost: 'earliest', watermarks });
  t.deepEqual(early.starts.map((s) => s.offset), [1880, 6]);
  t.deepEqual(early.moved.map((m) => [m.partition, m.resumeAt, m.skipped]), [[0, 1880, 880]]);
  t.is(skippedRange(early.moved[0] ?? t.fail()), 'offsets 1000..1879');
  const late = await startPositions(parts, { startFrom: 'earliest', onPositionLost: 'latest', watermarks });
  t.deepEqual(late.starts.map((s) => s.offset), [3000, 6]);
  t.deepEqual(late.moved.map((m) => [m.partition, m.resumeAt, m.skipped]), [[0, 3000, 2000]]);
  t.is(skippedRange(late.moved[0] ?? t.fail()), 'offsets 1000..2999');
});

test('a position beyond the log end (topic recreated) moves back as the policy says, marked as a new log', async (t) => {
  const { watermarks } = logs({ 0: { low: 1880, high: 3000 }, 1: { low: 0, high: 500 } });
  const early = await startPositions([part(0, 999), part(1, 1999)], { startFrom: 'earliest', onPositionLost: 'earliest', watermarks });
  t.deepEqual(early.starts.map((s) => s.offset), [1880, 0]);
  t.deepEqual(early.moved.map((m) => [m.partition, m.resumeAt, m.skipped, m.recreated]), [
    [0, 1880, 880, false],
    [1, 0, 0, true],
  ]);
  t.is(skippedRange(early.moved[1] ?? t.fail()), 'none (the new log is read from its start)');
  const late = await startPositions([part(1, 1999)], { startFrom: 'earliest', onPositionLost: 'latest', watermarks });
  t.deepEqual(late.moved.map((m) => [m.resumeAt, m.skipped, m.recreated]), [[500, 500, true]]);
  t.is(skippedRange(late.moved[0] ?? t.fail()), 'offsets 0..499 of the new log');
  const failed = await t.throwsAsync(startPositions([part(1, 1999)], { startFrom: 'earliest', onPositionLost: 'fail', watermarks }), { instanceOf: PositionLostError });
  t.regex(failed?.message ?? '', /t\[1\]: the table records offsets up to txn version 1999 .*high watermark 500\): the log ends before it/);
});

test('a watermark query that fails fails the assignment with its typed error', async (t) => {
  const { watermarks } = logs({});
  await t.throwsAsync(startPositions([part(7, 3)], { startFrom: 'earliest', onPositionLost: 'earliest', watermarks }), { instanceOf: KafkaError, code: 'KAFKA_WATERMARKS' });
});

test("librdkafka's auto.offset.reset follows kafka.on_position_lost", (t) => {
  const base = { kafka: { broker: 'b:9092', topic: 'x', group_id: 'g' }, delta: { table_path: '/t', partition_column: 'd' } };
  const reset = (policy?: string) =>
    kafkaProperties(parseConfig({ ...base, kafka: { ...base.kafka, on_position_lost: policy } }, { env: {} }))['auto.offset.reset'];
  t.is(reset(), 'error');
  t.is(reset('earliest'), 'earliest');
  t.is(reset('latest'), 'latest');
});
