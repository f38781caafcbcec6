import { CacheLine } from './costModel.js';
import { Effect, Op } from './effect.js';

/** The `n` operand of a marked (`READ_ONCE`/`WRITE_ONCE`) load or store. */
export const markedAccess = 1;
/** The `n` operand of a load no checker sees (`data_race()`). */
export const dataRaceAccess = 2;

/**
 * A named, instrumented shared memory location. Every access is an effect, hence a scheduling
 * point, and is visible to the trace (and, later, to the race detectors).
 */
export class SharedLocation<T = unknown> {
  readonly line = new CacheLine();
  readonly #read: Effect = new Effect(Op.read, this);
  readonly #readOnce: Effect = new Effect(Op.read, this, null, markedAccess);
  readonly #dataRace: Effect = new Effect(Op.read, this, null, dataRaceAccess);

  constructor(
    readonly name: string,
    /** The current value. Thread bodies go through `read()`/`write()`; setup code may set it. */
    public value: T,
    /** The subsystem or structure that owns the location, for reports. */
    readonly owner = '',
  ) {}

  /**
   * Called with the location whenever a thread body builds an access effect, in the body's own
   * frame (so a checker can take the simulated call stack there: the race detector with
   * `stacks: true`). Null unless a checker installed one.
   */
  static onAccessBuilt: ((location: SharedLocation) => void) | null = null;

  /** Load: resumes with the value. */
  read(): Effect {
    SharedLocation.onAccessBuilt?.(this);
    return this.#read;
  }

  /** Store `value`. */
  write(value: T): Effect {
    SharedLocation.onAccessBuilt?.(this);
    return new Effect(Op.write, this, value);
  }

  /**
   * `READ_ONCE()`: a marked load, the kernel's way of saying a lockless read is intended (a
   * pointer read before revalidation, a seqcount-protected read, `i_size_read()`). The race
   * detector, like KCSAN, does not report two concurrent accesses that are both marked; a marked
   * access racing a plain one is still a race. Orders nothing (use `rmw` for an atomic that does).
   */
  readOnce(): Effect {
    SharedLocation.onAccessBuilt?.(this);
    return this.#readOnce;
  }

  /**
   * `data_race(READ_ONCE(x))`: a load that is racy on purpose and that no checker sees (KCSAN does
   * not instrument what `data_race()` wraps): diagnostics, statistics, and a model's own shortcuts
   * (a driver thread that peeks at state user space would know). Still a scheduling point.
   */
  dataRace(): Effect {
    return this.#dataRace;
  }

  /** `WRITE_ONCE()`: a marked store (see `readOnce`). */
  writeOnce(value: T): Effect {
    SharedLocation.onAccessBuilt?.(this);
    return new Effect(Op.write, this, value, markedAccess);
  }

  /** An atomic read-modify-write: stores `update(old)`, resumes with the old value. */
  rmw(update: (old: T) => T): Effect {
    SharedLocation.onAccessBuilt?.(this);
    return new Effect(Op.atomicRmw, this, update);
  }
}
