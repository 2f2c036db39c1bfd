/**
 * Building a {@link Config}: reading the YAML file, merging CLI overrides, substituting
 * `${VAR}` references, reading secrets from files and the environment, then validating.
 *
 * Relative paths in the configuration (`delta.table_path`, `dead_letter.table_path`,
 * `buffer.staging_dir`, `credentials.*_file`) are relative to the process's working directory,
 * not to the configuration file's folder; they are kept as written. URIs are never touched.
 * The `kafka.tls.*` files are checked and replaced by their absolute paths (see tls.ts).
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError, type ConfigProblem } from '../errors.js';
import type { z } from 'zod';
import type { Config } from './index.js';
import {
  FREE_FORM_MAPS, KNOWN_KEYS, ROOT_KEYS, checkSchema, crossProblems, isPlainObject, toConfig, valueAt, type PathSegment,
} from './schema.js';
import { checkTlsFiles } from './tls.js';

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Variables for `${VAR}` substitution and the `KAFKA_DELTA_*` overrides. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Folder against which relative `credentials.*_file` and `kafka.tls.*` paths are read. Default `process.cwd()`. */
  baseDir?: string;
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** YAML file to read. Default `./config.yaml` (relative to the process cwd). */
  path?: string;
  /**
   * Values deep-merged over the file before validation, shaped like the YAML (snake_case), e.g.
   * `{ kafka: { broker: 'host:9092' } }` as yargs produces from `--kafka.broker=host:9092`.
   * Maps are merged key by key; lists and scalars replace; `undefined` values are ignored.
   */
  overrides?: Record<string, unknown>;
  /** Variables for `${VAR}` substitution and the `KAFKA_DELTA_*` overrides. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/** Credentials that can come from `<key>_file` siblings and from `KAFKA_DELTA_<KEY>` variables. */
const FILE_SECRETS = ['kafka_username', 'kafka_password', 'metrics_token'] as const;

/** `${VAR}`, `${VAR:-default}`, and `$${...}` which stands for a literal `${...}`. */
const REF = /(\$?)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const WHOLE_REF = /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/;

const REDACTED = '<redacted>';

interface Prepared {
  doc: Record<string, unknown>;
  /** Keys whose whole value was one `${VAR}` reference. */
  lenient: Set<string>;
  problems: ConfigProblem[];
}

function substitute(value: string, key: string, env: Record<string, string | undefined>, problems: ConfigProblem[]): string {
  const missing: string[] = [];
  const out = value.replace(REF, (match: string, escape: string, name: string, fallback: string | undefined) => {
    if (escape === '$') return match.slice(1);
    const found = env[name];
    if (found !== undefined && (found !== '' || fallback === undefined)) return found;
    if (fallback !== undefined) return fallback;
    missing.push(name);
    return match;
  });
  if (missing.length > 0) {
    const names = missing.join(', ');
    problems.push({ key, message: `environment variable ${names} is not set (give a default with \${${missing[0] ?? ''}:-value})` });
  } else if (/(^|[^$])\$\{/.test(value.replace(REF, ''))) {
    problems.push({ key, message: 'contains a malformed ${...} reference: write ${VAR} or ${VAR:-default}, or $${ for a literal ${' });
  }
  return out;
}

/** Copies the document without nulls (null means "not set"), with `${VAR}` references replaced. */
function prepareValue(value: unknown, at: PathSegment[], env: Record<string, string | undefined>, prep: Prepared): unknown {
  if (typeof value === 'string') {
    const key = keyOf(at);
    if (WHOLE_REF.test(value)) prep.lenient.add(key);
    return substitute(value, key, env, prep.problems);
  }
  if (Array.isArray(value)) return value.map((v, i) => prepareValue(v, [...at, i], env, prep));
  if (!isPlainObject(value)) return value;
  const keepNulls = FREE_FORM_MAPS.has(keyOf(at));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === null && !keepNulls) continue;
    out[k] = prepareValue(v, [...at, k], env, prep);
  }
  return out;
}

