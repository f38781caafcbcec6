// The workload a tool like `vmalock flag` runs to exercise a subsystem in one process: the
// subsystem's own `exercise` when it has one, else the default (threads calling `drive`, and its
// kernel thread); and what the subsystems' exercises share (a thread making a number of calls).
// The same for both variants: an exercise never looks at the variant.
import type { MmGen, MmTask, Prng, Subsystem, SubsystemProcess } from '@vmalock/core';

/** How an exercise spawns a thread (`Subsystem.exercise`'s second argument). */
export type ExerciseSpawn = Parameters<NonNullable<Subsystem['exercise']>>[1];

/** The default exercise's threads, and the calls each makes (the daemon: its passes). */
const DEFAULT_THREADS = 3;
const DEFAULT_CALLS = 3;

/** Spawn the thread `name` of an exercise: `calls` calls of `call`, each with the thread's task and random stream. */
export function spawnCalls(spawn: ExerciseSpawn, name: string, calls: number, call: (task: MmTask, rng: Prng) => MmGen<unknown>): void {
  spawn(name, function* (task, rng) {
    for (let i = 0; i < calls; i++) yield* call(task, rng);
  });
}

/**
 * The exercise of a subsystem without one of its own (a third party's, or a built-in one whose
 * `drive` alone finds its races): `name0`..`name2` calling `drive` 3 times each, and `named`
 * running 3 passes of its kernel thread when it has one (`daemon`).
 */
export function defaultExercise(s: Subsystem, spawn: ExerciseSpawn): void {
  for (let t = 0; t < DEFAULT_THREADS; t++) spawnCalls(spawn, `${s.name}${t}`, DEFAULT_CALLS, (task, rng) => s.drive(task, rng));
  if (s.daemon !== undefined) {
    const daemon = s.daemon.bind(s);
    spawnCalls(spawn, `${s.name}d`, DEFAULT_CALLS, daemon);
  }
}

/** Spawn the threads that exercise `s` in `proc` (attached): its own `exercise`, or the default. Context: a program's setup, before any thread runs. */
export function spawnExercise(s: Subsystem, proc: SubsystemProcess, spawn: ExerciseSpawn): void {
  if (s.exercise !== undefined) s.exercise(proc, spawn);
  else defaultExercise(s, spawn);
}
