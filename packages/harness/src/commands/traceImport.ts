import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { z } from 'zod';
import { type CliIo, ExitCode, UsageError, formatTable, writeFileAtomic } from '../cliSupport.js';
import { groupTids } from '../replay/traceReplay.js';
import {
  type StraceCall,
  type StraceEvent,
  type StraceExit,
  type StraceLog,
  StraceParseError,
  type StraceSignal,
  parseStrace,
  straceSyscalls,
} from '../strace/parseStrace.js';
import { type TaskRecord, parseTasks } from '../strace/parseTasks.js';

/** Arguments of `vmalock trace import`. */
export interface TraceImportArgs {
  readonly log: string;
  readonly tasks: string | undefined;
  /** Where to write the JSON; undefined: `<log name>.json` in the working directory; `-`: stdout. */
  readonly out: string | undefined;
  /** Record malformed lines (and calls the log ends in the middle of) instead of refusing the log. */
  readonly skipMalformed: boolean;
  readonly json: boolean;
}

/** What `format` says in an import, and its layout's version. */
export const TRACE_IMPORT_FORMAT = 'vmalock-strace';
export const TRACE_IMPORT_VERSION = 1;

/** The figures `trace import` prints, also in the file. */
export interface TraceImportSummary {
  readonly lines: number;
  readonly calls: number;
  readonly tids: number;
  readonly processes: number;
  /** Calls by syscall, in the parser's order, those with none left out. */
  readonly bySyscall: Readonly<Record<string, number>>;
  readonly signals: number;
  readonly exits: number;
  /** Calls of the mm syscalls that began and never completed (thread killed, strace detached). */
  readonly unfinished: number;
  readonly malformed: number;
  /** Calls of syscalls the parser does not decode (counted, not kept). */
  readonly otherSyscalls: number;
}

/** The normalised form of a log: the calls of each tid with their decoded arguments and results, and which tids make a process. */
export interface TraceImport {
  readonly format: typeof TRACE_IMPORT_FORMAT;
  readonly version: typeof TRACE_IMPORT_VERSION;
  /** The log as it was named when imported. */
  readonly source: string;
  /** `tasks`: by the task tree given (its records are kept); `heuristic`: by the brk(NULL) heuristic (replay/traceReplay.ts). */
  readonly grouping: 'tasks' | 'heuristic';
  readonly tasks: { readonly file: string; readonly records: readonly TaskRecord[] } | null;
  readonly summary: TraceImportSummary;
  readonly processes: readonly { readonly tgid: number; readonly tids: readonly number[] }[];
  /** Every tid, in order of first appearance in the log, with its events in line order. */
  readonly threads: readonly {
    readonly tid: number;
    readonly tgid: number;
    readonly calls: readonly Omit<StraceCall, 'kind' | 'tid'>[];
    readonly signals: readonly Omit<StraceSignal, 'kind' | 'tid'>[];
    readonly exits: readonly Omit<StraceExit, 'kind' | 'tid'>[];
  }[];
  readonly unfinished: StraceLog['unfinished'];
  readonly malformed: StraceLog['malformed'];
  readonly otherSyscalls: number;
}

