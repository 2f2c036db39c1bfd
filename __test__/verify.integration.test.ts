/**
 * `kafka-delta-rust verify` (issue #13) against the real broker and a table Python reads and
 * alters: a clean table reports every partition written to its high watermark, no lag, the dead
 * letter's offset accounted for, exit 0; a row planted by another writer with the coordinates of
 * an existing one is a duplicate, exit 5; the rows of an offset deleted by another writer are a
 * gap, exit 5. Both in the text report and in `--json`.
 */
import test from 'ava';
import { join } from 'node:path';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import type { VerifyReport } from '../ts/verify.js';
import { runCli } from './helpers/cli.js';
import { appendWithPython, createTableWithPython, deleteWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const COLUMNS: Array<[string, string, boolean]> = [
  ['id', 'string', false],
  ['seq', 'long', true],
  ['kafka_topic', 'string', true],
  ['kafka_partition', 'integer', true],
  ['kafka_offset', 'long', true],
  ['date_col', 'string', false],
];

function verifyJson(configPath: string): { status: number | null; report: VerifyReport } {
  const run = runCli(['verify', '--config', configPath, '--json']);
  return { status: run.status, report: JSON.parse(run.stdout) as VerifyReport };
}

test.serial('[integration] verify: a clean table passes; a planted duplicate and a planted gap are reported with exit 5', async (t) => {
  const topic = uniqueName('kdr_verify');
  await createTopic(BROKERS, topic, 2);
  // 100 messages per partition; partition 1's offset 40 is not JSON: a dead letter, not a gap.
  const messages = Array.from({ length: 200 }, (_, i) => {
    const partition = i % 2;
    const offset = Math.floor(i / 2);
    const bad = partition === 1 && offset === 40;
    return { value: bad ? 'not json' : JSON.stringify({ id: `e-${i}`, seq: i, date_col: '2026-11-23' }), partition };
  });
  await produceMessages(BROKERS, topic, messages);
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, COLUMNS, ['date_col']);
  const config = writeConfig(
    dir,
    testConfig({
      topics: [topic],
      group: uniqueName('kdr_group'),
      tablePath: table,
      extra: { delta: { kafka_metadata: { topic: 'kafka_topic', partition: 'kafka_partition', offset: 'kafka_offset' } } },
    }),
  );
  const run = runCli(['--config', config, '--until-caught-up']);
  t.is(run.status, 0, run.stderr);

  const clean = verifyJson(config);
  t.is(clean.status, 0, JSON.stringify(clean.report.problems));
  t.deepEqual(
    clean.report.partitions.map((p) => [p.topic, p.partition, p.tableOffset, p.logStart, p.highWatermark, p.committed, p.lag, p.lost]),
    [
      [topic, 0, 99, 0, 100, 100, 0, 0],
      [topic, 1, 99, 0, 100, 100, 0, 0],
    ],
  );
  t.deepEqual(
    clean.report.audit?.partitions.map((p) => [p.partition, p.first, p.last, p.offsets]),
    [
      [0, 0, 99, 100],
      [1, 0, 99, 100],
    ],
    'the dead letter fills offset 40 of partition 1',
  );
  t.deepEqual([clean.report.audit?.duplicateCount, clean.report.audit?.gapCount, clean.report.problems], [0, 0, []]);
  const text = runCli(['verify', '--config', config]);
  t.is(text.status, 0);
  t.regex(text.stdout, new RegExp(`${topic}\\[0\\]: written to offset 99; log 0\\.\\.100; committed 100; lag 0\n`));
  t.regex(text.stdout, /offset scan: 200 offsets in 2 partitions, 0 held twice, 0 missing ranges\nverify: ok\n$/);

  // Another writer appends a copy of partition 0's offset 7.
  const copied = readTable(table).rows.find((r) => r.kafka_partition === 0 && r.kafka_offset === 7);
  appendWithPython(table, [{ ...copied, id: 'planted' }]);
  const duplicated = verifyJson(config);
  t.is(duplicated.status, 5);
  t.deepEqual(duplicated.report.audit?.duplicates, [{ topic, partition: 0, offset: 7, rows: 2 }]);
  t.deepEqual(duplicated.report.problems, [`1 offsets are held by more than one row: ${topic}[0]@7 ×2`]);

  // Another writer deletes every row of partition 0's offsets 7 and 8 (the duplicate with them).
  deleteWithPython(table, 'kafka_partition = 0 AND kafka_offset IN (7, 8)');
  const gapped = verifyJson(config);
  t.is(gapped.status, 5);
  t.deepEqual(gapped.report.audit?.gaps, [{ topic, partition: 0, from: 7, to: 8 }]);
  t.deepEqual(gapped.report.problems, [`1 ranges of offsets are in neither the table nor the dead letters: ${topic}[0] 7..8`]);
  const gapText = runCli(['verify', '--config', config]);
  t.is(gapText.status, 5);
  t.regex(gapText.stdout, /PROBLEM: 1 ranges of offsets are in neither the table nor the dead letters: .*\[0\] 7\.\.8\nverify: 1 problems\n$/);
});
