/**
 * A data-race detector for instrumented shared locations (`SharedLocation`): happens-before with
 * vector clocks (FastTrack's epochs for the accesses kept per location), plus the Eraser lockset
 * reported alongside, in a splat laid out like the kernel's KCSAN reports.
 *
 * A race is two accesses of one location, by two threads, at least one a write, not both atomic,
 * neither ordered before the other by happens-before. It is what `mmap_sem` silently protected:
 * take the lock away and the accesses it ordered become concurrent.
 */
import { LockMode } from '../sim/effect.js';
import type { EngineObserver } from '../sim/engine.js';
import { type SimLock, modeName } from '../sim/lock.js';
import { type RangeLock, RangeLockRequest } from '../sim/rangeLock.js';
import { SharedLocation } from '../sim/sharedLocation.js';
import type { Holdable, SimThread } from '../sim/thread.js';
import type { WaitQueue } from '../sim/waitQueue.js';

const defaultReportCountMax = 100;
const defaultReadersPerLocationMax = 64;
const defaultLocationCountMax = 1 << 20;
const defaultRangeRecordCountMax = 64;
/** Frames kept per captured stack. */
const stackFrameCountMax = 16;

/** The bounds and costs of one `RaceDetector`. */
export interface RaceDetectorOptions {
  /**
   * Capture a JS stack (the thread body's generator frames, trimmed to the repo's packages) at
   * every access, for the reports. Costs: about one `Error` per access. Default false: reports
   * then say that stacks were not captured.
   */
  readonly stacks?: boolean;
  /** Reports kept; later ones are only counted in `reportsDropped` (default 100). */
  readonly reportCountMax?: number;
  /**
   * Unordered reads kept per location (default 64); beyond it the oldest is forgotten and counted
   * in `readsEvicted` (a race with it may then go unreported).
   */
  readonly readersPerLocationMax?: number;
  /** Locations tracked in one run before `onAccess` throws (default 1M). */
  readonly locationCountMax?: number;
  /**
   * Released range-lock requests remembered per `RangeLock` (default 64); beyond it the two oldest
   * are merged into one over both ranges, in write mode (more ordering than there was: a race
   * may be hidden, none is invented).
   */
  readonly rangeRecordCountMax?: number;
}

export type RaceAccessKind = 'read' | 'write' | 'rmw';

/** A lock held at an access. */
export interface RaceHeldLock {
  readonly name: string;
  /** `LockMode.read` or `LockMode.write`. */
  readonly mode: number;
}

/** One access of a race, as its report shows it. */
export interface RaceAccess {
  /** The thread's label (`T1 writer`). */
  readonly thread: string;
  readonly cpu: number;
  readonly step: number;
  readonly kind: RaceAccessKind;
  /** A marked access (`READ_ONCE`/`WRITE_ONCE` or an atomic). */
  readonly marked: boolean;
  /** The locks the thread held, in acquisition order. */
  readonly held: readonly RaceHeldLock[];
  /** The thread's simulated clock when the access began, ns. */
  readonly timeNs: number;
  /** The simulated call stack, innermost first (`fn (packages/.../file.ts:line:col)`); null when not captured. */
  readonly stack: readonly string[] | null;
}

/** A data race: two concurrent conflicting accesses of one location. */
export interface RaceReport {
  /** The location's name and its owner (the subsystem or structure; '' when none was given). */
  readonly location: string;
  readonly owner: string;
  /** The earlier access (in schedule order) and the later one, which found the race. */
  readonly first: RaceAccess;
  readonly second: RaceAccess;
  /** Eraser: the locks held at every access of the location in this run up to the race. */
  readonly lockset: readonly string[];
  /** The locks both accesses held (the same lock, any mode). */
  readonly commonLocks: readonly string[];
  /** The `RaceDetector.run` label current at the time ('' when none was set). */
  readonly run: string;
  /** What makes two reports the same race: the location and the two sites (or thread roles). */
  readonly key: string;
  /** The report, KCSAN-style (`formatRaceReport`). */
  readonly splat: string;
}

