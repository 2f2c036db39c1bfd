/**
 * Typed errors end to end: the native core's codes cross as data (`err.code`, with the Rust cause
 * chain as `cause`), each maps onto its class, and the two code lists agree.
 */
import test from 'ava';
import { join } from 'node:path';
import {
  ConfigError,
  DeltaTarget,
  InternalError,
  InvalidArgumentError,
  KafkaDeltaError,
  SchemaMismatchError,
  StagedSegment,
  TableNotFoundError,
  createTable,
  mappedNativeCodes,
  FlushSchedule,
} from '../ts/index.js';
import { nativeErrorCodes } from '../ts/native.js';
import { tempDir } from './helpers/env.js';

test('every native error code maps onto a typed class, and only those', (t) => {
  t.deepEqual([...mappedNativeCodes()].sort(), [...nativeErrorCodes()].sort());
});

test('a native error keeps its code as data and its Rust cause chain', async (t) => {
  const error = await t.throwsAsync(DeltaTarget.open(join(tempDir(), 'nothing-here')), { instanceOf: TableNotFoundError });
  t.is(error?.code, 'TABLE_NOT_FOUND');
  t.false(error?.message.startsWith('['), 'no code prefix in the message');
  const native = error?.cause as Error & { code?: string; cause?: unknown };
  t.is(native.code, 'TABLE_NOT_FOUND', 'the native error carries the code itself');
});

test('user input is not an InternalError: an unknown column type, a table that exists, a bad delete_when, a foreign segment', async (t) => {
  const dir = tempDir();
  await t.throwsAsync(createTable(join(dir, 'bad'), [{ name: 'x', dataType: 'no_such_type' }], []), { instanceOf: InvalidArgumentError, message: /unknown Delta type/ });
  await createTable(join(dir, 't'), [{ name: 'id', dataType: 'string' }, { name: 'day', dataType: 'date' }], ['day']);
  await t.throwsAsync(createTable(join(dir, 't'), [{ name: 'id', dataType: 'string' }], []), { instanceOf: InvalidArgumentError, message: /already exists/ });
  const target = await DeltaTarget.open(join(dir, 't'));
  t.throws(() => target.checkDeleteWhen('no_such_column = 1'), { instanceOf: InvalidArgumentError });
  const foreign = Object.create(StagedSegment.prototype) as StagedSegment;
  await t.throwsAsync(target.commitRows(foreign, [], { maxAttempts: 1 }), { instanceOf: InvalidArgumentError });
});

test('no plain Error escapes: a bad flush schedule is a ConfigError naming the key', (t) => {
  const error = t.throws(() => new FlushSchedule({ timezone: 'UTC', intervalSeconds: -1 }), { instanceOf: ConfigError });
  t.is(error?.problems[0]?.key, 'batch.batch_interval');
  t.true(error instanceof KafkaDeltaError);
  t.false(InternalError === (error?.constructor as unknown));
  t.true(SchemaMismatchError.prototype instanceof KafkaDeltaError);
});
