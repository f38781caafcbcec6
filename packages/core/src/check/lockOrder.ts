/**
 * Lock order, demonstrated or possible. A lockdep cycle says only that an inversion is possible:
 * the orders were seen, perhaps in runs that never overlapped. `demonstrateLockOrder` searches,
 * within a deterministic budget of runs, for a schedule that really deadlocks on the report's
 * lock classes — the engine's `deadlock` status, with a wait-for cycle whose threads all wait on
 * locks of exactly those classes — and answers `demonstrated` (with the seed and a schedule that
 * replays to it) or `possible` (no such schedule found: the inversion may be prevented by
 * something lockdep does not see, such as a common outer lock, or may need a rarer schedule).
 *
 * The search, in order, each run counted against the budget:
 * 1. The run that showed the report, replayed from the options given, watched to learn which
 *    threads show each dependency of the cycle and at which acquisition of the held class.
 * 2. Directed runs (the CHESS-style idea of steering to a state, here: every participant holding
 *    its first lock at once): one thread per dependency of the cycle, in turn, runs until it
 *    holds that dependency's held class (at the acquisition the watch saw) and is then parked —
 *    run only when nothing else can; once all hold, they run in cycle order, each requesting the
 *    lock the next one holds. Plans vary the thread for each dependency (distinct threads), which
 *    participant goes first, and which acquisition is parked at.
 * 3. A portfolio fallback: PCT on even attempts (depths cycling through `pctDepths`, the steps
 *    bound from the first run's length) and random on odd ones, seeds counting up from the
 *    options' seed.
 * A recursive report (two locks of one class, such as two mm's `mmap_sem`) is searched as a
 * cycle of two threads, each holding a lock of the class and requesting another.
 * Deterministic: no clock, no randomness but the seeds; same inputs, same answer.
 */
import { type EngineObserver, type Program, type RunOptions, type RunResult, type WaitEdge, defaultStepLimit, runProgram } from '../sim/engine.js';
import { SimLock } from '../sim/lock.js';
import { ScriptedStrategy } from '../sim/strategies.js';
import { RunnableSet } from '../sim/strategy.js';
import { type SimThread, ThreadState } from '../sim/thread.js';
import { foldMessage } from './findings.js';
import type { LockdepReport } from './lockdep.js';

/** Default bounds of the search. */
export const defaultLockOrderBudget = 200;
const defaultPctDepths: readonly number[] = [2, 3, 4];
/** Acquisitions of a held class remembered per thread and dependency (plans try each). */
const occurrencesMax = 3;

/** How hard `demonstrateLockOrder` looks. */
export interface LockOrderSearchOptions {
  /** Runs allowed in all, the first run included (default 200). */
  readonly budget?: number;
  /** Directed runs allowed, within the budget (default half of it). */
  readonly directedMax?: number;
  /** PCT depths the fallback cycles through (default 2, 3, 4). */
  readonly pctDepths?: readonly number[];
}

/** A schedule that really deadlocks on the report's classes. */
export interface LockOrderDemonstrated {
  readonly status: 'demonstrated';
  /** Replay: `runProgram(program, { ...options, seed, strategy: 'replay', schedule })`. */
  readonly seed: number;
  readonly schedule: string;
  /** What found it: the first run's strategy, 'directed', 'pct' or 'random'. */
  readonly strategy: string;
  /** The engine's deadlock message. */
  readonly evidence: string;
  /** The wait-for cycle, each thread waiting on a lock of one of the report's classes. */
  readonly cycle: readonly WaitEdge[];
  /** Runs made, the demonstrating one included. */
  readonly schedulesTried: number;
}

/** No schedule within the budget deadlocked on the report's classes. */
export interface LockOrderPossible {
  readonly status: 'possible';
  readonly schedulesTried: number;
}

export type LockOrderVerdict = LockOrderDemonstrated | LockOrderPossible;

/** One dependency of the cycle: a thread requests `requested` while holding `held`. */
interface Dependency {
  readonly held: string;
  readonly requested: string;
  /** The thread the report names for it. */
  readonly thread: string;
}

/** A participant of a directed run: park `thread` once it holds `held` at its `occurrence`-th acquisition of that class. */
interface Park {
  readonly thread: string;
  readonly held: string;
  readonly occurrence: number;
}

/**
 * Search for a schedule of `program` that deadlocks on the lock classes of `report` (see the
 * file comment for how). `options` are the run that showed the report (its seed, strategy and,
 * for a replay, schedule); its observers and tracing are not used. Throws on a bad budget.
 */
