import {
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  type MmGen,
  type MmStruct,
  type MmTask,
  PAGE_SIZE,
  type Prng,
  SeqCount,
  SharedLocation,
  type SimThread,
  SpinLock,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemProcess,
  type SubsystemVariant,
  VM_DONTEXPAND,
  VM_EXEC,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_READ,
  type VmOperations,
  Vma,
  assumes,
  hex,
  mmapLegacyLock,
  mmapLegacyUnlock,
  sysMremap,
  yieldNow,
} from '@vmalock/core';
import { SubsystemBase } from '../common.js';

/** The vdso's size: two pages (the kernel's image is 1-2 pages plus `[vvar]`, not modelled). */
export const VDSO_LEN = 2 * PAGE_SIZE;
/** The window the vdso is mapped in and moved around (slots of VDSO_LEN; nothing else maps there). */
export const VDSO_WINDOW = 0x60000000;
export const VDSO_SLOTS = 8;
/** The name /proc/pid/maps shows. */
export const VDSO_NAME = '[vdso]';
/** A converted reader retries at most this often (each retry means a move finished meanwhile). */
export const vdsoReadRetriesMax = 64;

/** The per-mm state. */
export interface VdsoMm {
  readonly mm: MmStruct;
  /**
   * `mm->context.vdso`: where the vdso is mapped (signal delivery points the handler's return at
   * its sigreturn trampoline). Written under: legacy, the mremap hook (mremap's mmap_sem write);
   * converted, `lock` + `seq`. Read under: legacy, mmap_sem read; converted, `seq` (retrying).
   */
  readonly pointer: SharedLocation<number>;
  /** Converted: serialises writers of `pointer` (seqlock_t's spinlock). */
  readonly lock: SpinLock;
  /** Converted: readers of `pointer` retry when it moved under them (seqlock_t's seqcount). */
  readonly seq: SeqCount;
}

type VdsoHook = 'mremap' | 'signal' | 'move';

/**
 * The per-mm vdso pointer (`arch/x86/entry/vdso/vma.c`): `map_vdso` installs the vdso as a
 * special mapping (`_install_special_mapping`, `vm_special_mapping` `vdso_mapping`) and sets
 * `mm->context.vdso`; when user space (CRIU) moves it with mremap, `vdso_mremap` — the
 * special mapping's `.mremap` hook, called from `move_vma` — updates the pointer; signal
 * delivery (`setup_rt_frame` -> `__setup_rt_frame`) reads it to put the return address of the
 * handler on the vdso's `__kernel_rt_sigreturn`. If the pointer and the mapping disagree, the
 * handler returns into nothing.
 *
 * `drive`: mremap the vdso (MREMAP_MAYMOVE|MREMAP_FIXED) to another free slot of its window, or
 * deliver a signal: read the pointer, build the frame (a scheduling point), then check a VMA
 * named `[vdso]` starts exactly there (the trampoline's fetch; a SubsystemInvariantError if not).
 *
 * Invariant (`checkInvariants`): exactly one `[vdso]` VMA, and the pointer equals its start.
 */
abstract class VdsoBase extends SubsystemBase<VdsoMm, VdsoHook> {
  readonly name = 'vdso';
  readonly kind = 'arch' as const;
  readonly summary = 'x86 per-mm vdso pointer, updated by the [vdso] mapping mremap hook, read by signal delivery (arch/x86/entry/vdso/vma.c)';
  /** The special mapping's vm_ops (`vdso_mapping`): its name and the mremap hook. */
  readonly vmOps: VmOperations;

  constructor() {
    super({ mremap: 0, signal: 0, move: 0 });
    this.vmOps = {
      name: 'vdso',
      vmaName: () => VDSO_NAME,
      mremap: (vma, thread) => this.#mremapHook(vma, thread),
    };
  }

