/**
 * The cost model of the `timed` strategy: simulated nanoseconds per effect, and a cache-line
 * model for lock words and shared locations. A lock word is one cache line: an atomic on a line
 * last written by another CPU pays a transfer, and atomics on one line serialise. That is why
 * even `down_read` on one rwsem stops scaling; the model shows it rather than assuming it.
 *
 * Every parameter is a physical cost, in nanoseconds.
 */
export interface CostModel {
  /** Bookkeeping every effect pays (instructions around the operation), ns. */
  readonly effectNs: number;
  /** An atomic read-modify-write on a line this CPU already owns, ns. */
  readonly atomicNs: number;
  /** Moving a cache line from another CPU (or invalidating its copies), ns. */
  readonly lineTransferNs: number;
  /** A plain load or store that hits this CPU's cache, ns. */
  readonly memAccessNs: number;
  /** Waking a sleeping waiter until it runs (scheduler wake-up latency), ns. */
  readonly wakeupNs: number;
  /** Creating and starting a thread, ns. */
  readonly spawnNs: number;
  /** Entering or leaving an RCU read-side section (preempt count), ns. */
  readonly rcuReadNs: number;
  /** Entering and leaving the kernel for a system call (entry code, mitigations), ns. */
  readonly syscallNs: number;
  /** A page fault's fixed part: the exception, the arch handler, the page-table walk, ns. */
  readonly faultNs: number;
  /** Allocating and zeroing (or copying) one 4 KiB page, ns. */
  readonly pageZeroNs: number;
  /** One VMA change in the tree (insert, remove, split, merge, expand) with its bookkeeping, ns. */
  readonly vmaUpdateNs: number;
  /** Clearing one present PTE and releasing its page (zap, with TLB batching), ns. */
  readonly zapPageNs: number;
  /**
   * The machine's memory bus: the time one 4 KiB page written in full (zeroed or copied) occupies
   * the memory controllers, ns — 4096 B over the machine's sustained write bandwidth. Every page
   * zeroed or copied anywhere on the machine queues for it (FIFO), so faults on many CPUs stop
   * scaling at that bandwidth. 0: unlimited (no bus).
   */
  readonly memoryBusNsPerPage: number;
}

/** The machine's memory bus in one run (see `CostModel.memoryBusNsPerPage`): when it is next free. */
export class MemoryBus {
  busyUntilNs = 0;
}

/** The kinds of mm work a thread charges to its clock (`SimThread.work`). */
export type WorkKind = 'syscallNs' | 'faultNs' | 'pageZeroNs' | 'vmaUpdateNs' | 'zapPageNs';

/** A plausible modern x86 server socket, with no memory bus; `profiles.ts` holds calibrated machines. */
export const defaultCostModel: CostModel = Object.freeze({
  effectNs: 2,
  atomicNs: 20,
  lineTransferNs: 80,
  memAccessNs: 1,
  wakeupNs: 1500,
  spawnNs: 5000,
  rcuReadNs: 1,
  syscallNs: 100,
  faultNs: 400,
  pageZeroNs: 600,
  vmaUpdateNs: 250,
  zapPageNs: 30,
  memoryBusNsPerPage: 0,
});

/**
 * One cache line, MESI-lite: the CPU that last wrote it owns it; CPUs that read it since hold a
 * shared copy. Atomics on one line serialise through `busyUntilNs`.
 */
export class CacheLine {
  /** The CPU that last wrote the line, -1 when never written. */
  ownerCpu = -1;
  /** CPUs other than the owner holding a shared copy since the last write. */
  sharers: number[] = [];
  /** The simulated time until which an atomic on this line is in flight, ns. */
  busyUntilNs = 0;
  /**
   * The run that last used the line. A lock or location may outlive a run (an mm built by one
   * run, then raced on by another): its line starts each run cold, at time 0.
   */
  epoch = 0;

  /** An atomic RMW from `cpu` starting at `startNs` in run `epoch`; returns when it completes. */
  atomic(cpu: number, startNs: number, cost: CostModel, epoch = 0): number {
    this.#enter(epoch);
    const start = startNs > this.busyUntilNs ? startNs : this.busyUntilNs;
    const end = start + cost.atomicNs + (this.#mustTransferForWrite(cpu) ? cost.lineTransferNs : 0);
    this.#own(cpu);
    this.busyUntilNs = end;
    return end;
  }

  /** A plain store from `cpu` at `startNs`; returns when it completes. */
  store(cpu: number, startNs: number, cost: CostModel, epoch = 0): number {
    this.#enter(epoch);
    const end = startNs + cost.memAccessNs + (this.#mustTransferForWrite(cpu) ? cost.lineTransferNs : 0);
    this.#own(cpu);
    return end;
  }

  /** A plain load from `cpu` at `startNs`; returns when it completes. */
  load(cpu: number, startNs: number, cost: CostModel, epoch = 0): number {
    this.#enter(epoch);
    if (this.ownerCpu === cpu || this.ownerCpu === -1 || this.sharers.includes(cpu)) return startNs + cost.memAccessNs;
    this.sharers.push(cpu);
    return startNs + cost.memAccessNs + cost.lineTransferNs;
  }

  #enter(epoch: number): void {
    if (this.epoch === epoch) return;
    this.epoch = epoch;
    this.ownerCpu = -1;
    this.sharers.length = 0;
    this.busyUntilNs = 0;
  }

  #mustTransferForWrite(cpu: number): boolean {
    if (this.ownerCpu === -1) return false;
    return this.ownerCpu !== cpu || this.sharers.length > 0;
  }

  #own(cpu: number): void {
    this.ownerCpu = cpu;
    if (this.sharers.length > 0) this.sharers.length = 0;
  }
}
