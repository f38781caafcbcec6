import type { SimThread } from '../sim/thread.js';
import { populate } from './fault.js';
import type { MmLockGuard } from './lockPolicy.js';
import { rangeAssertCovered, vmaStartWriteRange } from './mmapLock.js';
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
import { MmFile, type MmGen, Vma } from './vma.js';
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
  thread.work('syscallNs');
  // sys_mmap and ksys_mmap_pgoff(): the offset, the fd, hugetlb.
  if (offset % PAGE_SIZE !== 0) return -EINVAL;
  let file: MmFile | null = null;
  if ((flags & MAP_ANONYMOUS) === 0) {
    file = mm.files.get(fd) ?? null;
    if (file === null) return -EBADF;
  } else if ((flags & MAP_HUGETLB) !== 0) return -ENOMEM; // no hugetlb pages reserved
  // do_mmap(), in its order: every check below returns where the kernel's does, so when two
  // errors apply the model gives the same one.
  if (len === 0) return -EINVAL;
  // MAP_FIXED_NOREPLACE is MAP_FIXED for placement: its address is never rounded as a hint.
  if ((flags & MAP_FIXED_NOREPLACE) !== 0) flags |= MAP_FIXED;
  const fixed = (flags & MAP_FIXED) !== 0;
  if (!fixed) addr = roundHintToMin(addr);
  len = pageAlign(len);
  if (len === 0) return -ENOMEM;
  const pgoff = offset / PAGE_SIZE;
  if (pgoff + len / PAGE_SIZE > Number.MAX_SAFE_INTEGER) return -EOVERFLOW;
  let vmFlags = vmProtBits(prot) | vmFlagBits(flags) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;

  // Under the lock: the map count, then the address (get_unmapped_area and its checks).
  const place = (m: MmStruct): number => {
    if (m.mapCount > m.maxMapCount) return -ENOMEM;
    if (len > TASK_SIZE) return -ENOMEM;
    if (!fixed) return m.getUnmappedArea(len, addr, flags, file, vmFlags);
    if (addr > TASK_SIZE - len) return -ENOMEM;
    if (addr % PAGE_SIZE !== 0) return -EINVAL;
    if (addr < MMAP_MIN_ADDR) return -EPERM;
    return addr;
  };
  const fixedRangeOk = fixed && len <= TASK_SIZE && addr <= TASK_SIZE - len && addr % PAGE_SIZE === 0 && addr >= MMAP_MIN_ADDR;
  let guard: MmLockGuard | null;
  if (fixedRangeOk) {
    guard = yield* mm.policy.lockForModify(mm, thread, addr, addr + len);
    const r = place(mm);
    if (r < 0) {
      yield* mm.policy.unlock(guard);
      return r;
    }
  } else {
    const placed = yield* mm.policy.lockForMap(mm, thread, len, place);
    guard = placed.guard;
    if (placed.addr < 0) {
      if (guard !== null) yield* mm.policy.unlock(guard);
      return placed.addr;
    }
    addr = placed.addr;
  }
  if (guard === null) return -ENOMEM;
  let result: number;
  const checked =
    (flags & MAP_FIXED_NOREPLACE) !== 0 && mm.findVmaIntersection(addr, addr + len) !== null ? -EEXIST : mapTypeChecks(flags, prot, file, vmFlags);
  if (checked < 0) result = checked;
  else {
    vmFlags = checked;
    if (accountable(vmFlags)) vmFlags |= VM_ACCOUNT;
    const shared = (vmFlags & VM_MAYSHARE) !== 0;
    // Shared anonymous memory is a shmem file of its own, at offset 0; private anonymous memory
    // takes its address as pgoff (for anon_vma merging).
    const backing = file ?? (shared ? MmFile.anonShared(++mm.anonSharedFiles) : null);
    const regionPgoff = file !== null ? pgoff : shared ? 0 : addr / PAGE_SIZE;
    result = yield* mmapRegion(mm, thread, guard, addr, len, vmFlags, backing, regionPgoff);
  }
  yield* mm.policy.unlock(guard);
  const populateWanted = ((flags & MAP_POPULATE) !== 0 && (flags & MAP_NONBLOCK) === 0) || (vmFlags & VM_LOCKED) !== 0;
  if (result >= 0 && populateWanted) yield* populate(task, result, result + len);
  return result;
}

