#!/usr/bin/env node
/**
 * The `kafka-delta-rust` command: a thin shell over the library (everything it does, an
 * embedding service can do through `Pipeline`).
 *
 * Exit codes: 0 done; 1 runtime failure; 2 invalid configuration or usage; 3 the target table is
 * missing, unsupported or does not fit the configuration; 4 Kafka unreachable; 130 stopped at
 * once by a second signal (nothing is lost: the Delta log holds the last committed positions).
 */
// First: a missing native binary is reported with the platform and the package to install.
import './native-guard.js';
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadConfig, redactConfig, type Config } from './config/index.js';
import { secretValues } from './config/load.js';
import {
  ConfigError,
  KafkaError,
  SchemaMismatchError,
  TableNotFoundError,
  UnsupportedTableError,
} from './errors.js';
import { createLogger, type Logger } from './log.js';
import { LogFile } from './log-file.js';
import { subscription } from './kafka/topic-pattern.js';
import { maskingLogger, maskSecrets } from './masking.js';
import { startMetricsServer, type MetricsServer } from './metrics/server.js';
import { nativeVersions } from './native.js';
import { compactDays, daysToCompact, firstOpenDay } from './pipeline/maintenance.js';
import { Pipeline } from './pipeline/pipeline.js';
import { validateTarget } from './pipeline/validate.js';
import { formatVerifyReport, verifyTable } from './verify.js';
import { DeltaTarget } from './table.js';

export const EXIT = { ok: 0, failure: 1, config: 2, table: 3, kafka: 4, verify: 5, forced: 130 } as const;

const packageVersion = (): string => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
};

/** Options that are not config overrides. */
const OWN_OPTIONS = new Set(['_', '$0', 'config', 'c', 'until-caught-up', 'untilCaughtUp', 'dry-run', 'dryRun', 'force', 'day', 'json', 'help', 'version']);

/** Free-form maps whose keys contain dots themselves (`fetch.min.bytes`). */
const DOTTED_KEY_MAPS: ReadonlyArray<readonly [string, string]> = [
  ['kafka', 'properties'],
  ['delta', 'storage_options'],
];

/** Joins a map that yargs split at every dot back into dotted keys. */
function flattenKeys(value: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flattenKeys(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out[prefix] = value;
  }
  return out;
}

/** Everything else on the command line (`--kafka.broker=host:9092`) overrides the config file. */
function overridesFrom(argv: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(argv)) {
    if (OWN_OPTIONS.has(key) || key.includes('-')) continue;
    out[key] = value;
  }
  for (const [section, map] of DOTTED_KEY_MAPS) {
    const parent = out[section];
    if (parent !== null && typeof parent === 'object' && map in parent) {
      const record = parent as Record<string, unknown>;
      record[map] = flattenKeys(record[map]);
    }
  }
  return out;
}

function exitCodeOf(error: unknown): number {
  if (error instanceof ConfigError) return EXIT.config;
  if (error instanceof TableNotFoundError || error instanceof UnsupportedTableError || error instanceof SchemaMismatchError) {
    return EXIT.table;
  }
  if (error instanceof KafkaError) return EXIT.kafka;
  return EXIT.failure;
}

function report(error: unknown, secrets: readonly string[] = []): number {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`kafka-delta-rust: ${maskSecrets(message, secrets)}\n`);
  return exitCodeOf(error);
}

async function validate(configPath: string, overrides: Record<string, unknown>): Promise<number> {
  let secrets: string[] = [];
  try {
    const config = await loadConfig({ path: configPath, overrides });
    secrets = secretValues(config);
    const result = await validateTarget(config);
    const out = process.stdout;
    out.write(`config ${configPath}: ok\n`);
    if (result.table !== undefined) {
      out.write(`table ${result.table.uri}: version ${result.table.version}, partitioned by [${result.table.partitionColumns.join(', ')}], `);
      out.write(`${result.table.columns.length} columns, writable in ${config.delta.mode} mode\n`);
    } else if (result.wouldCreate !== undefined) {
      const { columns, properties } = result.wouldCreate;
      out.write(`table ${config.delta.tablePath}: missing; the first start creates it (delta.create_if_missing), partitioned by [${config.delta.partitionColumn}]:\n`);
      for (const c of columns) out.write(`  ${c.name} ${c.dataType}${c.nullable ? '' : ' not null'}\n`);
      for (const [k, v] of Object.entries(properties)) out.write(`  property ${k} = ${v}\n`);
    }
    out.write(`topics: ${subscription(config.kafka).join(', ')} (group ${config.kafka.groupId})\n`);
    out.write(`dead letters: ${result.deadLetterSink}\n`);
    return EXIT.ok;
  } catch (error) {
    return report(error, secrets);
  }
}

/** `verify`: the table against Kafka (positions, lag, lost offsets, duplicates, gaps); exit 5 on a problem. */
async function verify(configPath: string, overrides: Record<string, unknown>, json: boolean): Promise<number> {
  let secrets: string[] = [];
  try {
    const config = await loadConfig({ path: configPath, overrides });
    secrets = secretValues(config);
    const result = await verifyTable(config);
    process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : formatVerifyReport(result));
    return result.problems.length === 0 ? EXIT.ok : EXIT.verify;
  } catch (error) {
    return report(error, secrets);
  }
}

