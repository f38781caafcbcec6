// Proves that `demonstrateLockOrder` turns a lockdep cycle into a real deadlock when one exists and
// says `possible` when none can: an ABBA inversion whose deadlock window is one step wide (`ab`
// works 10 steps then takes lock_A, lock_B; `ba` works 50 steps then takes lock_B, lock_A) deadlocks
// in 1 of the first 400 runs of flag's portfolio, yet lockdep reports it from a run that does
// not deadlock, the directed search demonstrates it in its first directed run, the fallback alone
// (PCT and random) within 30, and each returned schedule replays to the same deadlock; the same
// inversion under a common gate lock is reported by lockdep (as the kernel's would) but stays
// `possible` over the whole budget; a deadlock on other classes does not count; 3-lock cycles and
// recursive (two mm's mmap_sem) reports are demonstrated too. `lockOrderSignature` names one
// inversion the same whatever order a run saw first. Every run gives its seed and schedule; a
// schedule `0` with extendSchedule runs T0 to its end, then T1, and so on.
import { describe, expect, it } from 'vitest';
import { yieldNow } from '../sim/effect.js';
import { type Program, type RunOptions, runProgram } from '../sim/engine.js';
import { Mutex } from '../sim/mutex.js';
import { RwSemaphore } from '../sim/rwSemaphore.js';
import { lockOrders } from '../sim/testPrograms.js';
import { findingId } from './findings.js';
import { Lockdep, type LockdepReport } from './lockdep.js';
import { type LockOrderDemonstrated, type LockOrderVerdict, demonstrateLockOrder, lockOrderSignature } from './lockOrder.js';

/**
 * `ab` works 10 steps then takes lock_A then lock_B; `ba` works 50 steps then takes lock_B then
 * lock_A. With `gate`, both take lock_gate around their two locks.
 */
function inversion(options: { readonly gate: boolean }): Program {
  return (sim) => {
    const gate = new Mutex('lock_gate');
    const a = new Mutex('lock_A');
    const b = new Mutex('lock_B');
    const body = (work: number, first: Mutex, second: Mutex) =>
      function* () {
        for (let i = 0; i < work; i++) yield yieldNow();
        if (options.gate) yield gate.lock();
        yield first.lock();
        yield second.lock();
        yield second.unlock();
        yield first.unlock();
        if (options.gate) yield gate.unlock();
      };
    sim.spawn('ab', body(10, a, b));
    sim.spawn('ba', body(50, b, a));
  };
}

/** T0 to its end, then T1, and so on (seed=1). */
const inOrder: RunOptions = { seed: 1, strategy: 'replay', schedule: '0', extendSchedule: true };

/** Run `program` with a fresh lockdep; the run's result and the reports. */
function watched(program: Program, options: RunOptions): { status: string; reports: readonly LockdepReport[] } {
  const lockdep = new Lockdep();
  const r = runProgram(program, { ...options, observers: [lockdep] });
  return { status: r.status, reports: lockdep.reports };
}

function circular(reports: readonly LockdepReport[], ...classes: string[]): LockdepReport {
  const found = reports.find((r) => r.kind === 'circular' && [...r.classes].sort().join() === [...classes].sort().join());
  expect(found, `a circular report on ${classes.join(', ')}`).toBeDefined();
  return found!;
}

function demonstrated(v: LockOrderVerdict): LockOrderDemonstrated {
  expect(v.status).toBe('demonstrated');
  return v as LockOrderDemonstrated;
}

/** The returned schedule, replayed, deadlocks the same way. */
function expectReplays(program: Program, v: LockOrderDemonstrated): void {
  const r = runProgram(program, { seed: v.seed, strategy: 'replay', schedule: v.schedule });
  expect(r.status, r.summary).toBe('deadlock');
  expect(r.failure?.message).toBe(v.evidence);
  expect(r.failure?.cycle).toEqual(v.cycle);
}

