// Proves that Lockdep finds lock-order bugs from the orders a run shows, not from the schedule
// that happened: an ABBA inversion run without deadlocking (T0 fully, then T1) gives exactly one
// circular report whose splat is the kernel's layout, text for text; a 3-lock cycle across three
// threads is found with its 3-entry chain; consistent orders give nothing over many random
// schedules; two locks of one class nest into a recursive report (two read holds do not);
// dependencies survive a downgrade_write; trylocks add none but count as held; the graph
// accumulates across runs sharing one instance and reports once; the same runs give the same
// splats; the bounds hold. Each run gives its seed and schedule (replay with extendSchedule runs
// the prefix, then each thread to its end in id order).
import { describe, expect, it } from 'vitest';
import { LockMode } from '../sim/effect.js';
import { type Program, type RunOptions, runProgram } from '../sim/engine.js';
import { Mutex } from '../sim/mutex.js';
import { RwSemaphore } from '../sim/rwSemaphore.js';
import { abba, lockOrders } from '../sim/testPrograms.js';
import { Lockdep, type LockdepReport } from './lockdep.js';

/** Run `program` watched by `lockdep`, T0 to its end, then T1, and so on. */
function runInOrder(program: Program, lockdep: Lockdep, seed = 1): ReturnType<typeof runProgram> {
  return runProgram(program, { seed, strategy: 'replay', schedule: '0', extendSchedule: true, observers: [lockdep] });
}

const abbaSplat = [
  '======================================================',
  'WARNING: possible circular locking dependency detected',
  '------------------------------------------------------',
  'T1 ba is trying to acquire lock:',
  'lock_A (lock_A){write}, at: step 6',
  '',
  'but task is already holding lock:',
  'lock_B (lock_B){write}, at: step 5',
  '',
  'which lock already depends on the new lock.',
  '',
  '',
  'the existing dependency chain (in reverse order) is:',
  '',
  '-> #1 (lock_B):',
  '       T0 ab requested lock_B{write} at step 1, holding:',
  '        #0: lock_A (lock_A){write}, at: step 0',
  '',
  '-> #0 (lock_A):',
  '       T1 ba requested lock_A{write} at step 6, holding:',
  '        #0: lock_B (lock_B){write}, at: step 5',
  '',
  'other info that might help us debug this:',
  '',
  ' Possible unsafe locking scenario:',
  '',
  '       CPU0                    CPU1',
  '       ----                    ----',
  '  lock(lock_B);',
  '                               lock(lock_A);',
  '                               lock(lock_B);',
  '  lock(lock_A);',
  '',
  ' *** DEADLOCK ***',
  '',
  '1 lock held by T1 ba:',
  ' #0: lock_B (lock_B){write}, at: step 5',
].join('\n');

function only(reports: readonly LockdepReport[]): LockdepReport {
  expect(reports).toHaveLength(1);
  return reports[0]!;
}

