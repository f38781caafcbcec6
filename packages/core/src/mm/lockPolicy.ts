import type { SimThread } from '../sim/thread.js';
import type { MmStruct } from './mmStruct.js';
import type { MmGen, Vma } from './vma.js';

/**
 * What a lock policy hands an operation: the locks it now holds. Only the policy reads
 * `state`; operations pass the guard back to `downgrade`, `unlock` and the assertions.
 */
export interface MmLockGuard {
  readonly mm: MmStruct;
  readonly thread: SimThread;
  /** The range the guard covers for modification (write) or stability (read). */
  readonly start: number;
  readonly end: number;
  /** write: the range may be modified; read: VMAs in it are stable. */
  mode: 'read' | 'write';
  /** The policy's own record of what it took. */
  state: unknown;
}

/** The call sites at which subsystem hooks run; a policy says what each runs under. */
export type HookSite =
  | 'fault'
  | 'pageMkwrite'
  | 'vmaOpen'
  | 'vmaClose'
  | 'vmaMremap'
  | 'fileMmap'
  | 'mmapRegion'
  | 'munmapRegion'
  | 'archUnmap'
  | 'mprotectFixup'
  | 'mremapMove'
  | 'fork'
  | 'exit'
  | 'gup'
  | 'stackGrowth';

/** One lock a hook site runs under. */
export interface ProvidedLock {
  readonly lock: 'mmap_sem' | 'vma_lock' | 'vm_area_lock' | 'range_lock' | 'page_table_lock' | 'pte_lock';
  readonly mode: 'read' | 'write';
}

/**
 * The one seam between mm operations and locking. Every mm operation is written once against
 * this interface; a policy decides what "stabilise", "lock for modification" and so on take.
 *
 * Every request is a generator (it may sleep: yield lock effects) and returns a guard.
 * Context for all of them: process context, may sleep, the caller holds no mm lock unless said.
 */
export interface LockPolicy {
  readonly name: string;

  /** Set up the per-mm state of this policy; called once when the mm is created. */
  attach(mm: MmStruct): void;

  /**
   * Page fault at `addr`: afterwards the VMA containing `addr` (if any) cannot change or go
   * away until unlock, and neither can its neighbour below (stack growth reads it). Hooks run
   * under `provides('fault')`. `retry`: an earlier attempt under a speculative guard was
   * aborted by `revalidateFault` (spf); the policy must now take a lock that cannot abort.
   */
  lockForFault(mm: MmStruct, thread: SimThread, addr: number, retry?: boolean): MmGen<MmLockGuard>;

  /**
   * A speculative fault (spf) is about to install its page: called under the PTE lock (or
   * `page_table_lock` for a huge PMD) just before the page-table update. True: go on. False:
   * the VMA or the page table changed since `lockForFault`; the fault installs nothing, unlocks
   * and calls `lockForFault(..., retry = true)`. Policies without speculation need not define it.
   */
  revalidateFault?(guard: MmLockGuard): boolean;

  /** Read-side work over [start, end) (madvise(DONTNEED), get_user_pages): VMAs there are stable. */
  lockForRead(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<MmLockGuard>;

  /**
   * Modify [start, end) (munmap, mprotect, madvise flags, brk, MAP_FIXED mmap): the VMAs in it
   * and the neighbours a merge may touch can be split, merged, changed or removed.
   */
  lockForModify(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<MmLockGuard>;

  /**
   * Map a new area somewhere: `place(mm)` computes the address (or -errno) under the lock, and
   * the returned guard covers [addr, addr + length) for modification.
   */
  lockForMap(mm: MmStruct, thread: SimThread, length: number, place: (mm: MmStruct) => number): MmGen<{ guard: MmLockGuard | null; addr: number }>;

  /** mremap of [oldStart, oldEnd): the source, the space after it, and any target. */
  lockForRemap(mm: MmStruct, thread: SimThread, oldStart: number, oldEnd: number): MmGen<MmLockGuard>;

  /** The whole address space: fork (the parent, read for 'read'), exit, /proc/pid/maps. */
  lockAll(mm: MmStruct, thread: SimThread, mode: 'read' | 'write'): MmGen<MmLockGuard>;

  /**
   * About to change or remove `vma` (its range, flags, anon_vma) under the write guard `guard`:
   * per-vma takes the VMA's write lock here (`vma_start_write`, waiting for its readers).
   * Operations call it, through `vmaStartWriteRange`, on every VMA they may touch, before the
   * first change. Policies whose guard already excludes the VMA's readers need not define it.
   */
  vmaStartWrite?(guard: MmLockGuard, vma: Vma): MmGen<void>;

  /**
   * mremap (R5): extend the write guard to [start, end) as well (the move's target). A policy
   * that locks in address order may release the source to take a lower target first, then
   * retake and revalidate it: false means the source changed meanwhile, the caller must unlock
   * and start the mremap over. Policies whose guard already covers everything need not define it.
   */
  lockTarget?(guard: MmLockGuard, start: number, end: number): MmGen<boolean>;

  /**
   * unmap (R6): the VMAs of [start, end) were detached from the tree; their cleanup (zap,
   * `vm_ops->close`) follows under the guard. A range-lock policy keeps the range occupied (a
   * dummy VMA) so nobody maps it again until `unlock`. Called in the same step as the detach.
   */
  afterDetach?(guard: MmLockGuard, start: number, end: number): void;

  /** Is `vma` write-locked now (`vma_assert_write_locked`): nobody else can read or change it? */
  isVmaWriteLocked(mm: MmStruct, vma: Vma): boolean;

  /** Is `vma` stable under `guard` (`vma_assert_locked`): read- or write-locked by its holder? */
  isVmaLocked(guard: MmLockGuard, vma: Vma): boolean;

  /**
   * What a legacy `mmap_read_lock()` / `mmap_write_lock()` call in subsystem code gets under this
   * policy (R12: code that leans on mmap_sem). The default (undefined) is `lockAll(mode)`.
   * `vma-range` has no mmap_sem: null, the call protects nothing. `per-vma` and `hybrid`: mmap_sem
   * alone, as the kernel's call — it excludes neither VMA-locked faults nor range-locked work.
   * Released with `unlock`.
   */
  legacyLock?(mm: MmStruct, thread: SimThread, mode: 'read' | 'write'): MmGen<MmLockGuard | null>;

  /** Relax a write guard to read (munmap's zap, R10). */
  downgrade(guard: MmLockGuard): MmGen<void>;

  /** Release everything the guard holds. */
  unlock(guard: MmLockGuard): MmGen<void>;

  /**
   * Stack growth of `vma` down to `newStart` under a fault guard (R9): take what makes the
   * growth safe against other faults and returns true, or false when it may not grow there.
   * `endStackGrowth` releases it.
   */
  beginStackGrowth(guard: MmLockGuard, newStart: number): MmGen<boolean>;
  endStackGrowth(guard: MmLockGuard): MmGen<void>;

  /** What hooks at `site` run under (for the static check of declared assumptions). */
  provides(site: HookSite): readonly ProvidedLock[];

  /** Assert the guard allows modifying [start, end); throws with a reason otherwise. */
  assertModify(guard: MmLockGuard, start: number, end: number): void;

  /** Assert the VMA at `addr` is stable under the guard. */
  assertStable(guard: MmLockGuard, addr: number): void;
}
