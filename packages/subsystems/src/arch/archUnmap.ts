import {
  type ArchHooks,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MREMAP_MAYMOVE,
  type MmGen,
  type MmLockGuard,
  type MmStruct,
  type MmTask,
  Mutex,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Prng,
  SharedLocation,
  type SimThread,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemProcess,
  type SubsystemVariant,
  assumes,
  hex,
  mmapLegacyLock,
  mmapLegacyUnlock,
  runMmOp,
  sysMmap,
  sysMremap,
  sysMunmap,
  yieldNow,
} from '@vmalock/core';
import { SubsystemBase } from '../common.js';
import { type ExerciseSpawn, spawnCalls } from '../exercise.js';

/** A registered range `[start, end)` and the id of the thread that registered it (the only one that unmaps it). */
export type ArchRange = readonly [start: number, end: number, owner: number];

/** The most pages a registered range has. */
export const ARCH_RANGE_PAGES_MAX = 4;

/** Where the threads of `exercise` map their ranges: a region per thread above it. */
const ARCH_EXERCISE_BASE = 0x70000000;

/** The per-mm state. */
export interface ArchUnmapMm {
  readonly mm: MmStruct;
  /**
   * The registered ranges (MPX: the bounds tables the bounds directory points at), kept sorted
   * and disjoint. Written under: legacy, mmap_sem write (register) and arch_unmap's hold
   * (munmap before its downgrade); converted, `lock`. Read under: the same.
   */
  readonly table: SharedLocation<readonly ArchRange[]>;
  /** Converted: the lock of its own around `table`. */
  readonly lock: Mutex;
}

type ArchUnmapOp = 'archUnmap' | 'register' | 'munmap' | 'mremap';

/** `table` without [start, end): entries inside go, entries across its ends are trimmed or split. */
export function trimRanges(table: readonly ArchRange[], start: number, end: number): ArchRange[] {
  const out: ArchRange[] = [];
  for (const [s, e, owner] of table) {
    if (e <= start || s >= end) out.push([s, e, owner]);
    else {
      if (s < start) out.push([s, start, owner]);
      if (e > end) out.push([end, e, owner]);
    }
  }
  return out;
}

/**
 * Arch unmap bookkeeping (`arch_unmap()`, `arch/x86/include/asm/mmu_context.h` up to Linux 5.5):
 * with MPX, the bounds tables of an mm were user memory the kernel allocated on a #BR fault
 * (`mpx_handle_bd_fault` -> `allocate_bt`, under `down_write(mmap_sem)`) and recorded in the
 * bounds directory; `arch_unmap` -> `mpx_notify_unmap` -> `mpx_unmap_tables` cleaned the
 * entries of any unmapped range. It ran from `__do_munmap` after the VMAs were detached and
 * *before* `mmap_write_downgrade`, so under mmap_sem write. (powerpc's `arch_unmap` clears
 * `mm->context.vdso` the same way.)
 *
 * `drive`: register a range (mmap a small anonymous area, then record it in the table), munmap
 * part of a registered range, or move part of one with mremap (the old part is unmapped).
 * The hook (`mm.archHooks`) trims every entry to what is still mapped.
 *
 * Invariant (`checkInvariants`): the table is sorted and disjoint, and every address an entry
 * covers is mapped.
 */
abstract class ArchUnmapBase extends SubsystemBase<ArchUnmapMm, ArchUnmapOp> {
  readonly name = 'archunmap';
  readonly kind = 'arch' as const;
  readonly summary = 'arch_unmap bookkeeping: a per-mm table of registered ranges (x86 MPX bounds tables) trimmed when they are unmapped';
  /** The arch hooks installed on every attached mm. */
  readonly archHooks: ArchHooks;

