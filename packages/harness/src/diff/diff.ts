/**
 * The policy-differential run: one workload and one seed under two lock policies, and the first
 * place where what the program saw, what the checkers found, or what the address space ended as
 * differs.
 *
 * What "first" means. A lock policy changes the interleaving (its locks are other scheduling
 * points), so the two runs are two different schedules of the same program: there is no common
 * clock. What they share is each thread's program order: a thread's k-th event (a call with its
 * result, or a user-level expectation with its outcome) is the same step of the program under
 * both policies, as long as the results it used agreed. So:
 *
 * 1. Events are compared per thread in program order — thread t's k-th event under the first
 *    policy (the baseline) against its k-th event under the second.
 * 2. Across threads, the first divergence is the one whose event came first in the baseline's
 *    run (its order of responses; an expectation counts where it was checked). Events only the
 *    second run has (a thread that went further there) come after all of the baseline's.
 * 3. Then the runs' findings: how each ended (a held-lock assertion, an invariant checked inside
 *    an operation, a deadlock, the step limit), the mm's invariants after the run, and (random
 *    workload) whether each run's history is linearizable.
 * 4. Then the final address space: the first differing line of /proc/pid/maps, then of the
 *    page-level fingerprint (present pages, break).
 *
 * Kinds: `result` (a call returned something else, or the program made another call),
 * `user-visible` (a user-level expectation holds under one policy and not the other — a change
 * user space can see, not a kernel bug; a differing result that the program checked right away
 * is reported as this), `finding` (a failure or a checker's finding under one policy and not the
 * other), `state` (the final address space). A result divergence is not in itself a bug: under
 * two schedules of concurrent calls, correct policies may return different results; the
 * linearizability verdict of each run (random workload) says whether each is explainable.
 */
import {
  type LockPolicy,
  MmStruct,
  type RunResult,
  type RunStatus,
  checkLinearizability,
  checkMmInvariants,
  foldMessage,
  renderMaps,
  runProgram,
} from '@vmalock/core';
import { createPolicy, mmFingerprint, mmPartition, mmSequentialModel } from '@vmalock/policies';
import { type CallEvent, type ExpectationEvent, type UserEvent, UserSpace } from './userSpace.js';
import { type DiffWorkload, diffWorkload } from './workloads.js';

/** What `policyDiff` runs. */
export interface PolicyDiffOptions {
  /** The baseline first, then the policy under test. */
  readonly policies: readonly [string, string];
  readonly workload: string | DiffWorkload;
  readonly seed: number;
  readonly strategy: 'pct' | 'random';
  /** Threads (random workload; the user programs fix their own). */
  readonly threads?: number;
  /** Calls per thread (random), or rounds of the program's loop. */
  readonly calls?: number;
  readonly pctDepth?: number;
  /** PCT's step bound k (default: the workload's). */
  readonly pctSteps?: number;
  /** Makes the policy of each side (tests: a deliberately broken one); default `createPolicy(name)`. */
  readonly createPolicy?: (name: string, side: 0 | 1) => LockPolicy;
}

/** A failure or a checker's finding in one run. */
export interface RunFinding {
  /** As `Finding.kind`, plus `step-limit` and `linearizability` (the history of the random workload). */
  readonly kind: 'assertion' | 'invariant' | 'deadlock' | 'error' | 'step-limit' | 'linearizability';
  readonly message: string;
  /** The thread that threw, when one did. */
  readonly thread: string | null;
}

/** One policy's run, as the report shows it. */
export interface PolicyRun {
  readonly policy: string;
  readonly status: RunStatus;
  readonly summary: string;
  readonly steps: number;
  /** The recorded schedule (the same options and seed replay it; `--strategy replay` takes it). */
  readonly schedule: string;
  readonly calls: number;
  readonly expectationsChecked: number;
  /** The user-level expectations that did not hold. */
  readonly broken: readonly ExpectationEvent[];
  /** How the run ended, if it failed, or what the checks after it found (first one). */
  readonly finding: RunFinding | null;
  /** The random workload: the linearizability verdict of the run's history (null: not checked). */
  readonly linearizability: 'linearizable' | 'not linearizable' | 'unknown' | null;
  /** /proc/pid/maps at the end. */
  readonly maps: string;
}

