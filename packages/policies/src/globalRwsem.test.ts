// Proves the mm under global-rwsem is safe under concurrency: threads of one process run random
// mmap/munmap/mprotect/mremap/madvise/brk calls and page faults in a small window under the
// `random` and `pct` strategies (200 seeds each); no run deadlocks or fails an assertion, and
// every mm invariant holds at the end. A policy that takes mmap_sem only for read where it must
// write is caught by the operations' held-lock assertions. A failure prints seed and schedule.
import {
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_MAYMOVE,
  type MmGen,
  type MmLockGuard,
  MmStruct,
  PROT_READ,
  PROT_WRITE,
  type Program,
  type SimThread,
  type StrategyName,
  checkMmInvariants,
  handleMmFault,
  runProgram,
  sysBrk,
  sysMadvise,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { GlobalRwsemPolicy } from './globalRwsem.js';

const base = 0x40000000;
const page = 0x1000;

/** `threads` threads each making `calls` random mm calls in a 32-page window of one mm. */
function workload(mm: MmStruct, threads: number, calls: number): Program {
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

describe('global-rwsem', () => {
  describe.each<StrategyName>(['random', 'pct'])('having 3 threads of random mm calls (%s, 200 seeds)', (strategy) => {
    it('should never deadlock, fail an assertion or break an mm invariant', () => {
      let schedules = 0;
      for (let seed = 0; seed < 200; seed++) {
        const mm = new MmStruct(1, new GlobalRwsemPolicy());
        const r = runProgram(workload(mm, 3, 12), { seed, strategy, pctDepth: 3, pctSteps: 400 });
        expect(r.status, `${r.summary}\nreplay: seed=${seed} strategy=replay schedule=${r.schedule}`).toBe('ok');
        expect(() => checkMmInvariants(mm), `seed=${seed} strategy=${strategy}`).not.toThrow();
        expect(mm.assertionCounts.mmapAssertWriteLocked ?? 0).toBeGreaterThan(0);
        schedules++;
      }
      console.log(`global-rwsem: ${schedules} ${strategy} schedules, all ok`);
    });
  });

  describe('having a broken policy that modifies under mmap_sem read', () => {
    class ReadOnlyModifyPolicy extends GlobalRwsemPolicy {
      override readonly name = 'broken';
      override *lockForModify(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<MmLockGuard> {
        return yield* this.lockForRead(mm, thread, start, end);
      }
    }

    it('should fail the run with mmap_assert_write_locked naming the thread', () => {
      const mm = new MmStruct(1, new ReadOnlyModifyPolicy());
      const r = runProgram(
        (sim) => {
          sim.spawn('unmapper', function* (thread) {
            yield* sysMunmap({ thread, mm }, base, page);
          });
        },
        { seed: 1, strategy: 'random' },
      );
      expect(r.status).toBe('error');
      expect(r.failure?.message).toMatch(/mmap_assert_write_locked\(mm1\.mmap_sem\) failed in T0 unmapper \(holds it for read only\)/);
    });
  });
});
