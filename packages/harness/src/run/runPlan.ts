// `vmalock run`: a conversion plan, phase by phase. Each phase measures every process's
// throughput (one simulated machine: every process with its workload, its policy and its
// subsystems in the variants the phase chose, under the `timed` strategy), looks for findings
// (`flag` over each subsystem variant a process uses, under that process's policy), and checks
// the phase's gates. A failed blocking gate blocks the phases after it.
import { type CostModel, type Finding, MmStruct, type Subsystem, type SubsystemVariant, defaultCostModel, profileByName, runProgram } from '@vmalock/core';
import { createPolicy } from '@vmalock/policies';
import { SUBSYSTEMS, type SubsystemEntry } from '@vmalock/subsystems';
import { type FlagOptions, type ScheduleOutcome, flagParallel, flagReplayTrace, verdictOf } from '../flag/flag.js';
import type { ResolvedGate, ResolvedPhase, ResolvedPhaseProcess, ResolvedPlan } from '../plan/resolve.js';
import { OpCounter } from '../workloads/workload.js';
import { spawnWorkload } from '../workloads/registry.js';
import { runWorkload } from '../workloads/run.js';
import { LockWaits, type LockWaitSummary } from './lockWaits.js';

/** How to run a plan. */
export interface RunPlanOptions {
  /** Overrides the plan's seed. */
  readonly seed?: number;
  /** Run the phases after a failed blocking gate anyway (they are reported, not blocked). */
  readonly keepGoing?: boolean;
  /** Worker threads for the finding search (the results are the same for any number). */
  readonly jobs?: number;
  /** The subsystems the plan loaded from files, by the path the plan wrote. */
  readonly subsystemFiles?: ReadonlyMap<string, SubsystemEntry>;
  /** Told what is being done, for a progress line. */
  readonly progress?: (message: string) => void;
  /**
   * Also measure each process's workload alone at 1, 2, 4, ... of its threads under every policy
   * the plan uses (the report's throughput-against-threads chart). Default false.
   */
  readonly scaling?: boolean;
  /** The machine profile whose costs every run uses (`vmalock run --profile`; default `default`). */
  readonly profile?: string;
  /**
   * What the shards of a sharded run computed (`vmalock merge`): used instead of measuring the
   * phases, running the finding searches and measuring the scaling here. Everything else — the
   * baseline, verdicts, gates, blocking — is decided here, as in a run that computed them itself.
   */
  readonly precomputed?: PlanPrecomputed;
}

/** A phase's machine run, measured (plain data: a shard records it). */
export interface PhaseMeasurement {
  /** Each process of the phase, in phase order: ops per simulated second (null when nothing was counted) and ops. */
  readonly processes: readonly { readonly name: string; readonly throughput: number | null; readonly ops: number }[];
  readonly machine: { readonly status: string; readonly summary: string };
  readonly lockWaits: readonly LockWaitSummary[];
}

/** One finding search of a phase: `flag` over one (subsystem, variant, policy) its processes use. */
export interface PhaseSearch {
  readonly entry: SubsystemEntry;
  readonly variant: SubsystemVariant;
  readonly policy: string;
  /** The processes whose policy and variant it is. */
  readonly processes: readonly string[];
  /** The search's flag options (one subsystem, one variant). */
  readonly options: FlagOptions;
}

/** Results a run takes instead of computing them (see `RunPlanOptions.precomputed`). */
export interface PlanPrecomputed {
  /** The measurement of the phase at `phaseIndex` (plan order). */
  measurement(phaseIndex: number): PhaseMeasurement;
  /** Every outcome of search `searchIndex` (`phaseSearches` order) of the phase at `phaseIndex`, in schedule order. */
  outcomes(phaseIndex: number, searchIndex: number): readonly ScheduleOutcome[];
  /** The scaling points (used with `scaling`). */
  readonly scaling: readonly ScalingPoint[];
}