export function demonstrateLockOrder(program: Program, options: RunOptions, report: LockdepReport, search: LockOrderSearchOptions = {}): LockOrderVerdict {
  const budget = search.budget ?? defaultLockOrderBudget;
  if (!Number.isInteger(budget) || budget < 1) throw new RangeError(`demonstrateLockOrder: budget must be an integer >= 1, got ${budget}`);
  const directedMax = search.directedMax ?? Math.floor(budget / 2);
  if (!Number.isInteger(directedMax) || directedMax < 0) throw new RangeError(`demonstrateLockOrder: directedMax must be an integer >= 0, got ${directedMax}`);
  const pctDepths = search.pctDepths ?? defaultPctDepths;
  if (pctDepths.length === 0) throw new RangeError('demonstrateLockOrder: pctDepths must name at least one depth');
  if (report.classes.length === 0) throw new RangeError('demonstrateLockOrder: the report names no lock class');

  const classes = new Set(report.classes);
  const watch = new LockOrderWatch();
  const { observers: _observers, trace: _trace, scripted: _scripted, ...given } = options;
  const { schedule: _schedule, extendSchedule: _extend, ...plain } = given;
  let tried = 0;
  const attempt = (runOptions: RunOptions, strategy: string): { found: LockOrderDemonstrated | null; result: RunResult } => {
    tried++;
    const r = runProgram(program, { ...runOptions, observers: [watch] });
    const cycle = deadlockOn(r, classes, watch);
    if (cycle === null) return { found: null, result: r };
    const found: LockOrderDemonstrated = {
      status: 'demonstrated',
      seed: r.seed,
      schedule: r.schedule,
      strategy,
      evidence: r.failure!.message,
      cycle,
      schedulesTried: tried,
    };
    return { found, result: r };
  };

  // 1. The run that showed the report, watched.
  const first = attempt(given, given.strategy);
  if (first.found !== null) return first.found;
  const firstSteps = first.result.steps;
  const threads = first.result.threads.map((t) => `T${t.id} ${t.name}`);
  const seen = watch.snapshot();

  // 2. Directed runs, from the seed given.
  const stepLimit = Math.min(given.stepLimit ?? defaultStepLimit, 4 * firstSteps + 1000);
  let directed = 0;
  for (const parks of plans(dependenciesOf(report), seen, threads)) {
    if (directed >= directedMax || tried >= budget) break;
    directed++;
    const strategy = new LockOrderStrategy(parks, watch, firstSteps + 100);
    const { found } = attempt({ ...plain, strategy: 'replay', stepLimit, scripted: strategy }, 'directed');
    if (found !== null) return found;
  }

  // 3. The portfolio, from the seed after the one given.
  const pctSteps = given.pctSteps ?? Math.max(1, firstSteps);
  for (let i = 0; tried < budget; i++) {
    const seed = given.seed + 1 + i;
    const runOptions: RunOptions =
      i % 2 === 0 ? { ...plain, seed, strategy: 'pct', pctDepth: pctDepths[(i / 2) % pctDepths.length]!, pctSteps } : { ...plain, seed, strategy: 'random' };
    const { found } = attempt(runOptions, runOptions.strategy);
    if (found !== null) return found;
  }
  return { status: 'possible', schedulesTried: tried };
}

/**
 * What identifies "the same inversion" across seeds and runs: the kind and the classes, folded
 * (`foldMessage`), a cycle written from its lexicographically least rotation in its own
 * direction — `possible circular locking: lock_A -> lock_B -> lock_A` whichever order a run saw
 * first. For `findingId('lock-order', subsystem, signature)`.
 */
export function lockOrderSignature(report: LockdepReport): string {
  const folded = report.classes.map(foldMessage);
  if (report.kind === 'recursive') {
    return `possible recursive locking: ${folded[0]}${report.outOfOrder !== undefined ? ' (out of order)' : ''}`;
  }
  let best: string[] = folded;
  for (let i = 1; i < folded.length; i++) {
    const rotated = [...folded.slice(i), ...folded.slice(0, i)];
    if (rotated.join('\u0000') < best.join('\u0000')) best = rotated;
  }
  return `possible circular locking: ${[...best, best[0]!].join(' -> ')}`;
}

/**
 * The cycle's dependencies, from the report. Circular, classes `[C0 .. Cn-1]`: the chain entry of
 * depth d > 0 is `C(d-1) -> Cd`, depth 0 the request that closed the cycle, `Cn-1 -> C0`.
 * Recursive, class C: two threads each holding one lock of C and requesting another.
 */
