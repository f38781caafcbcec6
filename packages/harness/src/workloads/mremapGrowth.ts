// realloc() of a large buffer (glibc's mremap_chunk): each growing thread keeps a buffer it grows
// page by page with mremap(MREMAP_MAYMOVE) and fills the new pages; the kernel grows it in place
// while the space after it is free and moves it otherwise (rule R5: two ranges locked). Other
// allocations land right after the buffer now and then (a one-page mapping placed there), which
// forces the next growth to move. At its largest the buffer is freed (munmap) and a new one
// starts. Meanwhile `faulters` threads write-fault their own regions elsewhere (and drop them
// with madvise(MADV_DONTNEED) to fault them again), the bystanders a moving mremap must not stall.
//
//   |faulter 0 ....|faulter 1 ....|   ...   |buf-->|n|   |buf------>|   (top-down area)
import { MAP_FIXED_NOREPLACE, MREMAP_MAYMOVE, hex, sysMmap, sysMremap, sysMunmap } from '@vmalock/core';
import { z } from 'zod';
import { ANON, Latch, P, RW, WORKLOAD_BASE, faulterParams, mustFault, mustOk, spawnFaulters, spawnTask } from './common.js';
import { WorkloadParamsError, defineWorkload } from './workload.js';

export const mremapGrowthParams = z.strictObject({
  startPages: z.number().int().min(1).max(65_536).default(1).describe('pages of a new buffer'),
  growPages: z.number().int().min(1).max(65_536).default(1).describe('pages each growth adds (every new page is written)'),
  maxPages: z.number().int().min(2).max(1_048_576).default(24).describe('size at which a buffer is freed and a new one started'),
  buffersPerThread: z.number().int().min(1).max(100_000).default(2).describe('buffers each growing thread grows to maxPages, one after the other'),
  neighbourChance: z
    .number()
    .min(0)
    .max(1)
    .default(0.25)
    .describe('chance, after each growth, that another allocation lands right after the buffer (forcing the next growth to move)'),
  ...faulterParams('growers'),
});

export const mremapGrowth = defineWorkload({
  name: 'mremap-growth',
  summary: 'realloc-like growth: threads grow buffers with mremap(MREMAP_MAYMOVE), moving them when blocked, while faulters fault elsewhere',
  op: 'one mremap growth of a buffer (its new pages written)',
  threadsFrom: 'context',
  params: mremapGrowthParams,
  check(p) {
    if (p.startPages >= p.maxPages)
      throw new WorkloadParamsError(`workload 'mremap-growth': bad params: startPages (${p.startPages}) must be below maxPages (${p.maxPages})`);
  },
  spawn(ctx, p) {
    const { counter } = ctx;
    const latch = new Latch(ctx.threads);
    for (let i = 0; i < ctx.threads; i++) {
      spawnTask(ctx, `grower${i}`, function* (task, rng) {
        for (let b = 0; b < p.buffersPerThread; b++) {
          let pages = p.startPages;
          let buf = mustOk('mremap-growth', task, 'mmap(buffer)', yield* sysMmap(task, 0, pages * P, RW, ANON, -1, 0));
          for (let n = 0; n < pages; n++) yield* mustFault('mremap-growth', task, buf + n * P, 'write');
          const neighbours: number[] = [];
          while (pages < p.maxPages) {
            const newPages = Math.min(p.maxPages, pages + p.growPages);
            const r = mustOk(
              'mremap-growth',
              task,
              `mremap(${hex(buf)}, ${pages} -> ${newPages} pages, MAYMOVE)`,
              yield* sysMremap(task, buf, pages * P, newPages * P, MREMAP_MAYMOVE, 0),
            );
            if (r !== buf) counter.note('moves');
            buf = r;
            for (let n = pages; n < newPages; n++) yield* mustFault('mremap-growth', task, buf + n * P, 'write');
            pages = newPages;
            counter.count(task.thread);
            if (pages < p.maxPages && rng.chance(p.neighbourChance)) {
              // Another allocation lands right after the buffer (taken already: no neighbour then).
              const at = buf + pages * P;
              const n = yield* sysMmap(task, at, P, RW, ANON | MAP_FIXED_NOREPLACE, -1, 0);
              if (n === at) neighbours.push(n);
            }
          }
          mustOk('mremap-growth', task, 'munmap(buffer)', yield* sysMunmap(task, buf, pages * P));
          for (const n of neighbours) mustOk('mremap-growth', task, 'munmap(neighbour)', yield* sysMunmap(task, n, P));
        }
        latch.done();
      });
    }
    spawnFaulters(ctx, 'mremap-growth', p, WORKLOAD_BASE, latch);
  },
});
