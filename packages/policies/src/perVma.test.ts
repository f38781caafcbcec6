// Proves the per-vma policy (Linux 6.4+ per-VMA locks) keeps the mm's semantics and gives faults
// the concurrency the kernel's does:
// 1. sequential syscall scripts (mmap, faults, mprotect, mremap, munmap, brk, madvise, stack
//    growth, fork, exit) give the same results, /proc/pid/maps text and page tables as global-rwsem;
// 2-5. scenarios on the `timed` strategy (seed 1, one CPU per thread; the interleaving is forced
//    by a gate: a vm_ops->open hook that holds its caller, locks and all, while the test watches)
//    show that a fault on VMA A runs while mmap_sem is held for write to change VMA B
//    (VMA_LOCK_SUCCESS), that a fault on a VMA the writer has vma_start_write'd falls back to
//    mmap_sem and sees the change (VMA_LOCK_ABORT), that vma_start_write waits for a fault reading
//    the VMA, and that the fork option decides whether a parent fault can run during dup_mmap;
// 6. random and pct schedules (200 seeds each, 3 and 4 threads of the shared workload) never
//    deadlock, fail an assertion or break an mm invariant, and take the fast path.
// Every scenario failure prints its seed and strategy; every random one a replay line.
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_GROWSDOWN,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_MAYMOVE,
  MADV_DONTNEED,
  MmFile,
  type MmGen,
  MmStruct,
  type MmTask,
  type LockPolicy,
  PROT_READ,
  PROT_WRITE,
  type RunResult,
  RwSemaphore,
  type SimThread,
  type StrategyName,
  VM_WRITE,
  type VmOperations,
  checkMmInvariants,
  dupMmap,
  hex,
  exitMmap,
  handleMmFault,
  renderMaps,
  runProgram,
  spend,
  sysBrk,
  sysMadvise,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { GlobalRwsemPolicy } from './globalRwsem.js';
import { at, pages, run } from './mm/mmTestKit.js';
import { PerVmaPolicy, type PerVmaOptions } from './perVma.js';
import { workload } from './testing/mmWorkload.js';

const RW_PROT = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
const FD_FILE = 3;
const FD_GATE = 4;
/** A gate holds its caller at most this many 1 µs spins: a scenario that goes wrong ends, it does not hang. */
const GATE_SPINS_MAX = 200;

/**
 * vm_operations whose `open` hook, once armed, holds the thread calling it (with every lock it
 * holds: an open hook runs under mmap_sem write) until `until()` holds or GATE_SPINS_MAX passes.
 */
class Gate {
  armed = false;
  inside = false;
  /** Why the hook let its caller go: the condition held, or the bound ran out. */
  exit: 'condition' | 'bound' | null = null;
  until: () => boolean = () => true;
  readonly ops: VmOperations;

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const gate = this;
    this.ops = {
      name: 'test-gate',
      *open() {
        if (!gate.armed) return;
        gate.armed = false;
        gate.inside = true;
        let i = 0;
        while (i < GATE_SPINS_MAX && !gate.until()) {
          yield spend(1000);
          i++;
        }
        gate.exit = i < GATE_SPINS_MAX ? 'condition' : 'bound';
        gate.inside = false;
      },
    };
  }
}

/** A new mm with a plain file and a gate file open. */
function newMm(policy: LockPolicy, gate = new Gate()): MmStruct {
  const mm = new MmStruct(1, policy);
  mm.files.set(FD_FILE, new MmFile('/data/file', 11, 8, 1, true, true));
  mm.files.set(FD_GATE, new MmFile('/dev/gate', 12, 8, 1, true, true, gate.ops));
  return mm;
}

