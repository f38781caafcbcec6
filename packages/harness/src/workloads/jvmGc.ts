// A managed runtime's heap under an mprotect-based incremental collector (the virtual dirty bits
// of the Boehm-Demers-Weiser collector's MPROTECT_VDB, also used by JVM-like runtimes for card
// marking): the mutators allocate by writing heap pages; each GC cycle write-protects every heap
// region (PROT_READ), so a mutator's next write traps (SEGV_ACCERR): its SIGSEGV handler marks
// the page dirty and unprotects that page alone (mprotect RW, splitting the region's VMA), then
// the write is retried. At the end of the cycle the collector frees some regions
// (madvise(MADV_DONTNEED)) and unprotects the whole heap (one mprotect, merging it back).
//
//   heap: |R0------|R1------|R2------|...   one VMA, split page by page while protected
import { MADV_DONTNEED, PROT_READ, handleMmFault, hex, spend, sysMadvise, sysMprotect } from '@vmalock/core';
import { z } from 'zod';
import { ANON, Latch, P, RW, WORKLOAD_BASE, mustOk, setupMmap, spawnTask } from './common.js';
import { defineWorkload } from './workload.js';

export const jvmGcParams = z.strictObject({
  heapRegions: z.number().int().min(1).max(65_536).default(8).describe('heap regions (the collector protects and frees region by region)'),
  regionPages: z.number().int().min(1).max(65_536).default(16).describe('pages per heap region'),
  allocsPerThread: z.number().int().min(1).max(1_000_000).default(32).describe('heap pages each mutator writes (allocations), at random places of the heap'),
  mutatorNs: z.number().int().min(0).max(1_000_000_000).default(500).describe("simulated CPU time of the mutator's own work between two allocations, ns"),
  gcCyclesMax: z.number().int().min(0).max(1_000_000).default(16).describe('bound on GC cycles (the collector stops earlier when the mutators are done)'),
  markNs: z.number().int().min(0).max(1_000_000_000).default(2000).describe('simulated CPU time of marking in one cycle, while the heap is protected, ns'),
  freeChance: z.number().min(0).max(1).default(0.25).describe('chance that a cycle frees a region (madvise(MADV_DONTNEED))'),
  trapRetriesMax: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(8)
    .describe('write-protection traps one allocation may take before it gives up (then counted as given up, not as an op)'),
});

export const jvmGc = defineWorkload({
  name: 'jvm-gc',
  summary:
    'a managed heap under an mprotect-based incremental GC: mutators write-fault the heap, a GC thread write-protects regions, mutators unprotect the pages they trap on, the GC frees regions with madvise',
  op: 'one heap page written by a mutator (an allocation)',
  threadsFrom: 'context',
  params: jvmGcParams,
  spawn(ctx, p) {
    const { mm, counter } = ctx;
    const regionBytes = p.regionPages * P;
    const heapBytes = p.heapRegions * regionBytes;
    const heap = setupMmap('jvm-gc', mm, 'the heap', WORKLOAD_BASE, heapBytes, RW, ANON);
    const latch = new Latch(ctx.threads);
    for (let i = 0; i < ctx.threads; i++) {
      spawnTask(ctx, `mutator${i}`, function* (task, rng) {
        for (let a = 0; a < p.allocsPerThread; a++) {
          const addr = heap + rng.int(0, p.heapRegions * p.regionPages - 1) * P;
          let done = false;
          for (let attempt = 0; attempt <= p.trapRetriesMax && !done; attempt++) {
            const r = yield* handleMmFault(task, addr, 'write');
            if (r === 'ok') done = true;
            else if (r === 'SEGV_ACCERR') {
              // The SIGSEGV handler: mark the card dirty, unprotect the page, return to retry.
              counter.note('traps');
              mustOk('jvm-gc', task, `mprotect(${hex(addr)}, RW) in the trap handler`, yield* sysMprotect(task, addr, P, RW));
            } else throw new Error(`jvm-gc: ${task.thread.label}: write to the heap at ${hex(addr)} got ${r}`);
          }
          if (done) counter.count(task.thread);
          else counter.note('trapsGaveUp');
          if (p.mutatorNs > 0) yield spend(p.mutatorNs);
        }
        latch.done();
      });
    }
    spawnTask(ctx, 'gc', function* (task, rng) {
      for (let c = 0; c < p.gcCyclesMax && latch.running; c++) {
        for (let r = 0; r < p.heapRegions; r++) {
          mustOk('jvm-gc', task, 'mprotect(region, PROT_READ)', yield* sysMprotect(task, heap + r * regionBytes, regionBytes, PROT_READ));
          counter.note('gcMprotects');
        }
        if (p.markNs > 0) yield spend(p.markNs);
        for (let r = 0; r < p.heapRegions; r++) {
          if (!rng.chance(p.freeChance)) continue;
          mustOk('jvm-gc', task, 'madvise(region, MADV_DONTNEED)', yield* sysMadvise(task, heap + r * regionBytes, regionBytes, MADV_DONTNEED));
          counter.note('regionsFreed');
        }
        mustOk('jvm-gc', task, 'mprotect(heap, RW)', yield* sysMprotect(task, heap, heapBytes, RW));
        counter.note('gcMprotects');
        counter.note('gcCycles');
      }
    });
  },
});
