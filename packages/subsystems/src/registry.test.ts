// The static check over every built-in subsystem: each declared assumption against what a policy
// holds at its hook. Under global-rwsem nothing conflicts; under vma-range (no mmap_sem) every
// declared legacy assumption conflicts and no converted one does. Two legacy variants rely on
// mmap_sem without declaring it (aioring, binder — see their test fixtures): they have no rows,
// which is why the dynamic checks exist.
import { checkAssumption, readAssumptions } from '@vmalock/core';
import { createPolicy } from '@vmalock/policies';
import { describe, expect, it } from 'vitest';
import { SUBSYSTEMS, subsystemNames } from './registry.js';

function table(policyName: string): Array<[string, string, string, string, string]> {
  const policy = createPolicy(policyName);
  const rows: Array<[string, string, string, string, string]> = [];
  for (const entry of SUBSYSTEMS)
    for (const variant of ['legacy', 'converted'] as const)
      for (const a of readAssumptions(entry.create(variant)))
        rows.push([entry.name, variant, a.hook, `${a.lock} ${a.mode}`, checkAssumption(a, policy).verdict]);
  return rows;
}

describe('the built-in subsystems', () => {
  it('should have unique names and one of the four kinds', () => {
    expect(new Set(subsystemNames()).size).toBe(SUBSYSTEMS.length);
    expect(SUBSYSTEMS.length).toBeGreaterThanOrEqual(8);
    for (const s of SUBSYSTEMS) expect(['arch', 'fs', 'driver', 'hugepage']).toContain(s.kind);
  });

  it('should conflict nowhere under global-rwsem', () => {
    const rows = table('global-rwsem');
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.filter((r) => r[4] !== 'ok')).toEqual([]);
  });

  it('should conflict under vma-range on every declared legacy assumption and no converted one', () => {
    const rows = table('vma-range');
    expect(rows.filter((r) => r[1] === 'legacy' && r[4] !== 'conflict')).toEqual([]);
    expect(rows.filter((r) => r[1] === 'converted' && r[4] !== 'ok')).toEqual([]);
    expect(rows.some((r) => r[1] === 'legacy')).toBe(true);
  });

  it('should have legacy variants that rely on mmap_sem without declaring it', () => {
    const silent = SUBSYSTEMS.filter((s) => readAssumptions(s.create('legacy')).length === 0).map((s) => s.name);
    expect(silent).toEqual(expect.arrayContaining(['aioring', 'binder']));
  });
});
