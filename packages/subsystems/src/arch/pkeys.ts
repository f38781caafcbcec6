import {
  EBUSY,
  EINVAL,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  type MmGen,
  type MmLockGuard,
  type MmStruct,
  type MmTask,
  Mutex,
  PAGE_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  type Prng,
  SharedLocation,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemProcess,
  type SubsystemVariant,
  assumes,
  handleMmFault,
  hex,
  mmapLegacyLock,
  mmapLegacyUnlock,
  runMmOp,
  sysMmap,
  sysMprotect,
} from '@vmalock/core';
import { SubsystemBase } from '../common.js';

/** `arch_max_pkey()` on x86: 16 protection keys, PKRU has two bits per key. */
export const ARCH_MAX_PKEY = 16;
/** `ENOSPC`: no free protection key. */
export const ENOSPC = 28;
/** The area each process maps at attach for its threads to tag (user memory a program protects with keys). */
export const PKEYS_ARENA = 0x50000000;
export const PKEYS_ARENA_PAGES = 8;
/** The keys `drive` frees and tags with: the first ones `pkey_alloc` hands out, so threads collide on them. */
const DRIVEN_KEY_MAX = 4;

/** The per-mm state (`mm->context.pkey_allocation_map` and the pkeys of the arena's pages). */
export interface PkeysMm {
  readonly mm: MmStruct;
  /**
   * `mm->context.pkey_allocation_map`: bit k set when key k is allocated; key 0 (the default key
   * every VMA starts with) always is. Written under: legacy, mmap_sem write; converted, `lock`.
   * Read under: the same.
   */
  readonly allocationMap: SharedLocation<number>;
  /** How many keys are allocated (the bitmap's population count). Written and read with `allocationMap`. */
  readonly allocatedCount: SharedLocation<number>;
  /**
   * The pkey of each arena page by address (absent: key 0). The kernel keeps it in the VMA's
   * `vm_flags` (VM_PKEY_BIT0..3), written by `mprotect_fixup`; the model keeps it here, per page,
   * so VMA splits and merges need no bookkeeping. Written and read under what `allocationMap` is.
   */
  readonly pagePkeys: SharedLocation<ReadonlyMap<number, number>>;
  /** Converted: the lock of its own around the three above (legacy never takes it). */
  readonly lock: Mutex;
}

/** The operations `drive` makes, by name (for hookCounts). */
type PkeysOp = 'pkeyAlloc' | 'pkeyFree' | 'pkeyMprotect' | 'mprotect' | 'fault';

/**
 * x86 memory protection keys (`arch/x86/mm/pkeys.c`, `arch/x86/include/asm/pkeys.h`,
 * `mm/mprotect.c`): `sys_pkey_alloc` takes a free key from the per-mm allocation bitmap
 * (`mm_pkey_alloc`), `sys_pkey_free` returns one (`mm_pkey_free`), `sys_pkey_mprotect` ->
 * `do_mprotect_pkey` checks the key is allocated (`mm_pkey_is_allocated`) and stores it in the
 * VMAs of the range as it changes their protection (`mprotect_fixup` -> `arch_override_mprotect_pkey`).
 * In the kernel all three run under `mmap_write_lock(current->mm)`, which is the only thing
 * that protects the bitmap: it has no lock of its own.
 *
 * Invariants (`checkInvariants`): key 0 is allocated; the count equals the bitmap's population;
 * every page's pkey is allocated (a key is never freed while pages carry it: the model's
 * `pkey_free` refuses with -EBUSY, where the kernel leaves it to the application — the model
 * makes it the subsystem's promise so that losing the check-then-tag atomicity shows).
 *
 * The model's `pkey_mprotect` changes the protection with `sysMprotect` first (which takes the
 * policy's own lock: subsystem code cannot run inside mprotect_fixup), then checks the key and
 * tags the pages in one critical section. The kernel checks before the fixup, in the same
 * mmap_sem write section; what the invariant needs — the check and the tag in one section — is
 * the same.
 */
abstract class PkeysBase extends SubsystemBase<PkeysMm, PkeysOp> {
  readonly name = 'pkeys';
  readonly kind = 'arch' as const;
  readonly summary = 'x86 protection keys: pkey_alloc/pkey_free/pkey_mprotect on the per-mm allocation bitmap (arch/x86/mm/pkeys.c, mm/mprotect.c)';

  constructor() {
    super({ pkeyAlloc: 0, pkeyFree: 0, pkeyMprotect: 0, mprotect: 0, fault: 0 });
  }

