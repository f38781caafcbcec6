import type { Trace, TraceEvent, TraceObject } from '../trace/traceEvent.js';
import { type CostModel, MemoryBus, defaultCostModel } from './costModel.js';
import { EINTR, Effect, LockMode, Op, opNames, type SpawnRequest } from './effect.js';
import { type LockHost, type LockWaiter, SimLock, WaitKind, modeName } from './lock.js';
import { Prng, PrngStream } from './prng.js';
import { type RwSemaphore } from './rwSemaphore.js';
import { ScheduleRecorder, decodeSchedule } from './schedule.js';
import { SeqCount } from './seqCount.js';
import { SharedLocation, dataRaceAccess, markedAccess } from './sharedLocation.js';
import { type PctReport, PctStrategy, RandomStrategy, ScheduleDivergence, ScriptedStrategy, TimedStrategy } from './strategies.js';
import type { Strategy } from './strategy.js';
import { SimThread, type SpawnOptions, type ThreadBody, ThreadState } from './thread.js';
import { WaitQueue } from './waitQueue.js';

/** The strategies a run can use by name. */
export const strategyNames = ['timed', 'random', 'pct', 'replay'] as const;
export type StrategyName = (typeof strategyNames)[number];

/** How to run a program. */
export interface RunOptions {
  /** The one seed every random choice derives from. */
  readonly seed: number;
  readonly strategy: StrategyName;
  /** Simulated CPUs (1..65536); threads are pinned to `id % cpus` unless they say otherwise. */
  readonly cpus?: number;
  /** The run ends with `step-limit` after this many steps. */
  readonly stepLimit?: number;
  /** PCT bug depth d (default 3). */
  readonly pctDepth?: number;
  /** PCT steps bound k the change points are drawn from (default 1000). */
  readonly pctSteps?: number;
  /** The recorded schedule to follow (`replay`). */
  readonly schedule?: string;
  /**
   * `replay` only: treat the schedule as a prefix. Past its end, run non-preemptively: the same
   * thread while it can run, else the runnable thread with the lowest id. Scenario tests give
   * the interesting interleaving and let the rest run out.
   */
  readonly extendSchedule?: boolean;
  readonly costModel?: CostModel;
  /** Record every effect for export (Perfetto) and hashing. */
  readonly trace?: boolean;
  /** Internal: a scripted strategy (the exhaustive search). */
  readonly scripted?: ScriptedStrategy;
  /** Checkers told of every lock request, acquisition, release and shared access (lockdep, race detectors). */
  readonly observers?: readonly EngineObserver[];
}

/**
 * A checker that watches a run: told of lock requests (before the lock is tried, as lockdep's
 * `lock_acquire` is), acquisitions (including hand-offs to waiters), releases and accesses to
 * shared locations; and of the other events that order threads (spawn, join, wake-ups, RCU grace
 * periods) for happens-before checkers. A checker that throws fails the run with the thread that
 * was running. Observers only watch: they never change a schedule.
 */
export interface EngineObserver {
  onLockRequest?(thread: SimThread, lock: SimLock, mode: number, trylock: boolean, step: number): void;
  onLockAcquired?(thread: SimThread, lock: SimLock, mode: number, step: number): void;
  onLockReleased?(thread: SimThread, lock: SimLock, mode: number, step: number): void;
  /**
   * `atomic`: an atomic read-modify-write (`rmw`), reported with `write` true. `marked`: a
   * `READ_ONCE`/`WRITE_ONCE` access or an atomic (KCSAN's marked accesses).
   */
  onAccess?(thread: SimThread, location: SharedLocation, write: boolean, step: number, atomic: boolean, marked: boolean): void;
  /** A run begins (before the program's setup): per-run state starts fresh here. */
  onRunStart?(options: RunOptions): void;
  /** The run has ended, however it ended (called from a `finally`). */
  onRunEnd?(): void;
  /** `parent` started `child` with `spawn()` (threads spawned by the program's setup have no parent). */
  onSpawn?(parent: SimThread, child: SimThread, step: number): void;
  /** `joiner`'s `join(joined)` returns: `joined` has ended. */
  onJoin?(joiner: SimThread, joined: SimThread, step: number): void;
  /** `waker` wakes the sleepers of `queue` (`wake_up`), called before they are made runnable, even when none sleeps. */
  onWakeUp?(waker: SimThread, queue: WaitQueue, step: number): void;
  /** `thread`'s `waitEvent` on `queue` returns: its condition held, at once or on a recheck after a wake-up. */
  onWaitEventReturn?(thread: SimThread, queue: WaitQueue, step: number): void;
  /** `thread` left its outermost RCU read-side section. */
  onRcuReadUnlock?(thread: SimThread, step: number): void;
  /** `thread`'s `synchronize_rcu()` returns: every read-side section that was running when it began has ended. */
  onSynchronizeRcuReturn?(thread: SimThread, step: number): void;
}

/** What `setup` receives: spawn the initial threads, draw program randomness. */
export interface SimSetup {
  spawn(name: string, body: ThreadBody, options?: SpawnOptions): SimThread;
  /** The program's random stream (derived from the run's seed). */
  readonly rng: Prng;
  readonly cpus: number;
  readonly seed: number;
}

