import type { LockPolicy } from '@vmalock/core';
import { GlobalRwsemPolicy } from './globalRwsem.js';
import { PerVmaPolicy } from './perVma.js';
import { RangeLockPolicy } from './rangeLockPolicy.js';
import { SpfPolicy } from './spf.js';
import { HybridPolicy, VmaRangePolicy } from './vmaRange.js';

/** One design choice of a policy that plans and the CLI may set. */
export interface PolicyOption {
  readonly values: readonly (string | boolean)[];
  readonly default: string | boolean;
  /** One line: what it turns on or off. */
  readonly doc: string;
}

/** Options given to `createPolicy`, by option name. */
export type PolicyOptions = Readonly<Record<string, string | boolean>>;

/** A policy by name, as plans, the CLI and the conformance suite name them. */
export interface PolicyEntry {
  readonly name: string;
  /** One line: what it is. */
  readonly summary: string;
  /** The design choices it exposes (none for most). */
  readonly options: Readonly<Record<string, PolicyOption>>;
  /** A fresh policy object with `options` (checked; policies keep per-mm state in the mm, so one may serve many mms). */
  create(options: PolicyOptions): LockPolicy;
}

const bool = (o: PolicyOptions, key: string): boolean | undefined => o[key] as boolean | undefined;

/** Every policy, in the order reports list them. */
export const POLICIES: readonly PolicyEntry[] = [
  {
    name: 'global-rwsem',
    summary: 'the kernel before 6.4: everything under mmap_sem',
    options: {},
    create: () => new GlobalRwsemPolicy(),
  },
  {
    name: 'hybrid',
    summary: "the design's part 1: mmap_sem as today plus the VMA range locks",
    options: {},
    create: () => new HybridPolicy(),
  },
  {
    name: 'vma-range',
    summary: "the design's part 2: the VMA range locks alone, no mmap_sem",
    options: {},
    create: () => new VmaRangePolicy(),
  },
  {
    name: 'per-vma',
    summary: 'Linux 6.4+: faults under a per-VMA read lock, changes under mmap_sem write + vma_start_write',
    options: {
      lockNewVma: { values: [true, false], default: true, doc: 'a new VMA is write-locked before it becomes visible (6.4 fix)' },
      forkWriteLocksParent: { values: [true, false], default: true, doc: 'fork write-locks every parent VMA (fix fb49c455323f)' },
    },
    create: (o) => {
      const lockNewVma = bool(o, 'lockNewVma');
      const forkWriteLocksParent = bool(o, 'forkWriteLocksParent');
      return new PerVmaPolicy({ ...(lockNewVma !== undefined ? { lockNewVma } : {}), ...(forkWriteLocksParent !== undefined ? { forkWriteLocksParent } : {}) });
    },
  },
  {
    name: 'spf',
    summary: 'speculative page faults (Dufour 2018, Lespinasse 2021): lockless faults validated by mmap_seq',
    options: {},
    create: () => new SpfPolicy(),
  },
  {
    name: 'range-lock',
    summary: 'a range reader/writer lock over the address space (Kara 2013, Bueso 2017) in place of mmap_sem',
    options: {
      ranges: { values: ['full', 'fine'], default: 'full', doc: "'full': every request locks everything (the 2018 conversion); 'fine': the VMAs touched" },
    },
    create: (o) => new RangeLockPolicy({ ranges: (o.ranges as 'full' | 'fine' | undefined) ?? 'full' }),
  },
];

/** The names `createPolicy` knows. */
export function policyNames(): string[] {
  return POLICIES.map((p) => p.name);
}

/**
 * A new policy by name with `options`; throws a RangeError naming the known policies for an
 * unknown name, and the known options and values for a bad option.
 */
export function createPolicy(name: string, options: PolicyOptions = {}): LockPolicy {
  const entry = POLICIES.find((p) => p.name === name);
  if (entry === undefined) throw new RangeError(`unknown policy '${name}' (known: ${policyNames().join(', ')})`);
  for (const [key, value] of Object.entries(options)) {
    const option = entry.options[key];
    if (option === undefined) {
      const known = Object.keys(entry.options);
      throw new RangeError(`policy '${name}' has no option '${key}' (${known.length === 0 ? 'it has none' : `known: ${known.join(', ')}`})`);
    }
    if (!option.values.includes(value))
      throw new RangeError(`policy '${name}' option '${key}': expected one of ${option.values.join(', ')}, got ${String(value)}`);
  }
  return entry.create(options);
}
