import { type CliIo, UsageError } from '../cliSupport.js';
import { flagFromShards } from '../shard/flagShard.js';
import { readShardSet, type ShardSet } from '../shard/merge.js';
import { planFromShards } from '../shard/planShard.js';
import type { FlagShardFile, PlanShardFile } from '../shard/shardFile.js';
import { flagCommand } from './flag.js';
import { runCommand } from './run.js';

/** Arguments of `vmalock merge`. */
export interface MergeArgs {
  /** The shards' `--out` directories, in any order. */
  readonly dirs: readonly string[];
  readonly out: string | undefined;
  readonly json: boolean;
  readonly quiet: boolean;
}

/**
 * `vmalock merge DIR...`: join the shards of one `vmalock run` or `vmalock flag` (each written by
 * `--shard i/n --out DIR`) into the report the unsharded command gives — the same command runs
 * again, its searches' outcomes taken from the shards instead of run, so its table, `--json`,
 * `--out` report and exit code are the unsharded run's. Shards that do not belong together
 * (another run, a shard twice, one missing) are one error line, exit 2.
 */
export async function mergeCommand(args: MergeArgs, io: CliIo): Promise<number> {
  const set = readShardSet(args.dirs);
  const first = set.shards[0]!;
  if (first.command === 'flag') {
    if (args.out !== undefined || args.quiet)
      throw new UsageError(
        `merge: ${args.out !== undefined ? '--out' : '--quiet'} is for the shards of vmalock run; flag shards merge into the verdicts on stdout`,
      );
    const run = first.run;
    return flagCommand(
      {
        policy: run.policy,
        subsystem: run.subsystem,
        variant: run.variant ?? undefined,
        schedules: run.schedules,
        pctDepth: run.pctDepth,
        strategy: run.strategy,
        preemptions: run.preemptions,
        jobs: 1,
        seed: undefined,
        schedule: undefined,
        trace: undefined,
        json: args.json,
      },
      io,
      flagFromShards(set as ShardSet<FlagShardFile>),
    );
  }
  const run = first.run;
  return runCommand(
    { plan: run.planFile ?? undefined, seed: run.seedArg ?? undefined, keepGoing: run.keepGoing, jobs: 1, out: args.out, json: args.json, quiet: args.quiet },
    io,
    planFromShards(set as ShardSet<PlanShardFile>),
  );
}