  /** `map_vdso()`: install the special mapping in the first slot and point `context.vdso` at it. */
  protected override attachState(proc: SubsystemProcess): VdsoMm {
    const { mm } = proc;
    if (mm.findVmaIntersection(VDSO_WINDOW, VDSO_WINDOW + VDSO_SLOTS * VDSO_LEN) !== null)
      throw new Error(`vdso: the window at ${hex(VDSO_WINDOW)} of pid ${proc.pid} is not free`);
    // _install_special_mapping() before the process runs: nobody can hold a lock on it yet.
    const vma = new Vma(VDSO_WINDOW, VDSO_WINDOW + VDSO_LEN, VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYEXEC | VM_DONTEXPAND, 0, null, null, this.vmOps);
    mm.insertVmaUnchecked(vma);
    const at = `${this.name}.mm${proc.pid}`;
    return {
      mm,
      pointer: new SharedLocation<number>(`${at}.context.vdso`, vma.start, this.name),
      lock: new SpinLock(`${at}.vdso_lock`),
      seq: new SeqCount(`${at}.vdso_seq`),
    };
  }

  override *drive(task: MmTask, rng: Prng): MmGen<void> {
    if (rng.chance(0.5)) yield* this.moveVdso(task, rng.int(0, VDSO_SLOTS - 2));
    else yield* this.deliverSignal(task);
  }

  /**
   * User space moves its vdso (CRIU restoring a process): where /proc/self/maps says it is (the
   * pointer, maybe stale: mremap then fails with -EFAULT) to slot `slot` of the other free ones.
   */
  *moveVdso(task: MmTask, slot: number): MmGen<number> {
    this.count('move');
    const s = this.stateOf(task.mm);
    // User space reads /proc/self/maps: no kernel lock orders it with a concurrent move (data_race()).
    const from = (yield s.pointer.dataRace()) as number;
    const fromSlot = (from - VDSO_WINDOW) / VDSO_LEN;
    const to = VDSO_WINDOW + (slot >= fromSlot ? slot + 1 : slot) * VDSO_LEN;
    return yield* sysMremap(task, from, VDSO_LEN, VDSO_LEN, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  }

  /** `vdso_mremap()`: the vdso VMA now starts at `vma.start`. Context: mremap's move (`provides('vmaMremap')`). */
  *#mremapHook(vma: Vma, thread: SimThread): MmGen<void> {
    this.count('mremap');
    yield* this.setPointer(this.stateOf(this.#mmOf(vma, thread)), vma.start);
  }

  /** The attached mm whose tree holds `vma` (one subsystem object may serve several processes). */
  #mmOf(vma: Vma, thread: SimThread): MmStruct {
    for (const { mm } of this.states()) if (mm.vmaLookup(vma.start) === vma) return mm;
    throw new Error(`vdso: mremap hook in ${thread.label} for ${vma.toString()}, which no attached mm maps`);
  }

  /** Signal delivery: 0, or a SubsystemInvariantError when the trampoline is not where the pointer says. */
  abstract deliverSignal(task: MmTask): MmGen<void>;

  protected abstract setPointer(s: VdsoMm, start: number): MmGen<void>;

  protected countSignal(): void {
    this.count('signal');
  }

  /** The handler returns through `[vdso]` at `addr`: a VMA of ours must start there. */
  protected checkTrampoline(s: VdsoMm, addr: number, thread: SimThread): void {
    const vma = s.mm.vmaLookup(addr);
    if (vma === null || vma.vmOps !== this.vmOps || vma.start !== addr)
      throw new SubsystemInvariantError(
        this.name,
        `signal delivery in ${thread.label}: ${s.pointer.name} is ${hex(addr)} but ${vma === null ? 'nothing is mapped there' : `${vma.toString()} is no ${VDSO_NAME} starting there`}: the handler would return into nothing`,
      );
  }

  override checkInvariants(): void {
    for (const s of this.states()) {
      const vdsos = [...s.mm.vmas()].filter((v) => v.vmOps === this.vmOps);
      if (vdsos.length !== 1) throw new SubsystemInvariantError(this.name, `mm${s.mm.pid} has ${vdsos.length} ${VDSO_NAME} VMAs`);
      const vma = vdsos[0]!;
      if (vma.end - vma.start !== VDSO_LEN)
        throw new SubsystemInvariantError(this.name, `${VDSO_NAME} ${vma.toString()} of mm${s.mm.pid} is not ${VDSO_LEN} bytes`);
      if (s.pointer.value !== vma.start)
        throw new SubsystemInvariantError(this.name, `${s.pointer.name} is ${hex(s.pointer.value)} but ${VDSO_NAME} is at ${vma.toString()}`);
    }
  }

  override locations(): readonly SharedLocation[] {
    return [...this.states()].map((s) => s.pointer);
  }
}

/**
 * The vdso as the kernel has it: `vdso_mremap` writes `context.vdso` plainly, relying on
 * mremap's mmap_sem write; the reader (here) holds mmap_sem for read (`mmapLegacyLock`, which
 * under vma-range is nothing), so no move runs between reading the pointer and using it.
 */
@assumes({
  lock: 'mmap_sem',
  mode: 'write',
  hook: 'vmaMremap',
  protects: 'vdso.mm<pid>.context.vdso',
  why: 'vdso_mremap writes mm->context.vdso plainly: mremap holds mmap_sem for write, so readers under mmap_sem read never see it move',
})
export class VdsoLegacy extends VdsoBase {
  readonly variant = 'legacy' as const;

