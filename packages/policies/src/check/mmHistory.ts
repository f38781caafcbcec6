/**
 * The mm side of the linearizability check: record what simulated threads called and got back,
 * a sequential model of the address space to check it against, and a partition of the calls
 * into independent sub-histories.
 *
 * - Recording: `MmHistoryRecorder.recorded(task, call)` wraps `runCall` of the shared workload;
 *   invocation and response times are positions in the order in which these events happened in
 *   the run (the simulator runs one thread at a time, so that order is real time: a call that
 *   returned before another was invoked did so at a smaller position).
 * - Model: a state is the list of calls applied so far; applying a call replays the list and the
 *   call on a fresh `MmStruct` under global-rwsem (one thread, so the simulator's own sequential
 *   semantics, checked against Linux by mm/model.test.ts). The fingerprint is everything a later
 *   call can see: the VMAs (range, flags, pgoff, file, which VMAs share an anon_vma), the break,
 *   and the present pages. Applying is memoised by (fingerprint, call): a state is a function of
 *   its fingerprint, so equal fingerprints give equal answers.
 * - Partition: see `mmPartition`.
 */
import { type HistoryOp, type MmGen, MmStruct, type MmTask, type PartitionKey, type Program, type SequentialModel, hex, runProgram } from '@vmalock/core';
import { GlobalRwsemPolicy } from '../globalRwsem.js';
import { type MmCall, base, page, randomCall, runCall } from '../testing/mmWorkload.js';

/** What a call returned: an address, 0 or -errno; for a fault, how it ended. */
export type MmResult = number | string;
export type MmHistoryOp = HistoryOp<MmCall, MmResult>;

/** Collects the history of the calls made through `recorded`. */
export class MmHistoryRecorder {
  readonly ops: MmHistoryOp[] = [];
  /** The next event's position in the run's order of events. */
  #clock = 0;

