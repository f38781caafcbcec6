import {
  HPAGE_PMD_SIZE,
  MADV_DONTNEED,
  type MmGen,
  type MmLockGuard,
  type MmStruct,
  type MmTask,
  PAGE_SIZE,
  Page,
  type Prng,
  SharedLocation,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemKind,
  type SubsystemProcess,
  type SubsystemVariant,
  VM_WRITE,
  type Vma,
  assumes,
  handleMmFault,
  invalidateRangeEnd,
  invalidateRangeStart,
  mmapLegacyLock,
  mmapLegacyUnlock,
  runMmOp,
  sysMadvise,
  sysMunmap,
  vmaAssertWriteLocked,
  vmaStartWriteRange,
} from '@vmalock/core';
import { type ExerciseSpawn, spawnCalls } from '../exercise.js';
import { HPAGE_PMD_NR, mapHugepageAreas, mprotectReadOnly, pmdBase, randomAreaPage, thpSuitable } from './hugepageOps.js';

/** Scan passes of one khugepaged wake-up look at most this many PMDs (`khugepaged_pages_to_scan` / 512). */
const PMDS_TO_SCAN_MAX = 8;

/** The per-mm state of khugepaged (`struct khugepaged_mm_slot` and `khugepaged_scan`). */
interface MmSlot {
  readonly mm: MmStruct;
  /** `khugepaged_scan.address`: where the next scan pass starts (0: from the lowest VMA). */
  readonly scanAddress: SharedLocation<number>;
  /**
   * The PMDs whose collapse is in flight (their PTE tables flushed, their THPs not yet
   * installed): checker state, changed atomically. Collapses of different PMDs may overlap
   * (khugepaged and MADV_COLLAPSE, each under its own PMD's lock); two of one PMD may not.
   */
  readonly collapsing: SharedLocation<ReadonlySet<number>>;
  /** Collapses done (`THP_COLLAPSE_ALLOC` that succeeded). */
  readonly collapsed: SharedLocation<number>;
  /** Collapses given up because `hugepage_vma_revalidate` or the PMD check failed after retaking the lock. */
  readonly revalidateFailed: SharedLocation<number>;
  /** Full passes over the address space (`khugepaged_full_scans`). */
  readonly fullScans: SharedLocation<number>;
}

/** A PMD the scan found worth collapsing: the VMA it saw and the PMD's base. */
interface Candidate {
  readonly vma: Vma;
  readonly base: number;
}

/**
 * khugepaged: collapses 4 KiB pages of MADV_HUGEPAGE anonymous memory into THPs, modelled on
 * mm/khugepaged.c. `khugepaged_scan_mm_slot()` walks the VMAs from `khugepaged_scan.address`
 * under `mmap_read_lock()`; `hpage_collapse_scan_pmd()` checks a PMD's PTEs under the PTE lock;
 * `collapse_huge_page()` drops mmap_sem, allocates the THP (`alloc_charge_folio`: 512 pages to
 * zero), retakes the lock for write, revalidates (`hugepage_vma_revalidate`, `find_pmd_or_thp_or_none`),
 * flushes the PTE table out of the PMD (`pmdp_collapse_flush` under the PMD lock), copies the
 * pages (`__collapse_huge_page_copy`), and installs the huge PMD under the PMD lock after
 * `BUG_ON(!pmd_none(*pmd))`. `madvise(MADV_COLLAPSE)` (`madvise_collapse`) runs the same collapse
 * from a user thread.
 *
 * - legacy: scan under `mmapLegacyLock(read)`, collapse under `mmapLegacyLock(write)`, and no
 *   `vma_start_write()`: mmap_sem write keeps page faults out of the PMD only because faults
 *   take mmap_sem read. That is the bug of Linux 6.4's per-VMA locks (fixed by the
 *   `vma_start_write()` in `collapse_huge_page()`): a fault under its VMA lock finds the PMD
 *   flushed, maps a page there, and the collapse hits the BUG_ON. Under vma-range the legacy lock
 *   is nothing at all, and munmap, mprotect and DONTNEED race with the collapse too.
 * - converted: the scan takes the policy's read-side lock of each PMD it looks at; the collapse
 *   takes the policy's modify lock over the PMD (`lockForModify`), `vma_start_write()`s the VMA,
 *   revalidates it (the same VMA object, still covering the PMD, THP-suitable, not detached) and
 *   the PMD (still a PTE table), then collapses.
 *
 * Invariants (`checkInvariants`): a huge PMD lies inside one VMA whose flags allow a THP; no PMD
 * is both a PTE table and huge; MM_ANONPAGES matches the pages mapped; no collapse is in flight at
 * a quiescent point. `drive` is a user thread: write faults, partial munmap and mprotect,
 * madvise(DONTNEED) and madvise(MADV_COLLAPSE) in `HUGEPAGE_AREAS`; `scanPass` is one wake-up of
 * the khugepaged kernel thread.
 */
