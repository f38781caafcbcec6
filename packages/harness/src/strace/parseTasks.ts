// Parses the task trees of shared/traces/tasks/*.tasks.tsv: which tids of a strace log are threads
// of one process (one mm) and which are processes, which strace's log cannot tell. The files are
// made from perf's task:task_newtask, task:task_rename, sched:sched_process_exec and
// sched:sched_process_exit, recorded in the same run as the strace log:
//
//   # task tree of the traced command, from perf ... (comment lines start with '#')
//   tid    tgid   parent_tid  kind    clone_flags  start            exit             comm_at_exit  exec           renamed_to
//   13710  13710  -           root    -            00:20:21.900766  00:20:30.321419  java          /usr/bin/java  java
//   13712  13710  13711       thread  3d0f00       00:20:21.920127  00:20:30.321380  GC Thread#0   -              GC Thread#0
//
// Columns are tab-separated (a comm may hold spaces); '-' is "none".
import { parseTimeOfDayUs } from './parseStrace.js';

/**
 * `root` is the traced command itself (its parent was not traced); `thread` shares its creator's
 * mm (CLONE_VM|CLONE_THREAD); `process` would be a forked child with its own mm (none in the
 * shared traces, which are all one process).
 */
export type TaskKind = 'root' | 'process' | 'thread';

export interface TaskRecord {
  readonly tid: number;
  /** The thread group (process) id: tasks with one tgid share one mm. */
  readonly tgid: number;
  /** The task that created this one; null for the root. */
  readonly parentTid: number | null;
  readonly kind: TaskKind;
  /**
   * The clone flags from task_newtask (hex in the file: `3d0f00` is pthread_create's CLONE_VM|
   * CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|
   * CLONE_CHILD_CLEARTID); null for the root.
   */
  readonly cloneFlags: number | null;
  /** Wall-clock time of day in µs since midnight, the clock of strace -tt. */
  readonly startUs: number;
  readonly exitUs: number;
  /** The comm at exit (at most 15 characters; may contain spaces). */
  readonly comm: string;
  /** The programs exec'd by this task, in order (`sh;python3.11`: a shell that exec'd python); empty if none. */
  readonly exec: readonly string[];
  /** The comms it took, in order (by exec or prctl(PR_SET_NAME)); empty if never renamed. */
  readonly renamedTo: readonly string[];
}

export const taskColumns = ['tid', 'tgid', 'parent_tid', 'kind', 'clone_flags', 'start', 'exit', 'comm_at_exit', 'exec', 'renamed_to'] as const;

/** CLONE_VM: the child shares the parent's mm. */
const CLONE_VM = 0x100;
/** CLONE_THREAD: the child joins the parent's thread group. */
const CLONE_THREAD = 0x10000;
const taskKinds: readonly string[] = ['root', 'process', 'thread'];

/** A bad field; turned into `file:line: column 'NAME' ...` by parseTasks. */
class RowError extends Error {}

function bad(column: string, reason: string): never {
  throw new RowError(`column '${column}' ${reason}`);
}

function tidField(column: string, text: string): number {
  if (!/^\d+$/.test(text)) bad(column, `'${text}' is not a tid`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) bad(column, `'${text}' is not a tid`);
  return n;
}

function timeField(column: string, text: string): number {
  const us = parseTimeOfDayUs(text);
  if (us === null) bad(column, `'${text}' is not HH:MM:SS.micro`);
  return us;
}

function listField(text: string): string[] {
  return text === '-' ? [] : text.split(';');
}

function cloneFlagsField(text: string): number | null {
  if (text === '-') return null;
  if (!/^[0-9a-f]{1,13}$/.test(text)) bad('clone_flags', `'${text}' is not '-' or hex flags`);
  return Number.parseInt(text, 16);
}

function hexFlags(flags: number | null): string {
  return flags === null ? '-' : flags.toString(16);
}