type Clock = number[];

/** What the detector knows of a thread in the current run. */
interface ThreadInfo {
  readonly thread: SimThread;
  readonly label: string;
  /** The thread's name with numbers folded (`worker3` -> `worker#`): its role, for deduplication. */
  readonly role: string;
  readonly vc: Clock;
  /** The held locks as accesses record them; null when stale (a lock was taken or dropped). */
  held: RaceHeldLock[] | null;
  /** The lockset keys of the held locks (a range request counts as its range lock). */
  lockKeys: object[];
}

/** An access kept for later checks, with its epoch `clock@tid`. */
interface Access {
  readonly tid: number;
  readonly clock: number;
  readonly info: ThreadInfo;
  readonly kind: RaceAccessKind;
  readonly marked: boolean;
  readonly step: number;
  readonly timeNs: number;
  readonly held: readonly RaceHeldLock[];
  /** The `Error` built where the effect was made; formatted only when a report needs it. */
  readonly stack: Error | null;
}

interface LocationState {
  /** The last write, plain or atomic. */
  write: Access | null;
  /** Plain reads since it that no later read is known to follow. */
  readonly reads: Access[];
  /** The release clock of the location's atomic rmw's. */
  atomic: Clock | null;
  /** Eraser: the locks held at every access so far (null before the first). */
  lockset: { readonly key: object; readonly name: string }[] | null;
}

/** What a lock's releases leave for its next acquirers. */
interface LockClocks {
  /** The last write release (it follows every earlier release). */
  write: Clock | null;
  /** The join of the read releases since. */
  read: Clock | null;
}

/** A released range-lock request. */
interface RangeRecord {
  start: number;
  end: number;
  mode: number;
  vc: Clock;
}

const noLocks: RaceHeldLock[] = [];

/**
 * A data-race detector as an `EngineObserver` (`runProgram(p, { ..., observers: [races] })`).
 *
 * Happens-before, by vector clocks, has these edges:
 * - a lock's release orders its next acquisitions (hand-offs included). For a reader/writer lock,
 *   a write release orders every later acquirer, read releases order a later writer only (readers
 *   do not order each other). A range-lock request's release orders the later requests whose
 *   range overlaps it and whose mode conflicts with it (read/read does not order);
 * - `spawn`: the parent's past orders the child; `join`: the child's whole life orders what the
 *   joiner does after;
 * - a wait queue is a release/acquire object: `wake_up` releases to it (whether anyone sleeps or
 *   not) and a `wait_event` that returns, at once or after a wake-up, acquires from it. So the
 *   waker's past orders the wakee, and also a waiter whose condition was already true (its
 *   condition is plain JS state the detector cannot see);
 * - RCU: leaving a read-side section releases to one RCU clock, the return of `synchronize_rcu()`
 *   acquires it: every section that ended (not only those the grace period waited for) orders the
 *   updater's next steps, so a reader's access and the free after the grace period do not race;
 * - atomics: the `rmw`s of one location are release/acquire on the location (each acquires the
 *   previous ones' clocks and releases its own), like the kernel's fully ordered value-returning
 *   atomics. They never race with each other; a plain read or write concurrent with an `rmw` is a
 *   race (KCSAN: a plain access racing a marked one).
 * Seqcount sections add no edges, and reads inside a seqcount read section are checked like any
 * plain read (KCSAN exempts them; here they are reported, as a speculative read really is racy).
 *
 * Per location, FastTrack's representation: the last write as one epoch, the reads since as a set
 * of epochs pruned of those a later read follows. Each race found is reported once per key (the
 * location and its two sites: the top frames of the stacks when captured, else the thread roles
 * with the access kinds).
 *
 * The Eraser lockset (the intersection of the locks held at every access of the location in this
 * run, any mode; a range request counts as its range lock) is not a verdict here but evidence in
 * each report: an empty one says no common lock ever protected the location.
 *
 * One instance may watch one run or many: happens-before state is per run (reset by `onRunStart`,
 * dropped by `onRunEnd`), reports accumulate across runs, deduplicated, like lockdep's graph. Set
 * `run` before each run to label its reports. Deterministic: insertion-ordered state, no clocks,
 * no randomness. Bounded: kept reports, reads per location, range records and locations.
 */
