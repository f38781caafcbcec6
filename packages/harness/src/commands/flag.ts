import { policyNames } from '@vmalock/policies';
import { SUBSYSTEMS, type SubsystemEntry } from '@vmalock/subsystems';
import { type CliIo, ExitCode, UsageError, formatTable, positiveInt, progressBar, seedOf, writeFileAtomic } from '../cliSupport.js';
import { type FlagOptions, type FlagStrategy, flagParallel, flagReplayTrace, flagStrategies } from '../flag/flag.js';
import { SubsystemLoadError, loadSubsystemFile } from '../wiring/loadSubsystem.js';
import { type FlagPrecomputed, flagShard } from '../shard/flagShard.js';
import { parseShard } from '../shard/shard.js';
import { type FlagShardRun, writeShard } from '../shard/shardFile.js';
import { checkOutDir } from './run.js';

/** Arguments of `vmalock flag`. */
export interface FlagArgs {
  readonly policy: string;
  readonly subsystem: readonly string[];
  readonly variant: string | undefined;
  readonly schedules: number;
  readonly pctDepth: number;
  readonly strategy: string;
  readonly preemptions: number;
  readonly jobs: number;
  readonly seed: number | undefined;
  readonly schedule: string | undefined;
  readonly trace: string | undefined;
  readonly json: boolean;
  /** `--shard i/n`: run this slice of every search and write it (shard.json) into `out`, for `vmalock merge`. */
  readonly shard?: string | undefined;
  readonly out?: string | undefined;
}

