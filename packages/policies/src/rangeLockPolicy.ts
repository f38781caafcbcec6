import {
  type HookSite,
  LockAssertionError,
  LockMode,
  type LockPolicy,
  type MmGen,
  type MmLockGuard,
  type MmStruct,
  PAGE_SIZE,
  type ProvidedLock,
  RangeLock,
  type RangeLockRequest,
  STACK_GUARD_GAP,
  type SimThread,
  TASK_SIZE,
  VM_GROWSDOWN,
  type Vma,
  hex,
} from '@vmalock/core';
import { type ProvidesTable, providesLike } from './provides.js';

/**
 * How much of the address space a request locks.
 * - `full`: every request locks [0, TASK_SIZE), as the 2018 full conversion did ("mm: convert
 *   mmap_sem to range mmap_lock", Bueso): the range lock stands in for mmap_sem one for one.
 * - `fine`: requests lock the VMAs they touch (and, to modify, their neighbours), so work on
 *   distant VMAs runs in parallel.
 */
export type RangeLockRanges = 'full' | 'fine';

export interface RangeLockPolicyOptions {
  readonly ranges?: RangeLockRanges;
}

/** What the policy did, per mm (for reports and tests). */
export interface RangeLockStats {
  /** Requests taken (blocking or by trylock). */
  requests: number;
  /** Requests found stale once taken (the VMAs they were planned for changed): released and retried. */
  retries: number;
  /** mremap targets locked by trylock next to the source. */
  targetTrylocks: number;
  /** mremap targets that needed the source released and one request over both taken instead. */
  targetHulls: number;
  /** ... and found the source changed meanwhile (the mremap restarts). */
  targetRestarts: number;
}

/** The per-mm state (`mm.policyState`). */
interface RangeLockMmState {
  readonly rangeLock: RangeLock;
  readonly stats: RangeLockStats;
}

/** What a guard holds: its granted requests. */
interface RangeGuardState {
  requests: RangeLockRequest[];
}

/** A half-open address range [lo, hi). */
type Span = readonly [lo: number, hi: number];

const FULL: Span = [0, TASK_SIZE];

/** A request whose VMAs keep changing under it is retried at most this often before we call it a livelock. */
export const rangeLockRetriesMax = 1000;

/** What each hook site runs under: the range lock in the mode mmap_sem had there. */
const PROVIDES: ProvidesTable = providesLike('range_lock');

/** The range lock of `mm` (`mm<pid>.mmap_range`); `mm` must run under a `RangeLockPolicy`. */
export function rangeLockOf(mm: MmStruct): RangeLock {
  return stateOf(mm).rangeLock;
}

/** The counters of the policy on `mm`. */
export function rangeLockStatsOf(mm: MmStruct): RangeLockStats {
  return stateOf(mm).stats;
}

function stateOf(mm: MmStruct): RangeLockMmState {
  const state = mm.policyState as RangeLockMmState | null;
  if (state === null || !(state.rangeLock instanceof RangeLock)) throw new Error(`mm${mm.pid} does not run under the range-lock policy (${mm.policy.name})`);
  return state;
}

function guardState(guard: MmLockGuard): RangeGuardState {
  return guard.state as RangeGuardState;
}

function pageDown(addr: number): number {
  return Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
}

/**
 * What a reader of [start, end) locks (fine mode): the VMAs there, whole, and the gaps between,
 * up to the end of the VMA `find_vma(end - 1)` answers (the top of the address space when there
 * is none). A fault or get_user_pages at an address in a gap looks up the next VMA: covering it
 * keeps that answer true while the lock is held.
 */
function readSpan(mm: MmStruct, start: number, end: number): Span {
  const first = mm.findVma(start);
  const lo = first !== null && first.start < start ? first.start : start;
  const last = mm.findVma(end - 1);
  return [lo, last === null ? TASK_SIZE : Math.max(end, last.end)];
}

/**
 * What a fault at `addr` locks (fine mode): `readSpan` of its page and, when the VMA above is a
 * stack that must grow down to it, the guard gap below the new start too. The growth reads the
 * end of the VMA below only when it lies in that gap: it is then partly covered, and since a
 * writer always locks whole VMAs, it cannot change.
 */
