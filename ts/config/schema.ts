/**
 * The YAML schema (zod), the rules that span several keys, and the mapping of a valid snake_case
 * document onto the normalized camelCase {@link Config}. Error messages of the schema say what is
 * expected ("a number of seconds"); load.ts adds the key and the offending value.
 */
import { z } from 'zod';
import type { ConfigProblem } from '../errors.js';
import { MESSAGE_FORMATS, formatProblems } from './format-rules.js';
import { anchoredTopicPattern, topicPatternProblem, topicPatternRegExp } from '../kafka/topic-pattern.js';
import { scheduleProblem } from '../pipeline/schedule.js';
import { DEFAULT_STORAGE_RETRY } from '../storage-retry.js';
import { tableSchemaShape, toTableSchema } from './table-schema.js';
import type {
  Config, DeadLetterConfig, DedupStrategy, DeltaCredentialsProvider, LogFormat, LogLevel, NullKeysPolicy,
  PartitionSource, PositionLostPolicy, SaslMechanism, SecurityProtocol, StartFrom, UnknownFieldsPolicy, SchemaEvolution, WriteMode, EpochUnit,
} from './index.js';

export type PathSegment = string | number;
const [MIB, GIB] = [2 ** 20, 2 ** 30];
/** `batch.batch_interval` and `batch.batch_size` when neither they nor `batch.schedule` are set. */
const [DEFAULT_BATCH_INTERVAL, DEFAULT_BATCH_SIZE] = [60, 100_000];

/** Free-form maps: their keys are not checked against a schema. */
export const FREE_FORM_MAPS: ReadonlySet<string> = new Set([
  'kafka.properties', 'delta.storage_options', 'delta.schema.properties', 'credentials.delta_credentials', 'transform.columns',
]);

/** librdkafka properties that kafka-delta-rust sets itself, and the key to use instead. */
const RESERVED_PROPERTIES: Readonly<Record<string, string>> = {
  'group.id': 'use kafka.group_id instead',
  'bootstrap.servers': 'use kafka.broker instead',
  'metadata.broker.list': 'use kafka.broker instead',
  'enable.auto.commit': 'offsets are committed to the Delta table together with the data',
  // A reset there would move a partition past offsets the table never got, without a word.
  'auto.offset.reset': 'use kafka.on_position_lost instead',
};

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function valueAt(root: unknown, path: readonly PathSegment[]): unknown {
  let cur = root;
  for (const seg of path) {
    if (typeof seg === 'number') cur = Array.isArray(cur) ? cur[seg] : undefined;
    else cur = isPlainObject(cur) ? cur[seg] : undefined;
  }
  return cur;
}

// ---------------------------------------------------------------------------------------------
// Leaf schemas. Every error message is "what is expected"; the formatter adds the offending value.

/** A string checked and converted by `fn`, which returns undefined when the string is invalid. */
function checked<I, O>(base: z.ZodType<I>, what: string, fn: (v: I) => O | undefined) {
  return base.transform((v, ctx) => {
    const out = fn(v);
    if (out === undefined) {
      ctx.addIssue({ code: 'custom', message: what, input: v });
      return z.NEVER;
    }
    return out;
  });
}

const nonEmpty = (what: string) => z.string({ error: what }).regex(/\S/, { error: what });
const int = (min: number, max: number, what: string) =>
  z.number({ error: what }).int({ error: what }).min(min, { error: what }).max(max, { error: what });

/** One of `values`, case-insensitive when `norm` is given; normalized to the listed spelling. */
function choice<const T extends string>(values: readonly T[], norm: (s: string) => string = (s) => s) {
  const what = `one of ${values.join(', ')}`;
  return checked(z.string({ error: what }), what, (s) => values.find((v) => v === norm(s.trim())));
}
const [upper, lower] = [(s: string) => s.toUpperCase(), (s: string) => s.toLowerCase()];

