// /proc/pid/maps readers (monitoring agents, profilers, `ps`-like tools, the JVM's own checks):
// reader threads read the whole file again and again — with the kernel's lockings of
// fs/proc/task_mmu.c, diff/procMapsRead.ts: the whole mm read-locked per read() call up to 6.16,
// each VMA under its own lock since 6.17 — next to mapper threads that mmap, split (mprotect one
// page) and munmap mappings of random sizes, so the file changes under the readers and the
// readers hold off the writers.
//
//   |a|b|a|b|a|b|...  (initialVmas one-page mappings, alternating protections: no merging)
import { PROT_READ, sysMmap, sysMprotect, sysMunmap } from '@vmalock/core';
import { z } from 'zod';
import { mapsLockingOf, readProcMaps } from '../diff/procMapsRead.js';
import { ANON, Latch, P, RW, WORKLOAD_BASE, mustOk, setupMmap, spawnTask } from './common.js';
import { defineWorkload } from './workload.js';

export const procMapsParams = z.strictObject({
  readsPerThread: z.number().int().min(1).max(100_000).default(4).describe('whole reads of /proc/pid/maps per reader thread'),
  locking: z
    .enum(['auto', 'mmap-lock', 'vma-lock'])
    .default('auto')
    .describe(
      "how a read locks: 'mmap-lock' (the whole mm per read() call, Linux <= 6.16), 'vma-lock' (each VMA, 6.17), 'auto' (what the process's policy's kernel does)",
    ),
  initialVmas: z.number().int().min(0).max(1_000_000).default(32).describe("one-page mappings made before the threads start (the file's lines)"),
  mappers: z.number().int().min(0).max(4096).default(2).describe('threads mapping, splitting and unmapping meanwhile (not counted as ops)'),
  mapperPagesMax: z.number().int().min(2).max(65_536).default(4).describe('largest mapping a mapper makes, pages'),
  mapperCyclesMax: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(64)
    .describe("bound on each mapper's mmap+mprotect+munmap cycles (they stop earlier when the readers are done)"),
});

export const procMaps = defineWorkload({
  name: 'proc-maps',
  summary: '/proc/pid/maps readers: threads read the whole maps file repeatedly while mapper threads mmap, mprotect and munmap',
  op: 'one whole read of /proc/pid/maps (read() calls to EOF)',
  threadsFrom: 'context',
  params: procMapsParams,
  spawn(ctx, p) {
    const { mm, counter } = ctx;
    for (let v = 0; v < p.initialVmas; v++) setupMmap('proc-maps', mm, `mapping ${v}`, WORKLOAD_BASE + v * P, P, v % 2 === 0 ? RW : PROT_READ, ANON);
    const locking = p.locking === 'auto' ? mapsLockingOf(mm.policy.name) : p.locking;
    const latch = new Latch(ctx.threads);
    for (let i = 0; i < ctx.threads; i++) {
      spawnTask(ctx, `maps-reader${i}`, function* (task) {
        for (let r = 0; r < p.readsPerThread; r++) {
          const entries = yield* readProcMaps(task, locking);
          counter.count(task.thread);
          counter.note('linesRead', entries.length);
        }
        latch.done();
      });
    }
    for (let m = 0; m < p.mappers; m++) {
      spawnTask(ctx, `maps-mapper${m}`, function* (task, rng) {
        for (let c = 0; c < p.mapperCyclesMax && latch.running; c++) {
          const len = rng.int(2, p.mapperPagesMax) * P;
          const a = mustOk('proc-maps', task, 'mmap', yield* sysMmap(task, 0, len, RW, ANON, -1, 0));
          mustOk('proc-maps', task, 'mprotect', yield* sysMprotect(task, a, P, PROT_READ));
          mustOk('proc-maps', task, 'munmap', yield* sysMunmap(task, a, len));
          counter.note('mapperCycles');
        }
      });
    }
  },
});
