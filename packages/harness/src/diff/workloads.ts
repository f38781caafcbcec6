/**
 * The workloads `policyDiff` runs under two policies: the shared random mm workload, and user
 * programs that work by luck (R12) — each carrying the user-level expectations it relies on,
 * which hold under global-rwsem on every schedule and which a finer policy breaks. Each program
 * is modelled on a real pattern; its comment draws the address space (one character a page).
 *
 * Determinism: a workload draws nothing from the run's shared program stream (drawn in schedule
 * order, so it would differ between policies): the random workload deals out calls drawn up
 * front from the seed, the user programs are fixed sequences of calls. A thread thus makes the
 * same calls in the same program order under both policies as long as the results it uses agree.
 */
import {
  MADV_DOFORK,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MmStruct,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  type Program,
  handleMmFault,
  hex,
  runMmOp,
  runProgram,
  sysMadvise,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
} from '@vmalock/core';
import { GlobalRwsemPolicy, type MmHistoryOp, MmHistoryRecorder, describeMmCall, recordedWorkload } from '@vmalock/policies';
import { type MapsEntry, mapsLockingOf, readProcMaps } from './procMapsRead.js';
import type { UserSpace } from './userSpace.js';

/** What a run of a workload is asked for. */
export interface DiffWorkloadParams {
  readonly seed: number;
  readonly threads: number;
  /** Calls per thread (random), or rounds of the program's loop (user programs). */
  readonly calls: number;
}

/** One run of a workload: its program, and (random) the mm history for the linearizability check. */
export interface BuiltWorkload {
  readonly program: Program;
  readonly history?: () => readonly MmHistoryOp[];
}

/** A workload the diff can run. */
export interface DiffWorkload {
  readonly name: string;
  /** One line: what the program does. */
  readonly summary: string;
  /** The user-level expectations its threads check: name -> what the program relies on. */
  readonly expectations: Readonly<Record<string, string>>;
  /** The thread count: fixed by the program, or null when `threads` sets it. */
  readonly fixedThreads: number | null;
  readonly defaultThreads: number;
  readonly defaultCalls: number;
  /** PCT's step bound k for the default size: about the steps of its runs (change points past the end are wasted). */
  readonly pctSteps: number;
  /**
   * Set up `mm` as the program had it before its threads start (sequentially, through the
   * syscalls), and return the run's threads. Called once per run, on a fresh mm.
   */
  build(mm: MmStruct, user: UserSpace, params: DiffWorkloadParams): BuiltWorkload;
}

const P = PAGE_SIZE;
const BASE = 0x40000000;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** mmap one anonymous mapping before the threads start; throws if the setup itself fails. */
function setupMmap(mm: MmStruct, addr: number, len: number, prot: number, flags: number): number {
  const r = runMmOp(mm, (t) => sysMmap(t, addr, len, prot, flags, -1, 0), 'setup');
  if (r < 0) throw new Error(`workload setup: mmap(${hex(addr)}, ${hex(len)}) failed with ${r}`);
  return r;
}

/**
 * The shared random workload (packages/policies/src/testing/mmWorkload.ts): `threads` threads of
 * `calls` random mmap(MAP_FIXED)/munmap/mprotect/mremap/madvise/brk calls and faults in a 32-page
 * window. The calls are the shared workload's draws for the seed, made once up front as one
 * thread would make them, and dealt out: thread t makes calls [t*calls, (t+1)*calls).
 * No expectations: only results, findings and the final state are compared, and each run's
 * history is checked for linearizability, which tells a policy's error from an interleaving's.
 */
