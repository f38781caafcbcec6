import {
  type DeclaredAssumption,
  type EngineObserver,
  type Finding,
  type FindingKind,
  Lockdep,
  type LockdepReport,
  type Program,
  RaceDetector,
  type RaceReport,
  type RunOptions,
  type RunResult,
  type SimLock,
  type SimThread,
  type SubsystemVariant,
  assumptionHits,
  checkAssumption,
  checkMmInvariants,
  demonstrateLockOrder,
  explore,
  findingId,
  foldMessage,
  lockOrderSignature,
  minimiseSchedule,
  readAssumptions,
  runProgram,
} from '@vmalock/core';
import { VM_AREA_LOCK_CLASS, createPolicy, vmAreaLockOrder } from '@vmalock/policies';
import type { SubsystemEntry } from '@vmalock/subsystems';
import Tinypool from 'tinypool';
import { subsystemSource } from '../wiring/loadSubsystem.js';
import { type FindingMark, findingTrace } from './findingTrace.js';
import { PCT_STEPS, type WorkloadSink, workload } from './workload.js';

/** How `flag` picks its schedules. */
export const flagStrategies = ['portfolio', 'pct', 'random', 'bounded'] as const;
export type FlagStrategy = (typeof flagStrategies)[number];

/** What `flag` runs. */
export interface FlagOptions {
  readonly policy: string;
  readonly subsystems: readonly SubsystemEntry[];
  /** Schedules per (subsystem, variant). */
  readonly schedules: number;
  /** PCT depth d. */
  readonly pctDepth: number;
  /**
   * `portfolio` (default: PCT on even seeds, random on odd), `pct`, `random`, or `bounded` (the
   * bounded-preemption search: every schedule with at most `preemptionBound` preemptions, depth
   * first, `BOUNDED_PER_SEED` schedules for each program seed in turn).
   */
  readonly strategy?: FlagStrategy;
  /** `bounded`: the most preemptions a schedule may have (default 2). */
  readonly preemptionBound?: number;
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
  /** safe: the probability that a depth-d bug was missed by every PCT schedule ((1 - p)^N, p the PCT bound of one run, N the PCT runs); null when no PCT schedule ran. */
  readonly missProbability: number | null;
  readonly hookCounts: Readonly<Record<string, number>>;
  readonly findings: readonly Finding[];
}

/**
 * Steps a run of a flag workload may take (its runs take a few hundred): past it the run ends
 * with status `step-limit` (a livelock, reported as a finding) in a few milliseconds, instead of
 * running to the engine's default million steps — minimisation replays schedule tails without
 * preemption, the kind of schedule that once handed a busy lock back and forth for ever.
 */
export const STEP_LIMIT = 20_000;

/** Schedules the bounded search explores for one program seed before it moves to the next. */
export const BOUNDED_PER_SEED = 50;

/** One thing a run showed: the finding's kind, its signature (what makes it the same), the message, and the location of a race. */
export interface RunProblem {
  readonly kind: FindingKind;
  readonly signature: string;
  readonly message: string;
  readonly location: string | null;
}

/** What one schedule of one subsystem variant showed: all `flag` keeps of a run (plain data: workers send it back). */
export interface ScheduleOutcome {
  readonly seed: number;
  readonly strategy: 'pct' | 'random' | 'bounded' | 'replay';
  readonly schedule: string;
  /** The PCT bound of the run (PCT runs only). */
  readonly pctBound: number | null;
  readonly hookCounts: Readonly<Record<string, number>>;
  readonly problems: readonly RunProblem[];
}

/** One (subsystem, variant) under a policy: the workload and the watchers every schedule runs with. */
interface Exercise {
  readonly entry: SubsystemEntry;
  readonly variant: SubsystemVariant;
  readonly policy: string;
  readonly pctDepth: number;
  readonly program: Program;
  readonly sink: WorkloadSink;
  readonly races: RaceDetector;
  /** Lockdep, fresh for each run (a unit of work must not depend on the runs before it). */
  readonly lockdep: PerRunLockdep;
  /** The variant's declared assumptions the policy does not provide. */
  readonly conflicting: readonly DeclaredAssumption[];
  /** What the policy holds at each conflicting assumption's hook, for the message. */
  readonly provided: ReadonlyMap<DeclaredAssumption, string>;
}

