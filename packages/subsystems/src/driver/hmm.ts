import {
  EBUSY,
  EFAULT,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  type MmGen,
  type MmStruct,
  type MmTask,
  type MmuNotifier,
  Mutex,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Page,
  type Prng,
  SharedLocation,
  type SimThread,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemProcess,
  type SubsystemVariant,
  WaitQueue,
  assumes,
  faultLocked,
  getUserPages,
  handleMmFault,
  hex,
  mmapLegacyLock,
  mmapLegacyUnlock,
  runMmOp,
  sysMmap,
  sysMprotect,
  sysMunmap,
} from '@vmalock/core';
import { SubsystemBase } from '../common.js';
import { type ExerciseSpawn, spawnCalls } from '../exercise.js';

/** The range each process mirrors to its device (mapped at attach, anonymous, read-write). */
export const HMM_BASE = 0x61000000;
export const HMM_PAGES = 8;
const HMM_END = HMM_BASE + HMM_PAGES * PAGE_SIZE;
/** How often a converted device fault retries after the sequence moved, before it gives up with -EBUSY (hmm_range_fault's callers bound it by a timeout). */
export const HMM_RETRIES_MAX = 4;

/** The device's mirror of one process's range (`struct mmu_interval_notifier` plus the driver's page table). */
export interface HmmMirror {
  readonly mm: MmStruct;
  /**
   * The device page table: the page each mirrored address maps, by page index in the range.
   * Written under: legacy, mmap_sem read (device fault) or what the invalidating operation holds
   * (notifier); converted, `lock`. Read under: the same.
   */
  readonly pages: readonly SharedLocation<Page | null>[];
  /**
   * `mni->invalidate_seq` (converted): odd while an invalidation of the range is in progress,
   * bumped at its start and its end. Written under: `lock`. Read: `mmu_interval_read_begin`
   * without a lock, `mmu_interval_read_retry` under `lock`.
   */
  readonly seq: SharedLocation<number>;
  /** Invalidations of the range in progress (converted; `active_invalidate_ranges`). Written under: `lock`. */
  readonly active: SharedLocation<number>;
  /** The driver's lock (converted): the device page table and the sequence. */
  readonly lock: Mutex;
  /** Where `mmu_interval_read_begin` sleeps while an invalidation is in progress. */
  readonly wq: WaitQueue;
}

/** The hooks HMM installs, by name (for hookCounts). */
type HmmHook = 'invalidateRangeStart' | 'invalidateRangeEnd';

/**
 * An HMM-like mirror of the CPU page table (`mm/hmm.c` `hmm_range_fault`,
 * `mm/mmu_notifier.c` `mmu_interval_notifier_insert` / `mmu_interval_read_begin` /
 * `mmu_interval_read_retry`, as a GPU driver such as nouveau's `nouveau_svm.c` uses them): a
 * device fault makes the CPU page present (`hmm_range_fault`, write access) and copies the
 * mapping into the device's page table; an MMU notifier registered at attach
 * (`mm.mmuNotifiers`) clears the device's entries when the CPU page table of the range changes
 * (munmap, MAP_FIXED over it, mprotect to read-only, mremap, madvise).
 *
 * Invariant (`checkInvariants`, at quiescence): every mirror entry matches a present CPU PTE
 * (the same page); converted: no invalidation in progress, the sequence even.
 *
 * The device faults for write, so the page it mirrors is the process's own anonymous page and
 * no un-notified copy-on-write replaces it later.
 */
abstract class HmmMirrorDriver extends SubsystemBase<HmmMirror, HmmHook> {
  readonly name = 'hmm';
  readonly kind = 'driver' as const;
  readonly summary = 'hmm: a device mirror of the CPU page table, filled by device faults, invalidated by an MMU notifier (mm/hmm.c, mm/mmu_notifier.c)';

  constructor() {
    super({ invalidateRangeStart: 0, invalidateRangeEnd: 0 });
  }

