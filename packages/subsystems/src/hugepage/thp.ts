import {
  HPAGE_PMD_SIZE,
  type MmGen,
  type MmStruct,
  type MmTask,
  PAGE_SIZE,
  Page,
  type Prng,
  SharedLocation,
  SpinLock,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemKind,
  type SubsystemProcess,
  type SubsystemVariant,
  VM_WRITE,
  anonVmaPrepare,
  assumes,
  faultLocked,
  invalidateRangeEnd,
  invalidateRangeStart,
  mmapLegacyLock,
  mmapLegacyUnlock,
  rangeAssertCovered,
  runMmOp,
  unmapRange,
  vmaAssertLocked,
  vmaStartWriteRange,
} from '@vmalock/core';
import { type ExerciseSpawn, spawnCalls } from '../exercise.js';
import {
  HPAGE_PMD_NR,
  HUGEPAGE_AREAS,
  type HugePmdHit,
  hugePmdsIn,
  mapHugepageAreas,
  mprotectReadOnly,
  pmdBase,
  pmdNone,
  randomAreaPage,
  thpSuitable,
} from './hugepageOps.js';

/** The books of one mm: THPs mapped by a PMD, and the deferred split queue. */
interface ThpBooks {
  /** THPs mapped by a huge PMD (`nr_thps`, as `MM_ANONPAGES` counts them, in THPs). */
  readonly nrThp: number;
  /** Each PMD-mapped THP and the base of its PMD. */
  readonly mapped: ReadonlyMap<Page, number>;
  /** `deferred_split_queue`: THPs partially unmapped, waiting for the shrinker to split them. */
  readonly queue: readonly Page[];
}

/** A change to the books: THPs mapped, THPs no longer PMD-mapped, of which some partially unmapped (queued). */
interface BooksDelta {
  readonly mapped: ReadonlyArray<readonly [Page, number]>;
  readonly unmapped: readonly Page[];
  readonly queued: readonly Page[];
}

/** The per-mm state (`struct deferred_split` of the memcg/node, here per mm). */
interface ThpMm {
  readonly mm: MmStruct;
  readonly nrThp: SharedLocation<number>;
  readonly mapped: SharedLocation<ReadonlyMap<Page, number>>;
  readonly queue: SharedLocation<readonly Page[]>;
  /** THPs ever partially unmapped (queued by `deferred_split_folio`). */
  readonly partiallyUnmapped: SharedLocation<number>;
  /** THPs the shrinker split (`deferred_split_scan`). */
  readonly splitByShrinker: SharedLocation<number>;
  /** converted: `split_queue_lock`. */
  readonly splitQueueLock: SpinLock;
}

/**
 * THP fault and THP split, modelled on mm/huge_memory.c: `do_huge_pmd_anonymous_page()` maps a
 * whole THP under the PMD lock on a fault in an empty PMD of a MADV_HUGEPAGE VMA;
 * `__split_huge_pmd()` splits one cut by a partial mprotect or munmap (`vma_adjust_trans_huge`),
 * and a THP partially unmapped (munmap, madvise(DONTNEED)) goes on the `deferred_split_queue`
 * (`deferred_split_folio()`) until the shrinker (`deferred_split_scan()`) splits it. The subsystem
 * keeps a per-mm THP counter, the map of PMD-mapped THPs, and the queue.
 *
 * - legacy: the fault and DONTNEED paths update the books under `page_table_lock`; the split
 *   paths (partial mprotect, partial munmap) update them with no lock of their own, relying on
 *   mmap_sem write to keep every fault and DONTNEED out; the shrinker under mmap_sem read plus
 *   `page_table_lock`. Under vma-range (and per-vma, where faults take VMA locks) a split of one
 *   VMA races with a fault in another and the counter or the queue loses an update.
 * - converted: every update of the books under the subsystem's own `split_queue_lock`
 *   (a spinlock, nested inside `page_table_lock` on the fault and DONTNEED paths, as in the kernel).
 *
 * Invariants: the counter equals the huge PMDs of the mm (this subsystem is the only one mapping
 * THPs there) and the map of PMD-mapped THPs; every THP ever partially unmapped is on the deferred
 * list or was split by the shrinker; nothing is on the list twice or while still PMD-mapped.
 * `drive`: THP write faults, partial munmap and mprotect, madvise(DONTNEED), the shrinker.
 */