function exercise(entry: SubsystemEntry, variant: SubsystemVariant, policy: string, pctDepth: number): Exercise {
  const sink: WorkloadSink = { last: null, mm: null };
  const p = createPolicy(policy);
  const verdicts = readAssumptions(entry.create(variant)).map((a) => checkAssumption(a, p));
  const conflicting = verdicts.filter((v) => v.verdict === 'conflict');
  const provided = new Map<DeclaredAssumption, string>(
    conflicting.map((v) => [v, v.provided.length === 0 ? 'nothing' : v.provided.map((l) => `${l.lock} ${l.mode}`).join(', ')]),
  );
  return {
    entry,
    variant,
    policy,
    pctDepth,
    program: workload(entry, variant, policy, sink),
    sink,
    races: new RaceDetector(),
    lockdep: new PerRunLockdep(),
    conflicting,
    provided,
  };
}

/** Lockdep as the policies need it: `vm_area_lock`s of one mm nest in address order (R5), not recursively. */
function newLockdep(): Lockdep {
  return new Lockdep({ orderedClasses: { [VM_AREA_LOCK_CLASS]: vmAreaLockOrder } });
}

/**
 * A lockdep made anew at each run's start, so each run's reports are its own: the verdicts must
 * not depend on how the schedules are cut into units (`--jobs`), so no dependency graph spans runs.
 */
class PerRunLockdep implements EngineObserver {
  current = newLockdep();

  onRunStart(): void {
    this.current = newLockdep();
  }

  onLockRequest(thread: SimThread, lock: SimLock, mode: number, trylock: boolean, step: number): void {
    this.current.onLockRequest(thread, lock, mode, trylock, step);
  }

  onLockAcquired(thread: SimThread, lock: SimLock, mode: number, step: number): void {
    this.current.onLockAcquired(thread, lock, mode, step);
  }

  onLockReleased(thread: SimThread, lock: SimLock, mode: number): void {
    this.current.onLockReleased(thread, lock, mode);
  }
}

/** The run options every schedule of `ex` shares (the seed and strategy apart). */
function baseOptions(ex: Exercise, seed: number): Omit<RunOptions, 'strategy'> {
  return { seed, pctDepth: ex.pctDepth, pctSteps: PCT_STEPS, stepLimit: STEP_LIMIT, observers: [ex.races, ex.lockdep] };
}

/** The signature of a race: the location and the two kinds of access, numbers folded. */
function raceSignature(r: RaceReport): string {
  const kinds = [r.first, r.second].map((a) => `${a.kind}${a.marked ? ' (marked)' : ''}`).sort();
  return foldMessage(`data-race on ${r.location}: ${kinds.join(' / ')}`);
}

/** What went wrong in the run `r` of `ex` just ended: its failure, the invariants after it, its races. */
function problemsOf(ex: Exercise, r: RunResult): RunProblem[] {
  const out: RunProblem[] = [];
  const add = (kind: FindingKind, message: string, location: string | null = null, signature = foldMessage(message)): void => {
    if (!out.some((p) => p.kind === kind && p.signature === signature)) out.push({ kind, signature, message, location });
  };
  if (r.status === 'deadlock') add('deadlock', r.failure?.message ?? 'deadlock');
  else if (r.status !== 'ok') {
    const message = r.failure?.message ?? r.summary;
    // SubsystemInvariantError names itself; mm invariants say "mmN: ..."; held-lock assertions name their assert.
    const head = r.failure?.stack?.split('\n')[0] ?? '';
    const kind: FindingKind =
      /^SubsystemInvariantError/.test(head) || /threw at step \d+: mm\d+: /.test(message)
        ? 'invariant'
        : /(mmap|vma|range)_assert_|R7: /.test(message)
          ? 'assertion'
          : 'error';
    add(kind, message);
  } else {
    try {
      ex.sink.last?.checkInvariants();
      if (ex.sink.mm !== null) checkMmInvariants(ex.sink.mm);
    } catch (e) {
      add('invariant', e instanceof Error ? e.message : String(e));
    }
  }
  for (const race of ex.races.runReports) add('race', race.splat, race.location, raceSignature(race));
  for (const report of ex.lockdep.current.reports) add('lock-order', report.splat, null, lockOrderSignature(report));
  // A declared assumption the policy does not provide, whose hook really ran in this run.
  const s = ex.sink.last;
  if (s !== null)
    for (const a of ex.conflicting) {
      const reached = a.member !== null ? (assumptionHits(s).get(a.member) ?? 0) > 0 : (s.hookCounts[a.hook] ?? 0) > 0;
      if (reached) add('assertion', assumptionMessage(ex, a));
    }
  return out;
}