/** A program: builds its shared state and spawns its threads. Called once per run, so every run starts fresh. */
export type Program = (sim: SimSetup) => void;

export type RunStatus = 'ok' | 'error' | 'deadlock' | 'step-limit' | 'diverged';

/** One edge of a deadlock's wait-for cycle. */
export interface WaitEdge {
  readonly thread: string;
  /** What it waits on: a lock (with mode), wait queue, thread, seqcount or grace period. */
  readonly waitsFor: string;
  /** The thread it waits for, next in the cycle. */
  readonly heldBy: string;
}

/** Why a run failed. */
export interface RunFailure {
  readonly kind: 'error' | 'deadlock' | 'step-limit' | 'diverged';
  /** The thread that threw (error) or the first of the cycle (deadlock). */
  readonly thread: string | null;
  readonly step: number;
  readonly message: string;
  readonly stack?: string;
  /** Deadlock: the wait-for cycle (empty when threads sleep on something nobody will signal). */
  readonly cycle?: readonly WaitEdge[];
  /** Deadlock: every blocked thread and what it waits on. */
  readonly blocked?: readonly { readonly thread: string; readonly waitsFor: string }[];
}

/** A summary of one thread at the end of a run. */
export interface ThreadSummary {
  readonly id: number;
  readonly name: string;
  readonly cpu: number;
  readonly state: 'runnable' | 'blocked' | 'done';
  readonly steps: number;
  readonly clockNs: number;
}

/** Per-lock contention figures. */
export interface LockStats {
  readonly name: string;
  readonly acquisitions: number;
  readonly contended: number;
  readonly waitNsTotal: number;
}

/** The result of one run. */
export interface RunResult {
  readonly status: RunStatus;
  readonly seed: number;
  readonly strategy: string;
  readonly steps: number;
  /** The schedule that ran, replayable with `strategy: 'replay'`. */
  readonly schedule: string;
  /** The latest thread clock at the end, ns. */
  readonly simTimeNs: number;
  readonly threads: readonly ThreadSummary[];
  readonly failure: RunFailure | null;
  readonly pct: PctReport | null;
  readonly locks: readonly LockStats[];
  readonly trace: Trace | null;
  /** One line: status, seed, step, what happened. */
  readonly summary: string;
}

/** Defaults. */
export const defaultStepLimit = 1_000_000;
export const defaultCpus = 64;
export const defaultPctDepth = 3;
export const defaultPctSteps = 1000;
/** Under non-timed strategies a step spans this many trace ns. */
export const stepTraceNs = 1000;

class ThreadError extends Error {
  constructor(
    readonly thread: SimThread,
    readonly original: unknown,
  ) {
    super(original instanceof Error ? original.message : String(original));
  }
}

/** A pending RCU grace period: the readers it waits for and what runs when it ends. */
interface GracePeriod {
  readonly readers: { readonly thread: SimThread; readonly exits: number }[];
  readonly sleepers: SimThread[];
  readonly callbacks: (() => void)[];
}

/**
 * The deterministic simulation engine. `run` interprets the effects yielded by a program's
 * threads under a strategy; the same program, options and seed give the same result byte for
 * byte. Every run is independent: a run that throws, deadlocks or hits its step limit ends with
 * a result, and the engine stays usable.
 */
export class Engine {
  run(program: Program, options: RunOptions): RunResult {
    return new Run(program, options).execute();
  }
}

/** Run `program` once. */
export function runProgram(program: Program, options: RunOptions): RunResult {
  return new Run(program, options).execute();
}

/** Numbers the runs of this process, so that cache lines outliving a run start the next one cold. */
let runEpochs = 0;

/** One run: all mutable state of the engine lives here. */
class Run implements LockHost {
  /** This run's number (`CacheLine.epoch`). */
  readonly epoch = ++runEpochs;
  readonly threads: SimThread[] = [];
  readonly strategy: Strategy;
  readonly timed: TimedStrategy | null;
  readonly pct: PctStrategy | null;
  readonly cost: CostModel;
  /** The machine's memory bus for this run (null when the cost model has none). */
  readonly memoryBus: MemoryBus | null;
  readonly cpus: number;
  readonly stepLimit: number;
  readonly cpuFreeAtNs: Float64Array;
  readonly programRng: Prng;
  readonly schedule = new ScheduleRecorder();
  readonly lockStats: SimLock[] = [];
  readonly gracePeriods: GracePeriod[] = [];
  readonly events: TraceEvent[] | null;
  readonly observers: readonly EngineObserver[] | null;
  readonly objectIds = new Map<object, number>();
  readonly objects: TraceObject[] = [];
  step = 0;
  blockedCount = 0;
  /** The thread executing the current step (the releaser in `grant`). */
  current: SimThread | null = null;
  currentStartNs = 0;