/** An anonymous RW mapping of `n` pages at column `col`, written at its first page (so it has an anon_vma). */
function anonFaulted(mm: MmStruct, col: number, n: number): void {
  expect(run(mm, (t) => sysMmap(t, at(col), pages(n), RW_PROT, ANON, -1, 0))).toBe(at(col));
  expect(run(mm, (t) => handleMmFault(t, at(col), 'write'))).toBe('ok');
  expect(mm.vmaLookup(at(col))?.anonVma).not.toBeNull();
}

/** The gate file mapped shared RW over `n` pages at column `col`. */
function gateMapped(mm: MmStruct, col: number, n: number): void {
  expect(run(mm, (t) => sysMmap(t, at(col), pages(n), RW_PROT, MAP_SHARED | MAP_FIXED, FD_GATE, 0))).toBe(at(col));
}

/** Spin (bounded) until `cond` holds; false when it never did. */
function* waitFor(cond: () => boolean): MmGen<boolean> {
  for (let i = 0; i < GATE_SPINS_MAX; i++) {
    if (cond()) return true;
    yield spend(100);
  }
  return cond();
}

const TIMED = { seed: 1, strategy: 'timed', cpus: 4 } as const;

function expectOk(r: RunResult): void {
  expect(r.status, `${r.summary}\nreplay: seed=${r.seed} strategy=timed cpus=4 (schedule=${r.schedule})`).toBe('ok');
}

function statsDelta(policy: PerVmaPolicy, before: PerVmaPolicy['vmaLockStats']): PerVmaPolicy['vmaLockStats'] {
  const now = policy.vmaLockStats;
  return { success: now.success - before.success, abort: now.abort - before.abort, miss: now.miss - before.miss };
}

