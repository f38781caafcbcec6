/**
 * What the engine records when tracing is on: one event per executed effect, plus the lock
 * events a timeline needs (blocks, grants with the release that caused them, waiter counts).
 *
 * Times are simulated ns. Under `timed` they are the threads' clocks; under every other
 * strategy, step `s` spans [s·stepNs, (s+1)·stepNs) so the order of steps is the timeline.
 */
export type TraceEvent =
  /** A thread was created. */
  | { readonly type: 'thread'; readonly tid: number; readonly name: string; readonly cpu: number; readonly ts: number }
  /** A thread executed an effect over [ts, ts+dur). `obj` is the target's object id, -1 for none. */
  | {
      readonly type: 'effect';
      readonly step: number;
      readonly tid: number;
      readonly ts: number;
      readonly dur: number;
      readonly op: string;
      readonly obj: number;
      readonly mode: number;
    }
  /** A thread blocked on `obj` (a lock in `mode`, a wait queue, a thread, a seqcount, a grace period). */
  | { readonly type: 'block'; readonly tid: number; readonly ts: number; readonly obj: number; readonly mode: number }
  /** A thread was granted a lock (or woken) at `ts` by `fromTid`'s effect at `fromTs`. */
  | {
      readonly type: 'grant';
      readonly tid: number;
      readonly ts: number;
      readonly obj: number;
      readonly mode: number;
      readonly fromTid: number;
      readonly fromTs: number;
    }
  /** A lock was taken without waiting (its hold begins at `ts`). */
  | { readonly type: 'acquired'; readonly tid: number; readonly ts: number; readonly obj: number; readonly mode: number }
  /** A lock hold ended at `ts` (release, or the read half of a downgrade begins). */
  | { readonly type: 'released'; readonly tid: number; readonly ts: number; readonly obj: number; readonly mode: number }
  /** The number of waiters queued on `obj` changed. */
  | { readonly type: 'waiters'; readonly ts: number; readonly obj: number; readonly count: number }
  /** A thread ended (`status`: 'returned' or 'threw'). */
  | { readonly type: 'exit'; readonly tid: number; readonly ts: number; readonly status: string };

/** A traced object: its id in the events, kind and name. */
export interface TraceObject {
  readonly id: number;
  readonly kind: string;
  readonly name: string;
}

/** A whole recorded run. */
export interface Trace {
  readonly events: readonly TraceEvent[];
  readonly objects: readonly TraceObject[];
  /** True when times are simulated clocks (`timed`), false when they are step numbers. */
  readonly timed: boolean;
}
