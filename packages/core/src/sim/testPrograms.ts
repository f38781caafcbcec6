import { yieldNow } from './effect.js';
import type { Program } from './engine.js';
import { Mutex } from './mutex.js';
import { SharedLocation } from './sharedLocation.js';

/**
 * Small programs with known bugs, shared by the tests and the engine benchmark.
 */

/**
 * A depth-2 ordering bug among 3 threads (Burckhardt et al.'s sense: two ordering constraints).
 * `publisher` stores flag=1 once; `early` and `late` each take 10 steps of their own, then load
 * the flag. The bug needs `early`'s load before the store AND `late`'s load after it: the
 * program then throws "depth-2 bug". 26 steps in all (each thread's first and last steps
 * included), so PCT's bound for d=2 is 1/(3·26).
 */
export const depth2BugSteps = 26;

export const depth2Bug: Program = (sim) => {
  const flag = new SharedLocation('flag', 0, 'test');
  const seen: { early: number | null; late: number | null } = { early: null, late: null };
  const check = () => {
    if (seen.early === 0 && seen.late === 1) throw new Error('depth-2 bug: early saw flag=0, late saw flag=1');
  };
  sim.spawn('publisher', function* () {
    yield flag.write(1);
  });
  sim.spawn('early', function* () {
    for (let i = 0; i < 10; i++) yield yieldNow();
    seen.early = (yield flag.read()) as number;
    check();
  });
  sim.spawn('late', function* () {
    for (let i = 0; i < 10; i++) yield yieldNow();
    seen.late = (yield flag.read()) as number;
    check();
  });
};

/**
 * One thread per order: each takes its mutexes (by name) in the order given, then drops them in
 * reverse. Threads are named by their order (`['lock_A', 'lock_B']` -> `ab`).
 */
export function lockOrders(...threadOrders: string[][]): Program {
  return (sim) => {
    const locks = new Map<string, Mutex>();
    const lockNamed = (name: string) => {
      let m = locks.get(name);
      if (m === undefined) locks.set(name, (m = new Mutex(name)));
      return m;
    };
    for (const order of threadOrders) {
      const taken = order.map(lockNamed);
      sim.spawn(order.map((n) => n.replace('lock_', '').toLowerCase()).join(''), function* () {
        for (const m of taken) yield m.lock();
        for (const m of [...taken].reverse()) yield m.unlock();
      });
    }
  };
}

/** ABBA: T0 `ab` takes lock_A then lock_B, T1 `ba` takes lock_B then lock_A. */
export const abba = lockOrders(['lock_A', 'lock_B'], ['lock_B', 'lock_A']);
