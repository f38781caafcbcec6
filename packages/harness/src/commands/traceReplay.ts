import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { renderMaps } from '@vmalock/core';
import { GlobalRwsemPolicy } from '@vmalock/policies';
import { type ReplayReport, replayStrace } from '../replay/traceReplay.js';
import { StraceParseError, parseStrace } from '../strace/parseStrace.js';
import { parseTasks } from '../strace/parseTasks.js';
import { type CliIo, ExitCode, UsageError, formatTable, writeFileAtomic } from '../cliSupport.js';

/** Arguments of `vmalock trace replay`. */
export interface TraceReplayArgs {
  readonly log: string;
  readonly tasks: string | undefined;
  readonly mapsOut: string | undefined;
  readonly json: boolean;
  readonly strict: boolean;
}

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
 * skipped, unless `--strict`. Exit 0 when the replay ran (mismatches are findings, reported),
 * 2 on bad input.
 */
export function traceReplayCommand(args: TraceReplayArgs, io: CliIo): number {
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
  let log;
  try {
    log = parseStrace(text, { file: args.log, strict: args.strict });
  } catch (e) {
    if (e instanceof StraceParseError) throw new UsageError(e.message);
    throw e;
  }
  let tasks;
  try {
    tasks = tasksText !== undefined ? parseTasks(tasksText, args.tasks!) : undefined;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
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
    `replay of ${args.log} under global-rwsem (threads grouped by ${report.grouping === 'tasks' ? `the task tree ${args.tasks}` : 'the brk(NULL) heuristic'})\n\n`,
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
