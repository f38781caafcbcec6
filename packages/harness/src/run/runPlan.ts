// `vmalock run`: a conversion plan, phase by phase. Each phase measures every process's
// throughput (one simulated machine: every process with its workload, its policy and its
// subsystems in the variants the phase chose, under the `timed` strategy), looks for findings
// (`flag` over each subsystem variant a process uses, under that process's policy), and checks
// the phase's gates. A failed blocking gate blocks the phases after it.
import { type Finding, MmStruct, type Subsystem, type SubsystemVariant, runProgram } from '@vmalock/core';
import { createPolicy } from '@vmalock/policies';
import { SUBSYSTEMS, type SubsystemEntry } from '@vmalock/subsystems';
import { flagParallel } from '../flag/flag.js';
import type { ResolvedGate, ResolvedPhase, ResolvedPlan } from '../plan/resolve.js';
import { OpCounter } from '../workloads/workload.js';
import { spawnWorkload } from '../workloads/registry.js';

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
}

export interface PlanRunResult {
  readonly plan: string;
  readonly seed: number;
  /** Every blocking gate of every phase passed (and no phase was blocked). */
  readonly passed: boolean;
  readonly phases: readonly PhaseResult[];
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
function measure(plan: ResolvedPlan, phase: ResolvedPhase, seed: number, files: ReadonlyMap<string, SubsystemEntry>) {
  const counters = new Map<string, OpCounter>();
  const cpus = plan.processes.reduce((n, p) => n + p.cpus, 0);
  const result = runProgram(
    (sim) => {
      const instances = new Map<string, Subsystem>();
      plan.processes.forEach((p, i) => {
        const pp = phase.processes.find((x) => x.name === p.name)!;
        const mm = new MmStruct(i + 1, createPolicy(pp.policy, pp.policyOptions));
        const subsystems = p.subsystems.map((ref) => {
          const variant: SubsystemVariant = pp.converted.includes(ref.name) ? 'converted' : 'legacy';
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
    { seed, strategy: 'timed', cpus: Math.max(cpus, 1) },
  );
  return { result, counters };
}

/** Run `plan`, phase by phase. */
export async function runPlan(plan: ResolvedPlan, options: RunPlanOptions = {}): Promise<PlanRunResult> {
  const seed = options.seed ?? plan.seed;
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
    options.progress?.(`phase ${phase.name}: measuring throughput`);
    const { result, counters } = measure(plan, phase, seed, files);
    const processes: ProcessResult[] = phase.processes.map((pp) => {
      const c = counters.get(pp.name)!;
      const throughput = c.opsPerSimSec();
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
    const findings = await phaseFindings(plan, phase, files, options, (m) => options.progress?.(`phase ${phase.name}: ${m}`));
    const gates = phase.gates.map((g) => gateResult(g, phase, processes, findings, result.status === 'ok' ? null : result.summary));
    const failed = gates.some((g) => !g.passed);
    const r: PhaseResult = {
      name: phase.name,
      policy: phase.policy,
      status: failed || result.status !== 'ok' ? 'failed' : 'passed',
      processes,
      findings,
      gates,
      machine: { status: result.status, summary: result.summary },
    };
    byIndex.set(i, r);
    if (gates.some((g) => g.blocking && !g.passed) && blockedBy === null) blockedBy = phase.name;
  }
  for (let i = 0; i < plan.phases.length; i++) phases.push(byIndex.get(i)!);
  const passed = phases.every((p) => p.status !== 'blocked' && p.gates.every((g) => g.passed || !g.blocking));
  return { plan: plan.name, seed, passed, phases };
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
  };
}

/**
 * The findings of a phase: `flag` over each (subsystem, variant, policy) its processes use, at
 * the most schedules any of its no-findings gates asks for (none: no search).
 */
async function phaseFindings(
  plan: ResolvedPlan,
  phase: ResolvedPhase,
  files: ReadonlyMap<string, SubsystemEntry>,
  options: RunPlanOptions,
  progress: (m: string) => void,
): Promise<PhaseFinding[]> {
  const schedules = Math.max(0, ...phase.gates.map((g) => (g.kind === 'no-findings' ? g.schedules : 0)));
  if (schedules === 0) return [];
  const units = new Map<string, { entry: SubsystemEntry; variant: SubsystemVariant; policy: string; processes: string[] }>();
  for (const p of plan.processes) {
    const pp = phase.processes.find((x) => x.name === p.name)!;
    for (const ref of p.subsystems) {
      const variant: SubsystemVariant = pp.converted.includes(ref.name) ? 'converted' : 'legacy';
      const key = `${ref.name}\u0000${variant}\u0000${pp.policy}`;
      const u = units.get(key);
      if (u !== undefined) u.processes.push(p.name);
      else units.set(key, { entry: entryOf(ref, files), variant, policy: pp.policy, processes: [p.name] });
    }
  }
  const out: PhaseFinding[] = [];
  let done = 0;
  for (const u of units.values()) {
    progress(`flag ${u.entry.name} ${u.variant} under ${u.policy} (${++done}/${units.size})`);
    const r = await flagParallel({ policy: u.policy, subsystems: [u.entry], variants: [u.variant], schedules, pctDepth: 3 }, options.jobs ?? 1);
    for (const f of r.verdicts[0]!.findings)
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
