/**
 * What a workload is: a named, parameterised generator of simulated user threads for one
 * process. A plan (or `bench`, or a test) creates the process's mm under its policy, attaches
 * the process's subsystems, and calls `spawn` from the program's setup; the workload maps what
 * its threads need (sequentially, with `runMmOp`) and spawns them. Each thread counts the
 * operations it completes on the context's `OpCounter`, so throughput is ops per simulated
 * second, up to the simulated time of the last op (as bench:policies measures pft: faults up to
 * when the last faulting thread finished).
 */
import type { MmStruct, SimSetup, SimThread, Subsystem } from '@vmalock/core';
import type { z } from 'zod';

/** The names of the workloads, as plans write them. */
export const workloadNameList = [
  'pft',
  'page_fault1',
  'mmap1',
  'ebizzy',
  'jvm-gc',
  'malloc-arenas',
  'stack-growth',
  'mremap-growth',
  'fork-heavy',
  'proc-maps',
  'subsystem-driver',
  'strace-replay',
] as const;
export type WorkloadName = (typeof workloadNameList)[number];

/**
 * Counts what one process's workload completes. `count` is the workload's op (what its doc
 * says: a fault, an mmap/munmap pair, an iteration); `note` keeps side figures (the pft
 * mapper's cycles, the JVM's write-protection traps) that are not ops.
 */
export class OpCounter {
  /** Ops completed. */
  ops = 0;
  /** The simulated time (ns) of the thread that completed the last op, when it did. */
  lastOpNs = 0;
  /** Side figures by name. */
  readonly extras: Record<string, number> = {};

  /** `thread` completed `n` ops. */
  count(thread: SimThread, n = 1): void {
    this.ops += n;
    if (thread.clockNs > this.lastOpNs) this.lastOpNs = thread.clockNs;
  }

  /** Add `n` to the side figure `name`. */
  note(name: string, n = 1): void {
    this.extras[name] = (this.extras[name] ?? 0) + n;
  }

  /**
   * Ops per simulated second, up to the last op. Meaningful under the `timed` strategy only (the
   * others advance no clock that means time); null when nothing was counted.
   */
  opsPerSimSec(): number | null {
    return this.ops > 0 && this.lastOpNs > 0 ? (this.ops / this.lastOpNs) * 1e9 : null;
  }
}

/** What `spawn` gets: one simulated process, ready to run. */
export interface WorkloadContext {
  /** The program's setup: `sim.spawn` starts threads, `sim.rng` is the run's program stream. */
  readonly sim: SimSetup;
  /** The process's address space, created under its policy by the caller. */
  readonly mm: MmStruct;
  /** How many threads do the workload's named activity (its doc says which; helpers are extra). */
  readonly threads: number;
  /** The subsystems attached to this process (`subsystem-driver` drives them). */
  readonly subsystems: readonly Subsystem[];
  readonly counter: OpCounter;
  /** Prefix of the thread names (the process's name), so threads of several processes stay apart. */
  readonly prefix?: string;
}

/**
 * A named, parameterised workload. `params` is a zod object schema whose every field has a
 * default and a description (docs/workloads.md is generated from it); `spawn` receives the
 * parsed params.
 */
export interface Workload<S extends z.ZodObject = z.ZodObject> {
  readonly name: WorkloadName;
  /** One line: what it models. */
  readonly summary: string;
  /** What one counted op is. */
  readonly op: string;
  /** Who decides the thread count: the context (`threads`), or the workload itself (a trace's tids). */
  readonly threadsFrom: 'context' | 'workload';
  readonly params: S;
  /**
   * Checks of parsed params that need more than their types (a file that must be readable and
   * parse): throws `WorkloadParamsError`. Called by `parseWorkloadParams`.
   */
  check?(params: z.output<S>): void;
  /** Map what the threads need (sequentially) and spawn them. Called once per run, from the program's setup. */
  spawn(ctx: WorkloadContext, params: z.output<S>): void;
}

/** Bad params for a workload (unknown workload, a field out of range, an unreadable trace). */
export class WorkloadParamsError extends Error {
  override readonly name = 'WorkloadParamsError';
}

/** A workload's own setup failed (an address it needs is taken): names the workload and what. */
export class WorkloadSetupError extends Error {
  override readonly name = 'WorkloadSetupError';
}

/** Keeps a workload's literal name and its schema's type (for the registry's typed params). */
export function defineWorkload<N extends WorkloadName, S extends z.ZodObject>(w: Workload<S> & { readonly name: N }): Workload<S> & { readonly name: N } {
  return w;
}