  constructor() {
    super({ archUnmap: 0, register: 0, munmap: 0, mremap: 0 });
    this.archHooks = { name: 'archunmap', unmap: (mm, thread, start, end) => this.#archUnmap(mm, thread, start, end) };
  }

  protected override attachState(proc: SubsystemProcess): ArchUnmapMm {
    const { mm } = proc;
    const at = `${this.name}.mm${proc.pid}`;
    const state: ArchUnmapMm = {
      mm,
      table: new SharedLocation<readonly ArchRange[]>(`${at}.bt_table`, [], this.name),
      lock: new Mutex(`${at}.bt_lock`),
    };
    mm.archHooks.push(this.archHooks);
    return state;
  }

  override *drive(task: MmTask, rng: Prng): MmGen<void> {
    const s = this.stateOf(task.mm);
    // A thread unmaps only what it registered itself (as a program frees only its own memory):
    // the entries it reads for its own ranges are current, since only it unmaps them.
    // (A model shortcut, not a kernel access: user space knows its ranges, so data_race().)
    const table = (yield s.table.dataRace()) as readonly ArchRange[];
    const own = table.filter((e) => e[2] === task.thread.id);
    const pick = own.length === 0 || rng.chance(0.4) ? null : own[rng.index(own.length)]!;
    if (pick === null) {
      yield* this.register(task, rng.int(1, ARCH_RANGE_PAGES_MAX) * PAGE_SIZE);
      return;
    }
    const pages = (pick[1] - pick[0]) / PAGE_SIZE;
    const first = rng.int(0, pages - 1);
    const start = pick[0] + first * PAGE_SIZE;
    const len = rng.int(1, pages - first) * PAGE_SIZE;
    if (rng.chance(0.7)) {
      this.count('munmap');
      yield* sysMunmap(task, start, len);
    } else {
      this.count('mremap');
      yield* sysMremap(task, start, len, len + PAGE_SIZE, MREMAP_MAYMOVE, 0);
    }
  }

  /**
   * flag's workload: two ranges registered first; then two threads register ranges while a
   * third unmaps parts of those two: a registration that read the table before an unmap writes
   * it back after the unmap's `arch_unmap` trimmed it. Each thread maps at hints of its own (a
   * region per thread, a slot per call), so no registration maps an unmapped range again.
   */
  exercise(proc: SubsystemProcess, spawn: ExerciseSpawn): void {
    const slot = 2 * ARCH_RANGE_PAGES_MAX * PAGE_SIZE;
    const hint = (t: number, i: number): number => ARCH_EXERCISE_BASE + (t * 8 + i) * slot;
    const len = (rng: Prng): number => rng.int(1, ARCH_RANGE_PAGES_MAX) * PAGE_SIZE;
    const ranges = [0, 1].map((i) => runMmOp(proc.mm, (task) => this.register(task, ARCH_RANGE_PAGES_MAX * PAGE_SIZE, hint(2, i)), 'archunmap-setup'));
    for (let t = 0; t < 2; t++) {
      let i = 0;
      spawnCalls(spawn, `archunmap-register${t}`, 4, (task, rng) => this.register(task, len(rng), hint(t, i++)));
    }
    spawnCalls(spawn, 'archunmap-unmap', 3, (task, rng) => {
      this.count('munmap');
      return sysMunmap(task, ranges[rng.index(ranges.length)]! + rng.int(0, ARCH_RANGE_PAGES_MAX - 1) * PAGE_SIZE, len(rng));
    });
  }

  /**
   * Map `len` bytes of anonymous memory (at `hint` when it is free) and record them. Returns
   * the address or -errno. The kernel maps the bounds table inside its mmap_sem write section
   * (`mpx_mmap` -> `do_mmap`); the model maps first (`sysMmap` takes the policy's lock itself)
   * and records after: nobody else unmaps the new range in between (`drive` unmaps only a
   * thread's own ranges, `exercise` only the ranges registered before its threads start).
   */
  *register(task: MmTask, len: number, hint = 0): MmGen<number> {
    this.count('register');
    const addr = yield* sysMmap(task, hint, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr < 0) return addr;
    const s = this.stateOf(task.mm);
    const hold = yield* this.lockForRegister(task, s);
    const table = (yield s.table.read()) as readonly ArchRange[];
    const entry: ArchRange = [addr, addr + len, task.thread.id];
    // allocate_bt() publishes the table in the bounds directory, user memory, with a cmpxchg
    // that may fault: a scheduling point between reading the bookkeeping and updating it.
    yield yieldNow();
    yield s.table.write([...trimRanges(table, addr, addr + len), entry].sort((a, b) => a[0] - b[0]));
    yield* this.unlockForRegister(task, s, hold);
    return addr;
  }

  /** `arch_unmap()`: drop [start, end) from the table. Context: munmap's guard, before its downgrade. */
  *#archUnmap(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<void> {
    this.count('archUnmap');
    const s = this.stateOf(mm);
    yield* this.trimLocked(s, thread, start, end);
  }

