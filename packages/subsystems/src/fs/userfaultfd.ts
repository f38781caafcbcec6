import {
  EBUSY,
  EINVAL,
  MAP_FIXED,
  MAP_SHARED,
  MmFile,
  type MmGen,
  type MmStruct,
  type MmTask,
  Mutex,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Prng,
  SharedLocation,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemProcess,
  type SubsystemVariant,
  Vma,
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
} from '@vmalock/core';
import { fdInstall } from '../common.js';
import { type ExerciseSpawn, spawnCalls } from '../exercise.js';

/** Pages of one mapping of the memfd. */
export const UFFD_MAPPING_PAGES = 8;
/** Where user threads map the memfd (MAP_SHARED|MAP_FIXED): two slots. */
export const UFFD_SLOTS: readonly number[] = [0x51000000, 0x51000000 + 16 * PAGE_SIZE];
/** The window user threads' mm syscalls on its mappings aim at. */
export const UFFD_WINDOW = { start: 0x51000000, end: 0x51000000 + 32 * PAGE_SIZE } as const;

/** A registered range `[start, end)` of process `pid`; `gen` numbers the UFFDIO_REGISTER that made it (its pieces keep it). */
export interface UffdRange {
  readonly pid: number;
  readonly start: number;
  readonly end: number;
  readonly gen: number;
}

/** A fault handed to the userfaultfd (`handle_userfault`): where, for which registration, and whether that registration was live then. */
export interface UffdFault {
  readonly pid: number;
  readonly addr: number;
  readonly gen: number;
  /** Ghost state for the checker (not read by the model): the registration `gen` covered `addr` at the step the fault was queued. */
  readonly registeredThen: boolean;
}

/**
 * userfaultfd ranges registered on the VMAs of a memfd (shmem) mapping: fs/userfaultfd.c
 * `userfaultfd_register()` / `userfaultfd_unregister()` (UFFDIO_REGISTER / UNREGISTER set and
 * clear `vma->vm_userfaultfd_ctx` under `mmap_write_lock`) and `handle_userfault()`, reached from
 * `shmem_fault()` when `userfaultfd_missing(vma)`, under the fault's `mmap_read_lock`. A VMA that
 * goes (munmap, MAP_FIXED over it, the old side of an mremap: this ctx has no
 * UFFD_FEATURE_EVENT_REMAP) takes its registration with it (`userfaultfd_unmap_prep`, and
 * `vm_ops->close` here).
 *
 * State (SharedLocations owned by `userfaultfd`): `userfaultfd.ranges`, `userfaultfd.next_gen`,
 * `userfaultfd.faults` (the faults queued to user space, as `handle_userfault` queues them on
 * `ctx->fault_pending_wqh`; this model resolves them at once, as a UFFDIO_ZEROPAGE would).
 * Each attached process gets its own memfd in its fd table (the ctx is per mm).
 *
 * Invariants (`checkInvariants`): every queued fault lay in a range registered at the time;
 * no registration survives over an address that is not mapped by the memfd; ranges never
 * overlap.
 */
export abstract class UserfaultfdBase implements Subsystem {
  readonly name = 'userfaultfd';
  readonly kind = 'fs';
  abstract readonly variant: SubsystemVariant;
  abstract readonly summary: string;
  readonly hookCounts: Record<string, number> = { fault: 0, vmaClose: 0 };
  /** Registered ranges (`vm_userfaultfd_ctx` of the VMAs). Legacy: written under mmap_sem write (close: read, atomically); read under mmap_sem read. Converted: under the ctx lock. */
  readonly ranges = new SharedLocation<readonly UffdRange[]>('userfaultfd.ranges', [], 'userfaultfd');
  /** The next registration's number. Written and read as `ranges`. */
  readonly nextGen = new SharedLocation<number>('userfaultfd.next_gen', 1, 'userfaultfd');
  /** Faults queued to user space. Appended atomically by faults. */
  readonly faults = new SharedLocation<readonly UffdFault[]>('userfaultfd.faults', [], 'userfaultfd');
  protected readonly procs = new Map<MmStruct, { readonly proc: SubsystemProcess; readonly file: MmFile; readonly fd: number }>();

  attach(proc: SubsystemProcess): void {
    const ops: VmOperations = { name: 'userfaultfd', fault: (vmf) => this.fault(proc, vmf), close: (vma) => this.close(proc, vma) };
    const file = new MmFile('/memfd:uffd (deleted)', 0x3000 + proc.pid, 0, 1, true, true, ops);
    const fd = fdInstall(proc.mm, file);
    this.procs.set(proc.mm, { proc, file, fd });
  }

