/**
 * What the user threads of a diff workload did, as they saw it: the calls they made with what
 * each returned, and the user-level expectations they checked (R12: programs that rely on what
 * mmap_sem happened to give them). An expectation that does not hold is recorded as a
 * user-visible event of the program, never thrown: it is the program's own view, not a kernel
 * error, and the run goes on.
 *
 * Every event is numbered in the order the run made it (the simulator runs one thread at a time,
 * so that order is real time) and, per thread, in program order: the diff compares two runs
 * event by event per thread.
 */
import { type MmGen, type SimThread, errnoNames, hex } from '@vmalock/core';

/** A call's result as reports show it: an address in hex, `-ENOMEM`, a count, a fault's outcome. */
export function formatResult(result: number | string): string {
  if (typeof result === 'string') return result;
  if (result < 0) return `-${errnoNames[-result] ?? String(-result)}`;
  return result >= 0x10000 ? hex(result) : String(result);
}

/** How a workload treats what a call returned. */
export interface CallOptions<T> {
  /**
   * The program ignores the result (as real programs ignore madvise's ENOMEM over a range with
   * holes), or the result depends on the interleaving under every policy (the text of a maps
   * read): the diff does not compare it. The program's expectations say what it relies on.
   */
  readonly ignoreResult?: boolean;
  /** How the result reads in reports (default: `formatResult` of a number or string). */
  readonly show?: (result: T) => string;
}

/** One call a user thread made. */
export interface CallEvent {
  readonly type: 'call';
  /** The thread's name (as spawned: the same under every policy). */
  readonly thread: string;
  /** Its place in the thread's program order (calls and expectations together, from 0). */
  readonly index: number;
  /** The call with its arguments: `munmap(0x40003000, 0x2000)`. */
  readonly call: string;
  readonly result: string;
  readonly compared: boolean;
  /** Positions in the run's order of events. */
  readonly invokedAt: number;
  readonly respondedAt: number;
}

/** One user-level expectation a thread checked, and whether it held. */
export interface ExpectationEvent {
  readonly type: 'expectation';
  readonly thread: string;
  readonly index: number;
  /** The expectation's name, as the workload declares it. */
  readonly name: string;
  readonly holds: boolean;
  /** What the thread saw. */
  readonly detail: string;
  readonly at: number;
}

export type UserEvent = CallEvent | ExpectationEvent;

/** Bound on the events of one run (a workload that never ends is a bug of the workload). */
const eventsMax = 1_000_000;

/** The user side of one run: threads record their calls and expectations here. */
export class UserSpace {
  /** Every event, in the run's order. */
  readonly events: UserEvent[] = [];
  /** Each thread's next program-order index. */
  readonly #next = new Map<string, number>();
  #clock = 0;

  /** Run `op` as `thread`'s next call, recording `call` (its description) and its result. */
  *call<T>(thread: SimThread, call: string, op: MmGen<T>, options: CallOptions<T> = {}): MmGen<T> {
    const index = this.#index(thread.name);
    const invokedAt = this.#clock++;
    const result = yield* op;
    const shown =
      options.show !== undefined
        ? options.show(result)
        : typeof result === 'number' || typeof result === 'string'
          ? formatResult(result)
          : JSON.stringify(result);
    this.#push({
      type: 'call',
      thread: thread.name,
      index,
      call,
      result: shown,
      compared: options.ignoreResult !== true,
      invokedAt,
      respondedAt: this.#clock++,
    });
    return result;
  }

  /**
   * `thread` expects `name` to hold; `detail` says what it saw (kept whether or not it holds:
   * the diff shows both runs' views). Returns `holds`, so a program may react.
   */
  expect(thread: SimThread, name: string, holds: boolean, detail: () => string): boolean {
    this.#push({ type: 'expectation', thread: thread.name, index: this.#index(thread.name), name, holds, detail: detail(), at: this.#clock++ });
    return holds;
  }

  /** The expectations that did not hold, in the run's order. */
  get broken(): ExpectationEvent[] {
    return this.events.filter((e): e is ExpectationEvent => e.type === 'expectation' && !e.holds);
  }

  #index(thread: string): number {
    const i = this.#next.get(thread) ?? 0;
    this.#next.set(thread, i + 1);
    return i;
  }

  #push(event: UserEvent): void {
    if (this.events.length >= eventsMax) throw new Error(`user space: more than ${eventsMax} events in one run (a workload that never ends?)`);
    this.events.push(event);
  }
}