const DECLARED_CHECK = 'declared assumption not held: ';

/** The message of a declared assumption not held at run time. */
function assumptionMessage(ex: Exercise, a: DeclaredAssumption): string {
  const where = a.member !== null ? `${a.hook} (${a.member})` : a.hook;
  return `${DECLARED_CHECK}${ex.entry.name} (${ex.variant}) needs ${a.lock} ${a.mode} at ${where} for ${a.protects} (${a.why}); under ${ex.policy} the hook ran holding ${ex.provided.get(a) ?? 'nothing'}`;
}

/** Run one schedule of `ex` and keep what it showed. */
function outcomeOf(ex: Exercise, r: RunResult, seed: number, strategy: ScheduleOutcome['strategy']): ScheduleOutcome {
  return {
    seed,
    strategy,
    schedule: r.schedule,
    pctBound: r.pct?.bound ?? null,
    hookCounts: { ...(ex.sink.last?.hookCounts ?? {}) },
    problems: problemsOf(ex, r),
  };
}

/** The strategy of the `index`-th schedule under `strategy`. */
function strategyOf(strategy: FlagStrategy, seed: number): 'pct' | 'random' {
  if (strategy === 'pct' || strategy === 'random') return strategy;
  // The portfolio: PCT on even seeds (deep, rare orders), random on odd ones (one-step race
  // windows PCT's few change points rarely hit).
  return seed % 2 === 0 ? 'pct' : 'random';
}

/**
 * The unit of work `flag` hands out: schedules `[from, to)` of one subsystem variant (for
 * `bounded`, the program seeds `[from, to)`, `BOUNDED_PER_SEED` schedules each). Plain data, so a
 * worker thread can run it; the outcomes depend on nothing but the unit.
 */
export interface FlagUnit {
  readonly policy: string;
  readonly variant: SubsystemVariant;
  readonly pctDepth: number;
  readonly strategy: FlagStrategy;
  readonly preemptionBound: number;
  readonly from: number;
  readonly to: number;
  /** `bounded`: the schedules the whole search may run (the last seed stops there). */
  readonly limit: number;
}

/** Run one unit on `entry`: its outcomes in order. */
export function runUnit(entry: SubsystemEntry, unit: FlagUnit): ScheduleOutcome[] {
  const ex = exercise(entry, unit.variant, unit.policy, unit.pctDepth);
  const out: ScheduleOutcome[] = [];
  if (unit.strategy === 'bounded') {
    for (let seed = unit.from; seed < unit.to; seed++) {
      const room = Math.min(BOUNDED_PER_SEED, unit.limit - seed * BOUNDED_PER_SEED);
      if (room <= 0) break;
      explore(ex.program, {
        seed,
        preemptionBound: unit.preemptionBound,
        maxSchedules: room,
        stepLimit: STEP_LIMIT,
        observers: [ex.races, ex.lockdep],
        onRun: (r) => out.push(outcomeOf(ex, r, seed, 'bounded')),
      });
    }
    return out;
  }
  for (let seed = unit.from; seed < unit.to; seed++) {
    const strategy = strategyOf(unit.strategy, seed);
    const r = runProgram(ex.program, { ...baseOptions(ex, seed), strategy });
    out.push(outcomeOf(ex, r, seed, strategy));
  }
  return out;
}

/** The units of one subsystem variant's exploration, cut in `pieces` (at least one schedule or seed each). */
export function unitsOf(options: FlagOptions, variant: SubsystemVariant, pieces: number): FlagUnit[] {
  const strategy = options.strategy ?? 'portfolio';
  const total = strategy === 'bounded' ? Math.ceil(options.schedules / BOUNDED_PER_SEED) : options.schedules;
  const n = Math.max(1, Math.min(pieces, total));
  const units: FlagUnit[] = [];
  for (let i = 0; i < n; i++) {
    units.push({
      policy: options.policy,
      variant,
      pctDepth: options.pctDepth,
      strategy,
      preemptionBound: options.preemptionBound ?? 2,
      from: Math.floor((i * total) / n),
      to: Math.floor(((i + 1) * total) / n),
      limit: options.schedules,
    });
  }
  return units;
}