export class RaceDetector implements EngineObserver {
  /** A label for the runs that follow (`seed=3 strategy=pct`), stored in each report. */
  run = '';
  readonly #stacks: boolean;
  readonly #reportCountMax: number;
  readonly #readersMax: number;
  readonly #locationCountMax: number;
  readonly #rangeRecordCountMax: number;
  readonly #reports: RaceReport[] = [];
  readonly #reported = new Set<string>();
  #reportsDropped = 0;
  // The current (or last) run's races, each once, whether or not an earlier run reported it.
  #runReports: RaceReport[] = [];
  #runKeys = new Set<string>();
  #racesFound = 0;
  #readsEvicted = 0;
  #accesses = 0;
  // Per run:
  #threads: (ThreadInfo | undefined)[] = [];
  #locations = new Map<SharedLocation, LocationState>();
  #locks = new Map<SimLock, LockClocks>();
  #ranges = new Map<RangeLock, RangeRecord[]>();
  #queues = new Map<WaitQueue, Clock>();
  #rcu: Clock = [];
  #capturing = false;

  constructor(options: RaceDetectorOptions = {}) {
    this.#stacks = options.stacks === true;
    this.#reportCountMax = positiveInteger('reportCountMax', options.reportCountMax ?? defaultReportCountMax);
    this.#readersMax = positiveInteger('readersPerLocationMax', options.readersPerLocationMax ?? defaultReadersPerLocationMax);
    this.#locationCountMax = positiveInteger('locationCountMax', options.locationCountMax ?? defaultLocationCountMax);
    this.#rangeRecordCountMax = positiveInteger('rangeRecordCountMax', options.rangeRecordCountMax ?? defaultRangeRecordCountMax);
  }

  /** The reports kept, in the order found (at most `reportCountMax`). */
  get reports(): readonly RaceReport[] {
    return this.#reports;
  }

  /**
   * The races of the current run, or of the last one after it ended: each distinct race once, even
   * when an earlier run already reported it (at most `reportCountMax`). What a per-run check reads.
   */
  get runReports(): readonly RaceReport[] {
    return this.#runReports;
  }

  /** Distinct races found beyond `reportCountMax`, counted but not kept. */
  get reportsDropped(): number {
    return this.#reportsDropped;
  }

  /** Every racing pair seen, duplicates included. */
  get racesFound(): number {
    return this.#racesFound;
  }

  /** Reads forgotten because a location had `readersPerLocationMax` unordered reads. */
  get readsEvicted(): number {
    return this.#readsEvicted;
  }

  /** Accesses checked, over all runs. */
  get accesses(): number {
    return this.#accesses;
  }

  onRunStart(): void {
    this.#resetRun();
    this.#runReports = [];
    this.#runKeys = new Set();
    if (this.#stacks) {
      stackHooks.install();
      this.#capturing = true;
    }
  }

  onRunEnd(): void {
    this.#resetRun();
    if (this.#capturing) {
      stackHooks.uninstall();
      this.#capturing = false;
    }
  }

  onSpawn(parent: SimThread, child: SimThread): void {
    const p = this.#thread(parent);
    const c = this.#thread(child);
    join(c.vc, p.vc);
    p.vc[parent.id]!++;
  }