/** `checkpoint`: a checkpoint of the table's newest version and the cleanup of its expired log. */
async function checkpoint(configPath: string, overrides: Record<string, unknown>): Promise<number> {
  let secrets: string[] = [];
  try {
    const config = await loadConfig({ path: configPath, overrides });
    secrets = secretValues(config);
    const target = await DeltaTarget.open(config.delta.tablePath, config.delta.storageOptions, config.delta.storageRetry);
    const result = await target.checkpoint();
    process.stdout.write(`table ${target.uri}: checkpoint at version ${result.version}, ${result.logFilesRemoved} expired log files removed\n`);
    return EXIT.ok;
  } catch (error) {
    return report(error, secrets);
  }
}

/**
 * `optimize`: compacts the closed days that have small files (or the days named by `--day`, closed
 * or not), each in a commit of its own.
 */
async function optimize(configPath: string, overrides: Record<string, unknown>, named: readonly string[]): Promise<number> {
  let secrets: string[] = [];
  try {
    const config = await loadConfig({ path: configPath, overrides });
    secrets = secretValues(config);
    const target = await DeltaTarget.open(config.delta.tablePath, config.delta.storageOptions, config.delta.storageRetry);
    const m = config.maintenance;
    const column = config.delta.partitionColumn;
    const days = named.length > 0
      ? named
      : daysToCompact(await target.dayFiles(column, m.targetFileSizeBytes), firstOpenDay(Date.now(), config.delta.partitionSource.timezone, m.optimizeAfterSeconds), 0).map((d) => d.day);
    const out = process.stdout;
    const options = { dayColumn: column, targetFileSizeBytes: m.targetFileSizeBytes, memoryBudgetBytes: config.buffer.maxMemoryBytes, maxAttempts: config.concurrency.retryAttempts + 1 };
    const results = await compactDays(target, days, options, (r) => {
      const what = r.filesRemoved === 0 ? 'nothing to compact' : `${r.filesRemoved} files -> ${r.filesAdded} (${r.bytesRewritten} bytes rewritten) at version ${r.version}`;
      out.write(`  ${r.day}: ${what}\n`);
    });
    out.write(`table ${target.uri}: ${results.filter((r) => r.filesRemoved > 0).length} of ${results.length} days compacted\n`);
    return EXIT.ok;
  } catch (error) {
    return report(error, secrets);
  }
}

/** `vacuum`: removes the unreferenced data files past the retention, or lists them (`--dry-run`). */
async function vacuum(configPath: string, overrides: Record<string, unknown>, options: { dryRun: boolean; force: boolean }): Promise<number> {
  let secrets: string[] = [];
  try {
    const config = await loadConfig({ path: configPath, overrides });
    secrets = secretValues(config);
    const target = await DeltaTarget.open(config.delta.tablePath, config.delta.storageOptions, config.delta.storageRetry);
    const result = await target.vacuum(options);
    const verb = result.dryRun ? 'would remove' : 'removed';
    process.stdout.write(`table ${target.uri}: ${verb} ${result.files.length} files older than ${result.retentionHours} hours\n`);
    for (const file of result.files) process.stdout.write(`  ${file}\n`);
    return EXIT.ok;
  } catch (error) {
    return report(error, secrets);
  }
}

function handleSignals(pipeline: Pipeline, log: Logger): void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      log.warn('second signal: exiting now; the next start resumes from the last commit', { signal });
      process.exit(EXIT.forced);
    }
    log.info('stopping: flushing what is staged, then exiting', { signal });
    void pipeline.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

async function run(configPath: string, overrides: Record<string, unknown>, untilCaughtUp: boolean): Promise<number> {
  let config: Config;
  try {
    config = await loadConfig({ path: configPath, overrides });
  } catch (error) {
    return report(error);
  }
  let logFile: LogFile | undefined;
  try {
    logFile = config.logging.file === undefined ? undefined : LogFile.open(config.logging.file);
  } catch (error) {
    return report(error);
  }
  const secrets = secretValues(config);
  const log = maskingLogger(
    createLogger({ level: config.logging.level, format: config.logging.format, write: logFile && ((line) => logFile.write(line)) }),
    secrets,
  );
  if (logFile) reopenOnHangup(logFile, log);
  log.debug('configuration', { config: redactConfig(config) });
  const pipeline = new Pipeline(config, { logger: log, untilCaughtUp });
  let server: MetricsServer | undefined;
  try {
    if (config.monitoring.enabled) {
      server = await startMetricsServer({
        host: config.monitoring.host,
        port: config.monitoring.port,
        endpoint: config.monitoring.endpoint,
        registry: pipeline.metrics.registry,
        ready: () => pipeline.ready,
        token: config.credentials.metricsToken,
        onError: (error) => log.error('cannot render the metrics', { error }),
      });
      log.info('metrics served', { url: `http://${config.monitoring.host}:${server.port}${config.monitoring.endpoint}` });
    }
    handleSignals(pipeline, log);
    const summary = await pipeline.run();
    log.info('run finished', {
      ...summary,
      seconds: Number(summary.seconds.toFixed(2)),
      messagesPerSecond: Math.round(summary.messages / Math.max(summary.seconds, 1e-3)),
    });
    return EXIT.ok;
  } catch (error) {
    return report(error, secrets);
  } finally {
    await server?.close();
    logFile?.close();
  }
}

