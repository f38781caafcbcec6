import {
  EBUSY,
  EINVAL,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  MmFile,
  type MmGen,
  type MmStruct,
  type MmTask,
  PAGE_SIZE,
  PROT_READ,
  Page,
  type Prng,
  SharedLocation,
  type SimThread,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemProcess,
  type SubsystemVariant,
  TASK_SIZE,
  VM_DONTCOPY,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  type Vma,
  type VmFault,
  type VmFaultResult,
  type VmOperations,
  assumes,
  handleMmFault,
  hex,
  mmapLegacyLock,
  mmapLegacyUnlock,
  runMmOp,
  sysMmap,
  sysMunmap,
} from '@vmalock/core';
import { SubsystemBase, fdInstall } from '../common.js';
import { type ExerciseSpawn, spawnCalls } from '../exercise.js';

/** Where each process maps its binder buffer (`binder_mmap` takes what user space asks for). */
export const BINDER_BASE = 0x60000000;
/** The buffer's pages (`alloc->buffer_size`, small so that threads collide on its pages). */
export const BINDER_PAGES = 4;
export const BINDER_SIZE = BINDER_PAGES * PAGE_SIZE;
/** `ESRCH`: binder's answer when the process has no mapping (`binder_alloc_get_vma` found none). */
export const ESRCH = 3;
/** The misc device's numbers (`/dev/binder`, major 10). */
const BINDER_DEV_MAJOR = 10;
const BINDER_DEV_MINOR = 58;

/** The per-process allocator (`struct binder_alloc`), as far as the mm is concerned. */
export interface BinderAlloc {
  readonly mm: MmStruct;
  /** The process's open `/dev/binder` and its fd. */
  readonly file: MmFile;
  readonly fd: number;
  /**
   * `alloc->vma` (later `alloc->vma_addr`): the buffer's VMA, set by the mmap handler, cleared
   * by `binder_alloc_vma_close`. Written under: vmaOpen (the policy's write lock on the new VMA)
   * and vmaClose (what munmap holds after its downgrade). Read under: legacy, mmap_sem read;
   * converted, the policy's read lock on the page's address plus a revalidating `vma_lookup`.
   * Stored and loaded marked (the kernel's `smp_store_release` / `smp_load_acquire` in
   * `binder_alloc_set_vma` / `binder_alloc_get_vma`): the close after munmap's downgrade and the
   * ioctl's load are concurrent by design, even under mmap_sem.
   */
  readonly vma: SharedLocation<Vma | null>;
  /** Pages `vm_insert_page` installed so far (a statistic; the page tables are the truth). Written under: the PTE lock. */
  readonly installed: SharedLocation<number>;
}

/** The hooks binder installs, by name (for hookCounts). */
type BinderHook = 'vmaOpen' | 'vmaClose' | 'fault';

/**
 * A binder-like driver that keeps a pointer to its VMA and inserts pages from an ioctl
 * (`drivers/android/binder_alloc.c`). `binder_mmap` -> `binder_alloc_mmap_handler` records the
 * VMA (`alloc->vma`; `alloc->vma_addr` since Linux 6.1), `binder_alloc_vma_close` clears it;
 * the BINDER_WRITE_READ ioctl allocates buffer pages (`binder_alloc_new_buf` ->
 * `binder_install_buffer_pages` -> `binder_install_single_page`), which finds the VMA through
 * the stored pointer and maps the page with `vm_insert_page` under the PTE lock. A user fault
 * on the mapping is SIGBUS (`binder_vm_fault`): only the driver maps its pages.
 *
 * In the model, `vmOps.open` on a new mapping is `binder_mmap` (the mm's stand-in for
 * `f_op->mmap`): it marks the VMA `VM_DONTCOPY | VM_MIXEDMAP` (never merged) and drops
 * `VM_MAYWRITE`, and records it when the process has no buffer yet — a second mapping is one
 * binder does not serve (the kernel fails it with -EBUSY; the model's drive asks first). The
 * mapping is made with MAP_FIXED_NOREPLACE at `BINDER_BASE`, so there is at most one.
 *
 * Invariants (`checkInvariants`): every page binder installed is inside a live VMA of its
 * device (`checkMmInvariants` also catches a PTE outside every VMA); the stored pointer is null
 * or a VMA that is still mapped.
 *
 * Variants differ in how the ioctl keeps the VMA alive while it inserts the page: legacy takes
 * `mmap_read_lock` (see `BinderLegacy`), converted takes the policy's own read lock for the
 * page's address and revalidates (see `BinderConverted`).
 */
abstract class BinderDriver extends SubsystemBase<BinderAlloc, BinderHook> {
  readonly name = 'binder';
  readonly kind = 'driver' as const;
  readonly summary = 'binder: a driver that keeps a pointer to its VMA and inserts pages from an ioctl (drivers/android/binder_alloc.c)';

  constructor() {
    super({ vmaOpen: 0, vmaClose: 0, fault: 0 });
  }

