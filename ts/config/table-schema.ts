/**
 * `delta.schema`: the table `delta.create_if_missing` creates on first start. Its own file so the
 * declared table (columns, properties) has one home next to the config schema that embeds it.
 */
import { z } from 'zod';

/** Delta primitive type names (Delta protocol), and `decimal(p,s)`. */
const DELTA_TYPES = ['string', 'long', 'integer', 'short', 'byte', 'float', 'double', 'boolean', 'binary', 'date', 'timestamp', 'timestamp_ntz'];
const DECIMAL = /^decimal\(\s*([1-9]|[1-3][0-9])\s*,\s*([0-9]|[1-3][0-9])\s*\)$/;

const deltaType = z
  .string({ error: `a Delta type: ${DELTA_TYPES.join(', ')} or decimal(p,s)` })
  .transform((s) => s.trim().toLowerCase())
  .refine((s) => DELTA_TYPES.includes(s) || DECIMAL.test(s), { error: `a Delta type: ${DELTA_TYPES.join(', ')} or decimal(p,s)` });

const columnShape = {
  name: z.string({ error: 'a column name' }).regex(/\S/, { error: 'a column name' }),
  type: deltaType,
  nullable: z.boolean({ error: 'true or false' }).default(true),
};

/** The keys of `delta.schema`. */
export const tableSchemaShape = {
  columns: z
    .array(z.strictObject(columnShape, { error: 'a column: name, type and optionally nullable' }), { error: 'a list of columns (name, type, nullable)' })
    .min(1, { error: 'at least one column' })
    .superRefine((cols, ctx) => {
      const seen = new Set<string>();
      for (const [i, c] of cols.entries()) {
        if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: 'each column name once' });
        seen.add(c.name);
      }
    }),
  properties: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]), { error: 'a map of table property names to values' }).default({}),
};

/** The parsed `delta.schema` section. */
export type ParsedTableSchema = z.infer<z.ZodObject<typeof tableSchemaShape>>;

/** The table to create when it is missing (`delta.create_if_missing`). */
export interface TableSchema {
  /** Columns in table order; `dataType` is a Delta type name. */
  columns: Array<{ name: string; dataType: string; nullable: boolean }>;
  /** Table properties (`delta.*` and others), e.g. `delta.checkpointInterval`. */
  properties: Record<string, string>;
}

export function toTableSchema(parsed: ParsedTableSchema): TableSchema {
  return {
    columns: parsed.columns.map((c) => ({ name: c.name, dataType: c.type, nullable: c.nullable })),
    properties: Object.fromEntries(Object.entries(parsed.properties).map(([k, v]) => [k, String(v)])),
  };
}
