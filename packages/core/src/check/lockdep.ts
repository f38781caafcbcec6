/**
 * Lockdep for the simulator: lock classes and a dependency graph built as simulated threads take
 * locks, after the kernel's `kernel/locking/lockdep.c`, reporting possible circular and recursive
 * locking in the kernel's splat layout.
 *
 * Like the kernel's, it proves orders, not schedules: a run that takes A then B in one thread and
 * B then A in another reports the inversion even when the schedule happened not to deadlock.
 */
import { LockMode } from '../sim/effect.js';
import type { EngineObserver } from '../sim/engine.js';
import { SimLock, modeName } from '../sim/lock.js';
import type { HeldLock, Holdable, SimThread } from '../sim/thread.js';

/** Default bounds (the kernel's MAX_LOCKDEP_KEYS is 8192 and MAX_LOCKDEP_ENTRIES 32768). */
const defaultClassCountMax = 4096;
const defaultDependencyCountMax = 32768;
const defaultReportCountMax = 100;

/** The bounds of one `Lockdep`. */
export interface LockdepOptions {
  /** Distinct lock classes before `onLockRequest` throws (default 4096). */
  readonly classCountMax?: number;
  /** Distinct dependencies before `onLockRequest` throws (default 32768). */
  readonly dependencyCountMax?: number;
  /** Reports kept; later ones are only counted in `reportsDropped` (default 100). */
  readonly reportCountMax?: number;
  /**
   * Classes whose locks nest in a documented order (the kernel's `down_write_nested` in address
   * order, `double_rq_lock`): by class, the key that orders its instances. A lock of such a class
   * may be taken while holding others of it only when its key is above all of theirs; taking one
   * at or below is reported as recursive locking out of order. (vma-range: `vm_area_lock`s, lowest
   * address first, rule R5.)
   */
  readonly orderedClasses?: Readonly<Record<string, (lock: SimLock) => number>>;
}

/** A lock as a splat shows it. */
export interface LockdepLock {
  /** The instance (`mm1.mmap_sem`). */
  readonly name: string;
  /** Its class (`mm#.mmap_sem`). */
  readonly lockClass: string;
  /** `LockMode.read` or `LockMode.write`. */
  readonly mode: number;
  /** A held lock: the step it was taken at (-1 when unknown). A requested lock: the request's step. */
  readonly step: number;
}

/** One lock request as lockdep saw it: who asked for what, when, holding what. */
export interface LockdepAcquisition {
  readonly thread: string;
  /** The `Lockdep.run` label current at the time ('' when none was set). */
  readonly run: string;
  readonly step: number;
  readonly lock: LockdepLock;
  /** What the thread held, in acquisition order. */
  readonly held: readonly LockdepLock[];
}

/** The dependency `from -> to`: a lock of class `to` was requested while one of class `from` was held. */
export interface LockdepDependency {
  readonly from: string;
  readonly to: string;
  /** The held lock of class `from` at the first occurrence. */
  readonly fromLock: string;
  /** The request that first showed it. */
  readonly first: LockdepAcquisition;
}

/** One entry of a circular report's chain, `-> #depth (lockClass):`. */
export interface LockdepChainEntry {
  readonly depth: number;
  readonly lockClass: string;
  /** Depth > 0: the first request of this class under the previous one. Depth 0: the request reported. */
  readonly acquisition: LockdepAcquisition;
}

export interface LockdepReport {
  readonly kind: 'circular' | 'recursive';
  /**
   * Circular: the cycle, from the class requested along the existing dependencies to the held
   * class that closes it (`[A, B]` when B is held, A requested and A -> B known). Recursive: the
   * one class.
   */
  readonly classes: readonly string[];
  readonly thread: string;
  readonly step: number;
  /** The request found unsafe. */
  readonly acquisition: LockdepAcquisition;
  /** The held lock it conflicts with. */
  readonly holding: LockdepLock;
  /** Circular: the existing chain in reverse order, `#n` down to `#0`. Recursive: empty. */
  readonly chain: readonly LockdepChainEntry[];
  /** Recursive locking of an ordered class: the keys, requested <= held (`orderedClasses`). */
  readonly outOfOrder?: string;
  /** The report in the kernel's splat layout (`formatLockdepReport`). */
  readonly splat: string;
}