  /** Open `/dev/binder` in the process (`binder_open`): a device file whose vm_operations are binder's. */
  protected override attachState(proc: SubsystemProcess): BinderAlloc {
    const at = `${this.name}.mm${proc.pid}`;
    const vmOps: VmOperations = {
      name: this.name,
      open: (vma, thread) => this.mmapHandler(alloc, vma, thread),
      close: (vma, thread) => this.vmaClose(alloc, vma, thread),
      fault: (vmf) => this.vmFault(vmf),
    };
    const file = new MmFile('/dev/binder', 0x1000 + proc.pid, BINDER_DEV_MAJOR, BINDER_DEV_MINOR, true, false, vmOps);
    const fd = fdInstall(proc.mm, file);
    const alloc: BinderAlloc = {
      mm: proc.mm,
      file,
      fd,
      vma: new SharedLocation<Vma | null>(`${at}.alloc.vma`, null, this.name),
      installed: new SharedLocation<number>(`${at}.alloc.installed`, 0, this.name),
    };
    return alloc;
  }

  /** The allocator of `mm` (attached). */
  allocOf(mm: MmStruct): BinderAlloc {
    return this.stateOf(mm);
  }

  /** One user call: mmap the device, the ioctl that installs a buffer page (twice as likely), munmap the buffer, or a read of it (a fault: SIGBUS). */
  override *drive(task: MmTask, rng: Prng): MmGen<void> {
    const alloc = this.allocOf(task.mm);
    switch (rng.int(0, 4)) {
      case 0:
        yield* this.mmap(task, alloc);
        return;
      case 1:
      case 2:
        yield* this.ioctlInstallPage(task, alloc, rng.int(0, BINDER_PAGES - 1));
        return;
      case 3:
        yield* handleMmFault(task, BINDER_BASE + rng.int(0, BINDER_PAGES - 1) * PAGE_SIZE, 'read');
        return;
      default:
        yield* sysMunmap(task, BINDER_BASE, BINDER_SIZE);
    }
  }

  /**
   * flag's workload: the buffer mapped (set up first), two threads installing random buffer
   * pages through the ioctl 6 times each while a third unmaps the buffer: an ioctl that found
   * the VMA races the unmap. (One unmap: a page inserted after an unmap that a later mmap and
   * unmap of the buffer cleared again would leave no trace.)
   */
  exercise(proc: SubsystemProcess, spawn: ExerciseSpawn): void {
    const alloc = this.allocOf(proc.mm);
    runMmOp(proc.mm, (task) => this.mmap(task, alloc), 'binder-setup');
    for (let t = 0; t < 2; t++) spawnCalls(spawn, `binder-ioctl${t}`, 6, (task, rng) => this.ioctlInstallPage(task, alloc, rng.int(0, BINDER_PAGES - 1)));
    spawnCalls(spawn, 'binder-munmap', 1, (task) => sysMunmap(task, BINDER_BASE, BINDER_SIZE));
  }

  /** `mmap(BINDER_BASE, BINDER_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, fd, 0)`; -EBUSY when binder already has a buffer. */
  *mmap(task: MmTask, alloc: BinderAlloc): MmGen<number> {
    if ((yield alloc.vma.readOnce()) !== null) return -EBUSY;
    return yield* sysMmap(task, BINDER_BASE, BINDER_SIZE, PROT_READ, MAP_PRIVATE | MAP_FIXED_NOREPLACE, alloc.fd, 0);
  }

  /**
   * The BINDER_WRITE_READ ioctl allocating the buffer page `index` (`binder_install_single_page`):
   * 0, -ESRCH (no buffer mapped), -EINVAL (no such page).
   * Context: no mm lock held; each variant takes what it relies on.
   */
  abstract ioctlInstallPage(task: MmTask, alloc: BinderAlloc, index: number): MmGen<number>;

  /**
   * `vm_insert_page(vma, addr, page)`: map a new driver page at `addr` under the PTE lock.
   * Context: `vma` was live when the caller looked it up; the caller holds what it relies on to
   * keep it so.
   */
  protected *vmInsertPage(alloc: BinderAlloc, vma: Vma, addr: number, index: number): MmGen<number> {
    if (addr < vma.start || addr >= vma.end) return -EINVAL;
    const pt = alloc.mm.pageTables;
    const table = pt.pteTableFor(addr);
    yield table.ptl.lock();
    // insert_page(): a page already there is -EBUSY; binder treats it as installed.
    if (pt.lookup(addr) === null) {
      pt.setPte(addr, new Page(false, false, alloc.file, index), false);
      yield alloc.installed.rmw((n) => n + 1);
    }
    yield table.ptl.unlock();
    return 0;
  }

  /** `binder_mmap` -> `binder_alloc_mmap_handler` (our `vmOps.open`; also runs on a split-off part, which it ignores). */
  protected *mmapHandler(alloc: BinderAlloc, vma: Vma, _thread: SimThread): MmGen<void> {
    this.count('vmaOpen');
    // vm_flags_mod(vma, VM_DONTCOPY | VM_MIXEDMAP, VM_MAYWRITE)
    vma.flags = (vma.flags | VM_DONTCOPY | VM_MIXEDMAP) & ~VM_MAYWRITE;
    if ((yield alloc.vma.readOnce()) === null) yield alloc.vma.writeOnce(vma);
  }