abstract class Khugepaged implements Subsystem {
  readonly name: string = 'khugepaged';
  readonly kind: SubsystemKind = 'hugepage';
  abstract readonly variant: SubsystemVariant;
  readonly summary: string =
    'mm/khugepaged.c: khugepaged_scan_mm_slot under mmap_read_lock, collapse_huge_page drops it, allocates, retakes it for write, revalidates and collapses the PMD';
  readonly hookCounts: Record<string, number> = { khugepagedScan: 0, collapseHugePage: 0, madviseCollapse: 0 };
  readonly #slots = new Map<number, MmSlot>();

  attach(proc: SubsystemProcess): void {
    if (this.#slots.has(proc.pid)) throw new Error(`${this.name}: pid ${proc.pid} attached twice`);
    const loc = <T>(field: string, value: T): SharedLocation<T> => new SharedLocation<T>(`${this.name}.mm${proc.pid}.${field}`, value, this.name);
    this.#slots.set(proc.pid, {
      mm: proc.mm,
      scanAddress: loc('scanAddress', 0),
      collapsing: loc<ReadonlySet<number>>('collapsing', new Set()),
      collapsed: loc('collapsed', 0),
      revalidateFailed: loc('revalidateFailed', 0),
      fullScans: loc('fullScans', 0),
    });
  }

  /** One user-thread operation on the areas: a write fault, partial munmap/mprotect, DONTNEED or MADV_COLLAPSE. */
  *drive(task: MmTask, rng: Prng): MmGen<void> {
    const addr = randomAreaPage(rng);
    const pages = rng.int(1, 4);
    switch (rng.int(0, 9)) {
      case 0:
        yield* sysMunmap(task, addr, pages * PAGE_SIZE);
        return;
      case 1:
        yield* mprotectReadOnly(task, addr, addr + pages * PAGE_SIZE);
        return;
      case 2:
        yield* sysMadvise(task, addr, pages * PAGE_SIZE, MADV_DONTNEED);
        return;
      case 3:
        yield* this.madviseCollapse(task, addr);
        return;
      default:
        yield* handleMmFault(task, addr, 'write');
    }
  }

  /**
   * flag's workload: the areas mapped with 2 pages of every PMD faulted in before
   * MADV_HUGEPAGE (set up first), then the khugepaged kernel thread making 4 scan passes while
   * two user threads drive the areas 4 times each: a collapse races their faults, unmaps,
   * mprotects and DONTNEEDs.
   */
  exercise(proc: SubsystemProcess, spawn: ExerciseSpawn): void {
    runMmOp(proc.mm, (task) => mapHugepageAreas(task, 2), 'khugepaged-setup');
    spawnCalls(spawn, 'khugepaged', 4, (task) => this.scanPass(task));
    for (let t = 0; t < 2; t++) spawnCalls(spawn, `khugepaged-user${t}`, 4, (task, rng) => this.drive(task, rng));
  }

  /**
   * One wake-up of the khugepaged kernel thread (`khugepaged_do_scan` on this mm): find the next
   * PMD worth collapsing from the scan cursor, and collapse it. Returns true when it collapsed one.
   */
  /** The khugepaged kernel thread's pass, for workloads that run it beside the user threads. */
  *daemon(task: MmTask, _rng: Prng): MmGen<void> {
    yield* this.scanPass(task);
  }

  *scanPass(task: MmTask): MmGen<boolean> {
    const slot = this.#slot(task.mm);
    this.hookCounts['khugepagedScan']!++;
    const found = yield* this.scanMmSlot(task, slot);
    if (found === null) return false;
    return yield* this.collapseHugePage(task, slot, found);
  }

  /** `madvise(addr, 2 MiB, MADV_COLLAPSE)` of the PMD holding `addr`: the collapse, synchronously, if the PMD qualifies. */
  *madviseCollapse(task: MmTask, addr: number): MmGen<boolean> {
    const slot = this.#slot(task.mm);
    this.hookCounts['madviseCollapse']!++;
    const base = pmdBase(addr);
    const vma = task.mm.vmaLookup(base);
    if (vma === null || !thpSuitable(task.mm, vma, base)) return false;
    return yield* this.collapseHugePage(task, slot, { vma, base });
  }

  /** Find the next candidate PMD from the cursor and move the cursor past it (the variant's locking). */
  protected abstract scanMmSlot(task: MmTask, slot: MmSlot): MmGen<Candidate | null>;

  /** `collapse_huge_page()` of a candidate the scan found (the variant's locking). */
  protected abstract collapseHugePage(task: MmTask, slot: MmSlot, c: Candidate): MmGen<boolean>;

  /**
   * The first PMD at or above `from` in a THP-suitable VMA whose PMD is a PTE table with a
   * present page (`max_ptes_none` = 511), looking at most at `PMDS_TO_SCAN_MAX` PMDs.
   * Context: the caller holds what keeps the VMAs it reads stable (or, legacy under vma-range, nothing).
   */
  protected findCandidate(mm: MmStruct, from: number): { found: Candidate | null; next: number } {
    let looked = 0;
    for (const vma of mm.vmas(from)) {
      for (let base = Math.max(pmdBase(vma.start + HPAGE_PMD_SIZE - 1), pmdBase(from)); base + HPAGE_PMD_SIZE <= vma.end; base += HPAGE_PMD_SIZE) {
        if (++looked > PMDS_TO_SCAN_MAX) return { found: null, next: base };
        if (!thpSuitable(mm, vma, base)) continue;
        const pmd = mm.pageTables.pmd(base);
        if (pmd?.pte != null && pmd.pte.present > 0) return { found: { vma, base }, next: base + HPAGE_PMD_SIZE };
      }
    }
    return { found: null, next: 0 };
  }

  /** `hpage_collapse_scan_pmd()`: count the present PTEs under the PTE lock. Context: as `findCandidate`. */
  protected *scanPmd(mm: MmStruct, base: number): MmGen<number> {
    const table = mm.pageTables.pmd(base)?.pte ?? null;
    if (table === null) return 0;
    yield table.ptl.lock();
    const present = table.present;
    yield table.ptl.unlock();
    return present;
  }

  /** `hugepage_vma_revalidate()` + `find_pmd_or_thp_or_none()`: may the collapse of `c` go on? Context: the collapse's write-side lock. */
  protected revalidate(mm: MmStruct, c: Candidate): boolean {
    const vma = mm.vmaLookup(c.base);
    if (vma !== c.vma || vma.detached || !thpSuitable(mm, vma, c.base)) return false;
    const pmd = mm.pageTables.pmd(c.base);
    return pmd?.pte != null && pmd.huge === null && pmd.pte.present > 0;
  }

  /**
   * The collapse proper, under the variant's write-side lock, after revalidation: the MMU
   * notifiers, `pmdp_collapse_flush()` (the PTE table leaves the PMD; its pages go once copied),
   * the copy into the new THP, then `set_pmd_at()` of the huge PMD under the PMD lock.
   */
  protected *collapseLocked(task: MmTask, slot: MmSlot, c: Candidate): MmGen<void> {
    const { mm, thread } = task;
    const pt = mm.pageTables;
    const end = c.base + HPAGE_PMD_SIZE;
    this.hookCounts['collapseHugePage']!++;
    yield* invalidateRangeStart(mm, thread, c.base, end);
    yield pt.pageTableLock.lock();
    const copied = pt.zap(c.base, end);
    yield pt.pageTableLock.unlock();
    const before = (yield slot.collapsing.rmw((set) => new Set(set).add(c.base))) as ReadonlySet<number>;
    if (before.has(c.base)) throw new SubsystemInvariantError(this.name, `mm${mm.pid}: two collapses of 0x${c.base.toString(16)} in flight at once`);
    // __collapse_huge_page_copy(): the present pages are copied, the rest of the THP zeroed.
    thread.work('pageZeroNs', Math.max(1, copied));
    const inFlight = (yield slot.collapsing.readOnce()) as ReadonlySet<number>;
    if (!inFlight.has(c.base))
      throw new SubsystemInvariantError(this.name, `mm${mm.pid}: collapse of 0x${c.base.toString(16)} is no longer in flight while it copies`);
    yield pt.pageTableLock.lock();
    const pmd = pt.pmd(c.base);
    if (pmd !== undefined) {
      const what = pmd.huge !== null ? 'a huge PMD' : `a PTE table with ${pmd.pte?.present ?? 0} present pages`;
      throw new SubsystemInvariantError(
        this.name,
        `mm${mm.pid}: BUG_ON(!pmd_none(*pmd)) in collapse_huge_page at 0x${c.base.toString(16)}: ${what} was mapped while the PMD was flushed`,
      );
    }
    pt.setHugePmd(c.base, new Page(true, true), (c.vma.flags & VM_WRITE) !== 0);
    yield pt.pageTableLock.unlock();
    yield slot.collapsing.rmw((set) => new Set([...set].filter((base) => base !== c.base)));
    yield slot.collapsed.rmw((n) => n + 1);
    yield* invalidateRangeEnd(mm, thread, c.base, end);
  }

  checkInvariants(): void {
    for (const slot of this.#slots.values()) this.#checkSlot(slot);
  }

  #checkSlot(slot: MmSlot): void {
    const { mm } = slot;
    const fail = (what: string): never => {
      throw new SubsystemInvariantError(this.name, `mm${mm.pid}: ${what}`);
    };
    for (const base of slot.collapsing.value) fail(`a collapse of 0x${base.toString(16)} is still in flight at a quiescent point`);
    let anon = 0;
    for (const [i, pmd] of mm.pageTables.pmds) {
      const base = i * HPAGE_PMD_SIZE;
      if (pmd.huge !== null && pmd.pte !== null) fail(`PMD 0x${base.toString(16)} maps both a THP and a PTE table`);
      if (pmd.huge !== null) {
        anon += HPAGE_PMD_NR;
        const vma = mm.vmaLookup(base);
        if (vma === null || !thpSuitable(mm, vma, base))
          fail(`huge PMD 0x${base.toString(16)} is not inside one THP-suitable VMA (${vma?.toString() ?? 'none'})`);
        continue;
      }
      for (const page of pmd.pte?.pages ?? []) if (page !== null && page.anon && !page.zero) anon++;
    }
    if (anon !== mm.pageTables.rssAnon) fail(`MM_ANONPAGES ${mm.pageTables.rssAnon} but ${anon} anonymous pages mapped`);
  }

  locations(): readonly SharedLocation[] {
    return [...this.#slots.values()].flatMap((s) => [s.scanAddress, s.collapsing, s.collapsed, s.revalidateFailed, s.fullScans]);
  }

  /** Collapses done in `mm` so far. */
  collapsedCount(mm: MmStruct): number {
    return this.#slot(mm).collapsed.value;
  }

  #slot(mm: MmStruct): MmSlot {
    const slot = this.#slots.get(mm.pid);
    if (slot === undefined) throw new Error(`${this.name}: mm${mm.pid} is not attached`);
    return slot;
  }

  /** Move the cursor; a wrap to 0 ends a full scan. */
  protected *advance(slot: MmSlot, next: number): MmGen<void> {
    yield slot.scanAddress.write(next);
    if (next === 0) yield slot.fullScans.rmw((n) => n + 1);
  }

  protected *giveUp(slot: MmSlot): MmGen<boolean> {
    yield slot.revalidateFailed.rmw((n) => n + 1);
    return false;
  }
}

