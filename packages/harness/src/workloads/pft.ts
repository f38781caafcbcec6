// pft (Gorman's page-fault test, as bench:policies runs it): `threads` threads each write-fault
// their own pages of one large private anonymous mapping, while a mapper thread keeps mapping and
// unmapping a few pages in a hole fenced by two one-page VMAs, so it never touches the big
// mapping or its neighbours. The disturber is what makes mmap_sem's writers hurt the faults.
//
//   WORKLOAD_BASE                         fenceLow   hole             fenceHigh
//   |TTTTTTTT...TTTTTTTT|  ...  (>= 1 GiB)  |F| |MMMMMMMMMMMMMMMM| |F|
//    thread i: pages [i*n, (i+1)*n)              mapper: mmap/munmap, MAP_FIXED
import { MAP_FIXED, sysMmap, sysMunmap } from '@vmalock/core';
import { z } from 'zod';
import { ANON, Latch, P, RW, WORKLOAD_BASE, mustFault, mustOk, roundUp, setupMmap, spawnTask } from './common.js';
import { defineWorkload } from './workload.js';

const GIB = 1024 * 1024 * 1024;

export const pftParams = z.strictObject({
  pagesPerThread: z
    .number()
    .int()
    .min(1)
    .max(1_048_576)
    .default(256)
    .describe(
      'pages each thread write-faults (4 KiB each; THP stays off: the mapping is not madvised); threads within one 512-page PTE table share its lock, as in the kernel (bench:policies: 256)',
    ),
  mapper: z.boolean().default(true).describe('run the disturbing thread that maps and unmaps in a fenced hole while the faulters run'),
  mapperPages: z.number().int().min(1).max(4096).default(16).describe('pages the mapper maps and unmaps each cycle'),
  mapperCyclesMax: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(1024)
    .describe("bound on the mapper's mmap+munmap cycles (it stops earlier when the faulters are done)"),
});

export const pft = defineWorkload({
  name: 'pft',
  summary: "page-fault scaling (Gorman's pft): threads write-fault their slices of one shared anonymous mapping, beside an mmap/munmap disturber",
  op: 'one write fault of a new page by a faulting thread',
  threadsFrom: 'context',
  params: pftParams,
  spawn(ctx, p) {
    const { mm, threads, counter } = ctx;
    const len = threads * p.pagesPerThread * P;
    setupMmap('pft', mm, 'the shared mapping', WORKLOAD_BASE, len, RW, ANON);
    const fenceLow = roundUp(WORKLOAD_BASE + len, GIB) + GIB;
    const hole = fenceLow + 2 * P;
    const fenceHigh = hole + (p.mapperPages + 1) * P;
    if (p.mapper) {
      setupMmap('pft', mm, 'the low fence', fenceLow, P, RW, ANON);
      setupMmap('pft', mm, 'the high fence', fenceHigh, P, RW, ANON);
    }
    const latch = new Latch(threads);
    for (let i = 0; i < threads; i++) {
      const first = WORKLOAD_BASE + i * p.pagesPerThread * P;
      spawnTask(ctx, `pft${i}`, function* (task) {
        for (let n = 0; n < p.pagesPerThread; n++) {
          yield* mustFault('pft', task, first + n * P, 'write');
          counter.count(task.thread);
        }
        latch.done();
      });
    }
    if (!p.mapper) return;
    const bytes = p.mapperPages * P;
    spawnTask(ctx, 'pft-mapper', function* (task) {
      for (let c = 0; c < p.mapperCyclesMax && latch.running; c++) {
        mustOk('pft', task, 'mapper mmap', yield* sysMmap(task, hole, bytes, RW, ANON | MAP_FIXED, -1, 0));
        mustOk('pft', task, 'mapper munmap', yield* sysMunmap(task, hole, bytes));
        counter.note('mapperCycles');
      }
    });
  },
});
