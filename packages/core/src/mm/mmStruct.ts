import { RwSemaphore } from '../sim/rwSemaphore.js';
import type { ArchHooks, MmuNotifier } from '../subsys/subsystem.js';
import type { LockPolicy } from './lockPolicy.js';
import { PageTables } from './pageTables.js';
import { DEFAULT_MAX_MAP_COUNT, ENOMEM, HPAGE_PMD_SIZE, MAP_FIXED, MAP_SHARED, MMAP_MIN_ADDR, PAGE_SIZE, TASK_SIZE } from './uapi.js';
import { vmaAssertWriteLocked } from './mmapLock.js';
import { type MmFile, type Vma, vmEndGap, vmStartGap } from './vma.js';
import { VmaTree } from './vmaTree.js';

/** The lowest gap `get_unmapped_area` leaves below the stack (`MIN_GAP`, 128 MiB). */
export const MMAP_MIN_GAP = 128 * 1024 * 1024;
/** `TASK_UNMAPPED_BASE` for the bottom-up fallback (x86-64: TASK_SIZE / 3, page-aligned). */
export const TASK_UNMAPPED_BASE = Math.floor(TASK_SIZE / 3 / PAGE_SIZE) * PAGE_SIZE;

/**
 * Hooks a lock policy may attach to an mm to keep its per-VMA state right as the mm splits,
 * merges, inserts and removes VMAs (R7: a split VMA inherits its range lock).
 */
export interface VmaEvents {
  /** `vma` was split; `created` is the new part (it copied `vma`'s fields). */
  split?(vma: Vma, created: Vma): void;
  /** `removed` merged into `survivor` and left the tree. */
  merged?(survivor: Vma, removed: Vma): void;
  /** `vma` entered the tree. */
  inserted?(vma: Vma): void;
  /** `vma` was unmapped (after its cleanup began: zap, `vm_ops->close`). */
  removed?(vma: Vma): void;
  /** `vma` (a VMA or a dummy) was taken out of the tree, for any reason (unmap, merge, exit). */
  erased?(vma: Vma): void;
  /**
   * A VMA is about to be inserted over, or grown over, [start, end) (the range was free of
   * visible VMAs): a range-lock policy moves its own dummy VMAs out of the way (R3).
   */
  occupying?(start: number, end: number): void;
}

/** Layout and limits of a new mm. */
export interface MmLayout {
  /** Top of the top-down mmap area (`mm->mmap_base`). */
  readonly mmapBase?: number;
  /** `vm.max_map_count`. */
  readonly maxMapCount?: number;
  /** `mm->start_brk` (the end of the data segment). */
  readonly startBrk?: number;
  /** `mm->start_stack`. */
  readonly startStack?: number;
}

/**
 * A process address space (`struct mm_struct`).
 *
 * Lock rules (global-rwsem; docs/locking.md has every policy): the VMA tree, `mapCount`,
 * `totalVm`, `brk` are written under mmap_sem write and read under mmap_sem read; page tables
 * under mmap_sem read plus their PTE locks (install: `page_table_lock`).
 */
export class MmStruct {
  /**
   * The VMAs (and dummy VMAs) by address. Written under: the policy's modify lock of the range
   * (global-rwsem: mmap_sem write). Read under: its read side. One change is one atomic step
   * (the maple tree's own lock and RCU, not modelled further).
   */
  readonly tree: VmaTree<Vma>;
  /** `mmap_lock`, called mmap_sem before Linux 5.8. */
  readonly mmapSem: RwSemaphore;
  readonly pageTables: PageTables;
  /**
   * Visible VMAs (`map_count`). Written under: the policy's modify lock (global-rwsem: mmap_sem
   * write; vma-range, range-lock 'fine': writers of disjoint ranges update it concurrently, which
   * the kernel would need an atomic for).
   */
  mapCount = 0;
  /** Pages mapped (`total_vm`). Written under: as `mapCount`. */
  totalVm = 0;
  /** Dummy VMAs in the tree (range-lock policies). */
  dummyCount = 0;
  /** `mm_lock_seq`: bumped when mmap_sem write is released (or downgraded, per-vma); per-vma compares VMAs' `vmLockSeq` with it. */
  mmLockSeq = 0;
  readonly mmapBase: number;
  readonly maxMapCount: number;
  /** `start_brk`, `brk`: the heap. Written under: brk's modify lock over the heap (global-rwsem: mmap_sem write). */
  startBrk: number;
  brk: number;
  startStack: number;
  /** The process's open files by fd (the mm model keeps the fd table it needs). */
  readonly files = new Map<number, MmFile>();
  /** A policy's per-mm state. */
  policyState: unknown = null;
  /** Hooks of the policy (set by `LockPolicy.attach`). */
  events: VmaEvents = {};
  /** Secondary MMUs told of page-table invalidations (`mm->notifier_subscriptions`). Registered by subsystems at attach. */
  readonly mmuNotifiers: MmuNotifier[] = [];
  /** Arch hooks on unmap (`arch_unmap`). Registered by subsystems at attach. */
  readonly archHooks: ArchHooks[] = [];
  /** Shared anonymous mappings made so far (their shmem files' numbers). */
  anonSharedFiles = 0;
  /** The gate VMA (`[vsyscall]`), outside the user address space and the tree. */
  gateVma: Vma | null = null;
  /** Set once the mm has been torn down by exit. */
  dead = false;
  /** `/sys/kernel/mm/transparent_hugepage/enabled`: THP on faults always, in VM_HUGEPAGE VMAs, or never. */
  thp: 'always' | 'madvise' | 'never' = 'madvise';
  /** How often each held-lock assertion was evaluated on this mm. */
  readonly assertionCounts: Record<string, number> = {};
  /** Faults handled, by outcome (for reports). */
  readonly faultCounts = { anon: 0, file: 0, cow: 0, huge: 0, stackGrowth: 0, sigsegv: 0, sigbus: 0 };

