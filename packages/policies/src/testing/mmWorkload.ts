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
  type MmStruct,
  PROT_READ,
  PROT_WRITE,
  type Program,
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

/** `threads` threads each making `calls` random mm calls in a 32-page window of one mm. */
export function workload(mm: MmStruct, threads: number, calls: number): Program {
  return (sim) => {
    for (let t = 0; t < threads; t++) {
      sim.spawn(`task${t}`, function* (thread) {
        const task = { thread, mm };
        const rng = thread.rng;
        for (let i = 0; i < calls; i++) {
          const addr = base + rng.int(0, 31) * page;
          const len = rng.int(1, 8) * page;
          switch (rng.int(0, 8)) {
            case 0:
              yield* sysMmap(task, addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
              break;
            case 1:
              yield* sysMunmap(task, addr, len);
              break;
            case 2:
              yield* sysMprotect(task, addr, len, rng.chance(0.5) ? PROT_READ : PROT_READ | PROT_WRITE);
              break;
            case 3:
              yield* sysMremap(task, addr, len, len + page, MREMAP_MAYMOVE, 0);
              break;
            case 4:
              yield* sysMadvise(task, addr, len, [MADV_DONTNEED, MADV_DONTFORK, MADV_HUGEPAGE][rng.int(0, 2)]!);
              break;
            case 5:
              yield* sysBrk(task, mm.startBrk + rng.int(0, 4) * page);
              break;
            default:
              yield* handleMmFault(task, addr + rng.int(0, 4095), rng.chance(0.5) ? 'write' : 'read');
          }
        }
      });
    }
  };
}
