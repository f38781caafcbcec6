import type { SimThread } from './thread.js';

/**
 * A scheduling strategy: keeps the runnable threads and picks which one runs the next step.
 * The engine tells it when threads become runnable or stop being so, and after every step.
 */
export interface Strategy {
  /** The name printed in results (`timed`, `random`, `pct`, `replay`, `guided`). */
  readonly name: string;
  /** `thread` became runnable. */
  add(thread: SimThread): void;
  /** `thread` blocked or ended. */
  remove(thread: SimThread): void;
  /** The thread to run next, or null when none is runnable. */
  pick(step: number): SimThread | null;
  /** `thread` ran step `step` and is still runnable (its clock may have moved). */
  stepped(thread: SimThread, step: number): void;
  /** How many threads are runnable. */
  readonly runnableCount: number;
}

/**
 * A set of runnable threads with O(1) add and remove (swap-remove), in a deterministic order.
 */
export class RunnableSet {
  readonly items: SimThread[] = [];

  add(thread: SimThread): void {
    thread.slot = this.items.length;
    this.items.push(thread);
  }

  remove(thread: SimThread): void {
    const i = thread.slot;
    const last = this.items.pop()!;
    if (last !== thread) {
      this.items[i] = last;
      last.slot = i;
    }
    thread.slot = -1;
  }

  get size(): number {
    return this.items.length;
  }
}