  /** `binder_vma_close` -> `binder_alloc_vma_close`: the buffer's VMA is gone. */
  protected *vmaClose(alloc: BinderAlloc, vma: Vma, _thread: SimThread): MmGen<void> {
    this.count('vmaClose');
    if ((yield alloc.vma.readOnce()) === vma) yield alloc.vma.writeOnce(null);
  }

  /** `binder_vm_fault`: user space never faults binder pages in. */
  // eslint-disable-next-line require-yield
  protected *vmFault(_vmf: VmFault): MmGen<VmFaultResult> {
    this.count('fault');
    return { kind: 'sigbus' };
  }

  override checkInvariants(): void {
    for (const alloc of this.states()) {
      const { mm } = alloc;
      const stored = alloc.vma.value;
      if (stored !== null && (stored.detached || mm.vmaLookup(stored.start) !== stored))
        throw new SubsystemInvariantError(this.name, `mm${mm.pid}: alloc.vma points to ${stored.toString()}, which is no longer mapped`);
      for (const { addr, view } of mm.pageTables.walk(0, TASK_SIZE)) {
        if (view.page.file !== alloc.file) continue;
        const vma = mm.vmaLookup(addr);
        if (vma === null || vma.file !== alloc.file)
          throw new SubsystemInvariantError(this.name, `mm${mm.pid}: a binder page is installed at ${hex(addr)}, outside every live VMA of /dev/binder`);
      }
    }
  }

  override locations(): readonly SharedLocation[] {
    return [...this.states()].flatMap((a) => [a.vma, a.installed]);
  }
}

/**
 * Legacy binder (Linux 6.1 to 6.7): the ioctl takes `mmap_read_lock(alloc->mm)`, finds the VMA
 * through the stored pointer, revalidates it with `vma_lookup` (the fix "binder: fix UAF of
 * alloc->vma in race with munmap()": munmap detaches the VMA under mmap_sem write and then
 * closes it under the downgraded read lock, so a pointer alone was stale there) and inserts the
 * page. What keeps the VMA mapped between the lookup and `vm_insert_page` is mmap_sem alone —
 * and binder never said so: this class declares nothing.
 */
class BinderLegacy extends BinderDriver {
  readonly variant = 'legacy' as const;

  override *ioctlInstallPage(task: MmTask, alloc: BinderAlloc, index: number): MmGen<number> {
    const { mm, thread } = task;
    const hold = yield* mmapLegacyLock(mm, thread, 'read');
    let result = -ESRCH;
    const vma = (yield alloc.vma.readOnce()) as Vma | null;
    if (vma !== null && mm.vmaLookup(vma.start) === vma) result = yield* this.vmInsertPage(alloc, vma, vma.start + index * PAGE_SIZE, index);
    yield* mmapLegacyUnlock(mm, hold);
    return result;
  }
}

/**
 * Converted binder (Linux 6.8, "binder: use per-vma lock in page installation"): the ioctl
 * stabilises the VMA at the page's address with the policy's own read lock (the kernel's
 * `lock_vma_under_rcu`, falling back to mmap_read_lock) and checks that the VMA it finds there
 * is the one binder recorded before inserting the page.
 */
// Decorators apply bottom-up: `readAssumptions` lists the last one first.
@assumes({
  lock: 'vma',
  mode: 'write',
  hook: 'vmaOpen',
  protects: 'vm_flags of the new buffer VMA',
  why: 'binder_mmap sets VM_DONTCOPY | VM_MIXEDMAP on the VMA being mapped',
})
@assumes({
  lock: 'vma',
  mode: 'read',
  hook: 'gup',
  protects: 'binder.alloc.vma (the VMA the page goes into)',
  why: 'vm_insert_page needs the VMA mapped until the PTE is set: the read lock the policy takes for the address keeps it so',
})
class BinderConverted extends BinderDriver {
  readonly variant = 'converted' as const;

  override *ioctlInstallPage(task: MmTask, alloc: BinderAlloc, index: number): MmGen<number> {
    const { mm, thread } = task;
    const seen = (yield alloc.vma.readOnce()) as Vma | null;
    if (seen === null) return -ESRCH;
    const addr = seen.start + index * PAGE_SIZE;
    const guard = yield* mm.policy.lockForRead(mm, thread, addr, addr + PAGE_SIZE);
    // Revalidate under the lock: the VMA at the address must still be the one binder recorded.
    const vma = mm.vmaLookup(addr);
    const stored = (yield alloc.vma.readOnce()) as Vma | null;
    const result = vma !== null && vma === stored ? yield* this.vmInsertPage(alloc, vma, addr, index) : -ESRCH;
    yield* mm.policy.unlock(guard);
    return result;
  }
}

/** The binder driver of `variant`: a new instance, one allocator per attached process. */
export function binder(variant: SubsystemVariant): Subsystem {
  return variant === 'legacy' ? new BinderLegacy() : new BinderConverted();
}
