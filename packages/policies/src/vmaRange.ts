import {
  type HookSite,
  LockAssertionError,
  type LockPolicy,
  MMAP_MIN_ADDR,
  type MmGen,
  type MmLockGuard,
  type MmStruct,
  type ProvidedLock,
  RwSemaphore,
  STACK_GUARD_GAP,
  type SimLock,
  type SimThread,
  TASK_SIZE,
  Vma,
  hex,
  mmapAssertLocked,
  mmapAssertWriteLocked,
  spend,
  vmStartGap,
} from '@vmalock/core';
import { type ProvidesTable, providesLike } from './provides.js';

/**
 * A `vm_area_lock` (the design's R1, R7): the reader/writer lock of one area, kept in the data of
 * every VMA — and dummy VMA — of the area. Its users are those tree entries; the refcount is
 * their number. A split VMA inherits it (ref++), a VMA merged away drops it (ref--).
 *
 * Invariant: the users of a lock are a run of consecutive tree entries, so ordering locks by
 * the address of their entries (R5) is a total order.
 */
export class VmAreaLock {
  readonly sem: RwSemaphore;
  /** The VMAs and dummy VMAs whose `areaLock` this is. */
  readonly users = new Set<Vma>();

  constructor(
    readonly id: number,
    pid: number,
  ) {
    this.sem = new RwSemaphore(`mm${pid}.vm_area_lock${id}`);
    areaOfSem.set(this.sem, this);
  }

  /** The reference count: how many tree entries hold this lock. */
  get refs(): number {
    return this.users.size;
  }
}

const areaOfSem = new WeakMap<SimLock, VmAreaLock>();

/** The lockdep class of every `vm_area_lock`. */
export const VM_AREA_LOCK_CLASS = 'mm#.vm_area_lock#';

/**
 * R5 for lockdep (`LockdepOptions.orderedClasses`): the order of a `vm_area_lock` — the lowest
 * address of its entries (the root lock of an empty address space: -1; a new area's lock with no
 * entry yet: +Infinity). Areas are locked lowest first, so a thread holding some may take only a
 * higher one.
 */
export function vmAreaLockOrder(lock: SimLock): number {
  const area = areaOfSem.get(lock);
  if (area === undefined) return Number.NaN;
  if (area.id === 0) return -1;
  let low = Infinity;
  for (const u of area.users) if (u.start < low) low = u.start;
  return low;
}

/** What the design's locking did, per mm, for reports and the rule tests. */
export interface VmaRangeStats {
  /** Areas locked (read and write). */
  areasLocked: number;
  /** Lock plans found stale after taking their locks (a split, merge or unmap ran meanwhile): released and retried. */
  retries: number;
  /** Dummy VMAs inserted to hold locks over holes (R3) and unmapped ranges (R6). */
  dummiesInserted: number;
  /** get_unmapped_area found only a locked area, waited for its release and retried (R8). */
  lockedAreaWaits: number;
  /** mremap released its (higher) area to lock a lower target first (R5). */
  remapReorders: number;
  /** ... and found the source changed when it re-took it (the mremap restarts). */
  remapRestarts: number;
  /** Stack growth refused because a locked area lies in the way (R9). */
  growthRefused: number;
}

/** The per-mm state of the policy (`mm.policyState`). */
interface AreaState {
  nextId: number;
  /** Locked by a modification when the address space has no entry at all (nothing else to lock). */
  readonly root: VmAreaLock;
  /** Dummy VMAs now in the tree. */
  readonly dummies: Set<Vma>;
  /** Write-held areas: the lock and the ranges it was taken for (new VMAs there get its lock). */
  readonly writeAreas: Map<VmAreaLock, Array<[number, number]>>;
  readonly stats: VmaRangeStats;
}

/** What a guard of this policy holds. */
interface HeldState {
  /**
   * A write guard: the lock of each of its areas (every entry of an area was unified under its
   * lock). One area, except for an mremap whose target is away from its source (R5): two.
   */
  readonly areas: VmAreaLock[];
  /** A read guard: the locks read-held, in the order taken. */
  readonly readLocks: VmAreaLock[];
  /** hybrid: how mmap_sem is held. */
  mmapSem: 'read' | 'write' | null;
}

/** Bound on re-planning one request (STYLE: every loop has a bound); reached only by a livelock. */
const AREA_RETRIES_MAX = 100_000;

/** What `#lockPlan` came back with: the plan's locks held, or why not (only when the caller holds locks). */
type Took = { readonly kind: 'plan'; readonly plan: Plan } | { readonly kind: 'touches' } | { readonly kind: 'busy'; readonly lock: VmAreaLock };

