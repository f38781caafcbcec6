// What a legacy mmap_write_lock() in subsystem code gets under each policy (R12): mmap_sem where
// the policy has one — alone, without the VMA or range locks the policy's own paths take — the
// full range under range-lock, and nothing at all under vma-range.
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MmStruct,
  PROT_READ,
  PROT_WRITE,
  faultLocked,
  mmapLegacyLock,
  mmapLegacyUnlock,
  runMmOp,
  sysMmap,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { createPolicy } from './registry.js';
import { base, page } from './testing/mmWorkload.js';

/** Under a legacy write hold: is mmap_sem write-held, and is the one VMA write-locked by the policy's own measure? */
function underLegacyWrite(name: string): { hold: boolean; mmapSem: boolean; vmaWriteLocked: boolean } {
  const mm = new MmStruct(1, createPolicy(name));
  runMmOp(mm, (t) => sysMmap(t, base, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
  const vma = mm.vmaLookup(base)!;
  return runMmOp(mm, function* (t) {
    const hold = yield* mmapLegacyLock(mm, t.thread, 'write');
    const seen = { hold: hold !== null, mmapSem: mm.mmapSem.writer === t.thread, vmaWriteLocked: mm.policy.isVmaWriteLocked(mm, vma) };
    yield* mmapLegacyUnlock(mm, hold);
    return seen;
  });
}

describe('a legacy mmap_write_lock() in subsystem code', () => {
  it.each([
    ['global-rwsem', { hold: true, mmapSem: true, vmaWriteLocked: true }],
    ['hybrid', { hold: true, mmapSem: true, vmaWriteLocked: false }],
    ['vma-range', { hold: false, mmapSem: false, vmaWriteLocked: false }],
    ['per-vma', { hold: true, mmapSem: true, vmaWriteLocked: false }],
    ['spf', { hold: true, mmapSem: true, vmaWriteLocked: true }],
    ['range-lock', { hold: true, mmapSem: false, vmaWriteLocked: true }],
  ])('should get under %s: %o', (name, expected) => {
    expect(underLegacyWrite(name)).toEqual(expected);
  });
});

describe('a legacy mmap_read_lock() around a fault (hmm_range_fault, get_user_pages in old driver code)', () => {
  // Part 1 of the migration keeps mmap_sem as it is: code not converted yet, holding mmap_sem
  // alone, must still fault its pages in under hybrid (every change takes mmap_sem for write).
  it.each(['global-rwsem', 'hybrid', 'per-vma', 'spf'])('should fault the page in under %s, the VMA stable under the hold', (name) => {
    const mm = new MmStruct(1, createPolicy(name));
    runMmOp(mm, (t) => sysMmap(t, base, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    const r = runMmOp(mm, function* (t) {
      const hold = yield* mmapLegacyLock(mm, t.thread, 'read');
      const result = yield* faultLocked(t, hold!, base, 'write', false);
      yield* mmapLegacyUnlock(mm, hold);
      return result;
    });
    expect(r).toBe('ok');
    expect(mm.pageTables.lookup(base)).not.toBeNull();
  });
});
