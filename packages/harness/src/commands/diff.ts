import { policyNames } from '@vmalock/policies';
import { type CliIo, ExitCode, UsageError, formatTable, positiveInt, seedOf } from '../cliSupport.js';
import { type PolicyDiffResult, type PolicyRun, describeDivergence, diffParams, explainDivergence, findDivergence } from '../diff/diff.js';
import { DIFF_WORKLOADS, diffWorkloadNames } from '../diff/workloads.js';

/** Arguments of `vmalock diff`. */
export interface DiffArgs {
  readonly policies: string;
  readonly workload: string;
  readonly seed: number;
  /** How many seeds to try, from `seed` on, until one diverges. */
  readonly seeds: number;
  readonly threads: number | undefined;
  readonly calls: number | undefined;
  readonly strategy: string;
  readonly pctDepth: number;
  readonly json: boolean;
}

/** The command that replays the diff of `r` (its seed, alone). */
function replayCommand(r: PolicyDiffResult, fixedThreads: boolean, pctDepth: number): string {
  const parts = [`vmalock diff --policies ${r.policies.join(',')} --workload ${r.workload} --seed ${r.seed} --strategy ${r.strategy}`];
  if (!fixedThreads) parts.push(`--threads ${r.threads}`);
  parts.push(`--calls ${r.calls}`);
  if (r.strategy === 'pct' && pctDepth !== 3) parts.push(`--pct-depth ${pctDepth}`);
  return parts.join(' ');
}

function runRow(r: PolicyRun): string[] {
  return [
    r.policy,
    r.status,
    String(r.steps),
    String(r.calls),
    String(r.expectationsChecked),
    String(r.broken.length),
    r.finding === null ? '-' : r.finding.kind,
    r.linearizability ?? '-',
  ];
}

/**
 * `vmalock diff --policies A,B [--workload W] [--seed N] [--seeds K] [--threads T] [--calls C]
 * [--strategy pct|random] [--json]`: one workload and seed under two policies, and their first
 * divergence. Exits 0 whenever it ran: a divergence is a result, not an error.
 */
export function diffCommand(args: DiffArgs, io: CliIo): number {
  const policies = args.policies.split(',').map((p) => p.trim());
  if (policies.length !== 2 || policies.some((p) => p === ''))
    throw new UsageError(`--policies: expected two policies separated by a comma (the baseline first), got '${args.policies}'`);
  for (const p of policies) if (!policyNames().includes(p)) throw new UsageError(`--policies: unknown policy '${p}' (known: ${policyNames().join(', ')})`);
  const workload = DIFF_WORKLOADS.find((w) => w.name === args.workload);
  if (workload === undefined) throw new UsageError(`--workload: unknown workload '${args.workload}' (known: ${diffWorkloadNames().join(', ')})`);
  if (args.strategy !== 'pct' && args.strategy !== 'random') throw new UsageError(`--strategy: expected pct or random, got '${args.strategy}'`);
  const seed = seedOf(args.seed);
  const seeds = positiveInt('seeds', args.seeds, 1_000_000);
  const threads = args.threads === undefined ? undefined : positiveInt('threads', args.threads, 64);
  const calls = args.calls === undefined ? undefined : positiveInt('calls', args.calls, 10_000);
  const pctDepth = positiveInt('pct-depth', args.pctDepth, 10);
  try {
    diffParams(workload, threads, calls);
  } catch (e) {
    throw new UsageError(`--threads: ${e instanceof Error ? e.message : String(e)}`);
  }
  const result = findDivergence(
    {
      policies: [policies[0]!, policies[1]!],
      workload,
      strategy: args.strategy,
      pctDepth,
      ...(threads !== undefined ? { threads } : {}),
      ...(calls !== undefined ? { calls } : {}),
    },
    seed,
    seeds,
  );
  const replay = replayCommand(result, workload.fixedThreads !== null, pctDepth);
  const description = describeDivergence(result.divergence, result.policies);
  const explanation = explainDivergence(result);
  if (args.json) {
    io.out(
      `${JSON.stringify({
        seed: result.seed,
        strategy: result.strategy,
        workload: result.workload,
        threads: result.threads,
        calls: result.calls,
        policies: result.policies,
        seedsRun: result.seedsRun,
        runs: result.runs,
        divergence: result.divergence,
        description,
        explanation,
        replay,
      })}\n`,
    );
    return ExitCode.ok;
  }
  io.out(`seed=${result.seed} strategy=${result.strategy} workload=${result.workload} threads=${result.threads} calls=${result.calls}\n\n`);
  io.out(formatTable(['policy', 'status', 'steps', 'calls', 'expectations', 'broken', 'finding', 'linearizability'], result.runs.map(runRow)));
  const searched =
    seeds === 1
      ? ''
      : result.divergence === null
        ? ` in ${seeds} seeds (${seed}..${seed + seeds - 1})`
        : ` (after ${result.seedsRun} of ${seeds} seeds from ${seed})`;
  io.out(`\n${result.divergence === null ? `no divergence${searched}` : `first divergence${searched}: ${description}`}\n`);
  if (explanation !== null) io.out(`  ${explanation}\n`);
  io.out(`replay: ${replay}\n`);
  return ExitCode.ok;
}