/**
 * khugepaged as mm/khugepaged.c is before the per-VMA-lock fix: mmap_sem read for the scan,
 * mmap_sem write for the collapse, and nothing else.
 */
class KhugepagedLegacy extends Khugepaged {
  readonly variant: SubsystemVariant = 'legacy';

  @assumes({
    lock: 'mmap_sem',
    mode: 'read',
    hook: 'fault',
    protects: 'the PMD being collapsed',
    why: 'collapse_huge_page holds mmap_sem write and no VMA lock: it keeps faults out of the flushed PMD only because every fault takes mmap_sem read',
  })
  @assumes({
    lock: 'mmap_sem',
    mode: 'write',
    hook: 'mprotectFixup',
    protects: 'the VMA of the PMD being collapsed',
    why: "hugepage_vma_revalidate's answer holds until mmap_write_unlock only because mprotect, munmap and madvise change VMAs under mmap_sem write",
  })
  protected override *collapseHugePage(task: MmTask, slot: MmSlot, c: Candidate): MmGen<boolean> {
    const { mm, thread } = task;
    // alloc_charge_folio(), with mmap_sem dropped.
    thread.work('pageZeroNs', HPAGE_PMD_NR);
    const hold = yield* mmapLegacyLock(mm, thread, 'write');
    if (!this.revalidate(mm, c)) {
      yield* mmapLegacyUnlock(mm, hold);
      return yield* this.giveUp(slot);
    }
    yield* this.collapseLocked(task, slot, c);
    yield* mmapLegacyUnlock(mm, hold);
    return true;
  }

