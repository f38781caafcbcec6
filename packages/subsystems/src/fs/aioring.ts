import {
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MmFile,
  type MmGen,
  type MmStruct,
  type MmTask,
  Mutex,
  PAGE_SIZE,
  type Prng,
  SharedLocation,
  SimThread,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemProcess,
  type SubsystemVariant,
  VM_DONTEXPAND,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  Vma,
  type VmOperations,
  assumes,
  handleMmFault,
  hex,
  mmapLegacyLock,
  mmapLegacyUnlock,
  sysMremap,
} from '@vmalock/core';

/** Pages of the ring. */
export const AIO_RING_PAGES = 2;
/** The two places the ring lives: attach maps it at the first, user threads mremap it between them. */
export const AIO_RING_SLOTS: readonly number[] = [0x52000000, 0x52000000 + 8 * PAGE_SIZE];

/** What one io_submit/io_getevents saw: the ring pointer it read and whether the ring VMA was there when it used it. */
export interface AioSubmission {
  readonly pid: number;
  readonly call: 'io_submit' | 'io_getevents';
  readonly mmapBase: number;
  readonly ringMapped: boolean;
}

/** Per process: the ring's file and `ctx->mmap_base`. */
interface AioCtx {
  readonly proc: SubsystemProcess;
  readonly file: MmFile;
  /** `ctx->mmap_base` (and `ctx->user_id`). Legacy: written under mmap_sem write (the mremap hook); read under mmap_sem read. Converted: under `ctx->ring_lock`. */
  readonly mmapBase: SharedLocation<number>;
}

/**
 * The aio ring's per-mm pointer moved by mremap: fs/aio.c `aio_setup_ring()` maps the ring
 * (`aio_ring_vm_ops`), `aio_ring_mremap()` sets `ctx->user_id = ctx->mmap_base = vma->vm_start`
 * when the ring VMA moves, and `io_submit()` / `io_getevents()` find the ctx by that pointer
 * (`lookup_ioctx`) and then use the ring.
 *
 * State (SharedLocations owned by `aioring`): per process `aioring.mmap_base[pid]`; and
 * `aioring.reqs` (requests taken, `aio_get_req`), `aioring.submitted` (what each call saw).
 *
 * Invariants (`checkInvariants`): at quiescence each process's pointer is the start of its ring
 * VMA (there is exactly one); no io_submit or io_getevents used a pointer to an address where
 * the ring was not mapped.
 */
export abstract class AioRingBase implements Subsystem {
  readonly name = 'aioring';
  readonly kind = 'fs';
  abstract readonly variant: SubsystemVariant;
  abstract readonly summary: string;
  readonly hookCounts: Record<string, number> = { vmaMremap: 0 };
  /** Requests taken (`ctx->reqs_available`, counted up). Atomic. */
  readonly reqs = new SharedLocation<number>('aioring.reqs', 0, 'aioring');
  /** What each call saw. Appended atomically. */
  readonly submitted = new SharedLocation<readonly AioSubmission[]>('aioring.submitted', [], 'aioring');
  protected readonly ctxs = new Map<MmStruct, AioCtx>();

  /** `io_setup()`: map the ring at the first slot (`aio_setup_ring`, before any thread runs: a new VMA nobody can hold a lock on yet). */
  attach(proc: SubsystemProcess): void {
    const { mm } = proc;
    const start = AIO_RING_SLOTS[0]!;
    const end = start + AIO_RING_PAGES * PAGE_SIZE;
    if (mm.findVmaIntersection(start, end) !== null) throw new Error(`aioring: [${hex(start)}, ${hex(end)}) of mm${mm.pid} is taken`);
    const ops: VmOperations = { name: 'aioring', mremap: (vma, thread) => this.mremapHook(proc, vma, thread) };
    const file = new MmFile('/[aio] (deleted)', 0x4000 + proc.pid, 0, 1, true, true, ops);
    const flags = VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE | VM_DONTEXPAND;
    mm.insertVmaUnchecked(new Vma(start, end, flags, 0, file, null, ops));
    this.ctxs.set(mm, { proc, file, mmapBase: new SharedLocation<number>(`aioring.mmap_base[${proc.pid}]`, start, 'aioring') });
  }

  /** One user operation: move the ring to the other slot, io_submit, io_getevents, or touch the ring's page. */
  *drive(task: MmTask, rng: Prng): MmGen<void> {
    const from = rng.index(AIO_RING_SLOTS.length);
    const op = rng.int(0, 4);
    if (op <= 1) yield* this.mremapRing(task, AIO_RING_SLOTS[from]!, AIO_RING_SLOTS[1 - from]!);
    else if (op === 2) yield* this.ioCall(task, 'io_submit');
    else if (op === 3) yield* this.ioCall(task, 'io_getevents');
    else yield* handleMmFault(task, AIO_RING_SLOTS[from]! + rng.int(0, AIO_RING_PAGES - 1) * PAGE_SIZE, 'read');
  }

