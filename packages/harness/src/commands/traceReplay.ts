import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkMmInvariants, renderMaps } from '@vmalock/core';
import { GlobalRwsemPolicy, policyNames } from '@vmalock/policies';
import { type ReplayReport, replayStrace } from '../replay/traceReplay.js';
import { type StraceLog, StraceParseError, parseStrace } from '../strace/parseStrace.js';
import { type TaskRecord, parseTasks } from '../strace/parseTasks.js';
import { type CliIo, ExitCode, UsageError, formatTable, positiveInt, seedOf, writeFileAtomic } from '../cliSupport.js';
import { parseWorkloadParams } from '../workloads/registry.js';
import { runWorkload } from '../workloads/run.js';
import { replayScript } from '../workloads/straceReplay.js';
import { WorkloadParamsError } from '../workloads/workload.js';
import { TraceImportError, readTraceImport } from './traceImport.js';

/** Arguments of `vmalock trace replay`. */
export interface TraceReplayArgs {
  readonly log: string;
  readonly tasks: string | undefined;
  readonly mapsOut: string | undefined;
  readonly json: boolean;
  readonly strict: boolean;
  /** Replay concurrently under this policy (the `strace-replay` workload); undefined: the exact sequential replay under global-rwsem. */
  readonly policy?: string | undefined;
  /** With a policy: the seed of the run (default 1). */
  readonly seed?: number | undefined;
  /** With a policy: replay only the process's first N calls (default all). */
  readonly callsMax?: number | undefined;
  /** With a policy: start each call no earlier than its recorded time. */
  readonly pace?: boolean | undefined;
  /** With a policy: the traced process to replay (default the one with the most calls). */
  readonly tgid?: number | undefined;
}

/** `--calls-max` when not given: every call of the process. */
const CALLS_ALL = 10_000_000;

function readInput(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`cannot read ${what} '${file}': ${code}`);
  }
}

/** The JSON shape `vmalock trace replay --json` prints. */
export function replayJson(r: ReplayReport): object {
  return {
    file: r.file,
    calls: r.calls,
    matched: r.matched,
    mismatched: r.mismatched,
    implied: r.implied,
    malformed: r.malformed,
    unknownResults: r.unknownResults,
    notModelled: r.notModelled,
    failuresThatChangedState: r.failuresThatChangedState,
    execs: r.execs,
    grouping: r.grouping,
    processes: r.processes,
    mismatches: r.mismatches,
  };
}

/**
 * `vmalock trace replay <strace.log>`: replay a log sequentially under global-rwsem and compare
 * every call's result with the recorded one. Malformed lines are reported (file:line) and
 * skipped, unless `--strict`. The log may also be the file `vmalock trace import` wrote. Exit 0
 * when the replay ran (mismatches are findings, reported), 2 on bad input. With `--policy`, the
 * concurrent replay under that policy instead (`concurrentReplayCommand`).
 */
export function traceReplayCommand(args: TraceReplayArgs, io: CliIo): number {
  if (args.policy !== undefined) return concurrentReplayCommand(args, args.policy, io);
  for (const [name, value] of [
    ['seed', args.seed],
    ['calls-max', args.callsMax],
    ['tgid', args.tgid],
  ] as const)
    if (value !== undefined) throw new UsageError(`--${name} is for the concurrent replay: give --policy too`);
  if (args.pace === true) throw new UsageError('--pace is for the concurrent replay: give --policy too');
  const text = readInput(args.log, 'strace log');
  const tasksText = args.tasks !== undefined ? readInput(args.tasks, 'tasks file') : undefined;
  if (args.mapsOut !== undefined) {
    let isDir: boolean;
    try {
      isDir = statSync(args.mapsOut).isDirectory();
    } catch {
      isDir = true; // created below, once the replay has succeeded
    }
    if (!isDir) throw new UsageError(`--maps-out '${args.mapsOut}' exists and is not a directory`);
  }
  // A 'vmalock trace import' file (JSON) reads back as the log it was imported from.
  const imported = text.trimStart().startsWith('{');
  if (imported && tasksText !== undefined) throw new UsageError(`--tasks: '${args.log}' is a 'vmalock trace import' file, which carries its own grouping`);
  let log: StraceLog;
  let tasks: readonly TaskRecord[] | undefined;
  try {
    if (imported) ({ log, tasks } = readTraceImport(text, args.log));
    else log = parseStrace(text, { file: args.log, strict: args.strict });
  } catch (e) {
    if (e instanceof StraceParseError || e instanceof TraceImportError) throw new UsageError(e.message);
    throw e;
  }
  if (tasksText !== undefined) {
    try {
      tasks = parseTasks(tasksText, args.tasks!);
    } catch (e) {
      throw new UsageError(e instanceof Error ? e.message : String(e));
    }
  }
  for (const m of log.malformed.slice(0, 10)) io.err(`${args.log}:${m.line}: ${m.reason}\n`);
  if (log.malformed.length > 10) io.err(`${args.log}: ${log.malformed.length - 10} more malformed lines\n`);
  const report = replayStrace(log, { ...(tasks !== undefined ? { tasks } : {}), policy: () => new GlobalRwsemPolicy() });

  if (args.mapsOut !== undefined) {
    mkdirSync(args.mapsOut, { recursive: true });
    for (const [tgid, mm] of report.mms) writeFileAtomic(join(args.mapsOut, `${tgid}.maps`), renderMaps(mm));
  }
  if (args.json) {
    io.out(`${JSON.stringify(replayJson(report))}\n`);
    return ExitCode.ok;
  }
  io.out(
    `replay of ${args.log} under global-rwsem (threads grouped by ${report.grouping === 'tasks' ? `the task tree ${args.tasks ?? 'the import carries'}` : 'the brk(NULL) heuristic'})\n\n`,
  );
  io.out(
    formatTable(
      ['calls', 'matched', 'mismatched', 'implied', 'malformed', '= ?', 'not modelled', 'execs'],
      [
        [report.calls, report.matched, report.mismatched, report.implied, report.malformed, report.unknownResults, report.notModelled, report.execs].map(
          String,
        ),
      ],
    ),
  );
  io.out(
    `\n${formatTable(
      ['tgid', 'VMAs at the end'],
      report.processes.map((p) => [String(p.tgid), String(p.vmas)]),
    )}`,
  );
  if (report.mismatches.length > 0) {
    io.out(
      `\nfirst mismatches:\n${formatTable(
        ['line', 'tid', 'call', 'recorded', 'simulated'],
        report.mismatches.map((m) => [String(m.line), String(m.tid), m.call, m.recorded, m.simulated]),
      )}`,
    );
  }
  if (args.mapsOut !== undefined) io.out(`\nmaps written to ${args.mapsOut}/<tgid>.maps\n`);
  return ExitCode.ok;
}