/** One point of a scaling curve: a process's workload alone, under a policy, at a thread count. */
export interface ScalingPoint {
  readonly process: string;
  readonly workload: string;
  readonly policy: string;
  readonly threads: number;
  /** Ops per simulated second (null when nothing was counted). */
  readonly throughput: number | null;
}

/** One process in one phase. */
export interface ProcessResult {
  readonly name: string;
  readonly policy: string;
  /** Ops per simulated second (null when the workload counted nothing). */
  readonly throughput: number | null;
  /** Over the baseline phase's throughput of the same process (null when either is missing). */
  readonly speedupOverBaseline: number | null;
  readonly ops: number;
  readonly converted: readonly string[];
  readonly legacy: readonly string[];
}

/** A gate's verdict. */
export interface GateResult {
  readonly name: string;
  readonly kind: ResolvedGate['kind'];
  readonly blocking: boolean;
  readonly passed: boolean;
  readonly detail: string;
}

/** A finding as a plan run reports it: the flag finding, and which process and variant showed it. */
export interface PhaseFinding {
  readonly id: string;
  readonly kind: Finding['kind'];
  readonly subsystem: string;
  readonly variant: SubsystemVariant;
  readonly policy: string;
  /** The processes whose policy and variant it was found under. */
  readonly processes: readonly string[];
  readonly declared: boolean | null;
  readonly evidence: string;
  readonly replay: string;
  /** The run that replays it: its seed and (minimised) schedule, and the PCT depth of the search. */
  readonly seed: number;
  readonly schedule: string;
  readonly pctDepth: number;
}

export interface PhaseResult {
  readonly name: string;
  readonly policy: string;
  readonly status: 'passed' | 'failed' | 'blocked';
  readonly processes: readonly ProcessResult[];
  readonly findings: readonly PhaseFinding[];
  readonly gates: readonly GateResult[];
  /** The run of the machine (its seed and status), when the phase ran. */
  readonly machine: { readonly status: string; readonly summary: string } | null;
  /** The lock classes waited on longest in the phase's machine run, with wait percentiles. */
  readonly lockWaits: readonly LockWaitSummary[];
}

export interface PlanRunResult {
  readonly plan: string;
  readonly seed: number;
  /** Every blocking gate of every phase passed (and no phase was blocked). */
  readonly passed: boolean;
  readonly phases: readonly PhaseResult[];
  /** With `scaling`: each process's workload alone, per policy and thread count. */
  readonly scaling: readonly ScalingPoint[];
  /** The machine profile the runs used. */
  readonly profile: string;
}

/** The PCT depth of a phase's finding searches (flag's default). */
const SEARCH_PCT_DEPTH = 3;

/** The variant a process runs a subsystem in during a phase: converted once a phase converted it. */
function variantIn(pp: ResolvedPhaseProcess, subsystem: string): SubsystemVariant {
  return pp.converted.includes(subsystem) ? 'converted' : 'legacy';
}

/** A subsystem entry by the reference a plan wrote (a built-in name, or a file path). */
function entryOf(ref: { name: string; file: string | null }, files: ReadonlyMap<string, SubsystemEntry>): SubsystemEntry {
  const entry = ref.file !== null ? files.get(ref.file) : SUBSYSTEMS.find((s) => s.name === ref.name);
  if (entry === undefined) throw new Error(`run: subsystem '${ref.file ?? ref.name}' was not loaded`);
  return entry;
}

/**
 * Run the phase's machine once under `timed`: every process with its mm under its policy, its
 * subsystems attached (one instance per subsystem and variant, shared by the processes that use
 * it, as a driver serves every process in the kernel), and its workload's threads.
 */
