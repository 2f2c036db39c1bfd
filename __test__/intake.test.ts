/**
 * The overlapped hand-over of consumed batches (ts/pipeline/intake.ts) against a real native
 * stage and a real table: while one batch is being staged the next is packed and waits, batches
 * are staged one at a time in the order consumed, a staging failure reaches the consume loop,
 * and the table holds every row once. Also the packer's keys, which it copies in one pass.
 */
import test from 'ava';
import { join } from 'node:path';
import type { Message } from 'node-rdkafka';
import { KafkaDeltaError, PipelineMetrics, silentLogger, type Stage } from '../ts/index.js';
import { DeadLetterTally } from '../ts/dead-letters/tally.js';
import { ABSENT_KEY, ABSENT_VALUE, packMessages } from '../ts/kafka/packer.js';
import { Intake } from '../ts/pipeline/intake.js';
import type { AppendResult, MessageBatch } from '../ts/stage.js';
import { EVENT_COLUMNS, createTableWithPython, readTable, txnVersions } from './helpers/delta.js';
import { tempDir } from './helpers/env.js';
import { event, openStage, testFlusher } from './helpers/stage.js';

/** Messages `from..to` of a partition of topic `events`, as node-rdkafka hands them over. */
function consumed(partition: number, from: number, to: number): Message[] {
  return Array.from({ length: to - from + 1 }, (_, i) => {
    const value = Buffer.from(event(`p${partition}-${from + i}`));
    return { topic: 'events', partition, offset: from + i, value, size: value.length, key: `k${from + i}`, timestamp: Date.UTC(2026, 10, 23) };
  });
}

/** A real stage whose appends start only when the test opens their gate, in call order. */
function gatedStage(real: Stage): { stage: Stage; started: number[]; open: () => void; fail: (error: Error) => void } {
  const started: number[] = [];
  const gates: Array<{ go: () => void; stop: (e: Error) => void }> = [];
  const stage = {
    append: (batch: MessageBatch): Promise<AppendResult> => {
      started.push(batch.offsets[0] ?? -1);
      return new Promise<void>((go, stop) => gates.push({ go, stop })).then(() => real.append(batch));
    },
  } as unknown as Stage;
  return {
    stage,
    started,
    open: () => gates.shift()?.go(),
    fail: (error) => gates.shift()?.stop(error),
  };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

function intakeOf(stage: Stage): Intake {
  return new Intake({
    stage,
    topics: ['events'],
    topicIndex: new Map([['events', 0]]),
    pack: { keys: true, headers: false },
    metrics: new PipelineMetrics(),
    log: silentLogger,
    deadLetterTally: new DeadLetterTally(),
    onDeadLetter: () => undefined,
    onSpillBlocked: () => undefined,
  });
}

test('a batch handed over while the one before is being staged waits for it: one at a time, in order, every row committed once', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const { target, stage: real } = await openStage(table);
  real.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  const gated = gatedStage(real);
  const intake = intakeOf(gated.stage);

  await intake.submit(consumed(0, 0, 99));
  t.deepEqual(gated.started, [0], 'the first batch is being staged; the hand-over returned at once');
  let secondHandedOver = false;
  const second = intake.submit(consumed(0, 100, 199)).then(() => (secondHandedOver = true));
  await tick();
  t.deepEqual(gated.started, [0], 'the second batch is packed but not staged beside the first');
  t.false(secondHandedOver);
  let settled = false;
  const settling = intake.settle().then(() => (settled = true));
  gated.open();
  await second;
  t.deepEqual(gated.started, [0, 100], 'staged in the order consumed');
  await tick();
  t.false(settled, 'settle waits for the batch still being staged');
  gated.open();
  await settling;
  t.is(real.stagedRows, 200);
  t.is(intake.messages, 200);

  const flusher = await testFlusher(table, target, real, 'intake-test');
  await flusher.flush();
  const ids = readTable(table).rows.map((r) => String(r.id));
  t.deepEqual(ids.sort(), Array.from({ length: 200 }, (_, i) => `p0-${i}`).sort());
  t.deepEqual(txnVersions(table, ['intake-test:0']), { 'intake-test:0': 199 });
});

test('a staging failure is thrown to the next hand-over and to settle, and nothing after it is staged', async (t) => {
  const table = join(tempDir(), 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const { stage: real } = await openStage(table);
  real.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  const gated = gatedStage(real);
  const intake = intakeOf(gated.stage);
  await intake.submit(consumed(0, 0, 9));
  const second = intake.submit(consumed(0, 10, 19));
  gated.fail(new KafkaDeltaError('STAGING_FAILED', 'the staging disk went away'));
  const error = await t.throwsAsync(second);
  t.is(error?.message, 'the staging disk went away');
  await t.throwsAsync(intake.settle(), { message: 'the staging disk went away' });
  t.deepEqual(gated.started, [0], 'the batch after the failure was not staged');
  t.is(real.stagedRows, 0);
});

test('the packer copies string, Buffer, empty and missing keys into one buffer with their ends', (t) => {
  const base = { topic: 'events', partition: 0, size: 1, timestamp: 5 };
  const messages = [
    { ...base, offset: 0, value: Buffer.from('a'), key: 'ké' },
    { ...base, offset: 1, value: Buffer.from('b'), key: Buffer.from([1, 2, 3]) },
    { ...base, offset: 2, value: Buffer.from('c'), key: '' },
    { ...base, offset: 3, value: null, key: null },
    { ...base, offset: 4, value: Buffer.from('e'), key: undefined },
  ] as Message[];
  const batch = packMessages(messages, new Map([['events', 0]]), { keys: true, headers: false });
  t.deepEqual([...(batch.keys ?? Buffer.alloc(0))], [...Buffer.from('ké'), 1, 2, 3]);
  t.deepEqual([...(batch.keyEnds ?? [])], [3, 6, 6, 6, 6]);
  t.deepEqual([...(batch.absent ?? [])], [0, 0, 0, ABSENT_VALUE | ABSENT_KEY, ABSENT_KEY]);
  t.is(batch.payloads.toString(), 'abce');
  t.deepEqual([...batch.payloadEnds], [1, 2, 3, 3, 4]);
  const without = packMessages(messages, new Map([['events', 0]]));
  t.is(without.keys, undefined);
});