describe('demonstrateLockOrder', () => {
  describe('having an ABBA inversion with a one-step deadlock window (ab: 10 steps then A, B; ba: 50 steps then B, A)', () => {
    const program = inversion({ gate: false });

    it("should deadlock in 1 of the first 400 runs of flag's portfolio (seeds 0..399: pct d=3 k=300 on even, random on odd)", () => {
      const deadlocked: number[] = [];
      for (let seed = 0; seed < 400; seed++) {
        const options: RunOptions = seed % 2 === 0 ? { seed, strategy: 'pct', pctDepth: 3, pctSteps: 300 } : { seed, strategy: 'random' };
        const r = runProgram(program, options);
        if (r.status === 'ok') continue;
        expect(r.status, r.summary).toBe('deadlock');
        deadlocked.push(seed);
      }
      expect(deadlocked).toEqual([48]);
    });

    it('should be reported by lockdep from a run that does not deadlock (seed=1, T0 then T1)', () => {
      const { status, reports } = watched(program, inOrder);
      expect(status).toBe('ok');
      expect(reports).toHaveLength(1);
      expect(reports[0]).toMatchObject({ kind: 'circular', classes: ['lock_A', 'lock_B'], thread: 'T1 ba' });
    });

    it('should demonstrate it in the first directed run (ab parked holding A, ba run until it holds B), with a schedule that replays', () => {
      const report = circular(watched(program, inOrder).reports, 'lock_A', 'lock_B');
      const v = demonstrated(demonstrateLockOrder(program, inOrder, report));
      // T0 runs 11 steps (10 yields, lock_A) and is parked; T1 runs 51 (50 yields, lock_B); then each requests the other's lock.
      expect(v).toMatchObject({ seed: 1, strategy: 'directed', schedulesTried: 2, schedule: '0*11.1*51.0.1' });
      expect(v.evidence).toBe('deadlock: T0 ab waits for lock_B (write) held by T1 ba; T1 ba waits for lock_A (write) held by T0 ab');
      expect(v.cycle.map((e) => e.waitsFor)).toEqual(['lock_B (write)', 'lock_A (write)']);
      expectReplays(program, v);
    });

    it('should demonstrate it by the PCT and random fallback alone (directedMax 0)', () => {
      const report = circular(watched(program, inOrder).reports, 'lock_A', 'lock_B');
      const v = demonstrated(demonstrateLockOrder(program, inOrder, report, { directedMax: 0 }));
      expect(['pct', 'random']).toContain(v.strategy);
      expect(v.schedulesTried).toBeGreaterThan(1);
      expect(v.schedulesTried).toBeLessThanOrEqual(30);
      expectReplays(program, v);
    });

    it('should give the same answer for the same inputs', () => {
      const report = circular(watched(program, inOrder).reports, 'lock_A', 'lock_B');
      for (const search of [{}, { directedMax: 0 }]) {
        expect(demonstrateLockOrder(program, inOrder, report, search)).toEqual(demonstrateLockOrder(program, inOrder, report, search));
      }
    });
  });

  describe('having the same inversion under a common gate lock (no schedule can deadlock)', () => {
    const program = inversion({ gate: true });

    it('should still be reported by lockdep, as the kernel would', () => {
      const { status, reports } = watched(program, inOrder);
      expect(status).toBe('ok');
      circular(reports, 'lock_A', 'lock_B');
    });

    it('should stay possible over the whole budget (100 runs)', () => {
      const report = circular(watched(program, inOrder).reports, 'lock_A', 'lock_B');
      expect(demonstrateLockOrder(program, inOrder, report, { budget: 100 })).toEqual({ status: 'possible', schedulesTried: 100 });
    });
  });

  describe('having an ABBA on lock_A/lock_B that deadlocks readily and a gated one on lock_C/lock_D', () => {
    const program: Program = (sim) => {
      const [a, b, c, d, gate] = ['lock_A', 'lock_B', 'lock_C', 'lock_D', 'lock_gate'].map((n) => new Mutex(n)) as [Mutex, Mutex, Mutex, Mutex, Mutex];
      const take = (locks: Mutex[]) =>
        function* () {
          for (const m of locks) yield m.lock();
          for (const m of [...locks].reverse()) yield m.unlock();
        };
      sim.spawn('ab', take([a, b]));
      sim.spawn('ba', take([b, a]));
      sim.spawn('gcd', take([gate, c, d]));
      sim.spawn('gdc', take([gate, d, c]));
    };

    it('should demonstrate the A/B report and not count its deadlocks for the C/D one', () => {
      const { reports } = watched(program, inOrder);
      const ab = demonstrated(demonstrateLockOrder(program, inOrder, circular(reports, 'lock_A', 'lock_B'), { budget: 60 }));
      expect(ab.cycle.map((e) => e.thread)).toEqual(['T0 ab', 'T1 ba']);
      // Random runs of this program deadlock on A/B often (seeds 2..31: at least a third); none of them is a C/D deadlock.
      let abDeadlocks = 0;
      for (let seed = 2; seed < 32; seed++) if (runProgram(program, { seed, strategy: 'random' }).failure?.message.includes('lock_A') === true) abDeadlocks++;
      expect(abDeadlocks).toBeGreaterThanOrEqual(10);
      expect(demonstrateLockOrder(program, inOrder, circular(reports, 'lock_C', 'lock_D'), { budget: 60 })).toEqual({ status: 'possible', schedulesTried: 60 });
    });
  });

  describe('having a 3-lock cycle across three threads (A->B, B->C, C->A)', () => {
    it('should demonstrate a deadlock of all three, each waiting on one of the classes', () => {
      const program = lockOrders(['lock_A', 'lock_B'], ['lock_B', 'lock_C'], ['lock_C', 'lock_A']);
      const report = circular(watched(program, inOrder).reports, 'lock_A', 'lock_B', 'lock_C');
      const v = demonstrated(demonstrateLockOrder(program, inOrder, report));
      expect(v.strategy).toBe('directed');
      expect(v.cycle.map((e) => e.waitsFor).sort()).toEqual(['lock_A (write)', 'lock_B (write)', 'lock_C (write)']);
      expectReplays(program, v);
    });
  });

  describe("having a recursive report: two mm's mmap_sem taken for write in opposite orders", () => {
    it('should demonstrate the deadlock on two locks of the one class', () => {
      const program: Program = (sim) => {
        const mm0 = new RwSemaphore('mm0.mmap_sem');
        const mm1 = new RwSemaphore('mm1.mmap_sem');
        const both = (first: RwSemaphore, second: RwSemaphore) =>
          function* () {
            yield first.downWrite();
            yield second.downWrite();
            yield second.upWrite();
            yield first.upWrite();
          };
        sim.spawn('p0', both(mm0, mm1));
        sim.spawn('p1', both(mm1, mm0));
      };
      const { status, reports } = watched(program, inOrder);
      expect(status).toBe('ok');
      expect(reports.map((r) => [r.kind, r.classes])).toEqual([['recursive', ['mm#.mmap_sem']]]);
      const v = demonstrated(demonstrateLockOrder(program, inOrder, reports[0]!));
      expect(v.evidence).toBe('deadlock: T0 p0 waits for mm1.mmap_sem (write) held by T1 p1; T1 p1 waits for mm0.mmap_sem (write) held by T0 p0');
      expectReplays(program, v);
    });
  });

  it('should reject a budget below 1 and an empty depth list', () => {
    const report = circular(watched(inversion({ gate: false }), inOrder).reports, 'lock_A', 'lock_B');
    expect(() => demonstrateLockOrder(inversion({ gate: false }), inOrder, report, { budget: 0 })).toThrow(/budget must be an integer >= 1, got 0/);
    expect(() => demonstrateLockOrder(inversion({ gate: false }), inOrder, report, { pctDepths: [] })).toThrow(/pctDepths/);
  });
});