const column = nonEmpty('a column name');
const topicName = checked(nonEmpty('a topic name'), 'a topic name (no spaces)', (s) => (/\s/.test(s) ? undefined : s));
const columnList = z.array(column, { error: 'a list of column names' }).superRefine((cols, ctx) => {
  cols.forEach((c, i) => {
    if (cols.indexOf(c) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `duplicate column ${JSON.stringify(c)}`, params: { full: true } });
  });
});
const scalar = z.union([z.string(), z.number(), z.boolean()], { error: 'a string, number or boolean' });
const stringMap = z.record(z.string(), scalar, { error: 'a map of names to values' });

const BROKERS = 'a comma-separated list (or a YAML list) of host:port brokers';
const brokerList = checked(z.union([z.string(), z.array(z.string())], { error: BROKERS }), BROKERS, (v) => {
  const parts = (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim());
  return parts.length === 0 || parts.some((p) => p === '' || /\s/.test(p)) ? undefined : parts;
});

const TZ = 'an IANA time zone such as UTC or Europe/Paris';
const timezone = checked(z.string({ error: TZ }), TZ, (tz) => {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
});

const BYTES = 'a byte size such as 268435456, "256MiB", "1GiB" or "512MB"';
const UNITS: Readonly<Record<string, number>> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: MIB, gib: GIB, tib: 2 ** 40 };
const byteSize = checked(z.union([z.number(), z.string()], { error: BYTES }), BYTES, (v) => {
  let bytes = typeof v === 'number' ? v : Number.NaN;
  const m = typeof v === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)?\s*$/i.exec(v) : null;
  if (m) {
    const unit = UNITS[(m[2] ?? 'b').toLowerCase()];
    bytes = unit === undefined ? Number.NaN : Math.floor(Number(m[1]) * unit);
  }
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
});