describe('Lockdep', () => {
  describe('having an ABBA program run without deadlock (seed=1, schedule 0*5 then T1)', () => {
    it('should report one circular dependency naming both classes, in the kernel splat layout', () => {
      const lockdep = new Lockdep();
      const r = runProgram(abba, { seed: 1, strategy: 'replay', schedule: '0*5', extendSchedule: true, observers: [lockdep] });
      // T0: lock A, lock B, unlock B, unlock A, return (steps 0-4); T1 the same from step 5.
      expect(r.status).toBe('ok');
      expect(r.steps).toBe(10);
      expect(r.schedule).toBe('0*5.1*5');
      const report = only(lockdep.reports);
      expect(report).toMatchObject({ kind: 'circular', classes: ['lock_A', 'lock_B'], thread: 'T1 ba', step: 6 });
      expect(report.holding).toEqual({ name: 'lock_B', lockClass: 'lock_B', mode: LockMode.write, step: 5 });
      expect(report.chain.map((e) => [e.depth, e.lockClass, e.acquisition.thread, e.acquisition.step])).toEqual([
        [1, 'lock_B', 'T0 ab', 1],
        [0, 'lock_A', 'T1 ba', 6],
      ]);
      expect(report.splat).toBe(abbaSplat);
      expect(lockdep.classCount).toBe(2);
      expect(lockdep.dependencyCount).toBe(2);
    });

    it('should report it before the deadlock when the schedule does deadlock (seed=1, schedule 0.1.0.1)', () => {
      const lockdep = new Lockdep();
      const r = runProgram(abba, { seed: 1, strategy: 'replay', schedule: '0.1.0.1', observers: [lockdep] });
      expect(r.status).toBe('deadlock');
      expect(only(lockdep.reports)).toMatchObject({ kind: 'circular', classes: ['lock_A', 'lock_B'], thread: 'T1 ba', step: 3 });
    });
  });

  describe('having a 3-lock cycle across three threads (A->B, B->C, C->A; seed=1, in order)', () => {
    it('should report the cycle with a 3-entry chain and the chain line', () => {
      const lockdep = new Lockdep();
      const r = runInOrder(lockOrders(['lock_A', 'lock_B'], ['lock_B', 'lock_C'], ['lock_C', 'lock_A']), lockdep);
      expect(r.status).toBe('ok');
      const report = only(lockdep.reports);
      expect(report).toMatchObject({ kind: 'circular', classes: ['lock_A', 'lock_B', 'lock_C'], thread: 'T2 ca', step: 11 });
      expect(report.chain.map((e) => [e.depth, e.lockClass, e.acquisition.thread, e.acquisition.step])).toEqual([
        [2, 'lock_C', 'T1 bc', 6],
        [1, 'lock_B', 'T0 ab', 1],
        [0, 'lock_A', 'T2 ca', 11],
      ]);
      expect(report.splat).toContain(
        [
          'Chain exists of:',
          '  lock_A --> lock_B --> lock_C',
          '',
          ' Possible unsafe locking scenario:',
          '',
          '       CPU0                    CPU1',
          '       ----                    ----',
          '  lock(lock_C);',
          '                               lock(lock_B);',
          '                               lock(lock_C);',
          '  lock(lock_A);',
          '',
          ' *** DEADLOCK ***',
        ].join('\n'),
      );
    });
  });

  describe('having a consistent order (A then B, 3 threads)', () => {
    it('should report nothing over 50 random schedules sharing one graph (seeds 0..49)', () => {
      const lockdep = new Lockdep();
      const program = lockOrders(['lock_A', 'lock_B'], ['lock_A', 'lock_B'], ['lock_A', 'lock_B']);
      for (let seed = 0; seed < 50; seed++) {
        const r = runProgram(program, { seed, strategy: 'random', observers: [lockdep] });
        expect(r.status, r.summary).toBe('ok');
      }
      expect(lockdep.reports).toEqual([]);
      expect(lockdep.classes()).toEqual(['lock_A', 'lock_B']);
      expect(lockdep.dependencies().map((d) => `${d.from}->${d.to}`)).toEqual(['lock_A->lock_B']);
    });
  });

  describe('having two locks of one class nested (mm0.mmap_sem, mm1.mmap_sem)', () => {
    const nested =
      (first: number, second: number): Program =>
      (sim) => {
        const mm0 = new RwSemaphore('mm0.mmap_sem');
        const mm1 = new RwSemaphore('mm1.mmap_sem');
        const down = (sem: RwSemaphore, mode: number) => (mode === LockMode.read ? sem.downRead() : sem.downWrite());
        const up = (sem: RwSemaphore, mode: number) => (mode === LockMode.read ? sem.upRead() : sem.upWrite());
        sim.spawn('nest', function* () {
          yield down(mm0, first);
          yield down(mm1, second);
          yield up(mm1, second);
          yield up(mm0, first);
        });
      };

    it('should report possible recursive locking for write under write (seed=1)', () => {
      const lockdep = new Lockdep();
      expect(runInOrder(nested(LockMode.write, LockMode.write), lockdep).status).toBe('ok');
      const report = only(lockdep.reports);
      expect(report).toMatchObject({ kind: 'recursive', classes: ['mm#.mmap_sem'], thread: 'T0 nest', step: 1, chain: [] });
      expect(report.splat).toBe(
        [
          '============================================',
          'WARNING: possible recursive locking detected',
          '--------------------------------------------',
          'T0 nest is trying to acquire lock:',
          'mm1.mmap_sem (mm#.mmap_sem){write}, at: step 1',
          '',
          'but task is already holding lock:',
          'mm0.mmap_sem (mm#.mmap_sem){write}, at: step 0',
          '',
          'other info that might help us debug this:',
          ' Possible unsafe locking scenario:',
          '',
          '       CPU0',
          '       ----',
          '  lock(mm#.mmap_sem);',
          '  lock(mm#.mmap_sem);',
          '',
          ' *** DEADLOCK ***',
          '',
          ' May be due to missing lock nesting notation',
          '',
          '1 lock held by T0 nest:',
          ' #0: mm0.mmap_sem (mm#.mmap_sem){write}, at: step 0',
        ].join('\n'),
      );
      // No self-dependency: recursion is its own report, not a cycle.
      expect(lockdep.dependencyCount).toBe(0);
    });

    it('should report read under write and write under read, once per class', () => {
      const lockdep = new Lockdep();
      runInOrder(nested(LockMode.write, LockMode.read), lockdep);
      runInOrder(nested(LockMode.read, LockMode.write), lockdep);
      expect(only(lockdep.reports)).toMatchObject({ kind: 'recursive', classes: ['mm#.mmap_sem'] });
    });

    it('should accept read under read (two rwsem readers)', () => {
      const lockdep = new Lockdep();
      runInOrder(nested(LockMode.read, LockMode.read), lockdep);
      expect(lockdep.reports).toEqual([]);
    });
  });

  describe('having a dependency taken under a downgraded rwsem (seed=1, in order)', () => {
    const program: Program = (sim) => {
      const mmapSem = new RwSemaphore('mmap_sem');
      const anonVmaLock = new Mutex('anon_vma_lock');
      sim.spawn('downgrader', function* () {
        yield mmapSem.downWrite();
        yield mmapSem.downgradeWrite();
        yield anonVmaLock.lock();
        yield anonVmaLock.unlock();
        yield mmapSem.upRead();
      });
      sim.spawn('inverter', function* () {
        yield anonVmaLock.lock();
        yield mmapSem.downRead();
        yield mmapSem.upRead();
        yield anonVmaLock.unlock();
      });
    };

    it('should keep the held lock (now read) as the dependency source and report the inversion', () => {
      const lockdep = new Lockdep();
      expect(runInOrder(program, lockdep).status).toBe('ok');
      expect(lockdep.dependency('mmap_sem', 'anon_vma_lock')?.first).toMatchObject({
        thread: 'T0 downgrader',
        step: 2,
        held: [{ name: 'mmap_sem', lockClass: 'mmap_sem', mode: LockMode.read, step: 1 }],
      });
      const report = only(lockdep.reports);
      expect(report).toMatchObject({ kind: 'circular', classes: ['mmap_sem', 'anon_vma_lock'], thread: 'T1 inverter', step: 7 });
      // A read acquisition is `rlock` in the scenario, as in the kernel.
      expect(report.splat).toContain(
        '  lock(anon_vma_lock);\n                               lock(mmap_sem);\n                               lock(anon_vma_lock);\n  rlock(mmap_sem);',
      );
    });
  });

  describe('having trylocks', () => {
    it('should add no dependency for a trylock taken under a lock (A, trylock B; then B, A)', () => {
      const lockdep = new Lockdep();
      const r = runInOrder((sim) => {
        const a = new Mutex('lock_A');
        const b = new Mutex('lock_B');
        sim.spawn('a_tryb', function* () {
          yield a.lock();
          expect(yield b.trylock()).toBe(true);
          yield b.unlock();
          yield a.unlock();
        });
        sim.spawn('ba', function* () {
          yield b.lock();
          yield a.lock();
          yield a.unlock();
          yield b.unlock();
        });
      }, lockdep);
      expect(r.status, r.summary).toBe('ok');
      expect(lockdep.reports).toEqual([]);
      expect(lockdep.dependencies().map((d) => `${d.from}->${d.to}`)).toEqual(['lock_B->lock_A']);
      expect(lockdep.classCount).toBe(2);
    });

    it('should count a trylocked lock as held: what is taken under it depends on it', () => {
      const lockdep = new Lockdep();
      runInOrder((sim) => {
        const b = new Mutex('lock_B');
        const c = new Mutex('lock_C');
        sim.spawn('tryb_c', function* () {
          expect(yield b.trylock()).toBe(true);
          yield c.lock();
          yield c.unlock();
          yield b.unlock();
        });
      }, lockdep);
      expect(lockdep.dependency('lock_B', 'lock_C')?.first.held).toEqual([{ name: 'lock_B', lockClass: 'lock_B', mode: LockMode.write, step: 0 }]);
    });
  });

  describe('having one instance shared across runs', () => {
    it('should accumulate the graph: A->B in one run, B->A in the next, reported once', () => {
      const lockdep = new Lockdep();
      lockdep.run = 'seed=1';
      expect(runInOrder(lockOrders(['lock_A', 'lock_B']), lockdep, 1).status).toBe('ok');
      expect(lockdep.reports).toEqual([]);
      expect(lockdep.dependencyCount).toBe(1);

      lockdep.run = 'seed=2';
      runInOrder(lockOrders(['lock_B', 'lock_A']), lockdep, 2);
      const report = only(lockdep.reports);
      expect(report).toMatchObject({ kind: 'circular', classes: ['lock_A', 'lock_B'], thread: 'T0 ba', step: 1 });
      expect(report.splat).toContain('       T0 ab requested lock_B{write} at step 1 in seed=1, holding:');
      expect(report.splat).toContain('       T0 ba requested lock_A{write} at step 1 in seed=2, holding:');

      // The pair is reported once, whichever order shows it again.
      runInOrder(lockOrders(['lock_B', 'lock_A']), lockdep, 3);
      runInOrder(lockOrders(['lock_A', 'lock_B']), lockdep, 4);
      expect(lockdep.reports).toHaveLength(1);
      expect(lockdep.dependencyCount).toBe(2);
    });
  });

  describe('determinism', () => {
    /** Three threads, each taking 2-3 of 4 locks in a seeded random order. */
    const randomOrders: Program = (sim) => {
      const locks = ['lock_A', 'lock_B', 'lock_C', 'lock_D'].map((n) => new Mutex(n));
      for (let t = 0; t < 3; t++) {
        const order = [...locks];
        for (let i = order.length - 1; i > 0; i--) {
          const j = sim.rng.int(0, i);
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        const taken = order.slice(0, sim.rng.int(2, 3));
        sim.spawn(`worker${t}`, function* () {
          for (const m of taken) yield m.lock();
          for (const m of taken.reverse()) yield m.unlock();
        });
      }
    };

    const splatsOf = (options: Omit<RunOptions, 'seed' | 'observers'>): string[] => {
      const lockdep = new Lockdep();
      for (let seed = 0; seed < 40; seed++) {
        lockdep.run = `seed=${seed}`;
        runProgram(randomOrders, { ...options, seed, observers: [lockdep] });
      }
      return lockdep.reports.map((r) => r.splat);
    };

    it('should give identical splats for the same runs (seeds 0..39, random and pct)', () => {
      for (const strategy of ['random', 'pct'] as const) {
        const first = splatsOf({ strategy });
        expect(first.length, strategy).toBeGreaterThan(0);
        expect(splatsOf({ strategy }), strategy).toEqual(first);
      }
    });

    it('should give the identical ABBA splat twice', () => {
      const splat = () => {
        const lockdep = new Lockdep();
        runProgram(abba, { seed: 1, strategy: 'replay', schedule: '0*5', extendSchedule: true, observers: [lockdep] });
        return only(lockdep.reports).splat;
      };
      expect(splat()).toBe(splat());
    });
  });

  describe('bounds', () => {
    it('should fail the run with a clear error beyond classCountMax', () => {
      const lockdep = new Lockdep({ classCountMax: 2 });
      const r = runInOrder(lockOrders(['lock_A', 'lock_B', 'lock_C']), lockdep);
      expect(r.status).toBe('error');
      expect(r.failure?.message).toContain("lockdep: more than 2 lock classes (classCountMax) at 'lock_C'");
      expect(lockdep.classCount).toBe(2);
    });

    it('should fail the run with a clear error beyond dependencyCountMax', () => {
      const lockdep = new Lockdep({ dependencyCountMax: 2 });
      const r = runInOrder(lockOrders(['lock_A', 'lock_B', 'lock_C']), lockdep);
      expect(r.status).toBe('error');
      expect(r.failure?.message).toContain('lockdep: more than 2 dependencies (dependencyCountMax)');
    });

    it('should keep reportCountMax reports and count the rest', () => {
      const lockdep = new Lockdep({ reportCountMax: 1 });
      runInOrder(lockOrders(['lock_A', 'lock_B'], ['lock_B', 'lock_A'], ['lock_C', 'lock_D'], ['lock_D', 'lock_C']), lockdep);
      expect(only(lockdep.reports).classes).toEqual(['lock_A', 'lock_B']);
      expect(lockdep.reportsDropped).toBe(1);
    });

    it('should reject bounds that are not integers >= 1', () => {
      expect(() => new Lockdep({ classCountMax: 0 })).toThrow(/classCountMax must be an integer >= 1, got 0/);
      expect(() => new Lockdep({ reportCountMax: 1.5 })).toThrow(/reportCountMax/);
    });
  });
});
