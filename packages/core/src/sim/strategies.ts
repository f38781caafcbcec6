import { type Prng } from './prng.js';
import { RunnableSet, type Strategy } from './strategy.js';
import type { SimThread } from './thread.js';

/**
 * `timed`: discrete-event simulation. The runnable thread whose clock is earliest runs next
 * (ties: lowest id). A binary min-heap keyed by clock, kept in typed arrays (keys and ids side
 * by side) so sifting through a thousand threads touches no thread object; a thread that stays
 * earliest after its step keeps running without heap work.
 */
export class TimedStrategy implements Strategy {
  readonly name = 'timed';
  #keys = new Float64Array(64);
  #ids = new Int32Array(64);
  #size = 0;
  /** Thread objects by id (the heap holds ids), and each id's heap position (-1: not runnable). */
  readonly #threads: SimThread[] = [];
  #pos = new Int32Array(64).fill(-1);

  get runnableCount(): number {
    return this.#size;
  }

  add(thread: SimThread): void {
    if (this.#size === this.#keys.length) this.#grow();
    while (thread.id >= this.#pos.length) this.#growPos();
    this.#threads[thread.id] = thread;
    const i = this.#size++;
    this.#keys[i] = thread.clockNs;
    this.#ids[i] = thread.id;
    this.#pos[thread.id] = i;
    thread.slot = 0;
    this.#up(i);
  }

  remove(thread: SimThread): void {
    const pos = this.#pos;
    const i = pos[thread.id]!;
    const last = --this.#size;
    pos[thread.id] = -1;
    thread.slot = -1;
    if (i === last) return;
    const moved = this.#ids[last]!;
    this.#keys[i] = this.#keys[last]!;
    this.#ids[i] = moved;
    pos[moved] = i;
    this.#down(i);
    this.#up(pos[moved]);
  }

  pick(): SimThread | null {
    return this.#size === 0 ? null : this.#threads[this.#ids[0]!]!;
  }

  stepped(thread: SimThread): void {
    // The clock only grows: the thread can only move down.
    const i = this.#pos[thread.id]!;
    this.#keys[i] = thread.clockNs;
    this.#down(i);
  }

  /** Re-key a thread whose clock grew while it was in the heap. */
  delayed(thread: SimThread): void {
    this.stepped(thread);
  }

  #grow(): void {
    const keys = new Float64Array(this.#keys.length * 2);
    keys.set(this.#keys);
    this.#keys = keys;
    const ids = new Int32Array(this.#ids.length * 2);
    ids.set(this.#ids);
    this.#ids = ids;
  }

  #growPos(): void {
    const pos = new Int32Array(this.#pos.length * 2).fill(-1);
    pos.set(this.#pos);
    this.#pos = pos;
  }

  #up(i: number): void {
    const keys = this.#keys;
    const ids = this.#ids;
    const pos = this.#pos;
    const key = keys[i]!;
    const id = ids[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pk = keys[p]!;
      if (pk < key || (pk === key && ids[p]! < id)) break;
      keys[i] = pk;
      const pid = ids[p]!;
      ids[i] = pid;
      pos[pid] = i;
      i = p;
    }
    keys[i] = key;
    ids[i] = id;
    pos[id] = i;
  }

  #down(i: number): void {
    const keys = this.#keys;
    const ids = this.#ids;
    const pos = this.#pos;
    const n = this.#size;
    const key = keys[i]!;
    const id = ids[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      let c = l;
      let ck = keys[l]!;
      const r = l + 1;
      if (r < n) {
        const rk = keys[r]!;
        if (rk < ck || (rk === ck && ids[r]! < ids[l]!)) {
          c = r;
          ck = rk;
        }
      }
      if (key < ck || (key === ck && id < ids[c]!)) break;
      keys[i] = ck;
      const cid = ids[c]!;
      ids[i] = cid;
      pos[cid] = i;
      i = c;
    }
    keys[i] = key;
    ids[i] = id;
    pos[id] = i;
  }
}

/** `random`: a uniformly random runnable thread at every step. */
export class RandomStrategy implements Strategy {
  readonly name = 'random';
  readonly #set = new RunnableSet();

  constructor(readonly rng: Prng) {}

  get runnableCount(): number {
    return this.#set.size;
  }
  add(thread: SimThread): void {
    this.#set.add(thread);
  }
  remove(thread: SimThread): void {
    this.#set.remove(thread);
  }
  pick(): SimThread | null {
    const items = this.#set.items;
    if (items.length === 0) return null;
    if (items.length === 1) return items[0]!;
    return items[this.rng.index(items.length)]!;
  }
  stepped(): void {}
}

/** What PCT was run with, and the guarantee that gives. */
export interface PctReport {
  /** The bug depth d the run targets. */
  readonly depth: number;
  /** Threads n (all threads of the run). */
  readonly threads: number;
  /** Steps k the change points were drawn from. */
  readonly stepsBound: number;
  /** Steps actually run; the bound holds only while this is at most `stepsBound`. */
  readonly steps: number;
  /** The per-run probability of hitting any given depth-d bug: 1 / (n * k^(d-1)). */
  readonly bound: number;
}

/**
 * `pct`: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
 * ASPLOS 2010). Every thread gets a random distinct priority of at least d; d-1 change points
 * are drawn uniformly from steps 1..k; the highest-priority runnable thread runs; when step k_i
 * runs, its thread's priority drops to d-i. Any bug of depth d is found with probability at
 * least 1/(n·k^(d-1)) per run.
 */
export class PctStrategy implements Strategy {
  readonly name = 'pct';
  readonly #set = new RunnableSet();
  /** Change points: step numbers (1-based), index i holds k_{i+1}. */
  readonly changePoints: number[] = [];
  #threads = 0;

  constructor(
    readonly rng: Prng,
    readonly depth: number,
    readonly stepsBound: number,
  ) {
    if (!Number.isInteger(depth) || depth < 1) throw new RangeError(`pct depth must be an integer >= 1, got ${depth}`);
    if (!Number.isInteger(stepsBound) || stepsBound < 1) throw new RangeError(`pct steps bound must be an integer >= 1, got ${stepsBound}`);
    for (let i = 1; i < depth; i++) this.changePoints.push(rng.int(1, stepsBound));
  }

  get runnableCount(): number {
    return this.#set.size;
  }

  /** Assign the new thread its random initial priority the first time it becomes runnable. */
  add(thread: SimThread): void {
    if (thread.priority === 0) {
      this.#threads++;
      // A uniformly random rank above every change-point priority; ties break by id.
      thread.priority = this.depth + this.rng.int(1, 0x3fffffff);
    }
    this.#set.add(thread);
  }
  remove(thread: SimThread): void {
    this.#set.remove(thread);
  }
  pick(): SimThread | null {
    let best: SimThread | null = null;
    for (const t of this.#set.items) {
      if (best === null || t.priority > best.priority || (t.priority === best.priority && t.id < best.id)) best = t;
    }
    return best;
  }
  stepped(thread: SimThread, step: number): void {
    this.#lowerAtChangePoint(thread, step);
  }
  /** The engine also reports steps whose thread blocked or ended. */
  steppedOut(thread: SimThread, step: number): void {
    this.#lowerAtChangePoint(thread, step);
  }

  #lowerAtChangePoint(thread: SimThread, step: number): void {
    // Steps are 0-based in the engine, 1-based in the paper.
    for (let i = 0; i < this.changePoints.length; i++) {
      if (this.changePoints[i] === step + 1) thread.priority = this.depth - (i + 1);
    }
  }

  report(steps: number): PctReport {
    const n = Math.max(1, this.#threads);
    return {
      depth: this.depth,
      threads: n,
      stepsBound: this.stepsBound,
      steps,
      bound: 1 / (n * Math.pow(this.stepsBound, this.depth - 1)),
    };
  }
}

/** Thrown inside the engine when a replayed schedule names a thread that cannot run. */
export class ScheduleDivergence extends Error {}

/**
 * `replay` and `guided`: run the thread ids of a recorded schedule, step by step. Past the end
 * of the recording, a fallback chooses: the same thread as last step when it can run, else the
 * runnable thread with the lowest id (no preemption). The exhaustive search uses the fallback
 * and the record of choices.
 */
export class ScriptedStrategy implements Strategy {
  readonly #set = new RunnableSet();
  #last: SimThread | null = null;
  /** Per step past the script: the runnable ids (sorted) and the id chosen. */
  readonly choices: { readonly runnable: number[]; readonly chosen: number; readonly previous: number }[] = [];

  constructor(
    readonly name: 'replay' | 'guided',
    readonly script: readonly number[],
    /** Replay fails when the script ends before the run; guided continues non-preemptively. */
    readonly extendPastScript: boolean,
    readonly recordChoices = false,
  ) {}

  get runnableCount(): number {
    return this.#set.size;
  }
  add(thread: SimThread): void {
    this.#set.add(thread);
  }
  remove(thread: SimThread): void {
    this.#set.remove(thread);
  }
  pick(step: number): SimThread | null {
    const items = this.#set.items;
    if (items.length === 0) return null;
    if (step < this.script.length) {
      const id = this.script[step]!;
      for (const t of items) if (t.id === id) return (this.#last = t);
      throw new ScheduleDivergence(
        `the schedule runs thread T${id} at step ${step}, but it is not runnable (runnable: ${items.map((t) => `T${t.id}`).join(', ')})`,
      );
    }
    if (!this.extendPastScript) throw new ScheduleDivergence(`the schedule ends at step ${this.script.length}, but threads are still runnable`);
    const last = this.#last;
    let chosen: SimThread | null = last !== null && last.slot >= 0 ? last : null;
    if (chosen === null) for (const t of items) if (chosen === null || t.id < chosen.id) chosen = t;
    if (this.recordChoices) {
      this.choices.push({ runnable: items.map((t) => t.id).sort((a, b) => a - b), chosen: chosen!.id, previous: last?.id ?? -1 });
    }
    return (this.#last = chosen);
  }
  stepped(): void {}
}
