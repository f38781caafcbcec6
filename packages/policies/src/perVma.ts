import {
  type HookSite,
  LockAssertionError,
  type MmGen,
  type MmLockGuard,
  type MmStruct,
  type ProvidedLock,
  RwSemaphore,
  type SimThread,
  VM_GROWSDOWN,
  type Vma,
  hex,
  mmapAssertLocked,
  mmapAssertWriteLocked,
  rcuReadLock,
  rcuReadUnlock,
} from '@vmalock/core';
import { type ProvidesTable, providesLike } from './provides.js';
import { GlobalRwsemPolicy } from './globalRwsem.js';

/** The design choices of per-VMA locking that the kernel's history turned on and off. */
export interface PerVmaOptions {
  /**
   * A new VMA is write-locked as it enters the tree, before anyone can find it (today's kernel;
   * 6.4's fix "mm: lock newly mapped VMA which can be modified after it becomes visible").
   * Off: only split-off VMAs are (`__split_vma` always locked both halves). Default true.
   */
  readonly lockNewVma?: boolean;
  /**
   * fork (`dup_mmap`) write-locks every VMA of the parent before copying it (commit fb49c455323f
   * "fork: lock VMAs of the parent process when forking", the fix for the 6.4 memory corruption:
   * a fault under the VMA lock alone ran on the parent while its page tables were copied).
   * Default true.
   */
  readonly forkWriteLocksParent?: boolean;
}

/**
 * The kernel's per-VMA lock events (`/proc/vmstat` `vma_lock_*`) of one policy instance, summed
 * over the mms it is attached to, as the kernel's are summed over the system.
 */
export interface VmaLockStats {
  /** VMA_LOCK_SUCCESS: faults that ran under the VMA read lock alone. */
  success: number;
  /**
   * VMA_LOCK_ABORT: `lock_vma_under_rcu` gave up (no VMA at the address, not anonymous, no
   * anon_vma yet, write-locked by the mmap writer, contended, moved); the fault fell back to
   * mmap_sem.
   */
  abort: number;
  /** VMA_LOCK_MISS: the VMA found was detached by the time it was locked; the lookup was retried. */
  miss: number;
}

/** `lock_vma_under_rcu` retries a lookup that raced with a detach at most this often, then aborts. */
export const vmaLockMissRetriesMax = 8;

/** What a per-vma policy keeps per mm. */
class PerVmaMmState {
  /** Numbers the VMA locks of the mm (their names; the lock class folds them to one). */
  vmaLocksCreated = 0;
}

function mmState(mm: MmStruct): PerVmaMmState {
  const state = mm.policyState;
  if (!(state instanceof PerVmaMmState)) throw new Error(`per-vma: mm${mm.pid} was not attached to a per-vma policy`);
  return state;
}

/** The VMA whose read lock a fault guard holds, or null for a guard of mmap_sem. */
function guardVma(guard: MmLockGuard): Vma | null {
  return guard.state === null ? null : (guard.state as Vma);
}

/**
 * What each hook site runs under in Linux 6.5+ with per-VMA locks. Only anonymous VMAs (no
 * vm_operations) take the VMA-lock fast path, so `vm_ops->fault` and `page_mkwrite` still run
 * under mmap_sem read; stack growth runs under mmap_sem write (6.5: "always expand the stack with
 * the mmap write lock held"). The rest is as before 6.4.
 */
const PROVIDES: ProvidesTable = providesLike('mmap_sem', { stackGrowth: [{ lock: 'mmap_sem', mode: 'write' }] });