  constructor(
    /** The owning process (`tgid`), for names and maps. */
    readonly pid: number,
    readonly policy: LockPolicy,
    layout: MmLayout = {},
  ) {
    this.mmapBase = layout.mmapBase ?? TASK_SIZE - MMAP_MIN_GAP;
    this.maxMapCount = layout.maxMapCount ?? DEFAULT_MAX_MAP_COUNT;
    this.startBrk = this.brk = layout.startBrk ?? 0x555555559000;
    this.startStack = layout.startStack ?? TASK_SIZE - 0x21000;
    this.tree = new VmaTree<Vma>({ lowLimit: MMAP_MIN_ADDR, highLimit: TASK_SIZE, startGap: vmStartGap, endGap: vmEndGap });
    this.mmapSem = new RwSemaphore(`mm${pid}.mmap_sem`);
    this.pageTables = new PageTables(`mm${pid}`);
    policy.attach(this);
  }

  // --- lookups: dummy VMAs are never visible ---

  /** `find_vma()`: the first visible VMA with end > addr, or null. */
  findVma(addr: number): Vma | null {
    let v = this.tree.find(addr);
    // Without dummies (every policy but the range-lock ones) the tree's answer is the answer:
    // no need to touch the VMA, which for a large mm is a cache miss of its own.
    if (this.dummyCount === 0) return v;
    while (v !== null && v.dummy) v = this.tree.next(v);
    return v;
  }

  /** `vma_lookup()`: the visible VMA containing addr, or null. */
  vmaLookup(addr: number): Vma | null {
    const v = this.tree.lookup(addr);
    return v === null || v.dummy ? null : v;
  }

  /** `find_vma_intersection()`: the first visible VMA intersecting [start, end), or null. */
  findVmaIntersection(start: number, end: number): Vma | null {
    const v = this.findVma(start);
    return v !== null && v.start < end ? v : null;
  }

  /** The visible VMA before `vma` (adjacent in the tree, or null if a dummy or nothing is there). */
  prevVma(vma: Vma): Vma | null {
    let v = this.tree.prev(vma);
    while (v !== null && v.dummy) v = this.tree.prev(v);
    return v;
  }

  nextVma(vma: Vma): Vma | null {
    let v = this.tree.next(vma);
    while (v !== null && v.dummy) v = this.tree.next(v);
    return v;
  }

  /** The last visible VMA starting below `addr` (`find_vma_prev`'s prev), or null. */
  findVmaPrev(addr: number): Vma | null {
    let v = this.tree.findPrev(addr);
    while (v !== null && v.dummy) v = this.tree.prev(v);
    return v;
  }

  /** Visible VMAs in address order (with end > from). */
  *vmas(from = 0): Generator<Vma> {
    for (const v of this.tree.entries(from)) if (!v.dummy) yield v;
  }

  /** Visible VMAs intersecting [start, end), in order, as an array (safe to modify the tree after). */
  vmasIn(start: number, end: number): Vma[] {
    const out: Vma[] = [];
    for (const v of this.tree.entries(start)) {
      if (v.start >= end) break;
      if (!v.dummy) out.push(v);
    }
    return out;
  }

  // --- tree updates (unchecked: the caller holds what the policy requires) ---

  /** Insert a VMA into the tree and account it (a new VMA: nobody can hold a lock on it yet). */
  insertVmaUnchecked(vma: Vma): void {
    if (!vma.dummy && this.dummyCount > 0) this.events.occupying?.(vma.start, vma.end);
    this.tree.insert(vma);
    vma.detached = false;
    if (vma.dummy) this.dummyCount++;
    else {
      this.mapCount++;
      this.totalVm += vma.pages;
    }
    this.events.inserted?.(vma);
  }

