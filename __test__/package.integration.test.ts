/**
 * The package as users get it from npm: scripts/pack.sh packs the main package and this machine's
 * platform package, both are installed into a fresh project by a PATH without Rust, and the
 * installed CLI and library are used there against the local broker and a real Delta table.
 *
 * The tests share one install (node-rdkafka compiles librdkafka during it, 2–3 minutes), so they
 * run serially and each later one needs the first to have installed.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTopic, produceMessages } from '../ts/tools/kafka-admin.js';
import { EVENT_COLUMNS, createTableWithPython, readTable } from './helpers/delta.js';
import { BROKERS, tempDir, testConfig, uniqueName, writeConfig } from './helpers/env.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACK = join(ROOT, 'scripts', 'pack.sh');
const PLATFORM = 'linux-x64-gnu';
const PLATFORM_PACKAGE = `kafka-delta-rust-${PLATFORM}`;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  devDependencies: Record<string, string>;
};

/** A PATH without the Rust toolchain: the install must not need it. Node, npm, the C toolchain and Python stay. */
function pathWithoutRust(): string {
  const hasRust = (dir: string) => ['cargo', 'rustc'].some((tool) => existsSync(join(dir, tool)));
  return (process.env.PATH ?? '').split(delimiter).filter((dir) => dir && !hasRust(dir)).join(delimiter);
}

