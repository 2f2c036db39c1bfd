/**
 * Structured logging: one line per event, JSON (for log shippers) or human-readable, filtered by
 * level. Context fields (topic, partition, offset, table version, ...) travel with each record.
 */

/** Log levels, most to least severe. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** Output format of log lines. */
export type LogFormat = 'json' | 'pretty';

/** Extra fields attached to a log record. */
export type LogFields = Readonly<Record<string, unknown>>;

/** The logger the pipeline writes to; embedders may pass their own implementation. */
export interface Logger {
  /** A failure: the pipeline stops or an operation is abandoned. */
  error(message: string, fields?: LogFields): void;
  /** Something unexpected that the pipeline works around (a retry, a refused setting). */
  warn(message: string, fields?: LogFields): void;
  /** Progress an operator wants to see: start, assignments, commits, stop. */
  info(message: string, fields?: LogFields): void;
  /** Per-batch detail, for diagnosing a run. */
  debug(message: string, fields?: LogFields): void;
  /** Per-message detail; verbose. */
  trace(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every record. */
  child(fields: LogFields): Logger;
}

const SEVERITY: Readonly<Record<LogLevel, number>> = { error: 0, warn: 1, info: 2, debug: 3, trace: 4 };

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Records less severe than this are dropped. */
  level: LogLevel;
  /** `json`: one JSON object per line; `pretty`: time, level, message and `key=value` fields. */
  format: LogFormat;
  /** Where lines go; standard error by default, so standard output stays free for results. */
  write?: (line: string) => void;
}

function errorFields(value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as Error & { code?: unknown }).code;
    return { name: value.name, message: value.message, ...(code === undefined ? {} : { code }) };
  }
  return value;
}

function render(format: LogFormat, level: LogLevel, message: string, fields: LogFields): string {
  const time = new Date().toISOString();
  const clean: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) clean[key] = errorFields(value);
  if (format === 'json') return JSON.stringify({ time, level, msg: message, ...clean });
  const extra = Object.entries(clean)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${level.toUpperCase().padEnd(5)} ${message}${extra ? ` ${extra}` : ''}`;
}

/** Creates a logger writing one line per record. */
export function createLogger(options: LoggerOptions, base: LogFields = {}): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const threshold = SEVERITY[options.level];
  const emit = (level: LogLevel) => (message: string, fields: LogFields = {}) => {
    if (SEVERITY[level] <= threshold) write(render(options.format, level, message, { ...base, ...fields }));
  };
  return {
    error: emit('error'),
    warn: emit('warn'),
    info: emit('info'),
    debug: emit('debug'),
    trace: emit('trace'),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  error: () => {},
  warn: () => {},
  info: () => {},
  debug: () => {},
  trace: () => {},
  child: () => silentLogger,
};
