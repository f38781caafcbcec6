import {
  HPAGE_PMD_SIZE,
  LockAssertionError,
  type MmGen,
  type MmLockGuard,
  type MmStruct,
  type PmdEntry,
  type PteTable,
  SeqCount,
  type SimThread,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  VM_SHARED,
  type Vma,
  rcuReadLock,
  rcuReadUnlock,
} from '@vmalock/core';
import { GlobalRwsemPolicy } from './globalRwsem.js';

/**
 * Why a speculative fault gave up (Dufour's and Lespinasse's `SPF_ABORT_*` events, grouped):
 * - `vma-changed`: `mmap_seq` was odd at the start (a writer holds mmap_sem), or changed before
 *   the VMA copy was checked or before the page was installed (`SPF_ABORT_ODD`, `_VMA_COPY`,
 *   `_PTE_MAP_LOCK_SEQ`);
 * - `no-anon-vma`: an anonymous VMA without anon_vma; only mmap_sem may allocate one
 *   (`SPF_ABORT_ANON_VMA`);
 * - `pmd-changed`: the PMD of the address was none or huge at the start (speculation allocates
 *   no page table and handles no huge page), or is not the same PMD and PTE table when the page
 *   is installed: `MADV_DONTNEED` zaps and frees tables under mmap_sem read, which leaves
 *   `mmap_seq` alone (`SPF_ABORT_PUD`, `_PMD`, `_PTE_MAP_LOCK_PMD`);
 * - `unsupported`: no VMA contains the address (stack growth and SIGSEGV are decided under the
 *   lock), a file-backed or `vm_ops` VMA, or a VMA where the fault would allocate a THP
 *   (`SPF_ABORT_UNMAPPED`, `_NO_SPECULATE`).
 */
export type SpfAbortReason = 'vma-changed' | 'no-anon-vma' | 'pmd-changed' | 'unsupported';

export const spfAbortReasons: readonly SpfAbortReason[] = ['vma-changed', 'no-anon-vma', 'pmd-changed', 'unsupported'];

/**
 * What the speculative path did. At quiescence every attempt ended in exactly one success or
 * one abort, and every abort in exactly one fallback: `attempts = successes + Σ aborts` and
 * `fallbacks = Σ aborts` (`spfStatsBalanced`).
 */
export interface SpfStats {
  /** Faults that tried to speculate (`SPF_ATTEMPT`). */
  attempts: number;
  /** Speculative faults that completed without mmap_sem. */
  successes: number;
  /** Faults handled under mmap_sem read after an abort. */
  fallbacks: number;
  /** Aborts by reason (their sum is `SPF_ABORT`). */
  readonly aborts: Record<SpfAbortReason, number>;
  /** Of those, the aborts at `revalidateFault` (the speculation had reached the PTE lock). */
  abortsAtRevalidation: number;
}

function newSpfStats(): SpfStats {
  return { attempts: 0, successes: 0, fallbacks: 0, abortsAtRevalidation: 0, aborts: { 'vma-changed': 0, 'no-anon-vma': 0, 'pmd-changed': 0, unsupported: 0 } };
}

/** Σ aborts of `stats`. */
export function spfAbortTotal(stats: SpfStats): number {
  let total = 0;
  for (const reason of spfAbortReasons) total += stats.aborts[reason];
  return total;
}

/** True when every attempt ended once and every abort fell back once (no fault in flight). */
export function spfStatsBalanced(stats: SpfStats): boolean {
  const aborts = spfAbortTotal(stats);
  return stats.attempts === stats.successes + aborts && stats.fallbacks === aborts;
}

/** The per-mm state of `spf` (`mm.policyState`). */
class SpfMmState {
  /**
   * `mm->mmap_seq` (Lespinasse 2021). Written under: mmap_sem write — odd from the moment
   * mmap_sem is taken for write until it is released or downgraded. Read under: nothing
   * (speculative faults, inside an RCU read-side section).
   */
  readonly mmapSeq: SeqCount;
  readonly stats = newSpfStats();
  constructor(mm: MmStruct) {
    this.mmapSeq = new SeqCount(`mm${mm.pid}.mmap_seq`);
  }
}