function measure(plan: ResolvedPlan, phase: ResolvedPhase, seed: number, files: ReadonlyMap<string, SubsystemEntry>, costModel: CostModel) {
  const counters = new Map<string, OpCounter>();
  const waits = new LockWaits();
  const cpus = plan.processes.reduce((n, p) => n + p.cpus, 0);
  const result = runProgram(
    (sim) => {
      const instances = new Map<string, Subsystem>();
      plan.processes.forEach((p, i) => {
        const pp = phase.processes.find((x) => x.name === p.name)!;
        const mm = new MmStruct(i + 1, createPolicy(pp.policy, pp.policyOptions));
        const subsystems = p.subsystems.map((ref) => {
          const variant = variantIn(pp, ref.name);
          const key = `${ref.name}:${variant}`;
          let s = instances.get(key);
          if (s === undefined) instances.set(key, (s = entryOf(ref, files).create(variant)));
          s.attach({ pid: i + 1, name: p.name, mm });
          return s;
        });
        const counter = new OpCounter();
        counters.set(p.name, counter);
        spawnWorkload(p.workload.name, { sim, mm, threads: p.threads, subsystems, counter, prefix: p.name }, p.workload.params);
      });
    },
    { seed, strategy: 'timed', cpus: Math.max(cpus, 1), observers: [waits], costModel },
  );
  return { result, counters, waits };
}

/** The measurement of a phase's machine run (`measure`), as plain data. */
export function measurePhase(
  plan: ResolvedPlan,
  phase: ResolvedPhase,
  seed: number,
  files: ReadonlyMap<string, SubsystemEntry>,
  costModel: CostModel = defaultCostModel,
): PhaseMeasurement {
  const { result, counters, waits } = measure(plan, phase, seed, files, costModel);
  return {
    processes: phase.processes.map((pp) => {
      const c = counters.get(pp.name)!;
      return { name: pp.name, throughput: c.opsPerSimSec(), ops: c.ops };
    }),
    machine: { status: result.status, summary: result.summary },
    lockWaits: waits.summary(),
  };
}

/** Run `plan`, phase by phase. */
export async function runPlan(plan: ResolvedPlan, options: RunPlanOptions = {}): Promise<PlanRunResult> {
  const seed = options.seed ?? plan.seed;
  const profile = options.profile ?? 'default';
  const costs = profileByName(profile).costs;
  const files = options.subsystemFiles ?? new Map<string, SubsystemEntry>();
  const baselineIndex = Math.max(
    0,
    plan.phases.findIndex((p) => p.name === plan.baseline),
  );
  const phases: PhaseResult[] = [];
  const baseline = new Map<string, number | null>();
  let blockedBy: string | null = null;
  // The baseline phase is measured first, whatever its place, so every phase can compare to it.
  const order = [baselineIndex, ...plan.phases.map((_, i) => i).filter((i) => i !== baselineIndex)];
  const byIndex = new Map<number, PhaseResult>();
  for (const i of order) {
    const phase = plan.phases[i]!;
    if (blockedBy !== null && options.keepGoing !== true && i > baselineIndex) {
      byIndex.set(i, blocked(phase, blockedBy));
      continue;
    }
    if (options.precomputed === undefined) options.progress?.(`phase ${phase.name}: measuring throughput`);
    const m = options.precomputed?.measurement(i) ?? measurePhase(plan, phase, seed, files, costs);
    const processes: ProcessResult[] = phase.processes.map((pp) => {
      const c = m.processes.find((x) => x.name === pp.name)!;
      const throughput = c.throughput;
      if (i === baselineIndex) baseline.set(pp.name, throughput);
      const base = baseline.get(pp.name) ?? null;
      return {
        name: pp.name,
        policy: pp.policy,
        throughput,
        speedupOverBaseline: throughput !== null && base !== null && base > 0 ? throughput / base : null,
        ops: c.ops,
        converted: pp.converted,
        legacy: pp.legacy,
      };
    });
    const findings = await phaseFindings(plan, i, files, options, (message) => options.progress?.(`phase ${phase.name}: ${message}`));
    const gates = phase.gates.map((g) => gateResult(g, phase, processes, findings, m.machine.status === 'ok' ? null : m.machine.summary));
    const failed = gates.some((g) => !g.passed);
    const r: PhaseResult = {
      name: phase.name,
      policy: phase.policy,
      status: failed || m.machine.status !== 'ok' ? 'failed' : 'passed',
      processes,
      findings,
      gates,
      machine: m.machine,
      lockWaits: m.lockWaits,
    };
    byIndex.set(i, r);
    if (gates.some((g) => g.blocking && !g.passed) && blockedBy === null) blockedBy = phase.name;
  }
  for (let i = 0; i < plan.phases.length; i++) phases.push(byIndex.get(i)!);
  const passed = phases.every((p) => p.status !== 'blocked' && p.gates.every((g) => g.passed || !g.blocking));
  const scaling = options.scaling !== true ? [] : (options.precomputed?.scaling ?? measureScaling(plan, seed, files, options.progress, costs));
  return { plan: plan.name, seed, passed, phases, scaling, profile };
}