/** Where the two runs first differ. */
export type Divergence =
  | {
      readonly kind: 'result';
      readonly thread: string;
      /** The event's place in the thread's program order. */
      readonly index: number;
      /** What each run did there (a call, an expectation, or nothing). */
      readonly did: readonly [string, string];
      readonly results: readonly [string, string];
    }
  | {
      readonly kind: 'user-visible';
      readonly expectation: string;
      readonly thread: string;
      readonly index: number;
      readonly holds: readonly [boolean, boolean];
      readonly details: readonly [string, string];
      /** The call whose result the program checked, when a differing result led to it. */
      readonly call: { readonly call: string; readonly results: readonly [string, string] } | null;
    }
  | {
      readonly kind: 'finding';
      /** Each run's finding (null: none). */
      readonly findings: readonly [RunFinding | null, RunFinding | null];
      /** The event the other run made and this one did not reach, when the failure cut a thread short. */
      readonly thread: string | null;
      readonly index: number | null;
    }
  | {
      readonly kind: 'state';
      /** Which rendering differs: /proc/pid/maps, or the page-level fingerprint. */
      readonly what: 'maps' | 'pages';
      /** The first differing line, from 1. */
      readonly line: number;
      readonly lines: readonly [string | null, string | null];
    };

export interface PolicyDiffResult {
  readonly seed: number;
  readonly strategy: 'pct' | 'random';
  readonly workload: string;
  readonly threads: number;
  readonly calls: number;
  readonly policies: readonly [string, string];
  readonly runs: readonly [PolicyRun, PolicyRun];
  readonly divergence: Divergence | null;
}

/** The parameters a diff of `workload` runs with: the program's own thread count, the defaults. */
export function diffParams(workload: DiffWorkload, threads: number | undefined, calls: number | undefined): { threads: number; calls: number } {
  if (workload.fixedThreads !== null && threads !== undefined && threads !== workload.fixedThreads)
    throw new RangeError(`workload '${workload.name}' runs ${workload.fixedThreads} threads of its own; it takes no other thread count (got ${threads})`);
  return { threads: workload.fixedThreads ?? threads ?? workload.defaultThreads, calls: calls ?? workload.defaultCalls };
}

/** One policy's run of a workload, with what its threads did and the final fingerprint. */
export interface WorkloadRun {
  readonly run: PolicyRun;
  readonly user: UserSpace;
  readonly fingerprint: string;
}

/** What `runWorkload` runs. */
export interface WorkloadRunOptions {
  readonly workload: DiffWorkload;
  /** The policy's name (for reports) and the policy object the mm is made with. */
  readonly policy: string;
  readonly lockPolicy: LockPolicy;
  readonly seed: number;
  readonly strategy: 'pct' | 'random';
  readonly threads: number;
  readonly calls: number;
  readonly pctDepth?: number;
  readonly pctSteps?: number;
}

/**
 * One run of a workload under one policy, on a fresh mm: its events, how it ended, the checks
 * after it (mm invariants, dummies left behind; the random workload's linearizability).
 */
export function runWorkload(o: WorkloadRunOptions): WorkloadRun {
  const mm = new MmStruct(1, o.lockPolicy);
  const user = new UserSpace();
  const built = o.workload.build(mm, user, { seed: o.seed, threads: o.threads, calls: o.calls });
  const r = runProgram(built.program, { seed: o.seed, strategy: o.strategy, pctDepth: o.pctDepth ?? 3, pctSteps: o.pctSteps ?? o.workload.pctSteps });
  let linearizability: PolicyRun['linearizability'] = null;
  if (built.history !== undefined && r.status === 'ok')
    linearizability = checkLinearizability(built.history(), mmSequentialModel(), { partition: mmPartition() }).verdict;
  const run: PolicyRun = {
    policy: o.policy,
    status: r.status,
    summary: r.summary,
    steps: r.steps,
    schedule: r.schedule,
    calls: user.events.filter((e) => e.type === 'call').length,
    expectationsChecked: user.events.filter((e) => e.type === 'expectation').length,
    broken: user.broken,
    finding: findingOf(r, mm),
    linearizability,
    maps: renderMaps(mm),
  };
  return { run, user, fingerprint: mmFingerprint(mm) };
}

