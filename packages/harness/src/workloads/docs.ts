// The reference part of docs/workloads.md, generated from the workloads' zod schemas (a test
// keeps the file in step with them).
import { z } from 'zod';
import { WORKLOADS } from './registry.js';

interface JsonField {
  readonly type?: string;
  readonly enum?: readonly string[];
  readonly minimum?: number;
  readonly maximum?: number;
  readonly default?: unknown;
  readonly description?: string;
  readonly items?: JsonField;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function typeText(f: JsonField): string {
  if (f.enum !== undefined) return f.enum.map((v) => `\`${v}\``).join(' \\| ');
  if (f.type === 'array') return `list of ${f.items?.type ?? 'values'}`;
  if (f.type === 'integer' || f.type === 'number') {
    const lo = f.minimum !== undefined && f.minimum > -MAX_SAFE ? String(f.minimum) : '';
    const hi = f.maximum !== undefined && f.maximum < MAX_SAFE ? String(f.maximum) : '';
    const range = lo !== '' || hi !== '' ? ` ${lo}..${hi}` : '';
    return `${f.type}${range}`;
  }
  return f.type ?? 'any';
}

function defaultText(f: JsonField, required: boolean): string {
  if (f.default !== undefined) return `\`${JSON.stringify(f.default)}\``;
  return required ? '(required)' : '(none)';
}

/** The markdown of every workload's reference: summary, op, threads and a table of its params. */
export function workloadDocsMarkdown(): string {
  const out: string[] = [];
  for (const w of WORKLOADS) {
    const schema = z.toJSONSchema(w.params, { io: 'input' }) as { properties?: Record<string, JsonField>; required?: readonly string[] };
    out.push(`### \`${w.name}\``, '');
    out.push(`${w.summary}.`, '');
    out.push(`- **op**: ${w.op}.`);
    out.push(
      `- **threads**: ${w.threadsFrom === 'context' ? "the process's thread count (helper threads come on top)" : 'one per traced tid (the thread count is ignored)'}.`,
    );
    out.push('');
    out.push('| param | type | default | meaning |', '|---|---|---|---|');
    for (const [name, f] of Object.entries(schema.properties ?? {})) {
      const required = schema.required?.includes(name) ?? false;
      out.push(`| \`${name}\` | ${typeText(f)} | ${defaultText(f, required)} | ${(f.description ?? '').replace(/\|/g, '\\|')} |`);
    }
    out.push('');
  }
  return out.join('\n');
}
