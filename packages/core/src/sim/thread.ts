import type { Effect } from './effect.js';
import { type CostModel, type MemoryBus, type WorkKind, defaultCostModel } from './costModel.js';
import type { Prng } from './prng.js';

/** The life of a simulated thread. */
export const ThreadState = { runnable: 0, blocked: 1, done: 2 } as const;
export type ThreadState = (typeof ThreadState)[keyof typeof ThreadState];

/** A thread body: a generator function that yields effects and receives their results. */
export type ThreadBody = (thread: SimThread) => Generator<Effect, unknown, unknown>;

/** Where a new thread runs. */
export interface SpawnOptions {
  /** The simulated CPU it is pinned to; by default thread id modulo the CPU count. */
  readonly cpu?: number;
}

/** Something a thread can hold (a lock), as the thread's held list records it. */
export interface Holdable {
  readonly name: string;
}

/** One lock a thread holds, with the mode it holds it in. */
export interface HeldLock {
  readonly lock: Holdable;
  mode: number;
}

/**
 * A simulated thread. The engine owns every field; a thread body reads its identity, its held
 * locks and the program's random stream, and never writes.
 */
export class SimThread {
  /** The generator running the body; null until started. */
  gen: Generator<Effect, unknown, unknown> | null = null;
  state: ThreadState = ThreadState.runnable;
  /** The value the next `gen.next()` passes back (the result of the last effect). */
  resume: unknown = undefined;
  /** This thread's simulated clock, ns: when its next effect may start. */
  clockNs = 0;
  /** Effects this thread has executed. */
  steps = 0;
  /** Locks held now, in acquisition order. */
  readonly held: HeldLock[] = [];
  /** What the thread is blocked on (a lock, wait queue, thread, seqcount, grace period). */
  waitingOn: unknown = null;
  /** The mode of the blocked acquire, or the predicate of a blocked `waitEvent`. */
  waitMode = 0;
  waitPredicate: (() => boolean) | null = null;
  /** The wait queue of a `waitEvent` sleep, kept across a wake-up for the recheck. */
  sleepQueue: unknown = null;
  /** The step and time at which the thread blocked. */
  blockedAtStep = 0;
  blockedAtNs = 0;
  /** Woken from a wait queue: recheck the predicate before running. */
  recheck = false;
  /** Killable waits of this thread end with -EINTR. */
  fatalSignal = false;
  /** RCU read-side nesting depth, and how many times it dropped to zero. */
  rcuNesting = 0;
  rcuExits = 0;
  /** Threads joined on this one. */
  readonly joiners: SimThread[] = [];
  /** The value the body returned. */
  result: unknown = undefined;
  /** Strategy bookkeeping: position in the runnable set / heap, PCT priority. */
  slot = -1;
  priority = 0;

  /** The run's cost model (set by the engine): what `work` charges. */
  costModel: CostModel = defaultCostModel;
  /** The run's memory bus (set by the engine), when the cost model has one. */
  memoryBus: MemoryBus | null = null;

  constructor(
    /** Spawn order, from 0: stable across runs of one program. */
    readonly id: number,
    readonly name: string,
    /** The simulated CPU this thread runs on. */
    readonly cpu: number,
    readonly body: ThreadBody,
    /** The program's random stream (shared by all threads of the run, drawn in schedule order). */
    readonly rng: Prng,
  ) {}

  /**
   * Charge `n` units of CPU work of `kind` to this thread's clock without a scheduling point
   * (the mm's own work between its lock effects: a fault's handling, zeroing a page, updating
   * the VMA tree). Under `timed`, the thread's next effect starts that much later.
   */
  work(kind: WorkKind, n = 1): void {
    const busNs = this.costModel.memoryBusNsPerPage;
    if (kind !== 'pageZeroNs' || busNs <= 0 || this.memoryBus === null) {
      this.clockNs += this.costModel[kind] * n;
      return;
    }
    // Writing n pages needs the CPU for pageZeroNs each and the machine's memory bus for busNs
    // each: the bus serves the pages of every CPU in turn; the work ends when both are done.
    const bus = this.memoryBus;
    const start = Math.max(this.clockNs, bus.busyUntilNs);
    bus.busyUntilNs = start + busNs * n;
    this.clockNs = Math.max(this.clockNs + this.costModel.pageZeroNs * n, bus.busyUntilNs);
  }

  /** True when this thread holds `lock` in any mode. */
  holds(lock: Holdable): boolean {
    for (const h of this.held) if (h.lock === lock) return true;
    return false;
  }

  /** `T3 worker` style label for messages. */
  get label(): string {
    return `T${this.id} ${this.name}`;
  }
}