/** When a thread took a lock it holds (per run: threads are keys, so past runs are collected). */
interface Taken {
  readonly lock: Holdable;
  readonly mode: number;
  readonly step: number;
}

/**
 * Lockdep-style validation as an `EngineObserver` (`runProgram(p, { ..., observers: [lockdep] })`).
 *
 * On each request of a lock of class L by a thread holding H1..Hn it:
 * - reports possible recursive locking when some Hi is of class L itself, unless both holds are
 *   reads (rwsem readers of two mm's). The kernel reports down_read under down_read too, since a
 *   queued writer deadlocks it; here read-after-read of one class is accepted, by design;
 * - adds the dependency Hi -> L for every held Hi of another class (the kernel adds it for the
 *   nearest held lock and relies on transitivity; every pair keeps the graph simple to read),
 *   remembering its first occurrence. Reads are not told apart from writes: a down_read is a
 *   non-recursive reader, it waits behind a queued writer, so its orders count in full;
 * - reports a possible circular locking dependency when a new Hi -> L closes a path L ->* Hi
 *   (breadth first: the shortest chain), once per class pair. The new dependency is added all
 *   the same, so the graph is every order ever seen; nothing throws, the run goes on.
 * A trylock cannot deadlock: its request adds no dependency and no check, but once taken it is
 * held like any lock, so what is taken under it depends on it.
 *
 * One instance may watch one run or many. The graph and the reports persist across runs, which is
 * how the kernel's lockdep accumulates orders over a boot: share one instance across the runs of a
 * search to find an inversion whose two halves no single schedule shows; use a fresh one for an
 * independent verdict. Set `run` before each run so a splat says which run first showed each
 * dependency. Deterministic: insertion-ordered maps, no clocks, no randomness. Bounded: classes,
 * dependencies and kept reports have limits; exceeding the first two throws, failing the run.
 */
export class Lockdep implements EngineObserver {
  /** A label for the runs that follow (`seed=3 strategy=random`), stored with each dependency. */
  run = '';
  readonly #classCountMax: number;
  readonly #dependencyCountMax: number;
  readonly #reportCountMax: number;
  /** Every class in first-seen order, with its dependencies `class -> later class`, in first-seen order. */
  readonly #after = new Map<string, Map<string, LockdepDependency>>();
  #dependencyCount = 0;
  readonly #reports: LockdepReport[] = [];
  #reportsDropped = 0;
  /** Class pairs (circular) and classes (recursive) already reported. */
  readonly #reported = new Set<string>();
  readonly #taken = new WeakMap<SimThread, Taken[]>();
  readonly #ordered: Readonly<Record<string, (lock: SimLock) => number>>;

  constructor(options: LockdepOptions = {}) {
    this.#ordered = options.orderedClasses ?? {};
    this.#classCountMax = positiveInteger('classCountMax', options.classCountMax ?? defaultClassCountMax);
    this.#dependencyCountMax = positiveInteger('dependencyCountMax', options.dependencyCountMax ?? defaultDependencyCountMax);
    this.#reportCountMax = positiveInteger('reportCountMax', options.reportCountMax ?? defaultReportCountMax);
  }

  /** The reports kept, in the order found (at most `reportCountMax`). */
  get reports(): readonly LockdepReport[] {
    return this.#reports;
  }

  /** Reports found beyond `reportCountMax`, counted but not kept. */
  get reportsDropped(): number {
    return this.#reportsDropped;
  }

  get classCount(): number {
    return this.#after.size;
  }

  get dependencyCount(): number {
    return this.#dependencyCount;
  }

