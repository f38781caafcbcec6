import { yieldNow } from './effect.js';
import type { Program } from './engine.js';
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
