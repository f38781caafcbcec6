// `vmalock run --shard i/n --out DIR` and the run side of `vmalock merge`. A shard runs its slice
// of every finding search of every phase — blocked or not: whether a phase is blocked depends on
// the findings of all shards, so only the merge can tell, and it ignores what a blocked phase's
// searches found, as the unsharded run never runs them. Shard 1 also measures every phase's
// throughput and the scaling points (cheap, and the same on any machine: simulated time). The
// merge hands all of it to `runPlan` (`precomputed`), which decides the baseline, verdicts, gates
// and blocking exactly as the unsharded run does.
import { UsageError } from '../cliSupport.js';
import type { LoadedPlan } from '../plan/load.js';
import type { ResolvedPlan } from '../plan/resolve.js';
import { type PlanPrecomputed, measurePhase, measureScaling, phaseSearches } from '../run/runPlan.js';
import { type ExpectedSearch, type ShardSet, joinOutcomes } from './merge.js';
import { runSlices } from './outcomes.js';
import type { Shard } from './shard.js';
import { type PlanShardFile, type PlanShardRun, SHARD_FILE_VERSION } from './shardFile.js';

/** A plan as the run command loaded it. */
export type PlanSource = Pick<LoadedPlan, 'resolved' | 'subsystemFiles'>;

/** Builds, for the plan the run command loaded and the seed it runs, what the merged shards computed (`RunPlanOptions.precomputed`). */
export type PlanPrecomputedSource = (loaded: PlanSource, seed: number) => PlanPrecomputed;

/** Every phase's searches, in plan order, labelled. */
function planSearches(loaded: PlanSource): ExpectedSearch[][] {
  return loaded.resolved.phases.map((phase) =>
    phaseSearches(loaded.resolved, phase, loaded.subsystemFiles).map((s) => ({
      label: `${phase.name}: ${s.entry.name} ${s.variant} under ${s.policy}`,
      entry: s.entry,
      variant: s.variant,
      options: s.options,
    })),
  );
}

/** Run `shard`'s part of the plan on `jobs` worker threads: the shard's file. */
export async function planShard(
  loaded: PlanSource,
  run: Omit<PlanShardRun, 'plan' | 'seed'>,
  seed: number,
  shard: Shard,
  jobs: number,
  progress?: (message: string) => void,
): Promise<PlanShardFile> {
  const plan: ResolvedPlan = loaded.resolved;
  const files = loaded.subsystemFiles;
  const searches = planSearches(loaded).flat();
  const slices = await runSlices(searches, shard, jobs, (done, total) => progress?.(`shard ${shard.index}/${shard.count}: ${done}/${total} searches`));
  const first = shard.index === 1;
  const measurements = first
    ? plan.phases.map((phase) => {
        progress?.(`phase ${phase.name}: measuring throughput`);
        return measurePhase(plan, phase, seed, files);
      })
    : null;
  return {
    format: 'vmalock-shard',
    version: SHARD_FILE_VERSION,
    command: 'run',
    shard,
    run: { ...run, seed, plan },
    searches: slices.map((s, k) => ({ search: searches[k]!.label, ...s })),
    measurements,
    scaling: first ? measureScaling(plan, seed, files, progress) : null,
  };
}

/**
 * What `set`'s shards computed, for the plan the merge loaded: checked to be the plan and seed
 * the shards ran (a plan file changed since is an error), each search's outcomes joined.
 */
export function planFromShards(set: ShardSet<PlanShardFile>): PlanPrecomputedSource {
  return (loaded, seed) => {
    const run = set.shards[0]!.run;
    if (JSON.stringify(loaded.resolved) !== JSON.stringify(run.plan))
      throw new UsageError(`merge: the plan ${run.planFile === null ? 'built in' : `'${run.planFile}'`} is not the one the shards ran (it changed since)`);
    if (seed !== run.seed) throw new UsageError(`merge: seed ${seed} is not the shards' seed ${run.seed}`);
    const expected = planSearches(loaded);
    const joined = joinOutcomes(set, expected.flat());
    const byPhase: (typeof joined)[] = [];
    let k = 0;
    for (const phase of expected) {
      byPhase.push(joined.slice(k, k + phase.length));
      k += phase.length;
    }
    const measurements = set.shards[0]!.measurements;
    const scaling = set.shards[0]!.scaling;
    if (measurements === null || scaling === null || measurements.length !== loaded.resolved.phases.length)
      throw new UsageError(`merge: '${set.dirs[0]}' (shard 1) lacks the phases' measurements`);
    return {
      measurement: (i) => measurements[i]!,
      outcomes: (i, j) => byPhase[i]![j]!,
      scaling,
    };
  };
}
