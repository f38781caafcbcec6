// Replay of a real `strace -f -tt -T` log as a workload: one simulated thread per traced tid of
// one process, each making that tid's mm calls in its recorded order, all concurrently under the
// process's policy (the sequential, exact replay is replay/traceReplay.ts; its rules are reused
// here). Before the threads start, the workload sets the process up as the log implies:
//
// - the heap starts at the first break the log shows;
// - a file-backed mmap gets the file behind its fd (no open() is traced: a non-fixed map at
//   offset 0 starts a new file, as in the sequential replay); each file gets an fd of its own so
//   concurrent threads never see another thread's file behind a reused fd number;
// - ranges that successful mprotect/madvise/mremap calls touch before any traced call mapped them
//   existed before tracing began: they are mapped first (implied mappings, counted).
//
// Recorded addresses are kept: a non-fixed mmap asks for its recorded address as a hint, a moving
// mremap goes to its recorded address (MREMAP_FIXED). Concurrency can still make a result differ
// from the recorded one (another thread's mapping is in the way now): counted as a mismatch, not
// an error — the replay goes on, and the mm stays consistent. Calls before the process's last
// execve (a brk(NULL) answering a different break) belong to an address space the exec threw
// away: they are skipped.
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  type MmGen,
  MmFile,
  type MmTask,
  PROT_READ,
  PROT_WRITE,
  pageAlign,
  runMmOp,
  spend,
  sysBrk,
  sysMadvise,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
} from '@vmalock/core';
import { z } from 'zod';
import { groupTids } from '../replay/traceReplay.js';
import { type StraceCall, type StraceLog, parseStrace } from '../strace/parseStrace.js';
import { type TaskRecord, parseTasks } from '../strace/parseTasks.js';
import { ANON, P, spawnTask } from './common.js';
import { WorkloadParamsError, defineWorkload } from './workload.js';

export const straceReplayParams = z.strictObject({
  path: z
    .string()
    .min(1)
    .describe('the strace log to replay (`strace -f -tt -T -e trace=mmap,munmap,mprotect,mremap,brk,madvise`), relative to the working directory'),
  tasks: z
    .string()
    .min(1)
    .optional()
    .describe('the task tree of the same run (shared/traces/tasks/*.tasks.tsv): which tids share an mm; without it, the brk(NULL) heuristic groups them'),
  tgid: z.number().int().min(1).optional().describe('the traced process to replay; default: the one with the most mm calls'),
  callsMax: z.number().int().min(1).max(10_000_000).default(2000).describe('replay only the first callsMax mm calls of the process, in completion order'),
  pace: z
    .boolean()
    .default(false)
    .describe(
      'start each call no earlier than its recorded time after the first replayed call (timed strategy: the recorded order mostly holds); false: back to back',
    ),
  strict: z.boolean().default(false).describe('a malformed line is an error; false: malformed lines are skipped (and counted)'),
});
export type StraceReplayParams = z.output<typeof straceReplayParams>;

/** The syscalls the mm model runs; the others of the log (mlock family) are skipped and counted. */
const modelled = new Set(['mmap', 'munmap', 'mprotect', 'mremap', 'brk', 'madvise']);

/** Fds of the replay's files: above any fd a subsystem opens (those start at 3). */
const TRACE_FD_BASE = 1_000_000;

/** One call as a thread replays it. */
export interface ReplayStep {
  readonly call: StraceCall;
  /** The fd of its file (a file-backed mmap), replacing the recorded one. */
  readonly fd: number;
}

/** What the workload replays of a log: derived from the log alone, before any run. */
export interface ReplayScript {
  readonly tgid: number;
  /** The calls of each tid, in order, by tid in order of first appearance. */
  readonly threads: ReadonlyMap<number, readonly ReplayStep[]>;
  /** The heap's start, from the first break the log shows (null: no brk in the replayed calls). */
  readonly brk: number | null;
  /** Files by their fd. */
  readonly files: ReadonlyMap<number, MmFile>;
  /** Ranges mapped before tracing began: [start, end) with their protection. */
  readonly implied: readonly { readonly start: number; readonly end: number; readonly prot: number }[];
  readonly calls: number;
  /** Calls of syscalls the model does not run (not replayed). */
  readonly notModelled: number;
  /** Calls dropped: before the last execve, or past callsMax. */
  readonly skipped: number;
  readonly malformed: number;
  /** The µs time of the first replayed call (pace's origin). */
  readonly firstUs: number;
}

/** Disjoint, non-adjacent [start, end) ranges sorted by start. */
class RangeSet {
  readonly #ranges: [number, number][] = [];

  /** The index of the first range ending at or after `addr`. */
  #firstEndingFrom(addr: number): number {
    let lo = 0;
    let hi = this.#ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#ranges[mid]![1] < addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The parts of [start, end) not in the set. */
  holes(start: number, end: number): [number, number][] {
    const out: [number, number][] = [];
    let at = start;
    for (let i = this.#firstEndingFrom(start); i < this.#ranges.length && at < end; i++) {
      const [s, e] = this.#ranges[i]!;
      if (s >= end) break;
      if (s > at) out.push([at, s]);
      at = Math.max(at, e);
    }
    if (at < end) out.push([at, end]);
    return out;
  }

