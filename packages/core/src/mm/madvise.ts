import type { MmLockGuard } from './lockPolicy.js';
import { rangeAssertCovered, vmaStartWriteRange } from './mmapLock.js';
import { invalidateRangeEnd, invalidateRangeStart } from './notify.js';
import { type MmTask, pageAlign } from './task.js';
import {
  EAGAIN,
  EINVAL,
  ENOMEM,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_HWPOISON,
  MADV_KEEPONFORK,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_SOFT_OFFLINE,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  PAGE_SIZE,
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_NOHUGEPAGE,
  VM_PFNMAP,
  VM_RAND_READ,
  VM_SEQ_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WIPEONFORK,
  madviseNames,
} from './uapi.js';
import type { MmGen, Vma } from './vma.js';
import { vmaModify } from './vmaMerge.js';

/** Every advice value Linux knows (`madvise_behavior_valid()`). */
const VALID: ReadonlySet<number> = new Set(Object.values(madviseNames));

/** Advice that only reads the VMA tree (`madvise_need_mmap_write()` is false): mmap_sem read. */
const READ_SIDE = new Set([
  MADV_REMOVE,
  MADV_WILLNEED,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_COLD,
  MADV_PAGEOUT,
  MADV_FREE,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_COLLAPSE,
]);

/**
 * `madvise(start, len, advice)`. Returns 0 or -errno: EINVAL (unknown advice, unaligned, a
 * VMA the advice does not apply to), ENOMEM (part of the range unmapped — the mapped parts are
 * still advised — or a split past max_map_count). DONTNEED/FREE zap pages under the read-side
 * lock; the flag-changing advice (DONTFORK, DOFORK, HUGEPAGE, NOHUGEPAGE, ...) splits and
 * merges VMAs under the modify lock. Context: no mm lock held.
 */
export function* sysMadvise(task: MmTask, start: number, len: number, advice: number): MmGen<number> {
  const { mm, thread } = task;
  if (!VALID.has(advice) || advice === MADV_HWPOISON || advice === MADV_SOFT_OFFLINE) return -EINVAL;
  if (start % PAGE_SIZE !== 0) return -EINVAL;
  len = pageAlign(len);
  const end = start + len;
  if (end < start) return -EINVAL;
  if (end === start) return 0;
  thread.work('syscallNs');
  const guard: MmLockGuard = READ_SIDE.has(advice)
    ? yield* mm.policy.lockForRead(mm, thread, start, end)
    : yield* mm.policy.lockForModify(mm, thread, start, end);
  if (READ_SIDE.has(advice)) mm.policy.assertStable(guard, start);
  else {
    rangeAssertCovered(guard, start, end, 'madvise changes the flags of the VMAs of its range');
    yield* vmaStartWriteRange(guard, start, end, true);
  }
  let unmappedError = 0;
  let error = 0;
  let tmp = start;
  while (tmp < end) {
    const vma = mm.findVma(tmp);
    if (vma === null || vma.start >= end) {
      unmappedError = -ENOMEM;
      break;
    }
    if (vma.start > tmp) unmappedError = -ENOMEM;
    const pieceStart = Math.max(tmp, vma.start);
    const pieceEnd = Math.min(end, vma.end);
    error = yield* adviseVma(task, vma, pieceStart, pieceEnd, advice);
    if (error !== 0) break;
    tmp = pieceEnd;
  }
  yield* mm.policy.unlock(guard);
  return error !== 0 ? error : unmappedError;
}

/** New flags for flag-changing advice, or null when the advice does not change flags. */
function adviceFlags(vma: Vma, advice: number): number | null | 'EINVAL' {
  switch (advice) {
    case MADV_DONTFORK:
      return (vma.flags & VM_IO) !== 0 ? 'EINVAL' : vma.flags | VM_DONTCOPY;
    case MADV_DOFORK:
      return (vma.flags & VM_IO) !== 0 ? 'EINVAL' : vma.flags & ~VM_DONTCOPY;
    case MADV_HUGEPAGE:
      return (vma.flags & ~VM_NOHUGEPAGE) | VM_HUGEPAGE;
    case MADV_NOHUGEPAGE:
      return (vma.flags & ~VM_HUGEPAGE) | VM_NOHUGEPAGE;
    case MADV_WIPEONFORK:
      return vma.file !== null || (vma.flags & VM_SHARED) !== 0 ? 'EINVAL' : vma.flags | VM_WIPEONFORK;
    case MADV_KEEPONFORK:
      return vma.flags & ~VM_WIPEONFORK;
    case MADV_DONTDUMP:
      return vma.flags | VM_DONTDUMP;
    case MADV_DODUMP:
      return (vma.flags & VM_SPECIAL) !== 0 ? 'EINVAL' : vma.flags & ~VM_DONTDUMP;
    case MADV_NORMAL:
      return vma.flags & ~(VM_RAND_READ | VM_SEQ_READ);
    case MADV_RANDOM:
      return (vma.flags & ~VM_SEQ_READ) | VM_RAND_READ;
    case MADV_SEQUENTIAL:
      return (vma.flags & ~VM_RAND_READ) | VM_SEQ_READ;
    default:
      return null;
  }
}

function* adviseVma(task: MmTask, vma: Vma, start: number, end: number, advice: number): MmGen<number> {
  const { mm, thread } = task;
  if (advice === MADV_DONTNEED || advice === MADV_DONTNEED_LOCKED || advice === MADV_FREE) {
    // madvise_dontneed_free_valid_vma(): not on locked, PFN-mapped or hugetlb VMAs; FREE only on anonymous memory.
    const forbidden = (advice === MADV_DONTNEED_LOCKED ? 0 : VM_LOCKED) | VM_PFNMAP | VM_HUGETLB;
    if ((vma.flags & forbidden) !== 0) return -EINVAL;
    if (advice === MADV_FREE && !vma.isAnonymous()) return -EINVAL;
    yield* invalidateRangeStart(mm, thread, start, end);
    yield mm.pageTables.pageTableLock.lock();
    thread.work('zapPageNs', mm.pageTables.zap(start, end));
    yield mm.pageTables.pageTableLock.unlock();
    yield* invalidateRangeEnd(mm, thread, start, end);
    return 0;
  }
  const flags = adviceFlags(vma, advice);
  if (flags === 'EINVAL') return -EINVAL;
  if (flags === null || flags === vma.flags) return 0;
  thread.work('vmaUpdateNs');
  const r = yield* vmaModify(mm, thread, vma, start, end, { flags, file: vma.file, vmOps: vma.vmOps, anonVma: vma.anonVma });
  // madvise_vma_behavior(): "madvise() returns EAGAIN if kernel resources ... are temporarily unavailable".
  if (r === -ENOMEM) return -EAGAIN;
  return typeof r === 'number' ? r : 0;
}