function describeRanges(ranges: ReadonlyArray<readonly [number, number]>): string {
  return ranges.map(([s, e]) => `[${hex(s)}, ${hex(e)})`).join(' + ');
}

/** The locks a request needs: the tree entries and their distinct locks, in address order. */
interface Plan {
  readonly entries: Vma[];
  readonly locks: VmAreaLock[];
}

/** What each hook site runs under, without mmap_sem (vma-range). */
const PROVIDES: ProvidesTable = providesLike('vm_area_lock');

function state(mm: MmStruct): AreaState {
  return mm.policyState as AreaState;
}

function held(guard: MmLockGuard): HeldState {
  return guard.state as HeldState;
}

function lockOf(vma: Vma): VmAreaLock {
  const lock = vma.areaLock;
  if (!(lock instanceof VmAreaLock)) throw new Error(`VMA ${vma.toString()} has no vm_area_lock`);
  return lock;
}

function holds(lock: VmAreaLock, thread: SimThread, mode: 'read' | 'write'): boolean {
  if (lock.sem.writer === thread) return true;
  return mode === 'read' && lock.sem.readers.includes(thread);
}

/**
 * `vma-range`: the VMA range locks of Dufour and Glisse's design (LPC 2019), rules R1–R10 of
 * ARCHITECTURE section 4, with no mmap_sem.
 *
 * - Locking an area [start, end) for modification takes, lowest address first (R5), the
 *   `vm_area_lock` of every tree entry (VMA or dummy) it intersects — whole VMAs, since a lock
 *   lives on VMA boundaries (R1) — and of the entry just below and just above it (contagion,
 *   R4: a merge may touch them, nothing further can be touched). The plan is re-read after the
 *   locks are taken; if a split, merge or unmap changed it meanwhile, everything is released
 *   and taken again. Then the area is unified: one new lock is attached to all its entries (so
 *   VMAs merge only within one area, R7) and the holes of [start, end) get dummy VMAs holding it
 *   (R2, R3). The old locks are released; a waiter on one finds its plan stale and retries.
 * - A fault read-locks the entry at its address (the VMA, or a dummy: the area is being mapped,
 *   so it waits for that). Growing a stack never goes over a locked area (R9).
 * - munmap keeps its area locked through the cleanup: the detached VMAs are replaced by dummy
 *   VMAs until unlock (R6); the zap runs under the area downgraded to read (R10).
 * - get_unmapped_area sees locked holes through the dummies; when only a locked hole is large
 *   enough it waits for its release and searches again (the owner may have mapped it), and the
 *   area it returns is locked (R8).
 * - mremap locks its source, then its target: a target below the source makes it release the
 *   source, lock both lowest first, and revalidate the source (R5).
 *
 * Unlock removes the area's dummies and releases its lock; the lock stays attached to the area's
 * VMAs (until another area takes them).
 */
export class VmaRangePolicy implements LockPolicy {
  readonly name: string = 'vma-range';
  /** hybrid keeps mmap_sem exactly as global-rwsem around the range locks. */
  protected readonly keepMmapSem: boolean = false;

  attach(mm: MmStruct): void {
    const st: AreaState = {
      nextId: 1,
      root: new VmAreaLock(0, mm.pid),
      dummies: new Set(),
      writeAreas: new Map(),
      stats: { areasLocked: 0, retries: 0, dummiesInserted: 0, lockedAreaWaits: 0, remapReorders: 0, remapRestarts: 0, growthRefused: 0 },
    };
    mm.policyState = st;
    mm.events = {
      inserted: (vma) => {
        if (vma.dummy) return;
        if (vma.areaLock === null) vma.areaLock = this.#lockForNew(mm, vma);
        lockOf(vma).users.add(vma);
      },
      split: (_vma, created) => {
        lockOf(created).users.add(created);
      },
      merged: (survivor, removed) => {
        if (survivor.areaLock !== removed.areaLock)
          throw new LockAssertionError(`R7: ${removed.toString()} merged into ${survivor.toString()} without sharing its vm_area_lock`);
      },
      erased: (vma) => {
        if (vma.areaLock instanceof VmAreaLock) vma.areaLock.users.delete(vma);
        if (vma.dummy) st.dummies.delete(vma);
      },
      occupying: (start, end) => this.#vacate(mm, start, end),
    };
  }

  /** The policy's counters for `mm`. */
  stats(mm: MmStruct): VmaRangeStats {
    return state(mm).stats;
  }

  // --- requests ---

