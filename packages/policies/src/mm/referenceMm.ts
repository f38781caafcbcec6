/**
 * A naive, page-granular reference model of a Linux process address space, for the model-based
 * test of the simulated mm (`model.test.ts`). It shares no code with `@vmalock/core`'s mm: only
 * the ABI constants.
 *
 * Representation: a Map from page number to what Linux keeps for that page's VMA (flags, backing
 * file, the page's own file offset, anon_vma) plus the identity of the VMA the page belongs to.
 * A VMA is a maximal run of consecutive pages with the same identity; splitting a VMA gives the
 * pages on one side a new identity, merging gives them the survivor's. Every syscall is written
 * as loops over these pages, straight from the kernel sources it names, so that it can be
 * checked by reading.
 *
 * Semantics are Linux v6.12 (LTS) on x86-64 (`mm/mmap.c`, `mm/vma.c`, `mm/mprotect.c`,
 * `mm/madvise.c`, `mm/mremap.c`, `mm/memory.c`, `mm/rmap.c`, `arch/x86/mm/fault.c`; where later
 * kernels differ, the comment says so): 4-level paging, no fork
 * (so every anon_vma chain is singular), overcommit heuristic and default rlimits (never hit at
 * these sizes), `transparent_hugepage=madvise`. Not modelled, and never asked by the test:
 * MAP_LOCKED, MAP_POPULATE, MAP_HUGETLB, MREMAP_DONTUNMAP, mlock, fork; a fault that could map
 * a THP throws rather than guess at `pmd_none()`.
 *
 * One presentation rule follows the simulator instead of Linux, on purpose: shared anonymous
 * memory is shmem in Linux (`/dev/zero (deleted)`, its own inode, offsets from 0) but the
 * simulator keeps no shmem file and shows such a VMA as anonymous. The reference renders it the
 * simulator's way so that this known simplification does not hide every other difference; its
 * merge decisions still treat each shared anonymous mapping as its own file, as Linux does.
 */
import {
  EACCES,
  EAGAIN,
  EBADF,
  EEXIST,
  EFAULT,
  EINVAL,
  ENOMEM,
  EPERM,
  HPAGE_PMD_SIZE,
  MADV_DOFORK,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_STACK,
  MAP_TYPE,
  MMAP_MIN_ADDR,
  type MmFile,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_READ,
  PROT_SEM,
  PROT_WRITE,
  STACK_GUARD_GAP,
  TASK_SIZE,
  VM_ACCOUNT,
  VM_DONTCOPY,
  VM_DONTEXPAND,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_NOHUGEPAGE,
  VM_NORESERVE,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_WRITE,
} from '@vmalock/core';

/** The shmem file Linux creates for one MAP_SHARED|MAP_ANONYMOUS mapping (`shmem_zero_setup`). */
export class SharedAnonFile {
  constructor(readonly id: number) {}
}

/** What backs a page: a file, the shmem file of a shared anonymous mapping, or nothing (private anonymous). */
export type RefBacking = MmFile | SharedAnonFile | null;

/** One mapped page: its VMA's identity and properties, and its own file offset. */
export interface RefPage {
  /** The VMA the page belongs to; pages of one VMA are consecutive. */
  readonly vma: number;
  /** `vm_flags` of the VMA (VM_SOFTDIRTY is not modelled: merges ignore it). */
  readonly flags: number;
  readonly backing: RefBacking;
  /** This page's `vm_pgoff` (the VMA's `vm_pgoff` plus the page's index in it). */
  readonly pgoff: number;
  /** The VMA's anon_vma, as a number; 0 when it has none. */
  readonly anonVma: number;
}

/** A VMA, as the run of pages that make it: `[start, end)` in bytes, `pgoff` of `start`. */
export interface RefVma {
  readonly id: number;
  readonly start: number;
  readonly end: number;
  readonly flags: number;
  readonly backing: RefBacking;
  readonly pgoff: number;
  readonly anonVma: number;
}

/** The properties a VMA must share with a neighbour to merge with it (anon_vma aside). */
interface RefProps {
  readonly flags: number;
  readonly backing: RefBacking;
  readonly anonVma: number;
}

/** The layout of the address space, as given to the simulated mm. */
export interface RefLayout {
  readonly mmapBase: number;
  readonly maxMapCount: number;
  readonly startBrk: number;
  readonly startStack: number;
}

/** How a page fault ends (the subset of the simulator's `FaultResult` the reference produces). */
export type RefFaultResult = 'ok' | 'SEGV_MAPERR' | 'SEGV_ACCERR';

const VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC;

/** `VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT` (x86-64, no READ_IMPLIES_EXEC): the heap's flags. */
const BRK_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_ACCOUNT;
/** `RLIMIT_STACK` default (8 MiB). */
const RLIMIT_STACK = 8 * 1024 * 1024;
/** Where the name starts in a maps line: `seq_setwidth(m, 25 + sizeof(void *) * 6 - 1)`, then a space. */
const MAPS_NAME_PAD = 72;