  constructor(
    readonly program: Program,
    readonly options: RunOptions,
  ) {
    if (!Number.isSafeInteger(options.seed)) throw new RangeError(`seed must be an integer, got ${options.seed}`);
    this.cpus = options.cpus ?? defaultCpus;
    if (!Number.isInteger(this.cpus) || this.cpus < 1 || this.cpus > 65536) throw new RangeError(`cpus must be an integer in 1..65536, got ${this.cpus}`);
    this.stepLimit = options.stepLimit ?? defaultStepLimit;
    if (!Number.isInteger(this.stepLimit) || this.stepLimit < 1) throw new RangeError(`stepLimit must be an integer >= 1, got ${this.stepLimit}`);
    this.cost = options.costModel ?? defaultCostModel;
    this.memoryBus = this.cost.memoryBusNsPerPage > 0 ? new MemoryBus() : null;
    this.cpuFreeAtNs = new Float64Array(this.cpus);
    this.programRng = new Prng(options.seed, PrngStream.program);
    this.events = options.trace === true ? [] : null;
    this.observers = options.observers !== undefined && options.observers.length > 0 ? options.observers : null;
    const schedulerRng = new Prng(options.seed, PrngStream.scheduler);
    this.timed = null;
    this.pct = null;
    if (options.scripted !== undefined) this.strategy = options.scripted;
    else {
      switch (options.strategy) {
        case 'timed':
          this.strategy = this.timed = new TimedStrategy();
          break;
        case 'random':
          this.strategy = new RandomStrategy(schedulerRng);
          break;
        case 'pct':
          this.strategy = this.pct = new PctStrategy(schedulerRng, options.pctDepth ?? defaultPctDepth, options.pctSteps ?? defaultPctSteps);
          break;
        case 'replay':
          if (options.schedule === undefined) throw new Error("strategy 'replay' needs a schedule");
          this.strategy = new ScriptedStrategy('replay', decodeSchedule(options.schedule), options.extendSchedule === true);
          break;
        default:
          throw new RangeError(`unknown strategy '${String(options.strategy)}' (expected one of ${strategyNames.join(', ')})`);
      }
    }
  }

  execute(): RunResult {
    const setup: SimSetup = {
      spawn: (name, body, opts) => this.spawn(name, body, opts?.cpu, 0),
      rng: this.programRng,
      cpus: this.cpus,
      seed: this.options.seed,
    };
    try {
      if (this.observers !== null) for (const o of this.observers) o.onRunStart?.(this.options);
      this.program(setup);
      let failure: RunFailure | null;
      try {
        failure = this.loop();
      } catch (e) {
        if (e instanceof ThreadError) failure = this.errorFailure(e);
        else if (e instanceof ScheduleDivergence) failure = { kind: 'diverged', thread: null, step: this.step, message: e.message };
        else throw e;
      }
      this.closeAll();
      return this.result(failure);
    } finally {
      if (this.observers !== null) for (const o of this.observers) o.onRunEnd?.();
    }
  }

  /** The scheduling loop. Returns the failure that ended the run, or null. */
  loop(): RunFailure | null {
    const strategy = this.strategy;
    const timed = this.timed;
    const cpuFree = this.cpuFreeAtNs;
    for (;;) {
      if (this.step >= this.stepLimit) {
        return { kind: 'step-limit', thread: null, step: this.step, message: `step limit ${this.stepLimit} reached` };
      }
      const t = strategy.pick(this.step);
      if (t === null) return this.blockedCount > 0 ? this.deadlock() : null;
      if (timed !== null && cpuFree[t.cpu]! > t.clockNs) {
        // Its CPU is busy with another thread until then: wait in the run queue.
        t.clockNs = cpuFree[t.cpu]!;
        timed.delayed(t);
        continue;
      }
      const step = this.step++;
      this.schedule.push(t.id);
      this.current = t;
      if (t.recheck && !this.recheck(t)) {
        this.pct?.steppedOut(t, step);
        continue;
      }
      let r: IteratorResult<Effect, unknown>;
      try {
        r = t.gen!.next(t.resume);
        t.resume = undefined;
        t.steps++;
        if (r.done === true) this.exit(t, r.value);
        else this.exec(t, r.value, step);
      } catch (e) {
        throw e instanceof ThreadError || e instanceof ScheduleDivergence ? e : new ThreadError(t, e);
      }
      cpuFree[t.cpu] = t.clockNs;
      if (t.state === ThreadState.runnable) strategy.stepped(t, step);
      else this.pct?.steppedOut(t, step);
    }
  }

  spawn(name: string, body: ThreadBody, cpu: number | undefined, atNs: number): SimThread {
    const id = this.threads.length;
    const c = cpu ?? id % this.cpus;
    if (!Number.isInteger(c) || c < 0 || c >= this.cpus) throw new RangeError(`thread '${name}': cpu ${c} is outside 0..${this.cpus - 1}`);
    const t = new SimThread(id, name, c, body, this.programRng);
    t.costModel = this.cost;
    t.memoryBus = this.memoryBus;
    t.clockNs = atNs;
    t.gen = body(t);
    this.threads.push(t);
    this.events?.push({ type: 'thread', tid: id, name, cpu: c, ts: this.traceTs(atNs) });
    this.strategy.add(t);
    return t;
  }