  /** Every class, in first-seen order. */
  classes(): string[] {
    return [...this.#after.keys()];
  }

  /** Every dependency, grouped by `from` class in first-seen order. */
  dependencies(): LockdepDependency[] {
    const out: LockdepDependency[] = [];
    for (const deps of this.#after.values()) out.push(...deps.values());
    return out;
  }

  /** The dependency `from -> to`, if seen. */
  dependency(from: string, to: string): LockdepDependency | undefined {
    return this.#after.get(from)?.get(to);
  }

  onLockRequest(thread: SimThread, lock: SimLock, mode: number, trylock: boolean, step: number): void {
    const cls = lock.lockClass;
    this.#classNode(cls);
    if (trylock) return;
    const held = thread.held;
    let acquisition: LockdepAcquisition | null = null;
    for (let i = 0; i < held.length; i++) {
      const h = held[i]!;
      const hc = classOf(h.lock);
      if (hc === cls) {
        if (mode === LockMode.read && h.mode === LockMode.read) continue;
        const order = this.#ordered[cls];
        if (order !== undefined && h.lock instanceof SimLock && order(lock) > order(h.lock)) continue;
        if (this.#reported.has(recursiveKey(cls))) continue;
        acquisition ??= this.#acquisition(thread, lock, mode, step);
        this.#reportRecursive(acquisition, i, order !== undefined && h.lock instanceof SimLock ? `${order(lock)} <= ${order(h.lock)}` : null);
        continue;
      }
      if (this.#classNode(hc).has(cls)) continue;
      acquisition ??= this.#acquisition(thread, lock, mode, step);
      this.#addDependency(acquisition, i);
    }
  }

  onLockAcquired(thread: SimThread, lock: SimLock, mode: number, step: number): void {
    let taken = this.#taken.get(thread);
    if (taken === undefined) this.#taken.set(thread, (taken = []));
    taken.push({ lock, mode, step });
  }

  onLockReleased(thread: SimThread, lock: SimLock, mode: number): void {
    const taken = this.#taken.get(thread);
    if (taken === undefined) return;
    // The engine has already checked the release; the newest matching hold is the one dropped.
    for (let i = taken.length - 1; i >= 0; i--) {
      const t = taken[i]!;
      if (t.lock === lock && t.mode === mode) {
        taken.splice(i, 1);
        return;
      }
    }
  }

  /** Add `held[i] -> requested`, reporting the cycle it closes, if any. */
  #addDependency(acquisition: LockdepAcquisition, i: number): void {
    if (this.#dependencyCount >= this.#dependencyCountMax) {
      throw new Error(
        `lockdep: more than ${this.#dependencyCountMax} dependencies (dependencyCountMax); the lock classes are probably too fine (one per instance?)`,
      );
    }
    const holding = acquisition.held[i]!;
    const from = holding.lockClass;
    const to = acquisition.lock.lockClass;
    // Look for to ->* from before adding from -> to: the new edge cannot lie on that path anyway.
    const path = this.#path(to, from);
    this.#classNode(from).set(to, { from, to, fromLock: holding.name, first: acquisition });
    this.#dependencyCount++;
    if (path === null) return;
    const key = pairKey(from, to);
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    const chain: LockdepChainEntry[] = [];
    for (let depth = path.length - 1; depth > 0; depth--) {
      const dep = this.dependency(path[depth - 1]!, path[depth]!)!;
      chain.push({ depth, lockClass: path[depth]!, acquisition: dep.first });
    }
    chain.push({ depth: 0, lockClass: to, acquisition });
    this.#keep({ kind: 'circular', classes: path, thread: acquisition.thread, step: acquisition.step, acquisition, holding, chain });
  }

  #reportRecursive(acquisition: LockdepAcquisition, i: number, outOfOrder: string | null): void {
    const cls = acquisition.lock.lockClass;
    this.#reported.add(recursiveKey(cls));
    const holding = acquisition.held[i]!;
    this.#keep({
      kind: 'recursive',
      classes: [cls],
      thread: acquisition.thread,
      step: acquisition.step,
      acquisition,
      holding,
      chain: [],
      ...(outOfOrder !== null ? { outOfOrder } : {}),
    });
  }