const SCHEDULE = 'a daily time "HH:MM" (00:00 to 23:59) or a 5-field cron expression';
const schedule = z.string({ error: SCHEDULE }).transform((s, ctx) => {
  const t = s.trim();
  const fields = t.split(/\s+/);
  let out: string | undefined;
  if (/^\d{1,2}:\d{2}$/.test(t)) out = /^([01]\d|2[0-3]):[0-5]\d$/.test(t) ? t : undefined;
  else if (fields.length === 5 && fields.every((f) => /^[\w*/,?#-]+$/.test(f))) out = fields.join(' ');
  // Past the shape, croner knows whether the fields make sense (minute 61 and Feb 31 do not).
  const why = out === undefined ? undefined : scheduleProblem(out);
  if (out === undefined || why !== undefined) {
    ctx.addIssue({ code: 'custom', message: why === undefined ? SCHEDULE : `${SCHEDULE} (${why})`, input: s });
    return z.NEVER;
  }
  return out;
});

const WRITE_MODES = ['INSERT', 'MERGE'] as const satisfies readonly WriteMode[];
const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const satisfies readonly LogLevel[];
const LOG_FORMATS = ['json', 'pretty'] as const satisfies readonly LogFormat[];
const START_FROM = ['earliest', 'latest'] as const satisfies readonly StartFrom[];
const POSITION_LOST = ['fail', 'earliest', 'latest'] as const satisfies readonly PositionLostPolicy[];
const UNKNOWN_FIELDS = ['ignore', 'reject'] as const satisfies readonly UnknownFieldsPolicy[];
const SCHEMA_EVOLUTION = ['none', 'add_columns'] as const satisfies readonly SchemaEvolution[];
const EPOCH_UNITS = ['s', 'ms', 'us'] as const satisfies readonly EpochUnit[];
const STRATEGIES = ['last', 'first', 'merge'] as const satisfies readonly DedupStrategy[];
const NULL_KEYS = ['keep', 'dead_letter'] as const satisfies readonly NullKeysPolicy[];
const SASL = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const satisfies readonly SaslMechanism[];
const PROTOCOLS = ['SASL_SSL', 'SASL_PLAINTEXT', 'SSL'] as const satisfies readonly SecurityProtocol[];
const PROVIDERS = ['local', 'aws', 'gcp', 'azure'] as const satisfies readonly DeltaCredentialsProvider[];
const SOURCE_KINDS = ['column', 'field', 'kafka_timestamp', 'change_time'] as const satisfies readonly PartitionSource['kind'][];
const DL_KINDS = ['delta', 'kafka'] as const satisfies readonly DeadLetterConfig['kind'][];

// ---------------------------------------------------------------------------------------------
// Sections. Shapes are kept apart so that unknown keys can be matched against the known ones.

const section = (what: string) => ({ error: `a map of ${what} settings` });

/** `kafka.tls`: files are checked (and made absolute) by tls.ts before the schema runs. */
const tlsShape = {
  ca_file: nonEmpty('a file path (PEM CA certificates) or a directory').optional(),
  cert_file: nonEmpty('a file path (PEM client certificate)').optional(),
  key_file: nonEmpty('a file path (PEM private key)').optional(),
};
/** `kafka.tls` keys and the librdkafka property each one sets. */
const TLS_PROPERTIES = { ca_file: 'ssl.ca.location', cert_file: 'ssl.certificate.location', key_file: 'ssl.key.location' } as const;
const kafkaShape = {
  broker: brokerList.optional(),
  brokers: brokerList.optional(),
  topic: topicName.optional(),
  topics: z.array(topicName, { error: 'a list of topic names' }).optional(),
  topic_pattern: nonEmpty('a regular expression over topic names').optional(),
  format: choice(MESSAGE_FORMATS, lower).default('json'),
  group_id: nonEmpty('a consumer group id'),
  max_poll_records: int(1, 100_000, 'an integer from 1 to 100000').default(5000),
  start_from: choice(START_FROM, lower).default('earliest'),
  on_position_lost: choice(POSITION_LOST, lower).default('fail'),
  consume_timeout_ms: int(1, 60_000, 'an integer number of milliseconds from 1 to 60000').default(100),
  properties: stringMap.default({}),
  tls: z.strictObject(tlsShape, section('Kafka TLS')).optional(),
};
const partitionSourceShape = {
  kind: choice(SOURCE_KINDS, lower).default('column'),
  field: nonEmpty('a field name').optional(),
  timezone: timezone.default('UTC'),
};
const kafkaMetadataShape = {
  topic: column.optional(),
  partition: column.optional(),
  offset: column.optional(),
  timestamp: column.optional(),
  key: column.optional(),
  headers: column.optional(),
};
const seconds = (what: string, min: number, max: number) =>
  z.number({ error: `a number of seconds (${what})` }).min(min, { error: `at least ${min} seconds` })
    .max(max, { error: `at most ${max} seconds` });
const storageRetryShape = {
  budget: seconds('how long one operation may keep failing', 0, 86_400).default(DEFAULT_STORAGE_RETRY.budgetSeconds),
  initial_backoff: seconds('the first wait', 0.01, 3_600).default(DEFAULT_STORAGE_RETRY.initialBackoffSeconds),
  max_backoff: seconds('the longest wait', 0.01, 3_600).default(DEFAULT_STORAGE_RETRY.maxBackoffSeconds),
};
const deltaShape = {
  table_path: nonEmpty('a table path or URI'),
  partition_column: column,
  mode: choice(WRITE_MODES, upper).default('INSERT'),
  partition_source: z.strictObject(partitionSourceShape, section('partition source')).prefault({}),
  unknown_fields: choice(UNKNOWN_FIELDS, lower).default('ignore'),
  schema_evolution: choice(SCHEMA_EVOLUTION, lower).default('none'),
  kafka_metadata: z.strictObject(kafkaMetadataShape, { error: 'a map of Kafka metadata fields to column names' }).default({}),
  epoch_unit: choice(EPOCH_UNITS, lower).default('ms'),
  day_window_years: int(1, 1000, 'an integer number of years from 1 to 1000').default(10),
  merge_keys: columnList.optional(),
  delete_when: nonEmpty('a SQL predicate').optional(),
  storage_options: stringMap.default({}),
  storage_retry: z.strictObject(storageRetryShape, section('storage retry')).prefault({}),
  create_if_missing: z.boolean({ error: 'true or false' }).default(false),
  schema: z.strictObject(tableSchemaShape, section('table schema')).optional(),
};
const deadLetterShape = {
  kind: choice(DL_KINDS, lower).default('delta'),
  table_path: nonEmpty('a table path or URI').optional(),
  topic: topicName.optional(),
};
const loggingShape = {
  level: choice(LOG_LEVELS, lower).default('info'),
  format: choice(LOG_FORMATS, lower).default('json'),
  file: nonEmpty('a file path').optional(),
};
const monitoringShape = {
  enabled: z.boolean({ error: 'true or false' }).default(true),
  host: nonEmpty('a host name or IP address').default('127.0.0.1'),
  port: int(0, 65535, 'a port number from 0 to 65535').default(9090),
  endpoint: z.string({ error: 'a URL path starting with "/"' }).startsWith('/', { error: 'a URL path starting with "/"' }).default('/metrics'),
};
const concurrencyShape = {
  num_threads: int(0, 1024, 'an integer number of threads from 0 (one per CPU) to 1024').default(0),
  retry_attempts: int(0, 100, 'an integer from 0 to 100').default(3),
};
const batchShape = {
  // No defaults here: they depend on batch.schedule (see toConfig).
  batch_interval: z.number({ error: 'a number of seconds' }).positive({ error: 'a number of seconds greater than 0' })
    .max(1e9, { error: 'a number of seconds' }).optional(),
  batch_size: int(1, Number.MAX_SAFE_INTEGER, 'an integer number of records, at least 1').optional(),
  schedule: schedule.optional(),
  timezone: timezone.default('UTC'),
};
const dedupShape = {
  keys: columnList.default([]),
  order_by: column.optional(),
  strategy: choice(STRATEGIES, lower).default('last'),
  null_keys: choice(NULL_KEYS, lower).default('keep'),
};
const bufferShape = {
  max_memory: byteSize.default(256 * MIB),
  max_disk: byteSize.default(10 * GIB),
  staging_dir: nonEmpty('a directory path').default('.kafka-delta-staging'),
};
const shutdownShape = {
  grace_period: z.number({ error: 'a number of seconds' }).positive({ error: 'a number of seconds greater than 0' })
    .max(86_400, { error: 'a number of seconds up to 86400' }).default(30),
};
const maintenanceShape = {
  optimize: z.boolean({ error: 'true or false' }).default(true),
  optimize_after: seconds('the wait after a day ends before it is compacted', 0, 31 * 86_400).default(3_600),
  optimize_open_day_files: int(0, 1_000_000, 'an integer number of files from 0 (off) to 1000000').default(0),
  target_file_size: byteSize.default(128 * MIB),
  interval: seconds('the time between maintenance checks', 1, 86_400).default(300),
  vacuum: z.boolean({ error: 'true or false' }).default(false),
};
const transformShape = {
  filter: nonEmpty('a SQL predicate').optional(),
  columns: z.record(column, nonEmpty('a SQL expression'), { error: 'a map of column names to SQL expressions' }).default({}),
};
const credentialsShape = {
  kafka_username: z.string({ error: 'a string' }).min(1, { error: 'a non-empty string' }).optional(),
  kafka_password: z.string({ error: 'a string' }).min(1, { error: 'a non-empty string' }).optional(),
  kafka_username_file: nonEmpty('a file path').optional(),
  kafka_password_file: nonEmpty('a file path').optional(),
  metrics_token: z.string({ error: 'a string' }).min(1, { error: 'a non-empty string' }).optional(),
  metrics_token_file: nonEmpty('a file path').optional(),
  sasl_mechanism: choice(SASL, upper).default('PLAIN'),
  security_protocol: choice(PROTOCOLS, upper).default('SASL_SSL'),
  delta_credentials: z.union([choice(PROVIDERS, lower), stringMap], {
    error: `a provider name (${PROVIDERS.join(', ')}) or a map of storage options`,
  }).optional(),
};
const rootShape = {
  kafka: z.strictObject(kafkaShape, section('Kafka')),
  delta: z.strictObject(deltaShape, section('Delta table')),
  dead_letter: z.strictObject(deadLetterShape, section('dead letter')).optional(),
  logging: z.strictObject(loggingShape, section('logging')),
  monitoring: z.strictObject(monitoringShape, section('monitoring')),
  concurrency: z.strictObject(concurrencyShape, section('concurrency')),
  batch: z.strictObject(batchShape, section('batch')),
  dedup: z.strictObject(dedupShape, section('dedup')),
  buffer: z.strictObject(bufferShape, section('buffer')),
  shutdown: z.strictObject(shutdownShape, section('shutdown')),
  maintenance: z.strictObject(maintenanceShape, section('maintenance')),
  transform: z.strictObject(transformShape, section('transform')),
  credentials: z.strictObject(credentialsShape, section('credentials')),
};
const rootSchema = z.strictObject(rootShape, { error: 'a map of settings' });
/** A document that passed the schema. */
export type ParsedDocument = z.output<typeof rootSchema>;
/** Top-level keys, in the order problems are reported. */
export const ROOT_KEYS: readonly string[] = Object.keys(rootShape);

/** Runs the schema; absent sections (but dead_letter) count as empty maps so their keys get checked. */
export function checkSchema(doc: Record<string, unknown>) {
  const filled = { ...doc };
  for (const k of ROOT_KEYS) if (k !== 'dead_letter' && filled[k] === undefined) filled[k] = {};
  return rootSchema.safeParse(filled);
}

/** Known keys of each (non free-form) map, by dotted path. */
export const KNOWN_KEYS: ReadonlyMap<string, readonly string[]> = new Map(
  Object.entries({
    '': rootShape, kafka: kafkaShape, 'kafka.tls': tlsShape, delta: deltaShape, 'delta.partition_source': partitionSourceShape,
    'delta.storage_retry': storageRetryShape, 'delta.schema': tableSchemaShape,
    'delta.kafka_metadata': kafkaMetadataShape, dead_letter: deadLetterShape, logging: loggingShape,
    monitoring: monitoringShape, concurrency: concurrencyShape, batch: batchShape, dedup: dedupShape,
    buffer: bufferShape, shutdown: shutdownShape, maintenance: maintenanceShape, transform: transformShape,
    credentials: credentialsShape,
  }).map(([path, shape]) => [path, Object.keys(shape)]),
);

// ---------------------------------------------------------------------------------------------
// Cross-key rules, checked on the raw input so that they are reported even when other keys fail.

const INVALID = Symbol('invalid');
/** The value at `path` parsed with `schema`: undefined when absent, INVALID when it does not parse. */
function leaf<T>(input: unknown, path: string, schema: z.ZodType<T>): T | undefined | typeof INVALID {
  const raw = valueAt(input, path.split('.'));
  if (raw === undefined) return undefined;
  const res = schema.safeParse(raw);
  return res.success ? res.data : INVALID;
}

export function crossProblems(input: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const add = (key: string, message: string) => out.push({ key, message });
  const raw = (path: string) => valueAt(input, path.split('.'));

  // kafka
  if (raw('kafka.broker') === undefined && raw('kafka.brokers') === undefined) add('kafka.broker', `is required (expected ${BROKERS})`);
  if (raw('kafka.broker') !== undefined && raw('kafka.brokers') !== undefined) add('kafka.brokers', 'set either kafka.broker or kafka.brokers, not both');
  const topic = leaf(input, 'kafka.topic', topicName);
  const topics = leaf(input, 'kafka.topics', z.array(topicName));
  const pattern = leaf(input, 'kafka.topic_pattern', kafkaShape.topic_pattern);
  if (topic === undefined && pattern === undefined && (topics === undefined || (topics !== INVALID && topics.length === 0))) {
    add('kafka.topic', 'is required (set kafka.topic to a topic name, kafka.topics to a list of at least one topic, or kafka.topic_pattern)');
  }
  const patternProblem = typeof pattern === 'string' ? topicPatternProblem(pattern) : undefined;
  if (patternProblem) add('kafka.topic_pattern', patternProblem);
  const props = raw('kafka.properties');
  for (const [prop, instead] of Object.entries(RESERVED_PROPERTIES)) {
    if (isPlainObject(props) && prop in props) add(`kafka.properties.${prop}`, `is set by kafka-delta-rust and cannot be overridden: ${instead}`);
  }

  // delta
  const kind = leaf(input, 'delta.partition_source.kind', partitionSourceShape.kind) ?? 'column';
  const field = raw('delta.partition_source.field');
  if (kind === 'field' && field === undefined) add('delta.partition_source.field', 'is required when delta.partition_source.kind is field (name of the event time field)');
  if (kind !== 'field' && kind !== INVALID && field !== undefined) add('delta.partition_source.field', `is only allowed when delta.partition_source.kind is field, not ${kind}`);
  const meta = raw('delta.kafka_metadata');
  if (isPlainObject(meta)) {
    const seen = new Map<unknown, string>();
    for (const [k, col] of Object.entries(meta)) {
      const first = seen.get(col);
      if (typeof col === 'string' && first !== undefined) add(`delta.kafka_metadata.${k}`, `column ${JSON.stringify(col)} is already used by delta.kafka_metadata.${first}`);
      else seen.set(col, k);
    }
  }
  if (leaf(input, 'delta.schema_evolution', deltaShape.schema_evolution) === 'add_columns' && leaf(input, 'delta.unknown_fields', deltaShape.unknown_fields) === 'reject') {
    add('delta.schema_evolution', 'add_columns makes unknown fields columns; it cannot be combined with delta.unknown_fields: reject');
  }
  if (raw('delta.create_if_missing') === true && raw('delta.schema') === undefined) {
    add('delta.schema', 'is required when delta.create_if_missing is true (the columns of the table to create)');
  }
  const declared = leaf(input, 'delta.schema', deltaShape.schema);
  const partitionColumn = raw('delta.partition_column');
  if (declared !== undefined && declared !== INVALID && typeof partitionColumn === 'string' && !declared.columns.some((c) => c.name === partitionColumn)) {
    add('delta.schema.columns', `must include the partition column ${JSON.stringify(partitionColumn)} (delta.partition_column)`);
  }
  const mode = leaf(input, 'delta.mode', deltaShape.mode) ?? 'INSERT';
  const mergeKeys = leaf(input, 'delta.merge_keys', columnList);
  const dedupKeys = leaf(input, 'dedup.keys', columnList);
  if (mode === 'MERGE' && mergeKeys !== INVALID && dedupKeys !== INVALID && (mergeKeys ?? dedupKeys ?? []).length === 0) {
    add('delta.merge_keys', 'is required in MERGE mode (list the columns that identify a row, or set dedup.keys)');
  }
  if (mode === 'INSERT' && raw('delta.delete_when') !== undefined) add('delta.delete_when', 'is only allowed when delta.mode is MERGE');
  if (mode === 'MERGE' && Array.isArray(mergeKeys) && Array.isArray(dedupKeys) && dedupKeys.length > 0) {
    const same = mergeKeys.length === dedupKeys.length && mergeKeys.every((k) => dedupKeys.includes(k));
    if (!same) {
      add('dedup.keys', `must equal delta.merge_keys in MERGE mode (rows are consolidated on the merge keys [${mergeKeys.join(', ')}]); remove one of them`);
    }
  }

  formatProblems(raw, add);

  // dead letters
  const dlKind = leaf(input, 'dead_letter.kind', deadLetterShape.kind) ?? 'delta';
  if (dlKind === 'kafka') {
    const dlTopic = leaf(input, 'dead_letter.topic', topicName);
    if (dlTopic === undefined) add('dead_letter.topic', 'is required when dead_letter.kind is kafka');
    const consumed = [topic, ...(Array.isArray(topics) ? topics : [])];
    if (typeof dlTopic === 'string' && consumed.includes(dlTopic)) add('dead_letter.topic', 'must not be one of the consumed topics');
    if (typeof dlTopic === 'string' && typeof pattern === 'string' && !patternProblem && topicPatternRegExp(pattern).test(dlTopic)) {
      add('dead_letter.topic', 'must not match kafka.topic_pattern (its dead letters would be consumed again)');
    }
    if (raw('dead_letter.table_path') !== undefined) add('dead_letter.table_path', 'is only allowed when dead_letter.kind is delta');
  } else if (dlKind === 'delta') {
    if (raw('dead_letter.topic') !== undefined) add('dead_letter.topic', 'is only allowed when dead_letter.kind is kafka');
    const dlPath = raw('dead_letter.table_path');
    if (dlPath !== undefined && dlPath === raw('delta.table_path')) add('dead_letter.table_path', 'must differ from delta.table_path');
  }

  // credentials
  const user = raw('credentials.kafka_username') ?? raw('credentials.kafka_username_file');
  const pass = raw('credentials.kafka_password') ?? raw('credentials.kafka_password_file');
  if (user !== undefined && pass === undefined) add('credentials.kafka_password', 'is required when credentials.kafka_username is set');
  if (pass !== undefined && user === undefined) add('credentials.kafka_username', 'is required when credentials.kafka_password is set');
  const protocol = leaf(input, 'credentials.security_protocol', credentialsShape.security_protocol);
  if (protocol === 'SSL' && (user !== undefined || pass !== undefined)) {
    add('credentials.security_protocol', 'is SSL (TLS without SASL), which does not use the Kafka username and password: set SASL_SSL, or remove the credentials');
  }
  const tls = raw('kafka.tls');
  if (isPlainObject(tls)) {
    const set = Object.keys(TLS_PROPERTIES).filter((k) => tls[k] !== undefined);
    if (protocol === 'SASL_PLAINTEXT' && set.length > 0) {
      add(`kafka.tls.${set[0] ?? ''}`, 'needs TLS, but credentials.security_protocol is SASL_PLAINTEXT: set SASL_SSL');
    }
    if ((tls['cert_file'] === undefined) !== (tls['key_file'] === undefined)) {
      const [missing, other] = tls['cert_file'] === undefined ? ['cert_file', 'key_file'] : ['key_file', 'cert_file'];
      add(`kafka.tls.${missing}`, `is required when kafka.tls.${other} is set (a client certificate goes with its key)`);
    }
    for (const [k, prop] of Object.entries(TLS_PROPERTIES)) {
      if (tls[k] !== undefined && isPlainObject(props) && prop in props) add(`kafka.tls.${k}`, `is also set as kafka.properties.${prop}; set it in one place only`);
    }
  }
  const creds = raw('credentials.delta_credentials');
  const storage = raw('delta.storage_options');
  if (isPlainObject(creds) && isPlainObject(storage)) {
    for (const k of Object.keys(creds)) {
      if (k in storage) add(`credentials.delta_credentials.${k}`, 'is also set in delta.storage_options; set it in one place only');
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Mapping onto Config.

const stringify = (map: Record<string, string | number | boolean>): Record<string, string> =>
  Object.fromEntries(Object.entries(map).map(([k, v]) => [k, String(v)]));

/** Removes properties whose value is undefined (optional keys are absent, not undefined). */
function compact<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}

/** `<table_path>__dead_letters`, appended to the path part of URIs too. */
export function defaultDeadLetterPath(tablePath: string): string {
  const q = tablePath.search(/[?#]/);
  const [path, rest] = q < 0 ? [tablePath, ''] : [tablePath.slice(0, q), tablePath.slice(q)];
  return `${path.replace(/\/+$/, '')}__dead_letters${rest}`;
}

export function toConfig(d: ParsedDocument): Config {
  const { kafka: k, delta: dl, credentials: c } = d;
  const ps = dl.partition_source;
  const partitionSource: PartitionSource =
    ps.kind === 'field' ? { kind: 'field', field: ps.field ?? '', timezone: ps.timezone } : { kind: ps.kind, timezone: ps.timezone };
  const deadLetter: DeadLetterConfig =
    d.dead_letter?.kind === 'kafka'
      ? { kind: 'kafka', topic: d.dead_letter.topic ?? '' }
      : { kind: 'delta', tablePath: d.dead_letter?.table_path ?? defaultDeadLetterPath(dl.table_path) };
  const credentialMap = typeof c.delta_credentials === 'object' ? stringify(c.delta_credentials) : {};
  return {
    kafka: {
      brokers: [...new Set([...(k.broker ?? []), ...(k.brokers ?? [])])].join(','),
      topics: [...new Set([...(k.topic === undefined ? [] : [k.topic]), ...(k.topics ?? [])])],
      ...(k.topic_pattern === undefined ? {} : { topicPattern: anchoredTopicPattern(k.topic_pattern) }),
      format: k.format,
      groupId: k.group_id,
      maxPollRecords: k.max_poll_records,
      startFrom: k.start_from,
      onPositionLost: k.on_position_lost,
      consumeTimeoutMs: k.consume_timeout_ms,
      properties: stringify(k.properties),
      ...(k.tls === undefined ? {} : { tls: compact({ caFile: k.tls.ca_file, certFile: k.tls.cert_file, keyFile: k.tls.key_file }) }),
    },
    delta: compact({
      tablePath: dl.table_path,
      partitionColumn: dl.partition_column,
      mode: dl.mode,
      partitionSource,
      unknownFields: dl.unknown_fields,
      schemaEvolution: dl.schema_evolution,
      kafkaMetadata: compact({ ...dl.kafka_metadata }),
      epochUnit: dl.epoch_unit,
      dayWindowYears: dl.day_window_years,
      mergeKeys: dl.merge_keys ?? d.dedup.keys,
      deleteWhen: dl.delete_when,
      storageOptions: { ...stringify(dl.storage_options), ...credentialMap },
      storageRetry: {
        budgetSeconds: dl.storage_retry.budget,
        initialBackoffSeconds: dl.storage_retry.initial_backoff,
        maxBackoffSeconds: Math.max(dl.storage_retry.max_backoff, dl.storage_retry.initial_backoff),
      },
      createIfMissing: dl.create_if_missing,
      schema: dl.schema === undefined ? undefined : toTableSchema(dl.schema),
    }),
    deadLetter,
    logging: compact({ level: d.logging.level, format: d.logging.format, file: d.logging.file }),
    monitoring: { ...d.monitoring },
    concurrency: { numThreads: d.concurrency.num_threads, retryAttempts: d.concurrency.retry_attempts },
    batch: compact({
      // With a schedule, a default interval (or size) would flush long before a daily time.
      batchIntervalSeconds: d.batch.batch_interval ?? (d.batch.schedule === undefined ? DEFAULT_BATCH_INTERVAL : undefined),
      batchSize: d.batch.batch_size ?? (d.batch.schedule === undefined ? DEFAULT_BATCH_SIZE : undefined),
      schedule: d.batch.schedule,
      timezone: d.batch.timezone,
    }),
    dedup: compact({ keys: d.dedup.keys, orderBy: d.dedup.order_by, strategy: d.dedup.strategy, nullKeys: d.dedup.null_keys }),
    buffer: { maxMemoryBytes: d.buffer.max_memory, maxDiskBytes: d.buffer.max_disk, stagingDir: d.buffer.staging_dir },
    shutdown: { gracePeriodSeconds: d.shutdown.grace_period },
    maintenance: {
      optimize: d.maintenance.optimize,
      optimizeAfterSeconds: d.maintenance.optimize_after,
      optimizeOpenDayFiles: d.maintenance.optimize_open_day_files,
      targetFileSizeBytes: d.maintenance.target_file_size,
      intervalSeconds: d.maintenance.interval,
      vacuum: d.maintenance.vacuum,
    },
    transform: compact({ filter: d.transform.filter, columns: { ...d.transform.columns } }),
    credentials: compact({
      kafkaUsername: c.kafka_username,
      kafkaPassword: c.kafka_password,
      metricsToken: c.metrics_token,
      saslMechanism: c.sasl_mechanism,
      securityProtocol: c.security_protocol,
      deltaCredentials: typeof c.delta_credentials === 'string' ? c.delta_credentials : undefined,
    }),
  };
}

