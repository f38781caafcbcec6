// `vmalock flag --shard i/n --out DIR` and the flag side of `vmalock merge`: a shard runs its slice
// of every (subsystem, variant) search and records the outcomes; merge joins them and turns each
// search's outcomes into its verdict with `verdictOf`, as the unsharded `flag` does.
import type { SubsystemVariant } from '@vmalock/core';
import { type FlagOptions, type Verdict, verdictOf } from '../flag/flag.js';
import { type ExpectedSearch, type ShardSet, joinOutcomes } from './merge.js';
import { runSlices } from './outcomes.js';
import type { Shard } from './shard.js';
import { type FlagShardFile, type FlagShardRun, SHARD_FILE_VERSION } from './shardFile.js';

/** The verdicts of a flag run computed elsewhere (merged shards), in place of `flagParallel`. */
export type FlagPrecomputed = (options: FlagOptions) => { policy: string; verdicts: Verdict[] };

/** The searches of a flag run: each subsystem, each variant, in that order (as `flag` runs them). */
function flagSearches(options: FlagOptions): ExpectedSearch[] {
  const variants: readonly SubsystemVariant[] = options.variants ?? ['legacy', 'converted'];
  return options.subsystems.flatMap((entry) => variants.map((variant) => ({ label: `${entry.name} ${variant}`, entry, variant, options })));
}

/** Run `shard`'s slice of every search of `options` on `jobs` worker threads: the shard's file. */
export async function flagShard(run: FlagShardRun, options: FlagOptions, shard: Shard, jobs: number): Promise<FlagShardFile> {
  const expected = flagSearches(options);
  const slices = await runSlices(expected, shard, jobs, options.progress);
  return {
    format: 'vmalock-shard',
    version: SHARD_FILE_VERSION,
    command: 'flag',
    shard,
    run,
    searches: slices.map((s, k) => ({ search: expected[k]!.label, ...s })),
  };
}

/** The merged verdicts of `set`'s shards: each search's joined outcomes through `verdictOf`. */
export function flagFromShards(set: ShardSet<FlagShardFile>): FlagPrecomputed {
  return (options) => {
    const expected = flagSearches(options);
    const outcomes = joinOutcomes(set, expected);
    const verdicts = expected.map((e, k) => {
      const v = verdictOf(e.entry, options, e.variant, outcomes[k]!);
      options.progress?.(k + 1, expected.length);
      return v;
    });
    return { policy: options.policy, verdicts };
  };
}
