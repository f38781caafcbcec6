import { Effect, LockMode, Op } from './effect.js';
import { type LockHost, SimLock, WaitKind } from './lock.js';
import type { SimThread } from './thread.js';

/**
 * An exclusive lock with a FIFO queue and direct hand-off to the head waiter. `Mutex` sleeps;
 * `SpinLock` spins (its waiters pay a cache-line transfer instead of a wake-up).
 */
abstract class ExclusiveLock extends SimLock {
  owner: SimThread | null = null;
  readonly #lock = new Effect(Op.acquire, this, false, LockMode.write);
  readonly #lockKillable = new Effect(Op.acquire, this, true, LockMode.write);
  readonly #unlock = new Effect(Op.release, this, null, LockMode.write);
  readonly #trylock = new Effect(Op.tryAcquire, this, null, LockMode.write);

  /** `mutex_lock()` / `spin_lock()`. */
  lock(): Effect {
    return this.#lock;
  }
  /** `mutex_lock_killable()`: resumes with 0, or -EINTR on a fatal signal. */
  lockKillable(): Effect {
    return this.#lockKillable;
  }
  /** `mutex_unlock()` / `spin_unlock()`. */
  unlock(): Effect {
    return this.#unlock;
  }
  /** `mutex_trylock()` / `spin_trylock()`: resumes with true when taken. */
  trylock(): Effect {
    return this.#trylock;
  }

  get locked(): boolean {
    return this.owner !== null;
  }

  tryAcquire(thread: SimThread): boolean {
    if (this.owner !== null || this.waiters.length > 0) return false;
    this.owner = thread;
    return true;
  }

  release(thread: SimThread, _mode: number, host: LockHost): void {
    if (this.owner !== thread) throw new Error(`unlock(${this.name}) by ${thread.label}, which does not hold it`);
    this.owner = null;
    this.wakeWaiters(host);
  }

  holders(): readonly SimThread[] {
    return this.owner === null ? [] : [this.owner];
  }

  protected wakeWaiters(host: LockHost): void {
    if (this.owner !== null) return;
    const head = this.waiters.shift();
    if (head === undefined) return;
    this.owner = head.thread;
    host.grant(this, head);
  }
}

/** A sleeping mutex (`struct mutex`). */
export class Mutex extends ExclusiveLock {
  readonly waitKind = WaitKind.sleep;
}

/** A spinlock (`spinlock_t`, ticket-fair: FIFO). Waiting spins: no sleep, no wake-up latency. */
export class SpinLock extends ExclusiveLock {
  readonly waitKind = WaitKind.spin;
}