/** The normalised form of `log` (grouped by `tasks` when given, else by the heuristic `trace replay` uses). */
export function importTrace(log: StraceLog, lines: number, tasks?: { readonly file: string; readonly records: readonly TaskRecord[] }): TraceImport {
  const tgidOf = groupTids(log, tasks?.records);
  const threads = log.tids.map((tid) => ({
    tid,
    tgid: tgidOf.get(tid) ?? tid,
    calls: [] as Omit<StraceCall, 'kind' | 'tid'>[],
    signals: [] as Omit<StraceSignal, 'kind' | 'tid'>[],
    exits: [] as Omit<StraceExit, 'kind' | 'tid'>[],
  }));
  const byTid = new Map(threads.map((t) => [t.tid, t]));
  const bySyscall = new Map<string, number>();
  for (const e of log.events) {
    const t = byTid.get(e.tid)!;
    if (e.kind === 'call') {
      const { kind: _kind, tid: _tid, ...call } = e;
      t.calls.push(call);
      bySyscall.set(e.syscall, (bySyscall.get(e.syscall) ?? 0) + 1);
    } else if (e.kind === 'signal') {
      const { kind: _kind, tid: _tid, ...signal } = e;
      t.signals.push(signal);
    } else {
      const { kind: _kind, tid: _tid, ...exit } = e;
      t.exits.push(exit);
    }
  }
  const processes: { tgid: number; tids: number[] }[] = [];
  for (const t of threads) {
    const p = processes.find((x) => x.tgid === t.tgid);
    if (p === undefined) processes.push({ tgid: t.tgid, tids: [t.tid] });
    else p.tids.push(t.tid);
  }
  return {
    format: TRACE_IMPORT_FORMAT,
    version: TRACE_IMPORT_VERSION,
    source: log.file,
    grouping: tasks !== undefined ? 'tasks' : 'heuristic',
    tasks: tasks ?? null,
    summary: {
      lines,
      calls: threads.reduce((n, t) => n + t.calls.length, 0),
      tids: threads.length,
      processes: processes.length,
      bySyscall: Object.fromEntries(straceSyscalls.filter((s) => bySyscall.has(s)).map((s) => [s, bySyscall.get(s)!])),
      signals: threads.reduce((n, t) => n + t.signals.length, 0),
      exits: threads.reduce((n, t) => n + t.exits.length, 0),
      unfinished: log.unfinished.length,
      malformed: log.malformed.length,
      otherSyscalls: log.skipped,
    },
    processes,
    threads,
    unfinished: log.unfinished,
    malformed: log.malformed,
    otherSyscalls: log.skipped,
  };
}

/** The import as text: the layout readable, one event a line (a log of 40,000 lines stays a file to read and diff). */
export function formatTraceImport(t: TraceImport): string {
  const j = (v: unknown) => JSON.stringify(v);
  const list = (items: readonly unknown[], indent: string) =>
    items.length === 0 ? '[]' : `[\n${items.map((x) => `${indent}  ${j(x)}`).join(',\n')}\n${indent}]`;
  const head = (['format', 'version', 'source', 'grouping', 'tasks', 'summary', 'processes'] as const).map(
    (k) =>
      `  ${j(k)}: ${k === 'tasks' && t.tasks !== null ? `{\n    "file": ${j(t.tasks.file)},\n    "records": ${list(t.tasks.records, '    ')}\n  }` : j(t[k])}`,
  );
  const threads = t.threads.map(
    (x) =>
      `    {\n      "tid": ${x.tid},\n      "tgid": ${x.tgid},\n      "calls": ${list(x.calls, '      ')},\n      "signals": ${list(x.signals, '      ')},\n      "exits": ${list(x.exits, '      ')}\n    }`,
  );
  const tail = [`  "unfinished": ${list(t.unfinished, '  ')}`, `  "malformed": ${list(t.malformed, '  ')}`, `  "otherSyscalls": ${t.otherSyscalls}`];
  return `{\n${[...head, `  "threads": ${threads.length === 0 ? '[]' : `[\n${threads.join(',\n')}\n  ]`}`, ...tail].join(',\n')}\n}\n`;
}

