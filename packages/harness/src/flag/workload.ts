// The workload `vmalock flag` runs to exercise one subsystem variant under a policy: one process
// with the subsystem attached and the threads that drive it.
import { MmStruct, type Program, type SubsystemVariant } from '@vmalock/core';
import { createPolicy } from '@vmalock/policies';
import type { SubsystemEntry } from '@vmalock/subsystems';

/** Where a run of the workload leaves the subsystem and the mm it built, for the checks after the run. */
export interface WorkloadSink {
  last: ReturnType<SubsystemEntry['create']> | null;
  mm: MmStruct | null;
}

/** Threads and calls of the workload that drives a subsystem. */
const THREADS = 3;
const CALLS = 3;
export const PCT_STEPS = 300;

/** One process with `subsystem` attached, THREADS threads each driving it CALLS times. */
export function workload(entry: SubsystemEntry, variant: SubsystemVariant, policy: string, sink: WorkloadSink): Program {
  return (sim) => {
    const s = entry.create(variant);
    const mm = new MmStruct(1, createPolicy(policy));
    s.attach({ pid: 1, name: 'p1', mm });
    sink.last = s;
    sink.mm = mm;
    for (let t = 0; t < THREADS; t++)
      sim.spawn(`${entry.name}${t}`, function* (thread) {
        for (let i = 0; i < CALLS; i++) yield* s.drive({ thread, mm }, thread.rng);
      });
    // A subsystem with a kernel thread (khugepaged) gets it, running its passes meanwhile.
    if (s.daemon !== undefined) {
      const daemon = s.daemon.bind(s);
      sim.spawn(`${entry.name}d`, function* (thread) {
        for (let i = 0; i < CALLS; i++) yield* daemon({ thread, mm }, thread.rng);
      });
    }
  };
}