  /** One user operation: map the memfd in a slot, register or unregister some of its pages, or touch a page. */
  *drive(task: MmTask, rng: Prng): MmGen<void> {
    const slot = UFFD_SLOTS[rng.index(UFFD_SLOTS.length)]!;
    const first = rng.int(0, UFFD_MAPPING_PAGES - 1);
    const start = slot + first * PAGE_SIZE;
    const end = start + rng.int(1, Math.min(3, UFFD_MAPPING_PAGES - first)) * PAGE_SIZE;
    const op = rng.int(0, 6);
    if (op === 0) yield* this.mmap(task, slot);
    else if (op <= 2) yield* this.register(task, start, end);
    else if (op === 3) yield* this.unregister(task, start, end);
    else yield* handleMmFault(task, start, rng.chance(0.5) ? 'write' : 'read');
  }

  /** `memfd_create()` + `mmap(slot, MAPPING_PAGES pages, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED, fd, 0)`. */
  *mmap(task: MmTask, slot: number): MmGen<number> {
    return yield* sysMmap(task, slot, UFFD_MAPPING_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, this.of(task.mm).fd, 0);
  }

  /**
   * flag's workload: both slots mapped and registered whole (set up first), then two threads
   * touching random pages of them while a third unregisters parts of the slots (half the time a
   * whole slot) and registers parts again: a fault that found its registration races the
   * unregister of it.
   */
  exercise(proc: SubsystemProcess, spawn: ExerciseSpawn): void {
    runMmOp(
      proc.mm,
      function* (this: UserfaultfdBase, task: MmTask): MmGen<void> {
        for (const slot of UFFD_SLOTS) {
          yield* this.mmap(task, slot);
          yield* this.register(task, slot, slot + UFFD_MAPPING_PAGES * PAGE_SIZE);
        }
      }.bind(this),
      'userfaultfd-setup',
    );
    const slotOf = (rng: Prng): number => UFFD_SLOTS[rng.index(UFFD_SLOTS.length)]!;
    for (let t = 0; t < 2; t++)
      spawnCalls(spawn, `userfaultfd-fault${t}`, 6, (task, rng) =>
        handleMmFault(task, slotOf(rng) + rng.int(0, UFFD_MAPPING_PAGES - 1) * PAGE_SIZE, rng.chance(0.5) ? 'write' : 'read'),
      );
    spawnCalls(spawn, 'userfaultfd-register', 4, (task, rng) => {
      const slot = slotOf(rng);
      if (rng.chance(0.5)) return this.unregister(task, slot, slot + UFFD_MAPPING_PAGES * PAGE_SIZE);
      const first = rng.int(0, UFFD_MAPPING_PAGES - 1);
      const start = slot + first * PAGE_SIZE;
      const end = start + rng.int(1, UFFD_MAPPING_PAGES - first) * PAGE_SIZE;
      return rng.chance(0.5) ? this.unregister(task, start, end) : this.register(task, start, end);
    });
  }

  /** `ioctl(uffd, UFFDIO_REGISTER, {start, len}, MISSING)`: 0, -EINVAL (not all mapped by the memfd), -EBUSY (overlaps a registration). */
  abstract register(task: MmTask, start: number, end: number): MmGen<number>;
  /** `ioctl(uffd, UFFDIO_UNREGISTER, {start, len})`: 0. */
  abstract unregister(task: MmTask, start: number, end: number): MmGen<number>;
  /** `shmem_fault()` -> `handle_userfault()` when the page is in a registered range. */
  abstract fault(proc: SubsystemProcess, vmf: VmFault): MmGen<VmFaultResult>;
  /** `vm_ops->close`: the VMA went, and its registration with it. */
  abstract close(proc: SubsystemProcess, vma: Vma): MmGen<void>;

  checkInvariants(): void {
    for (const f of this.faults.value) {
      if (!f.registeredThen) this.fail(`a fault at mm${f.pid} ${hex(f.addr)} was handed to user space for registration ${f.gen}, which no longer covered it`);
    }
    const ranges = this.ranges.value;
    for (const r of ranges) {
      const entry = [...this.procs.values()].find((e) => e.proc.pid === r.pid);
      if (entry === undefined) this.fail(`range ${this.show(r)} of a process not attached`);
      if (!coveredBy(entry.proc.mm, entry.file, r.start, r.end)) this.fail(`registration ${this.show(r)} survives over an address the memfd does not map`);
      for (const o of ranges)
        if (o !== r && o.pid === r.pid && o.start < r.end && r.start < o.end) this.fail(`registrations ${this.show(r)} and ${this.show(o)} overlap`);
    }
  }

  locations(): readonly SharedLocation[] {
    return [this.ranges, this.nextGen, this.faults];
  }