  /** Remove a VMA from the tree and unaccount it. Context: `vma` is write-locked (a dummy: by its policy). */
  eraseVmaUnchecked(vma: Vma): void {
    if (!vma.dummy) vmaAssertWriteLocked(this, vma, 'a VMA leaves the tree');
    this.tree.erase(vma);
    vma.detached = true;
    if (vma.dummy) this.dummyCount--;
    else {
      this.mapCount--;
      this.totalVm -= vma.pages;
    }
    this.events.erased?.(vma);
  }

  /** Change a VMA's range in place (`vma_set_range`), keeping the tree's gaps right. Context: `vma` is write-locked. */
  setVmaRangeUnchecked(vma: Vma, start: number, end: number, pgoff: number): void {
    if (!vma.dummy) {
      vmaAssertWriteLocked(this, vma, 'a VMA changes its range');
      if (this.dummyCount > 0) this.#occupy(vma, start, end);
    }
    this.#setRange(vma, start, end, pgoff);
  }

  /**
   * Stack growth (`expand_downwards`): `vma` grows down to `start`. Context: the fault's guard
   * plus what `LockPolicy.beginStackGrowth` took (R9), not a write lock on the VMA.
   */
  growStackUnchecked(vma: Vma, start: number): void {
    const pgoff = vma.pgoff - (vma.start - start) / PAGE_SIZE;
    if (this.dummyCount > 0) this.#occupy(vma, start, vma.end);
    this.#setRange(vma, start, vma.end, pgoff);
  }

  /** The parts of [start, end) that `vma` does not cover yet are about to be occupied by it. */
  #occupy(vma: Vma, start: number, end: number): void {
    if (start < vma.start) this.events.occupying?.(start, Math.min(end, vma.start));
    if (end > vma.end) this.events.occupying?.(Math.max(start, vma.end), end);
  }

  #setRange(vma: Vma, start: number, end: number, pgoff: number): void {
    const oldStart = vma.start;
    const oldPages = vma.pages;
    vma.start = start;
    vma.end = end;
    vma.pgoff = pgoff;
    this.tree.adjusted(vma, oldStart);
    if (!vma.dummy) this.totalVm += vma.pages - oldPages;
  }

  // --- get_unmapped_area ---

  /**
   * `get_unmapped_area()` for a new mapping of `len` bytes (x86-64 top-down layout): a hint that
   * fits is taken as is; otherwise the highest free area below `mmapBase`, falling back to
   * bottom-up from `TASK_UNMAPPED_BASE`. A private anonymous mapping whose length is a multiple
   * of 2 MiB, without a hint, is PMD-aligned (`thp_get_unmapped_area`, Linux 6.x); a shared
   * anonymous one takes the shmem path, unaligned. `_vmFlags` is the kernel's `vm_flags`
   * argument, which x86-64's placement does not use. Returns the address, or -ENOMEM.
   * Context: the caller holds what the policy requires to map.
   */
  getUnmappedArea(len: number, hint: number, flags: number, file: MmFile | null, _vmFlags: number): number {
    if (len > TASK_SIZE - MMAP_MIN_ADDR) return -ENOMEM;
    if ((flags & MAP_FIXED) !== 0) return hint;
    if (hint !== 0) {
      const addr = Math.ceil(hint / PAGE_SIZE) * PAGE_SIZE;
      if (TASK_SIZE - len >= addr && addr >= MMAP_MIN_ADDR && this.#fits(addr, len)) return addr;
    }
    let alignMask = 0;
    const alignOffset = 0;
    if (file === null && (flags & MAP_SHARED) === 0 && len % HPAGE_PMD_SIZE === 0 && hint === 0) {
      // thp_get_unmapped_area(): anonymous PMD-multiple mappings start on a PMD boundary.
      alignMask = HPAGE_PMD_SIZE - 1;
    }
    const topDown = this.tree.unmappedArea({
      length: len,
      low: Math.max(PAGE_SIZE, MMAP_MIN_ADDR),
      high: this.mmapBase,
      alignMask,
      alignOffset,
      topDown: true,
    });
    if (topDown >= 0) return topDown;
    const bottomUp = this.tree.unmappedArea({ length: len, low: TASK_UNMAPPED_BASE, high: TASK_SIZE, alignMask, alignOffset, topDown: false });
    if (bottomUp >= 0) return bottomUp;
    return -ENOMEM;
  }

  /** True when [addr, addr+len) is free, respecting the guard gaps of its neighbours. */
  #fits(addr: number, len: number): boolean {
    const next = this.tree.find(addr);
    const prev = next === null ? this.tree.last() : this.tree.prev(next);
    if (next !== null && addr + len > vmStartGap(next)) return false;
    if (prev !== null && addr < vmEndGap(prev)) return false;
    return true;
  }
}
