import { SpinLock } from '../sim/mutex.js';
import type { MmFile } from './vma.js';
import { HPAGE_PMD_SIZE, PAGE_SIZE } from './uapi.js';

/** Entries per page-table page (x86-64: 9 bits per level). */
export const PTRS_PER_PTE = 512;

/**
 * A page frame (`struct page`/folio, as far as the mm cares). Anonymous pages are shared
 * copy-on-write after fork: `mapcount` counts the PTEs mapping it.
 */
export class Page {
  /** PTEs (or huge PMDs) mapping this page. */
  mapcount = 0;
  constructor(
    readonly anon: boolean,
    /** A 2 MiB THP mapped by one PMD. */
    readonly huge: boolean,
    /** The file and page offset of a page-cache page. */
    readonly file: MmFile | null = null,
    readonly index = 0,
    /** The shared zero page: mapped read-only by read faults on anonymous memory, never counted. */
    readonly zero = false,
  ) {}
}

/** `ZERO_PAGE(0)`. Its `mapcount` is never changed, so sharing it across mms and runs is safe. */
export const zeroPage = new Page(false, false, null, 0, true);

/** One PTE page: 512 entries and the split page-table lock that guards them (`pte_lockptr`). */
export class PteTable {
  readonly pages: (Page | null)[] = new Array<Page | null>(PTRS_PER_PTE).fill(null);
  /** 1 where the PTE is writable. */
  readonly writable = new Uint8Array(PTRS_PER_PTE);
  /** Present entries. */
  present = 0;
  /** Split PTE lock. Written under: -. Guards: `pages`, `writable`, `present`. */
  readonly ptl: SpinLock;
  constructor(name: string) {
    this.ptl = new SpinLock(name);
  }
}

/** One PMD entry: empty, a PTE table, or a huge page (THP) mapping 2 MiB. */
export class PmdEntry {
  pte: PteTable | null = null;
  huge: Page | null = null;
  hugeWritable = false;
}

/** What maps one virtual page now. */
export interface PteView {
  readonly page: Page;
  readonly writable: boolean;
  readonly huge: boolean;
}

/**
 * The page tables of one mm, with pgd/pud/pmd flattened into one map keyed by PMD index
 * (address >> 21): a faithful flattening, since every level but the last two only routes.
 * PTE tables carry split PTE locks; installing a table or a huge PMD takes the mm's
 * `page_table_lock` (the non-split PMD lock).
 *
 * Context: every mutator's caller holds what the lock policy requires for the range, plus the
 * PTE lock of the table it changes (the fault and zap paths take them).
 */
export class PageTables {
  readonly pmds = new Map<number, PmdEntry>();
  /** `mm->page_table_lock`. */
  readonly pageTableLock: SpinLock;
  /** `MM_ANONPAGES`, `MM_FILEPAGES` in pages (a THP counts 512). */
  rssAnon = 0;
  rssFile = 0;
  /** `nr_ptes`: PTE table pages allocated. */
  ptePages = 0;
  /** Huge PMDs mapped. */
  hugePmds = 0;

  constructor(readonly ownerName: string) {
    this.pageTableLock = new SpinLock(`${ownerName}.page_table_lock`);
  }

  static pmdIndex(addr: number): number {
    return Math.floor(addr / HPAGE_PMD_SIZE);
  }

  static pteIndex(addr: number): number {
    return Math.floor(addr / PAGE_SIZE) % PTRS_PER_PTE;
  }

  pmd(addr: number): PmdEntry | undefined {
    return this.pmds.get(PageTables.pmdIndex(addr));
  }

  /** The PTE table for `addr`, allocated if missing (`pte_alloc`). */
  pteTableFor(addr: number): PteTable {
    const i = PageTables.pmdIndex(addr);
    let pmd = this.pmds.get(i);
    if (pmd === undefined) {
      pmd = new PmdEntry();
      this.pmds.set(i, pmd);
    }
    if (pmd.huge !== null) throw new Error(`pte table wanted at 0x${addr.toString(16)} where a huge PMD is mapped`);
    if (pmd.pte === null) {
      pmd.pte = new PteTable(`${this.ownerName}.ptl@0x${(i * HPAGE_PMD_SIZE).toString(16)}`);
      this.ptePages++;
    }
    return pmd.pte;
  }

  /** What maps `addr`, or null. */
  lookup(addr: number): PteView | null {
    const pmd = this.pmds.get(PageTables.pmdIndex(addr));
    if (pmd === undefined) return null;
    if (pmd.huge !== null) return { page: pmd.huge, writable: pmd.hugeWritable, huge: true };
    if (pmd.pte === null) return null;
    const j = PageTables.pteIndex(addr);
    const page = pmd.pte.pages[j] ?? null;
    return page === null ? null : { page, writable: pmd.pte.writable[j] === 1, huge: false };
  }

  /** Map `page` at `addr` (a PTE). */
  setPte(addr: number, page: Page, writable: boolean): void {
    const t = this.pteTableFor(addr);
    const j = PageTables.pteIndex(addr);
    const old = t.pages[j] ?? null;
    if (old !== null) this.#unaccount(old);
    else t.present++;
    t.pages[j] = page;
    t.writable[j] = writable ? 1 : 0;
    if (page.zero) return;
    page.mapcount++;
    if (page.anon) this.rssAnon++;
    else this.rssFile++;
  }

