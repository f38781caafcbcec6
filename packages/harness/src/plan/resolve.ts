// A plan resolved: every phase spelled out per process (its policy, whether it opted in, which of
// its subsystems run converted and which legacy), group words expanded, defaults filled in. The
// runner and reports read this form only; the rules are in docs/plans.md ("Resolution").
import type { FindingKind, SubsystemKind } from '@vmalock/core';
import type { PolicyOptions } from '@vmalock/policies';
import { SUBSYSTEMS } from '@vmalock/subsystems';
import { CONVERSION_GROUPS, DEFAULT_PHASE_SCHEDULES, FINDING_KINDS, type Plan, type PlanGate, gateName, isSubsystemFile } from './schema.js';

/** A subsystem as a process attaches it: the plan's reference (a name or a path), its name and kind. */
export interface ResolvedSubsystem {
  readonly ref: string;
  readonly name: string;
  readonly kind: SubsystemKind;
  /** The path of a subsystem loaded from a file, as the plan wrote it; null for a built-in one. */
  readonly file: string | null;
}

export interface ResolvedProcess {
  readonly name: string;
  readonly workload: { readonly name: string; readonly params: Readonly<Record<string, unknown>> };
  readonly threads: number;
  readonly cpus: number;
  readonly subsystems: readonly ResolvedSubsystem[];
}

export type ResolvedGate =
  | {
      readonly kind: 'no-findings';
      readonly name: string;
      readonly blocking: boolean;
      readonly findingKinds: readonly FindingKind[];
      readonly schedules: number;
    }
  | {
      readonly kind: 'throughput';
      readonly name: string;
      readonly blocking: boolean;
      readonly process: string;
      readonly atLeastPercentOfBaseline: number;
    };

/** One process in one phase. */
export interface ResolvedPhaseProcess {
  readonly name: string;
  readonly policy: string;
  readonly policyOptions: PolicyOptions;
  /** True when the process runs the phase's policy (listed in `optIn`, or the phase has none). */
  readonly optedIn: boolean;
  /** The names of its subsystems that run converted, in attach order. */
  readonly converted: readonly string[];
  /** The names of its subsystems that still run legacy, in attach order. */
  readonly legacy: readonly string[];
}

export interface ResolvedPhase {
  readonly name: string;
  readonly policy: string;
  readonly policyOptions: PolicyOptions;
  /** The processes on `policy`, in plan order (every process when the phase has no `optIn`). */
  readonly optIn: readonly string[];
  /** Every subsystem name converted by this phase or an earlier one (conversion is never undone). */
  readonly converted: readonly string[];
  readonly processes: readonly ResolvedPhaseProcess[];
  readonly gates: readonly ResolvedGate[];
  readonly schedules: number;
}

export interface ResolvedPlan {
  readonly name: string;
  readonly seed: number;
  /** The phase throughput gates compare to. */
  readonly baseline: string;
  readonly processes: readonly ResolvedProcess[];
  readonly phases: readonly ResolvedPhase[];
}

/** What `resolvePlan` needs to know of a subsystem loaded from a file. */
export interface LoadedSubsystem {
  readonly name: string;
  readonly kind: SubsystemKind;
}

const builtinKinds: ReadonlyMap<string, SubsystemKind> = new Map(SUBSYSTEMS.map((s) => [s.name, s.kind]));

/**
 * Resolve a valid `plan` (from `parsePlan`/`loadPlan`). `files` gives the name and kind of each
 * subsystem file the plan attaches, by the path as written (`loadResolvedPlan` loads them); a
 * plan that attaches only built-in subsystems needs none.
 *
 * Rules: a process listed in a phase's `optIn` (every process when there is none) runs the phase's
 * policy with its options; any other keeps its policy and options of the previous phase. The
 * converted set grows phase by phase: a phase converts its `converted` entries (group words expand
 * to every attached subsystem of that kind, `all` to every attached one) on top of the earlier
 * phases'. In each process, the attached subsystems in that set run converted, the rest legacy.
 */
