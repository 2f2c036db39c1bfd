/** Messages packed for a stage without a broker, as the consumer packs them, and the stage they go to. */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { DeltaTarget, createTable, type ColumnSpec, type MessageBatch, type Stage, type StageOptions } from '../dist/index.js';

/** The columns the decode benches start from (a `date` partition column `date_col`). */
export const BASE_COLUMNS: ColumnSpec[] = [
  { name: 'id', dataType: 'string', nullable: false },
  { name: 'seq', dataType: 'long', nullable: true },
  { name: 'amount', dataType: 'double', nullable: true },
  { name: 'note', dataType: 'string', nullable: true },
];

/**
 * A stage of topic `bench` (partition 0 assigned from offset 0) on a fresh table of `columns`
 * and `date_col` under `dir`, with days from `date_col`.
 */
export async function openBenchStage(dir: string, columns: ColumnSpec[], options: Partial<StageOptions> = {}): Promise<Stage> {
  const table = join(mkdtempSync(join(dir, 'run-')), 'table');
  await createTable(table, [...columns, { name: 'date_col', dataType: 'date', nullable: false }], ['date_col']);
  const target = await DeltaTarget.open(table);
  const stage = target.createStage({ partitionColumn: 'date_col', daySource: 'column', timezone: 'UTC', rejectUnknownFields: false, topics: ['bench'], ...options });
  stage.assigned([{ topicIndex: 0, partition: 0, nextOffset: 0 }]);
  return stage;
}

/** Packs JSON payloads of partition 0 from `firstOffset` on, as `ts/kafka/packer.ts` packs them. */
export function packPartition0(payloads: readonly string[], firstOffset: number): MessageBatch {
  const bytes = payloads.map((p) => Buffer.from(p));
  let at = 0;
  return {
    payloads: Buffer.concat(bytes),
    payloadEnds: Uint32Array.from(bytes, (b) => (at += b.length)),
    topicIndexes: new Uint16Array(bytes.length),
    partitions: new Int32Array(bytes.length),
    offsets: Float64Array.from(bytes, (_, i) => firstOffset + i),
    timestamps: new Float64Array(bytes.length).fill(Date.now()),
  };
}
