import {
  type Finding,
  type RunResult,
  type SubsystemVariant,
  checkAssumption,
  checkMmInvariants,
  findingId,
  foldMessage,
  minimiseSchedule,
  readAssumptions,
  runProgram,
} from '@vmalock/core';
import { createPolicy } from '@vmalock/policies';
import type { SubsystemEntry } from '@vmalock/subsystems';
import { type WorkloadSink, PCT_STEPS, workload } from './workload.js';

/** What `flag` runs. */
export interface FlagOptions {
  readonly policy: string;
  readonly subsystems: readonly SubsystemEntry[];
  /** Schedules per (subsystem, variant). */
  readonly schedules: number;
  /** PCT depth d. */
  readonly pctDepth: number;
  /** Only these variants (default both). */
  readonly variants?: readonly SubsystemVariant[];
  /** Replay one schedule instead of exploring: the seed and the recorded schedule. */
  readonly replay?: { readonly seed: number; readonly schedule: string };
  /** Called after each (subsystem, variant) with how many are done (progress). */
  readonly progress?: (done: number, total: number) => void;
}

/** The verdict on one subsystem variant under one policy. */
export interface Verdict {
  readonly subsystem: string;
  readonly variant: SubsystemVariant;
  readonly verdict: 'breaks' | 'safe' | 'not exercised';
  readonly declared: number;
  readonly undeclared: number;
  readonly schedules: number;
  readonly strategy: string;
  readonly depth: number;
  /** safe: the probability that a depth-d bug was missed by every PCT schedule ((1 - p)^N, p the PCT bound of one run, N the PCT runs). */
  readonly missProbability: number | null;
  readonly hookCounts: Readonly<Record<string, number>>;
  readonly findings: readonly Finding[];
}

/** What went wrong in a run (null: nothing): the kind and the message. */
function failureOf(r: RunResult, sink: WorkloadSink): { kind: Finding['kind']; message: string } | null {
  if (r.status === 'deadlock') return { kind: 'deadlock', message: r.failure?.message ?? 'deadlock' };
  if (r.status !== 'ok') {
    const message = r.failure?.message ?? r.summary;
    // SubsystemInvariantError names itself; mm invariants say "mmN: ..."; held-lock assertions name their assert.
    const head = r.failure?.stack?.split('\n')[0] ?? '';
    const kind: Finding['kind'] =
      /^SubsystemInvariantError/.test(head) || /threw at step \d+: mm\d+: /.test(message)
        ? 'invariant'
        : /(mmap|vma|range)_assert_|R7: /.test(message)
          ? 'assertion'
          : 'error';
    return { kind, message };
  }
  try {
    sink.last?.checkInvariants();
    if (sink.mm !== null) checkMmInvariants(sink.mm);
  } catch (e) {
    return { kind: 'invariant', message: e instanceof Error ? e.message : String(e) };
  }
  return null;
}

function replayCommand(policy: string, subsystem: string, variant: SubsystemVariant, seed: number, schedule: string): string {
  return `vmalock flag --policy ${policy} --subsystem ${subsystem} --variant ${variant} --seed ${seed} --schedule '${schedule}'`;
}

/**
 * `vmalock flag`: run each subsystem, legacy and converted, under `policy` with PCT over many
 * schedules, and turn what breaks into findings (stable ids, minimised schedules, the replay
 * command) and a verdict per variant. Detects: run errors (held-lock assertions, a subsystem's
 * invariant checked inside an operation, a throw), deadlocks, and the subsystem's and the mm's
 * invariants at the end of each run. A finding is `declared` when the variant declares an
 * assumption the policy does not provide (the static check), `undeclared` otherwise.
 */