const randomWorkload: DiffWorkload = {
  name: 'random',
  summary: 'threads of random mm calls and faults colliding in a 32-page window (the conformance workload)',
  expectations: {},
  fixedThreads: null,
  defaultThreads: 3,
  defaultCalls: 12,
  pctSteps: 400,
  build(mm, user, params) {
    const calls = drawCalls(params.seed, params.threads * params.calls);
    const recorder = new MmHistoryRecorder();
    const program: Program = (sim) => {
      for (let t = 0; t < params.threads; t++) {
        const mine = calls.slice(t * params.calls, (t + 1) * params.calls);
        sim.spawn(`task${t}`, function* (thread) {
          const task = { thread, mm };
          for (const call of mine) yield* user.call(thread, describeMmCall(call), recorder.recorded(task, call));
        });
      }
    };
    return { program, history: () => recorder.ops };
  },
};

/** The shared workload's first `n` calls for `seed`, as one thread draws them (a run on a scratch mm). */
function drawCalls(seed: number, n: number): Array<MmHistoryOp['call']> {
  const recorder = new MmHistoryRecorder();
  const r = runProgram(recordedWorkload(new MmStruct(1, new GlobalRwsemPolicy()), 1, n, recorder), { seed, strategy: 'timed', cpus: 1 });
  if (r.status !== 'ok' || recorder.ops.length !== n) throw new Error(`random workload: drawing ${n} calls for seed ${seed} failed: ${r.summary}`);
  return recorder.ops.map((op) => op.call);
}

/** A maps read for reports: how many lines it returned. */
function showMaps(entries: readonly MapsEntry[]): string {
  return `${entries.length} lines`;
}

function describeEntries(entries: readonly MapsEntry[]): string {
  return entries.map((e) => `${hex(e.start)}-${hex(e.end)} ${e.line.split(' ')[1] ?? ''}`).join(', ');
}

/**
 * A profiler thread reads /proc/self/maps to find the JIT's arena, while the JIT thread moves the
 * arena between two slots with mremap(MREMAP_MAYMOVE | MREMAP_FIXED) and writes to it
 * (a moving code cache, or realloc of a large block, which glibc does with mremap). Each read
 * fits in one page, so under mmap_sem it is one `read()` call holding the lock: a consistent
 * snapshot with the arena listed exactly once. The program relies on that (`arena-listed-once`);
 * with maps read under per-VMA locks (Linux 6.17) the arena moving across the walk's position
 * is missed or listed twice.
 *
 *   page  0123456789abcdef0123456789a
 *         ..AA......LL....BB....GG...   A: the arena's first slot (rw-p), B: its second,
 *                                       L: a library (r-xp), G: a guard (r--p)
 */
const mapsVsMremap: DiffWorkload = {
  name: 'maps-vs-mremap',
  summary: 'a profiler reads /proc/self/maps while the JIT moves its arena with mremap(MREMAP_FIXED)',
  expectations: {
    'arena-listed-once': 'every read of /proc/self/maps lists the arena (the one rw-p mapping) exactly once',
  },
  fixedThreads: 2,
  defaultThreads: 2,
  defaultCalls: 4,
  pctSteps: 100,
  build(mm, user, params) {
    const slots = [BASE + 2 * P, BASE + 16 * P] as const;
    const arenaLen = 2 * P;
    setupMmap(mm, BASE + 10 * P, 2 * P, PROT_READ | PROT_EXEC, ANON | MAP_FIXED);
    setupMmap(mm, BASE + 22 * P, 2 * P, PROT_READ, ANON | MAP_FIXED);
    setupMmap(mm, slots[0], arenaLen, PROT_READ | PROT_WRITE, ANON | MAP_FIXED);
    const locking = mapsLockingOf(mm.policy.name);
    const program: Program = (sim) => {
      sim.spawn('jit', function* (thread) {
        const task = { thread, mm };
        let at = 0;
        for (let i = 0; i < params.calls; i++) {
          const from = slots[at]!;
          const to = slots[1 - at]!;
          yield* user.call(
            thread,
            `mremap(${hex(from)}, ${hex(arenaLen)}, ${hex(arenaLen)}, MREMAP_MAYMOVE|MREMAP_FIXED, ${hex(to)})`,
            sysMremap(task, from, arenaLen, arenaLen, MREMAP_MAYMOVE | MREMAP_FIXED, to),
          );
          at = 1 - at;
          yield* user.call(thread, `write ${hex(to)}`, handleMmFault(task, to, 'write'));
        }
      });
      sim.spawn('profiler', function* (thread) {
        const task = { thread, mm };
        for (let i = 0; i < params.calls; i++) {
          const maps = yield* user.call(thread, 'read /proc/self/maps', readProcMaps(task, locking), { ignoreResult: true, show: showMaps });
          const arena = maps.filter((e) => e.line.includes(' rw-p ') && e.end - e.start === arenaLen);
          user.expect(thread, 'arena-listed-once', arena.length === 1, () => `the arena is listed ${arena.length} times in [${describeEntries(maps)}]`);
        }
      });
    };
    return { program };
  },
};