  add(start: number, end: number): void {
    if (start >= end) return;
    const first = this.#firstEndingFrom(start);
    let last = first;
    let s0 = start;
    let e0 = end;
    // Every range touching [start, end] merges into one.
    while (last < this.#ranges.length && this.#ranges[last]![0] <= end) {
      s0 = Math.min(s0, this.#ranges[last]![0]);
      e0 = Math.max(e0, this.#ranges[last]![1]);
      last++;
    }
    this.#ranges.splice(first, last - first, [s0, e0]);
  }
}

/** Parsed logs and task trees by absolute path, kept while the file is unchanged: runs of many seeds parse once. */
const cache = new Map<string, { readonly stamp: string; readonly value: unknown }>();

function cached<T>(path: string, what: string, strict: boolean, parse: (text: string, file: string) => T): T {
  const abs = resolve(path);
  let stamp: string;
  try {
    const st = statSync(abs);
    stamp = `${st.size}:${st.mtimeMs}:${strict}`;
  } catch (e) {
    throw new WorkloadParamsError(`strace-replay: cannot read ${what} '${path}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const key = `${what}:${abs}`;
  const hit = cache.get(key);
  if (hit !== undefined && hit.stamp === stamp) return hit.value as T;
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new WorkloadParamsError(`strace-replay: cannot read ${what} '${path}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  let value: T;
  try {
    value = parse(text, path);
  } catch (e) {
    // StraceParseError (strict) and parseTasks' errors name file:line already.
    throw new WorkloadParamsError(`strace-replay: ${e instanceof Error ? e.message : String(e)}`);
  }
  cache.set(key, { stamp, value });
  return value;
}

function loadLog(p: StraceReplayParams): StraceLog {
  return cached(p.path, 'strace log', p.strict, (text, file) => parseStrace(text, { file, strict: p.strict }));
}

function loadTasks(p: StraceReplayParams): readonly TaskRecord[] | undefined {
  return p.tasks === undefined ? undefined : cached(p.tasks, 'tasks file', false, (text, file) => parseTasks(text, file));
}

/** What to replay of the log: the process, its calls by tid, and the state the log implies. */
export function replayScript(p: StraceReplayParams): ReplayScript {
  const log = loadLog(p);
  const tgidOf = groupTids(log, loadTasks(p));
  const byTgid = new Map<number, StraceCall[]>();
  for (const e of log.events) {
    if (e.kind !== 'call') continue;
    const tgid = tgidOf.get(e.tid) ?? e.tid;
    let list = byTgid.get(tgid);
    if (list === undefined) byTgid.set(tgid, (list = []));
    list.push(e);
  }
  if (byTgid.size === 0) throw new WorkloadParamsError(`strace-replay: '${p.path}' holds no mm call to replay`);
  let tgid = p.tgid;
  if (tgid === undefined) {
    let most = -1;
    for (const [t, list] of byTgid) if (list.length > most) [tgid, most] = [t, list.length];
  } else if (!byTgid.has(tgid)) {
    throw new WorkloadParamsError(`strace-replay: '${p.path}' has no process ${tgid} (processes: ${[...byTgid.keys()].join(', ')})`);
  }
  const all = byTgid.get(tgid!)!;
  // The last execve: a brk(NULL) answering a break other than the last one the log showed.
  let from = 0;
  let lastBrk: number | null = null;
  all.forEach((c, i) => {
    if (c.syscall !== 'brk' || c.result.kind !== 'value') return;
    if (c.args[0] === 0 && lastBrk !== null && c.result.value !== lastBrk) from = i;
    lastBrk = c.result.value;
  });
  const chosen = all.slice(from, from + p.callsMax);
  const covered = new RangeSet();
  const implied: { start: number; end: number; prot: number }[] = [];
  const files = new Map<number, MmFile>();
  const fileOfFd = new Map<number, number>();
  const threads = new Map<number, ReplayStep[]>();
  let brk: number | null = null;
  let notModelled = 0;
  let calls = 0;
  const imply = (start: number, end: number, prot: number): void => {
    for (const [s, e] of covered.holes(start, end)) implied.push({ start: s, end: e, prot });
    covered.add(start, end);
  };
  for (const c of chosen) {
    if (!modelled.has(c.syscall)) {
      notModelled++;
      continue;
    }
    calls++;
    const ok = c.result.kind === 'value';
    const value = c.result.kind === 'value' ? c.result.value : 0;
    const [a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = -1, a5 = 0] = c.args;
    let fd = -1;
    switch (c.syscall) {
      case 'brk':
        if (ok && brk === null) brk = value;
        if (ok && brk !== null && value > brk) covered.add(brk, pageAlign(value));
        break;
      case 'mmap':
        if ((a3 & MAP_ANONYMOUS) === 0) {
          let file = fileOfFd.get(a4);
          if (file === undefined || ((a3 & MAP_FIXED) === 0 && a5 === 0)) {
            file = files.size;
            fileOfFd.set(a4, file);
            files.set(TRACE_FD_BASE + file, new MmFile(`/proc/${tgid}/fd/${a4} (traced)`, 100000 + c.line, 0, 0));
          }
          fd = TRACE_FD_BASE + file;
        }
        if (ok) covered.add(value, value + pageAlign(a1));
        break;
      case 'mprotect':
        if (ok && a0 % P === 0 && a1 > 0) imply(a0, a0 + pageAlign(a1), a2);
        break;
      case 'madvise':
        if (ok && a0 % P === 0 && a1 > 0) imply(a0, a0 + pageAlign(a1), PROT_READ | PROT_WRITE);
        break;
      case 'mremap':
        if (ok && a0 % P === 0 && a1 > 0) imply(a0, a0 + pageAlign(a1), PROT_READ | PROT_WRITE);
        if (ok) covered.add(value, value + pageAlign(a2));
        break;
    }
    let steps = threads.get(c.tid);
    if (steps === undefined) threads.set(c.tid, (steps = []));
    steps.push({ call: c, fd });
  }
  return {
    tgid: tgid!,
    threads,
    brk,
    files,
    implied,
    calls,
    notModelled,
    skipped: all.length - chosen.length,
    malformed: log.malformed.length,
    firstUs: chosen[0]?.startUs ?? 0,
  };
}

/** Run one recorded call; its result as the syscall returns it. */
function* replayCall(task: MmTask, step: ReplayStep): MmGen<number> {
  const c = step.call;
  const ok = c.result.kind === 'value';
  const recorded = c.result.kind === 'value' ? c.result.value : 0;
  const [a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0] = c.args;
  switch (c.syscall) {
    case 'mmap': {
      const off = c.args[5] ?? 0;
      const fixed = (a3 & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0;
      return yield* sysMmap(task, ok && !fixed ? recorded : a0, a1, a2, a3, step.fd, off);
    }
    case 'munmap':
      return yield* sysMunmap(task, a0, a1);
    case 'mprotect':
      return yield* sysMprotect(task, a0, a1, a2);
    case 'madvise':
      return yield* sysMadvise(task, a0, a1, a2);
    case 'mremap': {
      const moved = ok && recorded !== a0 && (a3 & MREMAP_MAYMOVE) !== 0 && (a3 & MREMAP_FIXED) === 0;
      return moved ? yield* sysMremap(task, a0, a1, a2, a3 | MREMAP_FIXED, recorded) : yield* sysMremap(task, a0, a1, a2, a3, a4);
    }
    case 'brk':
      return yield* sysBrk(task, a0);
    default:
      throw new Error(`strace-replay: ${c.syscall} is not replayed`);
  }
}

/** The recorded result as the syscall returns it (-errno for a failure). */
function recordedResult(c: StraceCall): number | null {
  if (c.result.kind === 'value') return c.result.value;
  if (c.result.kind === 'error') return -c.result.errno;
  return null;
}

export const straceReplay = defineWorkload({
  name: 'strace-replay',
  summary: "replay of a real strace log: one thread per traced tid of one process, each making its tid's mm calls in order, concurrently",
  op: 'one replayed mm syscall',
  threadsFrom: 'workload',
  params: straceReplayParams,
  check(p) {
    replayScript(p);
  },
  spawn(ctx, p) {
    const { mm, counter } = ctx;
    const script = replayScript(p);
    if (script.brk !== null) {
      mm.startBrk = script.brk;
      mm.brk = script.brk;
    }
    for (const [fd, file] of script.files) mm.files.set(fd, file);
    for (const r of script.implied) {
      const got = runMmOp(mm, (t) => sysMmap(t, r.start, r.end - r.start, r.prot, ANON | MAP_FIXED_NOREPLACE, -1, 0), 'strace-replay setup');
      if (got === r.start) counter.note('implied');
    }
    counter.note('notModelled', script.notModelled);
    counter.note('skipped', script.skipped);
    counter.note('malformed', script.malformed);
    for (const [tid, steps] of script.threads) {
      spawnTask(ctx, `tid${tid}`, function* (task, _rng, thread) {
        for (const step of steps) {
          // pace: a call starts no earlier than its recorded time after the first replayed call.
          const dueNs = (step.call.startUs - script.firstUs) * 1000;
          if (p.pace && dueNs > thread.clockNs) yield spend(dueNs - thread.clockNs);
          const result = yield* replayCall(task, step);
          counter.count(task.thread);
          const recorded = recordedResult(step.call);
          if (recorded === null) counter.note('unknownResults');
          else counter.note(recorded === result ? 'matched' : 'mismatched');
        }
      });
    }
  },
});