  /** Read, trim and write back the table under what the variant relies on. */
  protected abstract trimLocked(s: ArchUnmapMm, thread: SimThread, start: number, end: number): MmGen<void>;
  protected abstract lockForRegister(task: MmTask, s: ArchUnmapMm): MmGen<MmLockGuard | null>;
  protected abstract unlockForRegister(task: MmTask, s: ArchUnmapMm, hold: MmLockGuard | null): MmGen<void>;

  override checkInvariants(): void {
    for (const s of this.states()) {
      let prevEnd = 0;
      for (const [start, end] of s.table.value) {
        const where = `${s.table.name} entry [${hex(start)}, ${hex(end)})`;
        if (start >= end || start < prevEnd) throw new SubsystemInvariantError(this.name, `${where} is empty or out of order`);
        prevEnd = end;
        for (let a = start; a < end;) {
          const vma = s.mm.vmaLookup(a);
          if (vma === null) throw new SubsystemInvariantError(this.name, `${where} covers ${hex(a)}, which is not mapped`);
          a = vma.end;
        }
      }
    }
  }

  override locations(): readonly SharedLocation[] {
    return [...this.states()].map((s) => s.table);
  }
}

/**
 * The kernel's MPX bookkeeping: register under `mmap_write_lock()` (`mmapLegacyLock`, nothing
 * under vma-range), the hook trusting munmap's hold: arch_unmap runs before munmap's downgrade,
 * under mmap_sem write (hook site `archUnmap`).
 */
@assumes({
  lock: 'mmap_sem',
  mode: 'write',
  hook: 'archUnmap',
  protects: 'archunmap.mm<pid>.bt_table',
  why: 'arch_unmap edits the bounds-table bookkeeping with no lock of its own: mmap_sem (write, before the downgrade) keeps registrations, which take it for write, out',
})
export class ArchUnmapLegacy extends ArchUnmapBase {
  readonly variant = 'legacy' as const;

  protected *trimLocked(s: ArchUnmapMm, _thread: SimThread, start: number, end: number): MmGen<void> {
    const table = (yield s.table.read()) as readonly ArchRange[];
    yield s.table.write(trimRanges(table, start, end));
  }

  protected *lockForRegister(task: MmTask, _s: ArchUnmapMm): MmGen<MmLockGuard | null> {
    return yield* mmapLegacyLock(task.mm, task.thread, 'write');
  }

  protected *unlockForRegister(task: MmTask, _s: ArchUnmapMm, hold: MmLockGuard | null): MmGen<void> {
    yield* mmapLegacyUnlock(task.mm, hold);
  }
}

/**
 * The bookkeeping converted: the table under a mutex of its own, in register and in the hook.
 * From the mm it needs only that the unmapped range is not mapped again before the hook ran,
 * which every policy gives munmap's cleanup (global-rwsem: mmap_sem; vma-range: the detached
 * range's area stays locked, R6).
 */
@assumes({
  lock: 'vma',
  mode: 'read',
  hook: 'archUnmap',
  protects: 'the unmapped range, kept from being mapped again until arch_unmap ran',
  why: 'a registration of a new mapping there must come after the trim; the table itself is under bt_lock',
})
export class ArchUnmapConverted extends ArchUnmapBase {
  readonly variant = 'converted' as const;

  protected *trimLocked(s: ArchUnmapMm, _thread: SimThread, start: number, end: number): MmGen<void> {
    yield s.lock.lock();
    const table = (yield s.table.read()) as readonly ArchRange[];
    yield s.table.write(trimRanges(table, start, end));
    yield s.lock.unlock();
  }

  protected *lockForRegister(_task: MmTask, s: ArchUnmapMm): MmGen<MmLockGuard | null> {
    yield s.lock.lock();
    return null;
  }

  protected *unlockForRegister(_task: MmTask, s: ArchUnmapMm, _hold: MmLockGuard | null): MmGen<void> {
    yield s.lock.unlock();
  }
}

/** The arch unmap bookkeeping subsystem in `variant` (named after the subsystem: core's `archUnmap` is the hook caller). */
export function archunmap(variant: SubsystemVariant): Subsystem {
  return variant === 'legacy' ? new ArchUnmapLegacy() : new ArchUnmapConverted();
}
