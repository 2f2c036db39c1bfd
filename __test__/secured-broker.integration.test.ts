/**
 * Secured brokers: one private broker (scripts/kafka/kafka.sh with KAFKA_SECURITY) listening
 * with SASL_PLAINTEXT and SASL_SSL (SCRAM-SHA-512) and SSL (client certificates), beside the
 * PLAINTEXT listener the test data is produced through. The CLI ingests through each secured
 * listener into a table read back by Python; a refused login or certificate stops it at startup
 * with exit 4, naming the mechanism and never the password.
 */
import test, { type ExecutionContext } from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { PrivateBroker } from './helpers/broker.js';
import { runCli, startCli, type CliResult } from './helpers/cli.js';
import { EVENT_COLUMNS, createTableWithPython, readTable } from './helpers/delta.js';
import { tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

/** The CLI's exit code for Kafka failures (ts/cli.ts). */
const EXIT_KAFKA = 4;
const DAYS = ['2026-11-22', '2026-11-23'];

let broker: PrivateBroker | undefined;

test.before('start a broker with secured listeners', async (t) => {
  t.timeout(4 * 60_000);
  broker = await PrivateBroker.create({ security: ['SASL_PLAINTEXT', 'SSL', 'SASL_SSL'] });
  const started = Date.now();
  await broker.up();
  t.log(`secured broker up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

test.after.always('stop the secured broker', async () => {
  await broker?.destroy();
});

function started(): PrivateBroker {
  if (!broker) throw new Error('the broker did not start');
  return broker;
}

interface Fixture {
  dir: string;
  topic: string;
  table: string;
  ids: string[];
}

/** A table, and a topic holding `count` events produced through the PLAINTEXT listener. */
async function fixture(count = 600): Promise<Fixture> {
  const b = started();
  const dir = tempDir();
  const table = join(dir, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_secured');
  await createTopic(b.bootstrap, topic, 3);
  const ids = Array.from({ length: count }, (_, i) => `e${i}`);
  await produceMessages(
    b.bootstrap,
    topic,
    ids.map((id, i) => ({ key: `k${i % 7}`, value: JSON.stringify({ id, seq: i, amount: i / 4, note: null, date_col: DAYS[i % 2] }) })),
  );
  return { dir, topic, table, ids };
}

/** Runs the CLI until caught up against `brokerAddress` with the given kafka/credentials sections. */
function ingest(f: Fixture, brokerAddress: string, extra: { kafka?: Record<string, unknown>; credentials?: Record<string, unknown> }, env: NodeJS.ProcessEnv = {}): CliResult {
  const config = testConfig({
    topics: [f.topic],
    group: uniqueName('kdr_group'),
    tablePath: f.table,
    extra: { kafka: { broker: brokerAddress, ...extra.kafka }, ...(extra.credentials ? { credentials: extra.credentials } : {}) },
  });
  // DEBUG: the password must not leak even there.
  return runCli(['--config', writeConfig(f.dir, config), '--until-caught-up', '--logging.level=DEBUG'], { env, timeoutMs: 180_000 });
}

/** Every produced event is in the table once, on its day. */
function assertExact(t: ExecutionContext, f: Fixture): void {
  const rows = readTable(f.table).rows;
  t.deepEqual(rows.map((r) => String(r.id)).sort(), [...f.ids].sort());
  for (const row of rows) t.is(row.date_col, DAYS[Number(row.seq) % 2]);
}

test.serial('[integration] SASL_SSL with SCRAM-SHA-512 and the CA in kafka.tls.ca_file: every event lands once, the password is never printed', async (t) => {
  const b = started();
  const sec = b.securityMaterial();
  const f = await fixture();
  const passwordFile = join(f.dir, 'kafka-password');
  writeFileSync(passwordFile, `${sec.scramPassword}\n`);
  const run = ingest(f, b.listener('SASL_SSL'), {
    kafka: { tls: { ca_file: sec.caFile } },
    credentials: { kafka_username: sec.scramUser, kafka_password_file: passwordFile, sasl_mechanism: 'SCRAM-SHA-512', security_protocol: 'SASL_SSL' },
  });
  t.is(run.status, 0, run.stderr.slice(-3000));
  t.false(`${run.stdout}${run.stderr}`.includes(sec.scramPassword), 'the password is not in the output');
  assertExact(t, f);
});

test.serial('[integration] SSL (TLS with a client certificate, no SASL): every event lands once', async (t) => {
  const b = started();
  const sec = b.securityMaterial();
  const f = await fixture();
  const run = ingest(f, b.listener('SSL'), {
    kafka: { tls: { ca_file: sec.caFile, cert_file: sec.clientCertFile, key_file: sec.clientKeyFile } },
    credentials: { security_protocol: 'SSL' },
  });
  t.is(run.status, 0, run.stderr.slice(-3000));
  assertExact(t, f);
});

test.serial('[integration] SASL_PLAINTEXT with SCRAM-SHA-512 (password from KAFKA_DELTA_KAFKA_PASSWORD): every event lands once', async (t) => {
  const b = started();
  const sec = b.securityMaterial();
  const f = await fixture();
  const run = ingest(
    f,
    b.listener('SASL_PLAINTEXT'),
    { credentials: { kafka_username: sec.scramUser, kafka_password: 'overridden-by-the-environment', sasl_mechanism: 'SCRAM-SHA-512', security_protocol: 'SASL_PLAINTEXT' } },
    { KAFKA_DELTA_KAFKA_PASSWORD: sec.scramPassword },
  );
  t.is(run.status, 0, run.stderr.slice(-3000));
  t.false(`${run.stdout}${run.stderr}`.includes(sec.scramPassword), 'the password is not in the output');
  assertExact(t, f);
});

/**
 * The CLI against a listener that refuses it, without blocking the event loop (the two refusal
 * tests run at the same time: each waits out librdkafka's connect, see below).
 */
async function refusedRun(f: Fixture, brokerAddress: string, extra: { kafka?: Record<string, unknown>; credentials?: Record<string, unknown> }): Promise<{ status: number | null; signal: NodeJS.Signals | null; stderr: string; output: string; seconds: number }> {
  const config = testConfig({
    topics: [f.topic],
    group: uniqueName('kdr_group'),
    tablePath: f.table,
    extra: { kafka: { broker: brokerAddress, ...extra.kafka }, ...(extra.credentials ? { credentials: extra.credentials } : {}) },
  });
  const begun = Date.now();
  const cli = startCli(['--config', writeConfig(f.dir, config), '--until-caught-up']);
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), 90_000);
  const status = await cli.exited;
  clearTimeout(timer);
  const output = cli.output();
  const stderr = output.trim().split('\n').filter((l) => !l.startsWith('{')).join('\n');
  return { status, signal: cli.child.signalCode, stderr, output, seconds: (Date.now() - begun) / 1000 };
}

/**
 * How long a refused start may take to exit. The error is printed within a second; the process
 * then waits for node-rdkafka's connect, whose metadata request (30 s timeout) librdkafka does
 * not cut short when the login was refused, and exit joins that worker thread.
 */
const REFUSED_EXIT_S = 45;

test('[integration] a wrong SCRAM password is a startup error: exit 4, naming the mechanism and the user, never the password', async (t) => {
  const b = started();
  const sec = b.securityMaterial();
  const f = await fixture(10);
  const wrong = `not-${sec.scramPassword}`;
  const run = await refusedRun(f, b.listener('SASL_SSL'), {
    kafka: { tls: { ca_file: sec.caFile } },
    credentials: { kafka_username: sec.scramUser, kafka_password: wrong, sasl_mechanism: 'SCRAM-SHA-512', security_protocol: 'SASL_SSL' },
  });
  t.log(`exit ${String(run.status)} after ${run.seconds.toFixed(1)} s`);
  t.is(run.status, EXIT_KAFKA, `signal ${String(run.signal)}\n${run.output.slice(-3000)}`);
  t.true(run.seconds < REFUSED_EXIT_S, `took ${run.seconds} s`);
  t.regex(run.stderr, /^kafka-delta-rust: SASL authentication failed \(SCRAM-SHA-512\) for user kdr at 127\.0\.0\.1:\d+: .*invalid credentials/m);
  t.false(run.output.includes(wrong), 'the wrong password is not in the output');
  t.false(run.output.includes(sec.scramPassword), 'the right password is not in the output');
  t.is(readTable(f.table).rows.length, 0);
});

test('[integration] no client certificate for the SSL listener that requires one: exit 4 at startup naming TLS', async (t) => {
  const b = started();
  const sec = b.securityMaterial();
  const f = await fixture(10);
  const run = await refusedRun(f, b.listener('SSL'), { kafka: { tls: { ca_file: sec.caFile } } });
  t.log(`exit ${String(run.status)} after ${run.seconds.toFixed(1)} s`);
  t.is(run.status, EXIT_KAFKA, `signal ${String(run.signal)}\n${run.output.slice(-3000)}`);
  t.true(run.seconds < REFUSED_EXIT_S, `took ${run.seconds} s`);
  t.regex(run.stderr, /^kafka-delta-rust: TLS handshake with Kafka at 127\.0\.0\.1:\d+ failed \(see kafka\.tls\): .*certificate/m);
});