/** `vmalock flag --policy P [--subsystem NAME|./file.js ...] [--schedules N] [--json]`: the verdict table. Exits 0 whatever the verdicts. */
export async function flagCommand(args: FlagArgs, io: CliIo, merged?: FlagPrecomputed): Promise<number> {
  if (!policyNames().includes(args.policy)) throw new UsageError(`--policy: unknown policy '${args.policy}' (known: ${policyNames().join(', ')})`);
  const schedules = positiveInt('schedules', args.schedules, 1_000_000);
  const depth = positiveInt('pct-depth', args.pctDepth, 10);
  if (!(flagStrategies as readonly string[]).includes(args.strategy))
    throw new UsageError(`--strategy: unknown strategy '${args.strategy}' (known: ${flagStrategies.join(', ')})`);
  const preemptions = Number(args.preemptions);
  if (!Number.isInteger(preemptions) || preemptions < 0 || preemptions > 10)
    throw new UsageError(`--preemptions must be an integer in 0..10, got '${String(args.preemptions)}'`);
  const jobs = positiveInt('jobs', args.jobs, 256);
  if (args.variant !== undefined && args.variant !== 'legacy' && args.variant !== 'converted')
    throw new UsageError(`--variant: expected legacy or converted, got '${args.variant}'`);
  if ((args.seed === undefined) !== (args.schedule === undefined)) throw new UsageError('--seed and --schedule replay one run: give both');
  const shard = args.shard === undefined ? undefined : parseShard(args.shard);
  if (shard !== undefined && args.seed !== undefined) throw new UsageError('--shard splits a search over many schedules; --seed and --schedule replay one run');
  if ((shard !== undefined) !== (args.out !== undefined))
    throw new UsageError(
      shard !== undefined
        ? '--shard needs --out DIR: a shard writes its part (shard.json) there, for vmalock merge'
        : "--out writes a shard's part: give --shard i/n too",
    );
  if (args.out !== undefined) checkOutDir(args.out);
  const entries: SubsystemEntry[] = [];
  for (const name of args.subsystem) {
    if (name.includes('/') || name.endsWith('.js') || name.endsWith('.mjs') || name.endsWith('.ts')) {
      try {
        entries.push(await loadSubsystemFile(name));
      } catch (e) {
        if (e instanceof SubsystemLoadError) throw new UsageError(e.message);
        throw e;
      }
      continue;
    }
    const entry = SUBSYSTEMS.find((s) => s.name === name);
    if (entry === undefined)
      throw new UsageError(`--subsystem: unknown subsystem '${name}' (known: ${SUBSYSTEMS.map((s) => s.name).join(', ')}; or a path to a .js file)`);
    entries.push(entry);
  }
  if (args.trace !== undefined) {
    if (args.seed === undefined || args.schedule === undefined || entries.length !== 1 || args.variant === undefined)
      throw new UsageError('--trace writes the timeline of one replay: give one --subsystem, its --variant, --seed and --schedule');
    const json = flagReplayTrace(entries[0]!, { policy: args.policy, pctDepth: depth }, args.variant, seedOf(args.seed), args.schedule);
    writeFileAtomic(args.trace, json);
    io.err(`flag: wrote the replay's timeline to ${args.trace} (open it in https://ui.perfetto.dev)\n`);
  }
  const bar = progressBar('flag');
  const options: FlagOptions = {
    policy: args.policy,
    subsystems: entries.length > 0 ? entries : SUBSYSTEMS,
    schedules,
    pctDepth: depth,
    strategy: args.strategy as FlagStrategy,
    preemptionBound: preemptions,
    ...(args.variant !== undefined ? { variants: [args.variant] } : {}),
    ...(args.seed !== undefined && args.schedule !== undefined ? { replay: { seed: seedOf(args.seed), schedule: args.schedule } } : {}),
    // A progress bar on a terminal (stderr), cleared when done.
    progress: (done: number, total: number) => bar.update(done, total, 'subsystem variants'),
  };
  if (shard !== undefined) {
    const run: FlagShardRun = {
      policy: args.policy,
      subsystem: [...args.subsystem],
      variant: args.variant === 'legacy' || args.variant === 'converted' ? args.variant : null,
      schedules,
      pctDepth: depth,
      strategy: args.strategy as FlagStrategy,
      preemptions,
    };
    const file = await flagShard(run, options, shard, jobs);
    bar.stop();
    return writeShard(args.out!, file, io, { json: args.json, quiet: false });
  }
  // `vmalock merge`: the verdicts of the shards' joined outcomes.
  const result = merged !== undefined ? merged(options) : await flagParallel(options, jobs);
  bar.stop();
  if (args.json) {
    const verdicts = result.verdicts.map((v) => ({
      subsystem: v.subsystem,
      variant: v.variant,
      verdict: v.verdict,
      declared: v.declared,
      undeclared: v.undeclared,
      schedules: v.schedules,
      strategy: v.strategy,
      depth: v.depth,
      missProbability: v.missProbability,
      hookCounts: v.hookCounts,
      findings: v.findings.map((f) => ({
        id: f.id,
        kind: f.kind,
        declared: f.declared,
        evidence: f.evidence,
        seed: f.seed,
        schedule: f.schedule,
        minimised: f.minimised,
        replay: f.replay,
        ...(f.lockOrder !== undefined ? { lockOrder: f.lockOrder } : {}),
      })),
    }));
    io.out(`${JSON.stringify({ policy: result.policy, verdicts })}\n`);
    return ExitCode.ok;
  }
  const rows = result.verdicts.map((v) => [
    v.subsystem,
    v.variant,
    v.verdict,
    String(v.declared),
    String(v.undeclared),
    String(v.schedules),
    v.strategy,
    v.verdict === 'safe' && v.missProbability !== null
      ? `P(missed depth-${v.depth} bug) <= ${v.missProbability.toPrecision(3)}`
      : v.verdict === 'not exercised'
        ? `hooks: ${Object.entries(v.hookCounts)
            .map(([k, n]) => `${k} ${n}`)
            .join(', ')}`
        : '',
  ]);
  io.out(`${formatTable(['subsystem', 'variant', 'verdict', 'declared', 'undeclared', 'schedules', 'strategy', 'bound / coverage'], rows)}\n`);
  for (const v of result.verdicts)
    for (const f of v.findings)
      io.out(
        `\n${f.id} (${f.kind}${f.lockOrder !== undefined ? ` ${f.lockOrder}` : ''}, ${f.declared === true ? 'declared' : 'undeclared'}) ${v.subsystem} ${v.variant}: ${f.evidence}\n  replay: ${f.replay}\n`,
      );
  return ExitCode.ok;
}