const int = z.number().int();
const resultSchema = z.union([
  z.strictObject({ kind: z.literal('value'), value: int }),
  z.strictObject({ kind: z.literal('error'), errno: int, name: z.string() }),
  z.strictObject({ kind: z.literal('unknown') }),
]);
const importSchema = z.object({
  format: z.literal(TRACE_IMPORT_FORMAT),
  version: z.literal(TRACE_IMPORT_VERSION),
  source: z.string(),
  grouping: z.enum(['tasks', 'heuristic']),
  tasks: z
    .object({
      file: z.string(),
      records: z.array(
        z.strictObject({
          tid: int,
          tgid: int,
          parentTid: int.nullable(),
          kind: z.enum(['root', 'process', 'thread']),
          cloneFlags: int.nullable(),
          startUs: int,
          exitUs: int,
          comm: z.string(),
          exec: z.array(z.string()),
          renamedTo: z.array(z.string()),
        }),
      ),
    })
    .nullable(),
  threads: z.array(
    z.object({
      tid: int,
      tgid: int,
      calls: z.array(
        z.strictObject({
          syscall: z.enum(straceSyscalls),
          args: z.array(int),
          rawArgs: z.string(),
          result: resultSchema,
          startUs: int,
          endUs: int,
          line: int,
          startLine: int,
        }),
      ),
      signals: z.array(z.strictObject({ signal: z.string(), code: z.string().nullable(), addr: int.nullable(), line: int, timeUs: int })),
      exits: z.array(
        z.strictObject({
          how: z.enum(['exited', 'killed']),
          status: int.nullable(),
          signal: z.string().nullable(),
          coreDumped: z.boolean(),
          line: int,
          timeUs: int,
        }),
      ),
    }),
  ),
  unfinished: z.array(z.strictObject({ tid: int, line: int, syscall: z.enum(straceSyscalls) })),
  malformed: z.array(z.strictObject({ line: int, text: z.string(), reason: z.string() })),
  otherSyscalls: int,
});

/** A `trace import` file that does not read back: names the file and the first bad field. */
export class TraceImportError extends Error {
  override readonly name = 'TraceImportError';
}

/**
 * Read an import back: the log exactly as `parseStrace` gave it (events in line order), and the
 * task records it was grouped by. Throws TraceImportError `file: ...` naming the first bad field.
 */
export function readTraceImport(text: string, file: string): { log: StraceLog; tasks: readonly TaskRecord[] | undefined } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new TraceImportError(`${file}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const parsed = importSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TraceImportError(`${file}: not a 'vmalock trace import' file: ${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
  }
  const t = parsed.data;
  const events: StraceEvent[] = [];
  for (const x of t.threads) {
    for (const c of x.calls) events.push({ kind: 'call', tid: x.tid, ...c });
    for (const s of x.signals) events.push({ kind: 'signal', tid: x.tid, ...s });
    for (const e of x.exits) events.push({ kind: 'exit', tid: x.tid, ...e });
  }
  // Each event sits on a line of its own (a call at its completion line).
  events.sort((a, b) => a.line - b.line);
  return {
    log: { file: t.source, events, malformed: t.malformed, tids: t.threads.map((x) => x.tid), unfinished: t.unfinished, skipped: t.otherSyscalls },
    tasks: t.tasks?.records,
  };
}