/** What a fault guard of `spf` holds. A guard with `state: null` is one of global-rwsem's. */
interface SpfFaultState {
  readonly speculative: true;
  /** `mmap_seq` when the speculation started (even). */
  readonly seq: number;
  /** The PMD entry of the address and its PTE table at the start (`vmf->orig_pmd`). */
  readonly pmd: PmdEntry;
  readonly pte: PteTable;
  /** `revalidateFault` said no: the fault will retry under mmap_sem. */
  aborted: boolean;
}

function speculative(guard: MmLockGuard): SpfFaultState | null {
  const s = guard.state as SpfFaultState | null;
  return s !== null && s.speculative ? s : null;
}

/**
 * `spf`: speculative page faults (Laurent Dufour 2018; Michel Lespinasse 2021, whose scheme
 * this follows, with Dufour's abort reasons). Everything but faults runs as in `global-rwsem`,
 * and every mmap_sem write section is also a write section of the per-mm sequence count
 * `mmap_seq`: odd right after `mmap_write_lock`, even again at `mmap_write_unlock` and at
 * `mmap_write_downgrade` (Lespinasse's `mmap_write_downgrade` calls `__mmap_seq_write_unlock`:
 * after a downgrade the VMAs no longer change; munmap's zap and page-table freeing that follow
 * under the read lock are caught by the PMD/PTE-table check instead).
 *
 * A fault first speculates without mmap_sem, inside an RCU read-side section (which keeps freed
 * VMAs and page tables from being reused under it): it reads `mmap_seq` (odd: abort), looks the
 * VMA up, checks `mmap_seq` again in the same step (Lespinasse's check after copying the VMA:
 * what the fault path reads of the VMA before its first lock is therefore a consistent
 * snapshot), refuses what it cannot handle, and records the PMD and PTE table of the address.
 * Under the PTE lock, just before installing, `revalidateFault` checks that `mmap_seq` and the
 * PMD/PTE table are unchanged. Any abort makes the fault start over under mmap_sem read.
 */
export class SpfPolicy extends GlobalRwsemPolicy {
  override readonly name: string = 'spf';
  /** Sums over every mm attached to this policy (per mm: `statsOf`). */
  readonly stats: SpfStats = newSpfStats();

  override attach(mm: MmStruct): void {
    mm.policyState = new SpfMmState(mm);
  }

  /** What the speculative path of `mm` did. */
  statsOf(mm: MmStruct): Readonly<SpfStats> {
    return stateOf(mm).stats;
  }

  /**
   * Page fault at `addr`: speculate (`retry` false), or take mmap_sem for read (`retry` true:
   * an earlier speculation was aborted at `revalidateFault`). A speculative guard holds no lock,
   * only an RCU read-side section; `unlock` leaves it.
   */
  override *lockForFault(mm: MmStruct, thread: SimThread, addr: number, retry = false): MmGen<MmLockGuard> {
    if (retry) return yield* this.#fallback(mm, thread, addr);
    const state = stateOf(mm);
    this.#count(state, (s) => s.attempts++);
    yield rcuReadLock();
    // mmap_seq_read_start(): a load that does not wait for an odd count (read_seqcount_begin
    // would). Sampled in the step that issues the load, so readRetry sees that same value: the
    // effect is the load's cost and the scheduling point after it.
    const seq = state.mmapSeq.sequence;
    yield state.mmapSeq.readRetry(seq);
    const refused = seq % 2 !== 0 ? 'vma-changed' : this.#refuse(mm, addr, seq);
    if (refused !== null) {
      this.#count(state, (s) => s.aborts[refused]++);
      yield rcuReadUnlock();
      return yield* this.#fallback(mm, thread, addr);
    }
    const pmd = mm.pageTables.pmd(addr)!;
    const fault: SpfFaultState = { speculative: true, seq, pmd, pte: pmd.pte!, aborted: false };
    return { mm, thread, start: addr, end: addr + 1, mode: 'read', state: fault };
  }