export function flag(options: FlagOptions): { policy: string; verdicts: Verdict[] } {
  const verdicts: Verdict[] = [];
  const variants = options.variants ?? ['legacy', 'converted'];
  const total = options.subsystems.length * variants.length;
  const policy = createPolicy(options.policy);
  for (const entry of options.subsystems) {
    for (const variant of variants) {
      const conflicting = readAssumptions(entry.create(variant)).some((a) => checkAssumption(a, policy).verdict === 'conflict');
      const sink: WorkloadSink = { last: null, mm: null };
      const program = workload(entry, variant, options.policy, sink);
      const base = { seed: 0, pctDepth: options.pctDepth, pctSteps: PCT_STEPS };
      const findings = new Map<string, Finding>();
      const hookCounts: Record<string, number> = {};
      let schedules = 0;
      let bound = 0;
      let pctRuns = 0;
      const seeds = options.replay !== undefined ? [options.replay.seed] : Array.from({ length: options.schedules }, (_, i) => i);
      for (const seed of seeds) {
        // The portfolio: even seeds under PCT (deep, rare orders), odd seeds under random
        // (one-step race windows PCT's few change points rarely hit).
        const strategy = seed % 2 === 0 ? 'pct' : 'random';
        const r =
          options.replay !== undefined
            ? runProgram(program, { ...base, seed, strategy: 'replay', schedule: options.replay.schedule })
            : runProgram(program, { ...base, seed, strategy });
        schedules++;
        if (r.pct !== null) {
          bound = r.pct.bound;
          pctRuns++;
        }
        for (const [k, v] of Object.entries(sink.last?.hookCounts ?? {})) hookCounts[k] = (hookCounts[k] ?? 0) + v;
        const failure = failureOf(r, sink);
        if (failure === null) continue;
        const signature = foldMessage(failure.message);
        const id = findingId(failure.kind, entry.name, signature);
        if (findings.has(id)) continue;
        const signatureOf = (x: RunResult): string | null => {
          const f = failureOf(x, sink);
          return f === null ? null : foldMessage(f.message);
        };
        const minimised =
          options.replay !== undefined
            ? r.schedule
            : minimiseSchedule(program, { seed, pctDepth: options.pctDepth, pctSteps: PCT_STEPS }, r.schedule, signature, signatureOf, { budget: 60 });
        findings.set(id, {
          id,
          kind: failure.kind,
          subsystem: entry.name,
          policy: options.policy,
          process: 'p1',
          seed,
          strategy: options.replay !== undefined ? 'replay' : seed % 2 === 0 ? 'pct' : 'random',
          schedule: r.schedule,
          minimised,
          signature,
          evidence: failure.message,
          declared: conflicting,
          replay: replayCommand(options.policy, entry.name, variant, seed, minimised),
        });
      }
      const list = [...findings.values()];
      const exercised = Object.values(hookCounts).some((n) => n > 0);
      const verdict: Verdict['verdict'] = list.length > 0 ? 'breaks' : exercised ? 'safe' : 'not exercised';
      verdicts.push({
        subsystem: entry.name,
        variant,
        verdict,
        declared: list.filter((f) => f.declared === true).length,
        undeclared: list.filter((f) => f.declared !== true).length,
        schedules,
        strategy: options.replay !== undefined ? 'replay' : 'portfolio (pct, random)',
        depth: options.pctDepth,
        missProbability: verdict === 'safe' && bound > 0 ? Math.pow(1 - bound, pctRuns) : null,
        hookCounts,
        findings: list,
      });
      options.progress?.(verdicts.length, total);
    }
  }
  return { policy: options.policy, verdicts };
}

/**
 * How many schedules of `strategy` (seeds `firstSeed`, `firstSeed + 1`, ...) it takes until the
 * subsystem variant shows its first problem under `policy` (1 = the first run), or null when
 * none of `cap` schedules does (bench:detect).
 */
export function schedulesToFirstFinding(
  entry: SubsystemEntry,
  variant: SubsystemVariant,
  policy: string,
  strategy: 'pct' | 'random',
  firstSeed: number,
  cap: number,
  pctDepth = 3,
): number | null {
  const sink: WorkloadSink = { last: null, mm: null };
  const program = workload(entry, variant, policy, sink);
  for (let i = 0; i < cap; i++) {
    const r = runProgram(program, { seed: firstSeed + i, strategy, pctDepth, pctSteps: PCT_STEPS });
    if (failureOf(r, sink) !== null) return i + 1;
  }
  return null;
}
