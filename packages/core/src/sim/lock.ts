import { CacheLine } from './costModel.js';
import { LockMode } from './effect.js';
import type { Holdable, SimThread } from './thread.js';

/** A thread queued on a lock, with the mode it asked for. */
export interface LockWaiter {
  readonly thread: SimThread;
  readonly mode: number;
  readonly killable: boolean;
}

/**
 * What a lock needs of the engine when it hands itself to a waiter: record the hold and make
 * the waiter runnable.
 */
export interface LockHost {
  grant(lock: SimLock, waiter: LockWaiter): void;
}

/** How a lock waiter waits: sleeping (wake-up latency) or spinning (a cache-line transfer). */
export const WaitKind = { sleep: 0, spin: 1 } as const;

/**
 * The engine-facing face of a sleeping or spinning lock. A lock keeps its own holders and FIFO
 * queue; the engine asks it and records holds on threads.
 */
export abstract class SimLock implements Holdable {
  /** The lock word's cache line (shared with other locks when they are parts of one structure). */
  readonly line: CacheLine;
  /** FIFO wait queue. */
  readonly waiters: LockWaiter[] = [];
  /** Contention figures of the run that last used the lock (`statsRun`). */
  stats = { acquisitions: 0, contended: 0, waitNsTotal: 0 };
  statsRun: unknown = null;
  /** How waiters wait; spinning waiters pay no wake-up latency. */
  abstract readonly waitKind: number;

  /**
   * The lock class (lockdep): every lock of one kind shares it, like the kernel's static key per
   * initialisation site. By default the name with its numbers folded (`mm12.mmap_sem` ->
   * `mm#.mmap_sem`).
   */
  readonly lockClass: string;

  constructor(
    readonly name: string,
    lockClass?: string,
    line?: CacheLine,
  ) {
    this.lockClass = lockClass ?? name.replace(/\d+/g, '#');
    this.line = line ?? new CacheLine();
  }

  /** Take the lock for `thread` in `mode` if the rules allow it now; true when taken. */
  abstract tryAcquire(thread: SimThread, mode: number): boolean;

  /** Release the lock held by `thread` in `mode`, granting it to waiters through `host`. */
  abstract release(thread: SimThread, mode: number, host: LockHost): void;

  /** The threads holding the lock now. */
  abstract holders(): readonly SimThread[];

  /** Queue `thread` for the lock. */
  enqueue(thread: SimThread, mode: number, killable: boolean): void {
    this.waiters.push({ thread, mode, killable });
  }

  /** Remove a queued thread (a killed waiter); then let the others in if that unblocks them. */
  dequeue(thread: SimThread, host: LockHost): void {
    const i = this.waiters.findIndex((w) => w.thread === thread);
    if (i >= 0) this.waiters.splice(i, 1);
    this.wakeWaiters(host);
  }

  /** Grant the lock to whichever waiters may have it now. */
  protected abstract wakeWaiters(host: LockHost): void;

  /** The threads a waiter waits for: the holders and everyone queued ahead of it. */
  blockers(thread: SimThread): SimThread[] {
    const out = [...this.holders()];
    for (const w of this.waiters) {
      if (w.thread === thread) break;
      out.push(w.thread);
    }
    return out;
  }
}

/** A mode's name for messages. */
export function modeName(mode: number): string {
  return mode === LockMode.read ? 'read' : 'write';
}
