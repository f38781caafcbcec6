import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { type Finding, type SubsystemVariant, decodeSchedule } from '@vmalock/core';
import { policyNames } from '@vmalock/policies';
import { SUBSYSTEMS, type SubsystemEntry } from '@vmalock/subsystems';
import { z } from 'zod';
import { type CliIo, ExitCode, UsageError, seedOf, writeFileAtomic } from '../cliSupport.js';
import { flag, flagReplayTrace } from '../flag/flag.js';
import { SubsystemLoadError, loadSubsystemFile } from '../wiring/loadSubsystem.js';

/** Arguments of `vmalock replay`. */
export interface ReplayArgs {
  /** A finding id from a run's report; undefined: the explicit form. */
  readonly id: string | undefined;
  readonly report: string | undefined;
  readonly policy: string | undefined;
  readonly subsystem: string | undefined;
  readonly variant: string | undefined;
  readonly seed: number | undefined;
  readonly schedule: string | undefined;
  readonly trace: string | undefined;
  readonly json: boolean;
}

/** Where `vmalock replay <id>` looks for a report without `--report`. */
export const DEFAULT_REPORT_DIR = 'vmalock-report';

/** PCT depth of the searches that find what a report lists (flag's and the plans' default); a replay does not depend on it. */
const PCT_DEPTH = 3;

/** One run to replay: what `vmalock flag ... --seed N --schedule X` names. */
export interface ReplayTarget {
  readonly policy: string;
  readonly subsystem: string;
  readonly variant: SubsystemVariant;
  readonly seed: number;
  readonly schedule: string;
}

/** The parts of report.json replay reads (`vmalock run --out DIR`); anything else in it is ignored. */
const reportSchema = z.object({
  version: z.number().int(),
  plan: z.string().optional(),
  phases: z.array(
    z.object({
      name: z.string(),
      findings: z.array(
        z.object({ id: z.string(), kind: z.string(), subsystem: z.string(), variant: z.string(), policy: z.string(), replay: z.string() }).loose(),
      ),
    }),
  ),
  evidence: z.record(z.string(), z.string()).optional(),
});
type Report = z.output<typeof reportSchema>;

/** Split a command line into words as a POSIX shell would for what a replay command holds: bare words, '...' and "..." quoted parts. */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new SyntaxError(`unbalanced ${c} at '${text.slice(i)}'`);
      word = (word ?? '') + text.slice(i + 1, end);
      i = end;
    } else word = (word ?? '') + c;
  }
  if (word !== null) words.push(word);
  return words;
}

/**
 * The run a finding's recorded replay command names: `vmalock flag --policy P --subsystem S
 * --variant V --seed N --schedule 'X'` (as `flag` and `run` print it). Throws SyntaxError naming
 * what is wrong.
 */
export function parseReplayCommand(command: string): ReplayTarget {
  const words = shellWords(command);
  if (words[0] !== 'vmalock' || words[1] !== 'flag') throw new SyntaxError("it does not start with 'vmalock flag'");
  const values = new Map<string, string>();
  for (let i = 2; i < words.length; i += 2) {
    const name = words[i]!;
    const value = words[i + 1];
    if (!/^--(policy|subsystem|variant|seed|schedule)$/.test(name)) throw new SyntaxError(`unexpected '${name}'`);
    if (value === undefined) throw new SyntaxError(`${name} has no value`);
    if (values.has(name)) throw new SyntaxError(`${name} is given twice`);
    values.set(name, value);
  }
  const missing = ['policy', 'subsystem', 'variant', 'seed', 'schedule'].filter((name) => !values.has(`--${name}`));
  if (missing.length > 0) throw new SyntaxError(`missing ${missing.map((m) => `--${m}`).join(', ')}`);
  const need = (name: string): string => values.get(`--${name}`)!;
  const variant = need('variant');
  if (variant !== 'legacy' && variant !== 'converted') throw new SyntaxError(`--variant '${variant}' is not legacy or converted`);
  const seedText = need('seed');
  if (!/^\d+$/.test(seedText) || !Number.isSafeInteger(Number(seedText))) throw new SyntaxError(`--seed '${seedText}' is not a seed`);
  return { policy: need('policy'), subsystem: need('subsystem'), variant, seed: Number(seedText), schedule: need('schedule') };
}

