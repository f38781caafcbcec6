// Proves the mm under global-rwsem is safe under concurrency: threads of one process run random
// mmap/munmap/mprotect/mremap/madvise/brk calls and page faults in a small window under the
// `random` and `pct` strategies (200 seeds each); no run deadlocks or fails an assertion, and
// every mm invariant holds at the end. A policy that takes mmap_sem only for read where it must
// write is caught by the operations' held-lock assertions. A failure prints seed and schedule.
import { type MmGen, type MmLockGuard, MmStruct, type SimThread, type StrategyName, checkMmInvariants, runProgram, sysMunmap } from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { GlobalRwsemPolicy } from './globalRwsem.js';
import { base, page, workload } from './testing/mmWorkload.js';

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
