// Proves that RaceDetector reports two accesses of a shared location exactly when nothing orders
// them: two unlocked writers race (one report naming both accesses, KCSAN's layout text for
// text), a mutex, an rwsem's write release, a range lock's overlapping requests, a lock hand-off,
// spawn, join, a wait-queue wake-up, an RCU grace period and atomic rmw's each order them; readers
// under a read lock do not order each other's writes; a plain access racing an rmw is a race; the
// lockset in a report says whether a common lock was held; stacks name the thread body's
// functions when asked for; the same seed gives the same reports and a PCT schedule that found a
// race replays to the same report; the bounds hold. Most runs are serial (replay of '0' with
// extendSchedule: T0 to its end, then T1, ...): happens-before finds a race in any schedule that
// executes both accesses, interleaved or not.
import { describe, expect, it } from 'vitest';
import { join, rcuReadLock, rcuReadUnlock, spawn, synchronizeRcu, yieldNow } from '../sim/effect.js';
import { type Program, type RunOptions, type RunResult, runProgram } from '../sim/engine.js';
import { Mutex } from '../sim/mutex.js';
import { RangeLock } from '../sim/rangeLock.js';
import { RwSemaphore } from '../sim/rwSemaphore.js';
import { SharedLocation } from '../sim/sharedLocation.js';
import type { SimThread } from '../sim/thread.js';
import { WaitQueue } from '../sim/waitQueue.js';
import { RaceDetector, type RaceReport } from './races.js';

/** Run `program` watched by `detector`: the schedule prefix given (default T0 first), then each thread to its end in id order. */
function runWatched(
  program: Program,
  detector = new RaceDetector(),
  prefix = '0',
  extra: Partial<RunOptions> = {},
): { result: RunResult; detector: RaceDetector } {
  const result = runProgram(program, { seed: 1, strategy: 'replay', schedule: prefix, extendSchedule: true, observers: [detector], ...extra });
  expect(result.status, result.summary).toBe('ok');
  return { result, detector };
}

function only(detector: RaceDetector): RaceReport {
  expect(detector.reports).toHaveLength(1);
  return detector.reports[0]!;
}

/** Two threads store to `counter` (owner `test`), each holding `lock(i)` when given. */
function twoWriters(lockOf: (i: number) => Mutex | null = () => null): Program {
  return (sim) => {
    const counter = new SharedLocation('counter', 0, 'test');
    for (let i = 0; i < 2; i++) {
      const m = lockOf(i);
      sim.spawn(`writer${i}`, function* () {
        if (m !== null) yield m.lock();
        yield counter.write(i + 1);
        if (m !== null) yield m.unlock();
      });
    }
  };
}

const twoWritersSplat = [
  '==================================================================',
  'BUG: vmalock: data-race on counter (owner test) in T0 writer0 / T1 writer1',
  '',
  'write to counter by T0 writer0 on cpu 0 at step 0, 0 ns:',
  ' no locks held.',
  ' stack not captured (RaceDetector option stacks: true records one)',
  '',
  'racing write to counter by T1 writer1 on cpu 1 at step 2, 0 ns:',
  ' no locks held.',
  ' stack not captured (RaceDetector option stacks: true records one)',
  '',
  'lockset: no lock was held at every access of counter',
  'common locks: none held by both accesses',
  'happens-before: nothing orders the two accesses (no lock hand-off, spawn/join, wake-up, grace period or atomic between them)',
  '==================================================================',
].join('\n');

