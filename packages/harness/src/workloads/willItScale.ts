// will-it-scale's page_fault1 and mmap1 (tests/page_fault1.c, tests/mmap1.c), threads mode: every
// thread of one process loops on its own anonymous region of MEMSIZE (128 MiB there; a few pages
// by default here). page_fault1 maps it, writes one byte per page and unmaps it, counting one
// iteration per page; mmap1 maps and unmaps it, counting one iteration per pair. Neither region
// has a fixed address: get_unmapped_area places it, as in the C programs.
import { sysMmap, sysMunmap } from '@vmalock/core';
import { z } from 'zod';
import { ANON, P, RW, mustFault, mustOk, spawnTask } from './common.js';
import { defineWorkload } from './workload.js';

export const pageFault1Params = z.strictObject({
  regionPages: z.number().int().min(1).max(32_768).default(16).describe('pages of the region each iteration maps (will-it-scale: 32768, 128 MiB)'),
  iterations: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(4)
    .describe('mmap, touch every page, munmap rounds per thread (will-it-scale loops until stopped)'),
});

export const pageFault1 = defineWorkload({
  name: 'page_fault1',
  summary: 'will-it-scale page_fault1 (threads): each thread mmaps an anonymous region, writes one byte per page, munmaps it, repeats',
  op: 'one write fault (will-it-scale counts one iteration per page touched)',
  threadsFrom: 'context',
  params: pageFault1Params,
  spawn(ctx, p) {
    const len = p.regionPages * P;
    for (let i = 0; i < ctx.threads; i++) {
      spawnTask(ctx, `page_fault1-${i}`, function* (task) {
        for (let it = 0; it < p.iterations; it++) {
          const c = mustOk('page_fault1', task, 'mmap', yield* sysMmap(task, 0, len, RW, ANON, -1, 0));
          for (let n = 0; n < p.regionPages; n++) {
            yield* mustFault('page_fault1', task, c + n * P, 'write');
            ctx.counter.count(task.thread);
          }
          mustOk('page_fault1', task, 'munmap', yield* sysMunmap(task, c, len));
        }
      });
    }
  },
});

export const mmap1Params = z.strictObject({
  regionPages: z.number().int().min(1).max(32_768).default(16).describe('pages of the region each iteration maps and unmaps (will-it-scale: 32768, 128 MiB)'),
  iterations: z.number().int().min(1).max(1_000_000).default(32).describe('mmap+munmap pairs per thread (will-it-scale loops until stopped)'),
});

export const mmap1 = defineWorkload({
  name: 'mmap1',
  summary: 'will-it-scale mmap1 (threads): each thread mmaps an anonymous region and munmaps it, repeats',
  op: 'one mmap+munmap pair',
  threadsFrom: 'context',
  params: mmap1Params,
  spawn(ctx, p) {
    const len = p.regionPages * P;
    for (let i = 0; i < ctx.threads; i++) {
      spawnTask(ctx, `mmap1-${i}`, function* (task) {
        for (let it = 0; it < p.iterations; it++) {
          const c = mustOk('mmap1', task, 'mmap', yield* sysMmap(task, 0, len, RW, ANON, -1, 0));
          mustOk('mmap1', task, 'munmap', yield* sysMunmap(task, c, len));
          ctx.counter.count(task.thread);
        }
      });
    }
  },
});
