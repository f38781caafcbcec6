import type { MmLockGuard } from './lockPolicy.js';
import { vmaAssertLocked } from './mmapLock.js';
import type { MmStruct } from './mmStruct.js';
import { Page, zeroPage } from './pageTables.js';
import type { MmTask } from './task.js';
import {
  EFAULT,
  HPAGE_PMD_SIZE,
  MMAP_MIN_ADDR,
  PAGE_SIZE,
  STACK_GUARD_GAP,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
} from './uapi.js';
import { AnonVma, type MmGen, type Vma, type VmFault } from './vma.js';

/** The access a fault is for. */
export type FaultAccess = 'read' | 'write' | 'exec';

/**
 * How a fault ended: handled, or the signal the task gets (`SEGV_MAPERR`: no VMA there;
 * `SEGV_ACCERR`: the VMA forbids the access; `SIGBUS`: the backing could not supply a page).
 */
export type FaultResult = 'ok' | 'SEGV_MAPERR' | 'SEGV_ACCERR' | 'SIGBUS';

/** Inside the fault path: a speculative attempt was aborted (`VM_FAULT_RETRY`); never returned to callers. */
type FaultOutcome = FaultResult | 'RETRY';

/**
 * A user page fault at `addr` (`handle_mm_fault` via the arch fault handler): takes what the
 * lock policy gives a fault, grows a stack where the kernel would, and maps the page.
 * Context: process context, no mm lock held, may sleep.
 */
export function* handleMmFault(task: MmTask, addr: number, access: FaultAccess): MmGen<FaultResult> {
  const { mm, thread } = task;
  thread.work('faultNs');
  let guard = yield* mm.policy.lockForFault(mm, thread, addr, false);
  let result = yield* faultUnder(task, guard, addr, access, true);
  yield* mm.policy.unlock(guard);
  if (result === 'RETRY') {
    // A speculative attempt saw the VMA or its page table change: once more, under a real lock.
    guard = yield* mm.policy.lockForFault(mm, thread, addr, true);
    result = yield* faultUnder(task, guard, addr, access, true);
    yield* mm.policy.unlock(guard);
    if (result === 'RETRY') throw new Error(`${mm.policy.name}: a fault retried after an abort was aborted again (lockForFault(retry) must not speculate)`);
  }
  if (result === 'SEGV_MAPERR' || result === 'SEGV_ACCERR') mm.faultCounts.sigsegv++;
  if (result === 'SIGBUS') mm.faultCounts.sigbus++;
  return result;
}

/** `access_error()` of x86: what a VMA allows. */
export function accessAllowed(vma: Vma, access: FaultAccess): boolean {
  if (access === 'write') return (vma.flags & VM_WRITE) !== 0;
  if (access === 'exec') return (vma.flags & VM_EXEC) !== 0;
  return (vma.flags & (VM_READ | VM_WRITE | VM_EXEC)) !== 0;
}

/**
 * The fault under a guard the caller holds (the fault path, get_user_pages, populate).
 * `mayGrowStack`: only a user fault may expand a stack VMA.
 */
export function* faultLocked(task: MmTask, guard: MmLockGuard, addr: number, access: FaultAccess, mayGrowStack: boolean): MmGen<FaultResult> {
  const r = yield* faultUnder(task, guard, addr, access, mayGrowStack);
  if (r === 'RETRY') throw new Error(`${task.mm.policy.name}: a speculative guard was used where only a real lock is allowed (get_user_pages)`);
  return r;
}

function* faultUnder(task: MmTask, guard: MmLockGuard, addr: number, access: FaultAccess, mayGrowStack: boolean): MmGen<FaultOutcome> {
  const { mm } = task;
  mm.policy.assertStable(guard, addr);
  let vma = mm.findVma(addr);
  if (vma === null) return 'SEGV_MAPERR';
  // A VMA above a hole is used (and must be stable) only when it is a stack that may grow.
  if (vma.start > addr && (!mayGrowStack || (vma.flags & VM_GROWSDOWN) === 0)) return 'SEGV_MAPERR';
  vmaAssertLocked(guard, vma, 'the fault reads the VMA');
  if (vma.start > addr) {
    const grown = yield* expandStack(mm, guard, vma, addr);
    if (grown === null) return 'SEGV_MAPERR';
    vma = grown;
  }
  if (!accessAllowed(vma, access)) return 'SEGV_ACCERR';
  return yield* handlePte(task, guard, vma, addr, access === 'write');
}