  @assumes({
    lock: 'mmap_sem',
    mode: 'write',
    hook: 'mmapRegion',
    protects: 'the VMAs and PTE tables the scan walks',
    why: 'khugepaged_scan_mm_slot walks the VMA tree under mmap_read_lock: mmap, munmap and mprotect change it only under mmap_sem write',
  })
  protected override *scanMmSlot(task: MmTask, slot: MmSlot): MmGen<Candidate | null> {
    const { mm, thread } = task;
    const hold = yield* mmapLegacyLock(mm, thread, 'read');
    const from = (yield slot.scanAddress.read()) as number;
    const { found, next } = this.findCandidate(mm, from);
    const present = found === null ? 0 : yield* this.scanPmd(mm, found.base);
    yield* this.advance(slot, next);
    yield* mmapLegacyUnlock(mm, hold);
    return present > 0 ? found : null;
  }
}

/** khugepaged converted: the policy's locks over the PMD, `vma_start_write`, revalidation. */
class KhugepagedConverted extends Khugepaged {
  readonly variant: SubsystemVariant = 'converted';

  @assumes({
    lock: 'vma',
    mode: 'read',
    hook: 'fault',
    protects: 'the PMD being collapsed',
    why: 'a fault holds its VMA read-locked; the collapse holds the modify lock over the PMD and vma_start_write()s the VMA, which waits for those faults and keeps new ones out',
  })
  protected override *collapseHugePage(task: MmTask, slot: MmSlot, c: Candidate): MmGen<boolean> {
    const { mm, thread } = task;
    thread.work('pageZeroNs', HPAGE_PMD_NR);
    const end = c.base + HPAGE_PMD_SIZE;
    const guard = yield* mm.policy.lockForModify(mm, thread, c.base, end);
    yield* vmaStartWriteRange(guard, c.base, end, false);
    if (!this.revalidate(mm, c)) {
      yield* mm.policy.unlock(guard);
      return yield* this.giveUp(slot);
    }
    vmaAssertWriteLocked(mm, c.vma, 'collapse_huge_page replaces the page table under the VMA');
    yield* this.collapseLocked(task, slot, c);
    yield* mm.policy.unlock(guard);
    return true;
  }