  onJoin(joiner: SimThread, joined: SimThread): void {
    join(this.#thread(joiner).vc, this.#thread(joined).vc);
  }

  onWakeUp(waker: SimThread, queue: WaitQueue): void {
    const w = this.#thread(waker);
    const q = this.#queues.get(queue);
    if (q === undefined) this.#queues.set(queue, w.vc.slice());
    else join(q, w.vc);
    w.vc[waker.id]!++;
  }

  onWaitEventReturn(thread: SimThread, queue: WaitQueue): void {
    const q = this.#queues.get(queue);
    if (q !== undefined) join(this.#thread(thread).vc, q);
  }

  onRcuReadUnlock(thread: SimThread): void {
    const t = this.#thread(thread);
    join(this.#rcu, t.vc);
    t.vc[thread.id]!++;
  }

  onSynchronizeRcuReturn(thread: SimThread): void {
    join(this.#thread(thread).vc, this.#rcu);
  }

  onLockAcquired(thread: SimThread, lock: SimLock, mode: number): void {
    const t = this.#thread(thread);
    t.held = null;
    if (lock instanceof RangeLockRequest) {
      const records = this.#ranges.get(lock.rangeLock);
      if (records === undefined) return;
      for (const r of records) {
        if (r.start < lock.end && lock.start < r.end && (mode === LockMode.write || r.mode === LockMode.write)) join(t.vc, r.vc);
      }
      return;
    }
    const c = this.#locks.get(lock);
    if (c === undefined) return;
    if (c.write !== null) join(t.vc, c.write);
    if (mode === LockMode.write && c.read !== null) join(t.vc, c.read);
  }

  onLockReleased(thread: SimThread, lock: SimLock, mode: number): void {
    const t = this.#thread(thread);
    t.held = null;
    if (lock instanceof RangeLockRequest) this.#releaseRange(t, lock, mode);
    else {
      let c = this.#locks.get(lock);
      if (c === undefined) this.#locks.set(lock, (c = { write: null, read: null }));
      if (mode === LockMode.write) {
        // The writer acquired after every earlier release: its clock covers them all.
        c.write = c.write === null ? t.vc.slice() : copyInto(c.write, t.vc);
        c.read = null;
      } else if (c.read === null) c.read = t.vc.slice();
      else join(c.read, t.vc);
    }
    t.vc[thread.id]!++;
  }

  onAccess(thread: SimThread, location: SharedLocation, write: boolean, step: number, atomic: boolean, marked = atomic): void {
    this.#accesses++;
    const t = this.#thread(thread);
    const st = this.#location(location);
    const vc = t.vc;
    if (atomic && st.atomic !== null) join(vc, st.atomic);
    const held = t.held ?? this.#refreshHeld(t);
    const kind: RaceAccessKind = atomic ? 'rmw' : write ? 'write' : 'read';
    const stack = this.#capturing ? stackHooks.last(location) : null;
    const cur: Access = { tid: thread.id, clock: vc[thread.id]!, info: t, kind, marked: marked || atomic, step, timeNs: thread.clockNs, held, stack };
    this.#updateLockset(st, t);
    const w = st.write;
    // Two marked accesses never race (KCSAN: a data race needs a plain access).
    if (w !== null && w.tid !== cur.tid && !(w.clock <= (vc[w.tid] ?? 0)) && !(cur.marked && w.marked)) this.#race(location, st, w, cur);
    const reads = st.reads;
    if (write) {
      for (const r of reads) if (r.tid !== cur.tid && !(r.clock <= (vc[r.tid] ?? 0)) && !(cur.marked && r.marked)) this.#race(location, st, r, cur);
      reads.length = 0;
      st.write = cur;
    } else {
      // Reads a later read follows are covered by it: a write racing them races it too (FastTrack).
      let n = 0;
      for (const r of reads) if (!(r.clock <= (vc[r.tid] ?? 0))) reads[n++] = r;
      reads.length = n;
      if (n >= this.#readersMax) {
        reads.shift();
        this.#readsEvicted++;
      }
      reads.push(cur);
    }
    if (atomic) {
      if (st.atomic === null) st.atomic = vc.slice();
      else join(st.atomic, vc);
      vc[thread.id]!++;
    }
  }

  #race(location: SharedLocation, st: LocationState, prev: Access, cur: Access): void {
    this.#racesFound++;
    const key = raceKey(location.name, prev, cur);
    const inRun = !this.#runKeys.has(key) && this.#runReports.length < this.#reportCountMax;
    const kept = !this.#reported.has(key) && this.#reports.length < this.#reportCountMax;
    if (!this.#reported.has(key) && !kept) this.#reportsDropped++;
    this.#reported.add(key);
    this.#runKeys.add(key);
    if (!inRun && !kept) return;
    const first = publicAccess(prev);
    const second = publicAccess(cur);
    const commonLocks = first.held.filter((h) => second.held.some((g) => g.name === h.name)).map((h) => h.name);
    const report: Omit<RaceReport, 'splat'> = {
      location: location.name,
      owner: location.owner,
      first,
      second,
      lockset: (st.lockset ?? []).map((l) => l.name),
      commonLocks,
      run: this.run,
      key,
    };
    const full = { ...report, splat: formatRaceReport(report) };
    if (kept) this.#reports.push(full);
    if (inRun) this.#runReports.push(full);
  }

  #updateLockset(st: LocationState, t: ThreadInfo): void {
    const keys = t.lockKeys;
    if (st.lockset === null) {
      const held = t.thread.held;
      st.lockset = keys.map((key, i) => ({ key, name: locksetName(held[i]!.lock) }));
      return;
    }
    if (st.lockset.length === 0 || st.lockset.every((l) => keys.includes(l.key))) return;
    st.lockset = st.lockset.filter((l) => keys.includes(l.key));
  }

  #refreshHeld(t: ThreadInfo): RaceHeldLock[] {
    const held = t.thread.held;
    t.held = held.length === 0 ? noLocks : held.map((h) => ({ name: h.lock.name, mode: h.mode }));
    t.lockKeys = held.map((h) => locksetKey(h.lock));
    return t.held;
  }

  #releaseRange(t: ThreadInfo, request: RangeLockRequest, mode: number): void {
    let records = this.#ranges.get(request.rangeLock);
    if (records === undefined) this.#ranges.set(request.rangeLock, (records = []));
    const rec: RangeRecord = { start: request.start, end: request.end, mode, vc: t.vc.slice() };
    // A record inside this one that this release follows (a writer's, or a reader's after a
    // reader) adds nothing for later acquirers: drop it.
    let n = 0;
    for (const r of records) {
      const covered = rec.start <= r.start && r.end <= rec.end && (mode === LockMode.write || r.mode === LockMode.read) && leq(r.vc, rec.vc);
      if (!covered) records[n++] = r;
    }
    records.length = n;
    records.push(rec);
    if (records.length > this.#rangeRecordCountMax) {
      const [a, b] = records.splice(0, 2) as [RangeRecord, RangeRecord];
      join(a.vc, b.vc);
      records.unshift({ start: Math.min(a.start, b.start), end: Math.max(a.end, b.end), mode: LockMode.write, vc: a.vc });
    }
  }

  #thread(thread: SimThread): ThreadInfo {
    const known = this.#threads[thread.id];
    if (known !== undefined && known.thread === thread) return known;
    const vc: Clock = [];
    for (let i = 0; i <= thread.id; i++) vc.push(0);
    vc[thread.id] = 1;
    const info: ThreadInfo = { thread, label: thread.label, role: thread.name.replace(/\d+/g, '#'), vc, held: null, lockKeys: [] };
    this.#threads[thread.id] = info;
    return info;
  }