  /** Map the range (read-write anonymous) and register the mirror's MMU notifier on the mm. */
  protected override attachState(proc: SubsystemProcess): HmmMirror {
    const addr = runMmOp(
      proc.mm,
      (t) => sysMmap(t, HMM_BASE, HMM_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0),
      'hmm-range',
    );
    if (addr !== HMM_BASE) throw new Error(`hmm: cannot map the mirrored range of pid ${proc.pid} at ${hex(HMM_BASE)}: ${addr}`);
    const at = `${this.name}.mm${proc.pid}`;
    const mirror: HmmMirror = {
      mm: proc.mm,
      pages: Array.from({ length: HMM_PAGES }, (_, i) => new SharedLocation<Page | null>(`${at}.mirror[${hex(HMM_BASE + i * PAGE_SIZE)}]`, null, this.name)),
      seq: new SharedLocation<number>(`${at}.invalidate_seq`, 0, this.name),
      active: new SharedLocation<number>(`${at}.active_invalidate_ranges`, 0, this.name),
      lock: new Mutex(`${at}.lock`),
      wq: new WaitQueue(`${at}.wq`),
    };
    const notifier: MmuNotifier = {
      name: this.name,
      invalidateRangeStart: (_mm, thread, start, end) => this.#invalidate(mirror, thread, start, end, 'invalidateRangeStart'),
      invalidateRangeEnd: (_mm, thread, start, end) => this.#invalidate(mirror, thread, start, end, 'invalidateRangeEnd'),
    };
    proc.mm.mmuNotifiers.push(notifier);
    return mirror;
  }

  /** The mirror of `mm` (attached). */
  mirrorOf(mm: MmStruct): HmmMirror {
    return this.stateOf(mm);
  }

  /**
   * One user call: a device fault on a page of the range (the most likely), a CPU write fault,
   * or an mm call that changes the range's page table: munmap, mmap(MAP_FIXED) over it,
   * mprotect. (Not madvise(MADV_DONTNEED): it zaps under mmap_sem *read*, which legacy's
   * exclusion does not cover even with mmap_sem; the tests drive it separately.)
   */
  override *drive(task: MmTask, rng: Prng): MmGen<void> {
    const mirror = this.mirrorOf(task.mm);
    const index = rng.int(0, HMM_PAGES - 1);
    const addr = HMM_BASE + index * PAGE_SIZE;
    const len = rng.int(1, Math.min(3, HMM_PAGES - index)) * PAGE_SIZE;
    switch (rng.int(0, 6)) {
      case 0:
      case 1:
      case 2:
        yield* this.deviceFault(task, mirror, index);
        return;
      case 3:
        yield* handleMmFault(task, addr, 'write');
        return;
      case 4:
        yield* sysMunmap(task, addr, len);
        return;
      case 5:
        yield* sysMmap(task, addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        return;
      default:
        yield* sysMprotect(task, addr, len, rng.chance(0.5) ? PROT_READ : PROT_READ | PROT_WRITE);
    }
  }

  /**
   * flag's workload: two threads making device faults on random pages of the range while a
   * third replaces pages of it (mmap MAP_FIXED, half the time the whole range) or unmaps them:
   * a device fault that made its page present races the zap of that page.
   */
  exercise(_proc: SubsystemProcess, spawn: ExerciseSpawn): void {
    for (let t = 0; t < 2; t++)
      spawnCalls(spawn, `hmm-device${t}`, 5, (task, rng) => this.deviceFault(task, this.mirrorOf(task.mm), rng.int(0, HMM_PAGES - 1)));
    // Most zaps replace the whole range, so whichever page a device fault mirrors goes.
    spawnCalls(spawn, 'hmm-zap', 4, (task, rng) => {
      const index = rng.chance(0.5) ? 0 : rng.int(0, HMM_PAGES - 1);
      const len = (index === 0 ? HMM_PAGES : rng.int(1, HMM_PAGES - index)) * PAGE_SIZE;
      const addr = HMM_BASE + index * PAGE_SIZE;
      return rng.chance(0.75) ? sysMmap(task, addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) : sysMunmap(task, addr, len);
    });
  }

  /**
   * The device faults on the page `index` of the range: make the CPU page present for write and
   * mirror it. 0, -EFAULT (nothing mapped there, or not writable), -EBUSY (converted: the range
   * kept changing).
   */
  abstract deviceFault(task: MmTask, mirror: HmmMirror, index: number): MmGen<number>;

  /** The notifier's callback for [start, end): each variant's `invalidateStart` / `invalidateEnd` on the part it mirrors. */
  *#invalidate(mirror: HmmMirror, thread: SimThread, start: number, end: number, hook: HmmHook): MmGen<void> {
    if (end <= HMM_BASE || start >= HMM_END) return;
    this.count(hook);
    const first = Math.max(0, Math.floor((start - HMM_BASE) / PAGE_SIZE));
    const last = Math.min(HMM_PAGES, Math.ceil((end - HMM_BASE) / PAGE_SIZE));
    if (hook === 'invalidateRangeStart') yield* this.invalidateStart(mirror, thread, first, last);
    else yield* this.invalidateEnd(mirror, thread);
  }