  /** Run `call` as `task`, recording when it was invoked, when it returned, and what it returned. */
  *recorded(task: MmTask, call: MmCall): MmGen<MmResult> {
    const invokedAt = this.#clock++;
    const result = yield* runCall(task, call);
    this.ops.push({ id: this.ops.length, thread: task.thread.label, invokedAt, respondedAt: this.#clock++, call, result });
    return result;
  }
}

/** The shared workload (`threads` threads of `calls` random calls each), with every call recorded. */
export function recordedWorkload(mm: MmStruct, threads: number, calls: number, recorder: MmHistoryRecorder): Program {
  return (sim) => {
    for (let t = 0; t < threads; t++) {
      sim.spawn(`task${t}`, function* (thread) {
        const task = { thread, mm };
        // The same random draws as `workload`, so a seed makes the same calls either way.
        for (let i = 0; i < calls; i++) yield* recorder.recorded(task, randomCall(thread.rng, mm));
      });
    }
  };
}

/** A state of the model: the calls applied so far, and the fingerprint of where they lead. */
export interface MmModelState {
  readonly calls: readonly MmCall[];
  readonly fingerprint: string;
}

/** Bound on memoised applications per model (one model per check keeps it small). */
const applyCacheMax = 1_000_000;

/**
 * The sequential model: calls replayed on a fresh mm made by `newMm` (default: pid 1, default
 * layout, global-rwsem, as the workload tests make theirs). Use one model per check.
 */
export function mmSequentialModel(newMm: () => MmStruct = () => new MmStruct(1, new GlobalRwsemPolicy())): SequentialModel<MmModelState, MmCall, MmResult> {
  const cache = new Map<string, { readonly state: MmModelState; readonly result: MmResult }>();
  return {
    init: () => ({ calls: [], fingerprint: mmFingerprint(newMm()) }),
    apply(state, call) {
      const key = `${state.fingerprint}\n${JSON.stringify(call)}`;
      const hit = cache.get(key);
      if (hit !== undefined) return hit;
      const calls = [...state.calls, call];
      const mm = newMm();
      const results = replayCalls(mm, calls);
      const applied = { state: { calls, fingerprint: mmFingerprint(mm) }, result: results[results.length - 1]! };
      if (cache.size < applyCacheMax) cache.set(key, applied);
      return applied;
    },
    fingerprint: (state) => state.fingerprint,
    resultsEqual: (observed, model) => observed === model,
    describeCall: describeMmCall,
  };
}

/** Run `calls` one after another on one thread of `mm`; their results. */
export function replayCalls(mm: MmStruct, calls: readonly MmCall[]): MmResult[] {
  const results: MmResult[] = [];
  const r = runProgram(
    (sim) => {
      sim.spawn('replay', function* (thread) {
        for (const call of calls) results.push(yield* runCall({ thread, mm }, call));
      });
    },
    { seed: 0, strategy: 'timed', cpus: 1 },
  );
  if (r.status !== 'ok' || results.length !== calls.length) throw new Error(`mm model: the replay of ${calls.length} calls failed: ${r.summary}`);
  return results;
}

/**
 * Everything about `mm` that a later call's result or effect depends on. anon_vmas are named by
 * first appearance: only which VMAs share one matters (merges compare them), not their identity.
 */
export function mmFingerprint(mm: MmStruct): string {
  const anonNames = new Map<object, number>();
  const lines = [`brk ${hex(mm.startBrk)}-${hex(mm.brk)}`];
  for (const vma of mm.vmas()) {
    let anon = 0;
    if (vma.anonVma !== null) {
      anon = anonNames.get(vma.anonVma) ?? anonNames.size + 1;
      anonNames.set(vma.anonVma, anon);
    }
    const pages: string[] = [];
    for (const { addr, view } of mm.pageTables.walk(vma.start, vma.end)) {
      pages.push(`${((addr - vma.start) / page).toString(16)}${view.writable ? 'w' : 'r'}${view.page.zero ? 'z' : ''}${view.huge ? 'h' : ''}`);
    }
    const file = vma.file === null ? '-' : vma.file.path;
    lines.push(
      `${hex(vma.start)}-${hex(vma.end)} ${vma.flags.toString(16)} ${vma.pgoff.toString(16)} ${file} a${anon} ${vma.vmOps?.name ?? '-'} ${pages.join(',')}`,
    );
  }
  return lines.join('\n');
}

/** A call for reports: `munmap(0x40003000, 0x2000)`. */
export function describeMmCall(call: MmCall): string {
  switch (call.op) {
    case 'mmap':
    case 'munmap':
    case 'mremap':
      return `${call.op}(${hex(call.addr)}, ${hex(call.len)})`;
    case 'mprotect':
    case 'madvise':
      return `${call.op}(${hex(call.addr)}, ${hex(call.len)}, ${call.arg})`;
    case 'brk':
      return `brk(${hex(call.addr)})`;
    case 'fault':
      return `fault(${hex(call.addr)}, ${call.write ? 'write' : 'read'})`;
  }
}

/** The address range every call of a history touches (brk aside: the heap is elsewhere). */
export interface MmWindow {
  readonly start: number;
  readonly end: number;
}

/** The workload's window: its 32 pages, 8-page lengths, mremap's extra page and a neighbour on each side. */
export const workloadWindow: MmWindow = { start: base - page, end: base + 48 * page };

/** The global key: calls whose result depends on the whole address space. */
const GLOBAL: PartitionKey = 'global';

/**
 * The keys of a call, for `checkLinearizability`'s `partition`. Why it is sound for these calls:
 * - mmap MAP_FIXED, munmap, mprotect, madvise and faults return what the pages of their own
 *   range hold (mapped or not, protection); nothing else decides their result at these sizes
 *   (map_count stays far below max_map_count), and they change only those pages' mapping and
 *   protection. Their keys are the pages of the range, plus one neighbour on each side because a
 *   merge may change the neighbouring VMA (conservative: no result depends on VMA boundaries).
 * - mremap's result depends on the extent of the VMA at `addr` (whose boundaries a merge, a
 *   split or an anon_vma given by a fault anywhere in that VMA moves) and, when it moves, on
 *   every earlier move: it touches the global key and every page of the window, which joins it
 *   with everything.
 * - brk depends on the heap and the break: it touches the global key (the heap is far from the
 *   window, but a move could in principle land there).
 * A call reaching outside `window` throws: the window must cover the history.
 */
export function mmPartition(window: MmWindow = workloadWindow): (op: MmHistoryOp) => readonly PartitionKey[] {
  const pagesOf = (start: number, end: number): number[] => {
    const first = Math.floor(start / page) * page - page;
    const last = Math.ceil(end / page) * page + page;
    if (first < window.start || last > window.end) {
      throw new RangeError(`mm partition: [${hex(start)}, ${hex(end)}) and its neighbours lie outside the window [${hex(window.start)}, ${hex(window.end)})`);
    }
    const keys: number[] = [];
    for (let a = first; a < last; a += page) keys.push(a / page);
    return keys;
  };
  const everyPage = pagesOf(window.start + page, window.end - page);
  return (op) => {
    const call = op.call;
    switch (call.op) {
      case 'mmap':
      case 'munmap':
      case 'mprotect':
      case 'madvise':
        return pagesOf(call.addr, call.addr + call.len);
      case 'fault':
        return pagesOf(call.addr, call.addr + 1);
      case 'mremap':
        return [GLOBAL, ...everyPage];
      case 'brk':
        return [GLOBAL];
    }
  };
}