/** The root was not cloned by a traced task, so it has no parent and no clone flags. */
function checkRoot(task: TaskRecord): void {
  if (task.parentTid !== null) bad('parent_tid', `is ${task.parentTid} for the root, expected '-'`);
  if (task.cloneFlags !== null) bad('clone_flags', `is ${hexFlags(task.cloneFlags)} for the root, expected '-'`);
  if (task.tgid !== task.tid) bad('tgid', `${task.tgid} differs from tid ${task.tid} for the root`);
}

/** A cloned task names its parent and flags; a thread joins a thread group, a process leads its own. */
function checkCloned(task: TaskRecord): void {
  if (task.parentTid === null) bad('parent_tid', `is '-' for a ${task.kind}`);
  if (task.cloneFlags === null) bad('clone_flags', `is '-' for a ${task.kind}`);
  const thread = (task.cloneFlags & CLONE_THREAD) !== 0;
  if (task.kind === 'thread' && (task.cloneFlags & (CLONE_VM | CLONE_THREAD)) !== (CLONE_VM | CLONE_THREAD)) {
    bad('clone_flags', `${hexFlags(task.cloneFlags)} lack CLONE_VM|CLONE_THREAD for a thread`);
  }
  if (task.kind === 'process' && thread) bad('clone_flags', `${hexFlags(task.cloneFlags)} have CLONE_THREAD for a process`);
  if (thread === (task.tgid === task.tid)) bad('tgid', `${task.tgid} ${thread ? 'equals' : 'differs from'} tid ${task.tid} for a ${task.kind}`);
}

function parseRow(cells: readonly string[]): TaskRecord {
  if (cells.length !== taskColumns.length) throw new RowError(`${cells.length} columns, expected ${taskColumns.length}`);
  const [tid = '', tgid = '', parentTid = '', kind = '', cloneFlags = '', start = '', exit = '', comm = '', exec = '', renamedTo = ''] = cells;
  if (!taskKinds.includes(kind)) bad('kind', `'${kind}' is not one of ${taskKinds.join(', ')}`);
  if (comm === '') bad('comm_at_exit', 'is empty');
  const task: TaskRecord = {
    tid: tidField('tid', tid),
    tgid: tidField('tgid', tgid),
    parentTid: parentTid === '-' ? null : tidField('parent_tid', parentTid),
    kind: kind as TaskKind,
    cloneFlags: cloneFlagsField(cloneFlags),
    startUs: timeField('start', start),
    exitUs: timeField('exit', exit),
    comm,
    exec: listField(exec),
    renamedTo: listField(renamedTo),
  };
  if (task.kind === 'root') checkRoot(task);
  else checkCloned(task);
  return task;
}

/**
 * Parses a `*.tasks.tsv` file: `#` comment lines, the header row, then one row per task. Throws an
 * Error `file:line: ...` naming the column of the first bad row.
 */
export function parseTasks(text: string, file: string): TaskRecord[] {
  const tasks: TaskRecord[] = [];
  const lineOfTid = new Map<number, number>();
  let header = false;
  text.split('\n').forEach((raw, i) => {
    const row = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (row.startsWith('#') || row.trim() === '') return;
    const line = i + 1;
    const cells = row.split('\t');
    if (!header) {
      if (cells.join('\t') !== taskColumns.join('\t')) throw new Error(`${file}:${line}: header '${row}' is not '${taskColumns.join('\\t')}'`);
      header = true;
      return;
    }
    try {
      const task = parseRow(cells);
      const seen = lineOfTid.get(task.tid);
      if (seen !== undefined) bad('tid', `${task.tid} repeats line ${seen}`);
      lineOfTid.set(task.tid, line);
      tasks.push(task);
    } catch (e) {
      if (e instanceof RowError) throw new Error(`${file}:${line}: ${e.message}`, { cause: e });
      throw e;
    }
  });
  if (!header) throw new Error(`${file}: no header row`);
  return tasks;
}