  #location(location: SharedLocation): LocationState {
    let st = this.#locations.get(location);
    if (st !== undefined) return st;
    if (this.#locations.size >= this.#locationCountMax) {
      throw new Error(`races: more than ${this.#locationCountMax} shared locations in one run (locationCountMax) at '${location.name}'`);
    }
    this.#locations.set(location, (st = { write: null, reads: [], atomic: null, lockset: null }));
    return st;
  }

  #resetRun(): void {
    this.#threads = [];
    this.#locations = new Map();
    this.#locks = new Map();
    this.#ranges = new Map();
    this.#queues = new Map();
    this.#rcu = [];
  }
}

/**
 * The report, after KCSAN's (`kernel/kcsan/report.c`): a title naming the two sites, each access
 * with its thread, CPU, step, simulated time, held locks (as lockdep prints them) and stack, then
 * the lockset and why happens-before does not order them.
 */
export function formatRaceReport(report: Omit<RaceReport, 'splat'>): string {
  const where = report.owner === '' ? report.location : `${report.location} (owner ${report.owner})`;
  const lines = [
    rule,
    `BUG: vmalock: data-race on ${where} in ${siteName(report.first)} / ${siteName(report.second)}`,
    '',
    ...accessLines(report.first, report.location, 'first'),
    '',
    ...accessLines(report.second, report.location, 'then'),
    '',
    report.lockset.length === 0
      ? `lockset: no lock was held at every access of ${report.location}`
      : `lockset: held at every access of ${report.location}: ${report.lockset.join(', ')}`,
    report.commonLocks.length === 0
      ? 'common locks: none held by both accesses'
      : `common locks: ${report.commonLocks.join(', ')} (held by both, in modes that do not exclude)`,
    'happens-before: nothing orders the two accesses (no lock hand-off, spawn/join, wake-up, grace period or atomic between them)',
  ];
  if (report.run !== '') lines.push(`run: ${report.run}`);
  lines.push(rule);
  return lines.join('\n');
}

