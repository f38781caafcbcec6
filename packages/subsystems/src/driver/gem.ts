import {
  EACCES,
  EEXIST,
  EINVAL,
  MAP_FIXED,
  MAP_SHARED,
  MmFile,
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
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_IO,
  VM_PFNMAP,
  type Vma,
  type VmFault,
  type VmFaultResult,
  type VmOperations,
  assumes,
  handleMmFault,
  mmapLegacyLock,
  mmapLegacyUnlock,
  runMmOp,
  sysMmap,
  sysMprotect,
  sysMunmap,
} from '@vmalock/core';
import { SubsystemBase, fdInstall } from '../common.js';
import { type ExerciseSpawn, spawnCalls } from '../exercise.js';

/** Where each process maps its GEM objects: object i's mapping number c at `gemWindow(i, c)`. */
export const GEM_BASE = 0x62000000;
/** Objects per process (handles 1..GEM_OBJECTS in DRM terms), each of `GEM_OBJECT_PAGES` pages. */
export const GEM_OBJECTS = 2;
export const GEM_OBJECT_PAGES = 4;
/** Each object may be mapped at this many windows at once (two VMAs of one object, far apart). */
export const GEM_WINDOWS = 2;
/** Windows start this many pages apart, so two are never adjacent. */
const WINDOW_STRIDE_PAGES = 8;
/** Fake mmap offsets (`drm_vma_offset_manager`): object i at page offset (i + 1) * this. */
const OFFSET_STRIDE_PAGES = 0x100;
/** The DRM device's numbers (`/dev/dri/card0`, major 226). */
const DRM_DEV_MAJOR = 226;

/** The address of object `index`'s mapping number `copy`. */
export function gemWindow(index: number, copy: number): number {
  return GEM_BASE + (copy * GEM_OBJECTS + index) * WINDOW_STRIDE_PAGES * PAGE_SIZE;
}

/** The object a VMA of the device maps, from its fake offset (`vma->vm_pgoff`; a split part keeps its object's range). */
function objectIndexOf(vma: Vma): number {
  return Math.floor(vma.pgoff / OFFSET_STRIDE_PAGES) - 1;
}

/** One buffer object (`struct drm_gem_object`). */
export interface GemObject {
  readonly index: number;
  /**
   * `obj->refcount` (a kref): one per handle, one per VMA mapping it, one per mmap lookup in
   * flight. Written under: legacy, mmap_sem (write in its ioctls and vm_ops->open; read in
   * vm_ops->close after munmap's downgrade); converted, atomically. Read under: the same.
   */
  readonly refcount: SharedLocation<number>;
  /** `obj->handle_count` (0 or 1 here). Written under: legacy, mmap_sem write; converted, `tableLock`. */
  readonly handles: SharedLocation<number>;
  /** Freed (`drm_gem_object_free`) when the refcount fell to 0; a new object may take the slot. Written with `refcount`. */
  readonly freed: SharedLocation<boolean>;
}

/** One process's open DRM device (`struct drm_file`) and its objects. */
export interface GemFile {
  readonly mm: MmStruct;
  readonly file: MmFile;
  readonly fd: number;
  readonly objects: readonly GemObject[];
  /** `file_priv->table_lock` (converted): the handle table. */
  readonly tableLock: Mutex;
}

/** The hooks GEM installs, by name (for hookCounts). */
type GemHook = 'vmaOpen' | 'vmaClose' | 'fault';

/**
 * GEM-like buffer objects refcounted through `vm_ops->open`/`close` (`drivers/gpu/drm/drm_gem.c`:
 * `drm_gem_mmap` looks the object up by its fake offset and `drm_gem_mmap_obj` takes a
 * reference for the new VMA; `drm_gem_vm_open` takes one for each copy of a VMA (split, fork,
 * mremap); `drm_gem_vm_close` drops one; the object is freed when the last reference goes,
 * handles included; `drm_gem_shmem_fault` supplies its pages).
 *
 * In the model, `vmOps.open` on a new mapping is `drm_gem_mmap_obj` (the mm's stand-in for
 * `f_op->mmap`; it sets `VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP`, so GEM VMAs never
 * merge) and on a split part `drm_gem_vm_open`: both take a reference. The mmap call holds a
 * lookup reference across `mmap()` (`drm_gem_object_lookup` ... `drm_gem_object_put`), so the
 * object cannot go before the VMA has its own.
 *
 * Invariants (`checkInvariants`): each object's refcount equals the VMAs mapping it plus its
 * handles; an object is freed exactly when its refcount is 0; no VMA maps a freed object. A
 * fault on, or an `open` of, a freed object throws at once (a use after free).
 */
