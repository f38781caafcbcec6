import type { SimThread } from '../sim/thread.js';
import type { MmLockGuard } from './lockPolicy.js';
import { rangeAssertCovered, vmaStartWriteRange } from './mmapLock.js';
import type { MmStruct } from './mmStruct.js';
import { invalidateRangeEnd, invalidateRangeStart } from './notify.js';
import { unmapRange } from './munmap.js';
import { type MmTask, pageAlign } from './task.js';
import {
  EFAULT,
  EINVAL,
  ENOMEM,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  TASK_SIZE,
  VM_DONTEXPAND,
  VM_MAYSHARE,
  VM_PFNMAP,
  VM_SHARED,
} from './uapi.js';
import { type MmGen, Vma } from './vma.js';
import { vmaMergeNewRange } from './vmaMerge.js';

/**
 * `mremap(addr, oldLen, newLen, flags, newAddr)`. Shrinks in place, grows in place when the
 * space after is free, otherwise moves (MREMAP_MAYMOVE) to a new area or to `newAddr`
 * (MREMAP_FIXED, unmapping what was there); MREMAP_DONTUNMAP always moves, leaving the old range
 * mapped and empty. Returns the new address or -errno: EINVAL (flags,
 * alignment, zero new length, overlapping fixed target), EFAULT (no VMA at addr; growing or
 * moving an old range that crosses its VMA's end, or a VM_DONTEXPAND/VM_PFNMAP VMA; a shrink
 * only unmaps the tail, across VMAs as munmap does), ENOMEM (no room in place
 * without MAYMOVE, no free area, map count). Context: no mm lock held.
 */
export function* sysMremap(task: MmTask, addr: number, oldLen: number, newLen: number, flags: number, newAddr: number): MmGen<number> {
  const { mm, thread } = task;
  if ((flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP)) !== 0) return -EINVAL;
  if ((flags & MREMAP_FIXED) !== 0 && (flags & MREMAP_MAYMOVE) === 0) return -EINVAL;
  if ((flags & MREMAP_DONTUNMAP) !== 0 && ((flags & MREMAP_MAYMOVE) === 0 || oldLen !== newLen)) return -EINVAL;
  if (addr % PAGE_SIZE !== 0) return -EINVAL;
  oldLen = pageAlign(oldLen);
  newLen = pageAlign(newLen);
  if (newLen === 0) return -EINVAL;
  if (addr + oldLen > TASK_SIZE || newLen > TASK_SIZE) return -EINVAL;
  thread.work('syscallNs');
  for (;;) {
    const guard = yield* mm.policy.lockForRemap(mm, thread, addr, addr + oldLen);
    const r = yield* mremapLocked(mm, thread, guard, addr, oldLen, newLen, flags, newAddr);
    yield* mm.policy.unlock(guard);
    // R5: the source had to be released to lock a lower target and changed meanwhile.
    if (r !== 'restart') return r;
  }
}

/**
 * Extend the guard over the move's target [start, end) (R5) and write-lock the VMAs there and
 * next to it. 'restart': the source changed while the policy re-took it; 'taken': a target
 * chosen by get_unmapped_area was mapped by someone else before it was locked.
 */
function* lockTarget(mm: MmStruct, guard: MmLockGuard, start: number, end: number, mustBeFree: boolean): MmGen<'ok' | 'restart' | 'taken'> {
  if (mm.policy.lockTarget !== undefined && !(yield* mm.policy.lockTarget(guard, start, end))) return 'restart';
  if (mustBeFree && mm.findVmaIntersection(start, end) !== null) return 'taken';
  yield* vmaStartWriteRange(guard, start, end, true);
  return 'ok';
}