function pageAlign(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

function pagesOf(vma: RefVma): number {
  return (vma.end - vma.start) / PAGE_SIZE;
}

/** `calc_vm_prot_bits()`. */
function protBits(prot: number): number {
  return (prot & PROT_READ ? VM_READ : 0) | (prot & PROT_WRITE ? VM_WRITE : 0) | (prot & PROT_EXEC ? VM_EXEC : 0);
}

/** `is_mergeable_anon_vma()` without fork: one side has none yet, or they are the same. */
function anonCompatible(a: number, b: number): boolean {
  return a === 0 || b === 0 || a === b;
}

/** `is_mergeable_vma()`: identical flags and file (no mempolicy, uffd or anon name here). */
function sameProps(vma: RefVma, props: RefProps): boolean {
  return vma.flags === props.flags && vma.backing === props.backing;
}

/** `anon_vma_compatible(a, b)`: b follows a and could have been one VMA with it but for access flags. */
function anonVmaReusable(a: RefVma, b: RefVma): boolean {
  return a.end === b.start && a.backing === b.backing && ((a.flags ^ b.flags) & ~VM_ACCESS_FLAGS) === 0 && b.pgoff === a.pgoff + pagesOf(a);
}

/** The reference's own consistency checks: a failure is a bug of the reference, not of the model. */
function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`reference: ${what}`);
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/**
 * The reference address space. Syscalls return what the simulator's do: an address or 0 on
 * success, `-errno` on failure; `brk` returns the break; `fault` how the fault ended.
 */
export class ReferenceMm {
  readonly #pages = new Map<number, RefPage>();
  #vmaCache: RefVma[] | null = null;
  #nextVma = 1;
  #nextAnonVma = 1;
  #nextShmem = 1;
  /** `mm->brk`. */
  brk: number;

  constructor(
    readonly layout: RefLayout,
    /** The process's open files by fd. */
    readonly files: ReadonlyMap<number, MmFile>,
  ) {
    this.brk = layout.startBrk;
  }

  /** `mm->map_count`. */
  get mapCount(): number {
    return this.vmas().length;
  }

