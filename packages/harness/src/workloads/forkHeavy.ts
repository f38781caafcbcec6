// A process that forks a lot (a shell, a pre-fork server spawning helpers): each forking thread
// calls fork() (dup_mmap: the whole parent locked for write, every private page made
// copy-on-write on both sides), the child writes a few pages of the inherited heap (copy-on-write
// faults in its own mm) and exits (exit_mmap), and the parent waits for it, then writes a heap
// page itself (breaking the COW it got). Meanwhile `faulters` threads of the parent write-fault
// their own regions (copy-on-write faults after each fork) and drop them with MADV_DONTNEED.
//
//   parent: |heap (populated) ........|  |faulter 0 ..|  |faulter 1 ..|
//   child:  a copy of all of it, COW, torn down at exit
import { MAP_POPULATE, type SimThread, dupMmap, exitMmap, join, spawn } from '@vmalock/core';
import { z } from 'zod';
import { ANON, Latch, P, RW, WORKLOAD_BASE, faulterParams, mustFault, setupMmap, spawnFaulters, spawnTask } from './common.js';
import { defineWorkload } from './workload.js';

export const forkHeavyParams = z.strictObject({
  forksPerThread: z.number().int().min(1).max(100_000).default(4).describe('fork + child exit + wait rounds per forking thread'),
  heapPages: z.number().int().min(1).max(1_048_576).default(32).describe('pages of the populated heap every fork copies (write-protecting it)'),
  childPages: z.number().int().min(0).max(1_048_576).default(4).describe('heap pages the child writes (copy-on-write) before it exits'),
  ...faulterParams('forkers'),
});

export const forkHeavy = defineWorkload({
  name: 'fork-heavy',
  summary: 'fork-heavy: threads fork, the child writes some COW pages and exits, the parent waits; faulters fault meanwhile',
  op: 'one fork: dup_mmap, the child runs and exits (exit_mmap), the parent has waited for it',
  threadsFrom: 'context',
  params: forkHeavyParams,
  spawn(ctx, p) {
    const { mm, counter } = ctx;
    const heapBytes = p.heapPages * P;
    const heap = setupMmap('fork-heavy', mm, 'the heap', WORKLOAD_BASE, heapBytes, RW, ANON | MAP_POPULATE);
    const latch = new Latch(ctx.threads);
    // Child pids: numbered per run, above the parent's (a seed gives the same pids every run).
    let forks = 0;
    const pidBase = (mm.pid + 1) * 1_000_000;
    for (let i = 0; i < ctx.threads; i++) {
      spawnTask(ctx, `forker${i}`, function* (task, rng) {
        for (let k = 0; k < p.forksPerThread; k++) {
          const childPid = pidBase + forks++;
          const child = yield* dupMmap(task, childPid, mm.policy);
          const childPicks = Array.from({ length: p.childPages }, () => heap + rng.int(0, p.heapPages - 1) * P);
          const childThread = yield spawn(`${ctx.prefix !== undefined ? `${ctx.prefix}:` : ''}child${childPid}`, function* (thread) {
            const ctask = { thread, mm: child };
            for (const addr of childPicks) yield* mustFault('fork-heavy (child)', ctask, addr, 'write');
            counter.note('childCowFaults', child.faultCounts.cow);
            yield* exitMmap(ctask);
          });
          yield join(childThread as SimThread);
          yield* mustFault('fork-heavy', task, heap + rng.int(0, p.heapPages - 1) * P, 'write');
          counter.count(task.thread);
        }
        latch.done();
      });
    }
    spawnFaulters(ctx, 'fork-heavy', p, WORKLOAD_BASE + heapBytes + P, latch);
  },
});