/**
 * Each process's workload alone (in a process of its own, `timed`) at 1, 2, 4, ... up to its
 * thread count, under every policy the plan uses, in plan order. Its subsystems run converted
 * (safe under every policy) when the workload drives them.
 */
export function measureScaling(
  plan: ResolvedPlan,
  seed: number,
  files: ReadonlyMap<string, SubsystemEntry>,
  progress?: (m: string) => void,
  costModel: CostModel = defaultCostModel,
): ScalingPoint[] {
  const policies = [...new Set(plan.phases.map((p) => p.policy))];
  const out: ScalingPoint[] = [];
  for (const p of plan.processes) {
    const counts: number[] = [];
    for (let t = 1; t < p.threads; t *= 2) counts.push(t);
    counts.push(p.threads);
    for (const policy of policies)
      for (const threads of counts) {
        progress?.(`scaling: ${p.name} (${p.workload.name}) under ${policy} at ${threads} threads`);
        const r = runWorkload({
          workload: p.workload.name,
          params: p.workload.params,
          policy,
          threads,
          seed,
          cpus: Math.max(p.cpus, threads),
          subsystems: () => p.subsystems.map((ref) => entryOf(ref, files).create('converted')),
          processName: p.name,
          costModel,
        });
        out.push({ process: p.name, workload: p.workload.name, policy, threads, throughput: r.result.status === 'ok' ? r.opsPerSimSec : null });
      }
  }
  return out;
}

function blocked(phase: ResolvedPhase, by: string): PhaseResult {
  return {
    name: phase.name,
    policy: phase.policy,
    status: 'blocked',
    processes: [],
    findings: [],
    gates: phase.gates.map((g) => ({
      name: g.name,
      kind: g.kind,
      blocking: g.blocking,
      passed: false,
      detail: `not run: a blocking gate of phase '${by}' failed`,
    })),
    machine: null,
    lockWaits: [],
  };
}

/**
 * The finding searches of a phase: each (subsystem, variant, policy) its processes use, at the
 * most schedules any of its no-findings gates asks for (none: no search), in plan order.
 */
export function phaseSearches(plan: ResolvedPlan, phase: ResolvedPhase, files: ReadonlyMap<string, SubsystemEntry>): PhaseSearch[] {
  const schedules = Math.max(0, ...phase.gates.map((g) => (g.kind === 'no-findings' ? g.schedules : 0)));
  if (schedules === 0) return [];
  const units = new Map<string, { entry: SubsystemEntry; variant: SubsystemVariant; policy: string; processes: string[] }>();
  for (const p of plan.processes) {
    const pp = phase.processes.find((x) => x.name === p.name)!;
    for (const ref of p.subsystems) {
      const variant = variantIn(pp, ref.name);
      const key = `${ref.name}\u0000${variant}\u0000${pp.policy}`;
      const u = units.get(key);
      if (u !== undefined) u.processes.push(p.name);
      else units.set(key, { entry: entryOf(ref, files), variant, policy: pp.policy, processes: [p.name] });
    }
  }
  return [...units.values()].map((u) => ({
    ...u,
    options: { policy: u.policy, subsystems: [u.entry], variants: [u.variant], schedules, pctDepth: SEARCH_PCT_DEPTH },
  }));
}