  /** Change the write bit of the PTE at `addr` (present). */
  setWritable(addr: number, writable: boolean): void {
    const pmd = this.pmds.get(PageTables.pmdIndex(addr));
    if (pmd?.huge != null) {
      pmd.hugeWritable = writable;
      return;
    }
    pmd!.pte!.writable[PageTables.pteIndex(addr)] = writable ? 1 : 0;
  }

  /** Map a THP at the 2 MiB-aligned `addr` (`do_huge_pmd_anonymous_page`). */
  setHugePmd(addr: number, page: Page, writable: boolean): void {
    const i = PageTables.pmdIndex(addr);
    let pmd = this.pmds.get(i);
    if (pmd === undefined) {
      pmd = new PmdEntry();
      this.pmds.set(i, pmd);
    }
    if (pmd.pte !== null && pmd.pte.present > 0) throw new Error(`huge PMD at 0x${addr.toString(16)} over present PTEs`);
    if (pmd.pte !== null) {
      pmd.pte = null;
      this.ptePages--;
    }
    pmd.huge = page;
    pmd.hugeWritable = writable;
    page.mapcount++;
    this.hugePmds++;
    this.rssAnon += PTRS_PER_PTE;
  }

  /** Split a huge PMD into 512 PTEs mapping the same memory (`__split_huge_pmd`). */
  splitHugePmd(addr: number): void {
    const i = PageTables.pmdIndex(addr);
    const pmd = this.pmds.get(i);
    if (pmd?.huge == null) return;
    const huge = pmd.huge;
    const writable = pmd.hugeWritable;
    pmd.huge = null;
    huge.mapcount--;
    this.hugePmds--;
    this.rssAnon -= PTRS_PER_PTE;
    const base = i * HPAGE_PMD_SIZE;
    for (let j = 0; j < PTRS_PER_PTE; j++) this.setPte(base + j * PAGE_SIZE, new Page(true, false), writable);
  }

  /**
   * Unmap every page in [start, end) (`zap_page_range`): huge PMDs wholly inside go, ones cut
   * by the range are split first. PTE tables left empty are freed (`free_pgtables`). Returns
   * the pages unmapped.
   */
  zap(start: number, end: number): number {
    let zapped = 0;
    for (let addr = start; addr < end;) {
      const i = PageTables.pmdIndex(addr);
      const pmdStart = i * HPAGE_PMD_SIZE;
      const pmdEnd = pmdStart + HPAGE_PMD_SIZE;
      const pmd = this.pmds.get(i);
      const stop = Math.min(end, pmdEnd);
      if (pmd === undefined) {
        addr = stop;
        continue;
      }
      if (pmd.huge !== null) {
        if (addr === pmdStart && stop === pmdEnd) {
          pmd.huge.mapcount--;
          pmd.huge = null;
          this.hugePmds--;
          this.rssAnon -= PTRS_PER_PTE;
          zapped += PTRS_PER_PTE;
          this.pmds.delete(i);
          addr = stop;
          continue;
        }
        this.splitHugePmd(addr);
      }
      const t = pmd.pte;
      if (t !== null) {
        for (let a = addr; a < stop; a += PAGE_SIZE) {
          const j = PageTables.pteIndex(a);
          const page = t.pages[j] ?? null;
          if (page === null) continue;
          t.pages[j] = null;
          t.writable[j] = 0;
          t.present--;
          this.#unaccount(page);
          zapped++;
        }
        if (t.present === 0) {
          pmd.pte = null;
          this.ptePages--;
        }
      }
      if (pmd.pte === null && pmd.huge === null) this.pmds.delete(i);
      addr = stop;
    }
    return zapped;
  }

  /** Every mapped page in [start, end), in address order (a page walk). */
  *walk(start: number, end: number): Generator<{ readonly addr: number; readonly view: PteView }> {
    const first = PageTables.pmdIndex(start);
    const last = PageTables.pmdIndex(end - 1);
    const keys = [...this.pmds.keys()].filter((k) => k >= first && k <= last).sort((a, b) => a - b);
    for (const i of keys) {
      const pmd = this.pmds.get(i)!;
      const base = i * HPAGE_PMD_SIZE;
      if (pmd.huge !== null) {
        yield { addr: Math.max(base, start), view: { page: pmd.huge, writable: pmd.hugeWritable, huge: true } };
        continue;
      }
      if (pmd.pte === null) continue;
      for (let j = 0; j < PTRS_PER_PTE; j++) {
        const page = pmd.pte.pages[j] ?? null;
        if (page === null) continue;
        const addr = base + j * PAGE_SIZE;
        if (addr < start || addr >= end) continue;
        yield { addr, view: { page, writable: pmd.pte.writable[j] === 1, huge: false } };
      }
    }
  }

  #unaccount(page: Page): void {
    if (page.zero) return;
    page.mapcount--;
    if (page.anon) this.rssAnon--;
    else this.rssFile--;
  }
}
