import { CacheLine } from './costModel.js';
import { Effect, Op } from './effect.js';
import type { SimThread } from './thread.js';

/**
 * `seqcount_t`: writers (serialised by a lock of their own) make the sequence odd for the
 * duration of a write; readers take the sequence at begin (waiting while it is odd) and retry
 * when it changed.
 */
export class SeqCount {
  readonly line = new CacheLine();
  sequence = 0;
  /** Readers waiting for an odd sequence to become even. */
  readonly readersWaiting: SimThread[] = [];
  readonly #writeBegin = new Effect(Op.seqWriteBegin, this);
  readonly #writeEnd = new Effect(Op.seqWriteEnd, this);
  readonly #readBegin = new Effect(Op.seqReadBegin, this);

  constructor(readonly name: string) {}

  /** `write_seqcount_begin()`. */
  writeBegin(): Effect {
    return this.#writeBegin;
  }
  /** `write_seqcount_end()`. */
  writeEnd(): Effect {
    return this.#writeEnd;
  }
  /** `read_seqcount_begin()`: resumes with the (even) sequence. */
  readBegin(): Effect {
    return this.#readBegin;
  }
  /** `read_seqcount_retry(start)`: resumes with true when the read must be retried. */
  readRetry(start: number): Effect {
    return new Effect(Op.seqReadRetry, this, null, start);
  }
}