/**
 * `vmalock trace replay <strace.log> --policy P`: replay one traced process concurrently under P
 * (the `strace-replay` workload: one simulated thread per traced tid, each making its tid's calls
 * in order; timed strategy, one seed), and count the calls whose result differs from the recorded
 * one (another thread's mapping in the way is a mismatch, not an error). Exit 0 when the run ended
 * ok with the mm's invariants holding, 1 when it did not (a deadlock, a failed assertion: the
 * policy broke the program), 2 on bad input.
 */
function concurrentReplayCommand(args: TraceReplayArgs, policy: string, io: CliIo): number {
  if (!policyNames().includes(policy)) throw new UsageError(`--policy: unknown policy '${policy}' (known: ${policyNames().join(', ')})`);
  const seed = seedOf(args.seed ?? 1);
  const callsMax = positiveInt('calls-max', args.callsMax ?? CALLS_ALL, CALLS_ALL);
  const tgid = args.tgid === undefined ? undefined : positiveInt('tgid', args.tgid, 2 ** 31 - 1);
  if (args.mapsOut !== undefined && existsSync(args.mapsOut) && !statSync(args.mapsOut).isDirectory())
    throw new UsageError(`--maps-out '${args.mapsOut}' exists and is not a directory`);
  const head = readInput(args.log, 'strace log').trimStart();
  if (head.startsWith('{'))
    throw new UsageError(`--policy replays the strace log itself: '${args.log}' is a 'vmalock trace import' file (give the log it was imported from)`);
  const params = {
    path: args.log,
    ...(args.tasks !== undefined ? { tasks: args.tasks } : {}),
    ...(tgid !== undefined ? { tgid } : {}),
    callsMax,
    pace: args.pace === true,
    strict: args.strict,
  };
  let script;
  try {
    script = replayScript(parseWorkloadParams('strace-replay', params));
  } catch (e) {
    if (e instanceof WorkloadParamsError) throw new UsageError(e.message.replace(/^strace-replay: /, ''));
    throw e;
  }
  const r = runWorkload({ workload: 'strace-replay', params, policy, threads: 1, seed, strategy: 'timed' });
  let invariants = 'ok';
  if (r.result.status === 'ok') {
    try {
      checkMmInvariants(r.mm);
    } catch (e) {
      invariants = e instanceof Error ? e.message : String(e);
    }
  }
  const ok = r.result.status === 'ok' && invariants === 'ok';
  if (args.mapsOut !== undefined) {
    mkdirSync(args.mapsOut, { recursive: true });
    writeFileAtomic(join(args.mapsOut, `${script.tgid}.maps`), renderMaps(r.mm));
  }
  const x = r.extras;
  const figures = {
    calls: r.ops,
    matched: x.matched ?? 0,
    mismatched: x.mismatched ?? 0,
    unknownResults: x.unknownResults ?? 0,
    implied: x.implied ?? 0,
    notModelled: x.notModelled ?? 0,
    skipped: x.skipped ?? 0,
    malformed: x.malformed ?? 0,
  };
  if (args.json) {
    io.out(
      `${JSON.stringify({
        file: args.log,
        policy,
        seed,
        strategy: 'timed',
        tgid: script.tgid,
        threads: script.threads.size,
        ...figures,
        throughput: r.opsPerSimSec,
        simTimeNs: r.lastOpNs,
        status: r.result.status,
        summary: r.result.summary,
        invariants,
        vmas: r.mm.mapCount,
      })}\n`,
    );
    return ok ? ExitCode.ok : ExitCode.gateFailed;
  }
  io.out(
    `concurrent replay of process ${script.tgid} of ${args.log} under ${policy}: ${script.threads.size} threads (one per traced tid), seed ${seed}, strategy timed${args.pace === true ? ', paced' : ''}\n\n`,
  );
  io.out(
    formatTable(
      ['calls', 'matched', 'mismatched', '= ?', 'implied', 'not modelled', 'skipped', 'malformed', 'ops/sim-s'],
      [
        [
          ...[
            figures.calls,
            figures.matched,
            figures.mismatched,
            figures.unknownResults,
            figures.implied,
            figures.notModelled,
            figures.skipped,
            figures.malformed,
          ].map(String),
          r.opsPerSimSec === null ? '-' : Math.round(r.opsPerSimSec).toLocaleString('en-US'),
        ],
      ],
    ),
  );
  io.out(`\nrun: ${r.result.summary}; mm invariants: ${invariants}; ${r.mm.mapCount} VMAs at the end\n`);
  if (args.mapsOut !== undefined) io.out(`maps written to ${args.mapsOut}/${script.tgid}.maps\n`);
  return ok ? ExitCode.ok : ExitCode.gateFailed;
}