  /** The VMAs in address order, coalesced from the pages. */
  vmas(): readonly RefVma[] {
    if (this.#vmaCache !== null) return this.#vmaCache;
    const out: RefVma[] = [];
    const seen = new Set<number>();
    for (const pn of [...this.#pages.keys()].sort((a, b) => a - b)) {
      const page = this.#pages.get(pn)!;
      const addr = pn * PAGE_SIZE;
      const last = out[out.length - 1];
      if (last !== undefined && last.id === page.vma && last.end === addr) {
        const consistent =
          page.flags === last.flags && page.backing === last.backing && page.anonVma === last.anonVma && page.pgoff === last.pgoff + pagesOf(last);
        if (!consistent) throw new Error(`reference: page 0x${addr.toString(16)} disagrees with the rest of VMA ${last.id}`);
        out[out.length - 1] = { ...last, end: addr + PAGE_SIZE };
        continue;
      }
      if (seen.has(page.vma)) throw new Error(`reference: VMA ${page.vma} is not one run of pages (again at 0x${addr.toString(16)})`);
      seen.add(page.vma);
      out.push({ id: page.vma, start: addr, end: addr + PAGE_SIZE, flags: page.flags, backing: page.backing, pgoff: page.pgoff, anonVma: page.anonVma });
    }
    this.#vmaCache = out;
    return out;
  }

  /** Throw if the pages do not form well-formed VMAs (the checks `vmas()` makes) or the break is below its start. */
  checkInvariants(): void {
    this.#vmaCache = null;
    this.vmas();
    if (this.brk < this.layout.startBrk) throw new Error('reference: brk below start_brk');
  }

  // --- syscalls ---

  /** `mmap()`: x86 `sys_mmap` -> `ksys_mmap_pgoff` -> `do_mmap` -> `mmap_region`. */
  sysMmap(addr: number, len: number, prot: number, flags: number, fd: number, offset: number): number {
    if (offset % PAGE_SIZE !== 0) return -EINVAL;
    let file: MmFile | null = null;
    if ((flags & MAP_ANONYMOUS) === 0) {
      file = this.files.get(fd) ?? null;
      if (file === null) return -EBADF;
    }
    if (len === 0) return -EINVAL;
    if ((flags & MAP_FIXED_NOREPLACE) !== 0) flags |= MAP_FIXED;
    // round_hint_to_min()
    if ((flags & MAP_FIXED) === 0) {
      addr = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
      if (addr !== 0 && addr < MMAP_MIN_ADDR) addr = MMAP_MIN_ADDR;
    }
    len = pageAlign(len);
    if (this.mapCount > this.layout.maxMapCount) return -ENOMEM;
    let vmFlags = protBits(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
    if ((flags & MAP_GROWSDOWN) !== 0) vmFlags |= VM_GROWSDOWN;
    if ((flags & MAP_STACK) !== 0) vmFlags |= VM_NOHUGEPAGE;
    const type = flags & MAP_TYPE;
    const shared = type === MAP_SHARED || type === MAP_SHARED_VALIDATE;
    addr = this.#getUnmappedArea(file !== null || shared, addr, len, flags);
    if (addr < 0) return addr;
    if ((flags & MAP_FIXED_NOREPLACE) !== 0 && this.#vmasIn(addr, addr + len).length > 0) return -EEXIST;
    let pgoff: number;
    if (file !== null) {
      if (type !== MAP_SHARED && type !== MAP_SHARED_VALIDATE && type !== MAP_PRIVATE) return -EINVAL;
      if (shared) {
        if ((prot & PROT_WRITE) !== 0 && !file.writable) return -EACCES;
        vmFlags |= VM_SHARED | VM_MAYSHARE;
        if (!file.writable) vmFlags &= ~(VM_MAYWRITE | VM_SHARED);
      }
      if (!file.readable) return -EACCES;
      if ((vmFlags & VM_GROWSDOWN) !== 0) return -EINVAL;
      pgoff = offset / PAGE_SIZE;
    } else if (type === MAP_SHARED) {
      if ((vmFlags & VM_GROWSDOWN) !== 0) return -EINVAL;
      pgoff = 0;
      vmFlags |= VM_SHARED | VM_MAYSHARE;
    } else if (type === MAP_PRIVATE) {
      pgoff = addr / PAGE_SIZE;
    } else {
      return -EINVAL;
    }
    if ((flags & MAP_NORESERVE) !== 0) vmFlags |= VM_NORESERVE;
    return this.#mmapRegion(file, addr, len, vmFlags, pgoff);
  }

  /** `munmap()`: `do_vmi_munmap`. */
  sysMunmap(addr: number, len: number): number {
    if (addr % PAGE_SIZE !== 0 || addr > TASK_SIZE || len > TASK_SIZE - addr) return -EINVAL;
    len = pageAlign(len);
    if (len === 0) return -EINVAL;
    return this.#unmapRange(addr, addr + len);
  }

  /** `mprotect()`: `do_mprotect_pkey` and `mprotect_fixup`. */
  sysMprotect(start: number, len: number, prot: number): number {
    const grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
    prot &= ~grows;
    if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return -EINVAL;
    if (start % PAGE_SIZE !== 0) return -EINVAL;
    if (len === 0) return 0;
    len = pageAlign(len);
    const end = start + len;
    if (end <= start) return -ENOMEM;
    if ((prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) !== 0) return -EINVAL; // arch_validate_prot()
    const first = this.#findVma(start);
    if (first === null || first.start >= end) return -ENOMEM;
    if ((grows & PROT_GROWSDOWN) !== 0) {
      start = first.start;
      if ((first.flags & VM_GROWSDOWN) === 0) return -EINVAL;
    } else {
      if (first.start > start) return -ENOMEM;
      if ((grows & PROT_GROWSUP) !== 0) return -EINVAL; // no VM_GROWSUP on x86
    }
    const want = protBits(prot);
    let tmp = first.start;
    let nstart = start;
    for (let vma = this.#findVma(nstart); vma !== null && vma.start < end; vma = this.#findVma(tmp)) {
      if (vma.start !== tmp) return -ENOMEM;
      const newFlags = want | (vma.flags & ~VM_ACCESS_FLAGS);
      // newflags >> 4 puts VM_MAY* where VM_* are.
      if ((newFlags & ~(newFlags >> 4) & VM_ACCESS_FLAGS) !== 0) return -EACCES;
      tmp = Math.min(vma.end, end);
      const r = this.#mprotectFixup(vma, nstart, tmp, newFlags);
      if (r < 0) return r;
      tmp = this.#vmaLookup(nstart)!.end; // vma_iter_end(): the end of the VMA now at nstart
      nstart = tmp;
    }
    return tmp < end ? -ENOMEM : 0;
  }

  /** `madvise()` for the advice the test uses: `do_madvise` -> `madvise_walk_vmas` -> `madvise_vma_behavior`. */
  sysMadvise(start: number, len: number, advice: number): number {
    const known = [MADV_DONTNEED, MADV_DONTFORK, MADV_DOFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE];
    if (!known.includes(advice)) throw new Error(`reference: madvise advice ${advice} is not modelled`);
    if (start % PAGE_SIZE !== 0) return -EINVAL;
    const end = start + pageAlign(len);
    if (end === start) return 0;
    let unmappedError = 0;
    let tmp = start;
    for (;;) {
      const vma = this.#findVma(tmp);
      if (vma === null) return -ENOMEM;
      if (tmp < vma.start) {
        unmappedError = -ENOMEM;
        tmp = vma.start;
        if (tmp >= end) break;
      }
      const pieceEnd = Math.min(vma.end, end);
      const error = this.#madviseVma(vma, tmp, pieceEnd, advice);
      if (error !== 0) return error;
      // The walk resumes after the VMA now covering the piece (it may have merged with the next).
      tmp = Math.max(pieceEnd, this.#vmaLookup(tmp)!.end);
      if (tmp >= end) break;
    }
    return unmappedError;
  }

  /** `mremap()`: `do_mremap`, `mremap_to`, `vma_to_resize` of v6.12. */
  sysMremap(addr: number, oldLen: number, newLen: number, flags: number, newAddr: number): number {
    if ((flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP)) !== 0) return -EINVAL;
    if ((flags & MREMAP_FIXED) !== 0 && (flags & MREMAP_MAYMOVE) === 0) return -EINVAL;
    if ((flags & MREMAP_DONTUNMAP) !== 0) throw new Error('reference: MREMAP_DONTUNMAP is not modelled');
    if (addr % PAGE_SIZE !== 0) return -EINVAL;
    oldLen = pageAlign(oldLen);
    newLen = pageAlign(newLen);
    if (newLen === 0) return -EINVAL;
    if (this.#vmaLookup(addr) === null) return -EFAULT;
    if ((flags & MREMAP_FIXED) !== 0) return this.#mremapTo(addr, oldLen, newLen, newAddr);
    if (oldLen >= newLen) {
      // Always allow a shrinking remap: it only unmaps the tail, whatever VMAs that spans.
      if (oldLen === newLen) return addr;
      const r = this.#unmapRange(addr + newLen, addr + oldLen);
      return r < 0 ? r : addr;
    }
    const vma = this.#vmaToResize(addr, oldLen, newLen);
    if (typeof vma === 'number') return vma;
    if (vma.end - addr === oldLen && this.#expandable(vma, newLen - oldLen)) {
      // vma_merge_extend(): the VMA grows, joining the next one when it can.
      this.#mergeNewRange(vma.end, vma.end + newLen - oldLen, vma, vma.pgoff + pagesOf(vma), false);
      return addr;
    }
    if ((flags & MREMAP_MAYMOVE) === 0) return -ENOMEM;
    const target = this.#getUnmappedArea(vma.backing !== null, 0, newLen, (vma.flags & VM_MAYSHARE) !== 0 ? MAP_SHARED : 0);
    if (target < 0) return target;
    return this.#moveVma(vma, addr, oldLen, newLen, target);
  }

  /** `brk()`: `SYSCALL_DEFINE1(brk)` and `do_brk_flags`. Returns the new break, or the old one on failure. */
  sysBrk(brk: number): number {
    const origbrk = this.brk;
    if (brk < this.layout.startBrk) return origbrk;
    const newbrk = pageAlign(brk);
    const oldbrk = pageAlign(this.brk);
    if (oldbrk === newbrk) {
      this.brk = brk;
      return brk;
    }
    if (brk <= this.brk) {
      // Always allow shrinking brk, but only over something mapped.
      if (this.#vmasIn(newbrk, oldbrk).length === 0) return origbrk;
      this.brk = brk;
      if (this.#unmapRange(newbrk, oldbrk) < 0) {
        this.brk = origbrk;
        return origbrk;
      }
      return brk;
    }
    const next = this.#findVma(oldbrk);
    if (next !== null && newbrk + PAGE_SIZE > this.#startGap(next)) return origbrk;
    if (this.mapCount > this.layout.maxMapCount) return origbrk;
    // vma_prev_limit(&vmi, start_brk): the VMA before the break, when the gap it leaves starts above start_brk.
    const prev = this.#endingAt(oldbrk);
    const brkvma = prev !== null && oldbrk > this.layout.startBrk ? prev : null;
    const props: RefProps = { flags: BRK_FLAGS, backing: null, anonVma: 0 };
    const expanded = brkvma !== null && this.#mergeNewRange(oldbrk, newbrk, props, oldbrk / PAGE_SIZE, true) !== null;
    if (!expanded) this.#fill(oldbrk, newbrk, { ...props, id: this.#nextVma++ }, oldbrk / PAGE_SIZE);
    this.brk = brk;
    return brk;
  }

  /** A user page fault (x86 `do_user_addr_fault` -> `lock_mm_and_find_vma` -> `handle_mm_fault`). */
  handleMmFault(addr: number, access: 'read' | 'write'): RefFaultResult {
    let vma = this.#findVma(addr);
    if (vma === null) return 'SEGV_MAPERR';
    if (vma.start > addr) {
      if ((vma.flags & VM_GROWSDOWN) === 0) return 'SEGV_MAPERR';
      if (!this.#expandDownwards(vma, addr)) return 'SEGV_MAPERR';
      vma = this.#vmaLookup(addr)!;
    }
    // access_error()
    if (access === 'write' ? (vma.flags & VM_WRITE) === 0 : (vma.flags & VM_ACCESS_FLAGS) === 0) return 'SEGV_ACCERR';
    if (this.#thpPossible(vma, addr)) throw new Error(`reference: a fault at 0x${addr.toString(16)} could map a THP, which is not modelled`);
    // A write to a private mapping gets an anonymous page (do_anonymous_page, do_cow_fault,
    // wp_page_copy), which needs an anon_vma; reads map the zero page or the file page.
    if (access === 'write' && (vma.flags & VM_SHARED) === 0) this.#anonVmaPrepare(vma);
    return 'ok';
  }

  /** `/proc/pid/maps` (`show_map_vma`). */
  renderMaps(): string {
    let out = '';
    for (const vma of this.vmas()) out += `${this.#mapsLine(vma)}\n`;
    return out;
  }

  // --- mmap ---

  /** `mmap_region()` -> `__mmap_region()`: unmap what is there, merge with a neighbour or add a VMA. */
  #mmapRegion(file: MmFile | null, addr: number, len: number, vmFlags: number, pgoff: number): number {
    const end = addr + len;
    const r = this.#unmapRange(addr, end);
    if (r < 0) return r;
    // accountable_mapping()
    if ((vmFlags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) === VM_WRITE) vmFlags |= VM_ACCOUNT;
    // The merge sees map->file, still NULL for shared anonymous memory (shmem_zero_setup comes after).
    const shared = file === null && (vmFlags & VM_SHARED) !== 0;
    if (this.#mergeNewRange(addr, end, { flags: vmFlags, backing: file, anonVma: 0 }, pgoff, false) !== null) return addr;
    const backing: RefBacking = shared ? new SharedAnonFile(this.#nextShmem++) : file;
    this.#fill(addr, end, { id: this.#nextVma++, flags: vmFlags, backing, anonVma: 0 }, pgoff);
    return addr;
  }

  /**
   * `__get_unmapped_area()` on x86-64 (`arch_get_unmapped_area_topdown`): MAP_FIXED takes the
   * address as is; a hint is taken when it is free up to the guard gap of the VMA above; else
   * the highest free area below `mmap_base`. Private anonymous mappings of a 2 MiB multiple
   * without a hint go through `thp_get_unmapped_area` (`withFile` covers real files and shmem).
   */
  #getUnmappedArea(withFile: boolean, addr: number, len: number, flags: number): number {
    if (len > TASK_SIZE) return -ENOMEM;
    let found: number;
    if ((flags & MAP_FIXED) !== 0) found = addr;
    else if (!withFile && (flags & MAP_SHARED) === 0 && addr === 0 && len % HPAGE_PMD_SIZE === 0) found = this.#thpArea(len);
    else found = this.#topDownArea(addr, len);
    if (found < 0) return found;
    if (found > TASK_SIZE - len) return -ENOMEM;
    if (found % PAGE_SIZE !== 0) return -EINVAL;
    if (found < MMAP_MIN_ADDR) return -EPERM; // security_mmap_addr()
    return found;
  }

  #topDownArea(hint: number, len: number): number {
    if (hint !== 0 && TASK_SIZE - len >= hint) {
      const next = this.#findVma(hint);
      if (next === null || hint + len <= this.#startGap(next)) return hint;
    }
    const gapEnd = this.#highestGapEnd(len);
    return gapEnd - len;
  }

  /**
   * `__thp_get_unmapped_area()`: ask for `len` + 2 MiB without alignment, then place the mapping
   * on the first 2 MiB boundary inside (top-down: one boundary up when already aligned). Falls
   * back to the plain search when the padded length does not fit.
   */
  #thpArea(len: number): number {
    const lenPad = len + HPAGE_PMD_SIZE;
    const gapEnd = this.#highestGapEnd(lenPad, true);
    if (gapEnd < 0) return this.#topDownArea(0, len);
    const ret = gapEnd - lenPad;
    const offSub = (HPAGE_PMD_SIZE - (ret % HPAGE_PMD_SIZE)) % HPAGE_PMD_SIZE;
    return offSub === 0 ? ret + HPAGE_PMD_SIZE : ret + offSub;
  }

  /**
   * `unmapped_area_topdown()`: the end of the highest gap between VMAs, cut to
   * [mmap_min_addr, mmap_base) and to the guard gap of the VMA above it, that holds `len`.
   */
  #highestGapEnd(len: number, mayFail = false): number {
    const vmas = this.vmas();
    const low = Math.max(PAGE_SIZE, MMAP_MIN_ADDR);
    const high = this.layout.mmapBase;
    for (let i = vmas.length; i >= 0; i--) {
      const above = vmas[i];
      const below = vmas[i - 1];
      const gapStart = Math.max(below === undefined ? 0 : below.end, low);
      const gapEnd = Math.min(above === undefined ? TASK_SIZE : this.#startGap(above), high);
      if (gapEnd - gapStart >= len) return gapEnd;
    }
    if (mayFail) return -ENOMEM;
    throw new Error('reference: no room below mmap_base; the bottom-up fallback is not modelled');
  }

  /** `vm_start_gap()`: a stack keeps `stack_guard_gap` free below it. */
  #startGap(vma: RefVma): number {
    return (vma.flags & VM_GROWSDOWN) !== 0 ? Math.max(0, vma.start - STACK_GUARD_GAP) : vma.start;
  }

  // --- unmap, split, merge ---

  /**
   * `do_vmi_align_munmap()`: split the VMAs at the ends and drop the pages. Fails with -ENOMEM,
   * changing nothing, only when one VMA would be cut in three at `max_map_count`.
   */
  #unmapRange(start: number, end: number): number {
    const inside = this.#vmasIn(start, end);
    const first = inside[0];
    const last = inside[inside.length - 1];
    if (first === undefined || last === undefined) return 0;
    if (first.start < start && end < first.end && this.mapCount >= this.layout.maxMapCount) return -ENOMEM;
    if (last.end > end) this.#split(last, end);
    this.#erase(start, end);
    return 0;
  }

  /** `__split_vma()`: the pages of `vma` from `addr` up become a VMA of their own. */
  #split(vma: RefVma, addr: number): void {
    check(
      vma.start < addr && addr < vma.end && addr % PAGE_SIZE === 0,
      `split of 0x${vma.start.toString(16)}-0x${vma.end.toString(16)} at 0x${addr.toString(16)}`,
    );
    this.#fill(addr, vma.end, { ...vma, id: this.#nextVma++ }, vma.pgoff + (addr - vma.start) / PAGE_SIZE);
  }

  /**
   * `vma_merge_new_range()` for a new range `[start, end)` with `props` at file page `pgoff`
   * (mmap, brk, mremap's move and in-place growth): extend the VMA ending at `start`, the one
   * starting at `end`, or both. Returns the identity now covering the range, or null.
   */
  #mergeNewRange(start: number, end: number, props: RefProps, pgoff: number, justExpand: boolean): number | null {
    check(this.#vmasIn(start, end).length === 0, 'a new range must be unmapped before it is merged');
    if ((props.flags & VM_SPECIAL) !== 0) return null;
    const prev = this.#endingAt(start);
    const next = this.#startingAt(end);
    const left = prev !== null && sameProps(prev, props) && anonCompatible(props.anonVma, prev.anonVma) && prev.pgoff + pagesOf(prev) === pgoff;
    const right =
      !justExpand &&
      next !== null &&
      sameProps(next, props) &&
      anonCompatible(props.anonVma, next.anonVma) &&
      next.pgoff === pgoff + (end - start) / PAGE_SIZE &&
      (!left || anonCompatible(prev.anonVma, next.anonVma));
    if (left) {
      // vma_expand(): prev grows over the range, and over next (taking its anon_vma if prev has none).
      const to = right ? next.end : end;
      const anonVma = right && prev.anonVma === 0 ? next.anonVma : prev.anonVma;
      this.#fill(prev.start, to, { ...prev, anonVma }, prev.pgoff);
      return prev.id;
    }
    if (right) {
      this.#fill(start, next.end, next, pgoff);
      return next.id;
    }
    return null;
  }

  /**
   * `vma_modify_flags()`: give `[start, end)` of `vma` the flags `flags`, merging with the VMA
   * before or after when the kernel would (`vma_merge_existing_range`), else splitting; each
   * split may fail at `max_map_count`, leaving the ones already made.
   */
  #vmaModify(vma: RefVma, start: number, end: number, flags: number): number {
    const pgoff = vma.pgoff + (start - vma.start) / PAGE_SIZE;
    if (this.#mergeExistingRange(vma, start, end, flags, pgoff)) return 0;
    if (vma.start < start) {
      if (this.mapCount >= this.layout.maxMapCount) return -ENOMEM;
      this.#split(vma, start);
    }
    const middle = this.#vmaLookup(start)!;
    if (middle.end > end) {
      if (this.mapCount >= this.layout.maxMapCount) return -ENOMEM;
      this.#split(middle, end);
    }
    this.#fill(start, end, { ...this.#vmaLookup(start)!, flags }, pgoff);
    return 0;
  }

  /** `vma_merge_existing_range()`: true when `[start, end)` of `middle` joined a neighbour. */
  #mergeExistingRange(middle: RefVma, start: number, end: number, flags: number, pgoff: number): boolean {
    const leftSide = start === middle.start;
    const rightSide = end === middle.end;
    if ((flags & VM_SPECIAL) !== 0 || (!leftSide && !rightSide)) return false;
    const props: RefProps = { flags, backing: middle.backing, anonVma: middle.anonVma };
    const prev = leftSide ? this.#endingAt(start) : null;
    const next = rightSide ? this.#startingAt(end) : null;
    const left = prev !== null && sameProps(prev, props) && anonCompatible(middle.anonVma, prev.anonVma) && prev.pgoff + pagesOf(prev) === pgoff;
    const right =
      next !== null &&
      sameProps(next, props) &&
      anonCompatible(middle.anonVma, next.anonVma) &&
      next.pgoff === pgoff + (end - start) / PAGE_SIZE &&
      (!left || anonCompatible(prev.anonVma, next.anonVma));
    if (left) {
      // prev extends over the range (and over next); dup_anon_vma() fills a missing anon_vma.
      const to = right ? next.end : end;
      const anonVma = prev.anonVma !== 0 ? prev.anonVma : right && next.anonVma !== 0 ? next.anonVma : middle.anonVma;
      this.#fill(prev.start, to, { ...prev, anonVma }, prev.pgoff);
      return true;
    }
    if (right) {
      const anonVma = next.anonVma !== 0 ? next.anonVma : middle.anonVma;
      this.#fill(start, next.end, { ...next, anonVma }, pgoff);
      return true;
    }
    return false;
  }

  // --- mprotect, madvise ---

  /** `mprotect_fixup()`: the VM_ACCOUNT rules, then `vma_modify_flags`. */
  #mprotectFixup(vma: RefVma, start: number, end: number, newFlags: number): number {
    const oldFlags = vma.flags;
    if (newFlags === oldFlags) return 0;
    if ((newFlags & VM_WRITE) !== 0) {
      // A private mapping made writable is charged from now on.
      if ((oldFlags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE)) === 0) newFlags |= VM_ACCOUNT;
    } else if ((oldFlags & VM_ACCOUNT) !== 0 && vma.backing === null && vma.anonVma === 0) {
      // An anonymous mapping never faulted in stops being charged when made read-only (v6.7).
      newFlags &= ~VM_ACCOUNT;
    }
    return this.#vmaModify(vma, start, end, newFlags);
  }

  /** `madvise_vma_behavior()` for one piece `[start, end)` of `vma`. */
  #madviseVma(vma: RefVma, start: number, end: number, advice: number): number {
    let flags = vma.flags;
    switch (advice) {
      case MADV_DONTNEED:
        // madvise_dontneed_free_valid_vma(); the zap changes no VMA.
        return (vma.flags & (VM_LOCKED | VM_PFNMAP)) !== 0 ? -EINVAL : 0;
      case MADV_DONTFORK:
        flags |= VM_DONTCOPY;
        break;
      case MADV_DOFORK:
        if ((vma.flags & VM_IO) !== 0) return -EINVAL;
        flags &= ~VM_DONTCOPY;
        break;
      case MADV_HUGEPAGE:
        flags = (flags & ~VM_NOHUGEPAGE) | VM_HUGEPAGE;
        break;
      case MADV_NOHUGEPAGE:
        flags = (flags & ~VM_HUGEPAGE) | VM_NOHUGEPAGE;
        break;
    }
    if (flags === vma.flags) return 0;
    const r = this.#vmaModify(vma, start, end, flags);
    // madvise() returns EAGAIN if kernel resources, such as slab, are temporarily unavailable.
    return r === -ENOMEM ? -EAGAIN : r;
  }

  // --- mremap ---

  /**
   * `mremap_to()`: unmap the target and the tail given up, then move what is left there. v6.12
   * order: the target is unmapped before `vma_to_resize()` may still fail with -EFAULT (v6.16
   * checks the new address before the VMA lookup and the VMA before unmapping anything).
   */
  #mremapTo(addr: number, oldLen: number, newLen: number, newAddr: number): number {
    if (newAddr % PAGE_SIZE !== 0) return -EINVAL;
    if (newLen > TASK_SIZE || newAddr > TASK_SIZE - newLen) return -EINVAL;
    if (addr + oldLen > newAddr && newAddr + newLen > addr) return -EINVAL;
    // Stay 4 maps below the limit after the two unmaps below may each add one.
    if (this.mapCount + 2 >= this.layout.maxMapCount - 3) return -ENOMEM;
    let r = this.#unmapRange(newAddr, newAddr + newLen);
    if (r < 0) return r;
    if (oldLen > newLen) {
      r = this.#unmapRange(addr + newLen, addr + oldLen);
      if (r < 0) return r;
      oldLen = newLen;
    }
    const vma = this.#vmaToResize(addr, oldLen, newLen);
    if (typeof vma === 'number') return vma;
    if (newAddr < MMAP_MIN_ADDR) return -EPERM; // get_unmapped_area(MAP_FIXED)
    return this.#moveVma(vma, addr, oldLen, newLen, newAddr);
  }