/**
 * A JIT flips one page of its code region writable and back (W^X: mprotect RW, write the code,
 * mprotect RX), which splits the code VMA in three and merges it back; a profiler (an unwinder,
 * a symboliser) reads /proc/self/maps and builds an interval map of the code region, relying on
 * the lines inside it to tile it exactly — each address once, in order (`code-lines-tile`). One
 * `read()` under mmap_sem always sees one state; per-VMA reads can list the first third of a
 * split VMA and then the whole merged VMA (overlap), as the kernel's selftest
 * proc-maps-race.c allows ("the same vma might be seen twice").
 *
 *   page  0123456789abcdef
 *         DDDDDDDDCCCCRRRR   D: data (rw-p), C: code (r-xp; pages 9-b flip to rw-p and back),
 *                            R: rodata (r--p)
 */
const mapsVsMprotect: DiffWorkload = {
  name: 'maps-vs-mprotect',
  summary: 'a profiler reads /proc/self/maps while the JIT flips code pages W^X with mprotect (split, merge)',
  expectations: {
    'code-lines-tile': 'the lines of every maps read inside the code region cover it exactly once, in address order',
  },
  fixedThreads: 2,
  defaultThreads: 2,
  defaultCalls: 4,
  pctSteps: 100,
  build(mm, user, params) {
    const code = BASE + 8 * P;
    const codeEnd = code + 4 * P;
    setupMmap(mm, BASE, 8 * P, PROT_READ | PROT_WRITE, ANON | MAP_FIXED);
    setupMmap(mm, code, 4 * P, PROT_READ | PROT_EXEC, ANON | MAP_FIXED);
    setupMmap(mm, codeEnd, 4 * P, PROT_READ, ANON | MAP_FIXED);
    const locking = mapsLockingOf(mm.policy.name);
    const program: Program = (sim) => {
      sim.spawn('jit', function* (thread) {
        const task = { thread, mm };
        for (let i = 0; i < params.calls; i++) {
          const page = code + ((i % 3) + 1) * P;
          yield* user.call(thread, `mprotect(${hex(page)}, ${hex(P)}, PROT_READ|PROT_WRITE)`, sysMprotect(task, page, P, PROT_READ | PROT_WRITE));
          yield* user.call(thread, `write ${hex(page)}`, handleMmFault(task, page, 'write'));
          yield* user.call(thread, `mprotect(${hex(page)}, ${hex(P)}, PROT_READ|PROT_EXEC)`, sysMprotect(task, page, P, PROT_READ | PROT_EXEC));
        }
      });
      sim.spawn('profiler', function* (thread) {
        const task = { thread, mm };
        for (let i = 0; i < params.calls; i++) {
          const maps = yield* user.call(thread, 'read /proc/self/maps', readProcMaps(task, locking), { ignoreResult: true, show: showMaps });
          const inside = maps.filter((e) => e.end > code && e.start < codeEnd);
          let at = code;
          let tiles = true;
          for (const e of inside) {
            if (Math.max(e.start, code) !== at) tiles = false;
            at = Math.min(e.end, codeEnd);
          }
          if (at !== codeEnd) tiles = false;
          user.expect(thread, 'code-lines-tile', tiles, () => `the code region [${hex(code)}, ${hex(codeEnd)}) reads as [${describeEntries(inside)}]`);
        }
      });
    };
    return { program };
  },
};

