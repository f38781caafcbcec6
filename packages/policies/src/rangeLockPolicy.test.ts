// Proves the range-lock policy (Kara 2013, Bueso 2017-2018) in its two modes, `full` (every
// request over the whole address space, the 2018 conversion) and `fine` (requests over the VMAs
// an operation touches):
// 1. sequential programs (every syscall, faults with stack growth, gup, fork and exit) give the
//    same results, /proc/pid/maps text, page tables and fault counts as global-rwsem;
// 2. explicit schedules show what each mode serialises: full mode holds a fault back behind an
//    munmap elsewhere exactly as mmap_sem does; fine mode lets a fault on a VMA run while an
//    mprotect of a distant VMA holds its write range but holds back a fault on that VMA's
//    neighbour (a merge may change it); fairness is FIFO per range (a waiting writer holds back a
//    later overlapping reader, not a disjoint one);
// 3. random and pct schedules (200 seeds each, 3-4 threads of the shared mm workload) never
//    deadlock, never fail a held-lock assertion and keep every mm invariant; full mode never
//    grants a write request beside another, fine mode does run modifications in parallel.
// Every concurrency test names its seed and schedule; a failure prints the line that replays it.
import {
  LockMode,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_GROWSDOWN,
  MAP_PRIVATE,
  MAP_SHARED,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MmFile,
  type MmGen,
  MmStruct,
  type MmTask,
  PROT_READ,
  PROT_WRITE,
  type Program,
  STACK_GUARD_GAP,
  type RunResult,
  type StrategyName,
  TASK_SIZE,
  VM_WRITE,
  type VmOperations,
  checkMmInvariants,
  dupMmap,
  exitMmap,
  getUserPages,
  handleMmFault,
  hex,
  renderMaps,
  runProgram,
  sysBrk,
  sysMadvise,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
  yieldNow,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { GlobalRwsemPolicy } from './globalRwsem.js';
import { at, pages, run } from './mm/mmTestKit.js';
import { type RangeLockRanges, RangeLockPolicy, rangeLockOf, rangeLockStatsOf } from './rangeLockPolicy.js';
import { workload } from './testing/mmWorkload.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const FD = 3;
const FD_SLOW = 4;
const modes: RangeLockRanges[] = ['full', 'fine'];

/** The policies the schedules compare: mmap_sem, and the range lock in each mode. */
const policies = [
  { label: 'global-rwsem', make: () => new GlobalRwsemPolicy() },
  { label: 'range-lock full', make: () => new RangeLockPolicy() },
  { label: 'range-lock fine', make: () => new RangeLockPolicy({ ranges: 'fine' }) },
] as const;

/** vm_operations of a slow filesystem: its fault sleeps over two scheduling points. */
const slowOps: VmOperations = {
  name: 'slow-fs',
  *fault(vmf) {
    yield yieldNow();
    yield yieldNow();
    return { kind: 'page', page: vmf.pgoff };
  },
};

function newMm(policy: GlobalRwsemPolicy | RangeLockPolicy): MmStruct {
  const mm = new MmStruct(1, policy);
  mm.files.set(FD, new MmFile('/data/rw', 11, 8, 1, true, true));
  mm.files.set(FD_SLOW, new MmFile('/data/slow', 12, 8, 1, true, true, slowOps));
  return mm;
}

function replay(program: Program, schedule: string): RunResult {
  return runProgram(program, { seed: 1, strategy: 'replay', schedule, extendSchedule: true });
}

function replayLine(r: RunResult, seed: number, strategy: string): string {
  return `${r.summary}\nreplay: seed=${seed} strategy=replay schedule=${r.schedule} (was ${strategy})`;
}

/**
 * A sequential program touching every operation; returns each call's result. Addresses are
 * columns of 4 KiB pages from 0x10000000; the stack sits at column 0x200.
 */
function sequentialProgram(mm: MmStruct): unknown[] {
  const out: unknown[] = [];
  const call = <T>(body: (task: MmTask) => MmGen<T>): void => {
    out.push(run(mm, body));
  };
  call((t) => sysMmap(t, at(0), pages(8), RW, ANON | MAP_FIXED, -1, 0));
  call((t) => sysMmap(t, 0, pages(4), RW, ANON, -1, 0));
  call((t) => sysMmap(t, at(16), pages(4), RW, MAP_PRIVATE | MAP_FIXED, FD, 0));
  call((t) => sysMmap(t, at(24), pages(2), RW, MAP_SHARED | MAP_FIXED, FD, pages(8)));
  call((t) => handleMmFault(t, at(1) + 5, 'write'));
  call((t) => handleMmFault(t, at(3), 'read'));
  call((t) => handleMmFault(t, at(17), 'write'));
  call((t) => handleMmFault(t, at(24), 'write'));
  call((t) => handleMmFault(t, at(12), 'read')); // a hole: SEGV_MAPERR
  call((t) => sysMprotect(t, at(2), pages(2), PROT_READ));
  call((t) => handleMmFault(t, at(2), 'write')); // SEGV_ACCERR
  call((t) => sysMprotect(t, at(2), pages(2), RW));
  call((t) => sysMadvise(t, at(0), pages(2), MADV_DONTNEED));
  call((t) => sysMadvise(t, at(4), pages(2), MADV_HUGEPAGE));
  call((t) => getUserPages(t, at(0), 6, true));
  call((t) => sysMremap(t, at(16), pages(4), pages(6), MREMAP_MAYMOVE, 0)); // grows in place
  call((t) => sysMremap(t, at(6), pages(2), pages(20), MREMAP_MAYMOVE, 0)); // must move
  call((t) => sysMremap(t, at(16), pages(2), pages(2), MREMAP_MAYMOVE | MREMAP_FIXED, at(64)));
  call((t) => sysMremap(t, at(64), pages(2), pages(2), MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0));
  call((t) => sysMremap(t, at(18), pages(4), pages(1), 0, 0)); // shrinks
  call((t) => sysMunmap(t, at(17), pages(8)));
  call((t) => sysMmap(t, at(0x200), pages(2), RW, ANON | MAP_FIXED | MAP_GROWSDOWN, -1, 0));
  call((t) => handleMmFault(t, at(0x1fd), 'write')); // grows the stack by three pages
  call((t) => handleMmFault(t, at(70), 'read')); // far below, within the guard gap of what is there: refused
  call((t) => sysBrk(t, mm.startBrk + pages(3)));
  call((t) => handleMmFault(t, mm.startBrk + pages(1), 'write'));
  call((t) => sysBrk(t, mm.startBrk + pages(1)));
  call((t) => sysMmap(t, at(64), pages(4), PROT_READ, ANON | MAP_FIXED, -1, 0)); // replaces
  let child: MmStruct | null = null;
  call(function* (t) {
    child = yield* dupMmap(t, 2, mm.policy instanceof RangeLockPolicy ? new RangeLockPolicy({ ranges: mm.policy.ranges }) : new GlobalRwsemPolicy());
    return child.mapCount;
  });
  out.push(renderMaps(child!));
  out.push(
    run(child!, function* (t) {
      yield* exitMmap(t);
      return t.mm.mapCount;
    }),
  );
  return out;
}

/** What a sequential run leaves behind: maps, page tables and counters. */
function outcome(mm: MmStruct): unknown {
  const ptes = [...mm.pageTables.walk(0, TASK_SIZE)].map(({ addr, view }) => [addr, view.writable, view.huge]);
  return { maps: renderMaps(mm), ptes, faults: mm.faultCounts, mapCount: mm.mapCount, totalVm: mm.totalVm };
}

describe('RangeLockPolicy', () => {
  describe.each(modes)('having a sequential program (%s)', (ranges) => {
    it('should give the same results, maps text, page tables and counters as global-rwsem', () => {
      const reference = newMm(new GlobalRwsemPolicy());
      const expected = sequentialProgram(reference);
      const mm = newMm(new RangeLockPolicy({ ranges }));
      expect(sequentialProgram(mm)).toEqual(expected);
      expect(outcome(mm)).toEqual(outcome(reference));
      expect(reference.faultCounts.stackGrowth).toBe(1);
      expect(expected.filter((x) => typeof x === 'number' && x < 0)).toEqual([]);
      expect(mm.assertionCounts.rangeAssertCovered ?? 0).toBeGreaterThan(0);
      expect(mm.assertionCounts.vmaAssertLocked ?? 0).toBeGreaterThan(0);
      expect(rangeLockOf(mm).granted()).toEqual([]);
    });

    it('should give the same results as global-rwsem for one thread of the random workload (seeds 0..19)', () => {
      for (let seed = 0; seed < 20; seed++) {
        const ends = [new GlobalRwsemPolicy(), new RangeLockPolicy({ ranges })].map((policy) => {
          const mm = newMm(policy);
          const r = runProgram(workload(mm, 1, 60), { seed, strategy: 'random' });
          expect(r.status, replayLine(r, seed, 'random')).toBe('ok');
          return outcome(mm);
        });
        expect(ends[1], `seed=${seed}`).toEqual(ends[0]);
      }
    });
  });

  // 0123456789a
  // AA  CC  BB     A, C, B: private anonymous, two pages each; C is B's neighbour below.
  const layout = (mm: MmStruct): void => {
    for (const col of [0, 4, 8]) run(mm, (t) => sysMmap(t, at(col), pages(2), RW, ANON | MAP_FIXED, -1, 0));
  };

  describe.each(policies)('having an munmap of B and a fault on A, far apart ($label)', ({ label, make }) => {
    it('should run the fault behind the munmap unless the ranges are fine (seed=1, schedule 0.1)', () => {
      const mm = newMm(make());
      layout(mm);
      let bMappedWhenFaultDone: boolean | null = null;
      const r = replay((sim) => {
        sim.spawn('munmap B', function* (thread) {
          yield* sysMunmap({ thread, mm }, at(8), pages(2));
        });
        sim.spawn('fault A', function* (thread) {
          expect(yield* handleMmFault({ thread, mm }, at(0), 'write')).toBe('ok');
          bMappedWhenFaultDone = mm.vmaLookup(at(8)) !== null;
        });
      }, '0.1');
      // The munmap takes its lock, then the fault asks for its own: it waits for the munmap's
      // downgrade (mmap_sem, full range) or runs at once (fine: disjoint ranges).
      expect(r.status, replayLine(r, 1, 'replay')).toBe('ok');
      expect(bMappedWhenFaultDone).toBe(label === 'range-lock fine');
      checkMmInvariants(mm);
    });
  });

  describe.each(policies)('having an mprotect of B and a fault elsewhere ($label)', ({ label, make }) => {
    /** Run mprotect(B, PROT_READ) and a write fault at column `col` under schedule 0.1; the completion order. */
    const race = (col: number): { r: RunResult; done: string[] } => {
      const mm = newMm(make());
      layout(mm);
      const done: string[] = [];
      const bFlags = (): string => ((mm.vmaLookup(at(8))!.flags & VM_WRITE) !== 0 ? 'B rw' : 'B ro');
      const r = replay((sim) => {
        sim.spawn('mprotect B', function* (thread) {
          expect(yield* sysMprotect({ thread, mm }, at(8), pages(2), PROT_READ)).toBe(0);
          done.push('mprotect');
        });
        sim.spawn('fault', function* (thread) {
          expect(yield* handleMmFault({ thread, mm }, at(col), 'write')).toBe('ok');
          done.push(`fault (${bFlags()})`);
        });
      }, '0.1');
      checkMmInvariants(mm);
      return { r, done };
    };

    // mprotect takes its write range, then the fault asks for its read range. Past the schedule
    // the fault runs on if it got its range, else the mprotect runs first.
    it('should run a fault on A during the mprotect only when the ranges are fine (seed=1, schedule 0.1)', () => {
      const { r, done } = race(0);
      expect(r.status, replayLine(r, 1, 'replay')).toBe('ok');
      expect(done).toEqual(label === 'range-lock fine' ? ['fault (B rw)', 'mprotect'] : ['mprotect', 'fault (B ro)']);
    });

    it("should hold a fault on B's neighbour C back behind the mprotect (a merge may change C) (seed=1, schedule 0.1)", () => {
      const { r, done } = race(4);
      expect(r.status, replayLine(r, 1, 'replay')).toBe('ok');
      expect(done).toEqual(['mprotect', 'fault (B ro)']);
    });
  });

  describe('having a writer waiting behind a slow fault (fine)', () => {
    it('should hold back a later overlapping fault, not a disjoint one (seed=1, schedule 0.1.2.3)', () => {
      const mm = newMm(new RangeLockPolicy({ ranges: 'fine' }));
      // 0123456789a
      // AA  CC  SS     S: a private mapping of a file whose fault sleeps.
      for (const col of [0, 4]) run(mm, (t) => sysMmap(t, at(col), pages(2), RW, ANON | MAP_FIXED, -1, 0));
      run(mm, (t) => sysMmap(t, at(8), pages(2), RW, MAP_PRIVATE | MAP_FIXED, FD_SLOW, 0));
      const done: string[] = [];
      let waitingWhenADone = '';
      const r = replay((sim) => {
        sim.spawn('slow fault S', function* (thread) {
          done.push(`S ${yield* handleMmFault({ thread, mm }, at(8), 'read')}`);
        });
        sim.spawn('mprotect S', function* (thread) {
          expect(yield* sysMprotect({ thread, mm }, at(8), pages(2), PROT_READ)).toBe(0);
          done.push('mprotect');
        });
        sim.spawn('fault S', function* (thread) {
          done.push(`S' ${yield* handleMmFault({ thread, mm }, at(9), 'write')}`);
        });
        sim.spawn('fault A', function* (thread) {
          done.push(`A ${yield* handleMmFault({ thread, mm }, at(0), 'write')}`);
          waitingWhenADone = rangeLockOf(mm)
            .waiting()
            .map((q) => `${q.mode === LockMode.write ? 'write' : 'read'} ${q.holders().length}`)
            .join(', ');
        });
      }, '0.1.2.3');
      // The slow fault holds S for read; mprotect waits for it; the second fault on S only
      // reads, like the first, but queues behind the waiting writer; A's fault runs at once. The
      // second fault on S then runs after the mprotect and finds S read-only.
      expect(r.status, replayLine(r, 1, 'replay')).toBe('ok');
      expect(done).toEqual(['A ok', 'S ok', 'mprotect', "S' SEGV_ACCERR"]);
      expect(waitingWhenADone).toBe('write 0, read 0');
      checkMmInvariants(mm);
    });
  });

  describe('downgrade (munmap, full)', () => {
    it("should turn the munmap's write range into a read range that lets a waiting fault in (seed=1, schedule 0.1)", () => {
      const mm = newMm(new RangeLockPolicy());
      const ops: VmOperations & { closedWith: string[] } = {
        name: 'close-probe',
        closedWith: [],
        *close(this: { closedWith: string[] }) {
          // The zap and close run after the downgrade: the fault may be holding the range too.
          this.closedWith.push(
            rangeLockOf(mm)
              .granted()
              .map((q) => (q.mode === LockMode.write ? 'write' : 'read'))
              .join(', '),
          );
          yield yieldNow();
        },
      };
      mm.files.set(9, new MmFile('/dev/probe', 13, 8, 1, true, true, ops));
      run(mm, (t) => sysMmap(t, at(0), pages(2), RW, ANON | MAP_FIXED, -1, 0));
      run(mm, (t) => sysMmap(t, at(8), pages(2), RW, MAP_SHARED | MAP_FIXED, 9, 0));
      const r = replay((sim) => {
        sim.spawn('munmap', function* (thread) {
          yield* sysMunmap({ thread, mm }, at(8), pages(2));
        });
        sim.spawn('fault', function* (thread) {
          yield* handleMmFault({ thread, mm }, at(0), 'write');
        });
      }, '0.1');
      expect(r.status, replayLine(r, 1, 'replay')).toBe('ok');
      expect(ops.closedWith).toEqual(['read, read']);
    });
  });

  describe('stack growth (fine)', () => {
    it('should grow the stack under a read range reaching down over the guard gap, plus page_table_lock (seed=1)', () => {
      const mm = newMm(new RangeLockPolicy({ ranges: 'fine' }));
      // A two-page stack at column 0x200, nothing below it; a fault three pages below grows it.
      run(mm, (t) => sysMmap(t, at(0x200), pages(2), RW, ANON | MAP_FIXED | MAP_GROWSDOWN, -1, 0));
      const heldAtGrowth: string[] = [];
      const observer = {
        onLockAcquired(_thread: unknown, lock: { name: string }): void {
          if (lock !== mm.pageTables.pageTableLock) return;
          for (const q of rangeLockOf(mm).granted()) heldAtGrowth.push(`${q.mode === LockMode.write ? 'write' : 'read'} ${hex(q.start)}-${hex(q.end)}`);
        },
      };
      const r = runProgram(
        (sim) => {
          sim.spawn('fault', function* (thread) {
            expect(yield* handleMmFault({ thread, mm }, at(0x1fd), 'write')).toBe('ok');
          });
        },
        { seed: 1, strategy: 'random', observers: [observer] },
      );
      expect(r.status, replayLine(r, 1, 'random')).toBe('ok');
      expect(mm.vmaLookup(at(0x1fd))?.start).toBe(at(0x1fd));
      expect(heldAtGrowth).toEqual([`read ${hex(at(0x1fd) - STACK_GUARD_GAP)}-${hex(at(0x202))}`]);
    });
  });

  describe.each(modes)('having random mm calls from 3-4 threads (%s)', (ranges) => {
    describe.each<StrategyName>(['random', 'pct'])('under %s schedules (200 seeds)', (strategy) => {
      it('should never deadlock, fail an assertion or break an mm invariant', () => {
        let writesAtOnceMax = 0;
        let writeBesideOther = 0;
        const totals = { requests: 0, retries: 0, targetTrylocks: 0, targetHulls: 0, targetRestarts: 0 };
        for (let seed = 0; seed < 200; seed++) {
          const mm = new MmStruct(1, new RangeLockPolicy({ ranges }));
          const observer = {
            onLockAcquired(): void {
              const granted = rangeLockOf(mm).granted();
              const writes = granted.filter((q) => q.mode === LockMode.write).length;
              writesAtOnceMax = Math.max(writesAtOnceMax, writes);
              if (writes > 0 && granted.length > 1 && new Set(granted.map((q) => q.owner)).size > 1) writeBesideOther++;
            },
          };
          const r = runProgram(workload(mm, 3 + (seed % 2), 12), { seed, strategy, pctDepth: 3, pctSteps: 400, observers: [observer] });
          expect(r.status, replayLine(r, seed, strategy)).toBe('ok');
          expect(() => checkMmInvariants(mm), `seed=${seed} strategy=${strategy}`).not.toThrow();
          expect(rangeLockOf(mm).granted(), `seed=${seed}: requests left granted`).toEqual([]);
          expect(mm.assertionCounts.rangeAssertCovered ?? 0).toBeGreaterThan(0);
          for (const [k, v] of Object.entries(rangeLockStatsOf(mm))) totals[k as keyof typeof totals] += v;
        }
        if (ranges === 'full') expect(writeBesideOther).toBe(0);
        else expect(writesAtOnceMax).toBeGreaterThan(1);
        console.log(`range-lock ${ranges}: 200 ${strategy} schedules ok; at most ${writesAtOnceMax} write ranges at once; ${JSON.stringify(totals)}`);
      });
    });
  });

  describe('assertModify', () => {
    it('should name the range and the policy when the guard holds only a read range', () => {
      const mm = newMm(new RangeLockPolicy({ ranges: 'fine' }));
      run(mm, (t) => sysMmap(t, at(0), pages(2), RW, ANON | MAP_FIXED, -1, 0));
      const r = runProgram(
        (sim) => {
          sim.spawn('reader', function* (thread) {
            const guard = yield* mm.policy.lockForRead(mm, thread, at(0), at(1));
            try {
              mm.policy.assertModify(guard, at(0), at(1));
            } finally {
              yield* mm.policy.unlock(guard);
            }
          });
        },
        { seed: 1, strategy: 'random' },
      );
      expect(r.status).toBe('error');
      expect(r.failure?.message).toMatch(
        /range-lock \(fine\): T0 reader holds no write range over \[0x10000000, 0x10001000\) \(holds read \[0x10000000, 0x10002000\)\)/,
      );
    });
  });
});
