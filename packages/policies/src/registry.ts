import type { LockPolicy } from '@vmalock/core';
import { GlobalRwsemPolicy } from './globalRwsem.js';
import { HybridPolicy, VmaRangePolicy } from './vmaRange.js';

/** A policy by name, as plans, the CLI and the conformance suite name them. */
export interface PolicyEntry {
  readonly name: string;
  /** One line: what it is. */
  readonly summary: string;
  /** A fresh policy object (policies keep per-mm state in the mm, so one may serve many mms). */
  create(): LockPolicy;
}

/** Every policy, in the order reports list them. */
export const POLICIES: readonly PolicyEntry[] = [
  { name: 'global-rwsem', summary: 'the kernel before 6.4: everything under mmap_sem', create: () => new GlobalRwsemPolicy() },
  { name: 'hybrid', summary: "the design's part 1: mmap_sem as today plus the VMA range locks", create: () => new HybridPolicy() },
  { name: 'vma-range', summary: "the design's part 2: the VMA range locks alone, no mmap_sem", create: () => new VmaRangePolicy() },
];

/** The names `createPolicy` knows. */
export function policyNames(): string[] {
  return POLICIES.map((p) => p.name);
}

/** A new policy by name; throws naming the known ones for an unknown name. */
export function createPolicy(name: string): LockPolicy {
  const entry = POLICIES.find((p) => p.name === name);
  if (entry === undefined) throw new RangeError(`unknown policy '${name}' (known: ${policyNames().join(', ')})`);
  return entry.create();
}