/** Applies `KAFKA_DELTA_KAFKA_*` variables and reads `credentials.*_file` secrets. */
function resolveSecrets(doc: Record<string, unknown>, env: Record<string, string | undefined>, baseDir: string, problems: ConfigProblem[]): void {
  if (doc['credentials'] === undefined) doc['credentials'] = {};
  const creds = doc['credentials'];
  if (!isPlainObject(creds)) return;
  for (const name of FILE_SECRETS) {
    const fileKey = `${name}_file`;
    const fromEnv = env[`KAFKA_DELTA_${name.toUpperCase()}`];
    if (fromEnv !== undefined && fromEnv !== '') {
      creds[name] = fromEnv;
      delete creds[fileKey];
      continue;
    }
    const file = creds[fileKey];
    if (typeof file !== 'string') continue;
    const key = `credentials.${fileKey}`;
    if (creds[name] !== undefined) {
      problems.push({ key, message: `set either credentials.${name} or credentials.${fileKey}, not both` });
      continue;
    }
    const abs = path.resolve(baseDir, file);
    try {
      const content = readFileSync(abs, 'utf8').trim();
      if (content === '') {
        problems.push({ key, message: `file ${abs} is empty` });
        continue;
      }
      creds[name] = content;
      delete creds[fileKey];
    } catch (err) {
      problems.push({ key, message: `cannot read ${abs} (${errorCode(err)})` });
    }
  }
}