/**
 * Run `options.workload` with `options.seed` under both policies and report the first
 * divergence (see the file's comment for what "first" means), or null. Deterministic: the same
 * options give the same result byte for byte. Throws a RangeError for an unknown policy or
 * workload, or parameters the workload does not take.
 */
export function policyDiff(options: PolicyDiffOptions): PolicyDiffResult {
  const workload = typeof options.workload === 'string' ? diffWorkload(options.workload) : options.workload;
  const { threads, calls } = diffParams(workload, options.threads, options.calls);
  const make = options.createPolicy ?? ((name: string) => createPolicy(name));
  // Both policies are made (and their names checked) before anything runs.
  const lockPolicies = [make(options.policies[0], 0), make(options.policies[1], 1)] as const;
  const runOne = (i: 0 | 1): WorkloadRun =>
    runWorkload({
      workload,
      policy: options.policies[i],
      lockPolicy: lockPolicies[i],
      seed: options.seed,
      strategy: options.strategy,
      threads,
      calls,
      ...(options.pctDepth !== undefined ? { pctDepth: options.pctDepth } : {}),
      ...(options.pctSteps !== undefined ? { pctSteps: options.pctSteps } : {}),
    });
  const a = runOne(0);
  const b = runOne(1);
  return {
    seed: options.seed,
    strategy: options.strategy,
    workload: workload.name,
    threads,
    calls,
    policies: [options.policies[0], options.policies[1]],
    runs: [a.run, b.run],
    divergence: firstDivergence(a, b),
  };
}

/**
 * `policyDiff` over seeds `from`, `from + 1`, ... (at most `count`): the first result with a
 * divergence, or the last one run when none diverges.
 */
export function findDivergence(options: Omit<PolicyDiffOptions, 'seed'>, from: number, count: number): PolicyDiffResult & { readonly seedsRun: number } {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`seed count must be an integer >= 1, got ${count}`);
  let last: PolicyDiffResult | null = null;
  for (let i = 0; i < count; i++) {
    last = policyDiff({ ...options, seed: from + i });
    if (last.divergence !== null) return { ...last, seedsRun: i + 1 };
  }
  return { ...last!, seedsRun: count };
}

/** How a run failed, or what the mm's checks after it found; null when it ended well. */
function findingOf(r: RunResult, mm: MmStruct): RunFinding | null {
  if (r.status !== 'ok') {
    const message = r.failure?.message ?? r.summary;
    const thread = r.failure?.thread ?? null;
    if (r.status === 'deadlock' || r.status === 'step-limit') return { kind: r.status, message, thread };
    const head = r.failure?.stack?.split('\n')[0] ?? '';
    const kind: RunFinding['kind'] =
      /^(SubsystemInvariantError|MmInvariantError)/.test(head) || /threw at step \d+: mm\d+: /.test(message)
        ? 'invariant'
        : /(mmap|vma|range)_assert_|R7: /.test(message)
          ? 'assertion'
          : 'error';
    return { kind, message, thread };
  }
  try {
    checkMmInvariants(mm);
  } catch (e) {
    return { kind: 'invariant', message: e instanceof Error ? e.message : String(e), thread: null };
  }
  if (mm.dummyCount !== 0) return { kind: 'invariant', message: `mm${mm.pid}: ${mm.dummyCount} dummy VMAs left behind after the run`, thread: null };
  return null;
}