function* mremapLocked(
  mm: MmStruct,
  thread: SimThread,
  guard: MmLockGuard,
  addr: number,
  oldLen: number,
  newLen: number,
  flags: number,
  newAddr: number,
): MmGen<number | 'restart'> {
  rangeAssertCovered(guard, addr, addr + oldLen, 'mremap changes the VMAs of its source');
  let vma = mm.vmaLookup(addr);
  if (vma === null) return -EFAULT;
  yield* vmaStartWriteRange(guard, addr, addr + oldLen, true);

  if ((flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) !== 0) {
    // mremap_to(): a move to `newAddr` (MREMAP_FIXED, unmapping what is there) or, for
    // MREMAP_DONTUNMAP alone, to a free area found with `newAddr` as a hint.
    const fixed = (flags & MREMAP_FIXED) !== 0;
    if (newAddr % PAGE_SIZE !== 0) return -EINVAL;
    if (newLen > TASK_SIZE || newAddr > TASK_SIZE - newLen) return -EINVAL;
    if (newAddr < addr + oldLen && addr < newAddr + newLen) return -EINVAL;
    if (mm.mapCount + 2 >= mm.maxMapCount - 3) return -ENOMEM;
    if (fixed) {
      if ((yield* lockTarget(mm, guard, newAddr, newAddr + newLen, false)) !== 'ok') return 'restart';
      const r = yield* unmapRange(mm, thread, guard, newAddr, newAddr + newLen, false);
      if (r < 0) return r;
    }
    if (oldLen > newLen) {
      const r = yield* unmapRange(mm, thread, guard, addr + newLen, addr + oldLen, false);
      if (r < 0) return r;
      oldLen = newLen;
    }
    vma = mm.vmaLookup(addr);
    if (vma === null) return -EFAULT;
    const bad = resizeError(vma, addr, oldLen, newLen, flags);
    if (bad < 0) return bad;
    const target = fixed ? newAddr : mm.getUnmappedArea(newLen, newAddr, mapFlagsOf(vma), vma.file, vma.flags);
    if (target < 0) return target;
    if (!fixed && (yield* lockTarget(mm, guard, target, target + newLen, true)) !== 'ok') return 'restart';
    return yield* moveVma(mm, thread, guard, vma, addr, oldLen, newLen, target, flags);
  }

  if (oldLen >= newLen) {
    // Shrink (or same size): unmap the tail, downgrading for the zap.
    if (oldLen > newLen) {
      const r = yield* unmapRange(mm, thread, guard, addr + newLen, addr + oldLen, true);
      if (r < 0) return r;
    }
    return addr;
  }
  const bad = resizeError(vma, addr, oldLen, newLen, flags);
  if (bad < 0) return bad;
  if (addr + oldLen === vma.end && expandable(mm, vma, newLen - oldLen)) {
    // Grow in place, joining the VMA after when the kernel's merge rules allow.
    const delta = newLen - oldLen;
    const start = vma.end;
    const props = { flags: vma.flags, file: vma.file, vmOps: vma.vmOps, anonVma: vma.anonVma };
    // The VMA after the new part may be merged away: it is write-locked like any VMA changed.
    yield* vmaStartWriteRange(guard, start, start + delta, true);
    if (vmaMergeNewRange(mm, start, start + delta, props, vma.pgoffOf(start)) === null) {
      mm.setVmaRangeUnchecked(vma, vma.start, start + delta, vma.pgoff);
    }
    return addr;
  }
  if ((flags & MREMAP_MAYMOVE) === 0) return -ENOMEM;
  const target = mm.getUnmappedArea(newLen, 0, mapFlagsOf(vma), vma.file, vma.flags);
  if (target < 0) return target;
  if ((yield* lockTarget(mm, guard, target, target + newLen, true)) !== 'ok') return 'restart';
  return yield* moveVma(mm, thread, guard, vma, addr, oldLen, newLen, target, flags);
}

/**
 * `vma_to_resize()`: may [addr, addr+oldLen) of `vma` become `newLen` long (grow or move)?
 * 0, or -EINVAL (old_len 0 of a private mapping, MREMAP_DONTUNMAP of a VM_DONTEXPAND/VM_PFNMAP
 * VMA), -EFAULT (the old range runs past the VMA's end, or growing a VM_DONTEXPAND/VM_PFNMAP
 * VMA). A shrink in place never asks: it only unmaps the tail, whatever VMAs it spans.
 */
