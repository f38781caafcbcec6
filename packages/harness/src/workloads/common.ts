// Helpers the workloads share: where they map, setup mappings, per-thread random streams, the
// latch that stops helper threads once the measured threads are done, and checked faults.
import {
  type FaultAccess,
  MAP_ANONYMOUS,
  MAP_FIXED_NOREPLACE,
  MAP_PRIVATE,
  type MmGen,
  type MmStruct,
  type MmTask,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  Prng,
  type SimSetup,
  type SimThread,
  type ThreadBody,
  errnoNames,
  handleMmFault,
  hex,
  runMmOp,
  sysMmap,
} from '@vmalock/core';
import { type WorkloadContext, WorkloadSetupError } from './workload.js';

export const P = PAGE_SIZE;
export const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
export const RW = PROT_READ | PROT_WRITE;

/**
 * Where the workloads place their fixed mappings: 16 TiB, far below the top-down mmap area
 * (near 128 TiB) where non-fixed mappings, subsystems' included, land.
 */
export const WORKLOAD_BASE = 0x100000000000;

/** Round `n` bytes up to a multiple of `align` bytes. */
export function roundUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** `-ENOMEM` as `ENOMEM`, for messages. */
export function errnoText(r: number): string {
  return r < 0 ? (errnoNames[-r] ?? `errno ${-r}`) : String(r);
}

/**
 * mmap before the threads start (one sequential syscall). A fixed address is mapped with
 * MAP_FIXED_NOREPLACE, never over something else. Throws `WorkloadSetupError` naming the workload
 * and the mapping when it fails.
 */
export function setupMmap(workload: string, mm: MmStruct, what: string, addr: number, len: number, prot: number, flags: number): number {
  const f = addr !== 0 ? flags | MAP_FIXED_NOREPLACE : flags;
  const r = runMmOp(mm, (t) => sysMmap(t, addr, len, prot, f, -1, 0), `${workload} setup`);
  if (r < 0)
    throw new WorkloadSetupError(
      `${workload}: setting up ${what} (mmap of ${len / P} pages${addr !== 0 ? ` at ${hex(addr)}` : ''}) failed with ${errnoText(r)}`,
    );
  return r;
}

/**
 * A random stream of its own for a thread, drawn from the program's stream at setup (before any
 * thread runs): a thread's choices then depend on the seed alone, never on the schedule.
 */
export function ownRng(sim: SimSetup): Prng {
  return new Prng(sim.rng.int(0, 0x7fffffff));
}

/** Spawn a thread of the workload's process: name prefixed with the process's, body given its task and own stream. */
export function spawnTask(ctx: WorkloadContext, name: string, body: (task: MmTask, rng: Prng, thread: SimThread) => MmGen<void>): SimThread {
  const rng = ownRng(ctx.sim);
  const mm = ctx.mm;
  const threadBody: ThreadBody = function* (thread) {
    yield* body({ thread, mm }, rng, thread);
  };
  return ctx.sim.spawn(ctx.prefix !== undefined ? `${ctx.prefix}:${name}` : name, threadBody);
}

/**
 * The measured threads still running: helper threads (a mapper, a GC thread) loop while it is
 * open, and each is also bounded by its own maximum, so no strategy can make one spin forever.
 */
export class Latch {
  constructor(public open: number) {}
  done(): void {
    this.open--;
  }
  get running(): boolean {
    return this.open > 0;
  }
}

/** A user access to `addr` that must succeed (the workload's own mapping): throws with the workload, thread and address otherwise. */
export function* mustFault(workload: string, task: MmTask, addr: number, access: FaultAccess): MmGen<void> {
  const r = yield* handleMmFault(task, addr, access);
  if (r !== 'ok') throw new Error(`${workload}: ${task.thread.label}: ${access} fault at ${hex(addr)} got ${r}`);
}

/** A syscall result that must not be an error: throws naming the call otherwise. */
export function mustOk(workload: string, task: MmTask, call: string, r: number): number {
  if (r < 0) throw new Error(`${workload}: ${task.thread.label}: ${call} failed with ${errnoText(r)}`);
  return r;
}
