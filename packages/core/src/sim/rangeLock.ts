import { CacheLine } from './costModel.js';
import { Effect, LockMode, Op } from './effect.js';
import { type LockHost, SimLock, WaitKind } from './lock.js';
import type { SimThread } from './thread.js';

/**
 * A reader/writer range lock over an address space (Jan Kara 2013, Davidlohr Bueso 2017: the
 * `range_lock` proposed to replace mmap_sem). A request covers [start, end) in read or write
 * mode; two requests conflict when they overlap and one writes. Fairness is FIFO per range: a
 * request waits for every earlier request it conflicts with, granted or still waiting, so a
 * waiting writer holds back later overlapping readers but nobody outside its range.
 *
 * Each acquisition is its own `RangeLockRequest` (a `SimLock` the engine queues and hands off
 * like any lock): `const r = rl.request(start, end, 'write'); yield r.lock(); ...; yield r.unlock();`.
 * A granted write request can be downgraded to read (`range_downgrade_write`, Bueso 2018):
 * `yield r.downgradeWrite()`.
 */
export class RangeLock {
  /** Requests granted or waiting, in arrival order (arrival = the first try to take it). */
  readonly #active: RangeLockRequest[] = [];

  /**
   * The cache line of the tree's spinlock: taking or releasing any request is an atomic on it
   * (the kernel's range_lock_tree serialises every acquisition and release on one lock).
   */
  readonly line = new CacheLine();

  constructor(readonly name: string) {}

  /** A new request for [start, end) in `mode`; take it with `lock()`, release with `unlock()`. */
  request(start: number, end: number, mode: 'read' | 'write'): RangeLockRequest {
    if (!(start < end)) throw new RangeError(`${this.name}: range [${start}, ${end}) is empty`);
    return new RangeLockRequest(this, start, end, mode === 'write' ? LockMode.write : LockMode.read);
  }

  /** The requests granted now. */
  granted(): RangeLockRequest[] {
    return this.#active.filter((r) => r.owner !== null);
  }

  /** The requests waiting now, in arrival order. */
  waiting(): RangeLockRequest[] {
    return this.#active.filter((r) => r.owner === null);
  }

  /** Requests before `r` in arrival order that conflict with it. */
  blockersOf(r: RangeLockRequest): RangeLockRequest[] {
    const out: RangeLockRequest[] = [];
    for (const other of this.#active) {
      if (other === r) break;
      if (conflicts(other, r)) out.push(other);
    }
    return out;
  }

  /** Internal: may `r` be granted now, arriving last? (No active request conflicts with it.) */
  grantableNow(r: RangeLockRequest): boolean {
    for (const other of this.#active) if (conflicts(other, r)) return false;
    return true;
  }

  /** Internal: `r` joins the requests, granted or waiting (its place in the FIFO order). */
  add(r: RangeLockRequest): void {
    this.#active.push(r);
  }

  /** Internal: `r` was released or withdrawn; grant every waiting request nothing earlier blocks. */
  depart(r: RangeLockRequest, host: LockHost): void {
    const i = this.#active.indexOf(r);
    if (i >= 0) this.#active.splice(i, 1);
    this.wakeUnblocked(host);
  }

  /**
   * Internal: grant every waiting request that no earlier request conflicts with any more (after
   * a release, a withdrawal or a downgrade).
   */
  wakeUnblocked(host: LockHost): void {
    for (const w of this.#active) {
      if (w.owner !== null || w.waiters.length === 0) continue;
      if (this.blockersOf(w).length === 0) w.grantHead(host);
    }
  }
}

function conflicts(a: RangeLockRequest, b: RangeLockRequest): boolean {
  return a.start < b.end && b.start < a.end && (a.mode === LockMode.write || b.mode === LockMode.write);
}

/**
 * One acquisition of a `RangeLock`: [start, end) in one mode, taken and released once. A write
 * request may be downgraded to read while held; it is then released as a read request.
 */
export class RangeLockRequest extends SimLock {
  readonly waitKind = WaitKind.sleep;
  owner: SimThread | null = null;
  #mode: number;
  readonly #lock: Effect;
  readonly #lockKillable: Effect;
  readonly #unlockRead: Effect;
  readonly #unlockWrite: Effect;
  readonly #trylock: Effect;
  readonly #downgradeWrite: Effect;

