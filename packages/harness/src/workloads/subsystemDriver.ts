// The user side of the process's subsystems: driver threads call `drive` of each attached
// subsystem in turn (an ioctl, a syscall, a fault on its mapping — what its `drive` does), each
// starting at a different one so the subsystems see concurrent callers, and one thread per
// subsystem with a kernel thread (khugepaged's scan) runs its `daemon` passes beside them.
import type { Subsystem } from '@vmalock/core';
import { z } from 'zod';
import { Latch, spawnTask } from './common.js';
import { type WorkloadContext, WorkloadSetupError, defineWorkload } from './workload.js';

export const subsystemDriverParams = z.strictObject({
  callsPerThread: z.number().int().min(1).max(1_000_000).default(8).describe('drive calls per driver thread, round-robin over the subsystems'),
  daemonPasses: z
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(4)
    .describe("passes of each subsystem's kernel thread (daemon), for those that have one (they stop earlier when the drivers are done)"),
  subsystems: z.array(z.string().min(1)).default([]).describe('the attached subsystems to drive, by name; empty: every attached one'),
});

/** The attached subsystems to drive: all, or those named (each must be attached). */
function driven(ctx: WorkloadContext, names: readonly string[]): Subsystem[] {
  const attached = ctx.subsystems;
  if (attached.length === 0)
    throw new WorkloadSetupError(
      `subsystem-driver: no subsystem is attached to process ${ctx.prefix ?? `pid ${ctx.mm.pid}`}: attach the subsystems it should drive`,
    );
  if (names.length === 0) return [...attached];
  return names.map((n) => {
    const s = attached.find((x) => x.name === n);
    if (s === undefined)
      throw new WorkloadSetupError(`subsystem-driver: subsystem '${n}' is not attached (attached: ${attached.map((x) => x.name).join(', ')})`);
    return s;
  });
}

export const subsystemDriver = defineWorkload({
  name: 'subsystem-driver',
  summary: "drives the process's attached subsystems: threads call each one's drive in turn, and their kernel threads run beside them",
  op: "one call of a subsystem's drive",
  threadsFrom: 'context',
  params: subsystemDriverParams,
  spawn(ctx, p) {
    const subs = driven(ctx, p.subsystems);
    const latch = new Latch(ctx.threads);
    for (let i = 0; i < ctx.threads; i++) {
      spawnTask(ctx, `driver${i}`, function* (task, rng) {
        for (let c = 0; c < p.callsPerThread; c++) {
          const s = subs[(i + c) % subs.length]!;
          yield* s.drive(task, rng);
          ctx.counter.count(task.thread);
        }
        latch.done();
      });
    }
    for (const s of subs) {
      if (s.daemon === undefined) continue;
      const daemon = s.daemon.bind(s);
      spawnTask(ctx, `${s.name}-daemon`, function* (task, rng) {
        for (let k = 0; k < p.daemonPasses && latch.running; k++) {
          yield* daemon(task, rng);
          ctx.counter.note('daemonPasses');
        }
      });
    }
  },
});
