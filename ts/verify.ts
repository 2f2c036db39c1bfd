/**
 * `kafka-delta-rust verify`: proves a table against Kafka. For each configured topic-partition,
 * the table's recorded position (its txn version) against the log start, the high watermark and
 * the group's committed offset; and, where the table has the Kafka partition and offset metadata
 * columns, a scan for offsets held twice and offsets missing that the dead-letter table does not
 * account for (`native/verify.rs`).
 */
import type { Config } from './config/index.js';
import { TableNotFoundError } from './errors.js';
import { readGroupPositions, type KafkaPartitionState } from './kafka/group-positions.js';
import { txnAppId } from './pipeline/identity.js';
import { DeltaTarget, type OffsetAudit, type OffsetColumns } from './table.js';

/** One topic-partition: Kafka's view and the table's. */
export interface PartitionVerdict extends KafkaPartitionState {
  /** The last offset the table recorded as written; absent when it never wrote this partition. */
  tableOffset?: number;
  /** Messages after the table's position up to the high watermark. */
  lag: number;
  /** Messages removed by retention before the table had them (its next offset is below the log start). */
  lost: number;
}

/** What `verify` found. */
export interface VerifyReport {
  table: string;
  version: number;
  partitions: PartitionVerdict[];
  /** The offset scan; absent when the table lacks the metadata columns (see {@link VerifyReport.notes}). */
  audit?: OffsetAudit;
  /** Findings that make the table wrong; empty for a clean table. */
  problems: string[];
  /** What was not checked, and why. */
  notes: string[];
}

function verdict(config: Config, state: KafkaPartitionState, recorded: Map<string, number>): PartitionVerdict {
  const tableOffset = recorded.get(txnAppId(config.kafka.groupId, state.topic, state.partition));
  const next = tableOffset === undefined ? undefined : tableOffset + 1;
  const lag = Math.max(0, state.highWatermark - (next ?? state.logStart));
  const lost = next === undefined ? 0 : Math.max(0, Math.min(state.logStart, state.highWatermark) - next);
  return { ...state, ...(tableOffset === undefined ? {} : { tableOffset }), lag, lost };
}

function positionProblems(p: PartitionVerdict): string[] {
  const at = `${p.topic}[${p.partition}]`;
  const out: string[] = [];
  const next = p.tableOffset === undefined ? undefined : p.tableOffset + 1;
  if (p.lost > 0 && next !== undefined) {
    out.push(`${at}: offsets ${next}..${next + p.lost - 1} were removed by retention before the table had them (${p.lost} messages lost)`);
  }
  if (p.committed !== undefined && (next === undefined || p.committed > next)) {
    out.push(`${at}: the group committed offset ${p.committed} in Kafka, past the table's next offset ${next ?? 'none'}: those messages are not in the table`);
  }
  return out;
}

/** The coordinate columns of the table, or why there are none. */
function offsetColumns(config: Config): OffsetColumns | string {
  const { topic, partition, offset } = config.delta.kafkaMetadata;
  if (partition === undefined || offset === undefined) return 'the offset scan needs delta.kafka_metadata.partition and .offset columns';
  if (topic !== undefined) return { topicColumn: topic, partitionColumn: partition, offsetColumn: offset };
  if (config.kafka.topics.length !== 1) return 'the offset scan of several topics needs a delta.kafka_metadata.topic column';
  return { topic: config.kafka.topics[0], partitionColumn: partition, offsetColumn: offset };
}

async function openDeadLetters(config: Config, notes: string[]): Promise<DeltaTarget | undefined> {
  if (config.deadLetter.kind !== 'delta') {
    notes.push(`dead letters go to Kafka topic ${config.deadLetter.topic}: a missing offset may be one of them`);
    return undefined;
  }
  try {
    return await DeltaTarget.openDeadLetters(config.deadLetter.tablePath, config.delta.storageOptions, config.delta.storageRetry);
  } catch (error) {
    if (error instanceof TableNotFoundError) return undefined;
    throw error;
  }
}