function faultSpan(mm: MmStruct, addr: number): Span {
  const page = pageDown(addr);
  const [lo, hi] = readSpan(mm, page, page + PAGE_SIZE);
  const vma = mm.findVma(page);
  if (vma === null || vma.start <= page || (vma.flags & VM_GROWSDOWN) === 0) return [lo, hi];
  return [Math.max(0, Math.min(lo, page - STACK_GUARD_GAP)), hi];
}

/**
 * What a modification of [start, end) locks for write (fine mode): the VMAs it touches, whole
 * (it may split them), and the neighbour VMA on each side, whole (a merge may grow, shrink or
 * remove it). With no neighbour on a side, one page beyond: a VMA created later right next to
 * the range (which a merge here could touch) must conflict with it.
 */
function modifySpan(mm: MmStruct, start: number, end: number): Span {
  let lo = start;
  let hi = end;
  const first = mm.findVma(start);
  if (first !== null && first.start < start) lo = first.start;
  const last = mm.findVma(end - 1);
  if (last !== null && last.start < end && last.end > end) hi = last.end;
  const prev = mm.findVmaPrev(lo);
  const next = mm.findVma(hi);
  return [prev !== null ? prev.start : Math.max(0, lo - PAGE_SIZE), next !== null ? next.end : Math.min(TASK_SIZE, hi + PAGE_SIZE)];
}

/**
 * What mremap locks for its source (fine mode): `modifySpan`, and above the source everything
 * up to the end of the next VMA (the top of the address space when there is none): growing in
 * place extends the VMA into that space and may merge with the next one.
 */
function remapSpan(mm: MmStruct, oldStart: number, oldEnd: number): Span {
  const [lo, hi] = modifySpan(mm, oldStart, Math.max(oldEnd, oldStart + PAGE_SIZE));
  // With a VMA above, modifySpan ends at its end; without one, a page past the source.
  return [lo, mm.findVma(hi - 1) === null ? TASK_SIZE : hi];
}

function contains(outer: Span, inner: Span): boolean {
  return outer[0] <= inner[0] && inner[1] <= outer[1];
}

/** Do `requests` (granted to one thread), those in write mode when `write`, cover [start, end)? */
function covered(requests: readonly RangeLockRequest[], start: number, end: number, write: boolean): boolean {
  const spans = requests
    .filter((r) => !write || r.mode === LockMode.write)
    .map((r): Span => [r.start, r.end])
    .sort((a, b) => a[0] - b[0]);
  let reached = start;
  for (const [lo, hi] of spans) {
    if (lo > reached) break;
    reached = Math.max(reached, hi);
    if (reached >= end) return true;
  }
  return reached >= end;
}

/** The VMAs of [lo, hi) as they are now, to tell whether they changed while unlocked. */
function snapshot(mm: MmStruct, lo: number, hi: number): unknown[] {
  return mm.vmasIn(lo, hi).flatMap((v) => [v, v.start, v.end, v.flags, v.pgoff, v.anonVma, v.file]);
}

