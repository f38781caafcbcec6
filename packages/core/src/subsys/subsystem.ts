import type { MmStruct } from '../mm/mmStruct.js';
import type { MmTask } from '../mm/task.js';
import type { MmGen } from '../mm/vma.js';
import type { Prng } from '../sim/prng.js';
import type { SharedLocation } from '../sim/sharedLocation.js';
import type { SimThread } from '../sim/thread.js';

/** What part of the kernel a subsystem models. */
export type SubsystemKind = 'arch' | 'fs' | 'driver' | 'hugepage';

/** `legacy` leans on mmap_sem (declared or not); `converted` does its own locking or revalidates. */
export type SubsystemVariant = 'legacy' | 'converted';

/** A simulated process a subsystem serves. */
export interface SubsystemProcess {
  readonly pid: number;
  readonly name: string;
  readonly mm: MmStruct;
}

/** A subsystem's own invariant broke: names the subsystem and the state. */
export class SubsystemInvariantError extends Error {
  constructor(
    readonly subsystem: string,
    message: string,
  ) {
    super(`${subsystem}: ${message}`);
    this.name = 'SubsystemInvariantError';
  }
}

/**
 * A mock kernel subsystem that plugs into the mm through its hooks (`vmOps` of the VMAs it maps,
 * the mm's MMU notifiers and arch hooks) and keeps its state in named `SharedLocation`s, so every
 * access is a scheduling point the detectors see. One object may serve several processes (a
 * driver shared by two), attached to each.
 *
 * A third party writes one in its own file against `@vmalock/core` and loads it by path; its
 * module's default export is a factory `() => Subsystem` (or the class).
 */
export interface Subsystem {
  /** Unique among the loaded subsystems (`pkeys`, `binder`, `khugepaged`, ...). */
  readonly name: string;
  readonly kind: SubsystemKind;
  readonly variant: SubsystemVariant;
  /** One line: what it models (the kernel case). */
  readonly summary: string;
  /** Wire into a process before any of its threads runs: files, hooks, per-mm state. */
  attach(proc: SubsystemProcess): void;
  /** One operation a user thread of an attached process makes on it (a syscall, an ioctl, a fault on its mapping), chosen with `rng`. */
  drive(task: MmTask, rng: Prng): MmGen<void>;
  /**
   * One pass of the subsystem's own kernel thread (khugepaged's scan), if it has one: workloads
   * run it on a thread of its own next to the user threads that `drive` it.
   */
  daemon?(task: MmTask, rng: Prng): MmGen<void>;
  /**
   * The threads that exercise it in one attached process when a tool like `vmalock flag` drives
   * it: each is spawned with `spawn(name, body)` (names unique in the process; spawn order is the
   * threads' order in a schedule) and its body runs with the thread's task and random stream.
   * Called once per run, after `attach` and before any thread runs; it may first set the process
   * up synchronously (map what the threads work on, with `runMmOp`). One workload for both
   * variants: it must not depend on the variant. Default, when absent: 3 threads calling `drive`
   * 3 times each, and one running `daemon` 3 times when there is one.
   */
  exercise?(proc: SubsystemProcess, spawn: (name: string, body: (task: MmTask, rng: Prng) => MmGen<void>) => void): void;
  /** Its own invariants at a quiescent point (no thread inside it); throws SubsystemInvariantError. */
  checkInvariants(): void;
  /** The instrumented locations it owns. */
  locations(): readonly SharedLocation[];
  /** How often each of its hooks ran (coverage: a hook never reached makes a verdict 'not exercised'). */
  readonly hookCounts: Readonly<Record<string, number>>;
}

/**
 * An MMU notifier (`struct mmu_notifier`): a secondary MMU (HMM mirror, a device) told before
 * the CPU page tables of [start, end) change or go (`invalidate_range_start`) and after
 * (`invalidate_range_end`). Called under whatever the changing operation holds.
 */
export interface MmuNotifier {
  readonly name: string;
  invalidateRangeStart(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<void>;
  invalidateRangeEnd(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<void>;
  /** The mm is torn down (`release`). */
  release?(mm: MmStruct, thread: SimThread): MmGen<void>;
}

/** Arch hooks on the address space (`arch_unmap`, and the like). */
export interface ArchHooks {
  readonly name: string;
  /** [start, end) was unmapped (after the VMAs left the tree, before the zap): `arch_unmap`. */
  unmap?(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<void>;
}