abstract class GemDriver extends SubsystemBase<GemFile, GemHook> {
  readonly name = 'gem';
  readonly kind = 'driver' as const;
  readonly summary = 'gem: buffer objects refcounted through vm_ops->open/close (drivers/gpu/drm/drm_gem.c)';

  constructor() {
    super({ vmaOpen: 0, vmaClose: 0, fault: 0 });
  }

  /** Open the DRM device in the process: a device file whose vm_operations are GEM's, no object yet. */
  protected override attachState(proc: SubsystemProcess): GemFile {
    const at = `${this.name}.mm${proc.pid}`;
    const vmOps: VmOperations = {
      name: this.name,
      open: (vma, thread) => this.vmOpen(gf, vma, thread),
      close: (vma, thread) => this.vmClose(gf, vma, thread),
      fault: (vmf) => this.vmFault(gf, vmf),
    };
    const file = new MmFile('/dev/dri/card0', 0x2000 + proc.pid, DRM_DEV_MAJOR, 0, true, true, vmOps);
    const fd = fdInstall(proc.mm, file);
    const gf: GemFile = {
      mm: proc.mm,
      file,
      fd,
      objects: Array.from({ length: GEM_OBJECTS }, (_, index) => ({
        index,
        refcount: new SharedLocation<number>(`${at}.obj${index}.refcount`, 0, this.name),
        handles: new SharedLocation<number>(`${at}.obj${index}.handle_count`, 0, this.name),
        freed: new SharedLocation<boolean>(`${at}.obj${index}.freed`, true, this.name),
      })),
      tableLock: new Mutex(`${at}.table_lock`),
    };
    return gf;
  }

  /** The DRM file of `mm` (attached). */
  fileOf(mm: MmStruct): GemFile {
    return this.stateOf(mm);
  }

  /**
   * One user call on a random object: create it, close its handle, mmap it (MAP_FIXED at one of
   * its windows, replacing what is there), munmap or mprotect part of a window (splits run
   * `open`), or a write fault in it.
   */
  override *drive(task: MmTask, rng: Prng): MmGen<void> {
    const gf = this.fileOf(task.mm);
    const obj = gf.objects[rng.int(0, GEM_OBJECTS - 1)]!;
    const window = gemWindow(obj.index, rng.int(0, GEM_WINDOWS - 1));
    const first = rng.int(0, GEM_OBJECT_PAGES - 1);
    const addr = window + first * PAGE_SIZE;
    const len = rng.int(1, GEM_OBJECT_PAGES - first) * PAGE_SIZE;
    switch (rng.int(0, 6)) {
      case 0:
        yield* this.ioctlCreate(task, gf, obj);
        return;
      case 1:
        yield* this.ioctlCloseHandle(task, gf, obj);
        return;
      case 2:
      case 3:
        yield* this.mmap(task, gf, obj, window);
        return;
      case 4:
        yield* sysMunmap(task, addr, len);
        return;
      case 5:
        yield* sysMprotect(task, addr, len, rng.chance(0.5) ? PROT_READ : PROT_READ | PROT_WRITE);
        return;
      default:
        yield* handleMmFault(task, addr, 'write');
    }
  }

  /**
   * flag's workload: both objects created and mapped at both their windows (set up first), then
   * three threads driving the device 4 times each: the opens and closes of one object's VMAs
   * (mmap, munmap, mprotect splits) race each other and the handle ioctls on its refcount.
   */
  exercise(proc: SubsystemProcess, spawn: ExerciseSpawn): void {
    const gf = this.fileOf(proc.mm);
    runMmOp(
      proc.mm,
      function* (this: GemDriver, task: MmTask): MmGen<void> {
        for (const obj of gf.objects) {
          yield* this.ioctlCreate(task, gf, obj);
          for (let copy = 0; copy < GEM_WINDOWS; copy++) yield* this.mmap(task, gf, obj, gemWindow(obj.index, copy));
        }
      }.bind(this),
      'gem-setup',
    );
    for (let t = 0; t < 3; t++) spawnCalls(spawn, `gem${t}`, 4, (task, rng) => this.drive(task, rng));
  }

  /** DRM_IOCTL_MODE_CREATE_DUMB: a new object in the slot with one handle; -EEXIST when the slot holds one. */
  *ioctlCreate(task: MmTask, gf: GemFile, obj: GemObject): MmGen<number> {
    const hold = yield* this.ioctlLock(task, gf);
    let result = -EEXIST;
    if ((yield obj.freed.read()) as boolean) {
      yield obj.refcount.write(1);
      yield obj.handles.write(1);
      yield obj.freed.write(false);
      result = 0;
    }
    yield* this.ioctlUnlock(task, gf, hold);
    return result;
  }