/** logrotate moves the file away and sends SIGHUP: the lines after it go to a new file. */
function reopenOnHangup(file: LogFile, log: Logger): void {
  process.on('SIGHUP', () => {
    const error = file.reopen();
    if (error) log.error('cannot reopen the log file; logging on to the old one', { file: file.path, error });
    else log.info('log file reopened', { file: file.path });
  });
}

/** Runs the command line; resolves with the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let code: number = EXIT.ok;
  const parser = yargs([...args])
    .scriptName('kafka-delta-rust')
    .usage('$0 [run] [options]\n\nStreams Kafka topics into an existing Delta Lake table, exactly once.')
    .option('config', {
      alias: 'c',
      type: 'string',
      default: './config.yaml',
      describe: 'Path of the YAML configuration file',
    })
    .command(
      ['run', '$0'],
      'Run the pipeline (the default command)',
      (y) =>
        y
          .option('until-caught-up', {
            type: 'boolean',
            default: false,
            describe: 'Ingest up to the high watermarks seen at start, commit, and exit 0 (batch / backfill mode)',
          })
          .option('dry-run', {
            type: 'boolean',
            default: false,
            describe: 'Only load and check the config and the table, like `validate`',
          }),
      async (argv) => {
        const overrides = overridesFrom(argv);
        code = argv['dry-run']
          ? await validate(argv.config, overrides)
          : await run(argv.config, overrides, argv['until-caught-up']);
      },
    )
    .command(
      'validate',
      'Load and check the configuration and the target table, then exit (non-zero with the reasons)',
      (y) => y,
      async (argv) => {
        code = await validate(argv.config, overridesFrom(argv));
      },
    )
    .command(
      'verify',
      "Check the table against Kafka: each partition's recorded position, lag and offsets lost to retention; with Kafka metadata columns, offsets held twice or missing",
      (y) => y.option('json', { type: 'boolean', default: false, describe: 'Print the report as JSON' }),
      async (argv) => {
        code = await verify(argv.config, overridesFrom(argv), argv.json);
      },
    )
    .command(
      'checkpoint',
      "Write a checkpoint of the table's newest version, then remove the log files older than its delta.logRetentionDuration",
      (y) => y,
      async (argv) => {
        code = await checkpoint(argv.config, overridesFrom(argv));
      },
    )
    .command(
      'optimize',
      'Compact the small files of every closed day (maintenance.optimize_after past its end), or of the days given with --day, one commit per day',
      (y) => y.option('day', { type: 'string', array: true, default: [], describe: 'A day (YYYY-MM-DD) to compact, closed or not; repeatable' }),
      async (argv) => {
        code = await optimize(argv.config, overridesFrom(argv), argv.day.map(String));
      },
    )
    .command(
      'vacuum',
      'Remove the data files no version references, older than the table\'s delta.deletedFileRetentionDuration (at least 7 days unless --force)',
      (y) =>
        y
          .option('dry-run', { type: 'boolean', default: false, describe: 'List the files, remove nothing' })
          .option('force', { type: 'boolean', default: false, describe: 'Honour a retention shorter than 7 days' }),
      async (argv) => {
        code = await vacuum(argv.config, overridesFrom(argv), { dryRun: argv['dry-run'], force: argv.force });
      },
    )
    .epilog(
      [
        'Any config key can be overridden with its dotted path, e.g.',
        '  --kafka.broker=host:9092 --delta.table_path=/data/events --batch.batch_size=50000',
        'Secrets may come from the environment: ${VAR} in the YAML, credentials.*_file, or',
        'KAFKA_DELTA_KAFKA_USERNAME / KAFKA_DELTA_KAFKA_PASSWORD.',
        '',
        'Exit codes: 0 done; 1 runtime failure; 2 invalid configuration or usage; 3 table missing,',
        'unsupported or not fitting the configuration; 4 Kafka unreachable; 5 verify found a problem;',
        '130 forced stop by a second signal.',
      ].join('\n'),
    )
    .version(`${packageVersion()} (native core ${nativeVersions().core}, deltalake ${nativeVersions().deltalake}, arrow ${nativeVersions().arrow})`)
    .help()
    .strictCommands()
    .parserConfiguration({ 'dot-notation': true, 'camel-case-expansion': false })
    .fail((message, error) => {
      if (error) throw error;
      process.stderr.write(`kafka-delta-rust: ${message}\nRun with --help for usage.\n`);
      code = EXIT.config;
    })
    .wrap(100);
  await parser.parseAsync();
  return code;
}

/** Exits with `code` once the event loop drains, or after a grace period if a client lingers. */
function finish(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 5_000).unref();
}

main(hideBin(process.argv)).then(finish, (error: unknown) => finish(report(error)));
