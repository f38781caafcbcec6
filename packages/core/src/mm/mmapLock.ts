import type { SimThread } from '../sim/thread.js';
import type { MmLockGuard } from './lockPolicy.js';
import type { MmStruct } from './mmStruct.js';
import { type MmGen, type Vma, hex } from './vma.js';

/** A held-lock assertion that failed (lockdep-style): what was required and what was held. */
export class LockAssertionError extends Error {}

function count(mm: MmStruct, name: string): void {
  mm.assertionCounts[name] = (mm.assertionCounts[name] ?? 0) + 1;
}

/** `mmap_assert_locked()`: `thread` holds mmap_sem in some mode. */
export function mmapAssertLocked(mm: MmStruct, thread: SimThread, why: string): void {
  count(mm, 'mmapAssertLocked');
  if (mm.mmapSem.writer === thread || mm.mmapSem.readers.includes(thread)) return;
  throw new LockAssertionError(`mmap_assert_locked(${mm.mmapSem.name}) failed in ${thread.label}: ${why}`);
}

/** `mmap_assert_write_locked()`: `thread` holds mmap_sem for write. */
export function mmapAssertWriteLocked(mm: MmStruct, thread: SimThread, why: string): void {
  count(mm, 'mmapAssertWriteLocked');
  if (mm.mmapSem.writer === thread) return;
  const held = mm.mmapSem.readers.includes(thread) ? 'holds it for read only' : 'does not hold it';
  throw new LockAssertionError(`mmap_assert_write_locked(${mm.mmapSem.name}) failed in ${thread.label} (${held}): ${why}`);
}

/**
 * `vma_assert_write_locked()`: `vma` may be changed now — its policy's lock for it is held for
 * write (global-rwsem: mmap_sem write; per-vma: `vm_lock_seq == mm_lock_seq`; vma-range: its
 * `vm_area_lock`; range-lock: a write range over it). Like the kernel's, it does not name the
 * holder: the primitives that change VMAs have no thread.
 */
export function vmaAssertWriteLocked(mm: MmStruct, vma: Vma, why: string): void {
  count(mm, 'vmaAssertWriteLocked');
  if (mm.policy.isVmaWriteLocked(mm, vma)) return;
  throw new LockAssertionError(`vma_assert_write_locked(${vma.toString()}) failed under ${mm.policy.name}: ${why}`);
}

/** `vma_assert_locked()`: `vma` is stable under `guard` (read- or write-locked by its holder). */
export function vmaAssertLocked(guard: MmLockGuard, vma: Vma, why: string): void {
  count(guard.mm, 'vmaAssertLocked');
  if (guard.mm.policy.isVmaLocked(guard, vma)) return;
  throw new LockAssertionError(`vma_assert_locked(${vma.toString()}) failed in ${guard.thread.label} under ${guard.mm.policy.name}: ${why}`);
}

/**
 * The guard allows modifying [start, end) and the neighbours a merge may touch (the policy's
 * `assertModify`, counted here). Throws LockAssertionError otherwise.
 */
export function rangeAssertCovered(guard: MmLockGuard, start: number, end: number, why: string): void {
  count(guard.mm, 'rangeAssertCovered');
  try {
    guard.mm.policy.assertModify(guard, start, end);
  } catch (e) {
    if (e instanceof LockAssertionError) throw new LockAssertionError(`range_assert_covered([${hex(start)}, ${hex(end)})): ${why}: ${e.message}`);
    throw e;
  }
}

/**
 * Before changing VMAs in [start, end): `vma_start_write` on each visible VMA intersecting it
 * and, with `neighbours`, on the VMA ending at `start` and the one starting at `end` (a merge
 * may grow or remove them). A no-op for policies without `vmaStartWrite`.
 */
export function* vmaStartWriteRange(guard: MmLockGuard, start: number, end: number, neighbours: boolean): MmGen<void> {
  const { mm } = guard;
  const policy = mm.policy;
  if (policy.vmaStartWrite === undefined) return;
  const todo: Vma[] = [];
  const below = neighbours ? mm.findVmaPrev(start) : null;
  if (below !== null && below.end === start) todo.push(below);
  for (const v of mm.vmas(start)) {
    if (v.start > end || (v.start === end && !neighbours)) break;
    todo.push(v);
    if (v.start >= end) break;
  }
  for (const v of todo) yield* policy.vmaStartWrite(guard, v);
}

/**
 * `mmap_read_lock()` / `mmap_write_lock()` as legacy subsystem code calls it: whatever the
 * policy makes of it (`LockPolicy.legacyLock`; by default `lockAll`). Null: the policy has no
 * mmap_sem and the call protects nothing. Release with `mmapLegacyUnlock`.
 */
export function* mmapLegacyLock(mm: MmStruct, thread: SimThread, mode: 'read' | 'write'): MmGen<MmLockGuard | null> {
  const policy = mm.policy;
  if (policy.legacyLock !== undefined) return yield* policy.legacyLock(mm, thread, mode);
  return yield* policy.lockAll(mm, thread, mode);
}

/** `mmap_read_unlock()` / `mmap_write_unlock()` of a `mmapLegacyLock` hold. */
export function* mmapLegacyUnlock(mm: MmStruct, hold: MmLockGuard | null): MmGen<void> {
  if (hold !== null) yield* mm.policy.unlock(hold);
}
