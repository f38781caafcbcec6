// ebizzy (Val Henson's web-server-like allocator benchmark) with its always-mmap allocator (`-m`):
// the process holds `chunks` chunks of records, populated before the threads start; each thread
// loops: pick a random chunk, allocate a copy buffer of a random number of records (mmap), copy
// the records in (write faults on every page of the copy), sort and binary-search them (CPU time
// only: the chunk's pages are present, reading them enters no kernel), free the copy (munmap).
// ebizzy reports records read per second: one per loop, the op here.
import { MAP_POPULATE, spend, sysMmap, sysMunmap } from '@vmalock/core';
import { z } from 'zod';
import { ANON, P, RW, mustFault, mustOk, setupMmap, spawnTask } from './common.js';
import { defineWorkload } from './workload.js';

export const ebizzyParams = z.strictObject({
  chunks: z.number().int().min(1).max(4096).default(8).describe('chunks of records the process holds (ebizzy -n; populated before the threads start)'),
  chunkPages: z.number().int().min(1).max(32_768).default(8).describe('pages per chunk, the largest copy (ebizzy -s; its default 512 KiB is 128 pages)'),
  randomSize: z.boolean().default(true).describe('copy a random number of pages (1..chunkPages) each loop, as ebizzy -R; false: always chunkPages'),
  iterations: z.number().int().min(1).max(1_000_000).default(8).describe('loops per thread (ebizzy runs for -S seconds)'),
  searchNsPerPage: z.number().int().min(0).max(1_000_000_000).default(1000).describe('simulated CPU time to copy, sort and search one page of records, ns'),
});

export const ebizzy = defineWorkload({
  name: 'ebizzy',
  summary: 'ebizzy -m (web-server-like): threads mmap a copy buffer of random size, fill it from a shared chunk, search it, munmap it',
  op: 'one loop: mmap a copy buffer, write-fault its pages, search, munmap',
  threadsFrom: 'context',
  params: ebizzyParams,
  spawn(ctx, p) {
    for (let c = 0; c < p.chunks; c++) setupMmap('ebizzy', ctx.mm, `chunk ${c}`, 0, p.chunkPages * P, RW, ANON | MAP_POPULATE);
    for (let i = 0; i < ctx.threads; i++) {
      spawnTask(ctx, `ebizzy${i}`, function* (task, rng) {
        for (let it = 0; it < p.iterations; it++) {
          const pages = p.randomSize ? rng.int(1, p.chunkPages) : p.chunkPages;
          const copy = mustOk('ebizzy', task, 'mmap', yield* sysMmap(task, 0, pages * P, RW, ANON, -1, 0));
          for (let n = 0; n < pages; n++) yield* mustFault('ebizzy', task, copy + n * P, 'write');
          if (p.searchNsPerPage > 0) yield spend(p.searchNsPerPage * pages);
          mustOk('ebizzy', task, 'munmap', yield* sysMunmap(task, copy, pages * P));
          ctx.counter.count(task.thread);
        }
      });
    }
  },
});
