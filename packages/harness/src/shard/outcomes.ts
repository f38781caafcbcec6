// Running a shard's slices of many searches, here or on worker threads (`--jobs N`), and keeping
// their raw outcomes: a shard records what each of its schedules showed, and `vmalock merge`
// turns the joined outcomes into verdicts.
import type { SubsystemVariant } from '@vmalock/core';
import type { SubsystemEntry } from '@vmalock/subsystems';
import { type FlagOptions, type FlagUnit, type ScheduleOutcome, flagPool, runUnit } from '../flag/flag.js';
import type { FlagTask } from '../flag/worker.js';
import { subsystemSource } from '../wiring/loadSubsystem.js';
import { type Shard, shardUnit, splitUnit } from './shard.js';

/** One search a shard takes part in: a subsystem variant under flag options. */
export interface SliceSearch {
  readonly entry: SubsystemEntry;
  readonly variant: SubsystemVariant;
  readonly options: FlagOptions;
}

/** What a shard ran of one search: its unit range and the outcomes, in schedule order. */
export interface SliceOutcomes {
  readonly from: number;
  readonly to: number;
  readonly outcomes: ScheduleOutcome[];
}

/**
 * Run `shard`'s slice of every search, on `jobs` worker threads (one: here). The outcomes depend
 * on nothing but the units, so they are the same for any `jobs`. `done` is told after each search.
 */
export async function runSlices(
  searches: readonly SliceSearch[],
  shard: Shard,
  jobs: number,
  done?: (count: number, total: number) => void,
): Promise<SliceOutcomes[]> {
  const units = searches.map((s) => shardUnit(s.options, s.variant, shard));
  if (jobs <= 1) {
    return searches.map((s, k) => {
      const unit = units[k]!;
      const outcomes = unit.to > unit.from ? runUnit(s.entry, unit) : [];
      done?.(k + 1, searches.length);
      return { from: unit.from, to: unit.to, outcomes };
    });
  }
  const pool = flagPool(jobs);
  try {
    // Every piece of every search goes to the pool at once; each search's outcomes are then taken in piece order.
    const pending = searches.map((s, k) => {
      const path = subsystemSource(s.entry);
      const subsystem = path !== null ? { path } : { name: s.entry.name };
      const parts = Promise.all(
        splitUnit(units[k]!, jobs * 2).map((unit: FlagUnit) => pool.run({ subsystem, unit } satisfies FlagTask) as Promise<ScheduleOutcome[]>),
      );
      parts.catch(() => undefined); // a worker's failure surfaces where it is awaited below
      return parts;
    });
    const out: SliceOutcomes[] = [];
    for (const [k, parts] of pending.entries()) {
      const unit = units[k]!;
      out.push({ from: unit.from, to: unit.to, outcomes: (await parts).flat() });
      done?.(k + 1, searches.length);
    }
    return out;
  } finally {
    await pool.destroy();
  }
}