/** `round_hint_to_min()`: a hint below mmap_min_addr becomes mmap_min_addr. */
function roundHintToMin(hint: number): number {
  hint = Math.floor(hint / PAGE_SIZE) * PAGE_SIZE;
  return hint !== 0 && hint < MMAP_MIN_ADDR ? pageAlign(MMAP_MIN_ADDR) : hint;
}

/** `calc_vm_flag_bits()` plus the flags do_mmap adds from the map flags. */
function vmFlagBits(flags: number): number {
  let vmFlags = 0;
  if ((flags & MAP_GROWSDOWN) !== 0) vmFlags |= VM_GROWSDOWN;
  if ((flags & MAP_LOCKED) !== 0) vmFlags |= VM_LOCKED;
  if ((flags & MAP_NORESERVE) !== 0) vmFlags |= VM_NORESERVE;
  if ((flags & MAP_STACK) !== 0) vmFlags |= VM_NOHUGEPAGE;
  if ((flags & MAP_HUGETLB) !== 0) vmFlags |= VM_HUGETLB;
  return vmFlags;
}

/**
 * The map-type switch of `do_mmap()`: for a file, MAP_SHARED drops unknown flags,
 * MAP_SHARED_VALIDATE refuses them (EOPNOTSUPP), a writable shared mapping needs a writable file
 * (EACCES), every file mapping needs a readable one (EACCES) and no VM_GROWSDOWN (EINVAL); for
 * anonymous memory only MAP_SHARED (no VM_GROWSDOWN) and MAP_PRIVATE exist. Returns the final
 * vm_flags, or -errno (vm_flags are positive: bit 31 is never set).
 */
function mapTypeChecks(flags: number, prot: number, file: MmFile | null, vmFlags: number): number {
  const type = flags & MAP_TYPE;
  if (file !== null) {
    if (type === MAP_SHARED || type === MAP_SHARED_VALIDATE) {
      if (type === MAP_SHARED_VALIDATE && (flags & ~KNOWN_MAP_FLAGS) !== 0) return -EOPNOTSUPP;
      if ((prot & PROT_WRITE) !== 0 && !file.writable) return -EACCES;
      vmFlags |= VM_SHARED | VM_MAYSHARE;
      if (!file.writable) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
    } else if (type !== MAP_PRIVATE) return -EINVAL;
    if (!file.readable) return -EACCES;
    if ((vmFlags & VM_GROWSDOWN) !== 0) return -EINVAL;
    return vmFlags;
  }
  if (type === MAP_SHARED) {
    if ((vmFlags & VM_GROWSDOWN) !== 0) return -EINVAL;
    return vmFlags | VM_SHARED | VM_MAYSHARE;
  }
  if (type === MAP_PRIVATE) return vmFlags;
  return -EINVAL;
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
  rangeAssertCovered(guard, addr, end, 'mmap_region changes the VMAs of its range');
  if (mm.findVmaIntersection(addr, end) !== null) {
    // Replacing needs room for one more VMA when a mapping is cut in three.
    const r = yield* unmapRange(mm, thread, guard, addr, end, false);
    if (r < 0) return r;
  }
  // A merge may grow the VMA ending at addr or the one starting at end.
  yield* vmaStartWriteRange(guard, addr, end, true);
  const vmOps = file?.vmOps ?? null;
  thread.work('vmaUpdateNs');
  const merged = vmaMergeNewRange(mm, addr, end, { flags: vmFlags, file, vmOps, anonVma: null }, pgoff);
  if (merged !== null) return addr;
  const vma = new Vma(addr, end, vmFlags, pgoff, file, null, vmOps);
  mm.insertVmaUnchecked(vma);
  if (vmOps?.open !== undefined) yield* vmOps.open(vma, thread);
  return addr;
}