/** The findings of the phase at `phaseIndex`: its searches' verdicts (`flag`, or the precomputed outcomes). */
async function phaseFindings(
  plan: ResolvedPlan,
  phaseIndex: number,
  files: ReadonlyMap<string, SubsystemEntry>,
  options: RunPlanOptions,
  progress: (m: string) => void,
): Promise<PhaseFinding[]> {
  const searches = phaseSearches(plan, plan.phases[phaseIndex]!, files);
  const out: PhaseFinding[] = [];
  let done = 0;
  for (const u of searches) {
    progress(`flag ${u.entry.name} ${u.variant} under ${u.policy} (${++done}/${searches.length})`);
    const verdict =
      options.precomputed !== undefined
        ? verdictOf(u.entry, u.options, u.variant, options.precomputed.outcomes(phaseIndex, done - 1))
        : (await flagParallel(u.options, options.jobs ?? 1)).verdicts[0]!;
    for (const f of verdict.findings)
      out.push({
        id: f.id,
        kind: f.kind,
        subsystem: u.entry.name,
        variant: u.variant,
        policy: u.policy,
        processes: u.processes,
        declared: f.declared,
        evidence: f.evidence,
        replay: f.replay,
        seed: f.seed,
        schedule: f.minimised,
        pctDepth: u.options.pctDepth,
      });
  }
  return out;
}

function gateResult(
  g: ResolvedGate,
  phase: ResolvedPhase,
  processes: readonly ProcessResult[],
  findings: readonly PhaseFinding[],
  machineFailure: string | null,
): GateResult {
  const base = { name: g.name, kind: g.kind, blocking: g.blocking };
  if (g.kind === 'no-findings') {
    const hits = findings.filter((f) => g.findingKinds.includes(f.kind));
    const where = [...new Set(hits.map((f) => `${f.subsystem} (${f.variant}, ${f.policy})`))];
    if (machineFailure !== null) return { ...base, passed: false, detail: `the phase's machine run failed: ${machineFailure}` };
    return hits.length === 0
      ? { ...base, passed: true, detail: `no ${g.findingKinds.join('/')} finding over ${g.schedules} schedules of each subsystem variant` }
      : { ...base, passed: false, detail: `${hits.length} finding${hits.length === 1 ? '' : 's'} in ${where.join(', ')}: ${hits.map((f) => f.id).join(', ')}` };
  }
  const p = processes.find((x) => x.name === g.process);
  const s = p?.speedupOverBaseline ?? null;
  if (s === null) return { ...base, passed: false, detail: `${g.process}: no throughput to compare with the baseline in phase ${phase.name}` };
  const pct = s * 100;
  return {
    ...base,
    passed: pct >= g.atLeastPercentOfBaseline,
    detail: `${g.process}: ${pct.toFixed(1)}% of the baseline (needs at least ${g.atLeastPercentOfBaseline}%)`,
  };
}

/**
 * The Perfetto timeline of each finding of `result` (`flagReplayTrace`: its replay with the
 * finding's steps marked), by finding id, each once, in report order.
 */
export function findingTraces(result: PlanRunResult, plan: ResolvedPlan, files: ReadonlyMap<string, SubsystemEntry> = new Map()): Map<string, string> {
  const out = new Map<string, string>();
  for (const phase of result.phases)
    for (const f of phase.findings) {
      if (out.has(f.id)) continue;
      const ref = plan.processes.flatMap((p) => p.subsystems).find((s) => s.name === f.subsystem);
      if (ref === undefined) continue;
      out.set(f.id, flagReplayTrace(entryOf(ref, files), { policy: f.policy, pctDepth: f.pctDepth }, f.variant, f.seed, f.schedule));
    }
  return out;
}
