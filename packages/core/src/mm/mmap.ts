import type { SimThread } from '../sim/thread.js';
import { populate } from './fault.js';
import type { MmLockGuard } from './lockPolicy.js';
import type { MmStruct } from './mmStruct.js';
import { unmapRange } from './munmap.js';
import { type MmTask, pageAlign } from './task.js';
import {
  EACCES,
  EBADF,
  EEXIST,
  EINVAL,
  ENOMEM,
  EOPNOTSUPP,
  EOVERFLOW,
  EPERM,
  MAP_ANONYMOUS,
  MAP_DENYWRITE,
  MAP_EXECUTABLE,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_HUGETLB,
  MAP_LOCKED,
  MAP_NONBLOCK,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_STACK,
  MAP_SYNC,
  MAP_TYPE,
  MAP_32BIT,
  MAP_UNINITIALIZED,
  MMAP_MIN_ADDR,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  TASK_SIZE,
  VM_ACCOUNT,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_HUGETLB,
  VM_LOCKED,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_NOHUGEPAGE,
  VM_NORESERVE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from './uapi.js';
import { type MmFile, type MmGen, Vma } from './vma.js';
import { vmaMergeNewRange } from './vmaMerge.js';

/** mmap flags the kernel knows (`LEGACY_MAP_MASK` plus the newer ones). */
const KNOWN_MAP_FLAGS =
  MAP_TYPE |
  MAP_FIXED |
  MAP_ANONYMOUS |
  MAP_32BIT |
  MAP_GROWSDOWN |
  MAP_DENYWRITE |
  MAP_EXECUTABLE |
  MAP_LOCKED |
  MAP_NORESERVE |
  MAP_POPULATE |
  MAP_NONBLOCK |
  MAP_STACK |
  MAP_HUGETLB |
  MAP_SYNC |
  MAP_FIXED_NOREPLACE |
  MAP_UNINITIALIZED;

/** `calc_vm_prot_bits()`. */
export function vmProtBits(prot: number): number {
  return (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0);
}

/** `accountable_mapping()`: a private writable mapping without MAP_NORESERVE is charged. */
export function accountable(vmFlags: number): boolean {
  return (vmFlags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) === VM_WRITE;
}

/**
 * `mmap(addr, len, prot, flags, fd, offset)` (`ksys_mmap_pgoff` -> `do_mmap` -> `mmap_region`).
 * Returns the address, or -errno: EINVAL (no length, bad offset, bad map type, unaligned
 * MAP_FIXED), EBADF (no such fd), EACCES (file mode), ENOMEM (no room, map count, size),
 * EEXIST (MAP_FIXED_NOREPLACE over a mapping), EPERM (below mmap_min_addr), EOVERFLOW,
 * EOPNOTSUPP (unknown flag with MAP_SHARED_VALIDATE). Context: no mm lock held.
 */
export function* sysMmap(task: MmTask, addr: number, len: number, prot: number, flags: number, fd: number, offset: number): MmGen<number> {
  const { mm, thread } = task;
  if (offset % PAGE_SIZE !== 0) return -EINVAL;
  let file: MmFile | null = null;
  if ((flags & MAP_ANONYMOUS) === 0) {
    file = mm.files.get(fd) ?? null;
    if (file === null) return -EBADF;
  }
  if ((flags & MAP_HUGETLB) !== 0 && file === null) return -ENOMEM; // no hugetlb pages reserved
  if (len === 0) return -EINVAL;
  // do_mmap() turns MAP_FIXED_NOREPLACE into MAP_FIXED before it treats a non-fixed address as a
  // hint: an unaligned or too-low NOREPLACE address fails (EINVAL, EPERM), it is never rounded.
  if ((flags & MAP_FIXED_NOREPLACE) !== 0) flags |= MAP_FIXED;
  if ((flags & MAP_FIXED) === 0 && addr !== 0 && addr < MMAP_MIN_ADDR) addr = MMAP_MIN_ADDR;
  else if ((flags & MAP_FIXED) === 0) addr = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
  len = pageAlign(len);
  if (len === 0 || len > TASK_SIZE) return -ENOMEM;
  const pgoff = offset / PAGE_SIZE;
  if (pgoff + len / PAGE_SIZE > Number.MAX_SAFE_INTEGER) return -EOVERFLOW;
  const type = flags & MAP_TYPE;
  if (type !== MAP_SHARED && type !== MAP_PRIVATE && type !== MAP_SHARED_VALIDATE) return -EINVAL;
  // The anonymous switch of do_mmap() knows only MAP_SHARED and MAP_PRIVATE: MAP_SHARED_VALIDATE
  // is for files (it validates the file's supported flags).
  if (type === MAP_SHARED_VALIDATE && file === null) return -EINVAL;
  if (type === MAP_SHARED_VALIDATE && (flags & ~KNOWN_MAP_FLAGS) !== 0) return -EOPNOTSUPP;
  // do_mmap(): VM_GROWSDOWN only on private anonymous memory; file and shared mappings say EINVAL.
  if ((flags & MAP_GROWSDOWN) !== 0 && (file !== null || type !== MAP_PRIVATE)) return -EINVAL;

  let vmFlags = vmProtBits(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
  if ((flags & MAP_GROWSDOWN) !== 0) vmFlags |= VM_GROWSDOWN;
  if ((flags & MAP_LOCKED) !== 0) vmFlags |= VM_LOCKED;
  if ((flags & MAP_NORESERVE) !== 0) vmFlags |= VM_NORESERVE;
  if ((flags & MAP_STACK) !== 0) vmFlags |= VM_NOHUGEPAGE;
  if ((flags & MAP_HUGETLB) !== 0) vmFlags |= VM_HUGETLB;
  const shared = type !== MAP_PRIVATE;
  if (file !== null) {
    if (!file.readable) return -EACCES;
    if (shared) {
      if ((prot & PROT_WRITE) !== 0 && !file.writable) return -EACCES;
      vmFlags |= VM_SHARED | VM_MAYSHARE;
      if (!file.writable) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
    }
  } else if (shared) {
    vmFlags |= VM_SHARED | VM_MAYSHARE;
  }
  if (accountable(vmFlags)) vmFlags |= VM_ACCOUNT;

  // Take the lock the policy gives a new mapping, choosing the address under it.
  let guard: MmLockGuard | null;
  if ((flags & MAP_FIXED) !== 0) {
    if (addr % PAGE_SIZE !== 0) return -EINVAL;
    if (addr > TASK_SIZE - len) return -ENOMEM;
    if (addr < MMAP_MIN_ADDR) return -EPERM;
    guard = yield* mm.policy.lockForModify(mm, thread, addr, addr + len);
  } else {
    const placed = yield* mm.policy.lockForMap(mm, thread, len, (m) => m.getUnmappedArea(len, addr, flags, file, vmFlags));
    guard = placed.guard;
    if (placed.addr < 0) {
      if (guard !== null) yield* mm.policy.unlock(guard);
      return placed.addr;
    }
    addr = placed.addr;
  }
  if (guard === null) return -ENOMEM;
  let result: number;
  if ((flags & MAP_FIXED_NOREPLACE) !== 0 && mm.findVmaIntersection(addr, addr + len) !== null) result = -EEXIST;
  else if (mm.mapCount > mm.maxMapCount) result = -ENOMEM;
  else {
    const anonPgoff = file === null && !shared ? addr / PAGE_SIZE : file === null ? 0 : pgoff;
    result = yield* mmapRegion(mm, thread, guard, addr, len, vmFlags, file, anonPgoff);
  }
  yield* mm.policy.unlock(guard);
  const populateWanted = ((flags & MAP_POPULATE) !== 0 && (flags & MAP_NONBLOCK) === 0) || (vmFlags & VM_LOCKED) !== 0;
  if (result >= 0 && populateWanted) yield* populate(task, result, result + len);
  return result;
}

/**
 * `mmap_region()`: map [addr, addr+len) with `vmFlags`: unmap what is there (MAP_FIXED), extend
 * a neighbour when the kernel's merge rules allow, otherwise insert a new VMA and call the
 * file's mmap hook. Returns `addr` or -errno with the address space as it was.
 * Context: `guard` allows modifying [addr, addr+len).
 */
export function* mmapRegion(
  mm: MmStruct,
  thread: SimThread,
  guard: MmLockGuard,
  addr: number,
  len: number,
  vmFlags: number,
  file: MmFile | null,
  pgoff: number,
): MmGen<number> {
  const end = addr + len;
  mm.policy.assertModify(guard, addr, end);
  if (mm.findVmaIntersection(addr, end) !== null) {
    // Replacing needs room for one more VMA when a mapping is cut in three.
    const r = yield* unmapRange(mm, thread, guard, addr, end, false);
    if (r < 0) return r;
  }
  const vmOps = file?.vmOps ?? null;
  const merged = vmaMergeNewRange(mm, addr, end, { flags: vmFlags, file, vmOps, anonVma: null }, pgoff);
  if (merged !== null) return addr;
  const vma = new Vma(addr, end, vmFlags, pgoff, file, null, vmOps);
  mm.insertVmaUnchecked(vma);
  if (vmOps?.open !== undefined) yield* vmOps.open(vma, thread);
  return addr;
}