function byThread(events: readonly UserEvent[]): Map<string, UserEvent[]> {
  const m = new Map<string, UserEvent[]>();
  for (const e of events) {
    const list = m.get(e.thread) ?? [];
    list.push(e);
    m.set(e.thread, list);
  }
  return m;
}

function describeEvent(e: UserEvent | undefined): { did: string; result: string } {
  if (e === undefined) return { did: '(nothing: the thread had ended)', result: '-' };
  if (e.type === 'call') return { did: e.call, result: e.result };
  return { did: `expect ${e.name}`, result: e.holds ? 'holds' : `fails: ${e.detail}` };
}

function sameFinding(x: RunFinding | null, y: RunFinding | null): boolean {
  if (x === null || y === null) return x === y;
  return x.kind === y.kind && foldMessage(x.message) === foldMessage(y.message);
}

/** The first divergence of two runs of one workload (baseline `a`), or null. */
function firstDivergence(a: WorkloadRun, b: WorkloadRun): Divergence | null {
  const aThreads = byThread(a.user.events);
  const bThreads = byThread(b.user.events);
  const findings = [a.run.finding, b.run.finding] as const;
  // 1, 2: per thread in program order, across threads in the baseline's order.
  for (const e of a.user.events) {
    const other = bThreads.get(e.thread)?.[e.index];
    if (other === undefined && b.run.finding !== null) return { kind: 'finding', findings, thread: e.thread, index: e.index };
    const d = compareEvents(e, other, aThreads.get(e.thread)!, bThreads.get(e.thread) ?? [], false);
    if (d !== null) return d;
  }
  for (const e of b.user.events) {
    if (aThreads.get(e.thread)?.[e.index] !== undefined) continue;
    if (a.run.finding !== null) return { kind: 'finding', findings, thread: e.thread, index: e.index };
    return compareEvents(e, undefined, bThreads.get(e.thread)!, [], true);
  }
  // 3: how the runs ended, the checks after them, linearizability.
  if (!sameFinding(a.run.finding, b.run.finding)) return { kind: 'finding', findings, thread: null, index: null };
  if (a.run.finding !== null) return null; // both failed the same way: their end states say nothing
  const lin = [a.run.linearizability, b.run.linearizability] as const;
  if ((lin[0] === 'not linearizable') !== (lin[1] === 'not linearizable')) {
    const f = (v: PolicyRun['linearizability']): RunFinding | null =>
      v === 'not linearizable'
        ? { kind: 'linearizability', message: 'the history of the run is not linearizable against the sequential mm', thread: null }
        : null;
    return { kind: 'finding', findings: [f(lin[0]), f(lin[1])], thread: null, index: null };
  }
  // 4: the final address space.
  return firstLineDiff('maps', a.run.maps, b.run.maps) ?? firstLineDiff('pages', a.fingerprint, b.fingerprint);
}

/**
 * Compare thread `e.thread`'s event `e.index` of one run with the other run's (`other`).
 * `swapped`: `e` is the second run's (an event only it made).
 */
function compareEvents(
  e: UserEvent,
  other: UserEvent | undefined,
  mine: readonly UserEvent[],
  theirs: readonly UserEvent[],
  swapped: boolean,
): Divergence | null {
  const pair = <T>(x: T, y: T): readonly [T, T] => (swapped ? [y, x] : [x, y]);
  const mismatch = (): Divergence => {
    const x = describeEvent(e);
    const y = describeEvent(other);
    return { kind: 'result', thread: e.thread, index: e.index, did: pair(x.did, y.did), results: pair(x.result, y.result) };
  };
  if (other === undefined || other.type !== e.type) return mismatch();
  if (e.type === 'expectation') {
    const o = other as ExpectationEvent;
    if (o.name !== e.name) return mismatch();
    if (o.holds === e.holds) return null;
    return {
      kind: 'user-visible',
      expectation: e.name,
      thread: e.thread,
      index: e.index,
      holds: pair(e.holds, o.holds),
      details: pair(e.detail, o.detail),
      call: null,
    };
  }
  const o = other as CallEvent;
  if (o.call !== e.call) return mismatch();
  if (!e.compared || o.result === e.result) return null;
  // A differing result the program checked at once (before its next call) is user-visible.
  for (let k = e.index + 1; k < mine.length; k++) {
    const next = mine[k]!;
    const there = theirs[k];
    if (next.type === 'call') break;
    if (there?.type === 'expectation' && there.name === next.name && there.holds !== next.holds) {
      return {
        kind: 'user-visible',
        expectation: next.name,
        thread: next.thread,
        index: next.index,
        holds: pair(next.holds, there.holds),
        details: pair(next.detail, there.detail),
        call: { call: e.call, results: pair(e.result, o.result) },
      };
    }
  }
  return mismatch();
}

