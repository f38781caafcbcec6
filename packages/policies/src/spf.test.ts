// Proves the spf policy (speculative page faults, Lespinasse 2021 with Dufour's abort reasons):
// 1. it changes no answer: sequential programs give the same results, /proc/pid/maps text, page
//    tables and fault counts as global-rwsem, while most of their faults did speculate;
// 2. what the model does, step by step, on explicit schedules (seed and schedule given; the
//    schedule is a prefix, the rest runs non-preemptively): a fault with no mmap_sem writer
//    succeeds without ever taking mmap_sem; a fault that starts while a writer holds mmap_sem,
//    or whose speculation overlaps an munmap/mprotect of its VMA, aborts with 'vma-changed',
//    installs nothing and gets the post-change answer under mmap_sem; 'no-anon-vma',
//    'pmd-changed' (at the start, and at revalidation after a MADV_DONTNEED zap that leaves
//    mmap_seq alone) and 'unsupported' are counted by name;
// 3. under concurrency (3-4 threads of the shared random workload, random and pct, 200 seeds
//    each) no run deadlocks or fails an assertion, every mm invariant holds at the end (no PTE
//    outside a VMA: what a bad speculation leaves), every attempt ended once, and speculation
//    both succeeded and aborted (the test cannot pass vacuously); the same workload under an spf
//    that skips revalidation is caught, so the invariant check has teeth.
// Every failure prints the seed and the replay line.
import {
  type EngineObserver,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_GROWSDOWN,
  MAP_PRIVATE,
  MREMAP_MAYMOVE,
  MmFile,
  type MmGen,
  type MmLockGuard,
  MmStruct,
  type MmTask,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  type Program,
  type RunResult,
  type SimLock,
  type SimThread,
  type StrategyName,
  checkMmInvariants,
  dupMmap,
  getUserPages,
  handleMmFault,
  renderMaps,
  runMmOp,
  runProgram,
  sysBrk,
  sysMadvise,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { GlobalRwsemPolicy } from './globalRwsem.js';
import { type SpfAbortReason, type SpfStats, SpfPolicy, spfAbortTotal, spfStatsBalanced } from './spf.js';
import { workload } from './testing/mmWorkload.js';

/** Column 0 of every diagram: PMD-aligned, so a diagram's pages share one PTE table. */
const BASE = 0x10000000;
const at = (col: number): number => BASE + col * PAGE_SIZE;
const pages = (n: number): number => n * PAGE_SIZE;
const RW = PROT_READ | PROT_WRITE;
const ANON_FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const FD = 3;

function newMm(policy: GlobalRwsemPolicy): MmStruct {
  const mm = new MmStruct(1, policy);
  mm.files.set(FD, new MmFile('/data/rw', 11, 8, 1, true, true));
  return mm;
}

/** Everything a program can observe of an mm: maps text, fault counts, and every mapped page. */
function observable(mm: MmStruct): string {
  const lines = [renderMaps(mm), JSON.stringify(mm.faultCounts)];
  for (const vma of mm.vmas()) {
    for (const { addr, view } of mm.pageTables.walk(vma.start, vma.end)) {
      lines.push(`${addr.toString(16)} ${view.writable ? 'w' : '-'}${view.huge ? 'h' : ''}${view.page.anon ? 'a' : ''}${view.page.zero ? 'z' : ''}`);
    }
  }
  return lines.join('\n');
}

/** One step of the sequential program of test 1. */
type Op = (task: MmTask) => MmGen<unknown>;

/**
 * ```
 * 0123456789abcdef0123
 * AAAAAAAA    FFFF  SS   A anonymous, F file, S stack (grows down), heap elsewhere (brk)
 * ```
 */
const sequentialProgram: readonly (readonly [string, Op])[] = [
  ['mmap A', (t) => sysMmap(t, at(0), pages(8), RW, ANON_FIXED, -1, 0)],
  ['mmap F', (t) => sysMmap(t, at(12), pages(4), PROT_READ, MAP_PRIVATE | MAP_FIXED, FD, 0)],
  ['mmap S', (t) => sysMmap(t, at(18), pages(2), RW, ANON_FIXED | MAP_GROWSDOWN, -1, 0)],
  ['write A0', (t) => handleMmFault(t, at(0), 'write')],
  ['write A1', (t) => handleMmFault(t, at(1) + 5, 'write')],
  ['read A2', (t) => handleMmFault(t, at(2), 'read')],
  ['write A2 (cow of the zero page)', (t) => handleMmFault(t, at(2), 'write')],
  ['mprotect A4-5 read-only', (t) => sysMprotect(t, at(4), pages(2), PROT_READ)],
  ['write A4 (SEGV_ACCERR)', (t) => handleMmFault(t, at(4), 'write')],
  ['read A4', (t) => handleMmFault(t, at(4), 'read')],
  ['exec A3 (SEGV_ACCERR)', (t) => handleMmFault(t, at(3), 'exec')],
  ['read F', (t) => handleMmFault(t, at(13), 'read')],
  ['write F (SEGV_ACCERR)', (t) => handleMmFault(t, at(13), 'write')],
  ['read hole (SEGV_MAPERR)', (t) => handleMmFault(t, at(9), 'read')],
  ['write below S (stack growth)', (t) => handleMmFault(t, at(17), 'write')],
  ['munmap A1', (t) => sysMunmap(t, at(1), pages(1))],
  ['read A1 (SEGV_MAPERR)', (t) => handleMmFault(t, at(1), 'read')],
  ['madvise DONTNEED A', (t) => sysMadvise(t, at(0), pages(8), MADV_DONTNEED)],
  ['write A0 after zap', (t) => handleMmFault(t, at(0), 'write')],
  ['write A3', (t) => handleMmFault(t, at(3), 'write')],
  ['mremap A6-7 grow and move', (t) => sysMremap(t, at(6), pages(2), pages(6), MREMAP_MAYMOVE, 0)],
  ['gup A2-3 write', (t) => getUserPages(t, at(2), 2, true)],
  ['brk up', (t) => sysBrk(t, t.mm.startBrk + pages(3))],
  ['write heap', (t) => handleMmFault(t, t.mm.startBrk + 10, 'write')],
  ['madvise HUGEPAGE A', (t) => sysMadvise(t, at(0), pages(4), MADV_HUGEPAGE)],
  ['write A0 again', (t) => handleMmFault(t, at(0), 'write')],
  [
    'fork',
    function* (t) {
      const child = yield* dupMmap(t, 2, new GlobalRwsemPolicy());
      return renderMaps(child);
    },
  ],
  ['write A3 after fork (cow)', (t) => handleMmFault(t, at(3), 'write')],
];

describe('SpfPolicy', () => {
  describe('having a sequential program (test 1)', () => {
    it('should give the results, maps and pages of global-rwsem, speculating where it can', () => {
      const reference = newMm(new GlobalRwsemPolicy());
      const spf = new SpfPolicy();
      const mm = newMm(spf);
      for (const [name, op] of sequentialProgram) {
        const expected = runMmOp(reference, op, name);
        expect(runMmOp(mm, op, name), name).toEqual(expected);
        expect(observable(mm), `after ${name}`).toBe(observable(reference));
        checkMmInvariants(mm);
      }
      const stats = spf.statsOf(mm);
      expect(spfStatsBalanced(stats), JSON.stringify(stats)).toBe(true);
      expect(stats.successes, JSON.stringify(stats)).toBeGreaterThanOrEqual(6);
      // First touches of A, S and the heap (no anon_vma yet); F and the holes.
      expect(stats.aborts['no-anon-vma']).toBeGreaterThan(0);
      expect(stats.aborts.unsupported).toBeGreaterThan(0);
      expect(stats.aborts['vma-changed'], 'nothing races in a sequential program').toBe(0);
    });

    it('should leave the same mm as global-rwsem after 1 thread of random mm calls (50 seeds)', () => {
      let successes = 0;
      for (let seed = 0; seed < 50; seed++) {
        const reference = new MmStruct(1, new GlobalRwsemPolicy());
        const spf = new SpfPolicy();
        const mm = new MmStruct(1, spf);
        const a = runProgram(workload(reference, 1, 40), { seed, strategy: 'random' });
        const b = runProgram(workload(mm, 1, 40), { seed, strategy: 'random' });
        expect([a.status, b.status], `seed=${seed} ${a.summary} / ${b.summary}`).toEqual(['ok', 'ok']);
        expect(observable(mm), `seed=${seed}`).toBe(observable(reference));
        successes += spf.stats.successes;
      }
      expect(successes).toBeGreaterThan(0);
    });
  });

  describe('having explicit schedules (test 2)', () => {
    /** Lock acquisitions by thread name, in order, from an observer. */
    function lockLog(): { readonly log: string[]; readonly observer: EngineObserver } {
      const log: string[] = [];
      return {
        log,
        observer: {
          onLockAcquired: (thread: SimThread, lock: SimLock) => log.push(`${thread.name} +${lock.name}`),
          onLockReleased: (thread: SimThread, lock: SimLock) => log.push(`${thread.name} -${lock.name}`),
        },
      };
    }

    /**
     * ```
     * 0123456789ab ... 512
     * AAAAAAAA         BBBB   A and B anonymous, read-write, in two PMDs (B at column 512, 2 MiB
     *                         up); A0 and B0 written (anon_vma, a PTE table each)
     * ```
     */
    function scene(): { mm: MmStruct; spf: SpfPolicy } {
      const spf = new SpfPolicy();
      const mm = newMm(spf);
      const setup: Op[] = [
        (t) => sysMmap(t, at(0), pages(8), RW, ANON_FIXED, -1, 0),
        (t) => sysMmap(t, at(512), pages(4), RW, ANON_FIXED, -1, 0),
        (t) => handleMmFault(t, at(0), 'write'),
        (t) => handleMmFault(t, at(512), 'write'),
      ];
      for (const op of setup) runMmOp(mm, op);
      return { mm, spf };
    }

    /** Run `faulter` (T0) against `other` (T1) on `schedule`; returns the fault's answer. */
    function race(mm: MmStruct, schedule: string, faultAt: number, access: 'read' | 'write', other: Op, observers: EngineObserver[] = []) {
      let answer: unknown = null;
      const program: Program = (sim) => {
        sim.spawn('faulter', function* (thread) {
          answer = yield* handleMmFault({ thread, mm }, faultAt, access);
        });
        sim.spawn('other', function* (thread) {
          yield* other({ thread, mm });
        });
      };
      const seed = 1;
      const r: RunResult = runProgram(program, { seed, strategy: 'replay', schedule, extendSchedule: true, observers });
      const replay = `replay: seed=${seed} strategy=replay schedule=${r.schedule}`;
      expect(r.status, `${r.summary}\n${replay}`).toBe('ok');
      expect(() => checkMmInvariants(mm), replay).not.toThrow();
      return { answer, replay };
    }

    function delta(before: SpfStats, after: SpfStats): Record<string, number> {
      const d: Record<string, number> = {
        attempts: after.attempts - before.attempts,
        successes: after.successes - before.successes,
        fallbacks: after.fallbacks - before.fallbacks,
      };
      for (const reason of Object.keys(after.aborts) as SpfAbortReason[]) {
        const n = after.aborts[reason] - before.aborts[reason];
        if (n !== 0) d[reason] = n;
      }
      const atRevalidation = after.abortsAtRevalidation - before.abortsAtRevalidation;
      if (atRevalidation !== 0) d.atRevalidation = atRevalidation;
      return d;
    }

    const snapshot = (spf: SpfPolicy, mm: MmStruct): SpfStats => structuredClone(spf.statsOf(mm));

    it('(a) should fault speculatively while another thread holds mmap_sem for read, never taking mmap_sem (seed=1, schedule 1.0)', () => {
      // T1 takes mmap_sem for read (madvise DONTNEED of B) in its first step; T0's whole fault at
      // A3 runs before T1 goes on. Then T1 runs out.
      const { mm, spf } = scene();
      const before = snapshot(spf, mm);
      const { log, observer } = lockLog();
      const { answer, replay } = race(mm, '1.0', at(3), 'write', (t) => sysMadvise(t, at(512), pages(4), MADV_DONTNEED), [observer]);
      expect(answer, replay).toBe('ok');
      expect(mm.pageTables.lookup(at(3))?.writable, replay).toBe(true);
      expect(delta(before, spf.statsOf(mm)), replay).toEqual({ attempts: 1, successes: 1, fallbacks: 0 });
      expect(
        log.filter((l) => l.startsWith('faulter')).some((l) => l.includes('mmap_sem')),
        log.join('\n'),
      ).toBe(false);
      expect(
        log.filter((l) => l.startsWith('faulter') || l.includes('mmap_sem')),
        replay,
      ).toEqual(['other +mm1.mmap_sem', 'faulter +mm1.ptl@0x10000000', 'faulter -mm1.ptl@0x10000000', 'other -mm1.mmap_sem']);
    });

    it('(a) should fault speculatively right after an mprotect of an unrelated VMA released mmap_sem (seed=1, schedule 1)', () => {
      const { mm, spf } = scene();
      const before = snapshot(spf, mm);
      const { log, observer } = lockLog();
      const { answer, replay } = race(mm, '1', at(3), 'write', (t) => sysMprotect(t, at(512), pages(2), PROT_READ), [observer]);
      expect(answer, replay).toBe('ok');
      expect(delta(before, spf.statsOf(mm)), replay).toEqual({ attempts: 1, successes: 1, fallbacks: 0 });
      expect(
        log.filter((l) => l.startsWith('faulter')),
        replay,
      ).toEqual(['faulter +mm1.ptl@0x10000000', 'faulter -mm1.ptl@0x10000000']);
    });

    // T0's steps: 1 rcu_read_lock, 2 load mmap_seq, 3 VMA lookup and checks, PTE lock taken,
    // 4 revalidate (and install, or abort). T1's munmap/mprotect takes mmap_sem write (step 1)
    // and makes mmap_seq odd (step 2).
    describe.each<{ name: string; schedule: string; other: Op; access: 'read' | 'write'; expected: string; atRevalidation: boolean }>([
      {
        name: 'munmap of A starts before the fault (seq odd at the start)',
        schedule: '1*2.0',
        other: (t) => sysMunmap(t, at(0), pages(8)),
        access: 'read',
        expected: 'SEGV_MAPERR',
        atRevalidation: false,
      },
      {
        name: 'munmap of A runs between the seq load and the VMA lookup (copy check)',
        schedule: '0*2.1',
        other: (t) => sysMunmap(t, at(0), pages(8)),
        access: 'read',
        expected: 'SEGV_MAPERR',
        atRevalidation: false,
      },
      {
        name: 'munmap of A runs while the fault holds the PTE lock (revalidation)',
        schedule: '0*3.1',
        other: (t) => sysMunmap(t, at(0), pages(8)),
        access: 'write',
        expected: 'SEGV_MAPERR',
        atRevalidation: true,
      },
      {
        name: 'mprotect(PROT_READ) of A runs while the fault holds the PTE lock (revalidation)',
        schedule: '0*3.1',
        other: (t) => sysMprotect(t, at(0), pages(8), PROT_READ),
        access: 'write',
        expected: 'SEGV_ACCERR',
        atRevalidation: true,
      },
    ])('(b) having $name (seed=1, schedule $schedule)', ({ schedule, other, access, expected, atRevalidation }) => {
      it(`should abort with vma-changed, install nothing, and answer ${expected} under mmap_sem`, () => {
        // ```
        // 01234567
        // AAAAAAAA    T0 faults at A3; T1 changes all of A
        // ```
        const { mm, spf } = scene();
        const before = snapshot(spf, mm);
        const { log, observer } = lockLog();
        const { answer, replay } = race(mm, schedule, at(3), access, other, [observer]);
        expect(answer, replay).toBe(expected);
        expect(mm.pageTables.lookup(at(3)), replay).toBeNull();
        const aborted = { attempts: 1, successes: 0, fallbacks: 1, 'vma-changed': 1 };
        expect(delta(before, spf.statsOf(mm)), replay).toEqual(atRevalidation ? { ...aborted, atRevalidation: 1 } : aborted);
        // The fault took mmap_sem (for read) once, after the writer was done with the VMAs.
        const faulterSem = log.filter((l) => l.startsWith('faulter') && l.includes('mmap_sem'));
        expect(faulterSem, log.join('\n')).toEqual(['faulter +mm1.mmap_sem', 'faulter -mm1.mmap_sem']);
        expect(log.indexOf('faulter +mm1.mmap_sem'), log.join('\n')).toBeGreaterThan(log.indexOf('other +mm1.mmap_sem'));
      });
    });

    it('(c) should abort with no-anon-vma on a never-written anonymous VMA and fault it under mmap_sem', () => {
      // ```
      // 0123456789ab
      // AAAAAAAA  CC    C new: no anon_vma, but its PMD has A's PTE table
      // ```
      const { mm, spf } = scene();
      runMmOp(mm, (t) => sysMmap(t, at(10), pages(2), RW, ANON_FIXED, -1, 0));
      const before = snapshot(spf, mm);
      expect(runMmOp(mm, (t) => handleMmFault(t, at(10), 'write'))).toBe('ok');
      expect(delta(before, spf.statsOf(mm))).toEqual({ attempts: 1, successes: 0, fallbacks: 1, 'no-anon-vma': 1 });
      expect(mm.vmaLookup(at(10))?.anonVma).not.toBeNull();
      // Now C has an anon_vma: the next fault there speculates.
      expect(runMmOp(mm, (t) => handleMmFault(t, at(11), 'write'))).toBe('ok');
      expect(delta(before, spf.statsOf(mm))).toEqual({ attempts: 2, successes: 1, fallbacks: 1, 'no-anon-vma': 1 });
      checkMmInvariants(mm);
    });

    it('(c) should abort with pmd-changed when MADV_DONTNEED freed the PTE table before the fault', () => {
      const { mm, spf } = scene();
      runMmOp(mm, (t) => sysMadvise(t, at(0), pages(8), MADV_DONTNEED));
      expect(mm.pageTables.pmd(at(3))).toBeUndefined();
      const before = snapshot(spf, mm);
      expect(runMmOp(mm, (t) => handleMmFault(t, at(3), 'write'))).toBe('ok');
      expect(delta(before, spf.statsOf(mm))).toEqual({ attempts: 1, successes: 0, fallbacks: 1, 'pmd-changed': 1 });
      checkMmInvariants(mm);
    });

    it('(c) should abort with pmd-changed at revalidation when MADV_DONTNEED (mmap_sem read, mmap_seq unchanged) freed the table (seed=1, schedule 0*3.1)', () => {
      // T0 holds the PTE lock of A's table when T1 zaps all of A and frees that table.
      const { mm, spf } = scene();
      const before = snapshot(spf, mm);
      const seqBefore = mmapSeq(mm);
      const { answer, replay } = race(mm, '0*3.1', at(3), 'write', (t) => sysMadvise(t, at(0), pages(8), MADV_DONTNEED));
      expect(mmapSeq(mm), 'MADV_DONTNEED takes mmap_sem for read only').toBe(seqBefore);
      expect(answer, replay).toBe('ok');
      expect(delta(before, spf.statsOf(mm)), replay).toEqual({ attempts: 1, successes: 0, fallbacks: 1, 'pmd-changed': 1, atRevalidation: 1 });
      // Installed by the retry under mmap_sem, in a new table.
      expect(mm.pageTables.lookup(at(3))?.writable, replay).toBe(true);
      expect(mm.pageTables.lookup(at(0)), replay).toBeNull();
    });

    it('(c) should abort with unsupported for a hole, a file VMA and a THP-eligible VMA', () => {
      const { mm, spf } = scene();
      runMmOp(mm, (t) => sysMmap(t, at(24), pages(2), PROT_READ, MAP_PRIVATE | MAP_FIXED, FD, 0));
      const big = 0x40000000;
      runMmOp(mm, (t) => sysMmap(t, big, 0x200000, RW, ANON_FIXED, -1, 0));
      runMmOp(mm, (t) => sysMadvise(t, big, 0x200000, MADV_HUGEPAGE));
      const before = snapshot(spf, mm);
      expect(runMmOp(mm, (t) => handleMmFault(t, at(12), 'read'))).toBe('SEGV_MAPERR');
      expect(runMmOp(mm, (t) => handleMmFault(t, at(24), 'read'))).toBe('ok');
      expect(runMmOp(mm, (t) => handleMmFault(t, big, 'write'))).toBe('ok');
      expect(mm.pageTables.lookup(big)?.huge).toBe(true);
      // That first write to the THP-eligible VMA was refused for its missing anon_vma; once the
      // THP is zapped, its PMD is empty and the next write would allocate a THP again:
      runMmOp(mm, (t) => sysMadvise(t, big, 0x200000, MADV_DONTNEED));
      expect(runMmOp(mm, (t) => handleMmFault(t, big + 5 * PAGE_SIZE, 'write'))).toBe('ok');
      expect(delta(before, spf.statsOf(mm))).toEqual({ attempts: 4, successes: 0, fallbacks: 4, unsupported: 3, 'no-anon-vma': 1 });
      checkMmInvariants(mm);
    });
  });

  describe.each<{ strategy: StrategyName; threads: number }>([
    { strategy: 'random', threads: 3 },
    { strategy: 'pct', threads: 4 },
  ])('having $threads threads of random mm calls ($strategy, 200 seeds) (test 3)', ({ strategy, threads }) => {
    it('should never deadlock, fail an assertion or break an mm invariant, and both speculate and abort', () => {
      const total = { successes: 0, aborts: 0, revalidationAborts: 0 };
      for (let seed = 0; seed < 200; seed++) {
        const spf = new SpfPolicy();
        const mm = new MmStruct(1, spf);
        const r = runProgram(workload(mm, threads, 12), { seed, strategy, pctDepth: 3, pctSteps: 500 });
        const replay = `seed=${seed} strategy=${strategy}\nreplay: seed=${seed} strategy=replay schedule=${r.schedule}`;
        expect(r.status, `${r.summary}\n${replay}`).toBe('ok');
        expect(() => checkMmInvariants(mm), replay).not.toThrow();
        expect(spfStatsBalanced(spf.stats), `${JSON.stringify(spf.stats)}\n${replay}`).toBe(true);
        total.successes += spf.stats.successes;
        total.aborts += spfAbortTotal(spf.stats);
      }
      console.log(`spf: 200 ${strategy} schedules of ${threads} threads, all ok; speculative successes ${total.successes}, aborts ${total.aborts}`);
      expect(total.successes).toBeGreaterThan(0);
      expect(total.aborts).toBeGreaterThan(0);
    });
  });

  describe('having an spf that never revalidates (the invariant check has teeth)', () => {
    class NoRevalidateSpf extends SpfPolicy {
      override revalidateFault(_guard: MmLockGuard): boolean {
        return true;
      }
    }

    /**
     * ```
     * 01234567
     * AAAAAAAA    A written at 0; T0 writes A1..A7 one by one while T1 unmaps all of A once
     * ```
     */
    function faultsVersusMunmap(policy: SpfPolicy): { mm: MmStruct; program: Program } {
      const mm = new MmStruct(1, policy);
      runMmOp(mm, (t) => sysMmap(t, at(0), pages(8), RW, ANON_FIXED, -1, 0));
      runMmOp(mm, (t) => handleMmFault(t, at(0), 'write'));
      const program: Program = (sim) => {
        sim.spawn('faulter', function* (thread) {
          for (let col = 1; col < 8; col++) yield* handleMmFault({ thread, mm }, at(col), 'write');
        });
        sim.spawn('unmapper', function* (thread) {
          yield* sysMunmap({ thread, mm }, at(0), pages(8));
        });
      };
      return { mm, program };
    }

    it('should be caught with a page mapped outside every VMA (pct, 200 seeds), where spf is not', () => {
      const caught: string[] = [];
      let revalidationAborts = 0;
      for (let seed = 0; seed < 200; seed++) {
        const options = { seed, strategy: 'pct', pctDepth: 2, pctSteps: 40 } as const;
        const broken = faultsVersusMunmap(new NoRevalidateSpf());
        expect(runProgram(broken.program, options).status, `seed=${seed}`).toBe('ok');
        try {
          checkMmInvariants(broken.mm);
        } catch (e) {
          caught.push(`seed=${seed}: ${(e as Error).message}`);
        }
        const spf = new SpfPolicy();
        const sound = faultsVersusMunmap(spf);
        const r = runProgram(sound.program, options);
        const replay = `seed=${seed} strategy=pct\nreplay: seed=${seed} strategy=replay schedule=${r.schedule}`;
        expect(r.status, `${r.summary}\n${replay}`).toBe('ok');
        expect(() => checkMmInvariants(sound.mm), replay).not.toThrow();
        revalidationAborts += spf.stats.abortsAtRevalidation;
      }
      console.log(`spf without revalidation: ${caught.length}/200 pct runs caught, first ${caught[0]}; spf: ${revalidationAborts} aborts at revalidation`);
      expect(caught.length).toBeGreaterThan(0);
      expect(caught[0]).toMatch(/outside every VMA/);
      expect(revalidationAborts).toBeGreaterThan(0);
    });
  });
});

/** `mm->mmap_seq` now (for assertions only; threads go through the policy). */
function mmapSeq(mm: MmStruct): number {
  return (mm.policyState as { mmapSeq: { sequence: number } }).mmapSeq.sequence;
}