  /** `invalidate_range_start` on the mirror's pages [first, last): drop the device's entries. */
  protected abstract invalidateStart(mirror: HmmMirror, thread: SimThread, first: number, last: number): MmGen<void>;

  /** `invalidate_range_end`. */
  protected abstract invalidateEnd(mirror: HmmMirror, thread: SimThread): MmGen<void>;

  override checkInvariants(): void {
    for (const mirror of this.states()) {
      const { mm } = mirror;
      mirror.pages.forEach((loc, i) => {
        const page = loc.value;
        if (page === null) return;
        const addr = HMM_BASE + i * PAGE_SIZE;
        const view = mm.pageTables.lookup(addr);
        if (view === null)
          throw new SubsystemInvariantError(this.name, `mm${mm.pid}: ${loc.name} holds a page but the CPU page table maps nothing at ${hex(addr)}`);
        if (view.page !== page)
          throw new SubsystemInvariantError(this.name, `mm${mm.pid}: ${loc.name} holds a page the CPU page table no longer maps at ${hex(addr)}`);
      });
      if (mirror.active.value !== 0 || mirror.seq.value % 2 !== 0)
        throw new SubsystemInvariantError(
          this.name,
          `mm${mm.pid}: ${mirror.active.value} invalidations still in progress (invalidate_seq ${mirror.seq.value})`,
        );
    }
  }

  override locations(): readonly SharedLocation[] {
    return [...this.states()].flatMap((m) => [...m.pages, m.seq, m.active]);
  }
}

/**
 * Legacy HMM (the pre-5.5 pattern of a driver calling `hmm_range_fault` with mmap_sem held):
 * the device fault holds `mmap_read_lock` across the CPU fault and the mirror update, and the
 * notifier clears entries without a lock of its own. What keeps the page from being unmapped
 * between the fault and the mirror update is mmap_sem: munmap, MAP_FIXED, mprotect and mremap
 * change the range under mmap_sem write (munmap detaches the VMA before its downgrade, so a
 * device fault that takes the read lock afterwards finds no VMA).
 */
@assumes({
  lock: 'mmap_sem',
  mode: 'read',
  hook: 'gup',
  protects: 'hmm.mirror (the page between hmm_range_fault and the device page table update)',
  why: 'the CPU PTE read by hmm_range_fault must not be zapped before it is copied into the mirror: mmap_sem read excludes munmap and mprotect',
})
class HmmLegacy extends HmmMirrorDriver {
  readonly variant = 'legacy' as const;

  override *deviceFault(task: MmTask, mirror: HmmMirror, index: number): MmGen<number> {
    const { mm, thread } = task;
    const addr = HMM_BASE + index * PAGE_SIZE;
    const hold = yield* mmapLegacyLock(mm, thread, 'read');
    let ok: boolean;
    if (hold !== null) {
      // hmm_range_fault() under the caller's mmap_read_lock: find the VMA, fault the page in.
      ok = mm.vmaLookup(addr) !== null && (yield* faultLocked(task, hold, addr, 'write', false)) === 'ok';
    } else {
      // No mmap_sem under this policy: the fault is protected by the policy's own read lock,
      // taken and dropped inside get_user_pages; nothing covers the mirror update below.
      ok = (yield* getUserPages(task, addr, 1, true)) === 1;
    }
    const view = ok ? mm.pageTables.lookup(addr) : null;
    // The device page table is under the driver's lock (nouveau's svmm->mutex); what legacy lacks
    // is the check that the CPU PTE it copies is still there (mmap_sem is that check).
    if (view !== null) {
      yield mirror.lock.lock();
      yield mirror.pages[index]!.write(view.page);
      yield mirror.lock.unlock();
    }
    yield* mmapLegacyUnlock(mm, hold);
    return view !== null ? 0 : -EFAULT;
  }