/**
 * `expand_downwards()`: grow a VM_GROWSDOWN VMA down to the page of `addr`, keeping the stack
 * guard gap from the VMA below (unless that one is a stack too, or inaccessible). R9: under the
 * fault guard plus what `beginStackGrowth` takes (global-rwsem: page_table_lock).
 */
function* expandStack(mm: MmStruct, guard: MmLockGuard, vma: Vma, addr: number): MmGen<Vma | null> {
  const newStart = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
  if (newStart < MMAP_MIN_ADDR) return null;
  const prev = mm.prevVma(vma);
  if (prev !== null && (prev.flags & VM_GROWSDOWN) === 0 && prev.isAccessible() && newStart - prev.end < STACK_GUARD_GAP) return null;
  if (prev !== null && prev.end > newStart) return null;
  // expand_downwards() prepares the anon_vma first, whatever the access.
  anonVmaPrepare(mm, vma);
  if (!(yield* mm.policy.beginStackGrowth(guard, newStart))) return null;
  // Another fault may have grown it while we waited for the growth lock.
  if (vma.start > newStart && !vma.detached) {
    mm.growStackUnchecked(vma, newStart);
    mm.faultCounts.stackGrowth++;
  }
  yield* mm.policy.endStackGrowth(guard);
  return vma.detached ? null : vma;
}

/** `anon_vma_prepare()`: give the VMA an anon_vma, reusing a mergeable neighbour's. */
export function anonVmaPrepare(mm: MmStruct, vma: Vma): void {
  if (vma.anonVma !== null) return;
  // find_mergeable_anon_vma(): the next VMA first, then the previous one.
  const next = mm.nextVma(vma);
  const prev = mm.prevVma(vma);
  vma.anonVma =
    (next !== null && anonVmaCompatible(vma, next) ? reusable(next) : null) ??
    (prev !== null && anonVmaCompatible(prev, vma) ? reusable(prev) : null) ??
    new AnonVma();
}

/**
 * `anon_vma_compatible(a, b)`: `a` ends where `b` starts, same file, flags equal but for the
 * access bits, and contiguous page offsets: b could share a's anon_vma (and later merge).
 */
function anonVmaCompatible(a: Vma, b: Vma): boolean {
  const access = VM_READ | VM_WRITE | VM_EXEC;
  return a.end === b.start && a.file === b.file && ((a.flags ^ b.flags) & ~access) === 0 && b.pgoff === a.pgoff + (b.start - a.start) / PAGE_SIZE;
}

/** `reusable_anon_vma()`: a neighbour's anon_vma is reused only when its chain is one entry (not inherited through fork). */
function reusable(neighbour: Vma): AnonVma | null {
  const av = neighbour.anonVma;
  return av !== null && av.parent === null ? av : null;
}