const rule = '='.repeat(66);

function accessLines(a: RaceAccess, location: string, which: 'first' | 'then'): string[] {
  const verb = a.kind === 'rmw' ? 'atomic rmw of' : `${a.kind}${a.marked ? ' (marked)' : ''} ${a.kind === 'read' ? 'of' : 'to'}`;
  const lines = [`${which === 'first' ? '' : 'racing '}${verb} ${location} by ${a.thread} on cpu ${a.cpu} at step ${a.step}, ${a.timeNs} ns:`];
  const n = a.held.length;
  if (n === 0) lines.push(' no locks held.');
  else {
    lines.push(` ${n} lock${n === 1 ? '' : 's'} held:`);
    a.held.forEach((h, i) => lines.push(`  #${i}: ${h.name}{${modeName(h.mode)}}`));
  }
  if (a.stack === null) lines.push(' stack not captured (RaceDetector option stacks: true records one)');
  else if (a.stack.length === 0) lines.push(' stack: no frame in the packages');
  else lines.push(' stack:', ...a.stack.map((f) => `  ${f}`));
  return lines;
}

/** The site of an access in a title: its innermost function when the stack was captured, else the thread. */
function siteName(a: RaceAccess): string {
  const top = a.stack?.[0];
  if (top !== undefined) return top.replace(/ \(.*$/, '');
  return a.thread;
}

/** Two reports are one race when the location and the unordered pair of sites agree. */
function raceKey(location: string, a: Access, b: Access): string {
  const sa = accessSite(a);
  const sb = accessSite(b);
  return sa <= sb ? `${location}\u0000${sa}\u0000${sb}` : `${location}\u0000${sb}\u0000${sa}`;
}

function accessSite(a: Access): string {
  const top = a.stack === null ? undefined : trimStack(a.stack)[0];
  return top !== undefined ? `${a.kind} ${top}` : `${a.kind} ${a.info.role}`;
}

function publicAccess(a: Access): RaceAccess {
  return {
    thread: a.info.label,
    cpu: a.info.thread.cpu,
    step: a.step,
    kind: a.kind,
    marked: a.marked,
    held: a.held,
    timeNs: a.timeNs,
    stack: a.stack === null ? null : trimStack(a.stack),
  };
}

function locksetKey(lock: Holdable): object {
  return lock instanceof RangeLockRequest ? lock.rangeLock : lock;
}

function locksetName(lock: Holdable): string {
  return lock instanceof RangeLockRequest ? `${lock.rangeLock.name} (any range)` : lock.name;
}

/** `into := max(into, from)`, componentwise. */
function join(into: Clock, from: Clock): void {
  const n = from.length;
  while (into.length < n) into.push(0);
  for (let i = 0; i < n; i++) if (from[i]! > into[i]!) into[i] = from[i]!;
}

/** `into := from`, reusing `into`'s storage. */
function copyInto(into: Clock, from: Clock): Clock {
  into.length = from.length;
  for (let i = 0; i < from.length; i++) into[i] = from[i]!;
  return into;
}

/** `a <= b` componentwise. */
function leq(a: Clock, b: Clock): boolean {
  for (let i = 0; i < a.length; i++) if (a[i]! > (b[i] ?? 0)) return false;
  return true;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`RaceDetector: ${name} must be an integer >= 1, got ${value}`);
  return value;
}