  protected of(mm: MmStruct): { readonly proc: SubsystemProcess; readonly file: MmFile; readonly fd: number } {
    const e = this.procs.get(mm);
    if (e === undefined) throw new Error(`userfaultfd: not attached to mm${mm.pid}`);
    return e;
  }

  protected fail(what: string): never {
    throw new SubsystemInvariantError(this.name, what);
  }

  protected count(hook: string): void {
    this.hookCounts[hook] = (this.hookCounts[hook] ?? 0) + 1;
  }

  protected show(r: UffdRange): string {
    return `mm${r.pid} [${hex(r.start)}, ${hex(r.end)}) gen ${r.gen}`;
  }

  /** Queue the fault at `addr` for registration `gen` (`handle_userfault`): one atomic append. */
  protected queueFault(pid: number, addr: number, gen: number): ReturnType<SharedLocation['rmw']> {
    return this.faults.rmw((list) => [...list, { pid, addr, gen, registeredThen: this.#covers(pid, addr, gen) }]);
  }

  /** Ghost read for the checker, at the step of the append: does registration `gen` cover `addr` now? */
  #covers(pid: number, addr: number, gen: number): boolean {
    return this.ranges.value.some((r) => r.pid === pid && r.gen === gen && r.start <= addr && addr < r.end);
  }
}

/** Is [start, end) of `mm` mapped, without holes, by VMAs of `file`? (One step: a walk of the tree.) */
export function coveredBy(mm: MmStruct, file: MmFile, start: number, end: number): boolean {
  let at = start;
  for (const vma of mm.vmas(start)) {
    if (vma.start > at || vma.file !== file) return false;
    at = vma.end;
    if (at >= end) return true;
  }
  return false;
}

/** The registered range containing `addr` of `pid`, or undefined. */
export function rangeAt(ranges: readonly UffdRange[], pid: number, addr: number): UffdRange | undefined {
  return ranges.find((r) => r.pid === pid && r.start <= addr && addr < r.end);
}

/** `ranges` with [start, end) of `pid` cut out (pieces outside keep their registration number). */
export function cutRanges(ranges: readonly UffdRange[], pid: number, start: number, end: number): readonly UffdRange[] {
  const out: UffdRange[] = [];
  for (const r of ranges) {
    if (r.pid !== pid || r.end <= start || end <= r.start) {
      out.push(r);
      continue;
    }
    if (r.start < start) out.push({ ...r, end: start });
    if (end < r.end) out.push({ ...r, start: end });
  }
  return out;
}

const PAGE = (vmf: VmFault): VmFaultResult => ({ kind: 'page', page: vmf.pgoff });

/**
 * `legacy`: as fs/userfaultfd.c before per-VMA locks: UFFDIO_REGISTER/UNREGISTER validate the
 * range and update the registrations under `mmap_write_lock` (`mmapLegacyLock(write)`, the
 * kernel's `vma_modify_flags_uffd` runs where mprotect_fixup does), and `handle_userfault`
 * trusts the registration it found for as long as the fault holds `mmap_read_lock`.
 */
@assumes({
  lock: 'mmap_sem',
  mode: 'write',
  hook: 'mprotectFixup',
  protects: 'userfaultfd.ranges, userfaultfd.next_gen',
  why: 'UFFDIO_REGISTER/UNREGISTER change vm_userfaultfd_ctx of VMAs that must stay mapped, excluding faults and unmaps',
})
export class UserfaultfdLegacy extends UserfaultfdBase {
  readonly variant = 'legacy';
  readonly summary = 'userfaultfd ranges on a memfd mapping (UFFDIO_REGISTER/UNREGISTER, handle_userfault) under mmap_sem';

  *register(task: MmTask, start: number, end: number): MmGen<number> {
    const { mm, thread } = task;
    const { proc, file } = this.of(mm);
    const hold = yield* mmapLegacyLock(mm, thread, 'write');
    let r = 0;
    if (!coveredBy(mm, file, start, end)) r = -EINVAL;
    else {
      const ranges = (yield this.ranges.read()) as readonly UffdRange[];
      if (ranges.some((o) => o.pid === proc.pid && o.start < end && start < o.end)) r = -EBUSY;
      else {
        const gen = (yield this.nextGen.read()) as number;
        yield this.nextGen.write(gen + 1);
        yield this.ranges.write([...ranges, { pid: proc.pid, start, end, gen }]);
      }
    }
    yield* mmapLegacyUnlock(mm, hold);
    return r;
  }

  *unregister(task: MmTask, start: number, end: number): MmGen<number> {
    const { mm, thread } = task;
    const { proc } = this.of(mm);
    const hold = yield* mmapLegacyLock(mm, thread, 'write');
    const ranges = (yield this.ranges.read()) as readonly UffdRange[];
    yield this.ranges.write(cutRanges(ranges, proc.pid, start, end));
    yield* mmapLegacyUnlock(mm, hold);
    return 0;
  }

  /** `handle_userfault()` of old: the registration found stays valid while the fault holds mmap_sem read. */
  @assumes({
    lock: 'mmap_sem',
    mode: 'read',
    hook: 'fault',
    protects: 'userfaultfd.ranges',
    why: 'UFFDIO_UNREGISTER (mmap_sem write) cannot drop the registration between its lookup and the queued fault',
  })
  *fault(proc: SubsystemProcess, vmf: VmFault): MmGen<VmFaultResult> {
    this.count('fault');
    const ranges = (yield this.ranges.read()) as readonly UffdRange[];
    const r = rangeAt(ranges, proc.pid, vmf.address);
    if (r !== undefined) yield this.queueFault(proc.pid, vmf.address, r.gen);
    return PAGE(vmf);
  }

  /** The registrations of a VMA that went go with it (one atomic update: closes run concurrently under munmap's read lock). */
  *close(proc: SubsystemProcess, vma: Vma): MmGen<void> {
    this.count('vmaClose');
    yield this.ranges.rmw((ranges) => cutRanges(ranges, proc.pid, vma.start, vma.end));
  }
}

/**
 * `converted`: the ctx's own lock (a mutex, `ctx->map_changing_lock`-like) guards the
 * registrations, and register revalidates the range against the VMA tree under it (a lockless
 * lookup, as `lock_vma_under_rcu` does, checking every VMA is still the memfd's). A VMA that
 * leaves the tree before the check fails it; one that leaves after runs `close`, which takes the
 * ctx lock and drops the registration. Faults look the range up and queue the fault under the
 * ctx lock. Lock order: mm lock (fault, close) -> ctx lock.
 */
export class UserfaultfdConverted extends UserfaultfdBase {
  readonly variant = 'converted';
  readonly summary = 'userfaultfd ranges on a memfd mapping (UFFDIO_REGISTER/UNREGISTER, handle_userfault) under the ctx lock';
  readonly ctxLock = new Mutex('userfaultfd.ctx_lock');

  *register(task: MmTask, start: number, end: number): MmGen<number> {
    const { proc, file } = this.of(task.mm);
    yield this.ctxLock.lock();
    let r = 0;
    const ranges = (yield this.ranges.read()) as readonly UffdRange[];
    // Revalidate under the ctx lock: a VMA gone from the tree now has run, or will run, close.
    if (!coveredBy(task.mm, file, start, end)) r = -EINVAL;
    else if (ranges.some((o) => o.pid === proc.pid && o.start < end && start < o.end)) r = -EBUSY;
    else {
      const gen = (yield this.nextGen.read()) as number;
      yield this.nextGen.write(gen + 1);
      yield this.ranges.write([...ranges, { pid: proc.pid, start, end, gen }]);
    }
    yield this.ctxLock.unlock();
    return r;
  }

  *unregister(task: MmTask, start: number, end: number): MmGen<number> {
    const { proc } = this.of(task.mm);
    yield this.ctxLock.lock();
    const ranges = (yield this.ranges.read()) as readonly UffdRange[];
    yield this.ranges.write(cutRanges(ranges, proc.pid, start, end));
    yield this.ctxLock.unlock();
    return 0;
  }

  @assumes({ lock: 'vma', mode: 'read', hook: 'fault', protects: 'vmf.vma', why: 'the faulting VMA (and so its range) is not unmapped under the fault' })
  *fault(proc: SubsystemProcess, vmf: VmFault): MmGen<VmFaultResult> {
    this.count('fault');
    yield this.ctxLock.lock();
    const ranges = (yield this.ranges.read()) as readonly UffdRange[];
    const r = rangeAt(ranges, proc.pid, vmf.address);
    if (r !== undefined) yield this.queueFault(proc.pid, vmf.address, r.gen);
    yield this.ctxLock.unlock();
    return PAGE(vmf);
  }

  @assumes({ lock: 'vma', mode: 'read', hook: 'vmaClose', protects: 'the detached VMA', why: 'nobody maps its range again until the unmap ends' })
  *close(proc: SubsystemProcess, vma: Vma): MmGen<void> {
    this.count('vmaClose');
    yield this.ctxLock.lock();
    yield this.ranges.rmw((ranges) => cutRanges(ranges, proc.pid, vma.start, vma.end));
    yield this.ctxLock.unlock();
  }
}

/** The `userfaultfd` subsystem in the given variant. */
export function userfaultfd(variant: SubsystemVariant): Subsystem {
  return variant === 'legacy' ? new UserfaultfdLegacy() : new UserfaultfdConverted();
}
