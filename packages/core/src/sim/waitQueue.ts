import type { SimThread } from './thread.js';
import { Effect, Op } from './effect.js';

/**
 * A wait queue (`wait_queue_head_t`). Sleepers use `waitEvent(condition)`: the condition is
 * checked atomically before sleeping and again after every wake-up, so no wake-up is lost.
 */
export class WaitQueue {
  readonly sleepers: SimThread[] = [];
  readonly #wakeAll = new Effect(Op.wakeUp, this, null, 0);
  readonly #wakeOne = new Effect(Op.wakeUp, this, null, 1);

  constructor(readonly name: string) {}

  /** `wait_event(wq, condition)`. */
  waitEvent(condition: () => boolean): Effect {
    return new Effect(Op.waitEvent, this, condition);
  }

  /** `wake_up_all()`. */
  wakeUpAll(): Effect {
    return this.#wakeAll;
  }

  /** Wake the longest sleeper only. */
  wakeUpOne(): Effect {
    return this.#wakeOne;
  }
}