function errorCode(err: unknown): string {
  const code = err instanceof Error ? (err as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------
// Problems: the key as written, what is expected, and the offending value unless it is a secret.

/** Dotted display form of a key path: `batch.batch_interval`, `kafka.topics[1]`. */
function keyOf(path: readonly PathSegment[]): string {
  return path.reduce<string>((acc, seg) => {
    if (typeof seg === 'number') return `${acc}[${seg}]`;
    return acc === '' ? seg : `${acc}.${seg}`;
  }, '');
}

/** Whether the value at `path` is a secret that must never be printed. */
function isSecretKey(path: readonly PathSegment[]): boolean {
  const last = path[path.length - 1];
  if (typeof last !== 'string' || last.endsWith('_file')) return false;
  if (FREE_FORM_MAPS.has(keyOf(path.slice(0, -1)))) {
    return /key|secret|token|password|credential|signature/i.test(last);
  }
  return /password|secret|token/i.test(last);
}

/** How a value is shown in a problem: quoted and truncated strings, never secrets or map contents. */
function describe(value: unknown, secret: boolean): string {
  if (secret) return '<redacted>';
  if (typeof value === 'string') {
    const short = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return `the string ${JSON.stringify(short)}`;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return `the ${typeof value} ${String(value)}`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a map' : typeof value;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

function unknownKeyMessage(parent: string, key: string): string {
  const norm = (s: string) => s.toLowerCase().replace(/-/g, '_');
  let best: string | undefined;
  let bestDist = 3;
  for (const known of KNOWN_KEYS.get(parent) ?? []) {
    const d = editDistance(norm(key), norm(known));
    if (d < bestDist) [best, bestDist] = [known, d];
  }
  if (best !== undefined) return `unknown key (did you mean \`${best}\`?)`;
  for (const [path, keys] of KNOWN_KEYS) {
    if (path !== parent && keys.includes(norm(key))) return `unknown key (did you mean \`${path === '' ? '' : `${path}.`}${norm(key)}\`?)`;
  }
  return 'unknown key';
}

function hint(issue: z.core.$ZodIssue, value: unknown): string {
  if (issue.code !== 'invalid_type' || typeof value !== 'string') return '';
  if (issue.expected === 'number') {
    if (/^\s*[-+]?\d+(\.\d+)?\s*,\s*$/.test(value)) return ' (remove the trailing comma?)';
    if (/^\s*[-+]?\d+(\.\d+)?\s*$/.test(value)) return ' (write the number without quotes)';
  }
  if (issue.expected === 'boolean' && /^(true|false)$/i.test(value.trim())) return ' (write true or false without quotes)';
  return '';
}

function issueProblems(issue: z.core.$ZodIssue, input: unknown): ConfigProblem[] {
  const path = issue.path.map((seg) => (typeof seg === 'symbol' ? String(seg) : seg));
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => ({ key: keyOf([...path, k]), message: unknownKeyMessage(keyOf(path), k) }));
  }
  const key = keyOf(path);
  if (issue.code === 'custom' && issue.params?.['full'] === true) return [{ key, message: issue.message }];
  const value = valueAt(input, path);
  if (value === undefined) return [{ key, message: `is required (expected ${issue.message})` }];
  return [{ key, message: `expected ${issue.message}, got ${describe(value, isSecretKey(path))}${hint(issue, value)}` }];
}


const sectionRank = (key: string) => {
  const i = ROOT_KEYS.indexOf(key.split(/[.[]/)[0] ?? '');
  return i < 0 ? ROOT_KEYS.length : i;
};

/** Keeps the first problem of each key, sorted by section. */
function tidyProblems(problems: readonly ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  const unique = problems.filter((p) => !seen.has(p.key) && seen.add(p.key));
  return unique.map((p, i) => [p, i] as const)
    .sort(([a, i], [b, j]) => sectionRank(a.key) - sectionRank(b.key) || i - j)
    .map(([p]) => p);
}

/**
 * Runs the schema and the cross-key rules. Strings at `lenient` keys (values that were exactly one
 * `${VAR}` reference) may stand for numbers and booleans, as the environment only holds strings.
 */
function validate(input: Record<string, unknown>, lenient: ReadonlySet<string>) {
  let doc = input;
  let result = checkSchema(doc);
  const fixes = (result.error?.issues ?? []).flatMap((issue): { path: PathSegment[]; value: number | boolean }[] => {
    const path = issue.path.filter((s): s is PathSegment => typeof s !== 'symbol');
    const value = valueAt(doc, path);
    if (issue.code !== 'invalid_type' || typeof value !== 'string' || !lenient.has(keyOf(path))) return [];
    const t = value.trim();
    if (issue.expected === 'number' && /^[-+]?\d+(\.\d+)?$/.test(t)) return [{ path, value: Number(t) }];
    if (issue.expected === 'boolean' && /^(true|false)$/i.test(t)) return [{ path, value: t.toLowerCase() === 'true' }];
    return [];
  });
  if (fixes.length > 0) {
    doc = structuredClone(doc);
    for (const { path, value } of fixes) {
      const parent = valueAt(doc, path.slice(0, -1));
      const last = path[path.length - 1];
      if (isPlainObject(parent) && typeof last === 'string') parent[last] = value;
    }
    result = checkSchema(doc);
  }
  const problems = [...(result.error?.issues ?? []).flatMap((issue) => issueProblems(issue, doc)), ...crossProblems(doc)];
  return { result, problems };
}

/**
 * Validates a configuration given as a plain object shaped like the YAML file, fills in the
 * defaults and returns the normalized {@link Config}.
 *
 * Before validation: `null` values mean "not set"; `${VAR}` and `${VAR:-default}` in any string are
 * replaced from `options.env`; `credentials.kafka_username_file`/`kafka_password_file` are read
 * (content trimmed); `KAFKA_DELTA_KAFKA_USERNAME`/`KAFKA_DELTA_KAFKA_PASSWORD` override both;
 * the `kafka.tls.*` files must exist and hold PEM certificates / a key.
 *
 * @throws {ConfigError} listing every problem found, one per key; secrets are never shown.
 */
export function parseConfig(raw: unknown, options: ParseConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  if (raw !== undefined && raw !== null && !isPlainObject(raw)) {
    throw new ConfigError([{ key: 'config', message: `expected a map of settings at the top level, got ${describe(raw, false)}` }]);
  }
  const prep: Prepared = { doc: {}, lenient: new Set(), problems: [] };
  const doc = prepareValue(raw ?? {}, [], env, prep);
  prep.doc = isPlainObject(doc) ? doc : {};
  resolveSecrets(prep.doc, env, options.baseDir ?? process.cwd(), prep.problems);
  checkTlsFiles(prep.doc, options.baseDir ?? process.cwd(), prep.problems);
  const { result, problems } = validate(prep.doc, prep.lenient);
  const all = tidyProblems([...prep.problems, ...problems]);
  if (all.length > 0 || !result.success) throw new ConfigError(all);
  return toConfig(result.data);
}

/** Merges `over` into `base`: maps key by key, anything else replaces; `undefined` is ignored. */
function deepMerge(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = deepMerge(base[k], v);
  return out;
}

/** Parses YAML text; syntax errors become a ConfigError with line and column. */
function parseYaml(text: string, file: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: true });
  const problems = doc.errors.map((e) => {
    const { line, col } = lineCounter.linePos(e.pos[0]);
    // Only the first line of the message: later lines may quote the source, which can hold secrets.
    return { key: `${file}:${line}:${col}`, message: `YAML error at line ${line}, column ${col}: ${e.message.split('\n')[0] ?? ''}` };
  });
  if (problems.length > 0) throw new ConfigError(problems, `cannot parse YAML in ${file}`);
  try {
    return doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new ConfigError([{ key: file, message: err instanceof Error ? err.message : String(err) }], `cannot parse YAML in ${file}`);
  }
}

/**
 * Reads the YAML configuration file, deep-merges `overrides` over it and validates the result
 * with {@link parseConfig}.
 *
 * @throws {ConfigError} when the file is missing or unreadable, is not valid YAML (problems give
 *   line and column), or holds an invalid configuration.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<Config> {
  const file = options.path ?? './config.yaml';
  const abs = path.resolve(file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = errorCode(err);
    const message = code === 'ENOENT' ? `file not found: ${abs}` : `cannot read ${abs} (${code})`;
    throw new ConfigError([{ key: 'config', message }], `cannot load configuration file ${file}`);
  }
  const merged = deepMerge(parseYaml(text, file), options.overrides);
  try {
    return parseConfig(merged, { env: options.env });
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(err.problems, `invalid configuration in ${file}`);
    throw err;
  }
}

/** A deep copy of `config` with every secret replaced by `<redacted>`, safe to log. */
export function redactConfig(config: Config): Config {
  const copy = structuredClone(config);
  if (copy.credentials.kafkaPassword !== undefined) copy.credentials.kafkaPassword = REDACTED;
  if (copy.credentials.metricsToken !== undefined) copy.credentials.metricsToken = REDACTED;
  for (const [map, key] of secretEntries(copy)) map[key] = REDACTED;
  return copy;
}

/** @internal The credential values of a configuration (to mask them wherever they appear). */
export function secretValues(config: Config): string[] {
  const out = secretEntries(config).map(([map, key]) => map[key] as string);
  if (config.credentials.kafkaPassword !== undefined) out.push(config.credentials.kafkaPassword);
  if (config.credentials.metricsToken !== undefined) out.push(config.credentials.metricsToken);
  return out;
}

/** The free-form maps' entries that hold secrets, as (map, key) pairs. */
function secretEntries(config: Config): Array<[Record<string, string>, string]> {
  const maps: Array<[Record<string, string>, string[]]> = [
    [config.kafka.properties, ['kafka', 'properties']],
    [config.delta.storageOptions, ['delta', 'storage_options']],
  ];
  return maps.flatMap(([map, at]) => Object.keys(map).filter((k) => isSecretKey([...at, k])).map((k): [Record<string, string>, string] => [map, k]));
}
