import { rangeAssertCovered, vmaStartWriteRange } from './mmapLock.js';
import { invalidateRangeEnd, invalidateRangeStart } from './notify.js';
import { vmProtBits } from './mmap.js';
import { type MmTask, pageAlign } from './task.js';
import {
  EACCES,
  EINVAL,
  ENOMEM,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_READ,
  PROT_SEM,
  PROT_WRITE,
  VM_ACCOUNT,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_HUGETLB,
  VM_NORESERVE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from './uapi.js';
import type { MmGen } from './vma.js';
import { vmaModify } from './vmaMerge.js';

const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;

/**
 * `mprotect(start, len, prot)` (`do_mprotect_pkey`). Returns 0 or -errno: EINVAL (unaligned,
 * unknown prot bits, PROT_GROWSDOWN on a VMA that does not grow), ENOMEM (the range is not
 * fully mapped, or a split would pass max_map_count), EACCES (asking for more than the VMA's
 * VM_MAY* allow). Like the kernel, the VMAs before a hole or a failing VMA keep their new
 * protection. Context: no mm lock held; takes the policy's modify lock on the range.
 */
export function* sysMprotect(task: MmTask, start: number, len: number, prot: number): MmGen<number> {
  const { mm, thread } = task;
  if (start % PAGE_SIZE !== 0) return -EINVAL;
  const grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
  prot &= ~grows;
  if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return -EINVAL;
  if (len === 0) return 0;
  len = pageAlign(len);
  const end = start + len;
  if (end <= start) return -ENOMEM;
  // arch_validate_prot() runs only here, after the zero-length return, as in do_mprotect_pkey().
  if ((prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) !== 0) return -EINVAL;
  thread.work('syscallNs');
  const guard = yield* mm.policy.lockForModify(mm, thread, start, end);
  rangeAssertCovered(guard, start, end, 'mprotect changes the VMAs of its range');
  yield* vmaStartWriteRange(guard, start, end, true);
  const result = yield* mprotectLocked(task, start, end, prot, grows);
  yield* mm.policy.unlock(guard);
  return result;
}

function* mprotectLocked(task: MmTask, start: number, end: number, prot: number, grows: number): MmGen<number> {
  const { mm, thread } = task;
  const first = mm.findVma(start);
  if (first === null || first.start >= end) return -ENOMEM;
  if ((grows & PROT_GROWSDOWN) !== 0) {
    if ((first.flags & VM_GROWSDOWN) === 0) return -EINVAL;
    start = first.start;
  } else {
    if (first.start > start) return -ENOMEM;
    // No VM_GROWSUP on x86-64: PROT_GROWSUP fails with EINVAL once a VMA is found at start.
    if ((grows & PROT_GROWSUP) !== 0) return -EINVAL;
  }
  const want = vmProtBits(prot);
  // Walk by address: a merge may swallow the next VMA of the range.
  let tmp = start;
  while (tmp < end) {
    const vma = mm.findVma(tmp);
    if (vma === null || vma.start > tmp) return -ENOMEM;
    let newFlags = (vma.flags & ~VM_ACCESS_FLAGS) | want;
    // newflags >> 4 puts VM_MAY* where VM_* are: asking beyond them is EACCES.
    if ((newFlags & ~(newFlags >> 4) & VM_ACCESS_FLAGS) !== 0) return -EACCES;
    // A private mapping made writable is charged from now on (mprotect_fixup).
    if ((newFlags & VM_WRITE) !== 0 && (vma.flags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE)) === 0) newFlags |= VM_ACCOUNT;
    // ... and an anonymous one never faulted (no anon_vma yet) made read-only is no longer charged.
    else if ((newFlags & VM_WRITE) === 0 && (vma.flags & VM_ACCOUNT) !== 0 && vma.isAnonymous() && vma.anonVma === null) newFlags &= ~VM_ACCOUNT;
    const pieceStart = tmp;
    const pieceEnd = Math.min(end, vma.end);
    if (newFlags !== vma.flags) {
      thread.work('vmaUpdateNs');
      const r = yield* vmaModify(mm, thread, vma, pieceStart, pieceEnd, { flags: newFlags, file: vma.file, vmOps: vma.vmOps, anonVma: vma.anonVma });
      if (typeof r === 'number') return r;
      if ((newFlags & VM_WRITE) === 0) {
        // change_protection(): secondary MMUs drop their writable copies too.
        yield* invalidateRangeStart(mm, thread, pieceStart, pieceEnd);
        for (const { addr } of mm.pageTables.walk(pieceStart, pieceEnd)) mm.pageTables.setWritable(addr, false);
        yield* invalidateRangeEnd(mm, thread, pieceStart, pieceEnd);
      }
    }
    tmp = pieceEnd;
  }
  return 0;
}