/**
 * `per-vma`: Linux 6.4+ per-VMA locks (Suren Baghdasaryan). Everything that changes VMAs runs
 * under mmap_sem write, as in global-rwsem, and write-locks each VMA it touches first
 * (`vma_start_write`: take the VMA's lock for write, which waits for its readers, and mark the
 * VMA with the mm's `mm_lock_seq`). Releasing or downgrading mmap_sem ends every VMA write lock
 * at once (`vma_end_write_all`: `mm_lock_seq++`).
 *
 * A page fault first tries `lock_vma_under_rcu`: find the VMA under RCU and take its read lock
 * with a trylock unless it is write-locked; it then needs nothing of mmap_sem, so faults on one
 * VMA run while mmap_sem is held for write to change another. Whatever makes that fail falls
 * back to mmap_sem read (`lock_mm_and_find_vma`), and to mmap_sem write when the stack must grow.
 *
 * Lock order: mmap_sem -> vma_lock -> page_table_lock -> PTE lock. A fault holding a VMA read
 * lock never waits for mmap_sem, so the writer waiting in `vma_start_write` for it cannot
 * deadlock.
 */
export class PerVmaPolicy extends GlobalRwsemPolicy {
  override readonly name: string = 'per-vma';
  readonly options: Required<PerVmaOptions>;
  readonly vmaLockStats: VmaLockStats = { success: 0, abort: 0, miss: 0 };

  constructor(options: PerVmaOptions = {}) {
    super();
    this.options = { lockNewVma: options.lockNewVma ?? true, forkWriteLocksParent: options.forkWriteLocksParent ?? true };
  }

  override attach(mm: MmStruct): void {
    mm.policyState = new PerVmaMmState();
    mm.events = {
      inserted: (vma) => this.#inserted(mm, vma),
      split: (vma, created) => this.#split(mm, vma, created),
    };
  }

  /**
   * The fault's guard: the VMA's read lock (`lock_vma_under_rcu`), else mmap_sem read, else
   * (the stack must grow) mmap_sem write. `retry`: straight to mmap_sem.
   */
  override *lockForFault(mm: MmStruct, thread: SimThread, addr: number, retry = false): MmGen<MmLockGuard> {
    if (!retry) {
      const vma = yield* this.#lockVmaUnderRcu(mm, addr);
      if (vma !== null) return { mm, thread, start: addr, end: addr + 1, mode: 'read', state: vma };
    }
    return yield* this.#lockMmAndFindVma(mm, thread, addr);
  }

  /**
   * fork, exit: mmap_sem, and for write every VMA write-locked (forkWriteLocksParent; without it,
   * dup_mmap before fb49c455323f: the parent's VMAs stay open to faults under their own locks).
   * exit_mmap write-locks every VMA itself before removing them.
   */
  /** A legacy `mmap_*_lock()` call: mmap_sem alone (no `vma_start_write`), as the kernel's. */
  *legacyLock(mm: MmStruct, thread: SimThread, mode: 'read' | 'write'): MmGen<MmLockGuard | null> {
    return yield* super.lockAll(mm, thread, mode);
  }

  override *lockAll(mm: MmStruct, thread: SimThread, mode: 'read' | 'write'): MmGen<MmLockGuard> {
    const guard = yield* super.lockAll(mm, thread, mode);
    if (mode === 'read' || !this.options.forkWriteLocksParent) return guard;
    for (const vma of [...mm.vmas()]) yield* this.vmaStartWrite(guard, vma);
    return guard;
  }

  /**
   * `vma_start_write()`: unless already write-locked in this mmap_sem write section, take the
   * VMA's lock for write (waiting for the faults reading it) and mark it with `mm_lock_seq`;
   * new faults then see the mark and fall back to mmap_sem.
   * Context: mmap_sem held for write by the guard's thread; may sleep.
   */
  *vmaStartWrite(guard: MmLockGuard, vma: Vma): MmGen<void> {
    const { mm } = guard;
    mmapAssertWriteLocked(mm, guard.thread, 'vma_start_write() needs mmap_sem for write');
    if (vma.dummy) throw new LockAssertionError(`vma_start_write(${vma.toString()}): per-vma has no dummy VMAs`);
    if (vma.vmLockSeq === mm.mmLockSeq) return;
    const lock = this.#vmLock(mm, vma);
    yield lock.downWrite();
    vma.vmLockSeq = mm.mmLockSeq;
    yield lock.upWrite();
  }

  /** `mmap_write_downgrade()`: `vma_end_write_all()`, then `downgrade_write()`. */
  override *downgrade(guard: MmLockGuard): MmGen<void> {
    if (guard.mode !== 'write') return;
    this.#endWriteAll(guard.mm);
    yield guard.mm.mmapSem.downgradeWrite();
    guard.mode = 'read';
  }

