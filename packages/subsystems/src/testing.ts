// The workload the subsystem tests share: threads of attached processes calling the subsystem
// (or whatever the test gives each call), one simulated run, then the subsystem's and every mm's
// invariants; and the bounded search for a failing seed, whose schedule the tests then replay.
// No assertions here: each test keeps its own, so this module needs no test framework.
import {
  type MmGen,
  type MmStruct,
  type MmTask,
  type Prng,
  type Program,
  type RunOptions,
  type RunResult,
  type SimSetup,
  type StrategyName,
  type Subsystem,
  checkMmInvariants,
  runProgram,
} from '@vmalock/core';

/** One user call of a workload thread, with the thread's random stream. */
export type WorkloadCall = (task: MmTask, rng: Prng) => MmGen<void>;

/** Threads calling a subsystem, `threads` per mm, each making `calls` calls. */
export interface Workload {
  readonly subsystem: Subsystem;
  readonly mms: readonly MmStruct[];
  readonly threads: number;
  readonly calls: number;
  /** The thread's name (it shows in failures and in the schedule's thread order). */
  readonly threadName: (mm: MmStruct, t: number) => string;
  /** One call; the subsystem's `drive` unless given. */
  readonly call?: WorkloadCall;
}

/** How a run ended. */
export interface WorkloadOutcome {
  readonly result: RunResult;
  readonly subsystem: Subsystem;
  /** After a run that ended ok: the first invariant that fails (the subsystem's, then each mm's); else null. */
  readonly broken: string | null;
}

/** Spawn the workload's threads (each mm's in turn); `spawnMore` adds the test's own after them. */
export function workloadProgram(w: Workload, spawnMore?: (sim: SimSetup) => void): Program {
  const call: WorkloadCall = w.call ?? ((task, rng) => w.subsystem.drive(task, rng));
  return (sim) => {
    for (const mm of w.mms) {
      for (let t = 0; t < w.threads; t++) {
        sim.spawn(w.threadName(mm, t), function* (thread) {
          const task = { thread, mm };
          for (let i = 0; i < w.calls; i++) yield* call(task, thread.rng);
        });
      }
    }
    spawnMore?.(sim);
  };
}

/** Run `program` with `options`, then check the invariants of `subsystem` and of `mms` if the run ended ok. */
export function runChecked(program: Program, subsystem: Subsystem, mms: readonly MmStruct[], options: RunOptions): WorkloadOutcome {
  const result = runProgram(program, options);
  return { result, subsystem, broken: result.status === 'ok' ? invariantFailure(subsystem, mms) : null };
}

/** The message of the first invariant that fails (the subsystem's, then each mm's), or null. */
function invariantFailure(subsystem: Subsystem, mms: readonly MmStruct[]): string | null {
  try {
    subsystem.checkInvariants();
    for (const mm of mms) checkMmInvariants(mm);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return null;
}

/** The run options of `seed` under `strategy` (with `schedule` when replaying) and the test's pct bounds. */
export function runOptions(seed: number, strategy: StrategyName, pct: { readonly pctDepth: number; readonly pctSteps: number }, schedule?: string): RunOptions {
  return { seed, strategy, ...pct, ...(schedule !== undefined ? { schedule } : {}) };
}

/** Add the subsystem's hook counts into `into` (by hook name). */
export function addHookCounts(into: Record<string, number>, subsystem: Subsystem): void {
  for (const [hook, n] of Object.entries(subsystem.hookCounts)) into[hook] = (into[hook] ?? 0) + n;
}

/** The line that replays a run: its seed and schedule under strategy 'replay'. */
export function replayLine(r: RunResult): string {
  return `seed=${r.seed} strategy=replay schedule=${r.schedule}`;
}

/** One run of a search: the seed and the strategy. */
export interface Trial {
  readonly seed: number;
  readonly strategy: StrategyName;
}

/** Seeds 0..seeds-1 under each strategy in turn. */
export function* trialsByStrategy(strategies: readonly StrategyName[], seeds: number): Generator<Trial> {
  for (const strategy of strategies) for (let seed = 0; seed < seeds; seed++) yield { seed, strategy };
}

/**
 * The first trial whose outcome `failed` (and how many trials ran, that one included), or null
 * once the trials run out. Bounded by the trials given.
 */
export function firstFailing<O>(
  trials: Iterable<Trial>,
  run: (t: Trial) => O,
  failed: (o: O) => boolean,
): { readonly outcome: O; readonly tried: number } | null {
  let tried = 0;
  for (const t of trials) {
    tried++;
    const outcome = run(t);
    if (failed(outcome)) return { outcome, tried };
  }
  return null;
}

/** Seeds 0..seeds-1, seed n under `strategies[n % strategies.length]` (alternating). */
export function* trialsAlternating(strategies: readonly StrategyName[], seeds: number): Generator<Trial> {
  for (let seed = 0; seed < seeds; seed++) yield { seed, strategy: strategies[seed % strategies.length]! };
}

/** What a sweep of seeds ran: the steps and each hook's count, summed over the runs. */
export interface SweepTotals {
  readonly steps: number;
  readonly hooks: Record<string, number>;
}

/** Seeds 0..schedules-1: `run` each (the test's pct run), `check` it (the test's assertion that it held), and sum what ran. */
export function sweepSeeds<O extends { readonly result: RunResult; readonly subsystem: Subsystem }>(
  schedules: number,
  run: (seed: number) => O,
  check: (o: O) => void,
): SweepTotals {
  let steps = 0;
  const hooks: Record<string, number> = {};
  for (let seed = 0; seed < schedules; seed++) {
    const o = run(seed);
    check(o);
    steps += o.result.steps;
    addHookCounts(hooks, o.subsystem);
  }
  return { steps, hooks };
}