  /** `vma_to_resize()`: the VMA at `addr`, when `[addr, addr+oldLen)` of it may become `newLen` long; else -errno. */
  #vmaToResize(addr: number, oldLen: number, newLen: number): RefVma | number {
    const vma = this.#vmaLookup(addr);
    if (vma === null) return -EFAULT;
    if (oldLen === 0 && (vma.flags & (VM_SHARED | VM_MAYSHARE)) === 0) return -EINVAL;
    if (oldLen > vma.end - addr) return -EFAULT;
    if (newLen !== oldLen && (vma.flags & (VM_DONTEXPAND | VM_PFNMAP)) !== 0) return -EFAULT;
    return vma;
  }

  /** `vma_expandable()`: nothing mapped in the `delta` bytes after `vma` (no guard gap asked: MAP_FIXED). */
  #expandable(vma: RefVma, delta: number): boolean {
    const end = vma.end + delta;
    if (end > TASK_SIZE) return false;
    return this.#vmasIn(vma.end, end).length === 0;
  }

  /**
   * `move_vma()`: copy the range to `newAddr` (`copy_vma`: merging there when it can; an
   * anonymous VMA never faulted takes the new address as its pgoff), then unmap the old range.
   */
  #moveVma(vma: RefVma, oldAddr: number, oldLen: number, newLen: number, newAddr: number): number {
    if (this.mapCount >= this.layout.maxMapCount - 3) return -ENOMEM;
    const pgoff = vma.backing === null && vma.anonVma === 0 ? newAddr / PAGE_SIZE : vma.pgoff + (oldAddr - vma.start) / PAGE_SIZE;
    const props: RefProps = { flags: vma.flags, backing: vma.backing, anonVma: vma.anonVma };
    if (this.#mergeNewRange(newAddr, newAddr + newLen, props, pgoff, false) === null) {
      this.#fill(newAddr, newAddr + newLen, { ...props, id: this.#nextVma++ }, pgoff);
    }
    // Unmapping the source cannot fail: the check above left room for its split in three. An
    // old length of 0 (duplicating a shared mapping) unmaps nothing: do_munmap() refuses it.
    if (oldLen > 0) this.#unmapRange(oldAddr, oldAddr + oldLen);
    return newAddr;
  }

  // --- faults ---

  /**
   * `expand_downwards()`: grow a stack VMA down to the page of `addr`, keeping `stack_guard_gap`
   * from an accessible VMA below that is not a stack itself. The anon_vma is prepared first.
   */
  #expandDownwards(vma: RefVma, addr: number): boolean {
    const address = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
    if (address < MMAP_MIN_ADDR) return false;
    const prev = this.#prevOf(vma);
    if (prev !== null && (prev.flags & VM_GROWSDOWN) === 0 && (prev.flags & VM_ACCESS_FLAGS) !== 0 && address - prev.end < STACK_GUARD_GAP) return false;
    this.#anonVmaPrepare(vma);
    const grown = this.#vmaLookup(vma.start)!;
    const grow = (grown.start - address) / PAGE_SIZE;
    if (grow > grown.pgoff || grown.end - address > RLIMIT_STACK) return false;
    this.#fill(address, grown.start, grown, grown.pgoff - grow);
    return true;
  }

  /**
   * `anon_vma_prepare()` -> `find_mergeable_anon_vma()`: reuse the anon_vma of the next VMA,
   * else of the previous one, when it could have been one VMA with this one but for the access
   * flags (`anon_vma_compatible`); else a new anon_vma.
   */
  #anonVmaPrepare(vma: RefVma): void {
    if (vma.anonVma !== 0) return;
    const next = this.#startingAt(vma.end);
    const prev = this.#endingAt(vma.start);
    let anonVma: number;
    if (next !== null && next.anonVma !== 0 && anonVmaReusable(vma, next)) anonVma = next.anonVma;
    else if (prev !== null && prev.anonVma !== 0 && anonVmaReusable(prev, vma)) anonVma = prev.anonVma;
    else anonVma = this.#nextAnonVma++;
    this.#fill(vma.start, vma.end, { ...vma, anonVma }, vma.pgoff);
  }

  /** Could `do_huge_pmd_anonymous_page()` serve a fault at `addr` (THP `madvise` mode)? */
  #thpPossible(vma: RefVma, addr: number): boolean {
    if (vma.backing !== null || (vma.flags & VM_HUGEPAGE) === 0 || (vma.flags & VM_NOHUGEPAGE) !== 0) return false;
    const base = Math.floor(addr / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE;
    return base >= vma.start && base + HPAGE_PMD_SIZE <= vma.end;
  }

  // --- maps ---

  /** One line of `/proc/pid/maps` (`show_map_vma`), without the newline. */
  #mapsLine(vma: RefVma): string {
    const file = vma.backing instanceof SharedAnonFile ? null : vma.backing;
    const f = vma.flags;
    const perms = `${f & VM_READ ? 'r' : '-'}${f & VM_WRITE ? 'w' : '-'}${f & VM_EXEC ? 'x' : '-'}${f & VM_MAYSHARE ? 's' : 'p'}`;
    const offset = file !== null ? vma.pgoff * PAGE_SIZE : 0;
    const dev = file !== null ? `${hex(file.devMajor, 2)}:${hex(file.devMinor, 2)}` : '00:00';
    const ino = file !== null ? file.ino : 0;
    const prefix = `${hex(vma.start, 8)}-${hex(vma.end, 8)} ${perms} ${hex(offset, 8)} ${dev} ${ino} `;
    let name = '';
    if (file !== null) name = file.path;
    else if (vma.start < this.brk && vma.end > this.layout.startBrk)
      name = '[heap]'; // vma_is_initial_heap()
    else if (vma.start <= this.layout.startStack && vma.end >= this.layout.startStack) name = '[stack]';
    if (name === '') return prefix;
    return `${prefix.padEnd(MAPS_NAME_PAD, ' ')} ${name}`;
  }

  // --- lookups ---

  /** `find_vma()`: the first VMA ending above `addr`. */
  #findVma(addr: number): RefVma | null {
    return this.vmas().find((v) => v.end > addr) ?? null;
  }

  /** `vma_lookup()`: the VMA containing `addr`. */
  #vmaLookup(addr: number): RefVma | null {
    const v = this.#findVma(addr);
    return v !== null && v.start <= addr ? v : null;
  }

  #endingAt(addr: number): RefVma | null {
    return this.vmas().find((v) => v.end === addr) ?? null;
  }

  #startingAt(addr: number): RefVma | null {
    return this.vmas().find((v) => v.start === addr) ?? null;
  }

  #prevOf(vma: RefVma): RefVma | null {
    const vmas = this.vmas();
    return vmas[vmas.findIndex((v) => v.id === vma.id) - 1] ?? null;
  }

  /** The VMAs intersecting `[start, end)`. */
  #vmasIn(start: number, end: number): RefVma[] {
    return this.vmas().filter((v) => v.end > start && v.start < end);
  }

  // --- page updates ---

  /** Map every page of `[start, end)` as part of VMA `props.id`, the first at file page `pgoff`. */
  #fill(start: number, end: number, props: RefProps & { readonly id: number }, pgoff: number): void {
    check(start < end && start % PAGE_SIZE === 0 && end % PAGE_SIZE === 0, `fill of 0x${start.toString(16)}-0x${end.toString(16)}`);
    check(pgoff >= 0, 'a negative file page');
    for (let addr = start, i = 0; addr < end; addr += PAGE_SIZE, i++) {
      this.#pages.set(addr / PAGE_SIZE, { vma: props.id, flags: props.flags, backing: props.backing, pgoff: pgoff + i, anonVma: props.anonVma });
    }
    this.#vmaCache = null;
  }

  /** Unmap the pages of `[start, end)` (only the mapped ones are visited). */
  #erase(start: number, end: number): void {
    for (const vma of this.#vmasIn(start, end)) {
      for (let addr = Math.max(start, vma.start); addr < Math.min(end, vma.end); addr += PAGE_SIZE) this.#pages.delete(addr / PAGE_SIZE);
    }
    this.#vmaCache = null;
  }
}