  /** Map the arena (read-write anonymous, as a program would before tagging it) and set up the bitmap with key 0. */
  protected override attachState(proc: SubsystemProcess): PkeysMm {
    const addr = runMmOp(
      proc.mm,
      (t) => sysMmap(t, PKEYS_ARENA, PKEYS_ARENA_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0),
      'pkeys-arena',
    );
    if (addr !== PKEYS_ARENA) throw new Error(`pkeys: cannot map the arena of pid ${proc.pid} at ${hex(PKEYS_ARENA)}: ${addr}`);
    const at = `${this.name}.mm${proc.pid}`;
    return {
      mm: proc.mm,
      allocationMap: new SharedLocation<number>(`${at}.pkey_allocation_map`, 1, this.name),
      allocatedCount: new SharedLocation<number>(`${at}.pkey_allocated_count`, 1, this.name),
      pagePkeys: new SharedLocation<ReadonlyMap<number, number>>(`${at}.page_pkeys`, new Map(), this.name),
      lock: new Mutex(`${at}.pkey_lock`),
    };
  }

  /** One user call: pkey_alloc, pkey_free, pkey_mprotect on the arena, a plain mprotect of it, or a fault in it. */
  override *drive(task: MmTask, rng: Prng): MmGen<void> {
    const page = PKEYS_ARENA + rng.int(0, PKEYS_ARENA_PAGES - 1) * PAGE_SIZE;
    const len = Math.min(rng.int(1, 3), (PKEYS_ARENA + PKEYS_ARENA_PAGES * PAGE_SIZE - page) / PAGE_SIZE) * PAGE_SIZE;
    switch (rng.int(0, 5)) {
      case 0:
      case 1:
        yield* this.pkeyAlloc(task);
        return;
      case 2:
        yield* this.pkeyFree(task, rng.int(1, DRIVEN_KEY_MAX));
        return;
      case 3:
        yield* this.pkeyMprotect(task, page, len, rng.chance(0.5) ? PROT_READ : PROT_READ | PROT_WRITE, rng.int(0, DRIVEN_KEY_MAX));
        return;
      case 4:
        this.count('mprotect');
        yield* sysMprotect(task, page, len, rng.chance(0.5) ? PROT_NONE : PROT_READ | PROT_WRITE);
        return;
      default:
        this.count('fault');
        yield* handleMmFault(task, page, rng.chance(0.5) ? 'write' : 'read');
    }
  }

  /** `sys_pkey_alloc()`: the lowest free key, or -ENOSPC. */
  *pkeyAlloc(task: MmTask): MmGen<number> {
    this.count('pkeyAlloc');
    const s = this.stateOf(task.mm);
    const hold = yield* this.lock(task, s);
    const map = (yield s.allocationMap.read()) as number;
    let key = -ENOSPC;
    for (let k = 1; k < ARCH_MAX_PKEY; k++) {
      if ((map & (1 << k)) === 0) {
        key = k;
        break;
      }
    }
    if (key > 0) {
      yield s.allocationMap.write(map | (1 << key));
      const count = (yield s.allocatedCount.read()) as number;
      yield s.allocatedCount.write(count + 1);
    }
    yield* this.unlock(task, s, hold);
    return key;
  }

  /** `sys_pkey_free()`: 0, -EINVAL (key 0, out of range or not allocated), -EBUSY (pages carry it). */
  *pkeyFree(task: MmTask, key: number): MmGen<number> {
    this.count('pkeyFree');
    if (key <= 0 || key >= ARCH_MAX_PKEY) return -EINVAL;
    const s = this.stateOf(task.mm);
    const hold = yield* this.lock(task, s);
    const result = yield* this.#freeLocked(s, key);
    yield* this.unlock(task, s, hold);
    return result;
  }

