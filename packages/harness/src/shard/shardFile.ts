// The part of a run one shard writes: `DIR/shard.json`, where `vmalock run|flag --shard i/n --out
// DIR` leaves it for `vmalock merge`. It holds the shard's raw schedule outcomes per search and
// what merge needs to finish the run as the unsharded command would: the command's options (the
// resolved plan for `run`), the shard i/n, and for `run`'s shard 1 the phases' throughput
// measurements and the scaling points. Versioned; validated on reading (zod), so a garbled or
// foreign file is one clear error line.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import * as z from 'zod';
import { type CliIo, ExitCode, UsageError } from '../cliSupport.js';
import { type FlagStrategy, type ScheduleOutcome, flagStrategies } from '../flag/flag.js';
import { FINDING_KINDS } from '../plan/schema.js';
import type { PhaseMeasurement, ScalingPoint } from '../run/runPlan.js';
import { shardName } from './shard.js';

/** The version of shard.json's layout; merge reads this version only. */
export const SHARD_FILE_VERSION = 1;

/** The name of a shard's file in its `--out` directory. */
export const SHARD_FILE = 'shard.json';

/** What a shard ran of one search: its label, its unit range `[from, to)`, and the outcomes in schedule order. */
export interface ShardSearch {
  readonly search: string;
  readonly from: number;
  readonly to: number;
  readonly outcomes: readonly ScheduleOutcome[];
}

/** A `vmalock flag` run, as its shards record it (the command's options, normalised). */
export interface FlagShardRun {
  readonly policy: string;
  /** `--subsystem` as given (built-in names or paths); empty: every built-in subsystem. */
  readonly subsystem: readonly string[];
  readonly variant: 'legacy' | 'converted' | null;
  readonly schedules: number;
  readonly pctDepth: number;
  readonly strategy: FlagStrategy;
  readonly preemptions: number;
}

/** A `vmalock run`, as its shards record it. */
export interface PlanShardRun {
  /** The plan file as given (null: the built-in plan); merge loads it again. */
  readonly planFile: string | null;
  /** `--seed` as given (null: the plan's). */
  readonly seedArg: number | null;
  readonly keepGoing: boolean;
  /** The seed the run used. */
  readonly seed: number;
  /** The resolved plan the shard ran (merge checks the plan it loads is this one). */
  readonly plan: unknown;
}

interface ShardFileBase {
  readonly format: 'vmalock-shard';
  readonly version: typeof SHARD_FILE_VERSION;
  readonly shard: { readonly index: number; readonly count: number };
  readonly searches: readonly ShardSearch[];
}

export interface FlagShardFile extends ShardFileBase {
  readonly command: 'flag';
  readonly run: FlagShardRun;
}

export interface PlanShardFile extends ShardFileBase {
  readonly command: 'run';
  readonly run: PlanShardRun;
  /** Shard 1: every phase's measurement, in plan order; the other shards: null. */
  readonly measurements: readonly PhaseMeasurement[] | null;
  /** Shard 1: the scaling points; the other shards: null. */
  readonly scaling: readonly ScalingPoint[] | null;
}

export type ShardFile = FlagShardFile | PlanShardFile;

const count = z.number().int().nonnegative();

const outcomeSchema = z.strictObject({
  seed: count,
  strategy: z.enum(['pct', 'random', 'bounded', 'replay']),
  schedule: z.string(),
  pctBound: z.number().nullable(),
  hookCounts: z.record(z.string(), count),
  problems: z.array(z.strictObject({ kind: z.enum(FINDING_KINDS), signature: z.string(), message: z.string(), location: z.string().nullable() })),
});

const base = {
  format: z.literal('vmalock-shard'),
  version: z.literal(SHARD_FILE_VERSION),
  shard: z.strictObject({ index: z.number().int().min(1), count: z.number().int().min(1) }),
  searches: z.array(z.strictObject({ search: z.string(), from: count, to: count, outcomes: z.array(outcomeSchema) })),
};