  protected override *invalidateStart(mirror: HmmMirror, _thread: SimThread, first: number, last: number): MmGen<void> {
    yield mirror.lock.lock();
    for (let i = first; i < last; i++) yield mirror.pages[i]!.write(null);
    yield mirror.lock.unlock();
  }

  protected override *invalidateEnd(_mirror: HmmMirror, _thread: SimThread): MmGen<void> {}
}

/**
 * Converted HMM (Linux 5.5+, `mmu_interval_notifier`): the device fault reads the interval's
 * sequence (`mmu_interval_read_begin`, sleeping while an invalidation is in progress), faults
 * the page in with no lock held across (`hmm_range_fault` takes the policy's read lock itself),
 * then takes the driver lock and updates the mirror only if the sequence did not move
 * (`mmu_interval_read_retry`); otherwise it retries, at most `HMM_RETRIES_MAX` times. The
 * notifier takes the same driver lock to bump the sequence and clear entries
 * (`mmu_interval_set_seq`). Nothing relies on an mm lock outside the fault itself.
 */
@assumes({
  lock: 'vma',
  mode: 'read',
  hook: 'gup',
  protects: 'the CPU page table walk of hmm_range_fault',
  why: 'the fault needs the VMA stable while it makes the page present; the mirror update is validated by the sequence instead',
})
class HmmConverted extends HmmMirrorDriver {
  readonly variant = 'converted' as const;

  override *deviceFault(task: MmTask, mirror: HmmMirror, index: number): MmGen<number> {
    const { mm } = task;
    const addr = HMM_BASE + index * PAGE_SIZE;
    for (let attempt = 0; attempt < HMM_RETRIES_MAX; attempt++) {
      const seq = yield* this.#readBegin(mirror);
      if (seq === null) continue;
      if ((yield* getUserPages(task, addr, 1, true)) !== 1) return -EFAULT;
      const view = mm.pageTables.lookup(addr);
      yield mirror.lock.lock();
      const now = (yield mirror.seq.read()) as number;
      if (now === seq && view !== null) yield mirror.pages[index]!.write(view.page);
      yield mirror.lock.unlock();
      if (now === seq) return view !== null ? 0 : -EFAULT;
    }
    return -EBUSY;
  }

  /**
   * `mmu_interval_read_begin()`: the sequence once no invalidation is in progress (even),
   * sleeping once for the one in progress; null when another began meanwhile (counts as a retry).
   */
  *#readBegin(mirror: HmmMirror): MmGen<number | null> {
    // READ_ONCE(interval_sub->invalidate_seq): read locklessly, validated under the driver lock.
    const seq = (yield mirror.seq.readOnce()) as number;
    if (seq % 2 === 0) return seq;
    yield mirror.wq.waitEvent(() => mirror.seq.value % 2 === 0);
    const again = (yield mirror.seq.readOnce()) as number;
    return again % 2 === 0 ? again : null;
  }

  protected override *invalidateStart(mirror: HmmMirror, _thread: SimThread, first: number, last: number): MmGen<void> {
    yield mirror.lock.lock();
    const active = (yield mirror.active.rmw((n) => n + 1)) as number;
    if (active === 0) yield mirror.seq.rmw((s) => s + 1);
    for (let i = first; i < last; i++) yield mirror.pages[i]!.write(null);
    yield mirror.lock.unlock();
  }

  protected override *invalidateEnd(mirror: HmmMirror, _thread: SimThread): MmGen<void> {
    yield mirror.lock.lock();
    const active = (yield mirror.active.rmw((n) => n - 1)) as number;
    if (active === 1) yield mirror.seq.rmw((s) => s + 1);
    yield mirror.lock.unlock();
    if (active === 1) yield mirror.wq.wakeUpAll();
  }
}

/** The HMM mirror of `variant`: a new instance, one mirror per attached process. */
export function hmm(variant: SubsystemVariant): Subsystem {
  return variant === 'legacy' ? new HmmLegacy() : new HmmConverted();
}