  /** `vma_end_read()`, or `mmap_read_unlock()`, or `mmap_write_unlock()` (`vma_end_write_all()` first). */
  override *unlock(guard: MmLockGuard): MmGen<void> {
    const vma = guardVma(guard);
    if (vma !== null) {
      yield this.#vmLock(guard.mm, vma).upRead();
      return;
    }
    if (guard.mode === 'write') {
      this.#endWriteAll(guard.mm);
      yield guard.mm.mmapSem.upWrite();
      return;
    }
    yield guard.mm.mmapSem.upRead();
  }

  /**
   * Linux 6.5 grows a stack only under mmap_sem write (`lockForFault` took it) and write-locks
   * the stack VMA first, so no fault under its VMA lock sees it move. No page_table_lock: mmap_sem
   * write already excludes every other grower.
   */
  override *beginStackGrowth(guard: MmLockGuard, newStart: number): MmGen<boolean> {
    const { mm } = guard;
    mmapAssertWriteLocked(mm, guard.thread, 'Linux 6.5+ grows a stack only under mmap_sem write');
    const vma = mm.findVma(newStart);
    if (vma === null || (vma.flags & VM_GROWSDOWN) === 0) throw new Error(`per-vma: no stack VMA above ${hex(newStart)} to grow`);
    yield* this.vmaStartWrite(guard, vma);
    return true;
  }

  /** `lock_mm_and_find_vma()` downgrades once the stack has grown: the fault goes on under read. */
  override *endStackGrowth(guard: MmLockGuard): MmGen<void> {
    yield* this.downgrade(guard);
  }

  override provides(site: HookSite): readonly ProvidedLock[] {
    return PROVIDES[site];
  }

  /** `vma_assert_write_locked()`: mmap_sem is write-held and the VMA carries this section's `mm_lock_seq`. */
  override isVmaWriteLocked(mm: MmStruct, vma: Vma): boolean {
    return mm.mmapSem.writer !== null && vma.vmLockSeq === mm.mmLockSeq;
  }

  /** `vma_assert_locked()`: the guard holds this VMA's read lock, or its thread holds mmap_sem. */
  override isVmaLocked(guard: MmLockGuard, vma: Vma): boolean {
    const locked = guardVma(guard);
    if (locked !== null) return locked === vma && this.#vmLock(guard.mm, vma).readers.includes(guard.thread);
    return super.isVmaLocked(guard, vma);
  }

