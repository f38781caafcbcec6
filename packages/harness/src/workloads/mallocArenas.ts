// glibc malloc's per-thread arenas (malloc/arena.c): each thread's arena is a heap reserved
// PROT_NONE (new_heap: mmap twice HEAP_MAX_SIZE with MAP_NORESERVE, munmap the misaligned head and
// tail so the heap is aligned to its size), committed by mprotect(PROT_READ|PROT_WRITE) as the
// top chunk grows past what was ever committed (grow_heap, `mprotect_size`), and trimmed when the
// top chunk exceeds the trim threshold (heap_trim -> shrink_heap): by madvise(MADV_DONTNEED), or,
// when the kernel does not overcommit (check_may_shrink_heap), by mapping PROT_NONE over the top
// again (which makes the next growth mprotect again). Allocation is a bump of the top chunk,
// freeing pops the newest chunks: the arena's break moves up and down like a stack.
//
//   arena i: |RW committed ...|top pad|PROT_NONE reserve .........| (aligned to its size)
import { MADV_DONTNEED, MAP_FIXED, MAP_NORESERVE, type MmGen, PROT_NONE, hex, spend, sysMadvise, sysMmap, sysMprotect, sysMunmap } from '@vmalock/core';
import { z } from 'zod';
import { ANON, P, RW, mustFault, mustOk, roundUp, spawnTask } from './common.js';
import { WorkloadParamsError, defineWorkload } from './workload.js';

export const mallocArenasParams = z.strictObject({
  arenaPages: z
    .number()
    .int()
    .min(2)
    .max(16_384)
    .refine((n) => (n & (n - 1)) === 0, 'must be a power of two (an arena is aligned to its size)')
    .default(64)
    .describe("pages of each thread's arena reservation, a power of two (glibc HEAP_MAX_SIZE: 64 MiB, 16384 pages)"),
  topPadPages: z.number().int().min(0).max(16_384).default(4).describe('pages committed beyond the top chunk when the arena grows (M_TOP_PAD; glibc: 128 KiB)'),
  trimThresholdPages: z.number().int().min(1).max(16_384).default(8).describe('free pages at the top that trigger a trim (M_TRIM_THRESHOLD; glibc: 128 KiB)'),
  mallocsPerThread: z.number().int().min(1).max(1_000_000).default(32).describe('allocations per thread'),
  chunkPagesMax: z.number().int().min(1).max(16_384).default(2).describe('largest allocation, pages (each is 1..chunkPagesMax pages, every page written)'),
  freeChance: z
    .number()
    .min(0)
    .max(1)
    .default(0.3)
    .describe('chance, after each malloc, that the thread frees its newest allocations (a random number of them, newest first: a request done)'),
  shrink: z
    .enum(['madvise', 'prot-none'])
    .default('madvise')
    .describe(
      "how a trim gives pages back: madvise(MADV_DONTNEED) (glibc's default), or mmap(PROT_NONE, MAP_FIXED) over them (glibc when the kernel does not overcommit)",
    ),
  userNs: z.number().int().min(0).max(1_000_000_000).default(200).describe('simulated CPU time of the program between two mallocs, ns'),
});

export const mallocArenas = defineWorkload({
  name: 'malloc-arenas',
  summary: 'glibc per-thread malloc arenas: reserve PROT_NONE, commit with mprotect as the top grows, trim with madvise (or PROT_NONE)',
  op: 'one malloc (its pages written)',
  threadsFrom: 'context',
  params: mallocArenasParams,
  check(p) {
    if (p.chunkPagesMax > p.arenaPages)
      throw new WorkloadParamsError(`workload 'malloc-arenas': bad params: chunkPagesMax (${p.chunkPagesMax}) must not exceed arenaPages (${p.arenaPages})`);
  },
  spawn(ctx, p) {
    const arenaBytes = p.arenaPages * P;
    for (let i = 0; i < ctx.threads; i++) {
      spawnTask(ctx, `arena${i}`, function* (task, rng) {
        const call = (what: string, r: number): number => mustOk('malloc-arenas', task, what, r);
        // new_heap(): reserve twice the size, keep the aligned half.
        const p1 = call('mmap(reserve)', yield* sysMmap(task, 0, 2 * arenaBytes, PROT_NONE, ANON | MAP_NORESERVE, -1, 0));
        const heap = roundUp(p1, arenaBytes);
        if (heap > p1) call('munmap(head)', yield* sysMunmap(task, p1, heap - p1));
        if (heap + arenaBytes < p1 + 2 * arenaBytes) call('munmap(tail)', yield* sysMunmap(task, heap + arenaBytes, p1 + 2 * arenaBytes - heap - arenaBytes));
        const initial = Math.min(arenaBytes, (1 + p.topPadPages) * P);
        call('mprotect(initial)', yield* sysMprotect(task, heap, initial, RW));
        let size = initial;
        let mprotectSize = initial;
        let top = 0;
        const chunks: number[] = [];
        function* trim(): MmGen<void> {
          // heap_trim() -> shrink_heap(): keep the top pad above the top chunk.
          const keep = Math.min(arenaBytes, Math.max(P, roundUp(top, P) + p.topPadPages * P));
          if (size - keep < p.trimThresholdPages * P) return;
          if (p.shrink === 'prot-none') {
            const r = yield* sysMmap(task, heap + keep, size - keep, PROT_NONE, ANON | MAP_FIXED | MAP_NORESERVE, -1, 0);
            if (r !== heap + keep) throw new Error(`malloc-arenas: ${task.thread.label}: shrink mmap at ${hex(heap + keep)} got ${r}`);
            mprotectSize = keep;
          } else {
            call('madvise(MADV_DONTNEED)', yield* sysMadvise(task, heap + keep, size - keep, MADV_DONTNEED));
          }
          size = keep;
          ctx.counter.note('trims');
        }
        for (let m = 0; m < p.mallocsPerThread; m++) {
          const bytes = rng.int(1, p.chunkPagesMax) * P;
          if (top + bytes > arenaBytes) {
            // The arena is full: the program frees everything it holds here.
            top = 0;
            chunks.length = 0;
            yield* trim();
          }
          if (top + bytes > size) {
            // grow_heap(): commit past mprotect_size only.
            const newSize = Math.min(arenaBytes, roundUp(top + bytes, P) + p.topPadPages * P);
            if (newSize > mprotectSize) {
              call('mprotect(grow)', yield* sysMprotect(task, heap + mprotectSize, newSize - mprotectSize, RW));
              mprotectSize = newSize;
              ctx.counter.note('grows');
            }
            size = newSize;
          }
          for (let off = 0; off < bytes; off += P) yield* mustFault('malloc-arenas', task, heap + top + off, 'write');
          chunks.push(bytes);
          top += bytes;
          ctx.counter.count(task.thread);
          if (p.userNs > 0) yield spend(p.userNs);
          if (chunks.length > 0 && rng.chance(p.freeChance)) {
            for (let n = rng.int(1, chunks.length); n > 0; n--) top -= chunks.pop()!;
            yield* trim();
          }
        }
      });
    }
  },
});
