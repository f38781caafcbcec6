// `vmalock merge DIR...`: the checks that the shards given belong together — one command, one
// run (the same options, for `run` the same resolved plan and seed), each shard 1..n exactly once
// — and the join of their outcomes, search by search, in shard order (= schedule order).
import type { SubsystemVariant } from '@vmalock/core';
import type { SubsystemEntry } from '@vmalock/subsystems';
import { UsageError } from '../cliSupport.js';
import type { FlagOptions, ScheduleOutcome } from '../flag/flag.js';
import { shardName, shardUnit } from './shard.js';
import { type ShardFile, readShardFile } from './shardFile.js';

/** Shards that belong together, ordered 1..n, with the directory each came from. */
export interface ShardSet<F extends ShardFile = ShardFile> {
  readonly shards: readonly F[];
  readonly dirs: readonly string[];
}

/** One search as the merging side computes it from the run's options. */
export interface ExpectedSearch {
  readonly label: string;
  readonly entry: SubsystemEntry;
  readonly variant: SubsystemVariant;
  readonly options: FlagOptions;
}

/** What makes two shards parts of one run, field by field, in the order a difference is reported. */
function identity(file: ShardFile): [string, unknown][] {
  const head: [string, unknown][] = [
    ['command', file.command],
    ['shard count', file.shard.count],
  ];
  if (file.command === 'flag') return [...head, ...Object.entries(file.run)];
  return [...head, ['plan', file.run.plan], ['seed', file.run.seed], ['keepGoing', file.run.keepGoing]];
}

const shown = (v: unknown): string => {
  const text = JSON.stringify(v) ?? 'undefined';
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
};

/** How `b`'s run differs from `a`'s (the first field that differs), or null when they are one run. */
function runDifference(a: ShardFile, b: ShardFile): string | null {
  const fa = identity(a);
  const fb = new Map(identity(b));
  for (const [field, va] of fa) {
    const vb = fb.get(field);
    if (JSON.stringify(va) === JSON.stringify(vb)) continue;
    if (field === 'plan') {
      const na = (va as { name: string }).name;
      const nb = (vb as { name: string }).name;
      return na !== nb ? `plan '${na}' vs '${nb}'` : `plan '${na}': its contents differ`;
    }
    return `${field}: ${shown(va)} vs ${shown(vb)}`;
  }
  return null;
}

/**
 * Read the shards in `dirs` and check they belong together: one run, each shard 1..n exactly
 * once. Throws `UsageError` (one line) otherwise.
 */
export function readShardSet(dirs: readonly string[]): ShardSet {
  if (dirs.length === 0) throw new UsageError('merge: give the --out directories of the shards');
  const files = dirs.map((d) => readShardFile(d));
  const first = files[0]!;
  for (const [k, f] of files.entries()) {
    const difference = runDifference(first, f);
    if (difference !== null) throw new UsageError(`merge: '${dirs[k]}' is a shard of another run than '${dirs[0]}' (${difference})`);
  }
  const count = first.shard.count;
  const byIndex = new Map<number, number>();
  for (const [k, f] of files.entries()) {
    const other = byIndex.get(f.shard.index);
    if (other !== undefined) throw new UsageError(`merge: shard ${shardName(f.shard)} is given twice ('${dirs[other]}' and '${dirs[k]}')`);
    byIndex.set(f.shard.index, k);
  }
  const missing: string[] = [];
  for (let i = 1; i <= count; i++) if (!byIndex.has(i)) missing.push(shardName({ index: i, count }));
  if (missing.length > 0) {
    const given = [...byIndex.keys()].sort((a, b) => a - b).map((i) => shardName({ index: i, count }));
    throw new UsageError(`merge: ${missing.length === 1 ? 'shard' : 'shards'} ${missing.join(', ')} missing (given: ${given.join(', ')})`);
  }
  const order = [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, k]) => k);
  return { shards: order.map((k) => files[k]!), dirs: order.map((k) => dirs[k]!) };
}

/**
 * Each expected search's outcomes, the shards' slices joined in shard order. Checks that every
 * shard ran exactly these searches and the slice `--shard` gives it. Throws `UsageError`.
 */
export function joinOutcomes(set: ShardSet, expected: readonly ExpectedSearch[]): ScheduleOutcome[][] {
  const joined: ScheduleOutcome[][] = expected.map(() => []);
  for (const [k, file] of set.shards.entries()) {
    const where = `merge: '${set.dirs[k]}' (shard ${shardName(file.shard)})`;
    if (file.searches.length !== expected.length || file.searches.some((s, j) => s.search !== expected[j]!.label)) {
      const j = expected.findIndex((e, x) => file.searches[x]?.search !== e.label);
      const at = j === -1 ? expected.length : j;
      throw new UsageError(
        `${where} ran other searches than its run has: search ${at + 1} is ${shown(file.searches[at]?.search ?? 'none')}, expected ${shown(expected[at]?.label ?? 'none')}`,
      );
    }
    for (const [j, e] of expected.entries()) {
      const s = file.searches[j]!;
      const unit = shardUnit(e.options, e.variant, file.shard);
      if (s.from !== unit.from || s.to !== unit.to)
        throw new UsageError(`${where}: search '${e.label}' covers [${s.from}, ${s.to}), expected [${unit.from}, ${unit.to})`);
      if (e.options.strategy !== 'bounded' && s.outcomes.length !== s.to - s.from)
        throw new UsageError(`${where}: search '${e.label}' has ${s.outcomes.length} outcomes for ${s.to - s.from} schedules`);
      joined[j]!.push(...s.outcomes);
    }
  }
  return joined;
}
