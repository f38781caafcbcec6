// The scaling table of `vmalock bench` (and the HTML report's throughput-against-threads chart):
// one workload in one process, run once under each lock policy at each thread count, timed by the
// engine's cost model. Nothing here sets a figure: throughput is the workload's ops per simulated
// second (`OpCounter.opsPerSimSec`, up to its last op), speed-up is over the policy's own figure
// at the smallest thread count — 1 thread by default, as bench:policies prints it.
import { policyNames } from '@vmalock/policies';
import { SUBSYSTEMS, type SubsystemEntry } from '@vmalock/subsystems';
import { parseWorkloadParams } from '../workloads/registry.js';
import { runWorkload } from '../workloads/run.js';
import { WorkloadParamsError } from '../workloads/workload.js';
import { profileByName } from '@vmalock/core';

/** What to measure. */
export interface BenchScalingOptions {
  /** Lock policies, in column order. */
  readonly policies: readonly string[];
  readonly workload: string;
  /** The workload's params as a plan writes them (undefined: all defaults). */
  readonly params?: unknown;
  /** Thread counts, in row order (each >= 1). */
  readonly threads: readonly number[];
  /** The one seed of every run (each run is its own program: the same seed at every point). */
  readonly seed: number;
  /** The machine profile whose costs the runs use (default `default`). */
  readonly profile?: string;
  /** Told after each run, for a progress line. */
  readonly progress?: (done: number, total: number, policy: string, threads: number) => void;
}

/** One point of the table: a policy at a thread count. */
export interface BenchRow {
  readonly policy: string;
  readonly threads: number;
  /** Ops per simulated second; null when the run did not end `ok` or counted nothing. */
  readonly throughput: number | null;
  /** Over the policy's throughput at the smallest thread count; null when either is missing. */
  readonly speedup: number | null;
  /** How the run ended (`ok`, or the engine's status: a run that breaks under a policy is a result). */
  readonly status: string;
}

/**
 * Run `workload` under each policy at each thread count (strategy `timed`, one process, every
 * thread on its own CPU) and return the rows policy by policy, thread counts in the order given.
 * `subsystem-driver` drives the converted variant of the subsystems its params name (all built-in
 * ones when none is named): converted subsystems are safe under every policy. Throws
 * `WorkloadParamsError` for an unknown workload or policy or bad params, before any run.
 */
export function benchScaling(options: BenchScalingOptions): BenchRow[] {
  for (const policy of options.policies)
    if (!policyNames().includes(policy)) throw new WorkloadParamsError(`unknown policy '${policy}' (known: ${policyNames().join(', ')})`);
  const params = parseWorkloadParams(options.workload, options.params);
  const entries = options.workload === 'subsystem-driver' ? drivenEntries((params as { subsystems: readonly string[] }).subsystems) : [];
  const base = Math.min(...options.threads);
  const rows: BenchRow[] = [];
  const total = options.policies.length * options.threads.length;
  let done = 0;
  for (const policy of options.policies) {
    const measured = options.threads.map((threads) => {
      const r = runWorkload({
        workload: options.workload,
        params: options.params,
        policy,
        threads,
        seed: options.seed,
        costModel: profileByName(options.profile ?? 'default').costs,
        strategy: 'timed',
        ...(entries.length > 0 ? { subsystems: () => entries.map((e) => e.create('converted')) } : {}),
      });
      options.progress?.(++done, total, policy, threads);
      return { threads, status: r.result.status, throughput: r.result.status === 'ok' ? r.opsPerSimSec : null };
    });
    const single = measured.find((m) => m.threads === base)?.throughput ?? null;
    for (const m of measured)
      rows.push({
        policy,
        threads: m.threads,
        throughput: m.throughput,
        speedup: m.throughput !== null && single !== null && single > 0 ? m.throughput / single : null,
        status: m.status,
      });
  }
  return rows;
}

/** The built-in subsystems `subsystem-driver` drives: those named, or every one. */
function drivenEntries(names: readonly string[]): SubsystemEntry[] {
  if (names.length === 0) return [...SUBSYSTEMS];
  return names.map((name) => {
    const e = SUBSYSTEMS.find((s) => s.name === name);
    if (e === undefined)
      throw new WorkloadParamsError(
        `workload 'subsystem-driver': bad params: subsystems: no built-in subsystem '${name}' (known: ${SUBSYSTEMS.map((s) => s.name).join(', ')})`,
      );
    return e;
  });
}
