/** The CLI as users run it: help, version, validation and exit codes. */
import test from 'ava';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython } from './helpers/delta.js';
import { tempDir, testConfig, writeConfig } from './helpers/env.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

test('--help documents every option and the exit codes', (t) => {
  const r = runCli(['--help']);
  t.is(r.status, 0);
  for (const option of ['--config', '--until-caught-up', '--dry-run', '--version', 'validate', 'Exit codes', '--kafka.broker']) {
    t.true(r.stdout.includes(option), `help mentions ${option}`);
  }
});

test('--version names the package and the native libraries', (t) => {
  const r = runCli(['--version']);
  t.is(r.status, 0);
  t.regex(r.stdout, /^\d+\.\d+\.\d+ \(native core \d+\.\d+\.\d+, deltalake \d+\.\d+\.\d+, arrow \d+\.\d+\.\d+\)/);
});

test('the original sample config is refused for its trailing comma, naming the key', (t) => {
  const dir = tempDir();
  copyFileSync(fixture('original-sample.yaml'), join(dir, 'config.yaml'));
  const r = runCli(['validate', '--config', join(dir, 'config.yaml')]);
  t.is(r.status, 2);
  t.regex(r.stderr, /batch\.batch_interval/);
  t.regex(r.stderr, /"100,"/);
  t.notRegex(r.stderr, /pass\b/, 'the password never appears');
});

test('an unknown mode names delta.mode and the allowed values', (t) => {
  const dir = tempDir();
  const path = writeConfig(dir, testConfig({ topics: ['t'], group: 'g', tablePath: join(dir, 'table') }));
  const r = runCli(['validate', '--config', path, '--delta.mode=UPSERT']);
  t.is(r.status, 2);
  t.regex(r.stderr, /delta\.mode/);
  t.regex(r.stderr, /INSERT/);
  t.regex(r.stderr, /MERGE/);
});

test('validate checks the table: missing → exit 3; present and fitting → exit 0', (t) => {
  const dir = tempDir();
  const table = join(dir, 'events');
  const path = writeConfig(dir, testConfig({ topics: ['t'], group: 'g', tablePath: table }));
  const missing = runCli(['validate', '--config', path]);
  t.is(missing.status, 3);
  t.regex(missing.stderr, /table not found/);

  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const ok = runCli(['validate', '--config', path]);
  t.is(ok.status, 0, ok.stderr);
  t.regex(ok.stdout, /partitioned by \[date_col\]/);
  t.regex(ok.stdout, /dead letters: Delta table .*events__dead_letters/);

  const wrongDay = runCli(['validate', '--config', path, '--delta.partition_column=seq']);
  t.is(wrongDay.status, 3);
  t.regex(wrongDay.stderr, /partitioned by \[date_col\]/);
});

test('a table whose writer features delta-rs cannot write is refused, naming the feature', (t) => {
  const dir = tempDir();
  const table = join(dir, 'identity');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  // What a Databricks table with an identity column declares: writer version 7 + identityColumns.
  const commit = [
    { protocol: { minReaderVersion: 3, minWriterVersion: 7, readerFeatures: [], writerFeatures: ['identityColumns', 'appendOnly'] } },
    { commitInfo: { timestamp: Date.now(), operation: 'SET TBLPROPERTIES' } },
  ];
  // Version 1 of the log upgrades the protocol.
  const logFile = join(table, '_delta_log', '00000000000000000001.json');
  writeFileSyncLines(logFile, commit);
  const path = writeConfig(dir, testConfig({ topics: ['t'], group: 'g', tablePath: table }));
  const r = runCli(['validate', '--config', path]);
  t.is(r.status, 3);
  t.regex(r.stderr, /identityColumns/);
});

function writeFileSyncLines(path: string, lines: unknown[]): void {
  writeFileSync(path, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}

test('a table that would expire our recorded positions is refused', (t) => {
  const dir = tempDir();
  const table = join(dir, 'expiring');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col'], { 'delta.setTransactionRetentionDuration': 'interval 7 days' });
  const path = writeConfig(dir, testConfig({ topics: ['t'], group: 'g', tablePath: table }));
  const r = runCli(['validate', '--config', path]);
  t.is(r.status, 3);
  t.regex(r.stderr, /delta\.setTransactionRetentionDuration/);
});

test('batch.schedule is accepted; an impossible one is refused naming the key', (t) => {
  const dir = tempDir();
  const path = writeConfig(
    dir,
    testConfig({ topics: ['t'], group: 'g', tablePath: join(dir, 't'), extra: { batch: { schedule: '02:30', timezone: 'Europe/Berlin' } } }),
  );
  const accepted = runCli(['validate', '--config', path]);
  t.is(accepted.status, 3, 'past the configuration checks, the missing table is the problem');
  t.notRegex(accepted.stderr, /batch\.schedule/);
  const r = runCli(['validate', '--config', path, '--batch.schedule=0 0 31 2 *']);
  t.is(r.status, 2);
  t.regex(r.stderr, /batch\.schedule: .*never fires/);
});

test('MERGE settings are checked against the table: a delete_when over a missing column names the key', (t) => {
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const merge = { delta: { mode: 'MERGE', merge_keys: ['id'], delete_when: "note = 'gone'" } };
  const path = writeConfig(dir, testConfig({ topics: ['t'], group: 'g', tablePath: table, extra: merge }));
  const ok = runCli(['validate', '--config', path]);
  t.is(ok.status, 0, ok.stderr);

  const typo = runCli(['validate', '--config', path, "--delta.delete_when=note_ = 'gone'"]);
  t.is(typo.status, 2, typo.stderr);
  t.regex(typo.stderr, /delta\.delete_when: "note_ = 'gone'"/);
  t.regex(typo.stderr, /note_/);

  const notACondition = runCli(['validate', '--config', path, '--delta.delete_when=seq + 1']);
  t.is(notACondition.status, 2, notACondition.stderr);
  t.regex(notACondition.stderr, /not a condition/);

  const otherKeys = writeConfig(dir, testConfig({ topics: ['t'], group: 'g', tablePath: table, extra: { delta: { mode: 'MERGE', merge_keys: ['user_id'] } } }), 'keys.yaml');
  const missingKey = runCli(['validate', '--config', otherKeys]);
  t.is(missingKey.status, 3);
  t.regex(missingKey.stderr, /delta\.merge_keys names column "user_id"/);
});