  /** DRM_IOCTL_GEM_CLOSE (`drm_gem_handle_delete`): drop the handle and its reference; -EINVAL without one. */
  *ioctlCloseHandle(task: MmTask, gf: GemFile, obj: GemObject): MmGen<number> {
    const hold = yield* this.ioctlLock(task, gf);
    let result = -EINVAL;
    if (((yield obj.handles.read()) as number) > 0) {
      yield obj.handles.write(0);
      yield* this.objectPut(obj);
      result = 0;
    }
    yield* this.ioctlUnlock(task, gf, hold);
    return result;
  }

  /**
   * `mmap(window, size, RW, MAP_SHARED | MAP_FIXED, fd, fake offset)` through `drm_gem_mmap`:
   * a lookup reference (-EACCES when the object is gone) held across the mmap, which takes the
   * VMA's own in `open`.
   */
  *mmap(task: MmTask, gf: GemFile, obj: GemObject, window: number): MmGen<number> {
    let hold = yield* this.ioctlLock(task, gf);
    const found = yield* this.objectGetUnlessZero(obj);
    yield* this.ioctlUnlock(task, gf, hold);
    if (!found) return -EACCES;
    const offset = (obj.index + 1) * OFFSET_STRIDE_PAGES * PAGE_SIZE;
    const result = yield* sysMmap(task, window, GEM_OBJECT_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, gf.fd, offset);
    hold = yield* this.ioctlLock(task, gf);
    yield* this.objectPut(obj);
    yield* this.ioctlUnlock(task, gf, hold);
    return result;
  }

  /** What the variant's ioctls hold around the handle table and refcounts. */
  protected abstract ioctlLock(task: MmTask, gf: GemFile): MmGen<MmLockGuard | null>;
  protected abstract ioctlUnlock(task: MmTask, gf: GemFile, hold: MmLockGuard | null): MmGen<void>;
  /** `drm_gem_object_get` (kref_get): throws on a freed object (a use after free). */
  protected abstract objectGet(obj: GemObject, why: string): MmGen<void>;
  /** `drm_gem_object_put` (kref_put): frees the object on the last reference; throws on an underflow. */
  protected abstract objectPut(obj: GemObject): MmGen<void>;
  /** `kref_get_unless_zero`: a reference unless the object is already going. */
  protected abstract objectGetUnlessZero(obj: GemObject): MmGen<boolean>;

  protected useAfterFree(obj: GemObject, what: string): never {
    throw new SubsystemInvariantError(this.name, `${obj.refcount.name}: ${what} on a freed object (use after free)`);
  }

  /** `drm_gem_mmap_obj` on a new VMA, `drm_gem_vm_open` on a copy: one more reference. */
  protected *vmOpen(gf: GemFile, vma: Vma, _thread: SimThread): MmGen<void> {
    this.count('vmaOpen');
    vma.flags |= VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP;
    yield* this.objectGet(this.#objectOf(gf, vma), 'vm_ops->open');
  }

  /** `drm_gem_vm_close`: the VMA's reference goes. */
  protected *vmClose(gf: GemFile, vma: Vma, _thread: SimThread): MmGen<void> {
    this.count('vmaClose');
    yield* this.objectPut(this.#objectOf(gf, vma));
  }

  /** `drm_gem_shmem_fault`: the object's page. */
  protected *vmFault(gf: GemFile, vmf: VmFault): MmGen<VmFaultResult> {
    this.count('fault');
    const obj = this.#objectOf(gf, vmf.vma);
    if ((yield obj.freed.read()) as boolean) this.useAfterFree(obj, 'a page fault');
    return { kind: 'page', page: vmf.pgoff };
  }

  #objectOf(gf: GemFile, vma: Vma): GemObject {
    const obj = gf.objects[objectIndexOf(vma)];
    if (obj === undefined) throw new Error(`gem: ${vma.toString()} (pgoff ${vma.pgoff}) maps no object`);
    return obj;
  }

  override checkInvariants(): void {
    for (const gf of this.states()) {
      const mapped = gf.objects.map(() => 0);
      for (const vma of gf.mm.vmas()) if (vma.file === gf.file) mapped[objectIndexOf(vma)]!++;
      for (const obj of gf.objects) {
        const vmas = mapped[obj.index]!;
        const refs = obj.refcount.value;
        const handles = obj.handles.value;
        const freed = obj.freed.value;
        if (freed && vmas > 0) throw new SubsystemInvariantError(this.name, `mm${gf.mm.pid}: ${obj.refcount.name}: object freed while ${vmas} VMAs map it`);
        if (refs !== vmas + handles)
          throw new SubsystemInvariantError(this.name, `mm${gf.mm.pid}: ${obj.refcount.name} is ${refs} but ${vmas} VMAs and ${handles} handles hold it`);
        if (freed !== (refs === 0))
          throw new SubsystemInvariantError(this.name, `mm${gf.mm.pid}: ${obj.refcount.name} is ${refs} but the object is ${freed ? '' : 'not '}freed`);
      }
    }
  }

  override locations(): readonly SharedLocation[] {
    return [...this.states()].flatMap((gf) => gf.objects.flatMap((o) => [o.refcount, o.handles, o.freed]));
  }
}

/**
 * Legacy GEM: the refcount is a plain integer, incremented and decremented with a load and a
 * store; what keeps two updates apart is mmap_sem. `open` runs under mmap_sem write (mmap,
 * split); `close` runs under what munmap holds after its downgrade, read — safe only because
 * every path to `close` took mmap_sem for write first, so no other `open` or `close` (nor an
 * ioctl, which takes mmap_sem write itself) can run until it lets go. The ioctls serialise with
 * the hooks by taking mmap_write_lock themselves.
 */
// Decorators apply bottom-up: `readAssumptions` lists the last one first.
@assumes({
  lock: 'mmap_sem',
  mode: 'read',
  hook: 'vmaClose',
  protects: 'gem.obj.refcount',
  why: 'munmap closes after downgrading to read; the plain decrement is safe because every closer took mmap_sem write first, and readers (faults) never touch the refcount',
})
@assumes({
  lock: 'mmap_sem',
  mode: 'write',
  hook: 'vmaOpen',
  protects: 'gem.obj.refcount',
  why: 'drm_gem_vm_open increments with a plain load and store: mmap_sem write excludes every other open, close and ioctl',
})
class GemLegacy extends GemDriver {
  readonly variant = 'legacy' as const;