  @assumes({
    lock: 'vma',
    mode: 'write',
    hook: 'mprotectFixup',
    protects: 'the VMA of the PMD being collapsed',
    why: 'VMA changes hold the VMA write-locked, which the modify lock of the collapse excludes; the revalidation catches what changed while no lock was held',
  })
  protected override *scanMmSlot(task: MmTask, slot: MmSlot): MmGen<Candidate | null> {
    const { mm, thread } = task;
    const from = (yield slot.scanAddress.read()) as number;
    // The walk to the next candidate is lockless (the maple tree under RCU); the candidate is
    // then checked again under the read-side lock of its PMD.
    const { found, next } = this.findCandidate(mm, from);
    yield* this.advance(slot, next);
    if (found === null) return null;
    const guard: MmLockGuard = yield* mm.policy.lockForRead(mm, thread, found.base, found.base + HPAGE_PMD_SIZE);
    const vma = mm.vmaLookup(found.base);
    let present = 0;
    if (vma !== null && thpSuitable(mm, vma, found.base)) present = yield* this.scanPmd(mm, found.base);
    yield* mm.policy.unlock(guard);
    return present > 0 && vma !== null ? { vma, base: found.base } : null;
  }
}

/** Which of khugepaged's lock disciplines. */
export function khugepaged(variant: SubsystemVariant): Khugepaged {
  return variant === 'legacy' ? new KhugepagedLegacy() : new KhugepagedConverted();
}

export type { Khugepaged };
