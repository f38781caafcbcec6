// Proves the engine's contract: runs end with a result (ok, error, deadlock, step limit) and
// never hang; a deadlock names its wait-for cycle; the same seed gives the same trace byte for
// byte; a failing schedule replays to the same failure; PCT finds a depth-2 bug at least as
// often as its bound promises; the bounded-preemption search counts schedules exactly; the
// timed strategy shows cache-line serialisation on a shared rwsem; RCU, seqcount, wait queues,
// spawn/join behave as in Linux. Seeds and schedules are given in each test.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { defaultCostModel } from './costModel.js';
import { callRcu, join, rcuReadLock, rcuReadUnlock, spawn, spend, synchronizeRcu, yieldNow } from './effect.js';
import { Engine, type Program, type RunOptions, runProgram } from './engine.js';
import { explore } from './explore.js';
import { Mutex, SpinLock } from './mutex.js';
import { RwSemaphore } from './rwSemaphore.js';
import { SeqCount } from './seqCount.js';
import { SharedLocation } from './sharedLocation.js';
import { abba, depth2Bug, depth2BugSteps } from './testPrograms.js';
import { WaitQueue } from './waitQueue.js';

function traceHash(program: Program, options: RunOptions): string {
  const r = runProgram(program, { ...options, trace: true });
  return createHash('sha256')
    .update(JSON.stringify([r.status, r.schedule, r.steps, r.simTimeNs, r.trace]))
    .digest('hex');
}

/** A program whose shape depends on the seed: several threads on a few locks and locations. */
const randomProgram: Program = (sim) => {
  const locks = [new RwSemaphore('sem0'), new Mutex('mutex1'), new SpinLock('spin2')];
  const loc = new SharedLocation('counter', 0, 'test');
  const threads = sim.rng.int(2, 5);
  for (let t = 0; t < threads; t++) {
    sim.spawn(`worker${t}`, function* (self) {
      const rounds = self.rng.int(1, 4);
      for (let i = 0; i < rounds; i++) {
        const lock = locks[self.rng.index(locks.length)]!;
        const write = lock instanceof RwSemaphore ? self.rng.chance(0.5) : true;
        if (lock instanceof RwSemaphore) yield write ? lock.downWrite() : lock.downRead();
        else yield (lock as Mutex).lock();
        const v = (yield loc.read()) as number;
        yield spend(self.rng.int(1, 100));
        if (write) yield loc.write(v + 1);
        if (lock instanceof RwSemaphore) yield write ? lock.upWrite() : lock.upRead();
        else yield (lock as Mutex).unlock();
      }
    });
  }
};

