// The policy registry: every name creates its policy, and bad names and options are refused
// with a message that says what is known.
import { describe, expect, it } from 'vitest';
import { POLICIES, createPolicy, policyNames } from './registry.js';

describe('policy registry', () => {
  it('should create each policy under its own name', () => {
    expect(policyNames()).toEqual(['global-rwsem', 'hybrid', 'vma-range', 'per-vma', 'spf', 'range-lock']);
    for (const p of POLICIES) expect(createPolicy(p.name).name).toBe(p.name);
  });

  it('should pass options through', () => {
    expect((createPolicy('range-lock', { ranges: 'fine' }) as unknown as { ranges: string }).ranges).toBe('fine');
  });

  it('should refuse an unknown policy, naming the known ones', () => {
    expect(() => createPolicy('mmap-sem')).toThrow("unknown policy 'mmap-sem' (known: global-rwsem, hybrid, vma-range, per-vma, spf, range-lock)");
  });

  it('should refuse an unknown option or value, naming what is expected', () => {
    expect(() => createPolicy('spf', { fast: true })).toThrow("policy 'spf' has no option 'fast' (it has none)");
    expect(() => createPolicy('range-lock', { ranges: 'some' })).toThrow("policy 'range-lock' option 'ranges': expected one of full, fine, got some");
  });
});
