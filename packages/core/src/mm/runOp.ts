import { runProgram } from '../sim/engine.js';
import type { MmStruct } from './mmStruct.js';
import type { MmTask } from './task.js';
import type { MmGen } from './vma.js';

/**
 * Run one mm operation to completion on a single simulated thread of `mm`'s process and return
 * its result (sequential use: setup, trace replay, unit tests). Throws with the run's summary if
 * the operation fails in the engine (a thrown assertion, a deadlock).
 */
export function runMmOp<T>(mm: MmStruct, body: (task: MmTask) => MmGen<T>, name = 'op'): T {
  let value: T | undefined;
  let done = false;
  const result = runProgram(
    (sim) => {
      sim.spawn(`${mm.pid}:${name}`, function* (thread) {
        value = yield* body({ thread, mm });
        done = true;
      });
    },
    { seed: 0, strategy: 'timed', cpus: 1 },
  );
  if (result.status !== 'ok' || !done)
    throw new Error(`${name} failed: ${result.summary}${result.failure?.stack !== undefined ? `\n${result.failure.stack}` : ''}`);
  return value as T;
}
