import { rangeAssertCovered, vmaStartWriteRange } from './mmapLock.js';
import { unmapRange } from './munmap.js';
import { type MmTask, pageAlign } from './task.js';
import { PAGE_SIZE, VM_ACCOUNT, VM_MAYEXEC, VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_WRITE } from './uapi.js';
import { type MmGen, Vma, vmStartGap } from './vma.js';
import { canMergeAfter } from './vmaMerge.js';

/** `VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT`: what the heap is mapped with (x86-64, no READ_IMPLIES_EXEC). */
export const BRK_VM_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_ACCOUNT;

/**
 * `brk(addr)`: move the program break. Returns the new break on success and the old one on any
 * failure (brk never returns -1): below `start_brk`, a mapping in the way (keeping a page of
 * gap), or `max_map_count`. Shrinking unmaps the freed pages. Context: no mm lock held.
 */
export function* sysBrk(task: MmTask, brk: number): MmGen<number> {
  const { mm, thread } = task;
  thread.work('syscallNs');
  // The range brk may change: from the heap's start to a page past the higher break. mm.brk is
  // read before the lock; a policy that does not lock everything may see it move meanwhile, so
  // the range is checked again under the lock.
  const span = (): [number, number] => {
    const oldAligned = pageAlign(mm.brk);
    const newAligned = pageAlign(brk);
    return [Math.min(mm.startBrk, oldAligned, newAligned), Math.max(oldAligned, newAligned) + PAGE_SIZE];
  };
  let [low, top] = span();
  let guard = yield* mm.policy.lockForModify(mm, thread, low, top);
  for (let [l, t] = span(); l < low || t > top; [l, t] = span()) {
    yield* mm.policy.unlock(guard);
    [low, top] = [l, t];
    guard = yield* mm.policy.lockForModify(mm, thread, low, top);
  }
  rangeAssertCovered(guard, low, top, 'brk changes the heap');
  yield* vmaStartWriteRange(guard, low, top, true);
  const origBrk = mm.brk;
  let result = origBrk;
  if (brk >= mm.startBrk) {
    const oldbrk = pageAlign(mm.brk);
    const newbrk = pageAlign(brk);
    if (oldbrk === newbrk) {
      mm.brk = brk;
      result = brk;
    } else if (brk <= mm.brk) {
      // Shrink: unmap [newbrk, oldbrk), downgrading for the zap as the kernel does. With nothing
      // mapped there (the heap was munmapped) the kernel refuses and keeps the old break.
      if (mm.findVmaIntersection(newbrk, oldbrk) !== null) {
        mm.brk = brk;
        const r = yield* unmapRange(mm, thread, guard, newbrk, oldbrk, true);
        if (r < 0) mm.brk = origBrk;
        result = mm.brk;
      }
    } else {
      const next = mm.findVma(oldbrk);
      if (next === null || newbrk + PAGE_SIZE <= vmStartGap(next)) {
        if (expandBrk(task, oldbrk, newbrk)) {
          mm.brk = brk;
          result = brk;
        }
      }
    }
  }
  yield* mm.policy.unlock(guard);
  return result;
}

/**
 * `do_brk_flags()`: extend the heap VMA (the one in [start_brk, oldbrk) ending at oldbrk, found
 * by `vma_prev_limit`) when it can take the range, else map [oldbrk, newbrk) as a new VMA that
 * merges with nothing. False at max_map_count.
 */
function expandBrk(task: MmTask, oldbrk: number, newbrk: number): boolean {
  const { mm } = task;
  if (mm.mapCount > mm.maxMapCount) return false;
  const prev = mm.findVmaPrev(oldbrk);
  const brkVma = prev !== null && prev.start >= mm.startBrk ? prev : null;
  const props = { flags: BRK_VM_FLAGS, file: null, vmOps: null, anonVma: null };
  if (brkVma !== null && canMergeAfter(brkVma, oldbrk, props, oldbrk / PAGE_SIZE)) {
    mm.setVmaRangeUnchecked(brkVma, brkVma.start, newbrk, brkVma.pgoff);
    return true;
  }
  mm.insertVmaUnchecked(new Vma(oldbrk, newbrk, BRK_VM_FLAGS, oldbrk / PAGE_SIZE, null, null, null));
  return true;
}