export function resolvePlan(plan: Plan, files: ReadonlyMap<string, LoadedSubsystem> = new Map()): ResolvedPlan {
  const subsystemOf = (ref: string): ResolvedSubsystem => {
    if (isSubsystemFile(ref)) {
      const loaded = files.get(ref);
      if (loaded === undefined) throw new RangeError(`resolvePlan: subsystem file '${ref}' was not loaded (pass its name and kind in files)`);
      return { ref, name: loaded.name, kind: loaded.kind, file: ref };
    }
    const kind = builtinKinds.get(ref);
    if (kind === undefined) throw new RangeError(`resolvePlan: unknown subsystem '${ref}'`);
    return { ref, name: ref, kind, file: null };
  };
  const processes: ResolvedProcess[] = plan.processes.map((p) => ({
    name: p.name,
    workload: { name: p.workload.name, params: p.workload.params ?? {} },
    threads: p.threads,
    cpus: p.cpus,
    subsystems: p.subsystems.map(subsystemOf),
  }));
  const attached = uniqueBy(
    processes.flatMap((p) => p.subsystems),
    (s) => s.name,
  );
  const expand = (entry: string): string[] => {
    if (entry === 'all') return attached.map((s) => s.name);
    if ((CONVERSION_GROUPS as readonly string[]).includes(entry)) return attached.filter((s) => s.kind === entry).map((s) => s.name);
    const byRef = attached.find((s) => s.ref === entry || s.name === entry);
    if (byRef === undefined) throw new RangeError(`resolvePlan: converted '${entry}' is neither a group word nor an attached subsystem`);
    return [byRef.name];
  };

  const converted = new Set<string>();
  let previous = new Map<string, { policy: string; policyOptions: PolicyOptions }>();
  const phases: ResolvedPhase[] = plan.phases.map((phase, i) => {
    for (const entry of phase.converted) for (const name of expand(entry)) converted.add(name);
    const policyOptions: PolicyOptions = phase.policyOptions ?? {};
    const current = new Map<string, { policy: string; policyOptions: PolicyOptions }>();
    const perProcess = processes.map((p): ResolvedPhaseProcess => {
      const optedIn = phase.optIn === undefined || phase.optIn.includes(p.name);
      const before = previous.get(p.name);
      if (!optedIn && before === undefined) throw new RangeError(`resolvePlan: phase ${i} has optIn but no previous phase`);
      const on = optedIn ? { policy: phase.policy, policyOptions } : before!;
      current.set(p.name, on);
      const names = p.subsystems.map((s) => s.name);
      return {
        name: p.name,
        policy: on.policy,
        policyOptions: on.policyOptions,
        optedIn,
        converted: names.filter((n) => converted.has(n)),
        legacy: names.filter((n) => !converted.has(n)),
      };
    });
    previous = current;
    const gates = phase.gates.map(resolveGate);
    const gateSchedules = gates.map((g) => (g.kind === 'no-findings' ? g.schedules : 0));
    return {
      name: phase.name,
      policy: phase.policy,
      policyOptions,
      optIn: perProcess.filter((p) => p.optedIn).map((p) => p.name),
      converted: attached.map((s) => s.name).filter((n) => converted.has(n)),
      processes: perProcess,
      gates,
      schedules: phase.schedules ?? (gates.some((g) => g.kind === 'no-findings') ? Math.max(...gateSchedules) : DEFAULT_PHASE_SCHEDULES),
    };
  });
  return { name: plan.name, seed: plan.seed, baseline: plan.baseline ?? plan.phases[0]!.name, processes, phases };
}

function resolveGate(gate: PlanGate): ResolvedGate {
  const name = gateName(gate);
  if (gate.kind === 'no-findings')
    return { kind: gate.kind, name, blocking: gate.blocking, findingKinds: gate.findingKinds ?? [...FINDING_KINDS], schedules: gate.schedules };
  return { kind: gate.kind, name, blocking: gate.blocking, process: gate.process, atLeastPercentOfBaseline: gate.atLeastPercentOfBaseline };
}

function uniqueBy<T>(xs: readonly T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(key(x)) ? false : (seen.add(key(x)), true)));
}
