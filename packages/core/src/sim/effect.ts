/**
 * Effects: what a simulated thread yields to the engine. Every `yield` is a scheduling point.
 *
 * One class with one shape for every effect keeps the engine's dispatch monomorphic (fast in
 * V8). Primitives hand out cached, immutable effect objects (`sem.downRead()`), so the hot path
 * allocates nothing; effects that carry a value are built by the helpers below.
 */
import type { SimThread, ThreadBody } from './thread.js';

/** Effect opcodes. Numbers, not strings: the engine switches on them once per step. */
export const Op = {
  /** Take a lock (`a` the lock, `n` the mode, `b` true when killable). Resumes with 0 or -EINTR. */
  acquire: 0,
  /** Try a lock once (`a`, `n` the mode). Resumes with true when taken. */
  tryAcquire: 1,
  /** Release a lock (`a`, `n` the mode held). */
  release: 2,
  /** Downgrade a write-held rwsem to read (`a`). */
  downgrade: 3,
  /** Load a shared location (`a`). Resumes with its value. */
  read: 4,
  /** Store `b` into a shared location (`a`). */
  write: 5,
  /** Spend `n` simulated ns of CPU time (no shared state touched). */
  spend: 6,
  /** A bare scheduling point (cost 0 beyond the effect's own). */
  yield: 7,
  /** Sleep on a wait queue (`a`) until the predicate `b` holds (`wait_event`). */
  waitEvent: 8,
  /** Wake the waiters of a wait queue (`a`): all when `n` is 0, else at most `n`. */
  wakeUp: 9,
  /** Start a thread (`a` the body, `b` its options). Resumes with its handle. */
  spawn: 10,
  /** Wait for a thread (`a`) to end. */
  join: 11,
  /** Enter an RCU read-side section. */
  rcuReadLock: 12,
  /** Leave an RCU read-side section. */
  rcuReadUnlock: 13,
  /** Wait for a full RCU grace period. */
  synchronizeRcu: 14,
  /** Run `a` (a plain function) once a grace period that starts now has ended. */
  callRcu: 15,
  /** Begin a seqcount write section (`a`). */
  seqWriteBegin: 16,
  /** End a seqcount write section (`a`). */
  seqWriteEnd: 17,
  /** Begin a seqcount read (`a`); waits while a write is in progress. Resumes with the sequence. */
  seqReadBegin: 18,
  /** Check a seqcount read (`a`) begun at sequence `n`. Resumes with true when it must retry. */
  seqReadRetry: 19,
  /** Send a fatal signal to a thread (`a`): killable waits end with -EINTR. */
  kill: 20,
  /** An atomic read-modify-write of a shared location (`a`) with `b(old) -> new`. Resumes with old. */
  atomicRmw: 21,
} as const;

/** Opcode names, indexed by opcode, for traces and messages. */
export const opNames: readonly string[] = Object.keys(Op);

/** Lock modes. Exclusive locks (mutex, spinlock) use `write`. */
export const LockMode = { read: 1, write: 2 } as const;
export type LockMode = (typeof LockMode)[keyof typeof LockMode];

/** -EINTR: what a killable wait returns when a fatal signal arrives. */
export const EINTR = 4;

/** One thing a simulated thread asks of the engine. Immutable once built. */
export class Effect {
  constructor(
    /** The opcode (`Op`). */
    readonly op: number,
    /** The target: a lock, location, wait queue, thread or function. */
    readonly a: unknown = null,
    /** A second operand: a value, predicate, options or the killable flag. */
    readonly b: unknown = null,
    /** A numeric operand: a mode, a duration in ns, a count or a sequence. */
    readonly n: number = 0,
  ) {}
}

const yieldEffect = new Effect(Op.yield);
const rcuReadLockEffect = new Effect(Op.rcuReadLock);
const rcuReadUnlockEffect = new Effect(Op.rcuReadUnlock);
const synchronizeRcuEffect = new Effect(Op.synchronizeRcu);

/** Spend `ns` simulated nanoseconds of CPU time. */
export function spend(ns: number): Effect {
  return new Effect(Op.spend, null, null, ns);
}

/** A bare scheduling point. */
export function yieldNow(): Effect {
  return yieldEffect;
}

/** `rcu_read_lock()`. */
export function rcuReadLock(): Effect {
  return rcuReadLockEffect;
}

/** `rcu_read_unlock()`. */
export function rcuReadUnlock(): Effect {
  return rcuReadUnlockEffect;
}

/** `synchronize_rcu()`: sleeps until every read-side section running now has ended. */
export function synchronizeRcu(): Effect {
  return synchronizeRcuEffect;
}

/** `call_rcu()`: runs `callback` (plain code, no effects) after a grace period. */
export function callRcu(callback: () => void): Effect {
  return new Effect(Op.callRcu, callback);
}

/** What `spawn` needs: the body and a name. */
export interface SpawnRequest {
  readonly name: string;
  readonly body: ThreadBody;
  readonly cpu: number | undefined;
}

/** Start a thread running `body`; resumes with its `SimThread` handle. */
export function spawn(name: string, body: ThreadBody, options: { cpu?: number } = {}): Effect {
  const request: SpawnRequest = { name, body, cpu: options.cpu };
  return new Effect(Op.spawn, request);
}

/** Wait until `thread` has ended; resumes with what its body returned. */
export function join(thread: SimThread): Effect {
  return new Effect(Op.join, thread);
}

/** Send a fatal signal (SIGKILL) to `thread`: its killable waits end with -EINTR. */
export function kill(thread: SimThread): Effect {
  return new Effect(Op.kill, thread);
}