function sameSnapshot(a: unknown[], b: unknown[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * `range-lock`: a tree-based reader/writer range lock over the whole address space (Jan Kara
 * 2013; Davidlohr Bueso 2017-2018, proposed to replace mmap_sem), one per mm, FIFO-fair per
 * range. Not tied to VMA boundaries: a request covers any [start, end).
 *
 * In `full` mode (the default) every request covers [0, TASK_SIZE): faults, get_user_pages and
 * madvise(MADV_DONTNEED) read, modifications write, munmap downgrades its write range to read
 * for the zap, and stack growth runs under the read range plus `page_table_lock` — exactly
 * global-rwsem's protocol on another primitive.
 *
 * In `fine` mode a request covers what its operation reads or may change (see `readSpan`,
 * `faultSpan`, `modifySpan`, `remapSpan`): planned by a lockless (racy) look at the VMA tree,
 * checked again once taken, and retried when the VMAs it was planned for changed meanwhile.
 * get_unmapped_area (`lockForMap`) and `lockAll` take the full range. mremap adds its target
 * with a trylock; when that fails it releases the source and takes one request over both
 * (two requests taken one after the other deadlock under FIFO fairness, in any order, with a
 * waiter whose range spans both), restarting the mremap if the source changed meanwhile.
 */
export class RangeLockPolicy implements LockPolicy {
  readonly name: string = 'range-lock';
  readonly ranges: RangeLockRanges;

  constructor(options: RangeLockPolicyOptions = {}) {
    this.ranges = options.ranges ?? 'full';
  }

  attach(mm: MmStruct): void {
    const stats: RangeLockStats = { requests: 0, retries: 0, targetTrylocks: 0, targetHulls: 0, targetRestarts: 0 };
    mm.policyState = { rangeLock: new RangeLock(`mm${mm.pid}.mmap_range`), stats } satisfies RangeLockMmState;
  }

  *lockForFault(mm: MmStruct, thread: SimThread, addr: number): MmGen<MmLockGuard> {
    return yield* this.#take(mm, thread, 'read', (m) => faultSpan(m, addr));
  }

  *lockForRead(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<MmLockGuard> {
    return yield* this.#take(mm, thread, 'read', (m) => readSpan(m, start, Math.max(end, start + 1)));
  }

  *lockForModify(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<MmLockGuard> {
    return yield* this.#take(mm, thread, 'write', (m) => modifySpan(m, start, Math.max(end, start + 1)));
  }

  *lockForMap(mm: MmStruct, thread: SimThread, _length: number, place: (mm: MmStruct) => number): MmGen<{ guard: MmLockGuard | null; addr: number }> {
    // get_unmapped_area reads the gaps of the whole tree: only the full range keeps them still.
    const guard = yield* this.#take(mm, thread, 'write', () => FULL);
    return { guard, addr: place(mm) };
  }

  *lockForRemap(mm: MmStruct, thread: SimThread, oldStart: number, oldEnd: number): MmGen<MmLockGuard> {
    return yield* this.#take(mm, thread, 'write', (m) => remapSpan(m, oldStart, oldEnd));
  }

  *lockAll(mm: MmStruct, thread: SimThread, mode: 'read' | 'write'): MmGen<MmLockGuard> {
    return yield* this.#take(mm, thread, mode, () => FULL);
  }

  /**
   * mremap's target (R5): covered already (full mode, or a target inside the source's span), or
   * taken by trylock beside the source; otherwise the source is released and one request over
   * both taken. False: the source changed while it was released (mremap starts over).
   */
  *lockTarget(guard: MmLockGuard, start: number, end: number): MmGen<boolean> {
    const { mm } = guard;
    const state = guardState(guard);
    this.#assertWrite(guard, 'lockTarget extends a write guard');
    const target = modifySpan(mm, start, end);
    if (covered(state.requests, target[0], target[1], true)) return true;
    const stats = stateOf(mm).stats;
    const tried = rangeLockOf(mm).request(target[0], target[1], 'write');
    if ((yield tried.trylock()) === true) {
      stats.requests++;
      stats.targetTrylocks++;
      state.requests.push(tried);
      this.#setSpan(guard);
      return true;
    }
    stats.targetHulls++;
    const [lo, hi] = this.#hull(state.requests);
    const before = snapshot(mm, lo, hi);
    for (const r of state.requests.splice(0)) yield r.unlock();
    const hull: Span = [Math.min(lo, target[0]), Math.max(hi, target[1])];
    const r = rangeLockOf(mm).request(hull[0], hull[1], 'write');
    yield r.lock();
    stats.requests++;
    state.requests.push(r);
    this.#setSpan(guard);
    if (sameSnapshot(before, snapshot(mm, lo, hi)) && contains(hull, modifySpan(mm, start, end))) return true;
    stats.targetRestarts++;
    return false;
  }

  *downgrade(guard: MmLockGuard): MmGen<void> {
    if (guard.mode !== 'write') return;
    for (const r of guardState(guard).requests) yield r.downgradeWrite();
    guard.mode = 'read';
  }

  *unlock(guard: MmLockGuard): MmGen<void> {
    for (const r of guardState(guard).requests.splice(0)) yield r.unlock();
  }

  /**
   * Stack growth down to `newStart` (R9): under the fault's read range, which reaches down over
   * the guard gap below `newStart` (fine mode), so no writer can map there meanwhile; plus
   * `page_table_lock` against another fault growing the same stack.
   */
  *beginStackGrowth(guard: MmLockGuard, newStart: number): MmGen<boolean> {
    if (!covered(guardState(guard).requests, newStart, newStart + PAGE_SIZE, false)) return false;
    yield guard.mm.pageTables.pageTableLock.lock();
    return true;
  }

  *endStackGrowth(guard: MmLockGuard): MmGen<void> {
    yield guard.mm.pageTables.pageTableLock.unlock();
  }

  provides(site: HookSite): readonly ProvidedLock[] {
    return PROVIDES[site];
  }

  /** Some thread's granted write requests cover [vma.start, vma.end): nobody else can read or change it. */
  isVmaWriteLocked(mm: MmStruct, vma: Vma): boolean {
    const byOwner = new Map<SimThread, RangeLockRequest[]>();
    for (const r of rangeLockOf(mm).granted()) {
      if (r.mode !== LockMode.write || r.owner === null) continue;
      const list = byOwner.get(r.owner) ?? [];
      list.push(r);
      byOwner.set(r.owner, list);
    }
    for (const requests of byOwner.values()) if (covered(requests, vma.start, vma.end, true)) return true;
    return false;
  }

  /** The guard's requests cover [vma.start, vma.end), in either mode. */
  isVmaLocked(guard: MmLockGuard, vma: Vma): boolean {
    return covered(this.#held(guard), vma.start, vma.end, false);
  }

  assertModify(guard: MmLockGuard, start: number, end: number): void {
    if (covered(this.#held(guard), start, Math.max(end, start + 1), true)) return;
    throw new LockAssertionError(
      `${this.name} (${this.ranges}): ${guard.thread.label} holds no write range over [${hex(start)}, ${hex(end)}) (holds ${this.#describe(guard)})`,
    );
  }

  assertStable(guard: MmLockGuard, addr: number): void {
    const page = pageDown(addr);
    const vma = guard.mm.findVma(page);
    const [lo, hi] = vma === null ? [page, page + PAGE_SIZE] : [Math.min(page, vma.start), vma.end];
    if (covered(this.#held(guard), lo, hi, false)) return;
    throw new LockAssertionError(
      `${this.name} (${this.ranges}): ${guard.thread.label} holds no range over [${hex(lo)}, ${hex(hi)}) (holds ${this.#describe(guard)})`,
    );
  }

  /**
   * Take one request in `mode` over `plan(mm)` (the full range in full mode), planned without
   * the lock; once granted, plan again and keep it only if the new plan lies inside it.
   */
  *#take(mm: MmStruct, thread: SimThread, mode: 'read' | 'write', plan: (mm: MmStruct) => Span): MmGen<MmLockGuard> {
    const plan1 = this.ranges === 'full' ? (): Span => FULL : plan;
    const { rangeLock, stats } = stateOf(mm);
    for (let attempt = 0; attempt <= rangeLockRetriesMax; attempt++) {
      const span = plan1(mm);
      const r = rangeLock.request(span[0], span[1], mode);
      yield r.lock();
      stats.requests++;
      if (contains(span, plan1(mm))) {
        return { mm, thread, start: span[0], end: span[1], mode, state: { requests: [r] } satisfies RangeGuardState };
      }
      stats.retries++;
      yield r.unlock();
    }
    throw new Error(`${this.name}: ${thread.label} retried a ${mode} request ${rangeLockRetriesMax} times, the VMAs it plans for changing each time`);
  }

  /** The guard's requests, checked to be granted to its thread. */
  #held(guard: MmLockGuard): RangeLockRequest[] {
    return guardState(guard).requests.filter((r) => r.owner === guard.thread);
  }

  #hull(requests: readonly RangeLockRequest[]): Span {
    return [Math.min(...requests.map((r) => r.start)), Math.max(...requests.map((r) => r.end))];
  }

  /** Keep the guard's [start, end) the hull of what it holds. */
  #setSpan(guard: MmLockGuard): void {
    const [start, end] = this.#hull(guardState(guard).requests);
    Object.assign(guard, { start, end });
  }

  #assertWrite(guard: MmLockGuard, why: string): void {
    if (guard.mode === 'write') return;
    throw new LockAssertionError(`${this.name}: ${why}, but ${guard.thread.label} holds a ${guard.mode} guard`);
  }

  #describe(guard: MmLockGuard): string {
    const held = this.#held(guard);
    if (held.length === 0) return 'nothing';
    return held.map((r) => `${r.mode === LockMode.write ? 'write' : 'read'} [${hex(r.start)}, ${hex(r.end)})`).join(', ');
  }
}
