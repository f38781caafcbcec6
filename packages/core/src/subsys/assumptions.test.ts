// The declaration of assumptions: one decorator writes them (on a class or a method) under one
// namespaced metadata key, one reader returns them with their base classes' first; the static
// check compares each with what a policy provides at its hook.
import { describe, expect, it } from 'vitest';
import type { HookSite, LockPolicy, ProvidedLock } from '../mm/lockPolicy.js';
import { ASSUMPTIONS_KEY, assumes, checkAssumption, readAssumptions } from './assumptions.js';

@assumes({ lock: 'mmap_sem', mode: 'write', hook: 'mmapRegion', protects: 'base.table', why: 'the base class writes its table under mmap_sem' })
class Base {
  @assumes({ lock: 'mmap_sem', mode: 'read', hook: 'fault', protects: 'base.cache', why: 'faults read the cache' })
  fault(): void {}
}

@assumes({ lock: 'vma', mode: 'read', hook: 'fault', protects: 'derived.pages', why: 'the VMA must not change under the fault' })
class Derived extends Base {
  @assumes({ lock: 'page_table_lock', mode: 'write', hook: 'stackGrowth', protects: 'derived.top', why: 'grows with the stack' })
  grow(): void {}
}

/** A policy that provides mmap_sem in `mode` at every site. */
function mmapSemPolicy(mode: 'read' | 'write'): LockPolicy {
  return { provides: (_site: HookSite): readonly ProvidedLock[] => [{ lock: 'mmap_sem', mode }] } as unknown as LockPolicy;
}

describe('assumptions', () => {
  it('should read class and method declarations, base class first, from an instance or the class', () => {
    const all = readAssumptions(new Derived());
    expect(all.map((a) => [a.protects, a.member])).toEqual([
      ['base.cache', 'fault'],
      ['base.table', null],
      ['derived.top', 'grow'],
      ['derived.pages', null],
    ]);
    expect(readAssumptions(Derived)).toEqual(all);
    expect(readAssumptions(new Base())).toHaveLength(2);
    expect(Reflect.getOwnMetadata(ASSUMPTIONS_KEY, Derived)).toHaveLength(2);
  });

  it('should find nothing on an undecorated object', () => {
    expect(readAssumptions({})).toEqual([]);
    expect(readAssumptions(class Plain {})).toEqual([]);
  });

  it('should judge each assumption against what the policy holds at its hook', () => {
    const [cache, table, top, pages] = readAssumptions(Derived);
    const write = mmapSemPolicy('write');
    const read = mmapSemPolicy('read');
    expect(checkAssumption(cache!, read).verdict).toBe('ok');
    expect(checkAssumption(table!, write).verdict).toBe('ok');
    expect(checkAssumption(table!, read).verdict).toBe('conflict'); // a read hold does not satisfy a write need
    expect(checkAssumption(top!, write).verdict).toBe('conflict'); // another lock entirely
    expect(checkAssumption(pages!, read).verdict).toBe('ok'); // 'vma': any lock that holds the VMA
    expect(checkAssumption(pages!, { provides: () => [] } as unknown as LockPolicy).verdict).toBe('conflict');
    expect(checkAssumption(cache!, read).provided).toEqual([{ lock: 'mmap_sem', mode: 'read' }]);
  });
});
