import type { SimThread } from '../sim/thread.js';
import type { MmLockGuard } from './lockPolicy.js';
import { rangeAssertCovered, vmaStartWriteRange } from './mmapLock.js';
import type { MmStruct } from './mmStruct.js';
import { archUnmap, invalidateRangeEnd, invalidateRangeStart } from './notify.js';
import { type MmTask, pageAlign } from './task.js';
import { EINVAL, ENOMEM, PAGE_SIZE, TASK_SIZE, VM_GROWSDOWN } from './uapi.js';
import type { MmGen, Vma } from './vma.js';
import { splitVmaUnchecked } from './vmaMerge.js';

/**
 * `munmap(addr, len)`. Returns 0 or -errno: EINVAL for an unaligned or out-of-range request or
 * a zero length, ENOMEM when splitting one VMA in three would pass `max_map_count`. Unmapping
 * nothing is success. Context: no mm lock held; takes the policy's modify lock on the range and
 * zaps under the downgraded lock where the policy allows (R10).
 */
export function* sysMunmap(task: MmTask, addr: number, len: number): MmGen<number> {
  if (addr % PAGE_SIZE !== 0 || addr > TASK_SIZE || len > TASK_SIZE - addr) return -EINVAL;
  len = pageAlign(len);
  if (len === 0) return -EINVAL;
  const { mm, thread } = task;
  thread.work('syscallNs');
  const guard = yield* mm.policy.lockForModify(mm, thread, addr, addr + len);
  const r = yield* unmapRange(mm, thread, guard, addr, addr + len, true);
  yield* mm.policy.unlock(guard);
  return r;
}

/**
 * `do_vmi_align_munmap()`: split the VMAs at the range's ends, detach everything inside, then
 * (after downgrading the guard when `mayDowngrade`) zap the pages and run `vm_ops->close`.
 * Fails with -ENOMEM, changing nothing, when both ends split one VMA at `max_map_count`.
 * The guard is not downgraded when the next VMA is a stack (VM_GROWSDOWN): it could grow into
 * the range under a read lock while the zap runs; that VMA is write-locked instead (Linux 6.4's
 * "write-lock adjacent VMAs if they can grow into unmapped area").
 * Context: `guard` allows modifying [start, end).
 */
export function* unmapRange(mm: MmStruct, thread: SimThread, guard: MmLockGuard, start: number, end: number, mayDowngrade: boolean): MmGen<number> {
  rangeAssertCovered(guard, start, end, 'munmap changes the VMAs of its range');
  yield* vmaStartWriteRange(guard, start, end, false);
  const gathered = detachRange(mm, start, end);
  if (typeof gathered === 'number') return gathered;
  const { detached, created } = gathered;
  if (detached.length === 0) return 0;
  mm.policy.afterDetach?.(guard, start, end);
  // __split_vma runs vm_ops->open on each new part (the kept side of a cut VMA).
  for (const vma of created) if (vma.vmOps?.open !== undefined) yield* vma.vmOps.open(vma, thread);
  yield* archUnmap(mm, thread, start, end);
  const next = mm.findVma(end);
  if (next !== null && (next.flags & VM_GROWSDOWN) !== 0) {
    if (mm.policy.vmaStartWrite !== undefined) yield* mm.policy.vmaStartWrite(guard, next);
  } else if (mayDowngrade) yield* mm.policy.downgrade(guard);
  thread.work('vmaUpdateNs', detached.length + created.length);
  yield* invalidateRangeStart(mm, thread, start, end);
  thread.work('zapPageNs', mm.pageTables.zap(start, end));
  yield* invalidateRangeEnd(mm, thread, start, end);
  for (const vma of detached) {
    mm.events.removed?.(vma);
    if (vma.vmOps?.close !== undefined) yield* vma.vmOps.close(vma, thread);
  }
  return 0;
}

/**
 * Split at the ends and take the VMAs in [start, end) out of the tree (`vms_gather_munmap_vmas`
 * plus detach). Returns them and the parts split off that stay, or -ENOMEM with nothing changed.
 */
export function detachRange(mm: MmStruct, start: number, end: number): { detached: Vma[]; created: Vma[] } | number {
  if (start >= end) return { detached: [], created: [] };
  const inside = mm.vmasIn(start, end);
  if (inside.length === 0) return { detached: [], created: [] };
  const first = inside[0]!;
  const last = inside[inside.length - 1]!;
  // The kernel refuses only the split that makes three VMAs of one at max_map_count.
  if (first.start < start && end < first.end && mm.mapCount >= mm.maxMapCount) return -ENOMEM;
  const created: Vma[] = [];
  if (first.start < start) created.push(splitVmaUnchecked(mm, first, start, true));
  if (last.end > end) {
    // `last` keeps [last.start, end) (to be detached); the new part above stays mapped.
    created.push(splitVmaUnchecked(mm, last, end, false));
  }
  const detached = mm.vmasIn(start, end);
  for (const vma of detached) mm.eraseVmaUnchecked(vma);
  return { detached, created };
}