  /** Interpret one effect for thread `t`. */
  exec(t: SimThread, e: Effect, step: number): void {
    if (!(e instanceof Effect)) throw new Error(`${t.label} yielded ${String(e)}, which is not an effect`);
    const cost = this.cost;
    const start = t.clockNs;
    this.currentStartNs = start;
    switch (e.op) {
      case Op.acquire: {
        const lock = e.a as SimLock;
        if (this.observers !== null) for (const o of this.observers) o.onLockRequest?.(t, lock, e.n, false, step);
        t.clockNs = lock.line.atomic(t.cpu, start + cost.effectNs, cost, this.epoch);
        const stats = this.statsOf(lock);
        stats.acquisitions++;
        if (lock.tryAcquire(t, e.n)) {
          t.held.push({ lock, mode: e.n });
          if (this.observers !== null) for (const o of this.observers) o.onLockAcquired?.(t, lock, e.n, step);
          t.resume = 0;
          this.traceEffect(t, e, step, start);
          this.events?.push({ type: 'acquired', tid: t.id, ts: this.traceEnd(t, step), obj: this.objId(lock, 'lock'), mode: e.n });
        } else if (e.b === true && t.fatalSignal) {
          t.resume = -EINTR;
          this.traceEffect(t, e, step, start);
        } else {
          stats.contended++;
          lock.enqueue(t, e.n, e.b === true);
          this.traceEffect(t, e, step, start);
          this.block(t, lock, e.n, step);
          this.traceWaiters(lock, lock.waiters.length, t.clockNs, step);
        }
        return;
      }
      case Op.tryAcquire: {
        const lock = e.a as SimLock;
        if (this.observers !== null) for (const o of this.observers) o.onLockRequest?.(t, lock, e.n, true, step);
        t.clockNs = lock.line.atomic(t.cpu, start + cost.effectNs, cost, this.epoch);
        const taken = lock.tryAcquire(t, e.n);
        if (taken) {
          t.held.push({ lock, mode: e.n });
          this.statsOf(lock).acquisitions++;
          if (this.observers !== null) for (const o of this.observers) o.onLockAcquired?.(t, lock, e.n, step);
        }
        t.resume = taken;
        this.traceEffect(t, e, step, start);
        if (taken) this.events?.push({ type: 'acquired', tid: t.id, ts: this.traceEnd(t, step), obj: this.objId(lock, 'lock'), mode: e.n });
        return;
      }
      case Op.release: {
        const lock = e.a as SimLock;
        this.dropHeld(t, lock, e.n);
        if (this.observers !== null) for (const o of this.observers) o.onLockReleased?.(t, lock, e.n, step);
        t.clockNs = lock.line.atomic(t.cpu, start + cost.effectNs, cost, this.epoch);
        this.traceEffect(t, e, step, start);
        this.events?.push({ type: 'released', tid: t.id, ts: this.traceEnd(t, step), obj: this.objId(lock, 'lock'), mode: e.n });
        const waiting = lock.waiters.length;
        lock.release(t, e.n, this);
        if (lock.waiters.length !== waiting) this.traceWaiters(lock, lock.waiters.length, t.clockNs, step);
        return;
      }
      case Op.downgrade: {
        const sem = e.a as RwSemaphore;
        const h = t.held.findLast((x) => x.lock === sem && x.mode === LockMode.write);
        if (h === undefined) throw new Error(`downgrade_write(${sem.name}) by ${t.label}, which does not hold it for write`);
        t.clockNs = sem.line.atomic(t.cpu, start + cost.effectNs, cost, this.epoch);
        this.traceEffect(t, e, step, start);
        const ts = this.traceEnd(t, step);
        this.events?.push({ type: 'released', tid: t.id, ts, obj: this.objId(sem, 'lock'), mode: LockMode.write });
        this.events?.push({ type: 'acquired', tid: t.id, ts, obj: this.objId(sem, 'lock'), mode: LockMode.read });
        h.mode = LockMode.read;
        if (this.observers !== null) {
          for (const o of this.observers) o.onLockReleased?.(t, sem, LockMode.write, step);
          for (const o of this.observers) o.onLockAcquired?.(t, sem, LockMode.read, step);
        }
        const waiting = sem.waiters.length;
        sem.downgrade(t, this);
        if (sem.waiters.length !== waiting) this.traceWaiters(sem, sem.waiters.length, t.clockNs, step);
        return;
      }
      case Op.read: {
        const loc = e.a as SharedLocation;
        if (this.observers !== null && e.n !== dataRaceAccess) for (const o of this.observers) o.onAccess?.(t, loc, false, step, false, e.n === markedAccess);
        t.clockNs = loc.line.load(t.cpu, start + cost.effectNs, cost, this.epoch);
        t.resume = loc.value;
        this.traceEffect(t, e, step, start);
        return;
      }
      case Op.write: {
        const loc = e.a as SharedLocation;
        if (this.observers !== null) for (const o of this.observers) o.onAccess?.(t, loc, true, step, false, e.n === markedAccess);
        t.clockNs = loc.line.store(t.cpu, start + cost.effectNs, cost, this.epoch);
        loc.value = e.b;
        this.traceEffect(t, e, step, start);
        return;
      }
      case Op.atomicRmw: {
        const loc = e.a as SharedLocation;
        if (this.observers !== null) for (const o of this.observers) o.onAccess?.(t, loc, true, step, true, true);
        t.clockNs = loc.line.atomic(t.cpu, start + cost.effectNs, cost, this.epoch);
        const old = loc.value;
        loc.value = (e.b as (v: unknown) => unknown)(old);
        t.resume = old;
        this.traceEffect(t, e, step, start);
        return;
      }
      case Op.spend:
        if (!(e.n >= 0)) throw new RangeError(`spend(${e.n}): a duration must be >= 0 ns`);
        t.clockNs = start + cost.effectNs + e.n;
        this.traceEffect(t, e, step, start);
        return;
      case Op.yield:
        t.clockNs = start + cost.effectNs;
        this.traceEffect(t, e, step, start);
        return;
      case Op.waitEvent: {
        const wq = e.a as WaitQueue;
        t.clockNs = start + cost.effectNs;
        this.traceEffect(t, e, step, start);
        const condition = e.b as () => boolean;
        if (condition()) {
          if (this.observers !== null) for (const o of this.observers) o.onWaitEventReturn?.(t, wq, step);
          return;
        }
        wq.sleepers.push(t);
        t.waitPredicate = condition;
        t.sleepQueue = wq;
        this.block(t, wq, 0, step);
        return;
      }
      case Op.wakeUp: {
        const wq = e.a as WaitQueue;
        t.clockNs = start + cost.effectNs;
        this.traceEffect(t, e, step, start);
        if (this.observers !== null) for (const o of this.observers) o.onWakeUp?.(t, wq, step);
        const count = e.n === 0 ? wq.sleepers.length : Math.min(e.n, wq.sleepers.length);
        for (const s of wq.sleepers.splice(0, count)) {
          s.recheck = true;
          this.wake(s, undefined, cost.wakeupNs, wq, 0);
        }
        return;
      }
      case Op.spawn: {
        const req = e.a as SpawnRequest;
        t.clockNs = start + cost.effectNs + cost.spawnNs;
        this.traceEffect(t, e, step, start);
        const child = this.spawn(req.name, req.body, req.cpu, t.clockNs);
        t.resume = child;
        if (this.observers !== null) for (const o of this.observers) o.onSpawn?.(t, child, step);
        return;
      }
      case Op.join: {
        const target = e.a as SimThread;
        t.clockNs = start + cost.effectNs;
        this.traceEffect(t, e, step, start);
        if (target === t) throw new Error(`${t.label} joins itself`);
        if (target.state === ThreadState.done) {
          t.resume = target.result;
          if (target.clockNs > t.clockNs) t.clockNs = target.clockNs;
          if (this.observers !== null) for (const o of this.observers) o.onJoin?.(t, target, step);
          return;
        }
        target.joiners.push(t);
        this.block(t, target, 0, step);
        return;
      }
      case Op.kill: {
        const target = e.a as SimThread;
        t.clockNs = start + cost.effectNs;
        this.traceEffect(t, e, step, start);
        target.fatalSignal = true;
        this.killWait(target);
        return;
      }
      case Op.rcuReadLock:
        t.rcuNesting++;
        t.clockNs = start + cost.effectNs + cost.rcuReadNs;
        this.traceEffect(t, e, step, start);
        return;
      case Op.rcuReadUnlock:
        if (t.rcuNesting === 0) throw new Error(`rcu_read_unlock() by ${t.label} outside an RCU read-side section`);
        t.clockNs = start + cost.effectNs + cost.rcuReadNs;
        this.traceEffect(t, e, step, start);
        if (--t.rcuNesting === 0) {
          t.rcuExits++;
          if (this.observers !== null) for (const o of this.observers) o.onRcuReadUnlock?.(t, step);
          if (this.gracePeriods.length > 0) this.advanceGracePeriods();
        }
        return;
      case Op.synchronizeRcu: {
        if (t.rcuNesting > 0) throw new Error(`synchronize_rcu() by ${t.label} inside an RCU read-side section would never return`);
        t.clockNs = start + cost.effectNs;
        this.traceEffect(t, e, step, start);
        const gp = this.startGracePeriod();
        if (gp === null) {
          if (this.observers !== null) for (const o of this.observers) o.onSynchronizeRcuReturn?.(t, step);
          return;
        }
        gp.sleepers.push(t);
        this.block(t, gp, 0, step);
        return;
      }
      case Op.callRcu: {
        t.clockNs = start + cost.effectNs;
        this.traceEffect(t, e, step, start);
        const gp = this.startGracePeriod();
        if (gp === null) (e.a as () => void)();
        else gp.callbacks.push(e.a as () => void);
        return;
      }
      case Op.seqWriteBegin: {
        const seq = e.a as SeqCount;
        if ((seq.sequence & 1) !== 0)
          throw new Error(`write_seqcount_begin(${seq.name}) by ${t.label} while a write is in progress: writers must be serialised`);
        t.clockNs = seq.line.store(t.cpu, start + cost.effectNs, cost, this.epoch);
        seq.sequence++;
        this.traceEffect(t, e, step, start);
        return;
      }
      case Op.seqWriteEnd: {
        const seq = e.a as SeqCount;
        if ((seq.sequence & 1) === 0) throw new Error(`write_seqcount_end(${seq.name}) by ${t.label} without write_seqcount_begin`);
        t.clockNs = seq.line.store(t.cpu, start + cost.effectNs, cost, this.epoch);
        seq.sequence++;
        this.traceEffect(t, e, step, start);
        for (const r of seq.readersWaiting.splice(0)) this.wake(r, seq.sequence, cost.lineTransferNs, seq, 0);
        return;
      }
      case Op.seqReadBegin: {
        const seq = e.a as SeqCount;
        t.clockNs = seq.line.load(t.cpu, start + cost.effectNs, cost, this.epoch);
        this.traceEffect(t, e, step, start);
        if ((seq.sequence & 1) === 0) {
          t.resume = seq.sequence;
          return;
        }
        // A reader spins while the count is odd: model the spin as a wait for the write's end.
        seq.readersWaiting.push(t);
        this.block(t, seq, 0, step);
        return;
      }
      case Op.seqReadRetry: {
        const seq = e.a as SeqCount;
        t.clockNs = seq.line.load(t.cpu, start + cost.effectNs, cost, this.epoch);
        t.resume = seq.sequence !== e.n;
        this.traceEffect(t, e, step, start);
        return;
      }
      default:
        throw new Error(`${t.label} yielded an effect with unknown op ${e.op}`);
    }
  }

