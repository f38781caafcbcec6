// `--shard i/n`: which slice of a search a shard runs. A search (one subsystem variant under one
// policy) is a range of units — schedules, or for the bounded search program seeds — and shard i
// of n runs units [floor((i-1)N/n), floor(iN/n)): the n slices cover [0, N) once, in order, so
// joining the shards' outcomes in shard order gives the outcomes of the unsharded search.
import type { SubsystemVariant } from '@vmalock/core';
import { UsageError } from '../cliSupport.js';
import { type FlagOptions, type FlagUnit, unitsOf } from '../flag/flag.js';

/** One shard of a run: the `index`-th (1-based) of `count`. */
export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** The most shards a run may be cut into. */
export const SHARD_COUNT_MAX = 1024;

/** `i/n` as the command line writes it. */
export function shardName(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}

/** Parse `--shard i/n` (integers, 1 <= i <= n <= 1024). Throws `UsageError`. */
export function parseShard(value: unknown): Shard {
  const text = String(value);
  const m = /^(\d{1,9})\/(\d{1,9})$/.exec(text);
  const index = m === null ? NaN : Number(m[1]);
  const count = m === null ? NaN : Number(m[2]);
  if (!(index >= 1 && index <= count)) throw new UsageError(`--shard: expected i/n with 1 <= i <= n, got '${text}'`);
  if (count > SHARD_COUNT_MAX) throw new UsageError(`--shard: at most ${SHARD_COUNT_MAX} shards, got '${text}'`);
  return { index, count };
}

/** Units `[from, to)` of `total` that `shard` runs. */
export function shardSlice(total: number, shard: Shard): { from: number; to: number } {
  return { from: Math.floor(((shard.index - 1) * total) / shard.count), to: Math.floor((shard.index * total) / shard.count) };
}

/** The unit of one search (a subsystem variant under `options`) that `shard` runs: possibly empty when the search has fewer units than shards. */
export function shardUnit(options: FlagOptions, variant: SubsystemVariant, shard: Shard): FlagUnit {
  const whole = unitsOf(options, variant, 1)[0]!;
  return { ...whole, ...shardSlice(whole.to - whole.from, shard) };
}

/** `unit` cut in `pieces` consecutive units (for worker threads), the empty ones left out. */
export function splitUnit(unit: FlagUnit, pieces: number): FlagUnit[] {
  const n = unit.to - unit.from;
  const out: FlagUnit[] = [];
  for (let k = 0; k < pieces; k++) {
    const from = unit.from + Math.floor((k * n) / pieces);
    const to = unit.from + Math.floor(((k + 1) * n) / pieces);
    if (to > from) out.push({ ...unit, from, to });
  }
  return out;
}
