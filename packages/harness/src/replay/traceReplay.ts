import {
  type LockPolicy,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MmFile,
  MmStruct,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  VM_ACCOUNT,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYWRITE,
  Vma,
  errnoNames,
  pageAlign,
  renderMaps,
  runMmOp,
  sysBrk,
  sysMadvise,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
  vmProtBits,
} from '@vmalock/core';
import type { StraceCall, StraceLog } from '../strace/parseStrace.js';
import type { TaskRecord } from '../strace/parseTasks.js';

/** One call whose simulated result differs from the recorded one. */
export interface ReplayMismatch {
  readonly line: number;
  readonly tid: number;
  readonly call: string;
  readonly recorded: string;
  readonly simulated: string;
}

/** What a replay found. */
export interface ReplayReport {
  readonly file: string;
  /** Calls replayed (those with a recorded result; `= ?` ones are run but not compared). */
  readonly calls: number;
  readonly matched: number;
  readonly mismatched: number;
  /** Mappings that existed before tracing began, created because a call touched them. */
  readonly implied: number;
  readonly malformed: number;
  /** Calls whose result strace could not see (`= ?`): run, not compared. */
  readonly unknownResults: number;
  /** Calls of syscalls the model does not have (mlock family): not run. */
  readonly notModelled: number;
  /** Recorded failures whose replay changed the address space (a failure must change nothing). */
  readonly failuresThatChangedState: number;
  /** execve()s detected (a `brk(NULL)` answering a different break): each starts a new mm. */
  readonly execs: number;
  readonly processes: readonly { readonly tgid: number; readonly vmas: number }[];
  /** The first 20 mismatches. */
  readonly mismatches: readonly ReplayMismatch[];
  /** The final address spaces by tgid. */
  readonly mms: ReadonlyMap<number, MmStruct>;
  /** How tids were grouped into processes. */
  readonly grouping: 'tasks' | 'heuristic';
}

/** Options of a replay. */
export interface ReplayOptions {
  /** The task tree of the same run: which tids share an mm. Without it, a heuristic groups them. */
  readonly tasks?: readonly TaskRecord[];
  /** Makes a fresh lock policy for each process's mm. */
  readonly policy: () => LockPolicy;
}

/**
 * Group tids into processes. With the task tree, by tgid. Without it (documented heuristic):
 * the first tid starts a process; a tid whose first call is `brk(NULL)` starts a new one (a new
 * program's loader asks for its break first); any other tid is a thread of the process started
 * most recently before it appeared.
 */
export function groupTids(log: StraceLog, tasks: readonly TaskRecord[] | undefined): Map<number, number> {
  const tgidOf = new Map<number, number>();
  if (tasks !== undefined) {
    for (const t of tasks) tgidOf.set(t.tid, t.tgid);
    for (const tid of log.tids) if (!tgidOf.has(tid)) tgidOf.set(tid, tid);
    return tgidOf;
  }
  const firstCall = new Map<number, StraceCall>();
  for (const e of log.events) if (e.kind === 'call' && !firstCall.has(e.tid)) firstCall.set(e.tid, e);
  let current = -1;
  for (const tid of log.tids) {
    const first = firstCall.get(tid);
    const startsProcess = current < 0 || (first !== undefined && first.syscall === 'brk' && first.args[0] === 0);
    if (startsProcess) current = tid;
    tgidOf.set(tid, current);
  }
  return tgidOf;
}

/** How a call is shown in reports: `mmap(0x7f.., 8192, ...)` as strace printed it. */
function callText(c: StraceCall): string {
  const args = c.rawArgs.length > 120 ? `${c.rawArgs.slice(0, 117)}...` : c.rawArgs;
  return `${c.syscall}(${args})`;
}

function resultText(value: number, syscall: string): string {
  if (value < 0 && syscall !== 'brk') return `-1 ${errnoNames[-value] ?? `E${-value}`}`;
  return syscall === 'mmap' || syscall === 'mremap' || syscall === 'brk' ? `0x${value.toString(16)}` : String(value);
}

