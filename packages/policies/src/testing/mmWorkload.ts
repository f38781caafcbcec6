// A random mm workload shared by the policy tests: threads of one process make random
// mmap/munmap/mprotect/mremap/madvise/brk calls and page faults in a small window, so they
// collide on VMAs, neighbours and holes. Every random choice comes from the thread's stream of
// the run's seed.
import {
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_MAYMOVE,
  type MmGen,
  type MmStruct,
  type MmTask,
  PROT_READ,
  PROT_WRITE,
  type Program,
  type Prng,
  type SimThread,
  handleMmFault,
  sysBrk,
  sysMadvise,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
} from '@vmalock/core';

/** The window's first address. */
export const base = 0x40000000;
export const page = 0x1000;

/** One call of the workload: what it is and its arguments. */
export type MmCall =
  | { readonly op: 'mmap' | 'munmap' | 'mremap'; readonly addr: number; readonly len: number }
  | { readonly op: 'mprotect' | 'madvise'; readonly addr: number; readonly len: number; readonly arg: number }
  | { readonly op: 'brk'; readonly addr: number }
  | { readonly op: 'fault'; readonly addr: number; readonly write: boolean };

/** A random call in the 32-page window (or the heap, for brk). */
export function randomCall(rng: Prng, mm: MmStruct): MmCall {
  const addr = base + rng.int(0, 31) * page;
  const len = rng.int(1, 8) * page;
  switch (rng.int(0, 8)) {
    case 0:
      return { op: 'mmap', addr, len };
    case 1:
      return { op: 'munmap', addr, len };
    case 2:
      return { op: 'mprotect', addr, len, arg: rng.chance(0.5) ? PROT_READ : PROT_READ | PROT_WRITE };
    case 3:
      return { op: 'mremap', addr, len };
    case 4:
      return { op: 'madvise', addr, len, arg: [MADV_DONTNEED, MADV_DONTFORK, MADV_HUGEPAGE][rng.int(0, 2)]! };
    case 5:
      return { op: 'brk', addr: mm.startBrk + rng.int(0, 4) * page };
    default:
      return { op: 'fault', addr: addr + rng.int(0, 4095), write: rng.chance(0.5) };
  }
}

/** Run one call; its result as the syscall returns it (a fault: its outcome). */
export function* runCall(task: MmTask, c: MmCall): MmGen<number | string> {
  switch (c.op) {
    case 'mmap':
      return yield* sysMmap(task, c.addr, c.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    case 'munmap':
      return yield* sysMunmap(task, c.addr, c.len);
    case 'mprotect':
      return yield* sysMprotect(task, c.addr, c.len, c.arg);
    case 'mremap':
      return yield* sysMremap(task, c.addr, c.len, c.len + page, MREMAP_MAYMOVE, 0);
    case 'madvise':
      return yield* sysMadvise(task, c.addr, c.len, c.arg);
    case 'brk':
      return yield* sysBrk(task, c.addr);
    case 'fault':
      return yield* handleMmFault(task, c.addr, c.write ? 'write' : 'read');
  }
}

/** Called after each call with what ran and what it returned. */
export type CallRecorder = (thread: SimThread, call: MmCall, result: number | string) => void;

/** `threads` threads each making `calls` random mm calls in a 32-page window of one mm. */
export function workload(mm: MmStruct, threads: number, calls: number, record?: CallRecorder): Program {
  return (sim) => {
    for (let t = 0; t < threads; t++) {
      sim.spawn(`task${t}`, function* (thread) {
        const task = { thread, mm };
        for (let i = 0; i < calls; i++) {
          const call = randomCall(thread.rng, mm);
          const result = yield* runCall(task, call);
          record?.(thread, call, result);
        }
      });
    }
  };
}