function dependenciesOf(report: LockdepReport): Dependency[] {
  const c = report.classes;
  if (report.kind === 'recursive') {
    return [
      { held: c[0]!, requested: c[0]!, thread: report.thread },
      { held: c[0]!, requested: c[0]!, thread: '' },
    ];
  }
  const n = c.length;
  return report.chain.map((e) => ({ held: c[(e.depth - 1 + n) % n]!, requested: c[e.depth]!, thread: e.acquisition.thread }));
}

/**
 * The directed plans, lazily, in a fixed order: for each assignment of distinct threads to the
 * dependencies (the report's thread first, then those the first run showed the dependency in, in
 * first-seen order, then the first run's other threads by id), each rotation (who is parked
 * first), each combination of the acquisitions the watch saw (first ones first).
 */
function* plans(dependencies: readonly Dependency[], seen: ReadonlyMap<string, readonly SeenDependency[]>, threads: readonly string[]): Generator<Park[]> {
  const candidates = dependencies.map((d) => {
    const list = d.thread === '' ? [] : [d.thread];
    for (const s of seen.get(depKey(d.held, d.requested)) ?? []) if (!list.includes(s.thread)) list.push(s.thread);
    for (const t of threads) if (!list.includes(t)) list.push(t);
    return list;
  });
  const occurrencesOf = (thread: string, d: Dependency): readonly number[] => {
    const s = seen.get(depKey(d.held, d.requested))?.find((x) => x.thread === thread);
    return s === undefined ? [1] : s.occurrences;
  };
  const n = dependencies.length;
  for (const assignment of product(candidates)) {
    if (new Set(assignment).size !== n) continue;
    for (let rotation = 0; rotation < n; rotation++) {
      const order = Array.from({ length: n }, (_, i) => (i + rotation) % n);
      for (const occurrences of product(order.map((i) => occurrencesOf(assignment[i]!, dependencies[i]!)))) {
        yield order.map((i, k) => ({ thread: assignment[i]!, held: dependencies[i]!.held, occurrence: occurrences[k]! }));
      }
    }
  }
}

/** The cartesian product of `lists`, lexicographically by index (the last list varies fastest). */
function* product<T>(lists: readonly (readonly T[])[]): Generator<T[]> {
  if (lists.some((l) => l.length === 0)) return;
  const index = lists.map(() => 0);
  for (;;) {
    yield index.map((j, i) => lists[i]![j]!);
    let i = lists.length - 1;
    while (i >= 0 && ++index[i]! >= lists[i]!.length) index[i--] = 0;
    if (i < 0) return;
  }
}

/**
 * The wait-for cycle of `r` when it is a deadlock on `classes`: every thread of the cycle waits
 * on a lock, and the classes of those locks are exactly `classes`. Null otherwise.
 */
function deadlockOn(r: RunResult, classes: ReadonlySet<string>, watch: LockOrderWatch): readonly WaitEdge[] | null {
  const cycle = r.status === 'deadlock' ? r.failure?.cycle : undefined;
  if (cycle === undefined || cycle.length === 0) return null;
  const waited = new Set<string>();
  for (const edge of cycle) {
    const on = watch.thread(edge.thread)?.waitingOn;
    if (!(on instanceof SimLock) || !classes.has(on.lockClass)) return null;
    waited.add(on.lockClass);
  }
  return waited.size === classes.size ? cycle : null;
}

/** Which thread showed a dependency, and at which acquisitions of the held class. */
interface SeenDependency {
  readonly thread: string;
  readonly occurrences: number[];
}

function depKey(held: string, requested: string): string {
  return `${held}\u0000${requested}`;
}

/**
 * Watches the runs of a search. Per run: threads by label (those that requested or took a lock:
 * every thread of a lock wait-for cycle did) and how many locks of each class each thread has
 * acquired (the directed strategy parks on those counts). Across runs (`snapshot()`): which
 * thread requested which class while holding which, at which acquisition of the held class.
 */
class LockOrderWatch implements EngineObserver {
  #threads = new Map<string, SimThread>();
  #acquired = new Map<string, Map<string, number>>();
  readonly #seen = new Map<string, SeenDependency[]>();

  thread(label: string): SimThread | undefined {
    return this.#threads.get(label);
  }

  /** How many locks of `lockClass` `thread` acquired so far in this run. */
  acquired(thread: string, lockClass: string): number {
    return this.#acquired.get(thread)?.get(lockClass) ?? 0;
  }