function resizeError(vma: Vma, addr: number, oldLen: number, newLen: number, flags: number): number {
  if (oldLen === 0 && (vma.flags & (VM_SHARED | VM_MAYSHARE)) === 0) return -EINVAL;
  if ((flags & MREMAP_DONTUNMAP) !== 0 && (vma.flags & (VM_DONTEXPAND | VM_PFNMAP)) !== 0) return -EINVAL;
  if (oldLen > vma.end - addr) return -EFAULT;
  if (newLen > oldLen && (vma.flags & (VM_DONTEXPAND | VM_PFNMAP)) !== 0) return -EFAULT;
  return 0;
}

/** The mmap type `get_unmapped_area()` is asked for when `vma` moves. */
function mapFlagsOf(vma: Vma): number {
  return (vma.flags & VM_MAYSHARE) !== 0 ? MAP_SHARED : MAP_PRIVATE;
}

/**
 * `vma_expandable()`: the `delta` bytes after `vma` are inside the address space and intersect
 * no VMA. Like the kernel (find_vma_intersection), this ignores the guard gap of a stack above:
 * growing in place may run right up to it.
 */
function expandable(mm: MmStruct, vma: Vma, delta: number): boolean {
  const end = vma.end + delta;
  if (end > TASK_SIZE) return false;
  const next = mm.tree.next(vma);
  return next === null || next.start >= end;
}

/**
 * `move_vma()`: copy the VMA's range [oldAddr, oldAddr+oldLen) to [newAddr, newAddr+newLen)
 * (merging with neighbours there when allowed, `copy_vma`), move its page-table entries, run
 * `vm_ops->mremap`, then unmap the old range (unless MREMAP_DONTUNMAP).
 */
function* moveVma(
  mm: MmStruct,
  thread: SimThread,
  guard: MmLockGuard,
  vma: Vma,
  oldAddr: number,
  oldLen: number,
  newLen: number,
  newAddr: number,
  flags: number,
): MmGen<number> {
  if (mm.mapCount >= mm.maxMapCount - 3) return -ENOMEM;
  // copy_vma(): a private anonymous VMA never faulted (no anon_vma, so no page indexed by its
  // pgoff) takes the pgoff of its new address, as a new mapping there would, so it can merge.
  const unfaultedAnon = vma.isAnonymous() && !vma.isShared() && vma.anonVma === null;
  const pgoff = unfaultedAnon ? newAddr / PAGE_SIZE : vma.pgoffOf(oldAddr);
  const props = { flags: vma.flags, file: vma.file, vmOps: vma.vmOps, anonVma: vma.anonVma };
  let moved = vmaMergeNewRange(mm, newAddr, newAddr + newLen, props, pgoff);
  if (moved === null) {
    moved = new Vma(newAddr, newAddr + newLen, vma.flags, pgoff, vma.file, vma.anonVma, vma.vmOps);
    moved.name = vma.name;
    mm.insertVmaUnchecked(moved);
    if (moved.vmOps?.open !== undefined) yield* moved.vmOps.open(moved, thread);
  }
  // move_page_tables(): every present entry of the old range moves by the same offset.
  thread.work('vmaUpdateNs');
  const pt = mm.pageTables;
  yield* invalidateRangeStart(mm, thread, oldAddr, oldAddr + oldLen);
  const entries = [...pt.walk(oldAddr, oldAddr + oldLen)];
  for (const { addr, view } of entries) if (view.huge) pt.splitHugePmd(addr);
  for (const { addr, view } of [...pt.walk(oldAddr, oldAddr + oldLen)]) {
    pt.setPte(newAddr + (addr - oldAddr), view.page, view.writable);
  }
  pt.zap(oldAddr, oldAddr + oldLen);
  yield* invalidateRangeEnd(mm, thread, oldAddr, oldAddr + oldLen);
  if (moved.vmOps?.mremap !== undefined) yield* moved.vmOps.mremap(moved, thread);
  if ((flags & MREMAP_DONTUNMAP) === 0) {
    const r = yield* unmapRange(mm, thread, guard, oldAddr, oldAddr + oldLen, false);
    if (r < 0) return r;
  }
  return newAddr;
}
