import { type EngineObserver, type Program, type RunOptions, type RunResult, runProgram } from './engine.js';
import { ScriptedStrategy } from './strategies.js';

/** Options of the bounded-preemption search. */
export interface ExploreOptions {
  /** The seed handed to the program (its own random stream); the search itself draws nothing. */
  readonly seed: number;
  /** Schedules with more preemptions than this are not explored (CHESS's bound). */
  readonly preemptionBound: number;
  /** Stop after this many schedules (the search then reports `complete: false`). */
  readonly maxSchedules?: number;
  /** Steps per run. */
  readonly stepLimit?: number;
  readonly cpus?: number;
  /** Stop at the first run whose status is not `ok`. */
  readonly stopOnFailure?: boolean;
  /** Watch every run (race detector, lockdep). */
  readonly observers?: readonly EngineObserver[];
  /** Called after every run with its result (for checks beyond the run's status). */
  readonly onRun?: (result: RunResult) => void;
}

/** What the search found. */
export interface ExploreResult {
  /** Schedules run. */
  readonly schedules: number;
  /** True when every schedule within the bound was run. */
  readonly complete: boolean;
  readonly preemptionBound: number;
  /** The failing runs (all of them, or the first with `stopOnFailure`). */
  readonly failures: readonly RunResult[];
}

/** A decision point on the current path: the choices and which one is being explored. */
interface Node {
  /** Candidate thread ids, the non-preemptive default first. */
  readonly order: readonly number[];
  cursor: number;
  /** Preemptions on the path before this step. */
  readonly preemptionsBefore: number;
  /** The thread that ran the step before, -1 at the start. */
  readonly previous: number;
  /** Whether `previous` could run at this step (switching away from it is a preemption). */
  readonly previousRunnable: boolean;
}

/**
 * Explore every schedule of a small program with at most `preemptionBound` preemptions
 * (Musuvathi and Qadeer, PLDI 2007): stateless depth-first search by re-execution. A
 * preemption is switching away from a thread that could have gone on; switches at blocking or
 * ending points are free. Each run follows the path's choices, then goes on non-preemptively
 * and records the new decision points.
 */
export function explore(program: Program, options: ExploreOptions): ExploreResult {
  const bound = options.preemptionBound;
  if (!Number.isInteger(bound) || bound < 0) throw new RangeError(`preemptionBound must be an integer >= 0, got ${bound}`);
  const maxSchedules = options.maxSchedules ?? 100_000;
  const path: Node[] = [];
  const failures: RunResult[] = [];
  let schedules = 0;
  for (;;) {
    const script = path.map((n) => n.order[n.cursor]!);
    const strategy = new ScriptedStrategy('guided', script, true, true);
    const runOptions: RunOptions = {
      seed: options.seed,
      strategy: 'replay',
      scripted: strategy,
      ...(options.stepLimit !== undefined ? { stepLimit: options.stepLimit } : {}),
      ...(options.cpus !== undefined ? { cpus: options.cpus } : {}),
      ...(options.observers !== undefined ? { observers: options.observers } : {}),
    };
    const result = runProgram(program, runOptions);
    schedules++;
    options.onRun?.(result);
    if (result.status !== 'ok') {
      failures.push(result);
      if (options.stopOnFailure === true) return { schedules, complete: false, preemptionBound: bound, failures };
    }
    // Extend the path with the decision points this run met past the script.
    let preemptions = path.length === 0 ? 0 : preemptionsAfter(path[path.length - 1]!);
    for (const c of strategy.choices) {
      const previousRunnable = c.runnable.includes(c.previous);
      const order = [c.chosen, ...c.runnable.filter((id) => id !== c.chosen)];
      const node: Node = { order, cursor: 0, preemptionsBefore: preemptions, previous: c.previous, previousRunnable };
      path.push(node);
      preemptions = preemptionsAfter(node);
    }
    if (!backtrack(path, bound)) return { schedules, complete: true, preemptionBound: bound, failures };
    if (schedules >= maxSchedules) return { schedules, complete: false, preemptionBound: bound, failures };
  }
}

function preemptionsAfter(node: Node): number {
  const chosen = node.order[node.cursor]!;
  return node.preemptionsBefore + (node.previousRunnable && chosen !== node.previous ? 1 : 0);
}

/** Move to the next unexplored choice within the bound, deepest first; false when none is left. */
function backtrack(path: Node[], bound: number): boolean {
  while (path.length > 0) {
    const node = path[path.length - 1]!;
    while (++node.cursor < node.order.length) {
      if (preemptionsAfter(node) <= bound) return true;
    }
    path.pop();
  }
  return false;
}