describe('Engine', () => {
  describe('having an ABBA program', () => {
    it('should report a deadlock naming both threads and both locks (seed=1, schedule 0.1.0.1)', () => {
      const r = runProgram(abba, { seed: 1, strategy: 'replay', schedule: '0.1.0.1' });
      expect(r.status).toBe('deadlock');
      expect(r.failure?.cycle).toEqual([
        { thread: 'T0 ab', waitsFor: 'lock_B (write)', heldBy: 'T1 ba' },
        { thread: 'T1 ba', waitsFor: 'lock_A (write)', heldBy: 'T0 ab' },
      ]);
      expect(r.summary).toMatch(/seed=1 .*deadlock.*T0 ab waits for lock_B.*T1 ba waits for lock_A/);
    });

    it('should find the deadlock under random within 200 seeds and leave the engine usable', () => {
      const engine = new Engine();
      let found = -1;
      for (let seed = 0; seed < 200 && found < 0; seed++) if (engine.run(abba, { seed, strategy: 'random' }).status === 'deadlock') found = seed;
      expect(found, 'no seed in 0..199 deadlocked').toBeGreaterThanOrEqual(0);
      expect(engine.run(abba, { seed: 0, strategy: 'replay', schedule: '0*5.1*5' }).status).toBe('ok');
    });
  });

  describe('having a thread that throws', () => {
    it('should end the run with the thread, step and seed, and run finally blocks of the others', () => {
      let closed = false;
      const r = runProgram(
        (sim) => {
          sim.spawn('sleeper', function* () {
            try {
              for (;;) yield spend(10);
            } finally {
              closed = true;
            }
          });
          sim.spawn('thrower', function* () {
            yield yieldNow();
            throw new Error('BUG: bad pte');
          });
        },
        { seed: 42, strategy: 'replay', schedule: '0.1.0.1' },
      );
      expect(r.status).toBe('error');
      expect(r.failure).toMatchObject({ kind: 'error', thread: 'T1 thrower', step: 3 });
      expect(r.summary).toBe('seed=42 strategy=replay error at step 3: T1 thrower threw at step 3: BUG: bad pte');
      expect(closed).toBe(true);
    });
  });

  describe('having a program that never ends', () => {
    it('should stop at the step limit', () => {
      const r = runProgram(
        (sim) => {
          sim.spawn('spinner', function* () {
            for (;;) yield yieldNow();
          });
        },
        { seed: 5, strategy: 'timed', stepLimit: 1000 },
      );
      expect(r.status).toBe('step-limit');
      expect(r.steps).toBe(1000);
    });
  });

  describe('determinism', () => {
    it('should give identical trace hashes for 100 seeds run twice (random and pct)', () => {
      const hashes = new Set<string>();
      for (let seed = 0; seed < 100; seed++) {
        const strategy = seed % 2 === 0 ? 'random' : 'pct';
        const first = traceHash(randomProgram, { seed, strategy });
        const second = traceHash(randomProgram, { seed, strategy });
        expect(second, `seed=${seed} strategy=${strategy}`).toBe(first);
        hashes.add(first);
      }
      // Different seeds give different runs: the hash covers the run, not a constant.
      expect(hashes.size).toBeGreaterThan(90);
    });
  });

  describe('replay', () => {
    it('should replay a failing schedule found by random to the same failure, byte for byte', () => {
      let failing: ReturnType<typeof runProgram> | null = null;
      for (let seed = 0; seed < 20000 && failing === null; seed++) {
        const r = runProgram(depth2Bug, { seed, strategy: 'random' });
        if (r.status === 'error') failing = r;
      }
      expect(failing, 'random found no failure in 20000 seeds').not.toBeNull();
      const again = runProgram(depth2Bug, { seed: failing!.seed, strategy: 'replay', schedule: failing!.schedule });
      expect(again.status).toBe('error');
      expect(again.failure?.message).toBe(failing!.failure?.message);
      expect(again.schedule).toBe(failing!.schedule);
      expect(traceHash(depth2Bug, { seed: failing!.seed, strategy: 'replay', schedule: failing!.schedule })).toBe(
        traceHash(depth2Bug, { seed: failing!.seed, strategy: 'random' }),
      );
    });

    it('should report a schedule that does not fit the program as diverged', () => {
      const r = runProgram(depth2Bug, { seed: 1, strategy: 'replay', schedule: '7' });
      expect(r.status).toBe('diverged');
      expect(r.failure?.message).toMatch(/runs thread T7 at step 0, but it is not runnable/);
    });
  });

  describe('pct', () => {
    it('should find a depth-2 bug of 3 threads at least as often as 1/(n·k^(d-1)) over 1000 seeds', () => {
      let pctHits = 0;
      let randomHits = 0;
      let bound = 0;
      const runs = 1000;
      for (let seed = 0; seed < runs; seed++) {
        const p = runProgram(depth2Bug, { seed, strategy: 'pct', pctDepth: 2, pctSteps: depth2BugSteps });
        if (p.status === 'error') pctHits++;
        bound = p.pct!.bound;
        expect(p.pct!.steps).toBeLessThanOrEqual(depth2BugSteps);
        if (runProgram(depth2Bug, { seed, strategy: 'random' }).status === 'error') randomHits++;
      }
      console.log(
        `pct d=2: ${pctHits}/${runs} = ${(pctHits / runs).toFixed(4)} (bound ${bound.toFixed(4)}); random: ${randomHits}/${runs} = ${(randomHits / runs).toFixed(4)}`,
      );
      expect(bound).toBeCloseTo(1 / (3 * depth2BugSteps), 10);
      expect(pctHits / runs).toBeGreaterThanOrEqual(bound);
      expect(pctHits).toBeGreaterThan(randomHits);
    });
  });

  describe('bounded-preemption search', () => {
    const twoByTwo: Program = (sim) => {
      for (let t = 0; t < 2; t++) {
        sim.spawn(`t${t}`, function* () {
          yield yieldNow();
        });
      }
    };

    it('should explore every interleaving of 2 threads of 2 steps (6) when unbounded, 2 with no preemption', () => {
      expect(explore(twoByTwo, { seed: 0, preemptionBound: 10 })).toMatchObject({ schedules: 6, complete: true });
      expect(explore(twoByTwo, { seed: 0, preemptionBound: 0 })).toMatchObject({ schedules: 2, complete: true });
      // One preemption: 0|1.. 1|0.. plus a switch once inside: 0 1 1 0, 0 1 0 1? counted by the search:
      expect(explore(twoByTwo, { seed: 0, preemptionBound: 1 }).schedules).toBe(4);
    });

    it('should find the ABBA deadlock with one preemption', () => {
      const r = explore(abba, { seed: 0, preemptionBound: 1, stopOnFailure: true });
      expect(r.failures[0]?.status).toBe('deadlock');
      expect(explore(abba, { seed: 0, preemptionBound: 0 }).failures).toHaveLength(0);
    });
  });

  describe('timed', () => {
    /** N threads looping on read locks, shared or one each; returns iterations per simulated second. */
    function throughput(threads: number, shared: boolean): number {
      const iterations = 200;
      const r = runProgram(
        (sim) => {
          const one = new RwSemaphore('mmap_sem');
          for (let t = 0; t < threads; t++) {
            const sem = shared ? one : new RwSemaphore(`sem${t}`);
            sim.spawn(`reader${t}`, function* () {
              for (let i = 0; i < iterations; i++) {
                yield sem.downRead();
                yield spend(200);
                yield sem.upRead();
                yield spend(200);
              }
            });
          }
        },
        { seed: 1, strategy: 'timed', cpus: threads },
      );
      expect(r.status).toBe('ok');
      return (threads * iterations) / (r.simTimeNs / 1e9);
    }

    it('should not scale N readers of one rwsem linearly, but scale N readers of N rwsems', () => {
      const base = throughput(1, true);
      const rows: string[] = [];
      for (const n of [2, 4, 8, 16, 32]) {
        const sharedSpeedup = throughput(n, true) / base;
        const separateSpeedup = throughput(n, false) / base;
        rows.push(`${n} threads: one rwsem ${sharedSpeedup.toFixed(2)}x, separate rwsems ${separateSpeedup.toFixed(2)}x`);
        expect(separateSpeedup).toBeGreaterThan(0.95 * n);
        if (n >= 8) expect(sharedSpeedup).toBeLessThan(0.5 * n);
      }
      console.log(rows.join('\n'));
    });

    it('should share a CPU between threads pinned to it', () => {
      const r = runProgram(
        (sim) => {
          for (let t = 0; t < 4; t++) {
            sim.spawn(`t${t}`, function* () {
              yield spend(1000);
            });
          }
        },
        { seed: 1, strategy: 'timed', cpus: 2 },
      );
      // Four 1 µs bursts on two CPUs take two µs, not one.
      expect(r.simTimeNs).toBeGreaterThanOrEqual(2000);
      expect(r.simTimeNs).toBeLessThan(2100);
    });
  });

  describe('RCU', () => {
    it('should end a grace period only once every reader inside at its start has left', () => {
      const log: string[] = [];
      const r = runProgram(
        (sim) => {
          sim.spawn('reader', function* () {
            yield rcuReadLock();
            yield yieldNow();
            log.push('reader leaves');
            yield rcuReadUnlock();
          });
          sim.spawn('updater', function* () {
            yield callRcu(() => log.push('freed'));
            yield synchronizeRcu();
            log.push('grace period over');
          });
        },
        { seed: 1, strategy: 'replay', schedule: '0.1*2', extendSchedule: true },
      );
      expect(r.status, r.summary).toBe('ok');
      expect(log).toEqual(['reader leaves', 'freed', 'grace period over']);
    });

    it('should fail synchronize_rcu inside a read-side section', () => {
      const r = runProgram(
        (sim) => {
          sim.spawn('bad', function* () {
            yield rcuReadLock();
            yield synchronizeRcu();
          });
        },
        { seed: 1, strategy: 'random' },
      );
      expect(r.failure?.message).toMatch(/synchronize_rcu\(\) by T0 bad inside an RCU read-side section/);
    });
  });

  describe('SeqCount', () => {
    it('should make a reader that overlapped a write retry', () => {
      const retries: boolean[] = [];
      const r = runProgram(
        (sim) => {
          const seq = new SeqCount('vm_seq');
          sim.spawn('reader', function* () {
            const s = (yield seq.readBegin()) as number;
            yield yieldNow();
            retries.push((yield seq.readRetry(s)) as boolean);
            const s2 = (yield seq.readBegin()) as number;
            retries.push((yield seq.readRetry(s2)) as boolean);
          });
          sim.spawn('writer', function* () {
            yield seq.writeBegin();
            yield seq.writeEnd();
          });
        },
        { seed: 1, strategy: 'replay', schedule: '0.1*3', extendSchedule: true },
      );
      expect(r.status, r.summary).toBe('ok');
      expect(retries).toEqual([true, false]);
    });
  });

  describe('WaitQueue', () => {
    it('should sleep until the condition holds and not lose a wake-up', () => {
      const r = runProgram(
        (sim) => {
          const wq = new WaitQueue('done_wq');
          const done = { value: false };
          sim.spawn('waiter', function* () {
            yield wq.waitEvent(() => done.value);
          });
          sim.spawn('waker', function* () {
            yield wq.wakeUpAll();
            done.value = true;
            yield wq.wakeUpAll();
          });
        },
        { seed: 1, strategy: 'replay', schedule: '0.1', extendSchedule: true },
      );
      expect(r.status, r.summary).toBe('ok');
    });

    it('should report sleepers nobody wakes as a deadlock without a cycle', () => {
      const r = runProgram(
        (sim) => {
          const wq = new WaitQueue('never_wq');
          sim.spawn('sleeper', function* () {
            yield wq.waitEvent(() => false);
          });
        },
        { seed: 1, strategy: 'random' },
      );
      expect(r.status).toBe('deadlock');
      expect(r.failure?.message).toMatch(/T0 sleeper waits for wait queue never_wq/);
    });
  });

  describe('spawn and join', () => {
    it('should start threads from threads and hand back what they return', () => {
      const r = runProgram(
        (sim) => {
          sim.spawn('parent', function* () {
            const child = yield spawn('child', function* () {
              yield spend(5);
              return 42;
            });
            const value = yield join(child as never);
            if (value !== 42) throw new Error(`joined ${String(value)}`);
          });
        },
        { seed: 9, strategy: 'random' },
      );
      expect(r.status, r.summary).toBe('ok');
      expect(r.threads.map((t) => t.name)).toEqual(['parent', 'child']);
    });

    it('should run 1024 threads on 1024 CPUs', () => {
      const r = runProgram(
        (sim) => {
          for (let t = 0; t < 1024; t++) {
            const m = new Mutex(`m${t}`);
            sim.spawn(`t${t}`, function* () {
              yield m.lock();
              yield m.unlock();
            });
          }
        },
        { seed: 1, strategy: 'timed', cpus: 1024 },
      );
      expect(r.status).toBe('ok');
      expect(new Set(r.threads.map((t) => t.cpu)).size).toBe(1024);
    });
  });
});