/** Offsets recorded as written past the last one either table holds. */
function trailingGaps(audit: OffsetAudit, partitions: readonly PartitionVerdict[]): OffsetAudit['gaps'] {
  const gaps: OffsetAudit['gaps'] = [];
  const byPartition = new Map(audit.partitions.map((h) => [`${h.topic}\u0000${h.partition}`, h]));
  for (const p of partitions) {
    const held = byPartition.get(`${p.topic}\u0000${p.partition}`);
    if (held !== undefined && p.tableOffset !== undefined && held.last < p.tableOffset) {
      gaps.push({ topic: p.topic, partition: p.partition, from: held.last + 1, to: p.tableOffset });
    }
  }
  return gaps;
}

function auditProblems(config: Config, audit: OffsetAudit, notes: string[]): string[] {
  const out: string[] = [];
  const list = <T>(items: T[], count: number, show: (item: T) => string) =>
    `${items.map(show).join(', ')}${count > items.length ? ` and ${count - items.length} more` : ''}`;
  if (audit.duplicateCount > 0) {
    out.push(`${audit.duplicateCount} offsets are held by more than one row: ${list(audit.duplicates, audit.duplicateCount, (d) => `${d.topic}[${d.partition}]@${d.offset} ×${d.rows}`)}`);
  }
  if (audit.gapCount > 0) {
    const gaps = list(audit.gaps, audit.gapCount, (g) => `${g.topic}[${g.partition}] ${g.from === g.to ? g.from : `${g.from}..${g.to}`}`);
    // MERGE and dedup keep one row per key: the offsets of the rows they fold away are gone by design.
    if (config.delta.mode === 'MERGE' || config.dedup.keys.length > 0) notes.push(`${audit.gapCount} ranges of offsets are not in the table, as MERGE or dedup fold rows: ${gaps}`);
    else out.push(`${audit.gapCount} ranges of offsets are in neither the table nor the dead letters: ${gaps}`);
  }
  return out;
}

/** Checks the configured table against Kafka; see {@link VerifyReport}. */
export async function verifyTable(config: Config): Promise<VerifyReport> {
  const target = await DeltaTarget.open(config.delta.tablePath, config.delta.storageOptions, config.delta.storageRetry);
  const states = await readGroupPositions(config);
  const appIds = states.map((s) => txnAppId(config.kafka.groupId, s.topic, s.partition));
  const recorded = await target.txnVersions(appIds);
  const partitions = states.map((s) => verdict(config, s, recorded));
  const problems = partitions.flatMap(positionProblems);
  const notes: string[] = [];
  const columns = offsetColumns(config);
  let audit: OffsetAudit | undefined;
  if (typeof columns === 'string') {
    notes.push(columns);
  } else {
    const deadLetters = await openDeadLetters(config, notes);
    const scanned = await target.auditOffsets(columns, deadLetters);
    const trailing = trailingGaps(scanned, partitions);
    audit = { ...scanned, gaps: [...scanned.gaps, ...trailing], gapCount: scanned.gapCount + trailing.length };
    problems.push(...auditProblems(config, audit, notes));
  }
  const info = target.info();
  return { table: info.uri, version: info.version, partitions, ...(audit === undefined ? {} : { audit }), problems, notes };
}

/** The report as text: one line per partition, then the scan, the problems and the notes. */
export function formatVerifyReport(r: VerifyReport): string {
  const lines = [`table ${r.table} at version ${r.version}:`];
  for (const p of r.partitions) {
    const table = p.tableOffset === undefined ? 'nothing written' : `written to offset ${p.tableOffset}`;
    const committed = p.committed === undefined ? 'none committed' : `committed ${p.committed}`;
    lines.push(`  ${p.topic}[${p.partition}]: ${table}; log ${p.logStart}..${p.highWatermark}; ${committed}; lag ${p.lag}${p.lost > 0 ? `; LOST ${p.lost}` : ''}`);
  }
  if (r.audit !== undefined) {
    const held = r.audit.partitions.reduce((n, p) => n + p.offsets, 0);
    lines.push(`offset scan: ${held} offsets in ${r.audit.partitions.length} partitions, ${r.audit.duplicateCount} held twice, ${r.audit.gapCount} missing ranges`);
  }
  for (const p of r.problems) lines.push(`PROBLEM: ${p}`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  lines.push(r.problems.length === 0 ? 'verify: ok' : `verify: ${r.problems.length} problems`);
  return `${lines.join('\n')}\n`;
}