/** Per-process replay state. */
interface Proc {
  mm: MmStruct;
  /** The file behind each fd, as far as the log shows (no open/close is traced). */
  readonly files: Map<number, MmFile>;
  brkKnown: boolean;
}

/**
 * Replay a parsed strace log sequentially, calls in completion order, through one mm per
 * process, and compare every result with the recorded one. Recorded addresses are reproduced
 * exactly (a recorded mmap result is used as the placement; a moving mremap goes to the recorded
 * address); a recorded failure is replayed as a failure and must leave the mm unchanged; ranges
 * a successful call touches that the model has no mapping for existed before tracing began and
 * are created first as implied mappings (counted).
 */
export function replayStrace(log: StraceLog, options: ReplayOptions): ReplayReport {
  const tgidOf = groupTids(log, options.tasks);
  const procs = new Map<number, Proc>();
  const mismatches: ReplayMismatch[] = [];
  let calls = 0;
  let matched = 0;
  let mismatched = 0;
  let implied = 0;
  let unknownResults = 0;
  let notModelled = 0;
  let failuresThatChangedState = 0;

  let execs = 0;
  const newMm = (tgid: number) => new MmStruct(tgid, options.policy(), { maxMapCount: 1 << 20 });
  const procOf = (tid: number): Proc => {
    const tgid = tgidOf.get(tid) ?? tid;
    let p = procs.get(tgid);
    if (p === undefined) {
      p = { mm: newMm(tgid), files: new Map(), brkKnown: false };
      procs.set(tgid, p);
    }
    return p;
  };

  /** Create anonymous mappings over the holes of [start, end) (state from before tracing). */
  const fillHoles = (mm: MmStruct, start: number, end: number, prot: number): void => {
    let addr = start;
    for (const vma of mm.vmasIn(start, end)) {
      if (vma.start > addr) {
        insertImplied(mm, addr, vma.start, prot);
      }
      addr = Math.max(addr, vma.end);
    }
    if (addr < end) insertImplied(mm, addr, end, prot);
  };
  const insertImplied = (mm: MmStruct, start: number, end: number, prot: number): void => {
    const flags = vmProtBits(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | ((prot & PROT_WRITE) !== 0 ? VM_ACCOUNT : 0);
    mm.insertVmaUnchecked(new Vma(start, end, flags, start / PAGE_SIZE, null, null, null));
    implied++;
  };

  for (const e of log.events) {
    if (e.kind !== 'call') continue;
    const c = e;
    const p = procOf(c.tid);
    if (c.syscall === 'brk' && c.args[0] === 0 && c.result.kind === 'value' && p.brkKnown && c.result.value !== p.mm.brk) {
      // brk(NULL) always answers the current break: a different one means execve() gave the
      // process a new address space (no execve is traced).
      execs++;
      p.mm = newMm(p.mm.pid);
      p.files.clear();
      p.brkKnown = false;
    }
    const { mm } = p;
    if (
      c.syscall !== 'mmap' &&
      c.syscall !== 'munmap' &&
      c.syscall !== 'mprotect' &&
      c.syscall !== 'mremap' &&
      c.syscall !== 'brk' &&
      c.syscall !== 'madvise'
    ) {
      notModelled++;
      continue;
    }
    const recorded = c.result;
    const ok = recorded.kind === 'value';
    const recordedValue = recorded.kind === 'value' ? recorded.value : recorded.kind === 'error' ? -recorded.errno : 0;
    const a = c.args;
    const before = recorded.kind === 'error' ? renderMaps(mm) : null;
    let simulated: number;
    switch (c.syscall) {
      case 'mmap': {
        const [addr = 0, len = 0, prot = 0, flags = 0, fd = -1, off = 0] = a;
        if ((flags & MAP_ANONYMOUS) === 0) {
          // No open() is traced: a non-fixed map of offset 0 starts a new file behind the fd.
          let file = p.files.get(fd);
          if (file === undefined || ((flags & MAP_FIXED) === 0 && off === 0)) {
            file = new MmFile(`/proc/${mm.pid}/fd/${fd} (traced)`, 100000 + c.line, 0, 0);
            p.files.set(fd, file);
          }
          mm.files.set(fd, file);
        }
        const fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0;
        const hint = ok && !fixed ? recordedValue : addr;
        simulated = runMmOp(mm, (t) => sysMmap(t, hint, len, prot, flags, fd, off), 'mmap');
        break;
      }
      case 'munmap': {
        const [addr = 0, len = 0] = a;
        simulated = runMmOp(mm, (t) => sysMunmap(t, addr, len), 'munmap');
        break;
      }
      case 'mprotect': {
        const [addr = 0, len = 0, prot = 0] = a;
        if (ok && addr % PAGE_SIZE === 0 && len > 0) fillHoles(mm, addr, addr + pageAlign(len), prot);
        simulated = runMmOp(mm, (t) => sysMprotect(t, addr, len, prot), 'mprotect');
        break;
      }
      case 'madvise': {
        const [addr = 0, len = 0, advice = 0] = a;
        if (ok && addr % PAGE_SIZE === 0 && len > 0) fillHoles(mm, addr, addr + pageAlign(len), PROT_READ | PROT_WRITE);
        simulated = runMmOp(mm, (t) => sysMadvise(t, addr, len, advice), 'madvise');
        break;
      }
      case 'mremap': {
        const [addr = 0, oldLen = 0, newLen = 0, flags = 0, newAddr = 0] = a;
        if (ok && addr % PAGE_SIZE === 0 && oldLen > 0) fillHoles(mm, addr, addr + pageAlign(oldLen), PROT_READ | PROT_WRITE);
        const moved = ok && recordedValue !== addr && (flags & MREMAP_MAYMOVE) !== 0 && (flags & MREMAP_FIXED) === 0;
        simulated = moved
          ? runMmOp(mm, (t) => sysMremap(t, addr, oldLen, newLen, flags | MREMAP_FIXED, recordedValue), 'mremap')
          : runMmOp(mm, (t) => sysMremap(t, addr, oldLen, newLen, flags, newAddr), 'mremap');
        break;
      }
      case 'brk': {
        const [addr = 0] = a;
        if (!p.brkKnown && ok) {
          // The first brk tells where the break is: the heap starts there (or began below it).
          p.brkKnown = true;
          if (addr === 0 || recordedValue < addr) {
            mm.startBrk = recordedValue;
            mm.brk = recordedValue;
          } else {
            mm.startBrk = Math.min(mm.startBrk, recordedValue);
          }
        }
        simulated = runMmOp(mm, (t) => sysBrk(t, addr), 'brk');
        break;
      }
    }
    if (recorded.kind === 'unknown') {
      unknownResults++;
      continue;
    }
    calls++;
    if (before !== null && renderMaps(mm) !== before) failuresThatChangedState++;
    if (simulated === recordedValue) matched++;
    else {
      mismatched++;
      if (mismatches.length < 20) {
        mismatches.push({
          line: c.line,
          tid: c.tid,
          call: callText(c),
          recorded: resultText(recordedValue, c.syscall),
          simulated: resultText(simulated, c.syscall),
        });
      }
    }
  }
  const processes = [...procs].sort(([x], [y]) => x - y).map(([tgid, p]) => ({ tgid, vmas: p.mm.mapCount }));
  return {
    file: log.file,
    calls,
    matched,
    mismatched,
    implied,
    malformed: log.malformed.length,
    unknownResults,
    notModelled,
    failuresThatChangedState,
    execs,
    processes,
    mismatches,
    mms: new Map([...procs].map(([tgid, p]) => [tgid, p.mm])),
    grouping: options.tasks !== undefined ? 'tasks' : 'heuristic',
  };
}
