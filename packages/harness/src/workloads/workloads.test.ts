// Proves every workload runs: under global-rwsem and vma-range, with its default params, 2
// threads, the `random` strategy and seed 7, each run ends ok, leaves an mm that keeps every
// invariant, and counts exactly the ops its params imply (what each op is: docs/workloads.md);
// the side figures show the behaviour the workload models happened (the GC's traps, mremap's
// moves, stack growth). Then: the same seed gives the same run byte for byte (the engine's
// trace), and pft's throughput under per-vma and the timed strategy grows with threads.
import { MmStruct, checkMmInvariants, renderMaps, runProgram } from '@vmalock/core';
import { createPolicy } from '@vmalock/policies';
import { SUBSYSTEMS } from '@vmalock/subsystems';
import { describe, expect, it } from 'vitest';
import { sharedTrace } from '../../../../test-support/sharedTraces.js';
import { parseWorkloadParams, spawnWorkload, workloadNames } from './registry.js';
import { type WorkloadRun, type WorkloadRunOptions, runWorkload } from './run.js';
import { OpCounter, type WorkloadName } from './workload.js';

const SEED = 7;
const THREADS = 2;

/** Params beyond the defaults: the trace to replay (it has no default). */
function paramsOf(name: WorkloadName): Record<string, unknown> | undefined {
  if (name === 'strace-replay') return { path: sharedTrace('strace', 'sort_parallel.strace.log'), tasks: sharedTrace('tasks', 'sort_parallel.tasks.tsv') };
  return undefined;
}

function options(name: WorkloadName, policy: string, extra: Partial<WorkloadRunOptions> = {}): WorkloadRunOptions {
  const params = paramsOf(name);
  return {
    workload: name,
    policy,
    threads: THREADS,
    seed: SEED,
    strategy: 'random',
    ...(params !== undefined ? { params } : {}),
    ...(name === 'subsystem-driver' ? { subsystems: () => SUBSYSTEMS.map((s) => s.create('converted')) } : {}),
    ...extra,
  };
}

/** The ops a run of `name` must count with its params and threads (null: checked in checkBehaviour). */
function expectedOps(name: WorkloadName): number | null {
  const p = parseWorkloadParams(name, paramsOf(name)) as Record<string, number>;
  const threads = THREADS;
  switch (name) {
    case 'pft':
      return threads * p.pagesPerThread!;
    case 'page_fault1':
      return threads * p.iterations! * p.regionPages!;
    case 'mmap1':
    case 'ebizzy':
      return threads * p.iterations!;
    case 'jvm-gc':
      return null; // allocations that gave up after traps are not ops
    case 'malloc-arenas':
      return threads * p.mallocsPerThread!;
    case 'stack-growth':
      return threads * p.depthPages!;
    case 'mremap-growth':
      return threads * p.buffersPerThread! * Math.ceil((p.maxPages! - p.startPages!) / p.growPages!);
    case 'fork-heavy':
      return threads * p.forksPerThread!;
    case 'proc-maps':
      return threads * p.readsPerThread!;
    case 'subsystem-driver':
      return threads * p.callsPerThread!;
    case 'strace-replay':
      return 45; // the mm calls of sort_parallel's one process
  }
}

/** What shows each workload did what it models. */
function checkBehaviour(name: WorkloadName, r: WorkloadRun): void {
  const x = r.extras;
  switch (name) {
    case 'pft':
      expect(x.mapperCycles).toBeGreaterThan(0);
      break;
    case 'jvm-gc': {
      const p = parseWorkloadParams('jvm-gc', undefined);
      expect(r.ops + (x.trapsGaveUp ?? 0)).toBe(THREADS * p.allocsPerThread);
      expect(r.ops).toBeGreaterThan(0);
      expect(x.gcCycles).toBeGreaterThan(0);
      expect(x.traps).toBeGreaterThan(0);
      break;
    }
    case 'malloc-arenas':
      expect(x.grows).toBeGreaterThan(0);
      expect(x.trims).toBeGreaterThan(0);
      break;
    case 'stack-growth':
      expect(r.mm.faultCounts.stackGrowth).toBe(r.ops);
      break;
    case 'mremap-growth':
      expect(x.moves).toBeGreaterThan(0);
      expect(x.faulterRounds).toBeGreaterThan(0);
      break;
    case 'fork-heavy':
      // Each child copied the heap pages it wrote (shared with the parent until its exit).
      expect(x.childCowFaults).toBeGreaterThanOrEqual(r.ops);
      break;
    case 'proc-maps':
      expect(x.linesRead).toBeGreaterThanOrEqual(r.ops * parseWorkloadParams('proc-maps', undefined).initialVmas);
      break;
    case 'subsystem-driver':
      expect(r.subsystems).toHaveLength(SUBSYSTEMS.length);
      for (const s of r.subsystems) s.checkInvariants();
      break;
    case 'strace-replay':
      expect(r.result.threads).toHaveLength(4);
      expect((x.matched ?? 0) + (x.mismatched ?? 0)).toBe(r.ops);
      break;
    default:
      break;
  }
}