/** Should an anonymous fault at `addr` map a THP? (`thp_vma_allowable_order` for PMD order.) */
function thpAllowed(mm: MmStruct, vma: Vma, addr: number): boolean {
  if (!vma.isAnonymous() || (vma.flags & VM_SHARED) !== 0) return false;
  if (mm.thp === 'never' || (vma.flags & VM_NOHUGEPAGE) !== 0) return false;
  if (mm.thp === 'madvise' && (vma.flags & VM_HUGEPAGE) === 0) return false;
  const base = Math.floor(addr / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE;
  if (base < vma.start || base + HPAGE_PMD_SIZE > vma.end) return false;
  const pmd = mm.pageTables.pmd(base);
  return pmd === undefined || (pmd.huge === null && (pmd.pte === null || pmd.pte.present === 0));
}

/** The page-cache page of `file` at `index` (created on first use). */
function pageCachePage(vma: Vma, index: number): Page {
  const cache = vma.file!.pageCache;
  let page = cache.get(index) as Page | undefined;
  if (page === undefined) {
    page = new Page(false, false, vma.file, index);
    cache.set(index, page);
  }
  return page;
}

/**
 * `handle_pte_fault()`: map a missing page (anonymous, THP, file) or resolve a write-protect
 * fault (copy-on-write, or `page_mkwrite` for a shared file page). PTE updates run under the
 * split PTE lock; installing tables and huge PMDs under `page_table_lock`.
 */
function* handlePte(task: MmTask, guard: MmLockGuard, vma: Vma, addr: number, write: boolean): MmGen<FaultOutcome> {
  const valid = (): boolean => task.mm.policy.revalidateFault?.(guard) ?? true;
  const { mm, thread } = task;
  const pt = mm.pageTables;
  const page = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
  const present = pt.lookup(page);
  if (present !== null) {
    if (!write || present.writable) return 'ok';
    return yield* wpFault(task, guard, vma, page, present.page, present.huge);
  }
  const vmf: VmFault = { vma, address: page, pgoff: vma.pgoffOf(page), write, thread };
  if (vma.isAnonymous()) {
    // do_anonymous_page(): a read of private memory maps the zero page and needs no anon_vma;
    // only a fault that allocates (a write, a shared page, a THP) prepares one.
    if (write || (vma.flags & VM_SHARED) !== 0 || thpAllowed(mm, vma, page)) anonVmaPrepare(mm, vma);
    if (thpAllowed(mm, vma, page)) {
      thread.work('pageZeroNs', HPAGE_PMD_SIZE / PAGE_SIZE);
      yield pt.pageTableLock.lock();
      if (!valid()) {
        yield pt.pageTableLock.unlock();
        return 'RETRY';
      }
      const base = Math.floor(page / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE;
      if (pt.lookup(base) === null && (pt.pmd(base)?.pte?.present ?? 0) === 0) {
        pt.setHugePmd(base, new Page(true, true), (vma.flags & VM_WRITE) !== 0);
        mm.faultCounts.huge++;
      }
      yield pt.pageTableLock.unlock();
      return 'ok';
    }
    // A new page is allocated and zeroed before the PTE lock (the zero page needs neither).
    if (write || (vma.flags & VM_SHARED) !== 0) thread.work('pageZeroNs');
    const table = pt.pteTableFor(page);
    yield table.ptl.lock();
    if (!valid()) {
      yield table.ptl.unlock();
      return 'RETRY';
    }
    if (pt.lookup(page) === null) {
      if (write || (vma.flags & VM_SHARED) !== 0) pt.setPte(page, new Page(true, false), (vma.flags & VM_WRITE) !== 0);
      else pt.setPte(page, zeroPage, false);
      mm.faultCounts.anon++;
    }
    yield table.ptl.unlock();
    return 'ok';
  }
  // File-backed (or a subsystem's VMA): the page comes from vm_ops->fault or the page cache.
  let filePage: Page;
  if (vma.vmOps?.fault !== undefined) {
    const r = yield* vma.vmOps.fault(vmf);
    if (r.kind !== 'page') return r.kind === 'retry' ? 'ok' : 'SIGBUS';
    filePage = vma.file !== null ? pageCachePage(vma, vmf.pgoff) : new Page(false, false, null, r.page);
  } else if (vma.file !== null) {
    filePage = pageCachePage(vma, vmf.pgoff);
  } else {
    return 'SIGBUS';
  }
  const shared = (vma.flags & VM_SHARED) !== 0;
  // A private write copies the file page into a new one.
  if (!shared && write) thread.work('pageZeroNs');
  if (shared && write && vma.vmOps?.pageMkwrite !== undefined) {
    const r = yield* vma.vmOps.pageMkwrite(vmf);
    if (r.kind !== 'page') return r.kind === 'retry' ? 'ok' : 'SIGBUS';
  }
  const table = pt.pteTableFor(page);
  yield table.ptl.lock();
  if (!valid()) {
    yield table.ptl.unlock();
    return 'RETRY';
  }
  if (pt.lookup(page) === null) {
    if (!shared && write) {
      // Private write: copy the file page into a new anonymous page.
      anonVmaPrepare(mm, vma);
      pt.setPte(page, new Page(true, false), true);
      mm.faultCounts.cow++;
    } else {
      pt.setPte(page, filePage, shared && write);
      mm.faultCounts.file++;
    }
  }
  yield table.ptl.unlock();
  return 'ok';
}

/** `do_wp_page()`: a write to a present read-only page of a writable VMA. */
function* wpFault(task: MmTask, guard: MmLockGuard, vma: Vma, addr: number, page: Page, huge: boolean): MmGen<FaultOutcome> {
  const { mm, thread } = task;
  const pt = mm.pageTables;
  const valid = (): boolean => mm.policy.revalidateFault?.(guard) ?? true;
  if (huge) {
    // A write to a shared (after fork) THP: split it, then handle the PTE.
    yield pt.pageTableLock.lock();
    if (!valid()) {
      yield pt.pageTableLock.unlock();
      return 'RETRY';
    }
    pt.splitHugePmd(addr);
    yield pt.pageTableLock.unlock();
    const view = pt.lookup(addr);
    if (view === null || view.writable) return 'ok';
    return yield* wpFault(task, guard, vma, addr, view.page, false);
  }
  const shared = (vma.flags & VM_SHARED) !== 0;
  if (shared && !page.anon && vma.vmOps?.pageMkwrite !== undefined) {
    const r = yield* vma.vmOps.pageMkwrite({ vma, address: addr, pgoff: vma.pgoffOf(addr), write: true, thread });
    if (r.kind !== 'page') return r.kind === 'retry' ? 'ok' : 'SIGBUS';
  }
  // Copy-on-write copies the page unless it is ours alone (decided again under the lock).
  if (!(shared || (page.anon && page.mapcount === 1 && !page.zero))) thread.work('pageZeroNs');
  const table = pt.pteTableFor(addr);
  yield table.ptl.lock();
  if (!valid()) {
    yield table.ptl.unlock();
    return 'RETRY';
  }
  const now = pt.lookup(addr);
  if (now !== null && !now.writable) {
    if (shared || (now.page.anon && now.page.mapcount === 1 && !now.page.zero)) {
      pt.setWritable(addr, true);
    } else {
      anonVmaPrepare(mm, vma);
      pt.setPte(addr, new Page(true, false), true);
      mm.faultCounts.cow++;
    }
  }
  yield table.ptl.unlock();
  return 'ok';
}

/**
 * `get_user_pages()`: fault in `nrPages` pages from `start` for the kernel's own access (no
 * stack growth). Returns the number of pages made present, or -EFAULT when the first one fails.
 * Context: no mm lock held; takes the policy's read-side lock.
 */
export function* getUserPages(task: MmTask, start: number, nrPages: number, write: boolean): MmGen<number> {
  const { mm, thread } = task;
  const first = Math.floor(start / PAGE_SIZE) * PAGE_SIZE;
  const guard = yield* mm.policy.lockForRead(mm, thread, first, first + nrPages * PAGE_SIZE);
  let done = 0;
  for (; done < nrPages; done++) {
    const addr = first + done * PAGE_SIZE;
    const view = mm.pageTables.lookup(addr);
    if (view !== null && (!write || view.writable)) continue;
    const r = yield* faultLocked(task, guard, addr, write ? 'write' : 'read', false);
    if (r !== 'ok') break;
  }
  yield* mm.policy.unlock(guard);
  return done === 0 && nrPages > 0 ? -EFAULT : done;
}

/** `mm_populate()`: fault in a newly mapped range (MAP_POPULATE, MAP_LOCKED), write if writable. */
export function* populate(task: MmTask, start: number, end: number): MmGen<void> {
  const vma = task.mm.vmaLookup(start);
  const write = vma !== null && (vma.flags & VM_WRITE) !== 0 && (vma.flags & VM_SHARED) === 0;
  yield* getUserPages(task, start, (end - start) / PAGE_SIZE, write);
}
