import { type LockPolicy, type SubsystemVariant, checkAssumption, readAssumptions } from '@vmalock/core';
import { createPolicy, policyNames } from '@vmalock/policies';
import { SUBSYSTEMS, type SubsystemEntry } from '@vmalock/subsystems';
import { type CliIo, ExitCode, UsageError, formatTable } from '../cliSupport.js';
import { SubsystemLoadError, loadSubsystemFile } from '../wiring/loadSubsystem.js';

/** Arguments of `vmalock subsystems`. */
export interface SubsystemsArgs {
  readonly policy: string | undefined;
  readonly subsystem: readonly string[];
  readonly json: boolean;
}

/** One row of the listing: a declared assumption and, with a policy, its static verdict. */
interface AssumptionRow {
  readonly lock: string;
  readonly mode: string;
  readonly hook: string;
  readonly protects: string;
  readonly why: string;
  readonly verdict: 'ok' | 'conflict' | null;
}

/** The JSON object `vmalock subsystems --json` prints. */
export interface SubsystemsReport {
  readonly policy: string | null;
  readonly subsystems: ReadonlyArray<{ name: string; kind: string; variant: SubsystemVariant; summary: string; assumptions: AssumptionRow[] }>;
}

/** The listing of `entries` (both variants each), judged under `policy` when given. */
export function subsystemsReport(entries: readonly SubsystemEntry[], policyName: string | null): SubsystemsReport {
  const policy: LockPolicy | null = policyName === null ? null : createPolicy(policyName);
  const subsystems: SubsystemsReport['subsystems'][number][] = [];
  for (const entry of entries) {
    for (const variant of ['legacy', 'converted'] as const) {
      const s = entry.create(variant);
      const assumptions = readAssumptions(s).map((a) => ({
        lock: a.lock,
        mode: a.mode,
        hook: a.hook,
        protects: a.protects,
        why: a.why,
        verdict: policy === null ? null : checkAssumption(a, policy).verdict,
      }));
      subsystems.push({ name: s.name, kind: s.kind, variant, summary: s.summary, assumptions });
    }
  }
  return { policy: policyName, subsystems };
}

/** `vmalock subsystems [--policy P] [--subsystem ./file.js ...] [--json]`. */
export async function subsystemsCommand(args: SubsystemsArgs, io: CliIo): Promise<number> {
  if (args.policy !== undefined && !policyNames().includes(args.policy))
    throw new UsageError(`--policy: unknown policy '${args.policy}' (known: ${policyNames().join(', ')})`);
  const entries: SubsystemEntry[] = [...SUBSYSTEMS];
  for (const file of args.subsystem) {
    let loaded: SubsystemEntry;
    try {
      loaded = await loadSubsystemFile(file);
    } catch (e) {
      if (e instanceof SubsystemLoadError) throw new UsageError(e.message);
      throw e;
    }
    if (entries.some((x) => x.name === loaded.name)) throw new UsageError(`--subsystem ${file}: a subsystem named '${loaded.name}' is already loaded`);
    entries.push(loaded);
  }
  const report = subsystemsReport(entries, args.policy ?? null);
  if (args.json) {
    io.out(`${JSON.stringify(report)}\n`);
    return ExitCode.ok;
  }
  const rows: string[][] = [];
  for (const s of report.subsystems) {
    if (s.assumptions.length === 0) rows.push([s.name, s.kind, s.variant, '-', '(declares nothing)', '', '']);
    for (const a of s.assumptions) rows.push([s.name, s.kind, s.variant, a.hook, `${a.lock} ${a.mode}`, a.protects, a.verdict ?? '']);
  }
  io.out(
    `${formatTable(['subsystem', 'kind', 'variant', 'hook', 'needs', 'protects', report.policy === null ? 'verdict' : `under ${report.policy}`], rows)}\n`,
  );
  if (report.subsystems.length === 0) io.out('(no subsystems)\n');
  return ExitCode.ok;
}
