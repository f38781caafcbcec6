// Proves docs/plan.schema.json is the JSON Schema the current zod schema generates, byte for byte
// (regenerate with `npm run -s vmalock -- plan schema > docs/plan.schema.json`), and that it says
// what editors need: the policies, the gate kinds, strict objects, and fields with defaults optional.
import { readFileSync } from 'node:fs';
import { policyNames } from '@vmalock/policies';
import { describe, expect, it } from 'vitest';
import { planJsonSchema, planJsonSchemaText } from './jsonSchema.js';

const committed = new URL('../../../../docs/plan.schema.json', import.meta.url);

interface Node {
  type?: string;
  properties?: Record<string, Node>;
  items?: Node;
  required?: string[];
  additionalProperties?: unknown;
  enum?: string[];
  oneOf?: Node[];
  const?: string;
}

describe('planJsonSchemaText', () => {
  it('should equal the committed docs/plan.schema.json', () => {
    expect(readFileSync(committed, 'utf8'), 'docs/plan.schema.json is stale: npm run -s vmalock -- plan schema > docs/plan.schema.json').toBe(
      planJsonSchemaText(),
    );
  });

  it('should be the JSON of planJsonSchema', () => {
    expect(JSON.parse(planJsonSchemaText())).toEqual(planJsonSchema());
  });
});

describe('planJsonSchema', () => {
  const schema = planJsonSchema() as Node;
  const phase = schema.properties!.phases!.items!;

  it('should list the policies and the gate kinds, and refuse unknown fields', () => {
    expect(phase.properties!.policy!.enum).toEqual(policyNames());
    expect(phase.properties!.gates!.items!.oneOf!.map((g) => g.properties!.kind!.const)).toEqual(['no-findings', 'throughput']);
    expect(schema.additionalProperties).toBe(false);
    expect(phase.additionalProperties).toBe(false);
  });

  it('should make the fields with defaults optional', () => {
    expect(schema.required).toEqual(['name', 'processes', 'phases']);
    expect(phase.required).toEqual(['name', 'policy']);
  });
});