  *lockForFault(mm: MmStruct, thread: SimThread, addr: number, _retry?: boolean): MmGen<MmLockGuard> {
    const h = yield* this.#mmapSem(mm, 'read');
    const st = state(mm);
    for (let attempt = 0; ; attempt++) {
      if (attempt > AREA_RETRIES_MAX)
        throw new Error(`${this.name}: a fault at ${hex(addr)} could not lock its VMA in ${AREA_RETRIES_MAX} attempts (livelock?)`);
      // The entry at addr: a VMA, the VMA above (stack growth), or a dummy (someone's locked area).
      const entry = mm.tree.find(addr);
      if (entry === null) return this.#guard(mm, thread, addr, addr + 1, 'read', h);
      const lock = lockOf(entry);
      yield lock.sem.downRead();
      if (!entry.detached && entry.areaLock === lock && mm.tree.find(addr) === entry && !entry.dummy) {
        st.stats.areasLocked++;
        h.readLocks.push(lock);
        return this.#guard(mm, thread, addr, addr + 1, 'read', h);
      }
      yield lock.sem.upRead();
      if (entry.dummy) {
        // Someone's locked area (being mapped, or cleaned up after an unmap under a downgraded,
        // read-held lock): wait until it is released, then look again.
        yield lock.sem.downWrite();
        yield lock.sem.upWrite();
      } else st.stats.retries++; // changed while we waited: look again
    }
  }