const nodeHeaders = join(dirname(dirname(process.execPath)), 'include', 'node');
const ENV: NodeJS.ProcessEnv = {
  ...process.env,
  PATH: pathWithoutRust(),
  // As scripts/setup.sh does: node-gyp builds node-rdkafka against the installed headers instead
  // of downloading them (this machine reaches only the package registries).
  ...(existsSync(join(nodeHeaders, 'node.h')) ? { npm_config_nodedir: dirname(dirname(nodeHeaders)) } : {}),
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(command: string, args: string[], cwd: string, timeoutMs = 120_000): Run {
  const started = Date.now();
  const r = spawnSync(command, args, { cwd, env: ENV, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms: Date.now() - started };
}

const describe = (r: Run) => `exit ${r.status}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;

interface PackJson {
  filename: string;
  size: number;
  unpackedSize: number;
  files: Array<{ path: string; size: number }>;
}

/** The fresh project with both packages installed; set by the first test. */
let project: string | undefined;
/** Folders to delete at the end: the project (~700 MB with librdkafka's build) and the tarballs. */
const cleanup: string[] = [];
test.after.always(() => {
  for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
});

function installed(t: { fail: (m: string) => void }): string | undefined {
  if (!project) t.fail('the packages were not installed (see the first test)');
  return project;
}

test.serial('[integration] npm pack ships JS, types and docs without the binary; the platform package holds it', (t) => {
  t.timeout(20 * 60_000);
  const out = tempDir('kdr-pack-out-');
  cleanup.push(out);
  const pack = run('bash', [PACK, out], ROOT, 5 * 60_000);
  t.is(pack.status, 0, describe(pack));
  const result = JSON.parse(pack.stdout.trim().split('\n').pop() ?? '{}') as { main: string; platforms: Record<string, string> };
  const mainTgz = result.main;
  const platformTgz = result.platforms[PLATFORM];
  if (!platformTgz) return t.fail(`no ${PLATFORM} package in ${pack.stdout}`);

  const main = (JSON.parse(readFileSync(join(out, 'pack-main.json'), 'utf8')) as PackJson[])[0]!;
  const platform = (JSON.parse(readFileSync(join(out, `pack-${PLATFORM}.json`), 'utf8')) as PackJson[])[0]!;
  t.log(`main package ${main.filename}: ${mb(main.size)} packed, ${mb(main.unpackedSize)} unpacked, ${main.files.length} files`);
  t.log(`platform package ${platform.filename}: ${mb(platform.size)} packed, ${mb(platform.unpackedSize)} unpacked`);

  const files = main.files.map((f) => f.path);
  for (const f of ['package.json', 'README.md', 'LICENSE', 'config.yaml', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'dist/native.js', 'dist/native.d.ts']) {
    t.true(files.includes(f), `the main package has ${f}`);
  }
  t.deepEqual(
    files.filter((f) => !/^dist\/.+\.(js|d\.ts)$/.test(f) && !['package.json', 'README.md', 'LICENSE', 'config.yaml'].includes(f)),
    [],
    'nothing else (no .node, sources, maps or tests)',
  );
  t.deepEqual(platform.files.map((f) => f.path).sort(), ['README.md', `kafka-delta-rust.${PLATFORM}.node`, 'package.json']);
  t.is(statSync(platformTgz).size, platform.size);

  const dir = tempDir('kdr-consumer-');
  cleanup.push(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'kdr-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
  const rust = run('sh', ['-c', 'command -v cargo || command -v rustc'], dir);
  t.true(rust.status !== 0 && rust.stdout === '', `no cargo or rustc on the install PATH: ${rust.stdout}`);
  // The consumer's own tools first, at the versions this repository builds with: a later
  // `npm install` in the project would build node-rdkafka again.
  const tools = run('npm', ['install', '-D', `typescript@${pkg.devDependencies.typescript}`, `@types/node@${pkg.devDependencies['@types/node']}`], dir, 5 * 60_000);
  t.is(tools.status, 0, describe(tools));
  t.log(`npm install of typescript and @types/node into the fresh project: ${(tools.ms / 1000).toFixed(1)} s`);
  const install = run('npm', ['install', mainTgz, platformTgz], dir, 15 * 60_000);
  t.is(install.status, 0, describe(install));
  t.log(`npm install of both tarballs into a fresh project (node-rdkafka compiles librdkafka): ${(install.ms / 1000).toFixed(1)} s`);
  const installedVersion = JSON.parse(readFileSync(join(dir, 'node_modules', PLATFORM_PACKAGE, 'package.json'), 'utf8')) as { version: string };
  t.is(installedVersion.version, pkg.version);
  t.false(readdirSync(join(dir, 'node_modules', 'kafka-delta-rust', 'dist')).some((f) => f.endsWith('.node')));
  project = dir;
});

test.serial('[integration] the installed command prints its usage and validates a real table', (t) => {
  const dir = installed(t);
  if (!dir) return;
  const help = run('npx', ['--no-install', 'kafka-delta-rust', '--help'], dir);
  t.is(help.status, 0, describe(help));
  t.regex(help.stdout, /kafka-delta-rust/);
  t.regex(help.stdout, /--until-caught-up/);
  t.regex(help.stdout, /validate/);

  const data = tempDir();
  const table = join(data, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const config = writeConfig(data, testConfig({ topics: ['unused'], group: 'g', tablePath: table }));
  const validate = run('npx', ['--no-install', 'kafka-delta-rust', 'validate', '--config', config], dir);
  t.is(validate.status, 0, describe(validate));
  t.regex(validate.stdout, /partitioned by \[date_col\]/);
});

test.serial('[integration] without the platform package, the command and the library name the platform and the package to install', (t) => {
  const dir = installed(t);
  if (!dir) return;
  const installedAt = join(dir, 'node_modules', PLATFORM_PACKAGE);
  const movedTo = join(dir, 'platform-package-moved-away');
  renameSync(installedAt, movedTo);
  t.teardown(() => renameSync(movedTo, installedAt));

  const cli = run('npx', ['--no-install', 'kafka-delta-rust', '--help'], dir);
  t.not(cli.status, 0);
  t.regex(cli.stderr, new RegExp(`no native binary for this platform \\(${PLATFORM}, Node v`));
  t.true(cli.stderr.includes(`npm install ${PLATFORM_PACKAGE}@${pkg.version}`), describe(cli));

  const lib = run(process.execPath, ['--input-type=module', '-e', "import('kafka-delta-rust').catch((e) => console.log(JSON.stringify({ name: e.name, code: e.code, platform: e.platform, packageName: e.packageName })))"], dir);
  t.deepEqual(JSON.parse(lib.stdout) as unknown, { name: 'NativeBindingError', code: 'NATIVE_BINDING', platform: PLATFORM, packageName: PLATFORM_PACKAGE });
});

const CONSUMER_PROGRAM = [
  "import { Pipeline, loadConfig, type RunSummary } from 'kafka-delta-rust';",
  '',
  'const config = await loadConfig({ path: process.argv[2] });',
  'const pipeline = new Pipeline(config, { untilCaughtUp: true });',
  "pipeline.on('flush', (s) => console.error(`flush: version ${s.version}, ${s.rowsWritten} rows`));",
  'const summary: RunSummary = await pipeline.run();',
  'console.log(JSON.stringify(summary));',
  '',
].join('\n');
const TSC_FLAGS = ['--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node'];

test.serial('[integration] a strict TypeScript program importing the installed package type-checks (no skipLibCheck)', (t) => {
  const dir = installed(t);
  if (!dir) return;
  writeFileSync(join(dir, 'check.ts'), CONSUMER_PROGRAM);
  // The package's own .d.ts files are checked as a consumer's tsc sees them.
  const check = run('npx', ['--no-install', 'tsc', ...TSC_FLAGS, '--noEmit', 'check.ts'], dir);
  t.is(check.status, 0, `tsc --strict on a consumer of the package: ${describe(check)}`);
});

test.serial('[integration] that program, compiled, ingests from the broker into a real table', async (t) => {
  t.timeout(5 * 60_000);
  const dir = installed(t);
  if (!dir) return;
  writeFileSync(join(dir, 'ingest.ts'), CONSUMER_PROGRAM);
  // Only JavaScript is needed to run it; the test above covers the types.
  const emit = run('npx', ['--no-install', 'tsc', ...TSC_FLAGS, '--skipLibCheck', '--outDir', 'build', 'ingest.ts'], dir);
  t.is(emit.status, 0, describe(emit));

  const data = tempDir();
  const table = join(data, 'events');
  createTableWithPython(table, EVENT_COLUMNS, ['date_col']);
  const topic = uniqueName('kdr_package');
  await createTopic(BROKERS, topic, 2);
  const messages = Array.from({ length: 40 }, (_, i) => ({
    key: `k${i}`,
    value: JSON.stringify({ id: `e${i}`, seq: i, amount: i / 2, date_col: i < 25 ? '2026-11-22' : '2026-11-23' }),
  }));
  await produceMessages(BROKERS, topic, messages);
  const config = writeConfig(data, testConfig({ topics: [topic], group: uniqueName('kdr_group'), tablePath: table }));

  const ingest = run(process.execPath, ['build/ingest.js', config], dir, 180_000);
  t.is(ingest.status, 0, describe(ingest));
  const summary = JSON.parse(ingest.stdout.trim().split('\n').pop() ?? '{}') as { messages: number; rowsWritten: number; deadLetters: number };
  t.like(summary, { messages: 40, rowsWritten: 40, deadLetters: 0 });

  const rows = readTable(table).rows;
  t.log(`ingestion by the installed package: ${JSON.stringify(summary)}; ${rows.length} rows read back by Python's deltalake`);
  t.is(rows.length, 40);
  t.deepEqual(rows.map((r) => r.id).sort(), messages.map((_, i) => `e${i}`).sort());
  t.is(rows.filter((r) => r.date_col === '2026-11-22').length, 25);
  const e7 = rows.find((r) => r.id === 'e7');
  t.like(e7, { seq: 7, amount: 3.5, date_col: '2026-11-22' });
});
