// A finding's replay as a Perfetto timeline (`vmalock flag ... --trace FILE`): the run replayed
// with tracing on, the finding's own steps marked, and the step the run failed at marked on its
// own (a global instant, plus one on the failing thread's track).
import { type PerfettoArg, type PerfettoMark, type Program, type RunOptions, type RunResult, perfettoJson, runProgram } from '@vmalock/core';

/** A step of the finding to mark: an access, a lock request, the assertion that fired. */
export interface FindingMark {
  readonly step: number;
  /** The thread that ran it: its id (`SimThread.id`) or label (`T1 pkeys1`). Absent: a global mark. */
  readonly thread?: number | string;
  /** The instant is named `finding: <label>`. */
  readonly label: string;
  readonly args?: Readonly<Record<string, PerfettoArg>>;
}

/** How `findingTrace` names the trace. */
export interface FindingTraceOptions {
  /** The Perfetto process name (default `vmalock finding replay`). */
  readonly processName?: string;
}

/**
 * Replay `runOptions` (typically `strategy: 'replay'` with the finding's seed and schedule) with
 * tracing on and return its Perfetto JSON, with `marks` and the failure marked: a global instant
 * `finding: <kind> at step N` at the failing step (args: the failure's message) and, when the
 * failure names a thread, `finding: <kind> (<thread>)` on its track. A run that does not fail
 * gets only `marks`. Deterministic: the same replay gives the same bytes.
 */
export function findingTrace(program: Program, runOptions: RunOptions, marks: readonly FindingMark[] = [], options: FindingTraceOptions = {}): string {
  const result = runProgram(program, { ...runOptions, trace: true });
  if (result.trace === null) throw new Error('findingTrace: the replay recorded no trace');
  const all: PerfettoMark[] = marks.map((m) => toPerfettoMark(m, result));
  const failure = result.failure;
  if (failure !== null) {
    all.push({ step: failure.step, label: `${failure.kind} at step ${failure.step}`, args: { message: failure.message } });
    const tid = failure.thread === null ? undefined : threadId(failure.thread, result);
    if (tid !== undefined) all.push({ step: failure.step, tid, label: `${failure.kind} (${failure.thread})`, args: { message: failure.message } });
  }
  return perfettoJson(result.trace, { processName: options.processName ?? 'vmalock finding replay', marks: all });
}

function toPerfettoMark(m: FindingMark, result: RunResult): PerfettoMark {
  const base = { step: m.step, label: m.label, ...(m.args !== undefined ? { args: m.args } : {}) };
  if (m.thread === undefined) return base;
  const tid = threadId(m.thread, result);
  if (tid === undefined) {
    const known = result.threads.map((t) => `T${t.id} ${t.name}`).join(', ');
    throw new RangeError(`findingTrace: mark '${m.label}' names thread '${m.thread}', which the replay does not have (threads: ${known})`);
  }
  return { ...base, tid };
}

/** A thread's id from its id or its label (`T3 worker`), or undefined when the run has no such thread. */
function threadId(thread: number | string, result: RunResult): number | undefined {
  const t = result.threads.find((x) => (typeof thread === 'number' ? x.id === thread : `T${x.id} ${x.name}` === thread));
  return t?.id;
}
