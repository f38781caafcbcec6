import { CacheLine } from './costModel.js';
import { Effect, Op } from './effect.js';

/**
 * A named, instrumented shared memory location. Every access is an effect, hence a scheduling
 * point, and is visible to the trace (and, later, to the race detectors).
 */
export class SharedLocation<T = unknown> {
  readonly line = new CacheLine();
  readonly #read: Effect = new Effect(Op.read, this);

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

  /** An atomic read-modify-write: stores `update(old)`, resumes with the old value. */
  rmw(update: (old: T) => T): Effect {
    SharedLocation.onAccessBuilt?.(this);
    return new Effect(Op.atomicRmw, this, update);
  }
}
