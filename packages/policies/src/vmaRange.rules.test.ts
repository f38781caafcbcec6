// The design's rules R1–R10 (ARCHITECTURE section 4, from Dufour and Glisse's "VMA Locking"),
// one named scenario each, under `vma-range`. Each draws the address space one page per column
// from BASE = 0x10000000 (capital letters: VMAs; `.`: a hole; `d`: a dummy VMA), runs its
// threads under the `timed` strategy with explicit start times and hold times (`spend`) — the
// schedule — and asserts the order of what the threads logged and the state they saw. Every
// scenario is then replayed from the schedule the run recorded (strategy `replay`), on a fresh
// mm, and must log the same lines: a failure prints that schedule.
import {
  type CostModel,
  EFAULT,
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_GROWSDOWN,
  MAP_PRIVATE,
  MMAP_MIN_ADDR,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MmFile,
  type MmGen,
  MmStruct,
  type MmTask,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  RwSemaphore,
  TASK_SIZE,
  VM_MAYREAD,
  VM_READ,
  Vma,
  type VmOperations,
  checkMmInvariants,
  handleMmFault,
  mmapRegion,
  renderMaps,
  runMmOp,
  runProgram,
  spend,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
  vmaMergeNewRange,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { at, pages } from './mm/mmTestKit.js';
import { VmAreaLock, VmaRangePolicy } from './vmaRange.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
/** The fd of a file whose vm_ops hooks take time (a driver's open/close doing work). */
const SLOW_FD = 3;

/** The costs the scenarios' timings assume (fixed here, whatever the default model becomes). */
const COSTS: CostModel = {
  effectNs: 2,
  atomicNs: 20,
  lineTransferNs: 80,
  memAccessNs: 1,
  wakeupNs: 1500,
  spawnNs: 5000,
  rcuReadNs: 1,
  syscallNs: 100,
  faultNs: 400,
  pageZeroNs: 600,
  vmaUpdateNs: 250,
  zapPageNs: 30,
  memoryBusNsPerPage: 0,
};

type Log = (line: string) => void;
/** A thread of a scenario: its name, when it starts (ns), and what it does. */
type Actor = readonly [name: string, startNs: number, body: (task: MmTask, log: Log) => MmGen<void>];

/** vm_ops whose open and close hooks each take `ns`, logging into `lines` as the thread running them. */
function slowOps(ns: number, lines: string[]): VmOperations {
  return {
    name: 'slow',
    *open(vma, thread) {
      lines.push(`${thread.name}: open ${vma.toString()}`);
      yield spend(ns);
    },
    *close(vma, thread) {
      lines.push(`${thread.name}: close ${vma.toString()} begins`);
      yield spend(ns);
      lines.push(`${thread.name}: close ${vma.toString()} ends`);
    },
  };
}

interface Played {
  readonly log: string[];
  readonly mm: MmStruct;
  readonly policy: VmaRangePolicy;
  readonly schedule: string;
}

/**
 * Build the mm with `setup` (sequentially), run the actors under `timed` on 4 CPUs, then replay
 * the recorded schedule on a fresh mm built the same way: both runs must log the same lines.
 */
function play(setup: (mm: MmStruct) => void, actors: readonly Actor[]): Played {
  const once = (strategy: 'timed' | 'replay', schedule?: string): Played & { status: string; summary: string } => {
    const policy = new VmaRangePolicy();
    const mm = new MmStruct(1, policy);
    const lines: string[] = [];
    mm.files.set(SLOW_FD, new MmFile('/dev/slow', 42, 8, 1, true, true, slowOps(5000, lines)));
    setup(mm);
    const r = runProgram(
      (sim) => {
        for (const [name, startNs, body] of actors) {
          sim.spawn(name, function* (thread) {
            yield spend(startNs);
            yield* body({ thread, mm }, (line) => lines.push(`${name}: ${line}`));
          });
        }
      },
      { seed: 1, strategy, cpus: 4, costModel: COSTS, ...(schedule !== undefined ? { schedule } : {}) },
    );
    return { log: lines, mm, policy, schedule: r.schedule, status: r.status, summary: r.summary };
  };
  const first = once('timed');
  expect(first.status, first.summary).toBe('ok');
  checkMmInvariants(first.mm);
  const again = once('replay', first.schedule);
  expect(again.log, `replay: seed=1 strategy=replay schedule=${first.schedule}`).toEqual(first.log);
  return first;
}

/** Sequential setup: mmap MAP_FIXED `n` anonymous pages at column `col` (with extra flags). */
function map(mm: MmStruct, col: number, n: number, flags = 0, fd = -1): void {
  const mapFlags = fd < 0 ? ANON | MAP_FIXED | flags : MAP_PRIVATE | MAP_FIXED | flags;
  expect(runMmOp(mm, (t) => sysMmap(t, at(col), pages(n), RW, mapFlags, fd, 0))).toBe(at(col));
}

/** The index in `log` of the first line containing `text` (fails when there is none). */
function when(log: readonly string[], text: string): number {
  const i = log.findIndex((l) => l.includes(text));
  expect(i, `no line with '${text}' in:\n${log.join('\n')}`).toBeGreaterThanOrEqual(0);
  return i;
}

/** The area lock of the entry (VMA or dummy) at column `col`. */
function lockAt(mm: MmStruct, col: number): VmAreaLock {
  const v = mm.tree.find(at(col));
  if (v === null || v.start > at(col) || !(v.areaLock instanceof VmAreaLock)) throw new Error(`no locked entry at column ${col}`);
  return v.areaLock;
}

/** Hold a modify lock over columns [from, to) for `ns`, logging what is locked meanwhile. */
function* hold(t: MmTask, log: Log, from: number, to: number, ns: number, inspect?: (log: Log) => void): MmGen<void> {
  const g = yield* t.mm.policy.lockForModify(t.mm, t.thread, at(from), at(to));
  log('holds');
  inspect?.(log);
  yield spend(ns);
  log('releases');
  yield* t.mm.policy.unlock(g);
}

describe('vma-range: the rules of the design', () => {
  it('R1: a lock is taken on VMA boundaries: changing one page of A locks all of A', () => {
    //  0123
    //  AAAA   T1: mprotect page 0 (splits A; the slow open hook holds the area for 5 µs)
    //     ^   T2 (1 µs): fault on page 3 — the same vm_area_lock, so it waits for T1
    const { log, mm } = play(
      (mm) => map(mm, 0, 4, 0, SLOW_FD),
      [
        [
          'T1',
          0,
          function* (t, log) {
            log(`mprotect -> ${yield* sysMprotect(t, at(0), pages(1), PROT_READ)}`);
          },
        ],
        [
          'T2',
          1000,
          function* (t, log) {
            log('fault begins');
            log(`fault -> ${yield* handleMmFault(t, at(3), 'write')}`);
          },
        ],
      ],
    );
    expect(when(log, 'T2: fault begins')).toBeLessThan(when(log, 'T1: mprotect -> 0'));
    expect(when(log, 'T2: fault -> ok')).toBeGreaterThan(when(log, 'T1: mprotect -> 0'));
    expect(renderMaps(mm).split('\n').filter(Boolean)).toHaveLength(2);
  });

  it('R2: a locked area covers VMAs and the holes between; a VMA next to it does not grow over it', () => {
    //  01234567
    //  PP....QQ   T1: locks the hole [2, 6) for 10 µs (a dummy holds it; P and Q are locked too)
    //  PP>>       T2 (1 µs): mremap P to 4 pages in place — waits, grows only after T1 let go
    const { log, mm } = play(
      (mm) => {
        map(mm, 0, 2);
        map(mm, 6, 2);
      },
      [
        [
          'T1',
          0,
          (t, log) =>
            hold(t, log, 2, 6, 10_000, (log) => {
              const area = lockAt(t.mm, 2);
              log(`P, dummy, Q share the area: ${lockAt(t.mm, 0) === area && lockAt(t.mm, 6) === area}`);
              log(`dummy [2, 6): ${t.mm.tree.find(at(2))?.dummy === true && t.mm.tree.find(at(2))?.end === at(6)}`);
            }),
        ],
        [
          'T2',
          1000,
          function* (t, log) {
            log('mremap begins');
            log(`mremap -> ${(yield* sysMremap(t, at(0), pages(2), pages(4), 0, 0)) === at(0) ? 'grown in place' : 'failed'}`);
          },
        ],
        [
          'T3',
          5000,
          function* (t, log) {
            log(`P ends at column ${(t.mm.vmaLookup(at(0))!.end - at(0)) / PAGE_SIZE} while T1 holds`);
            yield spend(0);
          },
        ],
      ],
    );
    expect(log).toContain('T1: P, dummy, Q share the area: true');
    expect(log).toContain('T1: dummy [2, 6): true');
    expect(log).toContain('T3: P ends at column 2 while T1 holds');
    expect(when(log, 'T2: mremap -> grown in place')).toBeGreaterThan(when(log, 'T1: releases'));
    expect(mm.vmaLookup(at(0))!.end).toBe(at(4));
  });

  it('R3: a locked hole is held by a dummy VMA, invisible to lookups and maps, that placement avoids', () => {
    //  0123456789 .. 20
    //  BB......CC ..  E   T1: locks the hole [4, 8) for 10 µs: dummy d over it (B, C locked too)
    //      dddd           T2 (1 µs): mmap 2 pages with hint column 4 — placed elsewhere (top-down,
    //                     above E), without waiting
    let mapsBefore = '';
    const { log, mm } = play(
      (mm) => {
        map(mm, 0, 2);
        map(mm, 8, 2);
        map(mm, 20, 1);
        mapsBefore = renderMaps(mm);
      },
      [
        [
          'T1',
          0,
          (t, log) =>
            hold(t, log, 4, 8, 10_000, (log) => {
              log(`dummies ${t.mm.dummyCount}, maps unchanged ${renderMaps(t.mm) === mapsBefore}, findVma(4) is C ${t.mm.findVma(at(4))?.start === at(8)}`);
              checkMmInvariants(t.mm);
            }),
        ],
        [
          'T2',
          1000,
          function* (t, log) {
            const addr = yield* sysMmap(t, at(4), pages(2), RW, ANON, -1, 0);
            log(`mmap hint 4 -> ${addr === at(4) ? 'column 4' : 'elsewhere'}`);
          },
        ],
      ],
    );
    expect(log).toContain('T1: dummies 1, maps unchanged true, findVma(4) is C true');
    expect(when(log, 'T2: mmap hint 4 -> elsewhere')).toBeLessThan(when(log, 'T1: releases'));
    expect(mm.dummyCount).toBe(0);
  });

  it('R4: locking an area also locks the VMAs next to it, and no further', () => {
    //  0123456
    //  W.X.Y.Z   T1: locks Y for 10 µs — X and Z are locked with it (a merge may touch them), W is not
    //            T2, T3, T4 (1 µs): fault on W, X, Z
    const fault = (col: number) =>
      function* (t: MmTask, log: Log): MmGen<void> {
        log(`fault ${col} -> ${yield* handleMmFault(t, at(col), 'write')}`);
      };
    const { log } = play(
      (mm) => {
        for (const col of [0, 2, 4, 6]) map(mm, col, 1);
      },
      [
        [
          'T1',
          0,
          (t, log) =>
            hold(t, log, 4, 5, 10_000, (log) => {
              const y = lockAt(t.mm, 4);
              log(`X, Z in Y's area: ${lockAt(t.mm, 2) === y && lockAt(t.mm, 6) === y}; W: ${lockAt(t.mm, 0) === y}`);
            }),
        ],
        ['T2', 1000, fault(0)],
        ['T3', 1000, fault(2)],
        ['T4', 1000, fault(6)],
      ],
    );
    expect(log, log.join('\n')).toContain("T1: X, Z in Y's area: true; W: false");
    const release = when(log, 'T1: releases');
    expect(when(log, 'T2: fault 0 -> ok')).toBeLessThan(release);
    expect(when(log, 'T3: fault 2 -> ok'), log.join('\n')).toBeGreaterThan(release);
    expect(when(log, 'T4: fault 6 -> ok'), log.join('\n')).toBeGreaterThan(release);
  });

  describe('R5: areas are locked lowest first; mremap to a lower target re-takes its source', () => {
    //  0123456789ab
    //  ...M.N.SSSS   T3: locks the target hole [0, 2) for 10 µs (with M, by contagion)
    //                T1 (1 µs): mremap S[7, 9) -> [0, 2) (MREMAP_FIXED): holds S, needs the lower
    //                target: releases S, waits for [0, 2), re-takes S, revalidates it
    //                T2 (2 µs, the restart case): mprotect page 8 while S is released -> S changed
    const setup = (mm: MmStruct): void => {
      map(mm, 3, 1);
      map(mm, 5, 1);
      map(mm, 7, 4);
    };
    const holder: Actor = ['T3', 0, (t, log) => hold(t, log, 0, 2, 10_000)];
    const mover: Actor = [
      'T1',
      1000,
      function* (t, log) {
        const r = yield* sysMremap(t, at(7), pages(2), pages(2), MREMAP_MAYMOVE | MREMAP_FIXED, at(0));
        log(`mremap -> ${r === at(0) ? 'column 0' : r === -EFAULT ? 'EFAULT' : r}`);
      },
    ];

    it('should release the higher source, lock the lower target, then re-take the source', () => {
      const { log, mm, policy } = play(setup, [holder, mover]);
      expect(when(log, 'T1: mremap -> column 0')).toBeGreaterThan(when(log, 'T3: releases'));
      expect(policy.stats(mm).remapReorders).toBe(1);
      expect(policy.stats(mm).remapRestarts).toBe(0);
      expect(mm.vmaLookup(at(0))?.end).toBe(at(2));
      expect(mm.vmaLookup(at(7))).toBeNull();
    });

    it('should start over when the source changed while it was released', () => {
      const changer: Actor = [
        'T2',
        2000,
        function* (t, log) {
          log(`mprotect 8 -> ${yield* sysMprotect(t, at(8), pages(1), PROT_READ)}`);
        },
      ];
      const { log, mm, policy } = play(setup, [holder, mover, changer]);
      expect(when(log, 'T2: mprotect 8 -> 0')).toBeLessThan(when(log, 'T3: releases'));
      expect(policy.stats(mm).remapRestarts).toBe(1);
      expect(policy.stats(mm).remapReorders).toBe(2);
      // Started over, mremap sees S split at 8: [7, 9) crosses a VMA's end, as if T2 had run first.
      expect(log).toContain('T1: mremap -> EFAULT');
      expect(mm.vmaLookup(at(0))).toBeNull();
      expect(mm.vmaLookup(at(7))?.end).toBe(at(8));
    });
  });

  it('R6: unmap keeps its area locked by a dummy VMA until its cleanup ends', () => {
    //  01234567 .. 20 .. 40
    //  ..AA....    E     F   T1: munmap A (its close hook cleans up for 5 µs; E is locked with it)
    //  ..dd       T2 (1 µs): mmap MAP_FIXED over [2, 4) — waits for the cleanup to end
    //             T3 (1 µs): mmap with hint column 2 — the dummy is there: placed elsewhere
    const { log, mm } = play(
      (mm) => {
        map(mm, 2, 2, 0, SLOW_FD);
        map(mm, 20, 1);
        map(mm, 40, 1);
      },
      [
        [
          'T1',
          0,
          function* (t, log) {
            log(`munmap -> ${yield* sysMunmap(t, at(2), pages(2))}`);
          },
        ],
        [
          'T2',
          1000,
          function* (t, log) {
            log(`dummy over [2, 4): ${t.mm.tree.find(at(2))?.dummy === true}`);
            log(`mmap fixed -> ${(yield* sysMmap(t, at(2), pages(2), RW, ANON | MAP_FIXED, -1, 0)) === at(2) ? 'column 2' : 'failed'}`);
          },
        ],
        [
          'T3',
          1000,
          function* (t, log) {
            log(`mmap hint 2 -> ${(yield* sysMmap(t, at(2), pages(2), RW, ANON, -1, 0)) === at(2) ? 'column 2' : 'elsewhere'}`);
          },
        ],
      ],
    );
    expect(log, log.join('\n')).toContain('T2: dummy over [2, 4): true');
    const cleanupEnds = when(log, 'close 0x10002000-0x10004000 ends');
    expect(when(log, 'T2: mmap fixed -> column 2')).toBeGreaterThan(cleanupEnds);
    expect(when(log, 'T3: mmap hint 2 -> elsewhere')).toBeLessThan(cleanupEnds);
    expect(mm.dummyCount).toBe(0);
  });

  describe('R7: vm_area_lock is refcounted; a split inherits it, a merge needs it shared', () => {
    it('should give a split VMA the same lock (ref++) and drop the merged one (ref--)', () => {
      //  01234
      //  AAAAA   mprotect [1, 2): A splits in three, all on one lock; mprotect back: one VMA again
      const { log } = play(
        (mm) => map(mm, 0, 5),
        [
          [
            'T1',
            0,
            function* (t, log) {
              yield* sysMprotect(t, at(1), pages(1), PROT_READ);
              const lock = lockAt(t.mm, 0);
              log(`after split: same lock ${lockAt(t.mm, 1) === lock && lockAt(t.mm, 2) === lock}, refs ${lock.refs}`);
              yield* sysMprotect(t, at(1), pages(1), RW);
              log(`after merge: refs ${lockAt(t.mm, 0).refs}, VMAs ${t.mm.mapCount}`);
            },
          ],
        ],
      );
      expect(log).toEqual(['T1: after split: same lock true, refs 3', 'T1: after merge: refs 1, VMAs 1']);
    });

    it('should not merge two VMAs that hold different locks', () => {
      //  012
      //  A*C   the new range [1, 2) could join A and C; with C on another lock only A grows
      const joined = (shared: boolean): number => {
        const mm = new MmStruct(1, new VmaRangePolicy());
        map(mm, 0, 1);
        map(mm, 2, 1);
        return runMmOp(mm, function* (t) {
          const g = yield* mm.policy.lockForModify(mm, t.thread, at(1), at(2));
          const c = mm.vmaLookup(at(2))!;
          const other = new VmAreaLock(999, 1);
          if (!shared) {
            yield other.sem.downWrite();
            lockAt(mm, 2).users.delete(c);
            c.areaLock = other;
            other.users.add(c);
          }
          vmaMergeNewRange(mm, at(1), at(2), { flags: c.flags, file: null, vmOps: null, anonVma: null }, at(1) / PAGE_SIZE);
          if (!shared) yield other.sem.upWrite();
          yield* mm.policy.unlock(g);
          return mm.mapCount;
        });
      };
      expect(joined(true)).toBe(1);
      expect(joined(false)).toBe(2);
    });
  });

  describe('R8: get_unmapped_area waits for a locked hole when nothing else fits, then searches again', () => {
    //  [mmap_min .. H)   H: 1 GiB hole   [H + 1 GiB .. TASK_SIZE)
    //  AAAAAAAAAAAAAAA   dddddddddddd    BBBBBBBBBBBBBBBBBBBBBBB
    //  T1 locks the hole for 10 µs, then lets it go unmapped or maps it; T2 (1 µs) mmaps 1 GiB
    //  anywhere: only the locked hole would do
    const GIB = 1 << 30;
    const H = 0x100000000000;
    const setup = (mm: MmStruct): void => {
      expect(runMmOp(mm, (t) => sysMmap(t, MMAP_MIN_ADDR, H - MMAP_MIN_ADDR, PROT_READ, ANON | MAP_FIXED, -1, 0))).toBe(MMAP_MIN_ADDR);
      expect(runMmOp(mm, (t) => sysMmap(t, H + GIB, TASK_SIZE - H - GIB, PROT_READ, ANON | MAP_FIXED, -1, 0))).toBe(H + GIB);
    };
    const mapper = (startNs: number): Actor => [
      'T2',
      startNs,
      function* (t, log) {
        const addr = yield* sysMmap(t, 0, GIB, RW, ANON, -1, 0);
        log(`mmap 1 GiB -> ${addr === H ? 'the hole' : addr === -ENOMEM ? 'ENOMEM' : addr}`);
      },
    ];

    it('should get the hole once its owner releases it unmapped', () => {
      const holder: Actor = [
        'T1',
        0,
        function* (t, log) {
          const g = yield* t.mm.policy.lockForModify(t.mm, t.thread, H, H + GIB);
          log('holds');
          yield spend(10_000);
          log('releases');
          yield* t.mm.policy.unlock(g);
        },
      ];
      const { log, mm, policy } = play(setup, [holder, mapper(1000)]);
      expect(when(log, 'T2: mmap 1 GiB -> the hole')).toBeGreaterThan(when(log, 'T1: releases'));
      expect(policy.stats(mm).lockedAreaWaits).toBe(1);
    });

    it('should search again and fail when the owner mapped it meanwhile', () => {
      const owner: Actor = [
        'T1',
        0,
        function* (t, log) {
          // Lock the hole, think for 10 µs, then map it (mmap_region under the same lock).
          const g = yield* t.mm.policy.lockForModify(t.mm, t.thread, H, H + GIB);
          log('holds');
          yield spend(10_000);
          const r = yield* mmapRegion(t.mm, t.thread, g, H, GIB, VM_READ | VM_MAYREAD, null, H / PAGE_SIZE);
          log(`mapped the hole: ${r === H}`);
          yield* t.mm.policy.unlock(g);
        },
      ];
      const { log, mm, policy } = play(setup, [owner, mapper(1000)]);
      expect(when(log, 'T2: mmap 1 GiB -> ENOMEM')).toBeGreaterThan(when(log, 'T1: mapped the hole: true'));
      expect(policy.stats(mm).lockedAreaWaits).toBe(1);
    });
  });

  describe('R9: a stack never grows over a locked area', () => {
    //  col 0 ..... 100 ........................ 299 300..303
    //              T1 maps X here (MAP_FIXED)    ^   SSSS  (MAP_GROWSDOWN)
    //                                            T2 (1 µs) faults at 299: S is locked with T1's
    //                                            area (contagion), so it waits; then X lies inside
    //                                            the stack guard gap: no growth (SIGSEGV)
    const setup = (mm: MmStruct): void => map(mm, 300, 4, MAP_GROWSDOWN);
    const grower: Actor = [
      'T2',
      1000,
      function* (t, log) {
        log(`fault 299 -> ${yield* handleMmFault(t, at(299), 'write')}`);
      },
    ];

    it('should make a growing fault wait for the area below, then respect what was mapped there', () => {
      const mapper: Actor = [
        'T1',
        0,
        function* (t, log) {
          const r = yield* sysMmap(t, at(100), pages(1), RW, MAP_PRIVATE | MAP_FIXED, SLOW_FD, 0);
          log(`mapped X: ${r === at(100)}`);
        },
      ];
      const alone = play(setup, [grower]);
      expect(alone.log).toEqual(['T2: fault 299 -> ok']);
      const { log } = play(setup, [mapper, grower]);
      expect(when(log, 'T2: fault 299 -> SEGV_MAPERR')).toBeGreaterThan(when(log, 'T1: mapped X: true'));
    });

    it('should refuse to grow into a locked area held by a dummy (a downgraded owner)', () => {
      // A dummy over [250, 260) whose owner holds it for read (as after a downgrade).
      const owned = new RwSemaphore('owner');
      const { log, mm, policy } = play(
        (mm) => {
          setup(mm);
          const lock = new VmAreaLock(1000, 1);
          const d = new Vma(at(250), at(260), 0, 0, null, null, null, true);
          d.areaLock = lock;
          lock.users.add(d);
          mm.insertVmaUnchecked(d);
        },
        [
          [
            'T1',
            0,
            function* (t, log) {
              const d = t.mm.tree.find(at(250))!;
              yield (d.areaLock as VmAreaLock).sem.downRead();
              log('holds the dummy');
              yield spend(10_000);
              t.mm.eraseVmaUnchecked(d);
              yield (d.areaLock as VmAreaLock).sem.upRead();
              log('released');
              yield owned.downRead();
              yield owned.upRead();
            },
          ],
          grower,
          [
            'T3',
            20_000,
            function* (t, log) {
              log(`fault 299 again -> ${yield* handleMmFault(t, at(299), 'write')}`);
            },
          ],
        ],
      );
      expect(when(log, 'T2: fault 299 -> SEGV_MAPERR')).toBeLessThan(when(log, 'T1: released'));
      expect(when(log, 'T3: fault 299 again -> ok')).toBeGreaterThan(when(log, 'T1: released'));
      expect(policy.stats(mm).growthRefused).toBe(1);
    });
  });

  describe('R10: munmap zaps and cleans up under its area downgraded to read', () => {
    //  0123
    //  AABB   T1: munmap A (close hook: 5 µs of cleanup)
    //         T2 (1 µs): fault on B, locked with A's area: runs during the cleanup (read)
    const run = (growsDown: boolean): string[] =>
      play(
        (mm) => {
          map(mm, 0, 2, 0, SLOW_FD);
          map(mm, 2, 2, growsDown ? MAP_GROWSDOWN : 0);
        },
        [
          [
            'T1',
            0,
            function* (t, log) {
              log(`munmap -> ${yield* sysMunmap(t, at(0), pages(2))}`);
            },
          ],
          [
            'T2',
            1000,
            function* (t, log) {
              log(`fault B -> ${yield* handleMmFault(t, at(3), 'read')}`);
            },
          ],
        ],
      ).log;

    it('should let a fault on the neighbour run during the cleanup', () => {
      const log = run(false);
      expect(when(log, 'T2: fault B -> ok')).toBeLessThan(when(log, 'close 0x10000000-0x10002000 ends'));
    });

    it('should not downgrade next to a stack, which could grow into the range meanwhile', () => {
      const log = run(true);
      expect(when(log, 'T2: fault B -> ok')).toBeGreaterThan(when(log, 'T1: munmap -> 0'));
    });
  });
});
