// What the two huge-page subsystems share: the address window their user threads work in, the
// prologue that maps it, the THP suitability test of a VMA (`thp_vma_allowable_order` for PMD
// order, as khugepaged's `hugepage_vma_check` applies it), the huge PMDs a range touches, and an
// mprotect that splits the huge PMDs at its ends before it changes VMAs (what the kernel's
// `vma_adjust_trans_huge` does on every split or merge adjustment).
import {
  HPAGE_PMD_SIZE,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  type MmGen,
  type MmLockGuard,
  type MmStruct,
  type MmTask,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Page,
  type Prng,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  VM_SHARED,
  VM_WRITE,
  type Vma,
  handleMmFault,
  invalidateRangeEnd,
  invalidateRangeStart,
  rangeAssertCovered,
  sysMadvise,
  sysMmap,
  vmaModify,
  vmaStartWriteRange,
} from '@vmalock/core';

/** `HPAGE_PMD_NR`: base pages in one THP. */
export const HPAGE_PMD_NR = HPAGE_PMD_SIZE / PAGE_SIZE;

/**
 * The MADV_HUGEPAGE anonymous areas the user threads of a huge-page workload map and work in,
 * each [start, end), PMD-aligned, with a 2 MiB hole between them so that each is a VMA of its own:
 *
 *     0x40000000        0x40400000  0x40600000        0x40a00000
 *     |  A: 2 PMDs       |  (hole)  |  B: 2 PMDs       |
 */
export const HUGEPAGE_AREAS: ReadonlyArray<readonly [start: number, end: number]> = [
  [0x40000000, 0x40400000],
  [0x40600000, 0x40a00000],
];

/** A random page-aligned address inside one of the areas. */
export function randomAreaPage(rng: Prng): number {
  const [start, end] = HUGEPAGE_AREAS[rng.index(HUGEPAGE_AREAS.length)]!;
  return start + rng.int(0, (end - start) / PAGE_SIZE - 1) * PAGE_SIZE;
}

/**
 * The user program's prologue: map each area read-write, write-fault `prefaultPages` pages of
 * every PMD of it while the area is still without VM_HUGEPAGE (so they are 4 KiB pages: what
 * khugepaged later collapses), then `madvise(MADV_HUGEPAGE)` it. Context: one thread, no lock held.
 */
export function* mapHugepageAreas(task: MmTask, prefaultPages: number): MmGen<void> {
  for (const [start, end] of HUGEPAGE_AREAS) {
    const addr = yield* sysMmap(task, start, end - start, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (addr !== start) throw new Error(`huge-page prologue: mmap at 0x${start.toString(16)} returned ${addr}`);
    for (let pmd = start; pmd < end; pmd += HPAGE_PMD_SIZE) {
      for (let i = 0; i < prefaultPages; i++) {
        const r = yield* handleMmFault(task, pmd + ((i * 37) % HPAGE_PMD_NR) * PAGE_SIZE, 'write');
        if (r !== 'ok') throw new Error(`huge-page prologue: write fault in 0x${pmd.toString(16)} gave ${r}`);
      }
    }
    const r = yield* sysMadvise(task, start, end - start, MADV_HUGEPAGE);
    if (r !== 0) throw new Error(`huge-page prologue: madvise(MADV_HUGEPAGE) gave ${r}`);
  }
}

/**
 * May [base, base + 2 MiB) of `vma` be mapped by one huge PMD? Anonymous, private, THP allowed
 * by the mm's mode and the VMA's VM_HUGEPAGE/VM_NOHUGEPAGE, and the whole PMD inside the VMA
 * (`thp_vma_allowable_order` + `thp_vma_suitable_order`).
 */
export function thpSuitable(mm: MmStruct, vma: Vma, base: number): boolean {
  if (!vma.isAnonymous() || (vma.flags & VM_SHARED) !== 0 || vma.detached) return false;
  if (mm.thp === 'never' || (vma.flags & VM_NOHUGEPAGE) !== 0) return false;
  if (mm.thp === 'madvise' && (vma.flags & VM_HUGEPAGE) === 0) return false;
  return base % HPAGE_PMD_SIZE === 0 && vma.start <= base && base + HPAGE_PMD_SIZE <= vma.end;
}

/** `pmd_none()` as the THP paths see it: no entry, or a PTE table with nothing present. */
export function pmdNone(mm: MmStruct, base: number): boolean {
  const pmd = mm.pageTables.pmd(base);
  return pmd === undefined || (pmd.huge === null && (pmd.pte === null || pmd.pte.present === 0));
}

/** PMD base of `addr`. */
export function pmdBase(addr: number): number {
  return Math.floor(addr / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE;
}

/** A huge PMD a range touches: its THP, and whether the range covers it whole. */
export interface HugePmdHit {
  readonly base: number;
  readonly page: Page;
  readonly whole: boolean;
}

/** The huge PMDs intersecting [start, end), in address order. */
export function hugePmdsIn(mm: MmStruct, start: number, end: number): HugePmdHit[] {
  const hits: HugePmdHit[] = [];
  for (let base = pmdBase(start); base < end; base += HPAGE_PMD_SIZE) {
    const huge = mm.pageTables.pmd(base)?.huge ?? null;
    if (huge !== null) hits.push({ base, page: huge, whole: start <= base && base + HPAGE_PMD_SIZE <= end });
  }
  return hits;
}

/**
 * `mprotect(start, end - start, PROT_READ)` of a range inside one VMA (the partial mprotect of
 * the huge-page workloads), with the kernel's `vma_adjust_trans_huge`: huge PMDs cut by `start`
 * or `end` are split under `page_table_lock` before the VMAs change, whichever way `vma_modify`
 * then splits or merges. `beforeSplit` runs under the modify guard first, with the THPs about to
 * be split (the thp subsystem's bookkeeping). Returns 0, or -ENOMEM (-12) when no single VMA
 * covers the range. Context: no mm lock held; takes the policy's modify lock on the range.
 */
export function* mprotectReadOnly(
  task: MmTask,
  start: number,
  end: number,
  beforeSplit?: (guard: MmLockGuard, split: HugePmdHit[]) => MmGen<void>,
): MmGen<number> {
  const { mm, thread } = task;
  thread.work('syscallNs');
  const guard = yield* mm.policy.lockForModify(mm, thread, start, end);
  rangeAssertCovered(guard, start, end, 'mprotect changes the VMAs of its range');
  yield* vmaStartWriteRange(guard, start, end, true);
  const vma = mm.vmaLookup(start);
  let result = 0;
  if (vma === null || vma.end < end) result = -12;
  else if ((vma.flags & VM_WRITE) !== 0) {
    const cut = hugePmdsIn(mm, start, end).filter((h) => !h.whole);
    if (beforeSplit !== undefined) yield* beforeSplit(guard, cut);
    const pt = mm.pageTables;
    yield pt.pageTableLock.lock();
    for (const h of cut) pt.splitHugePmd(h.base);
    yield pt.pageTableLock.unlock();
    thread.work('vmaUpdateNs');
    const r = yield* vmaModify(mm, thread, vma, start, end, { flags: vma.flags & ~VM_WRITE, file: vma.file, vmOps: vma.vmOps, anonVma: vma.anonVma });
    if (typeof r === 'number') result = r;
    else {
      yield* invalidateRangeStart(mm, thread, start, end);
      for (const { addr } of pt.walk(start, end)) pt.setWritable(addr, false);
      yield* invalidateRangeEnd(mm, thread, start, end);
    }
  }
  yield* mm.policy.unlock(guard);
  return result;
}