  *#freeLocked(s: PkeysMm, key: number): MmGen<number> {
    const map = (yield s.allocationMap.read()) as number;
    if ((map & (1 << key)) === 0) return -EINVAL;
    const tags = (yield s.pagePkeys.read()) as ReadonlyMap<number, number>;
    for (const k of tags.values()) if (k === key) return -EBUSY;
    // A fresh read of the bitmap, as mm_pkey_free()'s __clear_bit: its own load and store.
    const now = (yield s.allocationMap.read()) as number;
    yield s.allocationMap.write(now & ~(1 << key));
    const count = (yield s.allocatedCount.read()) as number;
    yield s.allocatedCount.write(count - 1);
    return 0;
  }

  /**
   * `sys_pkey_mprotect()`: change the protection of [addr, addr+len) and give its pages `key`.
   * 0 or -errno: -EINVAL for a key out of range or not allocated (then the protection has
   * changed but no page is tagged), mprotect's own errors.
   */
  *pkeyMprotect(task: MmTask, addr: number, len: number, prot: number, key: number): MmGen<number> {
    this.count('pkeyMprotect');
    if (key < 0 || key >= ARCH_MAX_PKEY) return -EINVAL;
    const r = yield* sysMprotect(task, addr, len, prot);
    if (r < 0) return r;
    const s = this.stateOf(task.mm);
    const hold = yield* this.lock(task, s);
    const result = yield* this.#tagLocked(s, addr, addr + len, key);
    yield* this.unlock(task, s, hold);
    return result;
  }

  /** The key must (still) be allocated: check it, then tag the arena pages of [start, end). */
  *#tagLocked(s: PkeysMm, start: number, end: number, key: number): MmGen<number> {
    const map = (yield s.allocationMap.read()) as number;
    if ((map & (1 << key)) === 0) return -EINVAL;
    const tags = new Map((yield s.pagePkeys.read()) as ReadonlyMap<number, number>);
    for (let a = start; a < end; a += PAGE_SIZE) {
      if (a < PKEYS_ARENA || a >= PKEYS_ARENA + PKEYS_ARENA_PAGES * PAGE_SIZE) continue;
      if (key === 0) tags.delete(a);
      else tags.set(a, key);
    }
    yield s.pagePkeys.write(tags);
    return 0;
  }

  /** Take what serialises the bitmap and the tags (legacy: mmap_sem write; converted: its own mutex). */
  protected abstract lock(task: MmTask, s: PkeysMm): MmGen<MmLockGuard | null>;
  protected abstract unlock(task: MmTask, s: PkeysMm, hold: MmLockGuard | null): MmGen<void>;

  override checkInvariants(): void {
    for (const s of this.states()) {
      const pid = s.mm.pid;
      const map = s.allocationMap.value;
      if ((map & 1) === 0) throw new SubsystemInvariantError(this.name, `${s.allocationMap.name}: key 0 is not allocated (map ${hex(map)})`);
      if (map >>> ARCH_MAX_PKEY !== 0)
        throw new SubsystemInvariantError(this.name, `${s.allocationMap.name}: bits beyond key ${ARCH_MAX_PKEY - 1} (map ${hex(map)})`);
      const population = popcount(map);
      if (s.allocatedCount.value !== population)
        throw new SubsystemInvariantError(
          this.name,
          `${s.allocatedCount.name} is ${s.allocatedCount.value} but ${s.allocationMap.name} ${hex(map)} has ${population} keys (mm${pid})`,
        );
      for (const [page, key] of s.pagePkeys.value) {
        if ((map & (1 << key)) === 0)
          throw new SubsystemInvariantError(this.name, `${s.pagePkeys.name}: page ${hex(page)} carries pkey ${key}, which is not allocated (map ${hex(map)})`);
      }
    }
  }

  override locations(): readonly SharedLocation[] {
    return [...this.states()].flatMap((s) => [s.allocationMap, s.allocatedCount, s.pagePkeys]);
  }
}

function popcount(n: number): number {
  let c = 0;
  for (let m = n >>> 0; m !== 0; m &= m - 1) c++;
  return c;
}

/**
 * pkeys as the kernel has it: every syscall takes `mmap_write_lock()` (here `mmapLegacyLock`,
 * which under vma-range is nothing at all) and that alone protects the bitmap and the tags.
 */
@assumes({
  lock: 'mmap_sem',
  mode: 'write',
  hook: 'mprotectFixup',
  protects: 'pkeys.mm<pid>.pkey_allocation_map, pkey_allocated_count, page_pkeys',
  why: 'pkey_alloc/pkey_free and do_mprotect_pkey serialise the allocation bitmap, and its check against the VMAs they tag, by mmap_sem held for write',
})
export class PkeysLegacy extends PkeysBase {
  readonly variant = 'legacy' as const;

  protected *lock(task: MmTask, _s: PkeysMm): MmGen<MmLockGuard | null> {
    return yield* mmapLegacyLock(task.mm, task.thread, 'write');
  }

  protected *unlock(task: MmTask, _s: PkeysMm, hold: MmLockGuard | null): MmGen<void> {
    yield* mmapLegacyUnlock(task.mm, hold);
  }
}

/**
 * pkeys converted: a mutex of its own (`mm->context.pkey_lock`) around the bitmap and the tags;
 * pkey_mprotect revalidates the key under it right before tagging. From the mm it needs only
 * what every policy gives mprotect_fixup: the VMAs it changes write-locked.
 */
@assumes({
  lock: 'vma',
  mode: 'write',
  hook: 'mprotectFixup',
  protects: "the range's VMAs while their protection (and, in the kernel, their pkey bits) change",
  why: 'mprotect_fixup writes vm_flags; the bitmap and the tags are under pkey_lock',
})
export class PkeysConverted extends PkeysBase {
  readonly variant = 'converted' as const;

  protected *lock(_task: MmTask, s: PkeysMm): MmGen<MmLockGuard | null> {
    yield s.lock.lock();
    return null;
  }

  protected *unlock(_task: MmTask, s: PkeysMm, _hold: MmLockGuard | null): MmGen<void> {
    yield s.lock.unlock();
  }
}

/** The pkeys subsystem in `variant`. */
export function pkeys(variant: SubsystemVariant): Subsystem {
  return variant === 'legacy' ? new PkeysLegacy() : new PkeysConverted();
}
