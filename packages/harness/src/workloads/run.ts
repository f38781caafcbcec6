// One workload in one process, run once: what tests, `bench` and a plan's single-process runs
// need. A plan with several processes spawns each process's workload into one program itself,
// with `spawnWorkload` and a counter per process.
import { type CostModel, type EngineObserver, MmStruct, type Program, type RunResult, type StrategyName, type Subsystem, runProgram } from '@vmalock/core';
import { type PolicyOptions, createPolicy, policyNames } from '@vmalock/policies';
import { spawnWorkload } from './registry.js';
import { OpCounter, WorkloadParamsError } from './workload.js';

/** How to run one workload once. */
export interface WorkloadRunOptions {
  readonly workload: string;
  /** Its params as a plan writes them (undefined: all defaults). */
  readonly params?: unknown;
  readonly policy: string;
  readonly policyOptions?: PolicyOptions;
  readonly threads: number;
  readonly seed: number;
  /** Default `timed` (throughput is meaningful under it alone). */
  readonly strategy?: StrategyName;
  /** Simulated CPUs; default max(64, threads + 8): every thread, helpers included, on its own CPU. */
  readonly cpus?: number;
  readonly stepLimit?: number;
  readonly pctDepth?: number;
  readonly pctSteps?: number;
  readonly schedule?: string;
  readonly observers?: readonly EngineObserver[];
  readonly trace?: boolean;
  /** The machine's costs (a profile's `costs`; default the default cost model). */
  readonly costModel?: CostModel;
  /** The process's subsystems, made fresh for each run (attached before the workload spawns). */
  readonly subsystems?: () => readonly Subsystem[];
  /** The process: pid and name (default 1, 'p1'). */
  readonly pid?: number;
  readonly processName?: string;
}

/** What one run left: the engine's result, the process's mm and its counted ops. */
export interface WorkloadRun {
  readonly result: RunResult;
  readonly mm: MmStruct;
  readonly subsystems: readonly Subsystem[];
  readonly ops: number;
  /** Simulated time of the last op, ns. */
  readonly lastOpNs: number;
  /** Ops per simulated second (timed only; null under other strategies or with no op). */
  readonly opsPerSimSec: number | null;
  readonly extras: Readonly<Record<string, number>>;
}

/** The state one run of a workload program built (fresh per run). */
export interface WorkloadRunState {
  mm: MmStruct | null;
  counter: OpCounter;
  subsystems: readonly Subsystem[];
}

/**
 * The program of one workload in one process: each run creates the mm under the policy, attaches
 * the subsystems and spawns the workload, recording what it built in the returned state.
 */
export function workloadProgram(options: WorkloadRunOptions): { program: Program; state: WorkloadRunState } {
  if (!policyNames().includes(options.policy)) throw new WorkloadParamsError(`unknown policy '${options.policy}' (known: ${policyNames().join(', ')})`);
  const state: WorkloadRunState = { mm: null, counter: new OpCounter(), subsystems: [] };
  const pid = options.pid ?? 1;
  const name = options.processName ?? `p${pid}`;
  const program: Program = (sim) => {
    const mm = new MmStruct(pid, createPolicy(options.policy, options.policyOptions ?? {}));
    const subsystems = options.subsystems?.() ?? [];
    for (const s of subsystems) s.attach({ pid, name, mm });
    state.mm = mm;
    state.counter = new OpCounter();
    state.subsystems = subsystems;
    spawnWorkload(options.workload, { sim, mm, threads: options.threads, subsystems, counter: state.counter, prefix: name }, options.params);
  };
  return { program, state };
}

/** Run one workload once and measure it. */
export function runWorkload(options: WorkloadRunOptions): WorkloadRun {
  const { program, state } = workloadProgram(options);
  const strategy = options.strategy ?? 'timed';
  const result = runProgram(program, {
    seed: options.seed,
    strategy,
    cpus: options.cpus ?? Math.max(64, options.threads + 8),
    ...(options.stepLimit !== undefined ? { stepLimit: options.stepLimit } : {}),
    ...(options.pctDepth !== undefined ? { pctDepth: options.pctDepth } : {}),
    ...(options.pctSteps !== undefined ? { pctSteps: options.pctSteps } : {}),
    ...(options.schedule !== undefined ? { schedule: options.schedule } : {}),
    ...(options.observers !== undefined ? { observers: options.observers } : {}),
    ...(options.trace !== undefined ? { trace: options.trace } : {}),
    ...(options.costModel !== undefined ? { costModel: options.costModel } : {}),
  });
  const c = state.counter;
  return {
    result,
    mm: state.mm!,
    subsystems: state.subsystems,
    ops: c.ops,
    lastOpNs: c.lastOpNs,
    opsPerSimSec: strategy === 'timed' ? c.opsPerSimSec() : null,
    extras: { ...c.extras },
  };
}
