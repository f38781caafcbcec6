// Helpers the workloads share: where they map, setup mappings, per-thread random streams, the
// latch that stops helper threads once the measured threads are done, and checked faults.
import {
  type FaultAccess,
  MADV_DONTNEED,
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
  sysMadvise,
  sysMmap,
} from '@vmalock/core';
import { z } from 'zod';
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

/** The faulter threads some workloads run beside their measured ones: how many, their region, their rounds. */
export function faulterParams(measured: string) {
  return {
    faulters: z.number().int().min(0).max(4096).default(2).describe('threads write-faulting their own regions meanwhile (not counted as ops)'),
    faulterPages: z.number().int().min(1).max(65_536).default(16).describe("pages of each faulter's region"),
    faulterRoundsMax: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(64)
      .describe(`bound on each faulter's rounds (fault every page, then MADV_DONTNEED), which stop earlier when the ${measured} are done`),
  };
}

/**
 * Map each faulter's region (`faulterPages` pages, a guard page apart, from `base`) and spawn
 * the faulters: each writes every page of its region, then MADV_DONTNEEDs it, round after round,
 * until the latch stops them or `faulterRoundsMax` (counted in the `faulterRounds` side figure).
 */
export function spawnFaulters(
  ctx: WorkloadContext,
  workload: string,
  p: { readonly faulters: number; readonly faulterPages: number; readonly faulterRoundsMax: number },
  base: number,
  latch: Latch,
): void {
  for (let f = 0; f < p.faulters; f++) {
    const region = setupMmap(workload, ctx.mm, `faulter ${f}'s region`, base + f * (p.faulterPages + 1) * P, p.faulterPages * P, RW, ANON);
    spawnTask(ctx, `faulter${f}`, function* (task) {
      for (let round = 0; round < p.faulterRoundsMax && latch.running; round++) {
        for (let n = 0; n < p.faulterPages; n++) yield* mustFault(workload, task, region + n * P, 'write');
        mustOk(workload, task, 'madvise(MADV_DONTNEED)', yield* sysMadvise(task, region, p.faulterPages * P, MADV_DONTNEED));
        ctx.counter.note('faulterRounds');
      }
    });
  }
}