  /** LockHost: a lock hands itself to a waiter (on the current thread's release). */
  grant(lock: SimLock, waiter: LockWaiter): void {
    const w = waiter.thread;
    w.held.push({ lock, mode: waiter.mode });
    if (this.observers !== null) for (const o of this.observers) o.onLockAcquired?.(w, lock, waiter.mode, this.step - 1);
    const latency = lock.waitKind === WaitKind.spin ? this.cost.lineTransferNs : this.cost.wakeupNs;
    this.wake(w, 0, latency, lock, waiter.mode);
    const stats = this.statsOf(lock);
    stats.waitNsTotal += w.clockNs - w.blockedAtNs;
  }

  /** Make blocked thread `w` runnable with `value` as the effect's result. */
  wake(w: SimThread, value: unknown, latencyNs: number, obj: object, mode: number): void {
    const from = this.current;
    const fromNs = from?.clockNs ?? 0;
    w.state = ThreadState.runnable;
    w.waitingOn = null;
    w.resume = value;
    w.clockNs = Math.max(w.clockNs, fromNs) + latencyNs;
    this.blockedCount--;
    this.strategy.add(w);
    if (this.events !== null) {
      const ts = this.timed !== null ? w.clockNs : this.step * stepTraceNs;
      const fromTs = this.timed !== null ? this.currentStartNs : (this.step - 1) * stepTraceNs;
      this.events.push({ type: 'grant', tid: w.id, ts, obj: this.objId(obj, kindOf(obj)), mode, fromTid: from?.id ?? -1, fromTs });
    }
  }

