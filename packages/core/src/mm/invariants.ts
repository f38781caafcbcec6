import type { MmStruct } from './mmStruct.js';
import { HPAGE_PMD_SIZE, PAGE_SIZE } from './uapi.js';
import { PTRS_PER_PTE } from './pageTables.js';

/** A broken mm invariant: what and where. */
export class MmInvariantError extends Error {}

function fail(mm: MmStruct, what: string): never {
  throw new MmInvariantError(`mm${mm.pid}: ${what}`);
}

/**
 * Check every invariant of a quiescent mm: the tree's own (order, gaps), page-aligned non-empty
 * VMAs, counters (`map_count`, `total_vm`, dummies, RSS, page-table pages, huge PMDs) equal to
 * a recount, every present page inside a visible VMA, and no dummy VMA visible to lookups.
 * Throws `MmInvariantError` naming the first violation. Context: no thread is inside an
 * operation on this mm (or the caller holds the whole mm for write).
 */
export function checkMmInvariants(mm: MmStruct): void {
  mm.tree.checkInvariants();
  let visible = 0;
  let dummies = 0;
  let pages = 0;
  let prevEnd = -1;
  for (const vma of mm.tree.entries()) {
    if (vma.start % PAGE_SIZE !== 0 || vma.end % PAGE_SIZE !== 0) fail(mm, `VMA ${vma.toString()} is not page-aligned`);
    if (vma.start >= vma.end) fail(mm, `VMA ${vma.toString()} is empty`);
    if (vma.start < prevEnd) fail(mm, `VMA ${vma.toString()} overlaps the one before`);
    if (vma.detached) fail(mm, `VMA ${vma.toString()} is in the tree but marked detached`);
    prevEnd = vma.end;
    if (vma.dummy) {
      dummies++;
      if (mm.vmaLookup(vma.start) !== null) fail(mm, `dummy VMA ${vma.toString()} is visible to lookups`);
      continue;
    }
    visible++;
    pages += vma.pages;
  }
  if (visible !== mm.mapCount) fail(mm, `map_count ${mm.mapCount} but ${visible} VMAs`);
  if (dummies !== mm.dummyCount) fail(mm, `dummy count ${mm.dummyCount} but ${dummies} dummy VMAs`);
  if (pages !== mm.totalVm) fail(mm, `total_vm ${mm.totalVm} but the VMAs span ${pages} pages`);
  if (mm.brk < mm.startBrk) fail(mm, `brk 0x${mm.brk.toString(16)} below start_brk 0x${mm.startBrk.toString(16)}`);

  const pt = mm.pageTables;
  let anon = 0;
  let file = 0;
  let tables = 0;
  let huge = 0;
  for (const [i, pmd] of pt.pmds) {
    const base = i * HPAGE_PMD_SIZE;
    if (pmd.huge !== null && pmd.pte !== null) fail(mm, `PMD at 0x${base.toString(16)} is both huge and a PTE table`);
    if (pmd.huge !== null) {
      huge++;
      anon += PTRS_PER_PTE;
      const vma = mm.vmaLookup(base);
      if (vma === null || vma.start > base || vma.end < base + HPAGE_PMD_SIZE) fail(mm, `huge PMD at 0x${base.toString(16)} is not inside one VMA`);
      continue;
    }
    if (pmd.pte === null) fail(mm, `empty PMD entry at 0x${base.toString(16)} kept`);
    tables++;
    let present = 0;
    pmd.pte.pages.forEach((page, j) => {
      if (page === null) return;
      present++;
      const addr = base + j * PAGE_SIZE;
      if (mm.vmaLookup(addr) === null) fail(mm, `a page is mapped at 0x${addr.toString(16)}, outside every VMA`);
      if (page.zero) return;
      if (page.anon) anon++;
      else file++;
    });
    if (present !== pmd.pte.present) fail(mm, `PTE table at 0x${base.toString(16)} counts ${pmd.pte.present} present but has ${present}`);
  }
  if (anon !== pt.rssAnon) fail(mm, `MM_ANONPAGES ${pt.rssAnon} but ${anon} anonymous pages mapped`);
  if (file !== pt.rssFile) fail(mm, `MM_FILEPAGES ${pt.rssFile} but ${file} file pages mapped`);
  if (tables !== pt.ptePages) fail(mm, `nr_ptes ${pt.ptePages} but ${tables} PTE tables`);
  if (huge !== pt.hugePmds) fail(mm, `${pt.hugePmds} huge PMDs counted but ${huge} mapped`);
}