/**
 * The main thread recycles its I/O buffer — munmap it, mmap(NULL) a fresh one of the same size —
 * and relies on getting the same address back (`same-address-back`): other structures still
 * point there. Top-down placement under mmap_sem gives it back every time, since the only hole
 * it fits is the one it just made. Meanwhile another thread, done with a fork, makes the process's
 * mappings inheritable again with one madvise(MADV_DOFORK) over their whole range (nothing here
 * was MADV_DONTFORK, so it changes nothing; it ignores the ENOMEM the buffer's hole gives). Under vma-range that madvise locks its range — holes
 * included, with dummy VMAs (R3) — and get_unmapped_area skips a locked hole when a lower one
 * fits (R8): the buffer comes back elsewhere.
 *
 *   (top-down from mmap_base)  ...TTTTBBRRRR|   T: a table (r--p), B: the buffer (rw-p),
 *                                            R: a ring (r--p), |: mmap_base
 */
const FORKER_ROUNDS = 3;

const remapVsMadvise: DiffWorkload = {
  name: 'remap-vs-madvise',
  summary: 'the main thread munmaps and re-mmaps its buffer expecting the same address while another madvises the whole range',
  expectations: {
    'same-address-back': 'mmap(NULL) of the buffer, right after munmapping it, returns the address it had',
  },
  fixedThreads: 2,
  defaultThreads: 2,
  defaultCalls: 4,
  pctSteps: 100,
  build(mm, user, params) {
    const bufferLen = 2 * P;
    const ring = setupMmap(mm, 0, 4 * P, PROT_READ, ANON);
    const buffer = setupMmap(mm, 0, bufferLen, PROT_READ | PROT_WRITE, ANON);
    const table = setupMmap(mm, 0, 4 * P, PROT_READ, ANON);
    const rangeEnd = ring + 4 * P;
    const program: Program = (sim) => {
      sim.spawn('main', function* (thread) {
        const task = { thread, mm };
        let at = buffer;
        for (let i = 0; i < params.calls; i++) {
          yield* user.call(thread, `write ${hex(at)}`, handleMmFault(task, at, 'write'));
          yield* user.call(thread, `munmap(${hex(at)}, ${hex(bufferLen)})`, sysMunmap(task, at, bufferLen));
          const got = yield* user.call(
            thread,
            `mmap(NULL, ${hex(bufferLen)}, PROT_READ|PROT_WRITE)`,
            sysMmap(task, 0, bufferLen, PROT_READ | PROT_WRITE, ANON, -1, 0),
          );
          user.expect(thread, 'same-address-back', got === buffer, () => `mmap(NULL) returned ${hex(got)}, the buffer was at ${hex(buffer)}`);
          if (got < 0) return;
          at = got;
        }
      });
      sim.spawn('forker', function* (thread) {
        const task = { thread, mm };
        for (let i = 0; i < FORKER_ROUNDS * params.calls; i++) {
          yield* user.call(thread, `madvise(${hex(table)}, ${hex(rangeEnd - table)}, MADV_DOFORK)`, sysMadvise(task, table, rangeEnd - table, MADV_DOFORK), {
            ignoreResult: true,
          });
        }
      });
    };
    return { program };
  },
};

/** Every workload `vmalock diff` knows, by name. */
export const DIFF_WORKLOADS: readonly DiffWorkload[] = [randomWorkload, mapsVsMremap, mapsVsMprotect, remapVsMadvise];

/** The names `--workload` accepts. */
export function diffWorkloadNames(): string[] {
  return DIFF_WORKLOADS.map((w) => w.name);
}

/** A workload by name; throws a RangeError naming the known ones. */
export function diffWorkload(name: string): DiffWorkload {
  const w = DIFF_WORKLOADS.find((x) => x.name === name);
  if (w === undefined) throw new RangeError(`unknown workload '${name}' (known: ${diffWorkloadNames().join(', ')})`);
  return w;
}
