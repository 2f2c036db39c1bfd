/**
 * `logging.file`: the CLI appends its lines to the file instead of standard error and reopens it
 * on SIGHUP, as logrotate expects (move the file away, then signal): lines before the signal are
 * in the moved file, lines after it in a new one at the configured path.
 */
import test from 'ava';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { runCli, startCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';
import { event } from './helpers/stage.js';

async function waitForLine(path: string, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(existsSync(path) && pattern.test(readFileSync(path, 'utf8')))) {
    if (Date.now() > deadline) throw new Error(`no line ${String(pattern)} in ${path}`);
    await sleep(50);
  }
}

test('[integration] logging.file gets the lines and is reopened on SIGHUP after logrotate moved it', async (t) => {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_logfile');
  await createTopic(BROKERS, topic, 1);
  const logPath = join(dir, 'ingest.log');
  const config = testConfig({ topics: [topic], group: uniqueName('kdr_group'), tablePath: table, batchInterval: 0.2, extra: { logging: { file: logPath } } });
  const cli = startCli(['--config', writeConfig(dir, config)]);
  await waitForLine(logPath, /"msg":"partitions assigned"/);

  renameSync(logPath, `${logPath}.1`);
  cli.child.kill('SIGHUP');
  await waitForLine(logPath, /"msg":"log file reopened"/);
  await produceMessages(BROKERS, topic, [{ value: event('after-rotation') }]);
  await waitForLine(logPath, /"msg":"flush committed"/);
  cli.child.kill('SIGTERM');
  t.is(await cli.exited, 0, cli.output().slice(-2000));

  const before = readFileSync(`${logPath}.1`, 'utf8');
  const after = readFileSync(logPath, 'utf8');
  t.regex(before, /"msg":"pipeline started"/);
  t.notRegex(before, /"msg":"flush committed"/);
  t.regex(after, /"msg":"pipeline stopped"/);
  t.notRegex(after, /"msg":"pipeline started"/);
  t.false(/"msg":/.test(cli.output()), 'nothing logged to standard error');
  t.deepEqual(readTable(table).rows.map((r) => r.id), ['after-rotation']);
});

test('[integration] a logging.file that cannot be opened is a config error naming the key', (t) => {
  const dir = tempDir();
  const config = testConfig({ topics: ['unused'], group: 'g', tablePath: join(dir, 'none'), extra: { logging: { file: join(dir, 'missing-dir', 'x.log') } } });
  const run = runCli(['--config', writeConfig(dir, config), '--until-caught-up']);
  t.is(run.status, 2, run.stderr);
  t.regex(run.stderr, /logging\.file: cannot open .*missing-dir/);
});
