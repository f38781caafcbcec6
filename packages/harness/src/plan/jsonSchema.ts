// The JSON Schema of plan files, generated from the zod schema so editors check and complete what
// the loader accepts. `vmalock plan schema` prints it; docs/plan.schema.json is its committed copy
// (jsonSchema.test.ts fails when the two differ: regenerate with
// `npm run -s vmalock -- plan schema > docs/plan.schema.json`). The cross-field checks (names that
// must exist, unique names) are the loader's alone: JSON Schema cannot say them.
import * as z from 'zod';
import { planSchema } from './schema.js';

/** The plan's JSON Schema (draft 2020-12) describing the input: fields with defaults are optional. */
export function planJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(planSchema, { io: 'input', target: 'draft-2020-12' });
}

/** The JSON Schema as the text of docs/plan.schema.json: formatted as prettier formats JSON. */
export function planJsonSchemaText(): string {
  return `${formatJson(planJsonSchema(), 0, 0)}\n`;
}

/** Prettier's JSON layout at printWidth 160: objects open one key a line; lists of scalars on one line when it fits. */
const PRINT_WIDTH = 160;

/** Format `value` at `indent` levels, its first line already `used` characters wide. */
function formatJson(value: unknown, indent: number, used: number): string {
  const pad = '  '.repeat(indent + 1);
  const close = '  '.repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.every((v) => v === null || typeof v !== 'object')) {
      const flat = `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
      if (used + flat.length + 1 <= PRINT_WIDTH) return flat;
    }
    return `[\n${value.map((v) => `${pad}${formatJson(v, indent + 1, pad.length)}`).join(',\n')}\n${close}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) return '{}';
    return `{\n${entries
      .map(([k, v]) => {
        const head = `${pad}${JSON.stringify(k)}: `;
        return `${head}${formatJson(v, indent + 1, head.length)}`;
      })
      .join(',\n')}\n${close}}`;
  }
  return JSON.stringify(value);
}