  block(t: SimThread, on: object, mode: number, step: number): void {
    t.state = ThreadState.blocked;
    t.waitingOn = on;
    t.waitMode = mode;
    t.blockedAtStep = step;
    t.blockedAtNs = t.clockNs;
    this.blockedCount++;
    this.strategy.remove(t);
    this.events?.push({ type: 'block', tid: t.id, ts: this.traceEnd(t, step), obj: this.objId(on, kindOf(on)), mode });
  }

  /** A woken `waitEvent` sleeper rechecks its condition; false puts it back to sleep. */
  recheck(t: SimThread): boolean {
    t.recheck = false;
    const pred = t.waitPredicate!;
    let ok: boolean;
    try {
      ok = pred();
    } catch (e) {
      throw new ThreadError(t, e);
    }
    if (ok) {
      if (this.observers !== null) for (const o of this.observers) o.onWaitEventReturn?.(t, t.sleepQueue as WaitQueue, this.step - 1);
      t.waitPredicate = null;
      t.sleepQueue = null;
      return true;
    }
    const wq = t.sleepQueue as WaitQueue;
    wq.sleepers.push(t);
    this.block(t, wq, 0, this.step - 1);
    return false;
  }

  /** A fatal signal ends a killable lock wait with -EINTR. */
  killWait(target: SimThread): void {
    if (target.state !== ThreadState.blocked) return;
    const on = target.waitingOn;
    if (!(on instanceof SimLock)) return;
    const w = on.waiters.find((x) => x.thread === target);
    if (w === undefined || !w.killable) return;
    on.dequeue(target, this);
    this.wake(target, -EINTR, this.cost.wakeupNs, on, w.mode);
    this.traceWaiters(on, on.waiters.length, target.clockNs, this.step - 1);
  }