  /** `mremap(from, ring size, ring size, MREMAP_MAYMOVE|MREMAP_FIXED, to)`: the new address or -errno (-EFAULT when the ring is not at `from`). */
  *mremapRing(task: MmTask, from: number, to: number): MmGen<number> {
    const len = AIO_RING_PAGES * PAGE_SIZE;
    return yield* sysMremap(task, from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  }

  /** `io_submit()` / `io_getevents()`: look the ctx up by its pointer, take a request, use the ring there. */
  abstract ioCall(task: MmTask, call: AioSubmission['call']): MmGen<void>;
  /** `aio_ring_mremap()`: the ring VMA moved to `vma.start`. */
  abstract mremapHook(proc: SubsystemProcess, vma: Vma, thread: SimThread): MmGen<void>;

  checkInvariants(): void {
    for (const s of this.submitted.value) {
      if (!s.ringMapped) this.fail(`${s.call} of mm${s.pid} used ctx->mmap_base ${hex(s.mmapBase)}, where the ring was not mapped`);
    }
    for (const { proc, file, mmapBase } of this.ctxs.values()) {
      const rings = [...proc.mm.vmas()].filter((v) => v.file === file);
      if (rings.length !== 1) this.fail(`mm${proc.pid} has ${rings.length} ring VMAs`);
      if (rings[0]!.start !== mmapBase.value) this.fail(`mm${proc.pid}: ctx->mmap_base ${hex(mmapBase.value)} but the ring is at ${hex(rings[0]!.start)}`);
    }
  }

  locations(): readonly SharedLocation[] {
    return [this.reqs, this.submitted, ...[...this.ctxs.values()].map((c) => c.mmapBase)];
  }

  protected ctxOf(mm: MmStruct): AioCtx {
    const c = this.ctxs.get(mm);
    if (c === undefined) throw new Error(`aioring: not attached to mm${mm.pid}`);
    return c;
  }

  protected fail(what: string): never {
    throw new SubsystemInvariantError(this.name, what);
  }

  protected count(hook: string): void {
    this.hookCounts[hook] = (this.hookCounts[hook] ?? 0) + 1;
  }

  /**
   * After the pointer was read: take a request (`aio_get_req`, a scheduling point between the
   * lookup and the use), then use the ring where the pointer says and record what was there.
   */
  protected *useRing(ctx: AioCtx, call: AioSubmission['call'], mmapBase: number): MmGen<void> {
    yield this.reqs.rmw((n) => n + 1);
    const vma = ctx.proc.mm.vmaLookup(mmapBase);
    const ringMapped = vma !== null && vma.file === ctx.file && vma.start === mmapBase;
    yield this.submitted.rmw((list) => [...list, { pid: ctx.proc.pid, call, mmapBase, ringMapped }]);
  }
}

/**
 * `legacy`: `aio_ring_mremap()` updates the pointer and `io_submit()` reads it with nothing of
 * their own: mremap holds mmap_sem for write through the move, the hook and the unmap of the old
 * range, and io_submit takes `mmap_read_lock` (`mmapLegacyLock(read)`), so the pointer it reads
 * is always where the ring is while it uses it. The code never says so: this class declares no
 * assumption (see the fixture in fs.test.ts).
 */
export class AioRingLegacy extends AioRingBase {
  readonly variant = 'legacy';
  readonly summary = 'aio ring pointer moved on mremap (aio_ring_mremap, io_submit) relying on mmap_sem, undeclared';

  *ioCall(task: MmTask, call: AioSubmission['call']): MmGen<void> {
    const ctx = this.ctxOf(task.mm);
    const hold = yield* mmapLegacyLock(task.mm, task.thread, 'read');
    const mmapBase = (yield ctx.mmapBase.read()) as number;
    yield* this.useRing(ctx, call, mmapBase);
    yield* mmapLegacyUnlock(task.mm, hold);
  }

  *mremapHook(proc: SubsystemProcess, vma: Vma, _thread: SimThread): MmGen<void> {
    this.count('vmaMremap');
    yield this.ctxOf(proc.mm).mmapBase.write(vma.start);
  }
}

/**
 * `converted`: a ring lock (`ctx->ring_lock`-like mutex) around the pointer's update in the
 * mremap hook and around io_submit's read and use of it. mremap inserts the new VMA before the
 * hook and unmaps the old one after it, so under the lock the pointer always names a mapped ring.
 * Lock order: mm lock (mremap) -> ring lock; io_submit takes the ring lock alone.
 */
export class AioRingConverted extends AioRingBase {
  readonly variant = 'converted';
  readonly summary = 'aio ring pointer moved on mremap (aio_ring_mremap, io_submit) under the ring lock';
  readonly ringLock = new Mutex('aioring.ring_lock');

  *ioCall(task: MmTask, call: AioSubmission['call']): MmGen<void> {
    const ctx = this.ctxOf(task.mm);
    yield this.ringLock.lock();
    const mmapBase = (yield ctx.mmapBase.read()) as number;
    yield* this.useRing(ctx, call, mmapBase);
    yield this.ringLock.unlock();
  }

  @assumes({ lock: 'vma', mode: 'write', hook: 'vmaMremap', protects: 'the moved ring VMA', why: "vma.start is the ring's new address while the hook runs" })
  *mremapHook(proc: SubsystemProcess, vma: Vma, _thread: SimThread): MmGen<void> {
    this.count('vmaMremap');
    yield this.ringLock.lock();
    yield this.ctxOf(proc.mm).mmapBase.write(vma.start);
    yield this.ringLock.unlock();
  }
}

/** The `aioring` subsystem in the given variant. */
export function aioring(variant: SubsystemVariant): Subsystem {
  return variant === 'legacy' ? new AioRingLegacy() : new AioRingConverted();
}