/** Read and check `DIR/report.json`. */
function readReport(dir: string | undefined): { file: string; report: Report } {
  const file = join(dir ?? DEFAULT_REPORT_DIR, 'report.json');
  if (!existsSync(file)) {
    if (dir === undefined)
      throw new UsageError(
        `no report at ./${file}: give --report DIR, the directory a 'vmalock run --out DIR' wrote (or replay with --policy ... --schedule X)`,
      );
    throw new UsageError(`--report: no report.json in '${dir}' (give the directory a 'vmalock run --out DIR' wrote)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`${file}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const parsed = reportSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`${file}: not a vmalock run report: ${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
  }
  return { file, report: parsed.data };
}

/** The subsystem a replay runs: a built-in name, or a .js file (the explicit form only). */
async function entryOf(name: string, fromReport: boolean): Promise<SubsystemEntry> {
  const builtIn = SUBSYSTEMS.find((s) => s.name === name);
  if (builtIn !== undefined) return builtIn;
  if (!fromReport && (name.includes('/') || name.endsWith('.js') || name.endsWith('.mjs') || name.endsWith('.ts'))) {
    try {
      return await loadSubsystemFile(name);
    } catch (e) {
      if (e instanceof SubsystemLoadError) throw new UsageError(e.message);
      throw e;
    }
  }
  if (fromReport)
    throw new UsageError(
      `the finding is of subsystem '${name}', which is not built in: replay it with --subsystem ./its-file.js and the --policy, --variant, --seed and --schedule of its replay command`,
    );
  throw new UsageError(`--subsystem: unknown subsystem '${name}' (known: ${SUBSYSTEMS.map((s) => s.name).join(', ')}; or a path to a .js file)`);
}

/** The policy is known and the schedule reads; `where` prefixes each error (the option, or the report's finding). */
function checkTarget(t: ReplayTarget, where: { policy: string; schedule: string }): void {
  if (!policyNames().includes(t.policy)) throw new UsageError(`${where.policy}: unknown policy '${t.policy}' (known: ${policyNames().join(', ')})`);
  try {
    decodeSchedule(t.schedule);
  } catch (e) {
    throw new UsageError(`${where.schedule}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function replayLine(t: ReplayTarget): string {
  return `vmalock replay --policy ${t.policy} --subsystem ${t.subsystem} --variant ${t.variant} --seed ${t.seed} --schedule '${t.schedule}'`;
}

/** The engine's `diverged` run, as flag reports it: the schedule names a thread that cannot run, or ends early. */
function isDivergence(f: Finding): boolean {
  return f.kind === 'error' && /^the schedule (runs thread T\d+ at step \d+, but it is not runnable|ends at step \d+, but)/.test(f.evidence);
}

function findingJson(f: Finding) {
  return {
    id: f.id,
    kind: f.kind,
    declared: f.declared,
    evidence: f.evidence,
    replay: f.replay,
    ...(f.lockOrder !== undefined ? { lockOrder: f.lockOrder } : {}),
  };
}

/**
 * `vmalock replay <finding-id> [--report DIR]` or `vmalock replay --policy P --subsystem S
 * --variant V --seed N --schedule X`: run the one schedule again (as `vmalock flag ... --seed N
 * --schedule X` does) and say whether it breaks again. With an id, the run is the one its
 * report's replay command names, and it reproduced when the replay shows the same finding id;
 * in the explicit form, when the replay shows any finding. `--trace FILE` writes the replay's
 * Perfetto timeline. Exit 0 reproduced, 1 not, 2 on bad input (an unknown id among them).
 */
export async function replayCommand(args: ReplayArgs, io: CliIo): Promise<number> {
  const explicit = [args.policy, args.subsystem, args.variant, args.seed, args.schedule].some((v) => v !== undefined);
  let target: ReplayTarget;
  let recorded: { id: string; kind: string; phase: string; phases: string[]; evidence: string | null } | null = null;
  if (args.id !== undefined) {
    if (explicit) throw new UsageError('give a finding id, or --policy, --subsystem, --variant, --seed and --schedule, not both');
    const { file, report } = readReport(args.report);
    const all = report.phases.flatMap((p) => p.findings.map((f) => ({ ...f, phase: p.name })));
    const found = all.filter((f) => f.id === args.id);
    const first = found[0];
    if (first === undefined) {
      const ids = [...new Set(all.map((f) => f.id))];
      throw new UsageError(
        `unknown finding id '${args.id}': ${file} has ${ids.length} finding id${ids.length === 1 ? '' : 's'}${ids.length > 0 ? ` (${ids.slice(0, 3).join(', ')}${ids.length > 3 ? ', ...' : ''})` : ''}`,
      );
    }
    try {
      target = parseReplayCommand(first.replay);
    } catch (e) {
      throw new UsageError(`${file}: finding ${first.id}: replay command '${first.replay}' cannot be read: ${e instanceof Error ? e.message : String(e)}`);
    }
    const where = `${file}: finding ${first.id}`;
    checkTarget(target, { policy: where, schedule: where });
    recorded = { id: first.id, kind: first.kind, phase: first.phase, phases: found.map((f) => f.phase), evidence: report.evidence?.[first.id] ?? null };
  } else {
    if (args.report !== undefined) throw new UsageError('--report names where to look a finding id up: give the id too');
    const missing = (['policy', 'subsystem', 'variant', 'seed', 'schedule'] as const).filter((k) => args[k] === undefined);
    if (missing.length > 0)
      throw new UsageError(
        `give a finding id, or the run to replay: --policy, --subsystem, --variant, --seed and --schedule (missing: ${missing.map((m) => `--${m}`).join(', ')})`,
      );
    if (args.variant !== 'legacy' && args.variant !== 'converted') throw new UsageError(`--variant: expected legacy or converted, got '${args.variant}'`);
    target = { policy: args.policy!, subsystem: args.subsystem!, variant: args.variant, seed: seedOf(args.seed), schedule: args.schedule! };
    checkTarget(target, { policy: '--policy', schedule: '--schedule' });
  }
  if (args.trace !== undefined) {
    const parent = dirname(resolve(args.trace));
    if (!existsSync(parent) || !statSync(parent).isDirectory()) throw new UsageError(`--trace: the directory of '${args.trace}' does not exist`);
    if (existsSync(args.trace) && statSync(args.trace).isDirectory()) throw new UsageError(`--trace: '${args.trace}' is a directory`);
  }
  const entry = await entryOf(target.subsystem, recorded !== null);

  const result = flag({
    policy: target.policy,
    subsystems: [entry],
    schedules: 1,
    pctDepth: PCT_DEPTH,
    variants: [target.variant],
    replay: { seed: target.seed, schedule: target.schedule },
  });
  const all = result.verdicts.flatMap((v) => v.findings);
  // A schedule that does not fit the run (another variant's, or code changed since the report) is no finding of the run.
  const divergence = all.find(isDivergence) ?? null;
  const findings = all.filter((f) => !isDivergence(f));
  const again = recorded !== null ? (findings.find((f) => f.id === recorded.id) ?? null) : null;
  const reproduced = recorded !== null ? again !== null : findings.length > 0;
  if (args.trace !== undefined) {
    writeFileAtomic(args.trace, flagReplayTrace(entry, { policy: target.policy, pctDepth: PCT_DEPTH }, target.variant, target.seed, target.schedule));
    io.err(`replay: wrote the timeline to ${args.trace} (open it in https://ui.perfetto.dev)\n`);
  }

  if (args.json) {
    io.out(
      `${JSON.stringify({
        id: recorded?.id ?? null,
        reproduced,
        phase: recorded?.phase ?? null,
        ...target,
        replay: replayLine(target),
        evidence: again?.evidence ?? recorded?.evidence ?? null,
        findings: findings.map(findingJson),
        diverged: divergence?.evidence ?? null,
        trace: args.trace ?? null,
      })}\n`,
    );
    return reproduced ? ExitCode.ok : ExitCode.gateFailed;
  }
  const what = `${target.subsystem} ${target.variant} under ${target.policy}`;
  if (recorded !== null) {
    const elsewhere = recorded.phases.length > 1 ? ` (also in ${recorded.phases.slice(1).join(', ')})` : '';
    io.out(`finding ${recorded.id} (${recorded.kind}) of phase ${recorded.phase}${elsewhere}: ${what}\n`);
  } else io.out(`replay of ${what}\n`);
  io.out(`  seed ${target.seed}, schedule '${target.schedule}'\n\n`);
  if (recorded !== null) {
    const evidence = again?.evidence ?? recorded.evidence;
    if (evidence !== null) io.out(`${again !== null ? 'evidence' : 'recorded evidence'}:\n${evidence}\n\n`);
    const others = findings.map((f) => f.id);
    io.out(
      reproduced
        ? `reproduced: the replay shows ${recorded.id} again\n`
        : `NOT reproduced: the replay shows ${others.length === 0 ? 'no finding' : `other findings only: ${others.join(', ')}`}\n`,
    );
  } else {
    for (const f of findings) io.out(`${f.id} (${f.kind}, ${f.declared === true ? 'declared' : 'undeclared'}):\n${f.evidence}\n\n`);
    io.out(reproduced ? `reproduced: ${findings.length} finding${findings.length === 1 ? '' : 's'}\n` : 'NOT reproduced: the run shows no finding\n');
  }
  if (divergence !== null) io.out(`the run left the schedule: ${divergence.evidence} (a schedule of another run, or the code changed since it was recorded)\n`);
  return reproduced ? ExitCode.ok : ExitCode.gateFailed;
}
