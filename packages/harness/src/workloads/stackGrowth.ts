// Stacks growing down (expand_downwards, rule R9): each thread has a MAP_GROWSDOWN stack of a few
// pages and pushes deeper, one page at a time, by touching the page just below its VMA: the fault
// finds the stack above the address and grows it, under the fault's lock plus what the policy's
// `beginStackGrowth` takes (global-rwsem: page_table_lock, since 4128997b5f0e). A mapper thread
// maps and unmaps below the lowest stack, a guard gap away from where it can reach, so growth
// and mmap run side by side without ever meeting.
//
//   mapper |MMMM|  >= stack_guard_gap  |   ...grows... SSSS| |  ...grows... SSSS| ...
//                                       slot 0        top0   slot 1        top1
import { MAP_FIXED, MAP_GROWSDOWN, MAP_STACK, STACK_GUARD_GAP, VM_GROWSDOWN, hex, spend, sysMmap, sysMunmap } from '@vmalock/core';
import { z } from 'zod';
import { ANON, Latch, P, RW, WORKLOAD_BASE, mustFault, mustOk, setupMmap, spawnTask } from './common.js';
import { defineWorkload } from './workload.js';

export const stackGrowthParams = z.strictObject({
  depthPages: z.number().int().min(1).max(65_536).default(32).describe('pages each stack grows by, one growth fault per page'),
  initialPages: z.number().int().min(1).max(65_536).default(1).describe('pages of each stack mapping before it grows'),
  frameNs: z.number().int().min(0).max(1_000_000_000).default(200).describe("simulated CPU time between two growth faults (a call frame's work), ns"),
  mapper: z.boolean().default(true).describe('run a thread mapping and unmapping below the stacks while they grow'),
  mapperPages: z.number().int().min(1).max(4096).default(8).describe('pages the mapper maps and unmaps each cycle'),
  mapperCyclesMax: z.number().int().min(1).max(1_000_000).default(128).describe("bound on the mapper's cycles (it stops earlier when the stacks are done)"),
});

export const stackGrowth = defineWorkload({
  name: 'stack-growth',
  summary: 'stacks growing down: threads fault just below their MAP_GROWSDOWN stack VMA, which grows, beside an mmap/munmap thread',
  op: 'one fault that grew a stack by a page',
  threadsFrom: 'context',
  params: stackGrowthParams,
  spawn(ctx, p) {
    const { mm, counter } = ctx;
    const mapperBytes = p.mapperPages * P;
    const mapperAt = WORKLOAD_BASE;
    // A slot per stack: its deepest reach stays a guard gap and a page above the slot's bottom.
    const slot = (p.initialPages + p.depthPages + 1) * P + STACK_GUARD_GAP;
    const first = mapperAt + mapperBytes;
    const latch = new Latch(ctx.threads);
    for (let i = 0; i < ctx.threads; i++) {
      const top = first + (i + 1) * slot;
      const start = top - p.initialPages * P;
      setupMmap('stack-growth', mm, `stack ${i}`, start, p.initialPages * P, RW, ANON | MAP_GROWSDOWN | MAP_STACK);
      spawnTask(ctx, `stack${i}`, function* (task) {
        for (let d = 1; d <= p.depthPages; d++) {
          const addr = start - d * P;
          yield* mustFault('stack-growth', task, addr, 'write');
          const vma = mm.vmaLookup(addr);
          if (vma === null || (vma.flags & VM_GROWSDOWN) === 0) throw new Error(`stack-growth: ${task.thread.label}: the stack did not grow over ${hex(addr)}`);
          counter.count(task.thread);
          if (p.frameNs > 0) yield spend(p.frameNs);
        }
        latch.done();
      });
    }
    if (!p.mapper) return;
    spawnTask(ctx, 'stack-mapper', function* (task) {
      for (let c = 0; c < p.mapperCyclesMax && latch.running; c++) {
        mustOk('stack-growth', task, 'mapper mmap', yield* sysMmap(task, mapperAt, mapperBytes, RW, ANON | MAP_FIXED, -1, 0));
        mustOk('stack-growth', task, 'mapper munmap', yield* sysMunmap(task, mapperAt, mapperBytes));
        counter.note('mapperCycles');
      }
    });
  },
});