// --- Stacks ---

/**
 * Where the effects of a location were last built. A thread body's generator frames are on the JS
 * stack only while it runs, up to its `yield`, so the stack is taken where the effect is made
 * (`yield loc.write(v)` calls `loc.write` in the body's frame), through
 * `SharedLocation.onAccessBuilt` while a detector with `stacks: true` watches a run. The engine
 * runs one thread at a time and a body yields an access effect as soon as it makes it, so the
 * last stack of a location, when the engine reports the access, is the access's own. The `Error`
 * is kept unformatted: V8 formats its frames only when a report reads them.
 */
const stackHooks = (() => {
  const lastStack = new WeakMap<SharedLocation, Error>();
  let users = 0;
  const capture = (location: SharedLocation): void => {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = stackFrameCountMax + 8;
    lastStack.set(location, new Error('access'));
    Error.stackTraceLimit = limit;
  };
  return {
    install(): void {
      if (users++ > 0) return;
      SharedLocation.onAccessBuilt = capture;
    },
    uninstall(): void {
      if (--users > 0) return;
      SharedLocation.onAccessBuilt = null;
    },
    last(location: SharedLocation): Error | null {
      return lastStack.get(location) ?? null;
    },
  };
})();

const trimmed = new WeakMap<Error, string[]>();

/**
 * The frames of the thread body and what it calls, innermost first: frames up to the engine's
 * (which resumed the generator), without this file's hook, `SharedLocation`'s own frame, Node's internals or dependencies,
 * paths from `packages/` on.
 */
function trimStack(error: Error): string[] {
  const done = trimmed.get(error);
  if (done !== undefined) return done;
  const frames: string[] = [];
  for (const line of (error.stack ?? '').split('\n').slice(1)) {
    const frame = line.trim().replace(/^at /, '');
    if (/[/\\]sim[/\\]engine\.[jt]s/.test(frame)) break;
    if (/[/\\]check[/\\]races\.[jt]s|[/\\]sim[/\\]sharedLocation\.[jt]s/.test(frame) || frame.includes('node_modules')) continue;
    const at = frame.search(/packages[/\\]/);
    if (at < 0) continue;
    const open = frame.lastIndexOf('(', at);
    const fn =
      open >= 0
        ? frame
            .slice(0, open)
            .trim()
            .replace(/^Generator\./, '')
        : '<body>';
    frames.push(`${fn === '' ? '<anonymous>' : fn} (${frame.slice(at).replace(/\)$/, '')})`);
    if (frames.length >= stackFrameCountMax) break;
  }
  trimmed.set(error, frames);
  return frames;
}