  *lockForRead(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<MmLockGuard> {
    const h = yield* this.#mmapSem(mm, 'read');
    h.readLocks.push(...(yield* this.#readPlan(mm, [[start, end]])));
    return this.#guard(mm, thread, start, end, 'read', h);
  }

  *lockForModify(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<MmLockGuard> {
    const h = yield* this.#mmapSem(mm, 'write');
    h.areas.push(yield* this.#area(mm, [[start, end]]));
    return this.#guard(mm, thread, start, end, 'write', h);
  }

  *lockForMap(mm: MmStruct, thread: SimThread, length: number, place: (mm: MmStruct) => number): MmGen<{ guard: MmLockGuard | null; addr: number }> {
    const h = yield* this.#mmapSem(mm, 'write');
    const st = state(mm);
    for (let attempt = 0; ; attempt++) {
      if (attempt > AREA_RETRIES_MAX)
        throw new Error(`${this.name}: mmap of ${length} bytes could not lock a free area in ${AREA_RETRIES_MAX} attempts (livelock?)`);
      // get_unmapped_area: dummy VMAs occupy their holes, so a locked hole is never chosen.
      const addr = place(mm);
      if (addr >= 0) {
        h.areas.push(yield* this.#area(mm, [[addr, addr + length]]));
        const guard = this.#guard(mm, thread, addr, addr + length, 'write', h);
        // Someone may have mapped there before the area was ours.
        if (mm.findVmaIntersection(addr, addr + length) === null && this.#gapOk(mm, addr, addr + length)) return { guard, addr };
        yield* this.unlock(guard);
        st.stats.retries++;
        yield* this.#mmapSem(mm, 'write', h);
        continue;
      }
      // R8: nothing unlocked is large enough. If a locked hole would be, wait for it and retry.
      const best = this.#bestLockedArea(mm, length);
      if (best === null) return { guard: this.#guard(mm, thread, 0, length, 'write', h), addr };
      // Wait for the owner's release (write: a downgraded owner still holds it for read).
      st.stats.lockedAreaWaits++;
      yield best.sem.downWrite();
      yield best.sem.upWrite();
    }
  }

  *lockForRemap(mm: MmStruct, thread: SimThread, oldStart: number, oldEnd: number): MmGen<MmLockGuard> {
    const h = yield* this.#mmapSem(mm, 'write');
    const end = Math.max(oldEnd, oldStart + 1);
    h.areas.push(yield* this.#area(mm, [[oldStart, end]]));
    return this.#guard(mm, thread, oldStart, end, 'write', h);
  }

  *lockTarget(guard: MmLockGuard, start: number, end: number): MmGen<boolean> {
    const { mm } = guard;
    const h = held(guard);
    const area = h.areas[0];
    if (area === undefined || h.areas.length !== 1) throw new Error('lockTarget needs a guard with one write area (lockForRemap)');
    const st = state(mm);
    const plan = this.#plan(mm, [[start, end]], true);
    const others = plan.locks.filter((l) => l !== area);
    const ownHigh = Math.max(...[...area.users].map((v) => v.start));
    // Locks are taken lowest first (R5): the target's may be added now only if they all lie above ours.
    const above = others.every((l) => lowestStart(l, plan) > ownHigh);
    if (above) {
      if (plan.entries.some((e) => e.areaLock === area)) {
        // The target's area touches the source's: one area, so VMAs on both sides may merge (R7).
        const got: VmAreaLock[] = [];
        for (const l of others) {
          if ((yield l.sem.downWriteTrylock()) !== true) break;
          got.push(l);
        }
        if (got.length === others.length && samePlan(plan, this.#plan(mm, [[start, end]], true))) {
          this.#unify(mm, area, plan, [[start, end]]);
          st.writeAreas.get(area)!.push([start, end]);
          for (const l of got.reverse()) yield l.sem.upWrite();
          return true;
        }
        for (const l of got.reverse()) yield l.sem.upWrite();
      } else {
        // Away from the source and above it: an area of its own, taken after the source's.
        const target = yield* this.#lockArea(mm, [[start, end]], [area]);
        if (target instanceof VmAreaLock) {
          h.areas.push(target);
          return true;
        }
      }
      // Busy, or the plan moved: start from nothing, in address order.
    } else st.stats.remapReorders++; // R5: the target lies lower
    // Release the source, lock both lowest first, revalidate the source.
    const ranges = [...st.writeAreas.get(area)!];
    const src = mm.vmaLookup(guard.start);
    const before = src === null ? null : { vma: src, start: src.start, end: src.end };
    h.areas.length = 0;
    yield* this.#releaseArea(mm, area);
    const targetFirst = start < Math.min(...ranges.map(([s]) => s));
    const [first, second] = targetFirst ? [[[start, end] as const], ranges] : [ranges, [[start, end] as const]];
    for (let attempt = 0; ; attempt++) {
      if (attempt > AREA_RETRIES_MAX) throw new Error(`${this.name}: mremap could not lock its source and target (livelock?)`);
      const a = yield* this.#area(mm, first);
      const b = yield* this.#lockArea(mm, second, [a]);
      if (b instanceof VmAreaLock) {
        h.areas.push(a, b);
        break;
      }
      yield* this.#releaseArea(mm, a);
      if (b.kind === 'touches') {
        // Source and target turned out to share entries: one area over both.
        h.areas.push(yield* this.#area(mm, [...ranges, [start, end]]));
        break;
      }
      // The second area was busy: wait for it holding nothing, then again.
      if (b.kind === 'busy') {
        yield b.lock.sem.downWrite();
        yield b.lock.sem.upWrite();
      }
    }
    const now = mm.vmaLookup(guard.start);
    const same = before === null ? now === null : now === before.vma && now.start === before.start && now.end === before.end;
    if (!same) st.stats.remapRestarts++;
    return same;
  }

  *lockAll(mm: MmStruct, thread: SimThread, mode: 'read' | 'write'): MmGen<MmLockGuard> {
    const h = yield* this.#mmapSem(mm, mode);
    if (mode === 'write') h.areas.push(yield* this.#area(mm, [[0, TASK_SIZE]]));
    else h.readLocks.push(...(yield* this.#readPlan(mm, [[0, TASK_SIZE]])));
    return this.#guard(mm, thread, 0, TASK_SIZE, mode, h);
  }

  /**
   * A legacy `mmap_*_lock()` call: vma-range has no mmap_sem, so it protects nothing (null);
   * hybrid takes mmap_sem alone, as the kernel's call does.
   */
  *legacyLock(mm: MmStruct, thread: SimThread, mode: 'read' | 'write'): MmGen<MmLockGuard | null> {
    if (!this.keepMmapSem) return null;
    const h = yield* this.#mmapSem(mm, mode);
    return this.#guard(mm, thread, 0, TASK_SIZE, mode, h);
  }

  *downgrade(guard: MmLockGuard): MmGen<void> {
    if (guard.mode !== 'write') return;
    const h = held(guard);
    if (h.mmapSem === 'write') {
      yield guard.mm.mmapSem.downgradeWrite();
      h.mmapSem = 'read';
    }
    // R10: the area stays locked (its dummies keep it occupied) but readers may come in.
    for (const area of h.areas) yield area.sem.downgradeWrite();
    guard.mode = 'read';
  }

  *unlock(guard: MmLockGuard): MmGen<void> {
    const { mm } = guard;
    const h = held(guard);
    for (const area of h.areas.reverse()) {
      this.#dropArea(mm, area);
      yield guard.mode === 'write' ? area.sem.upWrite() : area.sem.upRead();
    }
    h.areas.length = 0;
    for (const l of h.readLocks.reverse()) yield l.sem.upRead();
    h.readLocks.length = 0;
    if (h.mmapSem === 'write') {
      yield mm.mmapSem.upWrite();
      mm.mmLockSeq++;
    } else if (h.mmapSem === 'read') yield mm.mmapSem.upRead();
    h.mmapSem = null;
  }

  *beginStackGrowth(guard: MmLockGuard, newStart: number): MmGen<boolean> {
    const { mm } = guard;
    // R9: never grow over a locked area, nor into the guard gap below one.
    const stack = mm.tree.find(guard.start);
    const below = stack === null ? mm.tree.last() : mm.tree.prev(stack);
    if (below !== null && below.dummy && below.end + STACK_GUARD_GAP > newStart) {
      state(mm).stats.growthRefused++;
      return false;
    }
    yield mm.pageTables.pageTableLock.lock();
    return true;
  }

  *endStackGrowth(guard: MmLockGuard): MmGen<void> {
    yield guard.mm.pageTables.pageTableLock.unlock();
  }

  afterDetach(guard: MmLockGuard, start: number, end: number): void {
    // R6: the unmapped range stays occupied by dummies of the area until unlock.
    const area = this.#areaCovering(guard, start, end);
    if (area === null) throw new LockAssertionError(`afterDetach: [${hex(start)}, ${hex(end)}) is in no area of ${guard.thread.label}`);
    this.#fillHoles(guard.mm, area, start, end);
  }

  provides(site: HookSite): readonly ProvidedLock[] {
    return PROVIDES[site];
  }

  isVmaWriteLocked(mm: MmStruct, vma: Vma): boolean {
    if (this.keepMmapSem && mm.mmapSem.writer === null) return false;
    return vma.areaLock instanceof VmAreaLock && vma.areaLock.sem.writer !== null;
  }

  isVmaLocked(guard: MmLockGuard, vma: Vma): boolean {
    if (this.keepMmapSem && !(guard.mm.mmapSem.writer === guard.thread || guard.mm.mmapSem.readers.includes(guard.thread))) return false;
    if (this.#legacyHold(guard)) return true;
    return vma.areaLock instanceof VmAreaLock && holds(vma.areaLock, guard.thread, 'read');
  }

  assertModify(guard: MmLockGuard, start: number, end: number): void {
    const { mm, thread } = guard;
    if (this.keepMmapSem) mmapAssertWriteLocked(mm, thread, 'hybrid keeps mmap_sem for write around every change');
    const why = `${thread.label} may not modify [${hex(start)}, ${hex(end)}) under ${this.name}`;
    const areas = held(guard).areas;
    if (areas.length === 0 || areas.some((a) => a.sem.writer !== thread)) throw new LockAssertionError(`${why}: it holds no area for write`);
    const area = this.#areaCovering(guard, start, end);
    if (area === null) {
      const ranges = areas.flatMap((a) => state(mm).writeAreas.get(a) ?? []);
      throw new LockAssertionError(`${why}: its areas were locked for ${ranges.map(([s, e]) => `[${hex(s)}, ${hex(e)})`).join(' ')}`);
    }
    for (const v of entriesIn(mm, start, end)) {
      if (v.areaLock !== area) throw new LockAssertionError(`${why}: ${v.toString()} is not in its area`);
    }
  }

  /**
   * hybrid: a legacy `mmap_read_lock()` hold (mmap_sem alone, `legacyLock`) keeps every VMA as
   * stable as it does today — every change takes mmap_sem for write — so code not converted yet
   * still works in part 1 of the migration.
   */
  #legacyHold(guard: MmLockGuard): boolean {
    const h = held(guard);
    return this.keepMmapSem && h.mmapSem !== null && h.areas.length === 0 && h.readLocks.length === 0;
  }

  assertStable(guard: MmLockGuard, addr: number): void {
    const { mm, thread } = guard;
    if (this.keepMmapSem) mmapAssertLocked(mm, thread, 'hybrid keeps mmap_sem around every VMA access');
    if (this.#legacyHold(guard)) return;
    const entry = mm.tree.find(addr);
    if (entry === null || entry.start > addr) return; // nothing there: the fault fails (or grows a stack it has locked)
    if (!(entry.areaLock instanceof VmAreaLock) || !holds(entry.areaLock, thread, 'read'))
      throw new LockAssertionError(`${thread.label}: the VMA ${entry.toString()} at ${hex(addr)} is not locked under ${this.name}`);
  }

  // --- the protocol ---

  /** hybrid: take mmap_sem as global-rwsem would, first. */
  *#mmapSem(mm: MmStruct, mode: 'read' | 'write', into?: HeldState): MmGen<HeldState> {
    const h: HeldState = into ?? { areas: [], readLocks: [], mmapSem: null };
    if (this.keepMmapSem && h.mmapSem === null) {
      yield mode === 'write' ? mm.mmapSem.downWrite() : mm.mmapSem.downRead();
      h.mmapSem = mode;
    }
    return h;
  }

  #guard(mm: MmStruct, thread: SimThread, start: number, end: number, mode: 'read' | 'write', h: HeldState): MmLockGuard {
    return { mm, thread, start, end, mode, state: h };
  }

  /**
   * The entries a request over `ranges` needs, and their locks in address order: every entry
   * intersecting a range and, for a modification, the entry just below and just above (R4).
   */
  #plan(mm: MmStruct, ranges: ReadonlyArray<readonly [number, number]>, contagion: boolean): Plan {
    const seen = new Set<Vma>();
    for (const [start, end] of ranges) {
      const first = mm.tree.find(start);
      if (contagion) {
        const below = first === null ? mm.tree.last() : mm.tree.prev(first);
        if (below !== null) seen.add(below);
      }
      let v = first;
      while (v !== null && v.start < end) {
        seen.add(v);
        v = mm.tree.next(v);
      }
      if (contagion && v !== null) seen.add(v);
    }
    const entries = [...seen].sort((a, b) => a.start - b.start);
    // An empty address space has no entry to lock: its root lock keeps two first mappers apart.
    if (entries.length === 0 && contagion) return { entries, locks: [state(mm).root] };
    const locks: VmAreaLock[] = [];
    for (const e of entries) {
      const l = lockOf(e);
      if (!locks.includes(l)) locks.push(l);
    }
    return { entries, locks };
  }

  /**
   * Take the locks of a plan lowest first (R5), re-reading the plan until it held still.
   *
   * A thread never sleeps on a lock while it holds another of the protocol's: plans go stale
   * (a unifier moves entries to a new lock while others wait on the old one), so two threads
   * each holding one stale lock and sleeping on the other's would deadlock. Only the first lock
   * of a plan is waited for; the others are trylocks, and a busy one makes the thread release
   * everything, wait for that lock alone, and plan again. With `holding` (locks the caller
   * keeps), every lock is a trylock and a busy one is returned to the caller; a plan that needs
   * one of `holding` returns 'touches'.
   */
  *#lockPlan(
    mm: MmStruct,
    ranges: ReadonlyArray<readonly [number, number]>,
    mode: 'read' | 'write',
    contagion: boolean,
    holding: readonly VmAreaLock[] = [],
  ): MmGen<Took> {
    const st = state(mm);
    const take = (l: VmAreaLock) => (mode === 'write' ? l.sem.downWrite() : l.sem.downRead());
    const tryTake = (l: VmAreaLock) => (mode === 'write' ? l.sem.downWriteTrylock() : l.sem.downReadTrylock());
    const release = (l: VmAreaLock) => (mode === 'write' ? l.sem.upWrite() : l.sem.upRead());
    for (let attempt = 0; ; attempt++) {
      if (attempt > AREA_RETRIES_MAX) throw new Error(`${this.name}: could not lock ${describeRanges(ranges)} in ${AREA_RETRIES_MAX} attempts (livelock?)`);
      const plan = this.#plan(mm, ranges, contagion);
      if (plan.locks.some((l) => holding.includes(l))) return { kind: 'touches' };
      const got: VmAreaLock[] = [];
      let busy: VmAreaLock | null = null;
      for (const l of plan.locks) {
        if (got.length === 0 && holding.length === 0) yield take(l);
        else if ((yield tryTake(l)) !== true) {
          busy = l;
          break;
        }
        got.push(l);
      }
      if (busy === null && samePlan(plan, this.#plan(mm, ranges, contagion))) {
        st.stats.areasLocked++;
        return { kind: 'plan', plan };
      }
      for (const l of got.reverse()) yield release(l);
      st.stats.retries++;
      if (busy === null) continue;
      if (holding.length > 0) return { kind: 'busy', lock: busy };
      // Wait for the busy lock alone, holding nothing, then plan again — after a back-off: the
      // waiters of one lock would otherwise hand it to each other for ever, each holding it just
      // long enough to make the next one's trylock fail (a convoy that never ends on a fair,
      // deterministic scheduler). Exponential, with a jitter from the retry count (no clock, no
      // random stream: the same run gives the same back-offs).
      yield take(busy);
      yield release(busy);
      yield spend(backoffNs(attempt, st.stats.retries));
    }
  }

  /**
   * Lock an area for modification over `ranges` and unify it under one new lock (returned,
   * write-held). With `holding`: 'touches' or 'busy' as `#lockPlan` (nothing is then held).
   */
  *#lockArea(mm: MmStruct, ranges: ReadonlyArray<readonly [number, number]>, holding: readonly VmAreaLock[] = []): MmGen<VmAreaLock | Took> {
    const st = state(mm);
    const took = yield* this.#lockPlan(mm, ranges, 'write', true, holding);
    if (took.kind !== 'plan') return took;
    const { plan } = took;
    // The area's own lock: new, so nobody can be waiting for it or hold it.
    const area = new VmAreaLock(st.nextId++, mm.pid);
    yield area.sem.downWrite();
    this.#unify(mm, area, plan, ranges);
    st.writeAreas.set(
      area,
      ranges.map(([s, e]) => [s, e] as [number, number]),
    );
    for (const l of [...plan.locks].reverse()) yield l.sem.upWrite();
    return area;
  }

  /** Read-lock the entries intersecting `ranges` (no contagion: readers change nothing). */
  *#readPlan(mm: MmStruct, ranges: ReadonlyArray<readonly [number, number]>): MmGen<VmAreaLock[]> {
    const took = yield* this.#lockPlan(mm, ranges, 'read', false);
    if (took.kind !== 'plan') throw new Error('unreachable: a read plan holding nothing came back without its locks');
    return took.plan.locks;
  }

  /** `#lockArea` holding nothing (so it waits as long as it must). */
  *#area(mm: MmStruct, ranges: ReadonlyArray<readonly [number, number]>): MmGen<VmAreaLock> {
    const area = yield* this.#lockArea(mm, ranges);
    if (!(area instanceof VmAreaLock)) throw new Error('unreachable: an area taken holding nothing came back without a lock');
    return area;
  }

  /** Release a write area this guard took (its dummies leave). */
  *#releaseArea(mm: MmStruct, area: VmAreaLock): MmGen<void> {
    this.#dropArea(mm, area);
    yield area.sem.upWrite();
  }

  /** Attach `area` to every entry of the plan and fill the holes of `ranges` with its dummies. */
  #unify(mm: MmStruct, area: VmAreaLock, plan: Plan, ranges: ReadonlyArray<readonly [number, number]>): void {
    const old = new Set<VmAreaLock>();
    for (const e of plan.entries) {
      const l = lockOf(e);
      if (l === area) continue;
      old.add(l);
      l.users.delete(e);
      e.areaLock = area;
      area.users.add(e);
    }
    for (const l of old) this.#keepContiguous(mm, l);
    for (const [s, e] of ranges) this.#fillHoles(mm, area, Math.max(s, MMAP_MIN_ADDR), Math.min(e, TASK_SIZE));
  }

  /** The users of `lock` left after a unify must stay one run of entries: later runs get new locks. */
  #keepContiguous(mm: MmStruct, lock: VmAreaLock): void {
    if (lock.users.size < 2) return;
    const users = [...lock.users].sort((a, b) => a.start - b.start);
    let current = lock;
    for (let i = 1; i < users.length; i++) {
      const u = users[i]!;
      if (mm.tree.prev(u) !== users[i - 1]) current = new VmAreaLock(state(mm).nextId++, mm.pid);
      if (current !== lock) {
        lock.users.delete(u);
        u.areaLock = current;
        current.users.add(u);
      }
    }
  }

  /** Dummy VMAs holding `area` over every hole of [start, end) (R3, R6). */
  #fillHoles(mm: MmStruct, area: VmAreaLock, start: number, end: number): void {
    const st = state(mm);
    const holes: Array<[number, number]> = [];
    let at = start;
    for (const v of mm.tree.entries(start)) {
      if (v.start >= end) break;
      if (v.start > at) holes.push([at, v.start]);
      at = Math.max(at, v.end);
    }
    if (at < end) holes.push([at, end]);
    for (const [s, e] of holes) {
      const d = new Vma(s, e, 0, 0, null, null, null, true);
      d.areaLock = area;
      area.users.add(d);
      mm.insertVmaUnchecked(d);
      st.dummies.add(d);
      st.stats.dummiesInserted++;
    }
  }

  /** A VMA is about to occupy [start, end): the dummies there (its own area's) make way. */
  #vacate(mm: MmStruct, start: number, end: number): void {
    const st = state(mm);
    for (const d of entriesIn(mm, start, end)) {
      if (!d.dummy) continue;
      const lock = lockOf(d);
      if (lock.sem.writer === null) throw new LockAssertionError(`a VMA is placed over ${d.toString()}, a locked area its mapper does not hold`);
      const [ds, de] = [d.start, d.end];
      if (ds < start && de > end) {
        // Keep the parts on both sides: shrink this one, add one above.
        mm.setVmaRangeUnchecked(d, ds, start, 0);
        const upper = new Vma(end, de, 0, 0, null, null, null, true);
        upper.areaLock = lock;
        lock.users.add(upper);
        mm.insertVmaUnchecked(upper);
        st.dummies.add(upper);
      } else if (ds < start) mm.setVmaRangeUnchecked(d, ds, start, 0);
      else if (de > end) mm.setVmaRangeUnchecked(d, end, de, 0);
      else mm.eraseVmaUnchecked(d);
    }
  }

  /** Unlock's bookkeeping for a write area: its dummies leave, it is no longer write-held. */
  #dropArea(mm: MmStruct, area: VmAreaLock): void {
    const st = state(mm);
    for (const d of [...st.dummies]) if (d.areaLock === area) mm.eraseVmaUnchecked(d);
    st.writeAreas.delete(area);
  }

  /** The guard's write area whose ranges cover [start, end), or null. */
  #areaCovering(guard: MmLockGuard, start: number, end: number): VmAreaLock | null {
    const st = state(guard.mm);
    for (const a of held(guard).areas) if ((st.writeAreas.get(a) ?? []).some(([s, e]) => s <= start && end <= e)) return a;
    return null;
  }

  /** The lock a VMA inserted with none gets: its write-held area's, or a new one (fork's child, a loaded maps file). */
  #lockForNew(mm: MmStruct, vma: Vma): VmAreaLock {
    const st = state(mm);
    for (const [lock, ranges] of st.writeAreas) {
      if (lock.sem.writer !== null && ranges.some(([s, e]) => s <= vma.start && vma.end <= e)) return lock;
    }
    return new VmAreaLock(st.nextId++, mm.pid);
  }

  /** R8: the lock of the best locked hole where `length` would fit once released (highest first), or null. */
  #bestLockedArea(mm: MmStruct, length: number): VmAreaLock | null {
    let best: { lock: VmAreaLock; top: number } | null = null;
    for (const d of state(mm).dummies) {
      const lock = lockOf(d);
      // The hole between the visible VMAs around the dummy.
      const below = mm.findVmaPrev(d.start);
      const above = mm.findVma(d.end);
      const low = Math.max(below?.end ?? 0, MMAP_MIN_ADDR);
      const high = above === null ? TASK_SIZE : vmStartGap(above);
      if (high - low >= length && (best === null || high > best.top)) best = { lock, top: high };
    }
    return best?.lock ?? null;
  }