  exit(t: SimThread, value: unknown): void {
    this.currentStartNs = t.clockNs;
    t.state = ThreadState.done;
    t.result = value;
    this.strategy.remove(t);
    this.events?.push({ type: 'exit', tid: t.id, ts: this.timed !== null ? t.clockNs : this.step * stepTraceNs, status: 'returned' });
    if (t.rcuNesting > 0) throw new Error(`${t.label} ended inside an RCU read-side section`);
    if (t.held.length > 0) {
      throw new Error(`${t.label} ended holding ${t.held.map((h) => `${h.lock.name} (${modeName(h.mode)})`).join(', ')}`);
    }
    for (const j of t.joiners.splice(0)) {
      if (this.observers !== null) for (const o of this.observers) o.onJoin?.(j, t, this.step - 1);
      this.wake(j, value, this.cost.wakeupNs, t, 0);
    }
    if (this.gracePeriods.length > 0) this.advanceGracePeriods();
  }

  dropHeld(t: SimThread, lock: SimLock, mode: number): void {
    const held = t.held;
    const last = held.length - 1;
    for (let i = last; i >= 0; i--) {
      const h = held[i]!;
      if (h.lock === lock && h.mode === mode) {
        if (i === last) held.pop();
        else held.splice(i, 1);
        return;
      }
    }
    throw new Error(
      `${t.label} releases ${lock.name} (${modeName(mode)}), which it does not hold${t.held.length ? ` (holds ${t.held.map((h) => h.lock.name).join(', ')})` : ''}`,
    );
  }

  /** Start a grace period waiting for every thread now in a read-side section; null if none is. */
  startGracePeriod(): GracePeriod | null {
    const readers = [];
    for (const r of this.threads) if (r.rcuNesting > 0 && r.state !== ThreadState.done) readers.push({ thread: r, exits: r.rcuExits });
    if (readers.length === 0) return null;
    const gp: GracePeriod = { readers, sleepers: [], callbacks: [] };
    this.gracePeriods.push(gp);
    return gp;
  }

  /** End every grace period whose readers have all left their sections (in start order). */
  advanceGracePeriods(): void {
    for (let i = 0; i < this.gracePeriods.length;) {
      const gp = this.gracePeriods[i]!;
      if (!gp.readers.every((r) => r.thread.rcuExits > r.exits || r.thread.state === ThreadState.done)) {
        i++;
        continue;
      }
      this.gracePeriods.splice(i, 1);
      for (const cb of gp.callbacks) cb();
      for (const s of gp.sleepers) {
        if (this.observers !== null) for (const o of this.observers) o.onSynchronizeRcuReturn?.(s, this.step - 1);
        this.wake(s, undefined, this.cost.wakeupNs, gp, 0);
      }
    }
  }

  /** Build the deadlock report: the wait-for graph's cycle, or the sleepers nobody will wake. */
  deadlock(): RunFailure {
    const blocked = this.threads.filter((t) => t.state === ThreadState.blocked);
    const edges = new Map<SimThread, SimThread[]>();
    for (const t of blocked) edges.set(t, this.waitsForThreads(t));
    const cycle = findCycle(blocked, edges);
    const describe = (t: SimThread) => ({ thread: t.label, waitsFor: this.describeWait(t) });
    if (cycle !== null) {
      const edgesOut: WaitEdge[] = cycle.map((t, i) => ({ thread: t.label, waitsFor: this.describeWait(t), heldBy: cycle[(i + 1) % cycle.length]!.label }));
      const text = edgesOut.map((e) => `${e.thread} waits for ${e.waitsFor} held by ${e.heldBy}`).join('; ');
      return { kind: 'deadlock', thread: cycle[0]!.label, step: this.step, message: `deadlock: ${text}`, cycle: edgesOut, blocked: blocked.map(describe) };
    }
    const text = blocked.map((t) => `${t.label} waits for ${this.describeWait(t)}`).join('; ');
    return {
      kind: 'deadlock',
      thread: blocked[0]?.label ?? null,
      step: this.step,
      message: `deadlock: no thread can run: ${text}`,
      cycle: [],
      blocked: blocked.map(describe),
    };
  }

  /** The threads a blocked thread waits for. */
  waitsForThreads(t: SimThread): SimThread[] {
    const on = t.waitingOn;
    if (on instanceof SimLock) return on.blockers(t);
    if (on instanceof SimThread) return [on];
    if (on !== null && typeof on === 'object' && 'readers' in on) {
      return (on as GracePeriod).readers.filter((r) => r.thread.rcuExits === r.exits && r.thread.state !== ThreadState.done).map((r) => r.thread);
    }
    return [];
  }

  describeWait(t: SimThread): string {
    const on = t.waitingOn;
    if (on instanceof SimLock) return `${on.name} (${modeName(t.waitMode)})`;
    if (on instanceof SimThread) return `the end of ${on.label}`;
    if (on instanceof WaitQueue) return `wait queue ${on.name}`;
    if (on instanceof SeqCount) return `seqcount ${on.name} to become even`;
    return 'an RCU grace period';
  }

  errorFailure(e: ThreadError): RunFailure {
    const original = e.original;
    const stack = original instanceof Error ? original.stack : undefined;
    return {
      kind: 'error',
      thread: e.thread.label,
      step: this.step - 1,
      message: `${e.thread.label} threw at step ${this.step - 1}: ${e.message}`,
      ...(stack !== undefined ? { stack } : {}),
    };
  }