  /** The dependencies seen so far, copied. */
  snapshot(): Map<string, readonly SeenDependency[]> {
    return new Map([...this.#seen].map(([k, list]) => [k, list.map((s) => ({ thread: s.thread, occurrences: [...s.occurrences] }))]));
  }

  onRunStart(): void {
    this.#threads = new Map();
    this.#acquired = new Map();
  }

  onLockRequest(thread: SimThread, lock: SimLock, _mode: number, trylock: boolean): void {
    this.#note(thread);
    if (trylock) return;
    for (const h of thread.held) {
      if (!(h.lock instanceof SimLock)) continue;
      const key = depKey(h.lock.lockClass, lock.lockClass);
      let list = this.#seen.get(key);
      if (list === undefined) this.#seen.set(key, (list = []));
      let s = list.find((x) => x.thread === thread.label);
      if (s === undefined) list.push((s = { thread: thread.label, occurrences: [] }));
      const occurrence = this.acquired(thread.label, h.lock.lockClass);
      if (s.occurrences.length < occurrencesMax && !s.occurrences.includes(occurrence)) s.occurrences.push(occurrence);
    }
  }

  onLockAcquired(thread: SimThread, lock: SimLock): void {
    this.#note(thread);
    let counts = this.#acquired.get(thread.label);
    if (counts === undefined) this.#acquired.set(thread.label, (counts = new Map<string, number>()));
    counts.set(lock.lockClass, (counts.get(lock.lockClass) ?? 0) + 1);
  }

  #note(thread: SimThread): void {
    this.#threads.set(thread.label, thread);
  }
}

/**
 * The directed strategy: participants in turn run until each holds its class and is parked;
 * then they run in order. Any other choice is non-preemptive (the last thread while it can run,
 * else the lowest id), never a parked thread while another can run. A participant that misses its
 * acquisition, or takes more than `stageStepsMax` steps to reach it, abandons the plan: the run
 * then goes on non-preemptively.
 */
class LockOrderStrategy extends ScriptedStrategy {
  readonly #set = new RunnableSet();
  readonly #byLabel = new Map<string, SimThread>();
  readonly #parked = new Set<SimThread>();
  #stage = 0;
  #stageStart = 0;
  #abandoned = false;
  #last: SimThread | null = null;

  constructor(
    readonly parks: readonly Park[],
    readonly watch: LockOrderWatch,
    readonly stageStepsMax: number,
  ) {
    super('guided', [], true);
  }

  override get runnableCount(): number {
    return this.#set.size;
  }
  override add(thread: SimThread): void {
    this.#byLabel.set(thread.label, thread);
    this.#set.add(thread);
  }
  override remove(thread: SimThread): void {
    this.#set.remove(thread);
  }
  override stepped(): void {}

  override pick(step: number): SimThread | null {
    if (this.#set.size === 0) return null;
    this.#advance(step);
    const planned = this.#planned();
    return (this.#last = planned ?? this.#fallback());
  }

  /** Park the participants that now hold their class; abandon the plan on a miss or a timeout. */
  #advance(step: number): void {
    while (!this.#abandoned && this.#stage < this.parks.length) {
      const p = this.parks[this.#stage]!;
      const t = this.#byLabel.get(p.thread);
      const count = this.watch.acquired(p.thread, p.held);
      if (t !== undefined && count === p.occurrence && t.held.some((h) => h.lock instanceof SimLock && h.lock.lockClass === p.held)) {
        this.#parked.add(t);
        this.#stage++;
        this.#stageStart = step;
        continue;
      }
      if (count > p.occurrence || t?.state === ThreadState.done || step - this.#stageStart > this.stageStepsMax) this.#abandoned = true;
      return;
    }
  }

  /** The participant the plan runs now, if it can run. */
  #planned(): SimThread | null {
    if (this.#abandoned) return null;
    if (this.#stage < this.parks.length) {
      const t = this.#byLabel.get(this.parks[this.#stage]!.thread);
      return t !== undefined && t.slot >= 0 ? t : null;
    }
    for (const p of this.parks) {
      const t = this.#byLabel.get(p.thread);
      if (t !== undefined && t.slot >= 0) return t;
    }
    return null;
  }

  #fallback(): SimThread {
    const free = (t: SimThread) => this.#abandoned || !this.#parked.has(t);
    const last = this.#last;
    if (last !== null && last.slot >= 0 && free(last)) return last;
    let best: SimThread | null = null;
    for (const t of this.#set.items) if (free(t) && (best === null || t.id < best.id)) best = t;
    if (best !== null) return best;
    for (const t of this.#set.items) if (best === null || t.id < best.id) best = t;
    return best!;
  }
}