const measurementSchema = z.strictObject({
  processes: z.array(z.strictObject({ name: z.string(), throughput: z.number().nullable(), ops: count })),
  machine: z.strictObject({ status: z.string(), summary: z.string() }),
  lockWaits: z.array(
    z.strictObject({ lockClass: z.string(), acquisitions: count, waitNsTotal: z.number(), p50Ns: z.number(), p90Ns: z.number(), p99Ns: z.number() }),
  ),
});

const scalingSchema = z.strictObject({ process: z.string(), workload: z.string(), policy: z.string(), threads: count, throughput: z.number().nullable() });

const shardFileSchema = z.discriminatedUnion('command', [
  z.strictObject({
    ...base,
    command: z.literal('flag'),
    run: z.strictObject({
      policy: z.string(),
      subsystem: z.array(z.string()),
      variant: z.enum(['legacy', 'converted']).nullable(),
      schedules: z.number().int().min(1),
      pctDepth: z.number().int().min(1),
      strategy: z.enum(flagStrategies),
      preemptions: count,
    }),
  }),
  z.strictObject({
    ...base,
    command: z.literal('run'),
    run: z.strictObject({
      planFile: z.string().nullable(),
      seedArg: count.nullable(),
      keepGoing: z.boolean(),
      seed: count,
      plan: z.looseObject({ name: z.string(), phases: z.array(z.unknown()) }),
    }),
    measurements: z.array(measurementSchema).nullable(),
    scaling: z.array(scalingSchema).nullable(),
  }),
]);

/**
 * Write `file` as `dir/shard.json`, all or nothing: into a sibling directory renamed into place
 * (`dir` is new or empty, as `--out` checked).
 */
export function writeShardFile(dir: string, file: ShardFile): string {
  const target = resolve(dir);
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    writeFileSync(join(tmp, SHARD_FILE), `${JSON.stringify(file)}\n`);
    if (existsSync(target)) rmSync(target, { recursive: true });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return join(dir, SHARD_FILE);
}

/** Read and validate `dir/shard.json`. Throws `UsageError` (one line) when it is missing, garbled, of another version or not a shard file. */
export function readShardFile(dir: string): ShardFile {
  const path = join(dir, SHARD_FILE);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`merge: '${dir}' is not a directory (give the --out directories of the shards)`);
  if (!existsSync(path)) throw new UsageError(`merge: '${dir}' holds no ${SHARD_FILE} (not the --out directory of a vmalock run|flag --shard i/n)`);
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`merge: ${path}: not a shard file: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  const version = (data as { version?: unknown } | null)?.version;
  if ((data as { format?: unknown } | null)?.format === 'vmalock-shard' && version !== SHARD_FILE_VERSION)
    throw new UsageError(`merge: ${path}: shard file version ${String(version)}; this vmalock reads version ${SHARD_FILE_VERSION}`);
  const parsed = shardFileSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.length === 0 ? '' : `${issue.path.map(String).join('.')}: `;
    throw new UsageError(`merge: ${path}: not a shard file: ${at}${issue.message}`);
  }
  if (parsed.data.shard.index > parsed.data.shard.count)
    throw new UsageError(`merge: ${path}: not a shard file: shard ${parsed.data.shard.index}/${parsed.data.shard.count}`);
  // The file as written (the schema only checked it): key order and all, as the shard produced it.
  return data as ShardFile;
}

/**
 * Write a shard's file into `out` and say so: one line on stderr (none with `quiet`), or with
 * `json` one object on stdout. A shard decides no gate: it exits 0; `vmalock merge` decides.
 */
export function writeShard(out: string, file: ShardFile, io: CliIo, print: { json: boolean; quiet: boolean }): number {
  const path = writeShardFile(out, file);
  const summary = {
    shard: shardName(file.shard),
    file: path,
    searches: file.searches.length,
    schedules: file.searches.reduce((n, s) => n + s.outcomes.length, 0),
  };
  if (print.json) io.out(`${JSON.stringify(summary)}\n`);
  else if (!print.quiet)
    io.err(
      `${file.command}: shard ${summary.shard} wrote ${path} (${summary.searches} search${summary.searches === 1 ? '' : 'es'}, ${summary.schedules} schedules); join all ${file.shard.count} with vmalock merge DIR...\n`,
    );
  return ExitCode.ok;
}