  /** [start, end) still fits below the guard gap of the next VMA (a stack may have grown). */
  #gapOk(mm: MmStruct, start: number, end: number): boolean {
    const next = mm.findVma(start);
    return next === null || end <= vmStartGap(next);
  }
}

/**
 * `hybrid`: the design's part 1 (R11). mmap_sem is taken exactly as global-rwsem takes it, and
 * the VMA range locks of `vma-range` inside it, so the new protocol runs — dummies, contagion,
 * unification, R5 re-locking — and is checked by the assertions, with no new concurrency: its
 * results must be global-rwsem's.
 */
export class HybridPolicy extends VmaRangePolicy {
  override readonly name: string = 'hybrid';
  protected override readonly keepMmapSem: boolean = true;

  override provides(site: HookSite): readonly ProvidedLock[] {
    const mmap: readonly ProvidedLock[] = HYBRID_MMAP[site];
    return [...mmap, ...super.provides(site)];
  }
}

const HYBRID_MMAP: ProvidesTable = providesLike('mmap_sem', { stackGrowth: [{ lock: 'mmap_sem', mode: 'read' }] });

/** A retry's back-off: up to 100 ns << min(attempt, 8), scattered by the mm's retry count (Knuth's multiplicative hash). */
function backoffNs(attempt: number, retries: number): number {
  const window = 100 << Math.min(attempt, 8);
  return ((Math.imul(retries + 1, 2654435761) >>> 0) % window) + 1;
}

/** The tree entries (VMAs and dummies) intersecting [start, end), as an array. */
function entriesIn(mm: MmStruct, start: number, end: number): Vma[] {
  const out: Vma[] = [];
  for (const v of mm.tree.entries(start)) {
    if (v.start >= end) break;
    out.push(v);
  }
  return out;
}

/** The plan re-read after taking its locks is the same: same entries, same locks, same ranges. */
function samePlan(a: Plan, b: Plan): boolean {
  if (a.entries.length !== b.entries.length) return false;
  for (let i = 0; i < a.entries.length; i++) {
    const x = a.entries[i]!;
    if (x !== b.entries[i] || x.detached || a.locks.indexOf(lockOf(x)) < 0) return false;
  }
  return a.locks.length === b.locks.length && a.locks.every((l, i) => l === b.locks[i]);
}

/** The lowest start of the plan's entries that use `lock`. */
function lowestStart(lock: VmAreaLock, plan: Plan): number {
  for (const e of plan.entries) if (e.areaLock === lock) return e.start;
  return Infinity;
}