  /**
   * Why the fault at `addr` may not speculate, or null. Runs in one step with the fault path's
   * reads of the VMA (nothing yields between here and its first lock).
   */
  #refuse(mm: MmStruct, addr: number, seq: number): SpfAbortReason | null {
    // mmap_seq_read_check() after the VMA copy: a writer came and went since the load.
    if (stateOf(mm).mmapSeq.sequence !== seq) return 'vma-changed';
    const vma = mm.vmaLookup(addr);
    if (vma === null || !vma.isAnonymous()) return 'unsupported';
    if (vma.anonVma === null) return 'no-anon-vma';
    const pmd = mm.pageTables.pmd(addr);
    const emptyPmd = pmd === undefined || (pmd.huge === null && (pmd.pte === null || pmd.pte.present === 0));
    if (emptyPmd && thpEligible(mm, vma, addr)) return 'unsupported';
    if (pmd === undefined || pmd.huge !== null || pmd.pte === null) return 'pmd-changed';
    return null;
  }

  /** The fault under mmap_sem read, as global-rwsem takes it. */
  *#fallback(mm: MmStruct, thread: SimThread, addr: number): MmGen<MmLockGuard> {
    const guard = yield* super.lockForFault(mm, thread, addr);
    this.#count(stateOf(mm), (s) => s.fallbacks++);
    return guard;
  }

  /**
   * Called by the fault path under the PTE lock (or `page_table_lock`) right before it installs:
   * a speculative guard is still valid iff `mmap_seq` is unchanged (no mmap_sem writer since
   * the start) and the PMD of the address still holds the same PTE table (no zap freed it, no
   * huge page replaced it). A guard taken under mmap_sem is always valid.
   */
  revalidateFault(guard: MmLockGuard): boolean {
    const fault = speculative(guard);
    if (fault === null) return true;
    assertSpeculating(guard, 'revalidateFault');
    if (fault.aborted) throw new Error(`spf: revalidateFault called again after an abort in ${guard.thread.label}`);
    const { mm } = guard;
    const pt = mm.pageTables;
    if (!guard.thread.holds(pt.pageTableLock) && !guard.thread.held.some((h) => h.lock === fault.pte.ptl || h.lock === pt.pmd(guard.start)?.pte?.ptl))
      throw new LockAssertionError(`spf: revalidateFault in ${guard.thread.label} without the PTE lock or page_table_lock`);
    const now = pt.pmd(guard.start);
    let reason: SpfAbortReason | null = null;
    if (stateOf(mm).mmapSeq.sequence !== fault.seq) reason = 'vma-changed';
    else if (now !== fault.pmd || now.huge !== null || now.pte !== fault.pte) reason = 'pmd-changed';
    if (reason === null) return true;
    fault.aborted = true;
    this.#count(stateOf(mm), (s) => {
      s.aborts[reason]++;
      s.abortsAtRevalidation++;
    });
    return false;
  }

  override *lockForModify(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<MmLockGuard> {
    const guard = yield* super.lockForModify(mm, thread, start, end);
    yield stateOf(mm).mmapSeq.writeBegin();
    return guard;
  }

  override *lockForMap(mm: MmStruct, thread: SimThread, length: number, place: (mm: MmStruct) => number): MmGen<{ guard: MmLockGuard | null; addr: number }> {
    // `place` only computes an address: nothing changes before mmap_seq is odd.
    const placed = yield* super.lockForMap(mm, thread, length, place);
    if (placed.guard !== null) yield stateOf(mm).mmapSeq.writeBegin();
    return placed;
  }

  override *lockForRemap(mm: MmStruct, thread: SimThread, oldStart: number, oldEnd: number): MmGen<MmLockGuard> {
    const guard = yield* super.lockForRemap(mm, thread, oldStart, oldEnd);
    yield stateOf(mm).mmapSeq.writeBegin();
    return guard;
  }

  override *lockAll(mm: MmStruct, thread: SimThread, mode: 'read' | 'write'): MmGen<MmLockGuard> {
    const guard = yield* super.lockAll(mm, thread, mode);
    if (mode === 'write') yield stateOf(mm).mmapSeq.writeBegin();
    return guard;
  }

  /** `mmap_write_downgrade()`: mmap_seq even first (the VMAs are final), then `downgrade_write`. */
  override *downgrade(guard: MmLockGuard): MmGen<void> {
    if (guard.mode !== 'write') return;
    yield stateOf(guard.mm).mmapSeq.writeEnd();
    yield* super.downgrade(guard);
  }

  override *unlock(guard: MmLockGuard): MmGen<void> {
    const fault = speculative(guard);
    if (fault !== null) {
      assertSpeculating(guard, 'unlock');
      if (!fault.aborted) this.#count(stateOf(guard.mm), (s) => s.successes++);
      yield rcuReadUnlock();
      return;
    }
    if (guard.mode === 'write') yield stateOf(guard.mm).mmapSeq.writeEnd();
    yield* super.unlock(guard);
  }

  override *beginStackGrowth(guard: MmLockGuard, newStart: number): MmGen<boolean> {
    // A speculative fault only speculates inside a VMA: growth is always decided under mmap_sem.
    if (speculative(guard) !== null) throw new LockAssertionError(`spf: stack growth under a speculative guard in ${guard.thread.label}`);
    return yield* super.beginStackGrowth(guard, newStart);
  }

  /**
   * A speculative guard is taken to keep every VMA stable: nothing is checked here. What it read
   * is validated at `revalidateFault`, under the PTE lock, before anything is installed; an
   * invalid speculation installs nothing and starts over under mmap_sem. Other guards: mmap_sem
   * is held.
   */
  override isVmaLocked(guard: MmLockGuard, vma: Vma): boolean {
    return speculative(guard) !== null || super.isVmaLocked(guard, vma);
  }

  /** A speculative guard: its thread is inside its RCU read-side section. Others: mmap_sem is held. */
  override assertStable(guard: MmLockGuard, addr: number): void {
    if (speculative(guard) === null) return super.assertStable(guard, addr);
    assertSpeculating(guard, 'the fault path');
    if (addr < guard.start || addr >= guard.end) throw new LockAssertionError(`spf: a speculative guard of ${guard.start} is used at ${addr}`);
  }

  #count(state: SpfMmState, bump: (s: SpfStats) => void): void {
    bump(state.stats);
    bump(this.stats);
  }
}