  protected *setPointer(s: VdsoMm, start: number): MmGen<void> {
    yield s.pointer.write(start);
  }

  *deliverSignal(task: MmTask): MmGen<void> {
    this.countSignal();
    const s = this.stateOf(task.mm);
    const hold = yield* mmapLegacyLock(task.mm, task.thread, 'read');
    const addr = (yield s.pointer.read()) as number;
    // Building the signal frame (copy_to_user of the sigcontext) before the handler runs.
    yield yieldNow();
    this.checkTrampoline(s, addr, task.thread);
    yield* mmapLegacyUnlock(task.mm, hold);
  }
}

/**
 * The vdso converted: `context.vdso` under a seqlock of its own. The mremap hook writes it under
 * the spinlock inside a seqcount write section; signal delivery reads it with the seqcount,
 * stabilises the VMA there with the policy's read lock on that range (what any fault-side code
 * may take), and retries when the pointer moved under it.
 */
@assumes({
  lock: 'vma',
  mode: 'write',
  hook: 'vmaMremap',
  protects: 'the moved [vdso] VMA while vdso_mremap reads its new start',
  why: 'move_vma calls the hook with the VMA write-locked; the pointer itself is under the vdso seqlock',
})
export class VdsoConverted extends VdsoBase {
  readonly variant = 'converted' as const;

  protected *setPointer(s: VdsoMm, start: number): MmGen<void> {
    yield s.lock.lock();
    yield s.seq.writeBegin();
    yield s.pointer.writeOnce(start);
    yield s.seq.writeEnd();
    yield s.lock.unlock();
  }

  *deliverSignal(task: MmTask): MmGen<void> {
    this.countSignal();
    const { mm, thread } = task;
    const s = this.stateOf(mm);
    for (let attempt = 0; attempt < vdsoReadRetriesMax; attempt++) {
      const seq = (yield s.seq.readBegin()) as number;
      // Inside the seqcount read section: an intended lockless load, validated by readRetry.
      const addr = (yield s.pointer.readOnce()) as number;
      if ((yield s.seq.readRetry(seq)) as boolean) continue;
      // Keep the VMA at the pointer from moving while the frame is built and the pointer rechecked.
      const guard = yield* mm.policy.lockForRead(mm, thread, addr, addr + VDSO_LEN);
      yield yieldNow();
      const moved = (yield s.seq.readRetry(seq)) as boolean;
      if (!moved) this.checkTrampoline(s, addr, thread);
      yield* mm.policy.unlock(guard);
      if (!moved) return;
    }
    throw new Error(`vdso: signal delivery in ${thread.label} retried ${vdsoReadRetriesMax} times: ${s.pointer.name} kept moving`);
  }
}

/** The vdso subsystem in `variant`. */
export function vdso(variant: SubsystemVariant): Subsystem {
  return variant === 'legacy' ? new VdsoLegacy() : new VdsoConverted();
}
