// The workload `vmalock flag` runs to exercise one subsystem variant under a policy: one process
// with the subsystem attached and the threads of its `exercise` (or the default: threads that
// call its `drive`, and its kernel thread).
import { MmStruct, type Program, type SubsystemVariant } from '@vmalock/core';
import { createPolicy } from '@vmalock/policies';
import { type SubsystemEntry, spawnExercise } from '@vmalock/subsystems';

/** Where a run of the workload leaves the subsystem and the mm it built, for the checks after the run. */
export interface WorkloadSink {
  last: ReturnType<SubsystemEntry['create']> | null;
  mm: MmStruct | null;
}

/** The PCT steps bound of flag's runs: above the longest run of every built-in subsystem's exercise (about 200 steps). */
export const PCT_STEPS = 300;

/**
 * One process with the subsystem attached, and the threads of its `exercise` (the default
 * without one: threads calling its `drive`, and its kernel thread's passes).
 */
export function workload(entry: SubsystemEntry, variant: SubsystemVariant, policy: string, sink: WorkloadSink): Program {
  return (sim) => {
    const s = entry.create(variant);
    const mm = new MmStruct(1, createPolicy(policy));
    const proc = { pid: 1, name: 'p1', mm };
    s.attach(proc);
    sink.last = s;
    sink.mm = mm;
    spawnExercise(s, proc, (name, body) => {
      sim.spawn(name, function* (thread) {
        yield* body({ thread, mm }, thread.rng);
      });
    });
  };
}