function readInput(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${what} '${file}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

const tidColumnRe = /^(?:(\d+)|\[pid\s+(\d+)\])\s/;

/**
 * A call of the log that began and whose tid never shows another line: the log ends in the middle
 * of it, so it was cut (a thread killed in a call still gets its `+++ killed +++` line, and a
 * detached one says `<detached ...>`). Returns the first such call, or null.
 */
export function cutCall(text: string, log: StraceLog): StraceLog['unfinished'][number] | null {
  if (log.unfinished.length === 0) return null;
  const lines = text.split('\n');
  const lastLineOfTid = new Map<number, number>();
  lines.forEach((raw, i) => {
    if (raw.trim() === '') return;
    const m = tidColumnRe.exec(raw);
    lastLineOfTid.set(m === null ? 0 : Number(m[1] ?? m[2]), i + 1);
  });
  for (const u of log.unfinished) {
    if ((lines[u.line - 1] ?? '').trimEnd().endsWith('<detached ...>')) continue;
    if ((lastLineOfTid.get(u.tid) ?? 0) <= u.line) return u;
  }
  return null;
}

/** The default output: `<log name without .strace.log or .log>.json` in the working directory. */
export function defaultImportOut(log: string): string {
  return `${basename(log).replace(/(\.strace)?\.log$/, '')}.json`;
}

/**
 * `vmalock trace import <strace.log> [--tasks TSV] [--out FILE] [--skip-malformed] [--json]`:
 * parse a real strace log and write its normalised, replayable JSON form (`TraceImport`; `vmalock
 * trace replay` reads it back), then print a summary. A malformed line, or a call the log ends in
 * the middle of (a truncated log), is one error line `file:line: ...`, exit 2, nothing written —
 * unless `--skip-malformed`, which records them in the file instead.
 */
export function traceImportCommand(args: TraceImportArgs, io: CliIo): number {
  if (args.out === '-' && args.json) throw new UsageError('--out - prints the import on stdout: --json (the summary) cannot go there too');
  const out = args.out ?? defaultImportOut(args.log);
  if (out !== '-') {
    if (resolve(out) === resolve(args.log)) throw new UsageError(`--out '${out}' is the log itself`);
    if (existsSync(out) && statSync(out).isDirectory()) throw new UsageError(`--out '${out}' is a directory`);
    const parent = dirname(resolve(out));
    if (!existsSync(parent) || !statSync(parent).isDirectory()) throw new UsageError(`--out: the directory of '${out}' does not exist`);
  }
  const text = readInput(args.log, 'strace log');
  const tasksText = args.tasks !== undefined ? readInput(args.tasks, 'tasks file') : undefined;
  let log: StraceLog;
  try {
    log = parseStrace(text, { file: args.log, strict: !args.skipMalformed });
  } catch (e) {
    if (e instanceof StraceParseError) throw new UsageError(`${e.message} (--skip-malformed imports the other lines)`);
    throw e;
  }
  const lines = text.length === 0 ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  if (log.events.length === 0 && log.malformed.length === 0 && log.skipped === 0) throw new UsageError(`${args.log}: no strace line in it (an empty log)`);
  if (!args.skipMalformed) {
    const cut = cutCall(text, log);
    if (cut !== null)
      throw new UsageError(
        `${args.log}:${cut.line}: ${cut.syscall} on tid ${cut.tid} begins here and the log ends before it completes (a truncated log; --skip-malformed imports the rest)`,
      );
  }
  let records: TaskRecord[] | undefined;
  try {
    records = tasksText !== undefined ? parseTasks(tasksText, args.tasks!) : undefined;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const imported = importTrace(log, lines, records !== undefined ? { file: args.tasks!, records } : undefined);
  const textOut = formatTraceImport(imported);
  if (out === '-') io.out(textOut);
  else writeFileAtomic(out, textOut);

  const s = imported.summary;
  if (args.json) {
    io.out(`${JSON.stringify({ file: args.log, out, grouping: imported.grouping, ...s })}\n`);
    return ExitCode.ok;
  }
  const say = (t: string): void => (out === '-' ? io.err(t) : io.out(t));
  say(
    `${args.log}: ${s.calls} calls from ${s.tids} tids in ${s.processes} process${s.processes === 1 ? '' : 'es'} (grouped by ${imported.grouping === 'tasks' ? `the task tree ${args.tasks}` : 'the brk(NULL) heuristic'})\n\n`,
  );
  say(
    formatTable(
      ['syscall', 'calls'],
      Object.entries(s.bySyscall).map(([k, n]) => [k, String(n)]),
    ),
  );
  say(`\nsignals ${s.signals}, exits ${s.exits}, unfinished ${s.unfinished}, malformed lines ${s.malformed}, other syscalls ${s.otherSyscalls}\n`);
  for (const m of log.malformed.slice(0, 10)) say(`  ${args.log}:${m.line}: ${m.reason}\n`);
  if (log.malformed.length > 10) say(`  ... ${log.malformed.length - 10} more malformed lines\n`);
  if (out !== '-') say(`wrote ${out}\n`);
  return ExitCode.ok;
}