  protected override *ioctlLock(task: MmTask, _gf: GemFile): MmGen<MmLockGuard | null> {
    return yield* mmapLegacyLock(task.mm, task.thread, 'write');
  }

  protected override *ioctlUnlock(task: MmTask, _gf: GemFile, hold: MmLockGuard | null): MmGen<void> {
    yield* mmapLegacyUnlock(task.mm, hold);
  }

  protected override *objectGet(obj: GemObject, why: string): MmGen<void> {
    const n = (yield obj.refcount.read()) as number;
    if (n === 0) this.useAfterFree(obj, why);
    yield obj.refcount.write(n + 1);
  }

  protected override *objectPut(obj: GemObject): MmGen<void> {
    const n = (yield obj.refcount.read()) as number;
    if (n === 0) this.useAfterFree(obj, 'drm_gem_object_put');
    yield obj.refcount.write(n - 1);
    if (n === 1) yield obj.freed.write(true);
  }

  protected override *objectGetUnlessZero(obj: GemObject): MmGen<boolean> {
    const n = (yield obj.refcount.read()) as number;
    if (n === 0) return false;
    yield obj.refcount.write(n + 1);
    return true;
  }
}

/**
 * Converted GEM (the kernel's own): the refcount is a kref, every update one atomic
 * read-modify-write, the free done by whoever dropped the last reference; the handle table has
 * its own lock (`table_lock`). Nothing relies on an mm lock but what `open` needs to set the
 * new VMA's flags.
 */
@assumes({
  lock: 'vma',
  mode: 'write',
  hook: 'vmaOpen',
  protects: 'vm_flags of the new GEM VMA',
  why: 'drm_gem_mmap_obj sets VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP on the VMA being mapped',
})
class GemConverted extends GemDriver {
  readonly variant = 'converted' as const;

  protected override *ioctlLock(_task: MmTask, gf: GemFile): MmGen<MmLockGuard | null> {
    yield gf.tableLock.lock();
    return null;
  }

  protected override *ioctlUnlock(_task: MmTask, gf: GemFile, _hold: MmLockGuard | null): MmGen<void> {
    yield gf.tableLock.unlock();
  }

  protected override *objectGet(obj: GemObject, why: string): MmGen<void> {
    const old = (yield obj.refcount.rmw((n) => (n === 0 ? 0 : n + 1))) as number;
    if (old === 0) this.useAfterFree(obj, why);
  }

  protected override *objectPut(obj: GemObject): MmGen<void> {
    const old = (yield obj.refcount.rmw((n) => (n === 0 ? 0 : n - 1))) as number;
    if (old === 0) this.useAfterFree(obj, 'drm_gem_object_put');
    if (old === 1) yield obj.freed.write(true);
  }

  protected override *objectGetUnlessZero(obj: GemObject): MmGen<boolean> {
    const old = (yield obj.refcount.rmw((n) => (n === 0 ? 0 : n + 1))) as number;
    return old !== 0;
  }
}

/** The GEM driver of `variant`: a new instance, one DRM file per attached process. */
export function gem(variant: SubsystemVariant): Subsystem {
  return variant === 'legacy' ? new GemLegacy() : new GemConverted();
}
