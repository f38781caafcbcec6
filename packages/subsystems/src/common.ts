// What the mock subsystems share: a base for those with per-mm state (their identity, the map
// from an attached mm to its state, attached once and looked up by mm, and the count of each hook
// they ran), and opening a file in a process. Nothing here yields: a subsystem built on it has
// exactly the schedule it had when it kept these itself.
import type { MmFile, MmGen, MmStruct, MmTask, Prng, SharedLocation, Subsystem, SubsystemKind, SubsystemProcess, SubsystemVariant } from '@vmalock/core';

/**
 * A subsystem whose per-mm `State` is built by `attachState` and found by `stateOf`, and whose
 * hooks of type `Hook` are counted with `count` (the counts start as the constructor's record,
 * which fixes their names and order in `hookCounts`).
 */
export abstract class SubsystemBase<State, Hook extends string> implements Subsystem {
  abstract readonly name: string;
  abstract readonly kind: SubsystemKind;
  abstract readonly variant: SubsystemVariant;
  abstract readonly summary: string;
  readonly #states = new Map<MmStruct, State>();
  readonly #counts: Record<Hook, number>;

  constructor(counts: Record<Hook, number>) {
    this.#counts = counts;
  }

  get hookCounts(): Readonly<Record<string, number>> {
    return this.#counts;
  }

  /** Build the process's state (`attachState`) and keep it for its mm; an mm is attached once. */
  attach(proc: SubsystemProcess): void {
    if (this.#states.has(proc.mm)) throw new Error(`${this.name}: mm of pid ${proc.pid} attached twice`);
    this.#states.set(proc.mm, this.attachState(proc));
  }

  /** The state of `mm` (attached). */
  stateOf(mm: MmStruct): State {
    const s = this.#states.get(mm);
    if (s === undefined) throw new Error(`${this.name}: mm of pid ${mm.pid} is not attached`);
    return s;
  }

  /** The states of every attached mm, in attach order. */
  protected states(): IterableIterator<State> {
    return this.#states.values();
  }

  /** One more run of `hook` (`by` more, for a hook that ran on several pages at once). */
  protected count(hook: Hook, by = 1): void {
    this.#counts[hook] += by;
  }

  /** Wire the subsystem into the process (files, hooks, mappings) and return its state. Context: before any thread of the process runs. */
  protected abstract attachState(proc: SubsystemProcess): State;

  abstract drive(task: MmTask, rng: Prng): MmGen<void>;
  abstract checkInvariants(): void;
  abstract locations(): readonly SharedLocation[];
}

/** `get_unused_fd_flags()`: the lowest fd from 3 up that the process has not opened. */
export function firstFreeFd(mm: MmStruct): number {
  let fd = 3;
  while (mm.files.has(fd)) fd++;
  return fd;
}

/** `fd_install(get_unused_fd_flags(), file)`: open `file` in the process at its lowest free fd, which it returns. */
export function fdInstall(mm: MmStruct, file: MmFile): number {
  const fd = firstFreeFd(mm);
  mm.files.set(fd, file);
  return fd;
}