/** The locations an assumption's `protects` names, canonical: `gem.mm1.obj0.refcount` and `gem.obj.refcount` are one. */
function canonicalLocation(name: string): string {
  return name
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\.mm(\d+|<pid>)\./g, '.')
    .replace(/([a-z_])\d+\b/gi, '$1');
}

/** Does a conflicting assumption declare the state at `location` (a race's)? */
function declaresLocation(assumptions: readonly DeclaredAssumption[], location: string): boolean {
  const loc = canonicalLocation(location);
  return assumptions.some((a) =>
    a.protects
      .split(/[,\s()]+/)
      .filter((t) => /^[\w.<>[\]-]+$/.test(t) && t.length > 0)
      .some((t) => {
        const c = canonicalLocation(t);
        return c === loc || (!c.includes('.') && loc.endsWith(`.${c}`));
      }),
  );
}

function replayCommand(policy: string, subsystem: string, variant: SubsystemVariant, seed: number, schedule: string): string {
  return `vmalock flag --policy ${policy} --subsystem ${subsystem} --variant ${variant} --seed ${seed} --schedule '${schedule}'`;
}

/**
 * Turn the outcomes of one subsystem variant (in seed order) into its verdict: each problem's
 * first schedule becomes a finding, with a minimised schedule, its evidence (a race's report
 * with the simulated call stacks, from a replay), whether a declaration covers it, and the
 * replay command.
 */
export function verdictOf(entry: SubsystemEntry, options: FlagOptions, variant: SubsystemVariant, outcomes: readonly ScheduleOutcome[]): Verdict {
  const ex = exercise(entry, variant, options.policy, options.pctDepth);
  const conflicting = ex.conflicting;
  const findings = new Map<string, Finding>();
  const hookCounts: Record<string, number> = {};
  let bound = 0;
  let pctRuns = 0;
  for (const o of outcomes) {
    if (o.pctBound !== null) {
      bound = o.pctBound;
      pctRuns++;
    }
    for (const [k, v] of Object.entries(o.hookCounts)) hookCounts[k] = (hookCounts[k] ?? 0) + v;
    for (const p of o.problems) {
      const id = findingId(p.kind, entry.name, p.signature);
      if (findings.has(id)) continue;
      const signatureOf = (x: RunResult): string | null => {
        const ps = problemsOf(ex, x);
        return ps.some((q) => q.kind === p.kind && q.signature === p.signature) ? p.signature : (ps[0]?.signature ?? null);
      };
      const minimised =
        o.strategy === 'replay' ? o.schedule : minimiseSchedule(ex.program, baseOptions(ex, o.seed), o.schedule, p.signature, signatureOf, { budget: 60 });
      findings.set(id, {
        id,
        kind: p.kind,
        subsystem: entry.name,
        policy: options.policy,
        process: 'p1',
        seed: o.seed,
        strategy: o.strategy,
        schedule: o.schedule,
        minimised,
        signature: p.signature,
        evidence: p.kind === 'race' ? raceEvidence(ex, o.seed, minimised, p) : p.message,
        declared: p.location !== null ? declaresLocation(conflicting, p.location) : conflicting.length > 0,
        replay: replayCommand(options.policy, entry.name, variant, o.seed, minimised),
        ...(p.kind === 'lock-order' ? lockOrderOf(ex, options, variant, o.seed, minimised, p) : {}),
      });
    }
  }
  const list = [...findings.values()];
  const exercised = Object.values(hookCounts).some((n) => n > 0);
  const verdict: Verdict['verdict'] = list.length > 0 ? 'breaks' : exercised ? 'safe' : 'not exercised';
  const strategy = options.replay !== undefined ? 'replay' : (options.strategy ?? 'portfolio');
  return {
    subsystem: entry.name,
    variant,
    verdict,
    declared: list.filter((f) => f.declared === true).length,
    undeclared: list.filter((f) => f.declared !== true).length,
    schedules: outcomes.length,
    strategy:
      strategy === 'portfolio'
        ? 'portfolio (pct, random)'
        : strategy === 'bounded'
          ? `bounded (at most ${options.preemptionBound ?? 2} preemptions)`
          : strategy,
    depth: options.pctDepth,
    missProbability: verdict === 'safe' && pctRuns > 0 && bound > 0 ? Math.pow(1 - bound, pctRuns) : null,
    hookCounts,
    findings: list,
  };
}