  constructor(
    readonly rangeLock: RangeLock,
    readonly start: number,
    readonly end: number,
    mode: number,
  ) {
    // Every request works on the range lock's one tree under its spinlock: one shared line.
    super(`${rangeLock.name}[0x${start.toString(16)}-0x${end.toString(16)})`, `${rangeLock.name.replace(/\d+/g, '#')}.range`, rangeLock.line);
    this.#mode = mode;
    this.#lock = new Effect(Op.acquire, this, false, mode);
    this.#lockKillable = new Effect(Op.acquire, this, true, mode);
    this.#unlockRead = new Effect(Op.release, this, null, LockMode.read);
    this.#unlockWrite = new Effect(Op.release, this, null, LockMode.write);
    this.#trylock = new Effect(Op.tryAcquire, this, null, mode);
    this.#downgradeWrite = new Effect(Op.downgrade, this);
  }

  /** `LockMode.read` or `LockMode.write`: the mode asked for, or read after a downgrade. */
  get mode(): number {
    return this.#mode;
  }

  /** `range_read_lock()` / `range_write_lock()`. */
  lock(): Effect {
    return this.#lock;
  }
  /** The killable variant: resumes with 0, or -EINTR on a fatal signal. */
  lockKillable(): Effect {
    return this.#lockKillable;
  }
  /** `range_read_unlock()` / `range_write_unlock()`, for the mode held now. */
  unlock(): Effect {
    return this.#mode === LockMode.write ? this.#unlockWrite : this.#unlockRead;
  }
  /**
   * `range_downgrade_write()`: the granted write request becomes a read request, and the waiting
   * readers it alone held back are let in; a waiting writer still conflicts with it and waits.
   */
  downgradeWrite(): Effect {
    return this.#downgradeWrite;
  }
  /** `range_*_trylock()`: resumes with true when taken (a failed try leaves no trace). */
  trylock(): Effect {
    return this.#trylock;
  }

  tryAcquire(thread: SimThread, mode: number): boolean {
    if (mode !== this.#mode) throw new Error(`${this.name}: requested in ${mode === LockMode.write ? 'write' : 'read'} mode, made for the other`);
    if (this.owner !== null || this.waiters.length > 0) throw new Error(`${this.name}: a range request is taken once; make a new one with request()`);
    // A failed try leaves no trace; a blocking acquire joins the FIFO in enqueue().
    if (!this.rangeLock.grantableNow(this)) return false;
    this.rangeLock.add(this);
    this.owner = thread;
    return true;
  }

  /** A blocking acquire that could not be granted: join the FIFO order and wait. */
  override enqueue(thread: SimThread, mode: number, killable: boolean): void {
    this.rangeLock.add(this);
    super.enqueue(thread, mode, killable);
  }

  release(thread: SimThread, _mode: number, host: LockHost): void {
    if (this.owner !== thread) throw new Error(`unlock(${this.name}) by ${thread.label}, which does not hold it`);
    this.owner = null;
    this.rangeLock.depart(this, host);
  }

  /** Called by the engine for `downgradeWrite()`: turn `thread`'s write hold into a read hold. */
  downgrade(thread: SimThread, host: LockHost): void {
    if (this.owner !== thread || this.#mode !== LockMode.write) {
      throw new Error(`range_downgrade_write(${this.name}) by ${thread.label}, which does not hold it for write`);
    }
    this.#mode = LockMode.read;
    this.rangeLock.wakeUnblocked(host);
  }

  holders(): readonly SimThread[] {
    return this.owner === null ? [] : [this.owner];
  }

  /** A killed waiter withdraws its request. */
  override dequeue(thread: SimThread, host: LockHost): void {
    const i = this.waiters.findIndex((w) => w.thread === thread);
    if (i >= 0) this.waiters.splice(i, 1);
    this.rangeLock.depart(this, host);
  }

  /** Internal: nothing earlier blocks this request any more: hand it to its waiter. */
  grantHead(host: LockHost): void {
    const w = this.waiters.shift();
    if (w === undefined) return;
    this.owner = w.thread;
    host.grant(this, w);
  }

  protected wakeWaiters(): void {}

  /** The threads this request waits for: the holders and waiters of the earlier conflicting requests. */
  override blockers(_thread: SimThread): SimThread[] {
    const out: SimThread[] = [];
    for (const r of this.rangeLock.blockersOf(this)) {
      if (r.owner !== null) out.push(r.owner);
      for (const w of r.waiters) out.push(w.thread);
    }
    return out;
  }
}