  #keep(report: Omit<LockdepReport, 'splat'>): void {
    if (this.#reports.length >= this.#reportCountMax) {
      this.#reportsDropped++;
      return;
    }
    this.#reports.push({ ...report, splat: formatLockdepReport(report) });
  }

  /** The shortest path of dependencies `from ->* to` as its classes, or null. Breadth first, in insertion order. */
  #path(from: string, to: string): string[] | null {
    const parent = new Map<string, string>([[from, from]]);
    const queue = [from];
    for (let q = 0; q < queue.length; q++) {
      const cls = queue[q]!;
      const next = this.#after.get(cls);
      if (next === undefined) continue;
      for (const n of next.keys()) {
        if (parent.has(n)) continue;
        parent.set(n, cls);
        if (n === to) return unwind(parent, from, to);
        queue.push(n);
      }
    }
    return null;
  }

  /** The dependencies of `cls`, registering it on first sight. */
  #classNode(cls: string): Map<string, LockdepDependency> {
    let node = this.#after.get(cls);
    if (node !== undefined) return node;
    if (this.#after.size >= this.#classCountMax) {
      throw new Error(
        `lockdep: more than ${this.#classCountMax} lock classes (classCountMax) at '${cls}'; a class is a kind of lock, not an instance: give instances a shared lockClass`,
      );
    }
    this.#after.set(cls, (node = new Map<string, LockdepDependency>()));
    return node;
  }

  /** A snapshot of a request, detached from the run's objects so a shared graph keeps no run alive. */
  #acquisition(thread: SimThread, lock: SimLock, mode: number, step: number): LockdepAcquisition {
    const taken = this.#taken.get(thread) ?? [];
    const held = thread.held.map((h, i) => ({ name: h.lock.name, lockClass: classOf(h.lock), mode: h.mode, step: takenStep(thread.held, i, taken) }));
    return { thread: thread.label, run: this.run, step, lock: { name: lock.name, lockClass: lock.lockClass, mode, step }, held };
  }
}

/**
 * The kernel's splat for a report (`print_circular_bug`, `print_deadlock_bug`), in our terms: a
 * lock is `instance (class){mode}, at: step N`, a task is a thread label, and where the kernel
 * prints a stack trace we print the request that made the dependency and what was held.
 */
export function formatLockdepReport(report: Omit<LockdepReport, 'splat'>): string {
  return (report.kind === 'circular' ? circularSplat(report) : recursiveSplat(report)).join('\n');
}

const cpu1Indent = ' '.repeat(31);

function circularSplat(r: Omit<LockdepReport, 'splat'>): string[] {
  const a = r.acquisition;
  const source = a.lock.lockClass;
  const target = r.holding.lockClass;
  const parent = r.classes[r.classes.length - 2] ?? source;
  const lines = [
    ...banner('WARNING: possible circular locking dependency detected'),
    `${a.thread} is trying to acquire lock:`,
    lockLine(a.lock),
    '',
    'but task is already holding lock:',
    lockLine(r.holding),
    '',
    'which lock already depends on the new lock.',
    '',
    '',
    'the existing dependency chain (in reverse order) is:',
  ];
  for (const e of r.chain) lines.push('', `-> #${e.depth} (${e.lockClass}):`, ...acquisitionLines(e.acquisition));
  lines.push('', 'other info that might help us debug this:', '');
  // As the kernel: with a longer chain, name its ends and the class just before the held one.
  if (parent !== source) lines.push('Chain exists of:', `  ${source} --> ${parent} --> ${target}`, '');
  lines.push(
    ' Possible unsafe locking scenario:',
    '',
    '       CPU0                    CPU1',
    '       ----                    ----',
    `  ${lockVerb(r.holding.mode)}(${target});`,
    `${cpu1Indent}lock(${parent});`,
    `${cpu1Indent}lock(${target});`,
    `  ${lockVerb(a.lock.mode)}(${source});`,
    '',
    ' *** DEADLOCK ***',
    '',
    ...heldLines(a),
  );
  return lines;
}