  /** Close every unfinished generator so `finally` blocks of bodies do not leak. */
  closeAll(): void {
    for (const t of this.threads) {
      if (t.state === ThreadState.done || t.gen === null) continue;
      try {
        t.gen.return(undefined);
      } catch {
        // A body that throws while being closed has nothing more to report.
      }
    }
  }

  result(failure: RunFailure | null): RunResult {
    const status: RunStatus = failure === null ? 'ok' : failure.kind;
    let simTimeNs = 0;
    for (const t of this.threads) if (t.clockNs > simTimeNs) simTimeNs = t.clockNs;
    const strategyName = this.strategy.name;
    const seed = this.options.seed;
    const summary =
      failure === null
        ? `seed=${seed} strategy=${strategyName} ok: ${this.threads.length} threads, ${this.step} steps`
        : `seed=${seed} strategy=${strategyName} ${status} at step ${failure.step}: ${failure.message}`;
    const stateNames = ['runnable', 'blocked', 'done'] as const;
    const recorder = this.schedule;
    let schedule: string | null = null;
    return {
      status,
      seed,
      strategy: strategyName,
      steps: this.step,
      // Encoded on first use: a long run's schedule is megabytes nobody may ask for.
      get schedule(): string {
        return (schedule ??= recorder.encode());
      },
      simTimeNs,
      threads: this.threads.map((t) => ({ id: t.id, name: t.name, cpu: t.cpu, state: stateNames[t.state], steps: t.steps, clockNs: t.clockNs })),
      failure,
      pct: this.pct?.report(this.step) ?? null,
      locks: this.lockStats.map((lock) => ({ name: lock.name, ...lock.stats })),
      trace: this.events === null ? null : { events: this.events, objects: this.objects, timed: this.timed !== null },
      summary,
    };
  }

  /** The lock's figures for this run (a lock object may outlive a run: reset on first use). */
  statsOf(lock: SimLock): SimLock['stats'] {
    if (lock.statsRun !== this) {
      lock.statsRun = this;
      lock.stats = { acquisitions: 0, contended: 0, waitNsTotal: 0 };
      this.lockStats.push(lock);
    }
    return lock.stats;
  }

  // --- tracing (all no-ops when tracing is off) ---

  objId(obj: object, kind: string): number {
    let id = this.objectIds.get(obj);
    if (id === undefined) {
      id = this.objects.length;
      this.objectIds.set(obj, id);
      const name = obj instanceof SimThread ? obj.label : 'name' in obj ? String(obj.name) : 'rcu';
      this.objects.push({ id, kind, name });
    }
    return id;
  }

  traceTs(ns: number): number {
    return this.timed !== null ? ns : this.step * stepTraceNs;
  }

  /** When the current effect of `t` ended, on the trace's time line. */
  traceEnd(t: SimThread, step: number): number {
    return this.timed !== null ? t.clockNs : step * stepTraceNs + stepTraceNs / 2;
  }

  traceEffect(t: SimThread, e: Effect, step: number, startNs: number): void {
    if (this.events === null) return;
    const target = e.a;
    const obj = target !== null && typeof target === 'object' && !(e.op === Op.spawn) ? this.objId(target, kindOf(target)) : -1;
    const ts = this.timed !== null ? startNs : step * stepTraceNs;
    const dur = this.timed !== null ? t.clockNs - startNs : stepTraceNs / 2;
    this.events.push({ type: 'effect', step, tid: t.id, ts, dur, op: opNames[e.op]!, obj, mode: e.n });
  }

  traceWaiters(lock: SimLock, count: number, ns: number, step: number): void {
    if (this.events === null) return;
    this.events.push({ type: 'waiters', ts: this.timed !== null ? ns : step * stepTraceNs + stepTraceNs / 2, obj: this.objId(lock, 'lock'), count });
  }
}

function kindOf(obj: unknown): string {
  if (obj instanceof SimLock) return 'lock';
  if (obj instanceof SharedLocation) return 'location';
  if (obj instanceof WaitQueue) return 'waitqueue';
  if (obj instanceof SeqCount) return 'seqcount';
  if (obj instanceof SimThread) return 'thread';
  return 'rcu';
}

/** A cycle in the wait-for graph, in deterministic order (lowest thread id first), or null. */
function findCycle(nodes: readonly SimThread[], edges: Map<SimThread, SimThread[]>): SimThread[] | null {
  const color = new Map<SimThread, number>();
  const stack: SimThread[] = [];
  const visit = (n: SimThread): SimThread[] | null => {
    color.set(n, 1);
    stack.push(n);
    for (const m of edges.get(n) ?? []) {
      const c = color.get(m) ?? 0;
      if (c === 1) return stack.slice(stack.indexOf(m));
      if (c === 0 && edges.has(m)) {
        const found = visit(m);
        if (found !== null) return found;
      }
    }
    stack.pop();
    color.set(n, 2);
    return null;
  };
  for (const n of nodes) {
    if ((color.get(n) ?? 0) !== 0) continue;
    const cycle = visit(n);
    if (cycle !== null) {
      const first = cycle.reduce((a, b) => (b.id < a.id ? b : a));
      const i = cycle.indexOf(first);
      return [...cycle.slice(i), ...cycle.slice(0, i)];
    }
  }
  return null;
}