/**
 * A lock-order finding's status: replay the run that showed the report, then search for a
 * schedule that really deadlocks on its locks (`demonstrateLockOrder`); the evidence says which
 * and how to replay the deadlock.
 */
function lockOrderOf(
  ex: Exercise,
  options: FlagOptions,
  variant: SubsystemVariant,
  seed: number,
  schedule: string,
  p: RunProblem,
): { lockOrder: 'demonstrated' | 'possible'; evidence: string } {
  const runOptions: RunOptions = { ...baseOptions(ex, seed), strategy: 'replay', schedule, extendSchedule: true };
  runProgram(ex.program, runOptions);
  const report: LockdepReport | undefined = ex.lockdep.current.reports.find((r) => lockOrderSignature(r) === p.signature);
  if (report === undefined) return { lockOrder: 'possible', evidence: p.message };
  const v = demonstrateLockOrder(ex.program, runOptions, report);
  if (v.status === 'possible')
    return { lockOrder: 'possible', evidence: `${report.splat}\npossible: no schedule of ${v.schedulesTried} tried deadlocked on these locks` };
  return {
    lockOrder: 'demonstrated',
    evidence: `${report.splat}\ndemonstrated (${v.strategy}, after ${v.schedulesTried} schedules): ${v.evidence}\n  replay the deadlock: ${replayCommand(options.policy, ex.entry.name, variant, v.seed, v.schedule)}`,
  };
}

/** A race's report with the simulated call stacks: the schedule replayed under a detector that records them. */
function raceEvidence(ex: Exercise, seed: number, schedule: string, p: RunProblem): string {
  const detector = new RaceDetector({ stacks: true });
  runProgram(ex.program, { ...baseOptions(ex, seed), observers: [detector], strategy: 'replay', schedule, extendSchedule: true });
  return detector.runReports.find((r) => raceSignature(r) === p.signature)?.splat ?? p.message;
}

/** The outcomes of one subsystem variant, run here (no workers). */
function outcomesHere(entry: SubsystemEntry, options: FlagOptions, variant: SubsystemVariant): ScheduleOutcome[] {
  if (options.replay !== undefined) {
    const ex = exercise(entry, variant, options.policy, options.pctDepth);
    const { seed, schedule } = options.replay;
    const r = runProgram(ex.program, { ...baseOptions(ex, seed), strategy: 'replay', schedule });
    return [outcomeOf(ex, r, seed, 'replay')];
  }
  return unitsOf(options, variant, 1).flatMap((u) => runUnit(entry, u));
}

/**
 * `vmalock flag`: run each subsystem, legacy and converted, under `policy` over many schedules,
 * and turn what breaks into findings (stable ids, minimised schedules, the replay command) and a
 * verdict per variant. Detects: run errors (held-lock assertions, a subsystem's invariant
 * checked inside an operation, a throw), deadlocks, the subsystem's and the mm's invariants at
 * the end of each run, and data races (happens-before; marked accesses excepted). A finding is
 * `declared` when an assumption the variant declares and the policy does not provide covers it
 * (a race: its location is what the assumption protects; anything else: the variant has such an
 * assumption), `undeclared` otherwise.
 */
export function flag(options: FlagOptions): { policy: string; verdicts: Verdict[] } {
  const verdicts: Verdict[] = [];
  const variants = options.variants ?? ['legacy', 'converted'];
  const total = options.subsystems.length * variants.length;
  for (const entry of options.subsystems) {
    for (const variant of variants) {
      verdicts.push(verdictOf(entry, options, variant, outcomesHere(entry, options, variant)));
      options.progress?.(verdicts.length, total);
    }
  }
  return { policy: options.policy, verdicts };
}