describe.each(['global-rwsem', 'vma-range'])('workloads under %s', (policy) => {
  it.each(workloadNames().map((name) => [name, THREADS] as const))(
    `%s should end ok, keep the mm invariants and count its ops (random, seed ${SEED}, %i threads)`,
    (name) => {
      const r = runWorkload(options(name, policy));
      expect(r.result.status, r.result.summary).toBe('ok');
      checkMmInvariants(r.mm);
      expect(r.ops).toBeGreaterThan(0);
      const expected = expectedOps(name);
      if (expected !== null) expect(r.ops).toBe(expected);
      expect(r.opsPerSimSec).toBeNull(); // not timed
      checkBehaviour(name, r);
    },
  );
});

/** A run as bytes: its result (schedule and trace included), counts and final maps. */
function fingerprint(r: WorkloadRun): string {
  const { trace, ...rest } = r.result;
  return JSON.stringify({ rest, trace, ops: r.ops, extras: r.extras, maps: renderMaps(r.mm) });
}

describe('runWorkload', () => {
  describe('having the same seed', () => {
    it.each(workloadNames())('%s should give the same run byte for byte (pct, seed 11, global-rwsem)', (name) => {
      const o = options(name, 'global-rwsem', { strategy: 'pct', seed: 11, trace: true });
      expect(fingerprint(runWorkload(o))).toBe(fingerprint(runWorkload(o)));
    });
  });

  describe('having another seed', () => {
    it.each(['ebizzy', 'jvm-gc'] as const)('%s should make other choices (timed, seeds 1 and 2)', (name) => {
      const a = runWorkload(options(name, 'global-rwsem', { strategy: 'timed', seed: 1 }));
      const b = runWorkload(options(name, 'global-rwsem', { strategy: 'timed', seed: 2 }));
      expect(a.result.simTimeNs).not.toBe(b.result.simTimeNs);
    });
  });

  describe('having malloc-arenas trim with PROT_NONE', () => {
    it('should mprotect again to regrow what a trim gave back (madvise keeps it committed)', () => {
      const run = (shrink: string) =>
        runWorkload({ workload: 'malloc-arenas', params: { shrink }, policy: 'global-rwsem', threads: 2, seed: 1, strategy: 'random' });
      const madvise = run('madvise');
      const protNone = run('prot-none');
      expect(protNone.extras.trims).toBeGreaterThan(0);
      expect(protNone.extras.trims).toBe(madvise.extras.trims);
      expect(protNone.extras.grows).toBeGreaterThan(madvise.extras.grows!);
    });
  });

  describe('having the timed strategy', () => {
    it('should count throughput in ops per simulated second up to the last op', () => {
      const r = runWorkload({ workload: 'mmap1', policy: 'global-rwsem', threads: 2, seed: 1 });
      expect(r.result.status).toBe('ok');
      expect(r.lastOpNs).toBeGreaterThan(0);
      expect(r.lastOpNs).toBeLessThanOrEqual(r.result.simTimeNs);
      expect(r.opsPerSimSec).toBeCloseTo((r.ops / r.lastOpNs) * 1e9, 6);
    });

    it('should scale pft with threads under per-vma (8 threads at least 3x one thread)', () => {
      // bench:policies' shape: 256 pages per thread, the mapper disturbing (measured: 4.8x).
      const at = (threads: number) => runWorkload({ workload: 'pft', params: { pagesPerThread: 256 }, policy: 'per-vma', threads, seed: 1 });
      const one = at(1);
      const eight = at(8);
      expect(one.result.status).toBe('ok');
      expect(eight.result.status).toBe('ok');
      expect(eight.ops).toBe(8 * one.ops);
      expect(eight.opsPerSimSec! / one.opsPerSimSec!).toBeGreaterThan(3);
    });
  });

  describe('having bad input', () => {
    it('should name an unknown policy', () => {
      expect(() => runWorkload({ workload: 'pft', policy: 'no-such', threads: 1, seed: 1 })).toThrow(/unknown policy 'no-such' \(known: global-rwsem, /);
    });

    it('should refuse 0 threads', () => {
      expect(() => runWorkload({ workload: 'pft', policy: 'global-rwsem', threads: 0, seed: 1 })).toThrow(
        "workload 'pft': threads must be an integer >= 1, got 0",
      );
    });

    it('should say subsystem-driver has no subsystem to drive', () => {
      expect(() => runWorkload({ workload: 'subsystem-driver', policy: 'global-rwsem', threads: 1, seed: 1 })).toThrow(
        'subsystem-driver: no subsystem is attached to process p1: attach the subsystems it should drive',
      );
    });

    it('should say which named subsystem is not attached', () => {
      const subsystems = () => [SUBSYSTEMS.find((s) => s.name === 'pkeys')!.create('converted')];
      expect(() =>
        runWorkload({ workload: 'subsystem-driver', params: { subsystems: ['binder'] }, policy: 'global-rwsem', threads: 1, seed: 1, subsystems }),
      ).toThrow("subsystem-driver: subsystem 'binder' is not attached (attached: pkeys)");
    });

    it('should name the mapping a setup could not make (two pfts in one mm)', () => {
      const mm = new MmStruct(1, createPolicy('global-rwsem'));
      const twice = () =>
        runProgram(
          (sim) => {
            for (let i = 0; i < 2; i++) spawnWorkload('pft', { sim, mm, threads: 1, subsystems: [], counter: new OpCounter() }, undefined);
          },
          { seed: 1, strategy: 'timed' },
        );
      expect(twice).toThrow('pft: setting up the shared mapping (mmap of 256 pages at 0x100000000000) failed with EEXIST');
    });
  });
});