function firstLineDiff(what: 'maps' | 'pages', x: string, y: string): Divergence | null {
  if (x === y) return null;
  const xs = x.split('\n');
  const ys = y.split('\n');
  for (let i = 0; i < Math.max(xs.length, ys.length); i++) {
    if (xs[i] !== ys[i]) return { kind: 'state', what, line: i + 1, lines: [xs[i] ?? null, ys[i] ?? null] };
  }
  return null;
}

/** One line for reports: the divergence in words, naming the two policies. */
export function describeDivergence(d: Divergence | null, policies: readonly [string, string]): string {
  const [p, q] = policies;
  if (d === null) return 'no divergence';
  switch (d.kind) {
    case 'result':
      if (d.did[0] !== d.did[1])
        return `result: ${d.thread}'s event ${d.index} is ${d.did[0]} -> ${d.results[0]} under ${p}, ${d.did[1]} -> ${d.results[1]} under ${q}`;
      return `result: ${d.thread}'s event ${d.index} ${d.did[0]} returned ${d.results[0]} under ${p}, ${d.results[1]} under ${q}`;
    case 'user-visible': {
      const via = d.call === null ? '' : ` (after ${d.call.call} returned ${d.call.results[0]} under ${p}, ${d.call.results[1]} under ${q})`;
      const holds = (h: boolean, policy: string) => `${h ? 'holds' : 'fails'} under ${policy}`;
      const detail = d.holds[0] ? d.details[1] : d.details[0];
      return `user-visible (a change user space sees, not a kernel bug): ${d.thread}'s expectation '${d.expectation}' ${holds(d.holds[0], p)}, ${holds(d.holds[1], q)}${via}: ${detail}`;
    }
    case 'finding': {
      const f = (x: RunFinding | null, policy: string) => (x === null ? `nothing under ${policy}` : `${x.kind} under ${policy}: ${x.message}`);
      const where = d.thread === null ? '' : ` (${d.thread} did not reach its event ${d.index})`;
      return `finding: ${f(d.findings[0], p)}; ${f(d.findings[1], q)}${where}`;
    }
    case 'state':
      return `state: ${d.what === 'maps' ? '/proc/pid/maps' : 'the page-level fingerprint'} differs at line ${d.line}: '${d.lines[0] ?? '(none)'}' under ${p}, '${d.lines[1] ?? '(none)'}' under ${q}`;
  }
}

/**
 * What a result or state divergence of the random workload means, from each run's
 * linearizability verdict; null when there is nothing to add.
 */
export function explainDivergence(result: PolicyDiffResult): string | null {
  const d = result.divergence;
  if (d === null || (d.kind !== 'result' && d.kind !== 'state')) return null;
  const [x, y] = result.runs;
  if (x.linearizability === null || y.linearizability === null) return null;
  if (x.linearizability === 'linearizable' && y.linearizability === 'linearizable')
    return 'both runs are linearizable: they differ because the two policies interleave the calls differently, not because either is wrong';
  const bad = result.runs.filter((r) => r.linearizability !== 'linearizable').map((r) => `${r.policy}: ${r.linearizability}`);
  return `linearizability: ${bad.join('; ')}`;
}