describe('lockOrderSignature', () => {
  it('should name an ABBA the same whichever order a run saw first', () => {
    const program = lockOrders(['lock_B', 'lock_A'], ['lock_A', 'lock_B']);
    const first = circular(watched(program, inOrder).reports, 'lock_A', 'lock_B');
    const other = circular(watched(program, { ...inOrder, schedule: '1' }).reports, 'lock_A', 'lock_B');
    expect(first.classes).not.toEqual(other.classes);
    expect(lockOrderSignature(first)).toBe('possible circular locking: lock_A -> lock_B -> lock_A');
    expect(lockOrderSignature(other)).toBe(lockOrderSignature(first));
    expect(findingId('lock-order', 'pkeys', lockOrderSignature(other))).toBe(findingId('lock-order', 'pkeys', lockOrderSignature(first)));
  });

  it('should keep a 3-cycle in its direction, from its least rotation', () => {
    const forward = lockOrders(['lock_A', 'lock_B'], ['lock_B', 'lock_C'], ['lock_C', 'lock_A']);
    const backward = lockOrders(['lock_A', 'lock_C'], ['lock_C', 'lock_B'], ['lock_B', 'lock_A']);
    const signatures = (program: Program) =>
      ['0', '1', '2'].map((schedule) => lockOrderSignature(circular(watched(program, { ...inOrder, schedule }).reports, 'lock_A', 'lock_B', 'lock_C')));
    expect(new Set(signatures(forward))).toEqual(new Set(['possible circular locking: lock_A -> lock_B -> lock_C -> lock_A']));
    expect(new Set(signatures(backward))).toEqual(new Set(['possible circular locking: lock_A -> lock_C -> lock_B -> lock_A']));
  });

  it('should fold numbers in class names and name recursive locking', () => {
    const program: Program = (sim) => {
      const pages = [new Mutex('page_lock[3]', 'page_lock[3]'), new Mutex('page_lock[7]', 'page_lock[7]'), new Mutex('inode1.lock', 'inode1.lock')];
      sim.spawn('up', function* () {
        for (const m of [pages[0]!, pages[1]!, pages[2]!]) yield m.lock();
        for (const m of [pages[2]!, pages[1]!, pages[0]!]) yield m.unlock();
      });
      sim.spawn('down', function* () {
        yield pages[2]!.lock();
        yield pages[0]!.lock();
        yield pages[0]!.unlock();
        yield pages[2]!.unlock();
      });
    };
    const report = circular(watched(program, inOrder).reports, 'page_lock[3]', 'inode1.lock');
    expect(lockOrderSignature(report)).toBe('possible circular locking: inode#.lock -> page_lock[#] -> inode#.lock');
    const recursive: Program = (sim) => {
      const mm0 = new RwSemaphore('mm0.mmap_sem');
      const mm1 = new RwSemaphore('mm1.mmap_sem');
      sim.spawn('twice', function* () {
        yield mm0.downWrite();
        yield mm1.downWrite();
        yield mm1.upWrite();
        yield mm0.upWrite();
      });
    };
    const [r] = watched(recursive, { seed: 1, strategy: 'random' }).reports;
    expect(lockOrderSignature(r!)).toBe('possible recursive locking: mm#.mmap_sem');
  });
});