describe(RaceDetector, () => {
  describe('having two threads write a location without a lock', () => {
    it('should report one race naming both accesses, in the KCSAN layout', () => {
      const { detector } = runWatched(twoWriters());
      const r = only(detector);
      expect(r.location).toBe('counter');
      expect(r.owner).toBe('test');
      expect(r.first).toEqual({ thread: 'T0 writer0', cpu: 0, step: 0, kind: 'write', marked: false, held: [], timeNs: 0, stack: null });
      expect(r.second).toMatchObject({ thread: 'T1 writer1', step: 2, kind: 'write', held: [] });
      expect(r.lockset).toEqual([]);
      expect(r.commonLocks).toEqual([]);
      expect(r.splat).toBe(twoWritersSplat);
      expect(detector.racesFound).toBe(1);
    });

    it('should report it under interleaved schedules too, once per key', () => {
      const detector = new RaceDetector();
      for (let seed = 1; seed <= 20; seed++) runProgram(twoWriters(), { seed, strategy: 'random', observers: [detector] });
      // Either order of the writers: one key (the unordered pair of roles), one report.
      expect(detector.racesFound).toBe(20);
      expect(detector.reports).toHaveLength(1);
    });
  });

  describe('having the accesses marked (READ_ONCE / WRITE_ONCE)', () => {
    /** T0 stores to `ptr`, T1 loads it; each marked or plain as given. */
    const publishing =
      (storeMarked: boolean, loadMarked: boolean): Program =>
      (sim) => {
        const ptr = new SharedLocation('ptr', 0, 'test');
        sim.spawn('publisher', function* () {
          yield storeMarked ? ptr.writeOnce(1) : ptr.write(1);
        });
        sim.spawn('reader', function* () {
          yield loadMarked ? ptr.readOnce() : ptr.read();
        });
      };

    it('should report nothing when both are marked, as KCSAN does not', () => {
      const { detector } = runWatched(publishing(true, true));
      expect(detector.reports).toEqual([]);
      expect(detector.racesFound).toBe(0);
    });

    it('should report a marked load racing a plain store, saying which was marked', () => {
      const { detector } = runWatched(publishing(false, true));
      const r = only(detector);
      expect(r.first).toMatchObject({ kind: 'write', marked: false });
      expect(r.second).toMatchObject({ kind: 'read', marked: true });
      expect(r.splat).toContain('racing read (marked) of ptr by T1 reader');
    });

    it('should report a plain load racing a marked store', () => {
      const { detector } = runWatched(publishing(true, false));
      expect(only(detector).first).toMatchObject({ kind: 'write', marked: true });
    });

    it('should order nothing: a marked store does not publish a plain one before it', () => {
      const detector = new RaceDetector();
      runWatched((sim) => {
        const data = new SharedLocation('data', 0, 'test');
        const flag = new SharedLocation('flag', 0, 'test');
        sim.spawn('producer', function* () {
          yield data.write(7);
          yield flag.writeOnce(1);
        });
        sim.spawn('consumer', function* () {
          if ((yield flag.readOnce()) === 1) yield data.read();
        });
      }, detector);
      expect(detector.reports.map((r) => r.location)).toEqual(['data']);
    });
  });

  describe('having several runs watched by one detector', () => {
    it('should keep each run its own races in runReports, while reports hold each race once', () => {
      const detector = new RaceDetector();
      const counts: number[] = [];
      for (let seed = 1; seed <= 3; seed++) {
        runProgram(twoWriters(), { seed, strategy: 'random', observers: [detector] });
        counts.push(detector.runReports.length);
      }
      expect(counts).toEqual([1, 1, 1]);
      expect(detector.reports).toHaveLength(1);
      const m = new Mutex('m');
      runProgram(
        twoWriters(() => m),
        { seed: 4, strategy: 'random', observers: [detector] },
      );
      expect(detector.runReports).toEqual([]);
    });
  });

  describe('having the writers hold one mutex', () => {
    it('should report nothing, under any schedule', () => {
      const m = new Mutex('counter_lock');
      const detector = new RaceDetector();
      for (let seed = 1; seed <= 20; seed++)
        runProgram(
          twoWriters(() => m),
          { seed, strategy: 'random', observers: [detector] },
        );
      expect(detector.reports).toEqual([]);
      expect(detector.accesses).toBe(40);
    });
  });

  describe('having the writers hold different mutexes', () => {
    it('should report the race with an empty lockset', () => {
      const locks = [new Mutex('lock_A'), new Mutex('lock_B')];
      const r = only(runWatched(twoWriters((i) => locks[i]!)).detector);
      expect(r.first.held).toEqual([{ name: 'lock_A', mode: 2 }]);
      expect(r.second.held).toEqual([{ name: 'lock_B', mode: 2 }]);
      expect(r.lockset).toEqual([]);
      expect(r.splat).toContain(' 1 lock held:\n  #0: lock_A{write}');
      expect(r.splat).toContain('lockset: no lock was held at every access of counter');
    });
  });

  describe('having a lock hand-off (T1 queued on the mutex T0 holds)', () => {
    it('should order T0 critical section before T1 (release -> acquire)', () => {
      const program: Program = (sim) => {
        const m = new Mutex('m');
        const x = new SharedLocation('x', 0, 'test');
        sim.spawn('first', function* () {
          yield m.lock();
          yield yieldNow();
          yield x.write(1);
          yield m.unlock();
        });
        sim.spawn('second', function* () {
          yield m.lock();
          yield x.write(2);
          yield m.unlock();
        });
      };
      // T0 takes m, T1 queues on it, then T0 runs on and hands m to T1.
      const { result, detector } = runWatched(program, new RaceDetector(), '0.1');
      expect(result.locks[0]!.contended).toBe(1);
      expect(detector.reports).toEqual([]);
    });
  });

  describe('having an rwsem', () => {
    /** Readers load `x` under down_read; writers store to it under down_write (or with no lock when `unlocked`). */
    function rwProgram(roles: readonly ('reader' | 'writer' | 'unlocked-writer' | 'read-locked-writer')[]): Program {
      return (sim) => {
        const sem = new RwSemaphore('mm.mmap_sem');
        const x = new SharedLocation('x', 0, 'mm');
        for (const role of roles) {
          sim.spawn(role, function* () {
            if (role === 'reader' || role === 'read-locked-writer') yield sem.downRead();
            if (role === 'writer') yield sem.downWrite();
            if (role === 'reader') yield x.read();
            else yield x.write(1);
            if (role === 'reader' || role === 'read-locked-writer') yield sem.upRead();
            if (role === 'writer') yield sem.upWrite();
          });
        }
      };
    }

    it('should report nothing between readers reading concurrently and writers under the write lock', () => {
      const detector = new RaceDetector();
      for (let seed = 1; seed <= 20; seed++) {
        runProgram(rwProgram(['reader', 'reader', 'writer', 'reader', 'writer']), { seed, strategy: 'random', observers: [detector] });
      }
      expect(detector.reports).toEqual([]);
    });

    it('should order a writer after readers released (read release -> write acquire)', () => {
      // Readers first (serially), then the writer: only the read releases order them.
      expect(runWatched(rwProgram(['reader', 'reader', 'writer'])).detector.reports).toEqual([]);
    });

    it('should report a writer that takes no lock against a reader', () => {
      const r = only(runWatched(rwProgram(['reader', 'unlocked-writer'])).detector);
      expect(r.first).toMatchObject({ thread: 'T0 reader', kind: 'read', held: [{ name: 'mm.mmap_sem', mode: 1 }] });
      expect(r.second).toMatchObject({ thread: 'T1 unlocked-writer', kind: 'write', held: [] });
      expect(r.owner).toBe('mm');
    });

    it('should report writes under the read lock (readers do not order readers), with the common lock in the lockset', () => {
      const r = only(runWatched(rwProgram(['read-locked-writer', 'read-locked-writer'])).detector);
      expect(r.lockset).toEqual(['mm.mmap_sem']);
      expect(r.commonLocks).toEqual(['mm.mmap_sem']);
      expect(r.splat).toContain('lockset: held at every access of x: mm.mmap_sem');
    });
  });

  describe('having a range lock', () => {
    function rangeWriters(ranges: readonly [number, number][]): Program {
      return (sim) => {
        const rl = new RangeLock('mm.range_lock');
        const x = new SharedLocation('x', 0, 'mm');
        ranges.forEach(([start, end], i) => {
          sim.spawn(`writer${i}`, function* () {
            const r = rl.request(start, end, 'write');
            yield r.lock();
            yield x.write(i);
            yield r.unlock();
          });
        });
      };
    }

    it('should order writers of overlapping ranges', () => {
      expect(
        runWatched(
          rangeWriters([
            [0, 10],
            [5, 15],
          ]),
        ).detector.reports,
      ).toEqual([]);
    });

    it('should report writers of disjoint ranges, the range lock in the lockset', () => {
      const r = only(
        runWatched(
          rangeWriters([
            [0, 10],
            [10, 20],
          ]),
        ).detector,
      );
      expect(r.first.held).toEqual([{ name: 'mm.range_lock[0x0-0xa)', mode: 2 }]);
      expect(r.lockset).toEqual(['mm.range_lock (any range)']);
    });

    it('should merge old range records past rangeRecordCountMax, adding order, never races', () => {
      const ranges: [number, number][] = Array.from({ length: 6 }, (_, i) => [i * 10, i * 10 + 10]);
      const d = runWatched(rangeWriters(ranges), new RaceDetector({ rangeRecordCountMax: 2 })).detector;
      expect(d.reports.length).toBeLessThanOrEqual(runWatched(rangeWriters(ranges)).detector.reports.length);
    });
  });

  describe('having spawn and join', () => {
    it('should order the parent before the child it spawns', () => {
      const program: Program = (sim) => {
        const x = new SharedLocation('x', 0, 'test');
        sim.spawn('parent', function* () {
          yield x.write(1);
          const child = (yield spawn('child', function* () {
            yield x.read();
            yield x.write(2);
          })) as SimThread;
          yield join(child);
        });
      };
      expect(runWatched(program).detector.reports).toEqual([]);
      // The child first: the parent blocks in join and is woken by the child's exit.
      expect(runWatched(program, new RaceDetector(), '0.0.1').detector.reports).toEqual([]);
    });

    it('should order the child before what the parent does after join, and only after', () => {
      const program =
        (joinFirst: boolean): Program =>
        (sim) => {
          const x = new SharedLocation('x', 0, 'test');
          sim.spawn('parent', function* () {
            const child = (yield spawn('child', function* () {
              yield x.write(2);
            })) as SimThread;
            if (joinFirst) yield join(child);
            yield x.read();
            if (!joinFirst) yield join(child);
          });
        };
      // Child first, then the parent joins a thread already ended.
      expect(runWatched(program(true), new RaceDetector(), '0.1').detector.reports).toEqual([]);
      // Parent first: it blocks in join until the child's exit wakes it.
      expect(runWatched(program(true)).detector.reports).toEqual([]);
      const r = only(runWatched(program(false), new RaceDetector(), '0.1').detector);
      expect([r.first.thread, r.first.kind, r.second.thread, r.second.kind]).toEqual(['T1 child', 'write', 'T0 parent', 'read']);
    });
  });

  describe('having a wait queue', () => {
    function handOff(useQueue: boolean): Program {
      return (sim) => {
        const wq = new WaitQueue('done_wq');
        const x = new SharedLocation('x', 0, 'test');
        let done = false;
        sim.spawn('waiter', function* () {
          if (useQueue) yield wq.waitEvent(() => done);
          yield x.read();
        });
        sim.spawn('waker', function* () {
          yield x.write(1);
          done = true;
          yield wq.wakeUpAll();
        });
      };
    }

    it('should order the waker before the wakee (wake_up -> wait_event returns)', () => {
      // The waiter sleeps first, then is woken.
      expect(runWatched(handOff(true)).detector.reports).toEqual([]);
    });

    it('should order a waiter whose condition was already true after the wake_up', () => {
      expect(runWatched(handOff(true), new RaceDetector(), '1').detector.reports).toEqual([]);
    });

    it('should report the same accesses without the queue', () => {
      expect(only(runWatched(handOff(false), new RaceDetector(), '1').detector).second.thread).toBe('T0 waiter');
    });
  });

  describe('having RCU', () => {
    function readerAndUpdater(grace: boolean): Program {
      return (sim) => {
        const x = new SharedLocation('obj.field', 0, 'test');
        sim.spawn('reader', function* () {
          yield rcuReadLock();
          yield x.read();
          yield rcuReadUnlock();
        });
        sim.spawn('updater', function* () {
          if (grace) yield synchronizeRcu();
          yield x.write(0xdead); // the free
        });
      };
    }

    it('should order a read-side section before the return of synchronize_rcu', () => {
      // The grace period waits for the reader (inside its section when the updater starts).
      expect(runWatched(readerAndUpdater(true), new RaceDetector(), '0.0.1').detector.reports).toEqual([]);
      // No reader inside a section: synchronize_rcu returns at once.
      expect(runWatched(readerAndUpdater(true)).detector.reports).toEqual([]);
    });

    it('should report the free without a grace period', () => {
      expect(only(runWatched(readerAndUpdater(false)).detector).second.kind).toBe('write');
    });
  });

  describe('having atomic rmw accesses', () => {
    function counter(kinds: readonly ('rmw' | 'write' | 'read')[]): Program {
      return (sim) => {
        const refcount = new SharedLocation('page.refcount', 1, 'test');
        kinds.forEach((kind, i) => {
          sim.spawn(`${kind}${i}`, function* () {
            if (kind === 'rmw') yield refcount.rmw((v) => v + 1);
            else if (kind === 'write') yield refcount.write(0);
            else yield refcount.read();
          });
        });
      };
    }

    it('should never report rmw against rmw', () => {
      const detector = new RaceDetector();
      for (let seed = 1; seed <= 10; seed++) runProgram(counter(['rmw', 'rmw', 'rmw']), { seed, strategy: 'random', observers: [detector] });
      expect(detector.reports).toEqual([]);
    });

    it('should report a plain write racing an rmw, either order', () => {
      const r = only(runWatched(counter(['write', 'rmw'])).detector);
      expect([r.first.kind, r.second.kind]).toEqual(['write', 'rmw']);
      expect(r.splat).toContain('racing atomic rmw of page.refcount by T1 rmw1');
      expect(only(runWatched(counter(['rmw', 'read'])).detector).second.kind).toBe('read');
    });

    it('should order plain accesses through an rmw hand-off (release/acquire on the location)', () => {
      const program: Program = (sim) => {
        const data = new SharedLocation('data', 0, 'test');
        const flag = new SharedLocation('flag', 0, 'test');
        sim.spawn('producer', function* () {
          yield data.write(42);
          yield flag.rmw(() => 1);
        });
        sim.spawn('consumer', function* () {
          if (((yield flag.rmw((v) => v)) as number) === 1) yield data.read();
        });
      };
      expect(runWatched(program).detector.reports).toEqual([]);
    });
  });

  describe('having stacks: true', () => {
    function* store(x: SharedLocation<number>, v: number): Generator<ReturnType<SharedLocation['write']>, void, unknown> {
      yield x.write(v);
    }
    const program: Program = (sim) => {
      const x = new SharedLocation<number>('x', 0, 'test');
      sim.spawn('a', function* racyBodyA() {
        yield* store(x, 1);
      });
      sim.spawn('b', function* racyBodyB() {
        yield x.read();
      });
    };

    it('should name the generator frames of each access, innermost first, and restore SharedLocation after the run', () => {
      const r = only(runWatched(program, new RaceDetector({ stacks: true })).detector);
      expect(r.first.stack![0]).toMatch(/^store \(packages\/core\/src\/check\/races\.test\.ts:\d+:\d+\)$/);
      expect(r.first.stack![1]).toMatch(/^racyBodyA \(packages\/core\/src\/check\/races\.test\.ts:/);
      expect(r.first.stack).toHaveLength(2);
      expect(r.second.stack![0]).toMatch(/^racyBodyB /);
      expect(r.splat).toContain('BUG: vmalock: data-race on x (owner test) in store / racyBodyB');
      expect(r.splat).toMatch(/ stack:\n {2}store \(packages\/core\/src\/check\/races\.test\.ts:\d+:\d+\)\n {2}racyBodyA /);
      expect(SharedLocation.onAccessBuilt).toBeNull();
    });

    it('should deduplicate by sites: two threads with one body are one race', () => {
      const detector = new RaceDetector({ stacks: true });
      runWatched(twoWriters(), detector);
      runWatched(twoWriters(), detector, '1');
      expect(detector.racesFound).toBe(2);
      expect(detector.reports).toHaveLength(1);
    });
  });

  describe('having one seed', () => {
    it('should give the same reports run after run', () => {
      const program: Program = (sim) => {
        const locs = [new SharedLocation('a', 0, 's1'), new SharedLocation('b', 0, 's2')];
        const m = new Mutex('m');
        for (let i = 0; i < 4; i++) {
          sim.spawn(`worker${i}`, function* (self) {
            for (let k = 0; k < 5; k++) {
              const loc = locs[self.rng.index(2)]!;
              const locked = self.rng.chance(0.5);
              if (locked) yield m.lock();
              if (self.rng.chance(0.5)) yield loc.write(k);
              else yield loc.read();
              if (locked) yield m.unlock();
            }
          });
        }
      };
      const splats = () => {
        const d = new RaceDetector();
        for (let seed = 1; seed <= 5; seed++) runProgram(program, { seed, strategy: 'random', observers: [d] });
        return d.reports.map((r) => r.splat);
      };
      const first = splats();
      expect(first.length).toBeGreaterThan(0);
      expect(splats()).toEqual(first);
    });
  });

  describe('having a race that only some schedules execute', () => {
    // T1 checks `x` under the lock and, when T0 has not initialised it yet, initialises it
    // after dropping the lock: the store races T0's only when T1 got the lock first.
    const lazyInit: Program = (sim) => {
      const m = new Mutex('init_lock');
      const x = new SharedLocation('x', 0, 'test');
      sim.spawn('init', function* () {
        yield m.lock();
        yield x.write(1);
        yield m.unlock();
      });
      sim.spawn('lazy', function* () {
        yield m.lock();
        const seen = (yield x.read()) as number;
        yield m.unlock();
        if (seen === 0) yield x.write(2);
      });
    };

    it('should find it in some pct seeds and not others, and report identically on replay', () => {
      const found: number[] = [];
      for (let seed = 1; seed <= 40; seed++) {
        const d = new RaceDetector();
        const r = runProgram(lazyInit, { seed, strategy: 'pct', pctDepth: 2, pctSteps: 10, observers: [d] });
        if (d.reports.length === 0) continue;
        found.push(seed);
        const replay = new RaceDetector();
        runProgram(lazyInit, { seed, strategy: 'replay', schedule: r.schedule, observers: [replay] });
        expect(
          replay.reports.map((x) => x.splat),
          `seed=${seed} schedule=${r.schedule}`,
        ).toEqual(d.reports.map((x) => x.splat));
      }
      expect(found.length).toBeGreaterThan(0);
      expect(found.length).toBeLessThan(40);
    });
  });

  describe('having bounds', () => {
    it('should keep at most reportCountMax reports and count the rest', () => {
      const program: Program = (sim) => {
        const locs = ['a', 'b', 'c'].map((n) => new SharedLocation(n, 0, 'test'));
        for (let i = 0; i < 2; i++) {
          sim.spawn(`w${i}`, function* () {
            for (const l of locs) yield l.write(i);
          });
        }
      };
      const d = runWatched(program, new RaceDetector({ reportCountMax: 1 })).detector;
      expect(d.reports.map((r) => r.location)).toEqual(['a']);
      expect(d.reportsDropped).toBe(2);
    });

    it('should keep at most readersPerLocationMax unordered reads per location', () => {
      const program: Program = (sim) => {
        const x = new SharedLocation('x', 0, 'test');
        for (let i = 0; i < 5; i++) {
          sim.spawn(`reader${i}`, function* () {
            yield x.read();
          });
        }
        sim.spawn('writer', function* () {
          yield x.write(1);
        });
      };
      const d = runWatched(program, new RaceDetector({ readersPerLocationMax: 2 })).detector;
      expect(d.readsEvicted).toBe(3);
      // Only the two newest readers are still known to the writer (one role: one report).
      expect(d.racesFound).toBe(2);
    });

    it('should fail the run past locationCountMax and reject bad bounds', () => {
      const r = runProgram(twoWriters(), { seed: 1, strategy: 'random', observers: [new RaceDetector({ locationCountMax: 1 })] });
      expect(r.status).toBe('ok');
      const many: Program = (sim) => {
        sim.spawn('t', function* () {
          yield new SharedLocation('a', 0).write(1);
          yield new SharedLocation('b', 0).write(1);
        });
      };
      const failed = runProgram(many, { seed: 1, strategy: 'random', observers: [new RaceDetector({ locationCountMax: 1 })] });
      expect(failed.status).toBe('error');
      expect(failed.failure!.message).toContain('locationCountMax');
      expect(() => new RaceDetector({ reportCountMax: 0 })).toThrow(RangeError);
    });
  });
});