function recursiveSplat(r: Omit<LockdepReport, 'splat'>): string[] {
  const a = r.acquisition;
  return [
    ...banner('WARNING: possible recursive locking detected'),
    `${a.thread} is trying to acquire lock:`,
    lockLine(a.lock),
    '',
    'but task is already holding lock:',
    lockLine(r.holding),
    '',
    'other info that might help us debug this:',
    ' Possible unsafe locking scenario:',
    '',
    '       CPU0',
    '       ----',
    `  lock(${r.holding.lockClass});`,
    `  lock(${a.lock.lockClass});`,
    '',
    ' *** DEADLOCK ***',
    '',
    r.outOfOrder !== undefined
      ? ` The class nests in ascending order, but this acquisition goes down (key ${r.outOfOrder})`
      : ' May be due to missing lock nesting notation',
    '',
    ...heldLines(a),
  ];
}

function banner(title: string): string[] {
  return ['='.repeat(title.length), title, '-'.repeat(title.length)];
}

function lockLine(l: LockdepLock): string {
  return `${l.name} (${l.lockClass}){${modeName(l.mode)}}, at: step ${l.step >= 0 ? l.step : '?'}`;
}

/** What stands for the kernel's stack trace under a chain entry: the request and what was held. */
function acquisitionLines(a: LockdepAcquisition): string[] {
  const where = a.run === '' ? '' : ` in ${a.run}`;
  const lines = [`       ${a.thread} requested ${a.lock.name}{${modeName(a.lock.mode)}} at step ${a.step}${where}, holding:`];
  a.held.forEach((h, i) => lines.push(`        #${i}: ${lockLine(h)}`));
  return lines;
}

/** `lockdep_print_held_locks`. */
function heldLines(a: LockdepAcquisition): string[] {
  const n = a.held.length;
  if (n === 0) return [`no locks held by ${a.thread}.`];
  return [`${n} lock${n === 1 ? '' : 's'} held by ${a.thread}:`, ...a.held.map((h, i) => ` #${i}: ${lockLine(h)}`)];
}

/** The kernel prints `rlock(` for a read acquisition in the scenario. */
function lockVerb(mode: number): string {
  return mode === LockMode.read ? 'rlock' : 'lock';
}

function classOf(lock: Holdable): string {
  return lock instanceof SimLock ? lock.lockClass : lock.name.replace(/\d+/g, '#');
}

/** The step `held[i]` was taken at: the matching `taken` entry of the same rank among equal holds. */
function takenStep(held: readonly HeldLock[], i: number, taken: readonly Taken[]): number {
  const h = held[i]!;
  let rank = 0;
  for (let j = 0; j < i; j++) if (held[j]!.lock === h.lock && held[j]!.mode === h.mode) rank++;
  for (const t of taken) if (t.lock === h.lock && t.mode === h.mode && rank-- === 0) return t.step;
  return -1;
}

function unwind(parent: ReadonlyMap<string, string>, from: string, to: string): string[] {
  const path = [to];
  for (let cls = to; cls !== from;) {
    cls = parent.get(cls)!;
    path.push(cls);
  }
  return path.reverse();
}

/** A circular report is once per unordered class pair: A -> B then B -> A, or B -> A then A -> B, is one inversion. */
function pairKey(a: string, b: string): string {
  return a < b ? `circular\u0000${a}\u0000${b}` : `circular\u0000${b}\u0000${a}`;
}

function recursiveKey(cls: string): string {
  return `recursive\u0000${cls}`;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`Lockdep: ${name} must be an integer >= 1, got ${value}`);
  return value;
}