abstract class Thp implements Subsystem {
  readonly name: string = 'thp';
  readonly kind: SubsystemKind = 'hugepage';
  abstract readonly variant: SubsystemVariant;
  readonly summary: string =
    'mm/huge_memory.c: do_huge_pmd_anonymous_page, __split_huge_pmd on a partial mprotect or munmap, deferred_split_folio/deferred_split_scan with a per-mm THP counter';
  readonly hookCounts: Record<string, number> = { doHugePmdAnonymousPage: 0, splitHugePmd: 0, deferredSplitFolio: 0, deferredSplitScan: 0, zapHugePmd: 0 };
  readonly #mms = new Map<number, ThpMm>();

  attach(proc: SubsystemProcess): void {
    if (this.#mms.has(proc.pid)) throw new Error(`${this.name}: pid ${proc.pid} attached twice`);
    const loc = <T>(field: string, value: T): SharedLocation<T> => new SharedLocation<T>(`${this.name}.mm${proc.pid}.${field}`, value, this.name);
    this.#mms.set(proc.pid, {
      mm: proc.mm,
      nrThp: loc('nrThp', 0),
      mapped: loc<ReadonlyMap<Page, number>>('mapped', new Map()),
      queue: loc<readonly Page[]>('deferredSplitQueue', []),
      partiallyUnmapped: loc('partiallyUnmapped', 0),
      splitByShrinker: loc('splitByShrinker', 0),
      splitQueueLock: new SpinLock(`${this.name}.mm${proc.pid}.split_queue_lock`),
    });
  }

  *drive(task: MmTask, rng: Prng): MmGen<void> {
    const addr = randomAreaPage(rng);
    const end = addr + rng.int(1, 4) * PAGE_SIZE;
    switch (rng.int(0, 9)) {
      case 0:
      case 1:
        yield* this.munmapPartial(task, addr, end);
        return;
      case 2:
      case 3:
        yield* this.mprotectPartial(task, addr, end);
        return;
      case 4:
        yield* this.madviseDontneed(task, addr, end);
        return;
      case 5:
        yield* this.deferredSplitScan(task);
        return;
      default:
        yield* this.hugePmdFault(task, addr);
    }
  }

  /**
   * flag's workload: the areas mapped and every PMD of them faulted in as a THP (set up
   * first), then three user threads driving them 4 times each: splits of THPs by partial
   * munmaps and mprotects race each other, the THP faults, DONTNEED and the shrinker.
   */
  exercise(proc: SubsystemProcess, spawn: ExerciseSpawn): void {
    runMmOp(
      proc.mm,
      function* (this: Thp, task: MmTask): MmGen<void> {
        yield* mapHugepageAreas(task, 0);
        for (const [start, end] of HUGEPAGE_AREAS) for (let base = start; base < end; base += HPAGE_PMD_SIZE) yield* this.hugePmdFault(task, base);
      }.bind(this),
      'thp-setup',
    );
    for (let t = 0; t < 3; t++) spawnCalls(spawn, `thp-user${t}`, 4, (task, rng) => this.drive(task, rng));
  }

  /**
   * A write fault at `addr`: `do_huge_pmd_anonymous_page()` when the PMD is empty and the VMA
   * allows a THP, else the ordinary fault path. Context: no lock held; takes the fault lock.
   */
  *hugePmdFault(task: MmTask, addr: number): MmGen<string> {
    const { mm, thread } = task;
    thread.work('faultNs');
    // No speculation here: a policy that speculates (spf) is asked for a lock that cannot abort.
    const guard = yield* mm.policy.lockForFault(mm, thread, addr, mm.policy.revalidateFault !== undefined);
    const base = pmdBase(addr);
    const vma = mm.vmaLookup(addr);
    let result = 'ok';
    if (vma === null || !thpSuitable(mm, vma, base) || (vma.flags & VM_WRITE) === 0 || !pmdNone(mm, base)) {
      result = yield* faultLocked(task, guard, addr, 'write', false);
      // The PMD may have emptied meanwhile (a DONTNEED) and the core fault path mapped a THP
      // of its own: book it, under the same locks as our own THP faults.
      const pt = mm.pageTables;
      yield pt.pageTableLock.lock();
      const huge = pt.pmd(base)?.huge ?? null;
      if (huge !== null) yield* this.faultBooks(this.#of(mm), { mapped: [[huge, base]], unmapped: [], queued: [] });
      yield pt.pageTableLock.unlock();
    } else {
      vmaAssertLocked(guard, vma, 'do_huge_pmd_anonymous_page reads the VMA');
      anonVmaPrepare(mm, vma);
      thread.work('pageZeroNs', HPAGE_PMD_NR);
      const pt = mm.pageTables;
      yield pt.pageTableLock.lock();
      if (pmdNone(mm, base)) {
        const page = new Page(true, true);
        pt.setHugePmd(base, page, true);
        mm.faultCounts.huge++;
        this.hookCounts['doHugePmdAnonymousPage']!++;
        yield* this.faultBooks(this.#of(mm), { mapped: [[page, base]], unmapped: [], queued: [] });
      }
      yield pt.pageTableLock.unlock();
    }
    yield* mm.policy.unlock(guard);
    return result;
  }

  /**
   * `munmap(start, end - start)` of part of an area: THPs cut by the range are split and queued
   * (`__split_huge_pmd` + `deferred_split_folio`), THPs inside it go whole. Context: no lock held.
   */
  *munmapPartial(task: MmTask, start: number, end: number): MmGen<number> {
    const { mm, thread } = task;
    thread.work('syscallNs');
    const guard = yield* mm.policy.lockForModify(mm, thread, start, end);
    rangeAssertCovered(guard, start, end, 'munmap changes the VMAs of its range');
    yield* vmaStartWriteRange(guard, start, end, false);
    const hits = hugePmdsIn(mm, start, end);
    if (hits.length > 0) yield* this.splitBooks(this.#of(mm), this.#splitDelta(hits, true));
    const r = yield* unmapRange(mm, thread, guard, start, end, true);
    yield* mm.policy.unlock(guard);
    if (r !== 0) throw new Error(`${this.name}: munmap of [0x${start.toString(16)}, 0x${end.toString(16)}) failed with ${r} after its THPs were accounted`);
    return r;
  }

  /** `mprotect(start, end - start, PROT_READ)` inside one VMA: THPs cut by it are split (not unmapped: not queued). */
  *mprotectPartial(task: MmTask, start: number, end: number): MmGen<number> {
    const books = this.#of(task.mm);
    return yield* mprotectReadOnly(task, start, end, (_guard, cut) => (cut.length > 0 ? this.splitBooks(books, this.#splitDelta(cut, false)) : noop()));
  }

  /** `madvise(MADV_DONTNEED)`: zap under the read-side lock and `page_table_lock`; cut THPs are queued, whole ones go. */
  *madviseDontneed(task: MmTask, start: number, end: number): MmGen<void> {
    const { mm, thread } = task;
    thread.work('syscallNs');
    const guard = yield* mm.policy.lockForRead(mm, thread, start, end);
    const pt = mm.pageTables;
    yield* invalidateRangeStart(mm, thread, start, end);
    yield pt.pageTableLock.lock();
    const hits = hugePmdsIn(mm, start, end);
    thread.work('zapPageNs', pt.zap(start, end));
    if (hits.length > 0) {
      this.hookCounts['zapHugePmd']!++;
      yield* this.faultBooks(this.#of(mm), this.#splitDelta(hits, true));
    }
    yield pt.pageTableLock.unlock();
    yield* invalidateRangeEnd(mm, thread, start, end);
    yield* mm.policy.unlock(guard);
  }

  /** `deferred_split_scan()`: the shrinker splits every queued THP (its unmapped part is freed). */
  abstract deferredSplitScan(task: MmTask): MmGen<number>;

  /** Update the books from the fault or DONTNEED path; the caller holds `page_table_lock`. */
  protected abstract faultBooks(books: ThpMm, delta: BooksDelta): MmGen<void>;

  /** Update the books from a split path (partial mprotect or munmap); the caller holds the modify lock of the range. */
  protected abstract splitBooks(books: ThpMm, delta: BooksDelta): MmGen<void>;

  #splitDelta(hits: readonly HugePmdHit[], unmapping: boolean): BooksDelta {
    this.hookCounts['splitHugePmd']! += hits.filter((h) => !h.whole).length;
    return { mapped: [], unmapped: hits.map((h) => h.page), queued: unmapping ? hits.filter((h) => !h.whole).map((h) => h.page) : [] };
  }

  /**
   * Apply `delta` to the books, one location at a time (read all, then write all: each access a
   * scheduling point). Not atomic: the caller's locking makes it so, or does not.
   */
  protected *applyDelta(books: ThpMm, delta: BooksDelta): MmGen<void> {
    const nr = (yield books.nrThp.read()) as number;
    const mapped = new Map((yield books.mapped.read()) as ReadonlyMap<Page, number>);
    const queue = (yield books.queue.read()) as readonly Page[];
    const partial = (yield books.partiallyUnmapped.read()) as number;
    // Only THPs the books know change them: a THP the core fault path mapped and a DONTNEED
    // zapped before its fault booked it was never counted.
    let added = 0;
    const removed = new Set<Page>();
    for (const [page, base] of delta.mapped) {
      if (mapped.has(page)) continue;
      mapped.set(page, base);
      added++;
    }
    for (const page of delta.unmapped) if (mapped.delete(page)) removed.add(page);
    const queued = delta.queued.filter((page) => removed.has(page));
    this.hookCounts['deferredSplitFolio']! += queued.length;
    yield books.nrThp.write(nr + added - removed.size);
    yield books.mapped.write(mapped);
    yield books.queue.write([...queue, ...queued]);
    yield books.partiallyUnmapped.write(partial + queued.length);
  }

  /** Take the whole queue and count its THPs split. Not atomic, as `applyDelta`. */
  protected *drainQueue(books: ThpMm): MmGen<number> {
    const queue = (yield books.queue.read()) as readonly Page[];
    const split = (yield books.splitByShrinker.read()) as number;
    yield books.queue.write([]);
    yield books.splitByShrinker.write(split + queue.length);
    this.hookCounts['deferredSplitScan']!++;
    return queue.length;
  }

  checkInvariants(): void {
    for (const books of this.#mms.values()) this.#check(books);
  }

  #check(b: ThpMm): void {
    const { mm } = b;
    const fail = (what: string): never => {
      throw new SubsystemInvariantError(this.name, `mm${mm.pid}: ${what}`);
    };
    const books: ThpBooks = { nrThp: b.nrThp.value, mapped: b.mapped.value, queue: b.queue.value };
    if (books.nrThp !== mm.pageTables.hugePmds) fail(`THP counter ${books.nrThp} but ${mm.pageTables.hugePmds} huge PMDs mapped`);
    if (books.mapped.size !== books.nrThp) fail(`THP counter ${books.nrThp} but ${books.mapped.size} THPs recorded as PMD-mapped`);
    for (const [page, base] of books.mapped) {
      if (mm.pageTables.pmd(base)?.huge !== page) fail(`THP recorded at PMD 0x${base.toString(16)} is no longer mapped there`);
    }
    const queued = new Set(books.queue);
    if (queued.size !== books.queue.length) fail('a THP is on the deferred split queue twice');
    for (const page of books.queue) if (books.mapped.has(page)) fail('a THP on the deferred split queue is still PMD-mapped');
    const split = b.splitByShrinker.value;
    if (b.partiallyUnmapped.value !== books.queue.length + split)
      fail(`${b.partiallyUnmapped.value} THPs partially unmapped but ${books.queue.length} queued and ${split} split by the shrinker`);
  }

  locations(): readonly SharedLocation[] {
    return [...this.#mms.values()].flatMap((b) => [b.nrThp, b.mapped, b.queue, b.partiallyUnmapped, b.splitByShrinker]);
  }

  protected books(mm: MmStruct): ThpMm {
    return this.#of(mm);
  }

  #of(mm: MmStruct): ThpMm {
    const b = this.#mms.get(mm.pid);
    if (b === undefined) throw new Error(`${this.name}: mm${mm.pid} is not attached`);
    return b;
  }
}

function* noop(): MmGen<void> {}

/** The books kept as if mmap_sem serialised the splitters against everything else. */
class ThpLegacy extends Thp {
  readonly variant: SubsystemVariant = 'legacy';

  @assumes({
    lock: 'mmap_sem',
    mode: 'read',
    hook: 'fault',
    protects: 'thp.nrThp, thp.mapped',
    why: 'do_huge_pmd_anonymous_page counts its THP under page_table_lock only: the splitters, which take no lock for the books, are kept out by the mmap_sem read every fault holds',
  })
  protected override *faultBooks(books: ThpMm, delta: BooksDelta): MmGen<void> {
    yield* this.applyDelta(books, delta);
  }

  @assumes({
    lock: 'mmap_sem',
    mode: 'write',
    hook: 'mprotectFixup',
    protects: 'thp.nrThp, thp.mapped, thp.deferredSplitQueue',
    why: '__split_huge_pmd from mprotect_fixup and munmap updates the counter and the deferred split queue with no split_queue_lock: mmap_sem write excludes every fault, DONTNEED and shrinker',
  })
  protected override *splitBooks(books: ThpMm, delta: BooksDelta): MmGen<void> {
    yield* this.applyDelta(books, delta);
  }

  override *deferredSplitScan(task: MmTask): MmGen<number> {
    const { mm, thread } = task;
    const hold = yield* mmapLegacyLock(mm, thread, 'read');
    const pt = mm.pageTables;
    yield pt.pageTableLock.lock();
    const n = yield* this.drainQueue(this.books(mm));
    yield pt.pageTableLock.unlock();
    yield* mmapLegacyUnlock(mm, hold);
    return n;
  }
}

/** The books under the subsystem's own `split_queue_lock`. */
class ThpConverted extends Thp {
  readonly variant: SubsystemVariant = 'converted';

  @assumes({
    lock: 'vma',
    mode: 'read',
    hook: 'fault',
    protects: 'the PMD being faulted',
    why: 'the fault maps its THP under its VMA read lock and page_table_lock; the books are under split_queue_lock',
  })
  protected override *faultBooks(books: ThpMm, delta: BooksDelta): MmGen<void> {
    yield books.splitQueueLock.lock();
    yield* this.applyDelta(books, delta);
    yield books.splitQueueLock.unlock();
  }

  @assumes({
    lock: 'vma',
    mode: 'write',
    hook: 'mprotectFixup',
    protects: 'the huge PMDs being split',
    why: 'the VMA write lock keeps faults off the PMDs being split until the split is done; the books are under split_queue_lock',
  })
  protected override *splitBooks(books: ThpMm, delta: BooksDelta): MmGen<void> {
    yield books.splitQueueLock.lock();
    yield* this.applyDelta(books, delta);
    yield books.splitQueueLock.unlock();
  }

  override *deferredSplitScan(task: MmTask): MmGen<number> {
    const books = this.books(task.mm);
    yield books.splitQueueLock.lock();
    const n = yield* this.drainQueue(books);
    yield books.splitQueueLock.unlock();
    return n;
  }
}

/** THP fault and split with the legacy or the converted locking of their books. */
export function thp(variant: SubsystemVariant): Thp {
  return variant === 'legacy' ? new ThpLegacy() : new ThpConverted();
}

export type { Thp };