  override assertStable(guard: MmLockGuard, addr: number): void {
    const vma = guardVma(guard);
    if (vma === null) {
      mmapAssertLocked(guard.mm, guard.thread, 'a VMA found without its VMA lock is stable only under mmap_sem');
      return;
    }
    const where = `${guard.thread.label} at ${hex(addr)}: VMA ${vma.toString()}`;
    if (!this.#vmLock(guard.mm, vma).readers.includes(guard.thread))
      throw new LockAssertionError(`vma_assert_locked failed in ${where}: its read lock is not held`);
    if (vma.detached) throw new LockAssertionError(`vma_assert_locked failed in ${where}: detached while read-locked`);
    if (addr < vma.start || addr >= vma.end) throw new LockAssertionError(`vma_assert_locked failed in ${where}: moved while read-locked`);
  }

  /**
   * `lock_vma_under_rcu()` (Linux 6.4): the VMA containing `addr`, read-locked, or null (counted
   * as VMA_LOCK_ABORT). Only anonymous VMAs that already have an anon_vma qualify: preparing one
   * reads the neighbours, which the VMA lock does not cover.
   */
  *#lockVmaUnderRcu(mm: MmStruct, addr: number): MmGen<Vma | null> {
    yield rcuReadLock();
    for (let attempt = 0; attempt < vmaLockMissRetriesMax; attempt++) {
      const vma = mm.vmaLookup(addr);
      if (vma === null || !vma.isAnonymous()) break;
      if (!(yield* this.#vmaStartRead(mm, vma))) break;
      // Checked under the VMA lock: a concurrent mremap(MREMAP_DONTUNMAP) may take it away.
      if (vma.anonVma === null || addr < vma.start || addr >= vma.end) {
        yield this.#vmLock(mm, vma).upRead();
        break;
      }
      if (vma.detached) {
        // Unmapped or merged away between the lookup and the lock: the area may be mapped anew.
        yield this.#vmLock(mm, vma).upRead();
        this.vmaLockStats.miss++;
        continue;
      }
      yield rcuReadUnlock();
      this.vmaLockStats.success++;
      return vma;
    }
    yield rcuReadUnlock();
    this.vmaLockStats.abort++;
    return null;
  }

  /**
   * `vma_start_read()`: false when the VMA is write-locked by the mmap writer (its seq equals
   * `mm_lock_seq`) or its lock is contended; the seq is checked again under the lock because a
   * writer may have marked it between the first check and the trylock.
   */
  *#vmaStartRead(mm: MmStruct, vma: Vma): MmGen<boolean> {
    if (vma.vmLockSeq === mm.mmLockSeq) return false;
    const lock = this.#vmLock(mm, vma);
    if (!((yield lock.downReadTrylock()) as boolean)) return false;
    if (vma.vmLockSeq !== mm.mmLockSeq) return true;
    yield lock.upRead();
    return false;
  }

  /**
   * `lock_mm_and_find_vma()` (Linux 6.5): mmap_sem read; when no VMA contains `addr` but the one
   * above is a stack that may grow down to it, mmap_sem write instead (rwsems cannot upgrade:
   * drop read, take write; the fault looks the VMA up again under it).
   */
  *#lockMmAndFindVma(mm: MmStruct, thread: SimThread, addr: number): MmGen<MmLockGuard> {
    yield mm.mmapSem.downRead();
    const vma = mm.findVma(addr);
    if (vma === null || vma.start <= addr || (vma.flags & VM_GROWSDOWN) === 0) return { mm, thread, start: addr, end: addr + 1, mode: 'read', state: null };
    yield mm.mmapSem.upRead();
    yield mm.mmapSem.downWrite();
    return { mm, thread, start: addr, end: addr + 1, mode: 'write', state: null };
  }

  /** `vma_end_write_all()`: every VMA write-locked in this mmap_sem write section is unlocked. */
  #endWriteAll(mm: MmStruct): void {
    mm.mmLockSeq++;
  }

  /** The VMA's lock, created on first use (`vma_lock_alloc`). */
  #vmLock(mm: MmStruct, vma: Vma): RwSemaphore {
    if (vma.vmLock instanceof RwSemaphore) return vma.vmLock;
    const lock = new RwSemaphore(`mm${mm.pid}.vma_lock${mmState(mm).vmaLocksCreated++}`);
    vma.vmLock = lock;
    return lock;
  }

  /**
   * A VMA entered the tree. lockNewVma: write-locked before anyone can look it up (nobody can
   * hold its lock yet, so marking it is all `vma_start_write` would do). Not for a child's VMAs
   * at fork: nobody else can reach that mm.
   */
  #inserted(mm: MmStruct, vma: Vma): void {
    if (!this.options.lockNewVma || vma.dummy || mm.mmapSem.writer === null) return;
    this.#markWriteLocked(mm, vma);
  }

  /** `__split_vma()`: the new part has its own lock (`vm_area_dup`), write-locked like its origin. */
  #split(mm: MmStruct, vma: Vma, created: Vma): void {
    if (created.vmLock !== null && created.vmLock === vma.vmLock) throw new Error(`per-vma: split ${created.toString()} shares its origin's VMA lock`);
    if (mm.mmapSem.writer === null) return;
    this.#markWriteLocked(mm, created);
  }

  #markWriteLocked(mm: MmStruct, vma: Vma): void {
    if (vma.vmLock instanceof RwSemaphore && vma.vmLock.locked) throw new Error(`per-vma: new VMA ${vma.toString()} has its lock held`);
    vma.vmLockSeq = mm.mmLockSeq;
  }
}