describe('timed costs across runs and between effects', () => {
  it('should start a lock that outlived a run cold in the next run', () => {
    // A mutex hammered by a long first run, then taken once at time 0 by the second run: the
    // second acquisition costs one uncontended atomic, not a wait for the first run's clock.
    const m = new Mutex('shared');
    const first = runProgram(
      (sim) => {
        for (let i = 0; i < 2; i++)
          sim.spawn(`w${i}`, function* () {
            for (let k = 0; k < 50; k++) {
              yield m.lock();
              yield spend(1000);
              yield m.unlock();
            }
          });
      },
      { seed: 1, strategy: 'timed', cpus: 2 },
    );
    expect(first.simTimeNs).toBeGreaterThan(100_000);
    let tookAt = -1;
    runProgram(
      (sim) => {
        sim.spawn('later', function* (thread) {
          yield m.lock();
          tookAt = thread.clockNs;
          yield m.unlock();
        });
      },
      { seed: 1, strategy: 'timed', cpus: 2 },
    );
    expect(tookAt).toBeGreaterThan(0);
    expect(tookAt).toBeLessThan(200);
  });

  it('should charge work between effects to the thread clock, by the cost model', () => {
    let clock = -1;
    const r = runProgram(
      (sim) => {
        sim.spawn('worker', function* (thread) {
          thread.work('pageZeroNs', 3);
          yield spend(0);
          clock = thread.clockNs;
        });
      },
      { seed: 1, strategy: 'timed', cpus: 1, costModel: { ...defaultCostModel, pageZeroNs: 1000, effectNs: 0 } },
    );
    expect(r.status).toBe('ok');
    expect(clock).toBe(3000);
  });

  it('should queue the page writes of every CPU on the one memory bus when the cost model has one', () => {
    /** Four threads on four CPUs each zero 10 pages (100 ns of CPU each); the bus takes `busNs` a page. */
    const finish = (busNs: number): number[] => {
      const clocks: number[] = [];
      runProgram(
        (sim) => {
          for (let i = 0; i < 4; i++)
            sim.spawn(`zero${i}`, function* (thread) {
              thread.work('pageZeroNs', 10);
              yield spend(0);
              clocks.push(thread.clockNs);
            });
        },
        { seed: 1, strategy: 'timed', cpus: 4, costModel: { ...defaultCostModel, pageZeroNs: 100, effectNs: 0, memoryBusNsPerPage: busNs } },
      );
      return clocks.sort((a, b) => a - b);
    };
    // No bus: the CPUs work in parallel. A bus faster than one CPU: still parallel (the CPU is the
    // bottleneck). A bus at 50 ns a page: 40 pages take 2000 ns in all, whoever asked first.
    expect(finish(0)).toEqual([1000, 1000, 1000, 1000]);
    expect(finish(20)).toEqual([1000, 1000, 1000, 1000]);
    expect(finish(50)).toEqual([1000, 1000, 1500, 2000]);
  });
});