function stateOf(mm: MmStruct): SpfMmState {
  const s = mm.policyState;
  if (!(s instanceof SpfMmState)) throw new Error(`spf: mm${mm.pid} is not attached to spf`);
  return s;
}

/** A speculative guard is used only inside the RCU read-side section its fault entered. */
function assertSpeculating(guard: MmLockGuard, where: string): void {
  if (guard.thread.rcuNesting === 0)
    throw new LockAssertionError(`spf: ${where} uses a speculative guard outside an RCU read-side section in ${guard.thread.label}`);
}

/**
 * Would an anonymous fault at `addr` in `vma` map a THP if the PMD were empty? (The fault path's
 * `thpAllowed` without its PMD test, which the caller makes.) Speculation allocates no huge page.
 */
function thpEligible(mm: MmStruct, vma: Vma, addr: number): boolean {
  if ((vma.flags & VM_SHARED) !== 0) return false;
  if (mm.thp === 'never' || (vma.flags & VM_NOHUGEPAGE) !== 0) return false;
  if (mm.thp === 'madvise' && (vma.flags & VM_HUGEPAGE) === 0) return false;
  const base = Math.floor(addr / HPAGE_PMD_SIZE) * HPAGE_PMD_SIZE;
  return base >= vma.start && base + HPAGE_PMD_SIZE <= vma.end;
}
