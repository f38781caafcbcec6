import { Effect, LockMode, Op } from './effect.js';
import { type LockHost, SimLock, WaitKind } from './lock.js';
import type { SimThread } from './thread.js';

/** Linux's `MAX_READERS_WAKEUP`: at most this many readers are woken by one hand-off. */
export const maxReadersWakeup = 256;

/** Which queued readers one hand-off to a reader wakes. */
export type ReaderWakeup =
  /** Every queued reader, skipping writers (Linux since 5.3, `rwsem_mark_wake`). */
  | 'all'
  /** Only the readers before the first queued writer (strict FIFO, older kernels). */
  | 'leading';

/**
 * A reader/writer semaphore with Linux semantics (`kernel/locking/rwsem.c`):
 * - `down_read` succeeds at once only when no writer holds it and nobody is queued: a waiting
 *   writer blocks new readers;
 * - waiters are served FIFO; when the head is a writer it gets the lock alone, when it is a
 *   reader, readers are woken (all queued readers by default, see `ReaderWakeup`);
 * - `downgrade_write` turns the writer into a reader and wakes queued readers, unless a writer
 *   heads the queue;
 * - trylocks fail when anybody waits (`RWSEM_READ_FAILED_MASK`).
 */
export class RwSemaphore extends SimLock {
  readonly waitKind = WaitKind.sleep;
  writer: SimThread | null = null;
  readonly readers: SimThread[] = [];

  readonly #downRead = new Effect(Op.acquire, this, false, LockMode.read);
  readonly #downReadKillable = new Effect(Op.acquire, this, true, LockMode.read);
  readonly #downWrite = new Effect(Op.acquire, this, false, LockMode.write);
  readonly #downWriteKillable = new Effect(Op.acquire, this, true, LockMode.write);
  readonly #upRead = new Effect(Op.release, this, null, LockMode.read);
  readonly #upWrite = new Effect(Op.release, this, null, LockMode.write);
  readonly #downReadTrylock = new Effect(Op.tryAcquire, this, null, LockMode.read);
  readonly #downWriteTrylock = new Effect(Op.tryAcquire, this, null, LockMode.write);
  readonly #downgradeWrite = new Effect(Op.downgrade, this);

  constructor(
    name: string,
    readonly readerWakeup: ReaderWakeup = 'all',
  ) {
    super(name);
  }

  /** `down_read()`. */
  downRead(): Effect {
    return this.#downRead;
  }
  /** `down_read_killable()`: resumes with 0, or -EINTR on a fatal signal. */
  downReadKillable(): Effect {
    return this.#downReadKillable;
  }
  /** `down_write()`. */
  downWrite(): Effect {
    return this.#downWrite;
  }
  /** `down_write_killable()`: resumes with 0, or -EINTR on a fatal signal. */
  downWriteKillable(): Effect {
    return this.#downWriteKillable;
  }
  /** `up_read()`. */
  upRead(): Effect {
    return this.#upRead;
  }
  /** `up_write()`. */
  upWrite(): Effect {
    return this.#upWrite;
  }
  /** `down_read_trylock()`: resumes with true when taken. */
  downReadTrylock(): Effect {
    return this.#downReadTrylock;
  }
  /** `down_write_trylock()`: resumes with true when taken. */
  downWriteTrylock(): Effect {
    return this.#downWriteTrylock;
  }
  /** `downgrade_write()`. */
  downgradeWrite(): Effect {
    return this.#downgradeWrite;
  }

  /** True when the semaphore is held for write. */
  get writeLocked(): boolean {
    return this.writer !== null;
  }

  /** True when held in any mode. */
  get locked(): boolean {
    return this.writer !== null || this.readers.length > 0;
  }

  tryAcquire(thread: SimThread, mode: number): boolean {
    if (this.writer !== null || this.waiters.length > 0) return false;
    if (mode === LockMode.read) {
      this.readers.push(thread);
      return true;
    }
    if (this.readers.length > 0) return false;
    this.writer = thread;
    return true;
  }

  release(thread: SimThread, mode: number, host: LockHost): void {
    if (mode === LockMode.write) {
      if (this.writer !== thread) throw new Error(`up_write(${this.name}) by ${thread.label}, which does not hold it for write`);
      this.writer = null;
    } else {
      const i = this.readers.lastIndexOf(thread);
      if (i < 0) throw new Error(`up_read(${this.name}) by ${thread.label}, which does not hold it for read`);
      this.readers.splice(i, 1);
      if (this.readers.length > 0) return;
    }
    this.wakeWaiters(host);
  }

  /** Turn `thread`'s write hold into a read hold and let queued readers in. */
  downgrade(thread: SimThread, host: LockHost): void {
    if (this.writer !== thread) throw new Error(`downgrade_write(${this.name}) by ${thread.label}, which does not hold it for write`);
    this.writer = null;
    this.readers.push(thread);
    this.#wakeReaders(host);
  }

  holders(): readonly SimThread[] {
    return this.writer !== null ? [this.writer] : this.readers;
  }

  protected wakeWaiters(host: LockHost): void {
    if (this.writer !== null) return;
    const head = this.waiters[0];
    if (head === undefined) return;
    if (head.mode === LockMode.write) {
      if (this.readers.length > 0) return;
      this.waiters.shift();
      this.writer = head.thread;
      host.grant(this, head);
      return;
    }
    this.#wakeReaders(host);
  }

  /** Hand the semaphore to queued readers (none when a writer heads the queue). */
  #wakeReaders(host: LockHost): void {
    const head = this.waiters[0];
    if (head === undefined || head.mode === LockMode.write) return;
    let woken = 0;
    for (let i = 0; i < this.waiters.length && woken < maxReadersWakeup;) {
      const w = this.waiters[i]!;
      if (w.mode === LockMode.write) {
        if (this.readerWakeup === 'leading') break;
        i++;
        continue;
      }
      this.waiters.splice(i, 1);
      this.readers.push(w.thread);
      woken++;
      host.grant(this, w);
    }
  }
}