describe('PerVmaPolicy', () => {
  describe('having sequential syscall scripts', () => {
    /** A script of syscalls and faults on one thread; returns every result and the mm's state. */
    function script(policy: LockPolicy): { results: unknown[]; maps: string; childMaps: string; faults: unknown; pages: number[] } {
      const mm = newMm(policy);
      const results: unknown[] = [];
      const op = <T>(body: (task: MmTask) => MmGen<T>): void => {
        results.push(run(mm, body));
      };
      // 0123456789abcdef
      // AAAAAAAA FFFF   (then: mprotect splits A, mremap moves part of it, munmap punches a hole)
      op((t) => sysMmap(t, at(0), pages(8), RW_PROT, ANON, -1, 0));
      op((t) => sysMmap(t, at(9), pages(4), PROT_READ, MAP_PRIVATE | MAP_FIXED, FD_FILE, 0));
      for (const col of [0, 1, 5]) op((t) => handleMmFault(t, at(col), 'write'));
      op((t) => handleMmFault(t, at(10), 'read'));
      op((t) => handleMmFault(t, at(11), 'write'));
      op((t) => sysMprotect(t, at(2), pages(2), PROT_READ));
      op((t) => handleMmFault(t, at(2), 'write'));
      op((t) => handleMmFault(t, at(6), 'write'));
      op((t) => sysMremap(t, at(4), pages(2), pages(3), MREMAP_MAYMOVE, 0));
      op((t) => sysMunmap(t, at(1), pages(1)));
      op((t) => sysMadvise(t, at(0), pages(1), MADV_DONTNEED));
      op((t) => handleMmFault(t, at(0), 'read'));
      op((t) => sysBrk(t, mm.startBrk + pages(3)));
      op((t) => handleMmFault(t, mm.startBrk + pages(1), 'write'));
      op((t) => sysBrk(t, mm.startBrk + pages(1)));
      // A stack, and faults below it: one grows it, one is too far (the guard gap of the VMA below).
      op((t) => sysMmap(t, at(0x400), pages(2), RW_PROT, ANON | MAP_GROWSDOWN, -1, 0));
      op((t) => handleMmFault(t, at(0x3fe), 'write'));
      op((t) => handleMmFault(t, at(0x40), 'write'));
      op((t) => handleMmFault(t, at(0x3fe) + 8, 'read'));
      const child = run(mm, (t) => dupMmap(t, 2, policy instanceof PerVmaPolicy ? new PerVmaPolicy(policy.options) : new GlobalRwsemPolicy()));
      checkMmInvariants(child);
      results.push(run(child, (t) => handleMmFault(t, at(0x3ff), 'write')));
      const childMaps = renderMaps(child);
      run(child, (t) => exitMmap(t));
      const maps = renderMaps(mm);
      const present = [...mm.pageTables.walk(at(0), at(0x500))].map(({ addr, view }) => addr + (view.writable ? 1 : 0));
      const faults = { ...mm.faultCounts };
      run(mm, (t) => exitMmap(t));
      expect(mm.mapCount).toBe(0);
      return { results, maps, childMaps, faults, pages: present };
    }

    it('should give the results, maps and page tables of global-rwsem', () => {
      const policy = new PerVmaPolicy();
      const perVma = script(policy);
      const reference = script(new GlobalRwsemPolicy());
      expect(perVma).toEqual(reference);
      // The script exercises both paths: faults on anonymous VMAs with an anon_vma went the
      // fast way, the rest (first faults, file, stack growth) fell back.
      expect(reference.faults).toMatchObject({ stackGrowth: 1 });
      expect(policy.vmaLockStats.success).toBeGreaterThan(0);
      expect(policy.vmaLockStats.abort).toBeGreaterThan(0);
    });

    it('should write-lock a stack VMA while it grows and leave no VMA write-locked afterwards', () => {
      const policy = new PerVmaPolicy();
      const mm = newMm(policy);
      run(mm, (t) => sysMmap(t, at(0x400), pages(2), RW_PROT, ANON | MAP_GROWSDOWN, -1, 0));
      const stack = mm.vmaLookup(at(0x400))!;
      const seqBefore = mm.mmLockSeq;
      expect(run(mm, (t) => handleMmFault(t, at(0x3ff), 'write'))).toBe('ok');
      expect(stack.start).toBe(at(0x3ff));
      // Grown under mmap_sem write, in the write section that ended with the downgrade.
      expect(stack.vmLockSeq).toBe(seqBefore);
      expect(mm.mmLockSeq).toBe(seqBefore + 1);
      expect(policy.isVmaWriteLocked(mm, stack)).toBe(false);
    });
  });

  describe.each([true, false])('having lockNewVma: %s (sequential)', (lockNewVma) => {
    // 01234567
    // AAAAAAAA   mmap A, then mprotect [2,4) splits it in three.
    it('should write-lock a new VMA as it enters the tree only with the option, and a split-off VMA always, with its own lock', () => {
      const mm = newMm(new PerVmaPolicy({ lockNewVma }));
      run(mm, (t) => sysMmap(t, at(0), pages(8), RW_PROT, ANON, -1, 0));
      const a = mm.vmaLookup(at(0))!;
      // The write section of the mmap was mm_lock_seq - 1; nothing else write-locked A in it.
      expect(a.vmLockSeq).toBe(lockNewVma ? mm.mmLockSeq - 1 : -1);
      run(mm, (t) => sysMprotect(t, at(2), pages(2), PROT_READ));
      const parts = [...mm.vmas()];
      expect(parts.map((v) => v.toString())).toEqual([`${hex(at(0))}-${hex(at(2))}`, `${hex(at(2))}-${hex(at(4))}`, `${hex(at(4))}-${hex(at(8))}`]);
      for (const v of parts) expect(v.vmLockSeq).toBe(mm.mmLockSeq - 1);
      // A kept [2,4) and the lock vma_start_write gave it; the parts split off have none of theirs yet.
      expect(parts[1]).toBe(a);
      expect(parts.filter((v) => v.vmLock !== null)).toEqual([a]);
    });
  });

  describe('lockForFault: page fault on VMA A races mprotect of VMA B (per-vma, 2 threads, timed seed=1)', () => {
    // 0123456789
    // AAAA  BBBB   A: anonymous, faulted. B: the gate file; mprotect [8,a) splits it, and the
    //              open hook of the split-off part holds the writer (mmap_sem write) until the
    //              fault on A has finished.
    function scenario(policy: LockPolicy): { log: string[]; result: unknown; delta: PerVmaPolicy['vmaLockStats'] | null } {
      const gate = new Gate();
      const mm = newMm(policy, gate);
      anonFaulted(mm, 0, 4);
      gateMapped(mm, 6, 4);
      const before = policy instanceof PerVmaPolicy ? { ...policy.vmaLockStats } : null;
      const log: string[] = [];
      let faultDone = false;
      let result: unknown = null;
      gate.until = () => faultDone;
      const r = runProgram((sim) => {
        sim.spawn('writer', function* (thread) {
          gate.armed = true;
          expect(yield* sysMprotect({ thread, mm }, at(8), pages(2), PROT_READ)).toBe(0);
          log.push(`mprotect returned (gate: ${gate.exit})`);
        });
        sim.spawn('faulter', function* (thread) {
          expect(yield* waitFor(() => gate.inside)).toBe(true);
          log.push(`fault starts, mmap_sem writer ${mm.mmapSem.writer?.label ?? 'none'}`);
          result = yield* handleMmFault({ thread, mm }, at(1), 'write');
          log.push(`fault done, mmap_sem writer ${mm.mmapSem.writer?.label ?? 'none'}`);
          faultDone = true;
        });
      }, TIMED);
      expectOk(r);
      checkMmInvariants(mm);
      const delta = policy instanceof PerVmaPolicy && before !== null ? statsDelta(policy, before) : null;
      return { log, result, delta };
    }

    it('should finish the fault under the VMA lock while the writer holds mmap_sem (VMA_LOCK_SUCCESS)', () => {
      const { log, result, delta } = scenario(new PerVmaPolicy());
      expect(result).toBe('ok');
      expect(log).toEqual(['fault starts, mmap_sem writer T0 writer', 'fault done, mmap_sem writer T0 writer', 'mprotect returned (gate: condition)']);
      expect(delta).toEqual({ success: 1, abort: 0, miss: 0 });
    });

    it('should make the same fault wait for the writer under global-rwsem (the contrast)', () => {
      const { log, result } = scenario(new GlobalRwsemPolicy());
      expect(result).toBe('ok');
      expect(log).toEqual(['fault starts, mmap_sem writer T0 writer', 'mprotect returned (gate: bound)', 'fault done, mmap_sem writer none']);
    });
  });

  describe('lockForFault: page fault on a VMA the writer has vma_start_write-d (per-vma, 2 threads, timed seed=1)', () => {
    // 01234567
    // AAAABBBB   mprotect([0,6), PROT_READ) write-locks A and B, makes A read-only, then splits B
    //            at 6; B's open hook holds the writer until the fault on A waits for mmap_sem.
    it('should fall back to mmap_sem (VMA_LOCK_ABORT), wait for the writer and see its change', () => {
      const policy = new PerVmaPolicy();
      const gate = new Gate();
      const mm = newMm(policy, gate);
      anonFaulted(mm, 0, 4);
      gateMapped(mm, 4, 4);
      const before = { ...policy.vmaLockStats };
      const log: string[] = [];
      let faulter: SimThread | null = null;
      let result: unknown = null;
      gate.until = () => faulter !== null && faulter.waitingOn === mm.mmapSem;
      const r = runProgram((sim) => {
        sim.spawn('writer', function* (thread) {
          gate.armed = true;
          expect(yield* sysMprotect({ thread, mm }, at(0), pages(6), PROT_READ)).toBe(0);
          log.push(`mprotect returned (gate: ${gate.exit})`);
        });
        sim.spawn('faulter', function* (thread) {
          expect(yield* waitFor(() => gate.inside)).toBe(true);
          const a = mm.vmaLookup(at(1))!;
          log.push(`fault starts, A write-locked: ${policy.isVmaWriteLocked(mm, a)}`);
          faulter = thread;
          result = yield* handleMmFault({ thread, mm }, at(1), 'write');
          log.push(`fault done: ${String(result)}`);
        });
      }, TIMED);
      expectOk(r);
      checkMmInvariants(mm);
      expect(log).toEqual(['fault starts, A write-locked: true', 'mprotect returned (gate: condition)', 'fault done: SEGV_ACCERR']);
      expect(statsDelta(policy, before)).toEqual({ success: 0, abort: 1, miss: 0 });
      expect(mm.pageTables.lookup(at(1))).toBeNull();
    });
  });

  describe('vmaStartWrite: mprotect races a page fault in progress on the same VMA (per-vma, 3 threads, timed seed=1)', () => {
    // 0123
    // AAAA   `holder` takes the PTE lock of A's table (a long fault or reclaim there), so the
    //        fault on A sits inside its VMA read lock; mprotect(A, PROT_READ) then has to wait
    //        in vma_start_write until the fault ends.
    it('should wait for the reader before changing the VMA, and the fault should see the VMA as it was', () => {
      const policy = new PerVmaPolicy();
      const mm = newMm(policy);
      anonFaulted(mm, 0, 4);
      const a = mm.vmaLookup(at(0))!;
      const ptl = mm.pageTables.pteTableFor(at(0)).ptl;
      const log: string[] = [];
      let faulter: SimThread | null = null;
      let writer: SimThread | null = null;
      let ptlHeld = false;
      const r = runProgram((sim) => {
        sim.spawn('holder', function* () {
          yield ptl.lock();
          ptlHeld = true;
          const seen = yield* waitFor(() => writer !== null && writer.waitingOn === a.vmLock);
          log.push(`writer waits for A's VMA lock: ${seen}, A writable: ${(a.flags & VM_WRITE) !== 0}`);
          yield ptl.unlock();
        });
        sim.spawn('faulter', function* (thread) {
          expect(yield* waitFor(() => ptlHeld)).toBe(true);
          faulter = thread;
          const result = yield* handleMmFault({ thread, mm }, at(1), 'write');
          log.push(`fault done: ${result}`);
        });
        sim.spawn('writer', function* (thread) {
          const inFault = (): boolean => faulter !== null && a.vmLock instanceof RwSemaphore && a.vmLock.readers.includes(faulter);
          expect(yield* waitFor(inFault)).toBe(true);
          writer = thread;
          expect(yield* sysMprotect({ thread, mm }, at(0), pages(4), PROT_READ)).toBe(0);
          log.push('mprotect returned');
        });
      }, TIMED);
      expectOk(r);
      checkMmInvariants(mm);
      expect(log).toEqual(["writer waits for A's VMA lock: true, A writable: true", 'fault done: ok', 'mprotect returned']);
      expect(policy.vmaLockStats.success).toBe(1);
      // The fault mapped a writable page; mprotect, after it, write-protected it.
      expect(a.flags & VM_WRITE).toBe(0);
      expect(mm.pageTables.lookup(at(1))).toMatchObject({ writable: false });
    });
  });

  describe('lockAll: fork races a page fault on the parent (per-vma, 2 threads, timed seed=1)', () => {
    // 0123456789
    // AAAA  GGGG   fork copies A, then G; the open hook of G's copy holds the forker (mmap_sem
    //              write on the parent) until the fault on A is done, or the bound passes.
    function forkRace(options: PerVmaOptions): { log: string[]; delta: PerVmaPolicy['vmaLockStats']; child: MmStruct; mm: MmStruct } {
      const policy = new PerVmaPolicy(options);
      const gate = new Gate();
      const mm = newMm(policy, gate);
      anonFaulted(mm, 0, 4);
      gateMapped(mm, 6, 4);
      const before = { ...policy.vmaLockStats };
      const log: string[] = [];
      let faultDone = false;
      let child: MmStruct | null = null;
      gate.until = () => faultDone;
      const r = runProgram((sim) => {
        sim.spawn('forker', function* (thread) {
          gate.armed = true;
          child = yield* dupMmap({ thread, mm }, 2, new PerVmaPolicy(options));
          log.push(`fork returned (gate: ${gate.exit})`);
        });
        sim.spawn('faulter', function* (thread) {
          expect(yield* waitFor(() => gate.inside)).toBe(true);
          expect(yield* handleMmFault({ thread, mm }, at(2), 'write')).toBe('ok');
          log.push(`fault done, mmap_sem writer ${mm.mmapSem.writer?.label ?? 'none'}`);
          faultDone = true;
        });
      }, TIMED);
      expectOk(r);
      checkMmInvariants(mm);
      checkMmInvariants(child!);
      // exit takes lockAll('write') too: its erases must pass vma_assert_write_locked either way.
      run(child!, (t) => exitMmap(t));
      return { log, delta: statsDelta(policy, before), child: child!, mm };
    }

    it('should keep the fault out of dup_mmap when the parent VMAs are write-locked (forkWriteLocksParent: true)', () => {
      const { log, delta } = forkRace({ forkWriteLocksParent: true });
      expect(log).toEqual(['fork returned (gate: bound)', 'fault done, mmap_sem writer none']);
      expect(delta).toEqual({ success: 0, abort: 1, miss: 0 });
    });

    it('should let the fault run on the parent during dup_mmap without the fix (forkWriteLocksParent: false)', () => {
      const { log, delta, mm } = forkRace({ forkWriteLocksParent: false });
      expect(log).toEqual(['fault done, mmap_sem writer T0 forker', 'fork returned (gate: condition)']);
      expect(delta).toEqual({ success: 1, abort: 0, miss: 0 });
      run(mm, (t) => exitMmap(t));
      expect(mm.mapCount).toBe(0);
    });
  });

  describe('mremap: growing in place over the gap to a mergeable next VMA (per-vma, sequential)', () => {
    // 012345678
    // AAAA BBBB   mremap(A, 4 pages -> 5) fills the gap and merges B into A: B must be
    //             write-locked before it leaves the tree (the grow-in-place path locks the new
    //             part and its neighbours).
    it('should merge B into A with B write-locked', () => {
      const mm = newMm(new PerVmaPolicy());
      run(mm, (t) => sysMmap(t, at(0), pages(4), RW_PROT, ANON, -1, 0));
      run(mm, (t) => sysMmap(t, at(5), pages(4), RW_PROT, ANON, -1, 0));
      expect(run(mm, (t) => sysMremap(t, at(0), pages(4), pages(5), 0, 0))).toBe(at(0));
      expect(mm.mapCount).toBe(1);
    });
  });

  describe.each<[StrategyName, number]>([
    ['random', 3],
    ['random', 4],
    ['pct', 3],
    ['pct', 4],
  ])('having random mm calls (%s, %i threads, 200 seeds)', (strategy, threads) => {
    it('should never deadlock, fail an assertion or break an mm invariant, and take the fast path', () => {
      const policy = new PerVmaPolicy();
      for (let seed = 0; seed < 200; seed++) {
        const mm = new MmStruct(1, policy);
        const r = runProgram(workload(mm, threads, 12), { seed, strategy, pctDepth: 3, pctSteps: 400 });
        expect(r.status, `${r.summary}\nreplay: seed=${seed} strategy=replay schedule=${r.schedule}`).toBe('ok');
        expect(() => checkMmInvariants(mm), `seed=${seed} strategy=${strategy}`).not.toThrow();
      }
      console.log(`per-vma: 200 ${strategy} schedules of ${threads} threads; VMA lock events ${JSON.stringify(policy.vmaLockStats)}`);
      expect(policy.vmaLockStats.success).toBeGreaterThan(0);
    });
  });
});