/**
 * How many schedules of `strategy` (seeds `firstSeed`, `firstSeed + 1`, ...) it takes until the
 * subsystem variant shows its first problem under `policy` (1 = the first run), or null when
 * none of `cap` schedules does (bench:detect). A declared assumption's hook being reached is not
 * counted: that check fires on the first run that reaches the hook, whatever the schedule; what
 * is measured is how soon the schedules show the breakage itself.
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
  const ex = exercise(entry, variant, policy, pctDepth);
  for (let i = 0; i < cap; i++) {
    const r = runProgram(ex.program, { ...baseOptions(ex, firstSeed + i), strategy });
    if (problemsOf(ex, r).some((p) => !p.message.startsWith(DECLARED_CHECK))) return i + 1;
  }
  return null;
}

/** The pool of `jobs` worker threads that run flag units (`worker.ts`; tasks are `FlagTask`s). */
export function flagPool(jobs: number): Tinypool {
  // Under vitest this module is the TypeScript source; the worker runs compiled, from dist/.
  const filename = new URL('./worker.js', import.meta.url).href.replace(/\/src\/flag\/worker\.js$/, '/dist/flag/worker.js');
  // Without the resolve conditions a test runner adds (`--conditions @vmalock/source` would make
  // the compiled worker import the TypeScript sources).
  const execArgv = process.execArgv.filter((a, i, all) => !/^(--conditions|-C)(=|$)/.test(a) && !/^(--conditions|-C)$/.test(all[i - 1] ?? ''));
  return new Tinypool({ filename, minThreads: jobs, maxThreads: jobs, execArgv });
}

/** `flag` over `jobs` worker threads: the same verdicts, byte for byte, as `flag` itself. */
export async function flagParallel(options: FlagOptions, jobs: number): Promise<{ policy: string; verdicts: Verdict[] }> {
  if (jobs <= 1 || options.replay !== undefined) return flag(options);
  const pool = flagPool(jobs);
  try {
    const variants = options.variants ?? ['legacy', 'converted'];
    const total = options.subsystems.length * variants.length;
    // Every unit of every variant goes to the pool at once; each variant's outcomes are then taken in unit order.
    const pending = options.subsystems.flatMap((entry) => {
      const path = subsystemSource(entry);
      const subsystem = path !== null ? { path } : { name: entry.name };
      return variants.map((variant) => ({
        entry,
        variant,
        parts: handled(Promise.all(unitsOf(options, variant, jobs * 2).map((unit) => pool.run({ subsystem, unit }) as Promise<ScheduleOutcome[]>))),
      }));
    });
    const verdicts: Verdict[] = [];
    for (const p of pending) {
      const outcomes = (await p.parts).flat();
      verdicts.push(verdictOf(p.entry, options, p.variant, outcomes));
      options.progress?.(verdicts.length, total);
    }
    return { policy: options.policy, verdicts };
  } finally {
    await pool.destroy();
  }
}

/** `p`, marked handled now (a worker's failure surfaces where `p` is awaited, not as an unhandled rejection first). */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * The Perfetto timeline of one replayed schedule of a subsystem variant (`vmalock flag ...
 * --seed S --schedule X --trace FILE`): the replay with its findings' steps marked — both
 * accesses of each race, the acquisition that closed each lockdep cycle — and the failing step.
 */
export function flagReplayTrace(
  entry: SubsystemEntry,
  options: Pick<FlagOptions, 'policy' | 'pctDepth'>,
  variant: SubsystemVariant,
  seed: number,
  schedule: string,
): string {
  const ex = exercise(entry, variant, options.policy, options.pctDepth);
  const runOptions: RunOptions = { ...baseOptions(ex, seed), strategy: 'replay', schedule };
  runProgram(ex.program, runOptions);
  const marks: FindingMark[] = [];
  for (const r of ex.races.runReports)
    for (const [which, a] of [
      ['first', r.first],
      ['then', r.second],
    ] as const)
      marks.push({ step: a.step, thread: a.thread, label: `data-race on ${r.location} (${which}: ${a.kind})`, args: { report: r.splat } });
  for (const r of ex.lockdep.current.reports)
    marks.push({ step: r.step, thread: r.acquisition.thread, label: `lock order: ${lockOrderSignature(r)}`, args: { report: r.splat } });
  return findingTrace(ex.program, runOptions, marks, { processName: `vmalock flag ${entry.name} ${variant} under ${options.policy}` });
}
