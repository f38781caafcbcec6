// Parses real `strace -f -tt -T` logs of the mm syscalls into events a replay can use. The format
// notes are in shared/traces/README.md; the forms handled are the ones strace 6 prints:
//
//   13654 00:20:16.273680 brk(NULL)         = 0x2053000 <0.000044>          complete (padded)
//   13655 00:20:16.350011 munmap(0x7f2e4c000000, 262144 <unfinished ...>       first half
//   13655 00:20:16.350083 <... munmap resumed>) = 0 <0.000062>                 second half
//   13727 00:20:22.452960 --- SIGSEGV {si_signo=SIGSEGV, ...} ---              signal
//   14322 00:21:57.078065 +++ killed by SIGSEGV +++                            exit
//
// A malformed line is recorded with a reason naming the field (or thrown in strict mode); it never
// becomes an event, so a replay sees only calls whose every number was read exactly.
import { errnoByName, madviseNames, mapFlagNames, mlockFlagNames, mremapFlagNames, protNames } from '@vmalock/core';

/** The syscalls this parser decodes; any other syscall in a log is skipped and counted. */
export const straceSyscalls = ['mmap', 'munmap', 'mprotect', 'mremap', 'brk', 'madvise', 'mlock', 'munlock', 'mlock2', 'mlockall', 'munlockall'] as const;
export type StraceSyscall = (typeof straceSyscalls)[number];

/** What a call returned: a value, `-1` with an errno, or `= ?` (the thread died in the call). */
export type StraceResult =
  { readonly kind: 'value'; readonly value: number } | { readonly kind: 'error'; readonly errno: number; readonly name: string } | { readonly kind: 'unknown' };

/** One mm syscall, joined from its two halves when strace split it. */
export interface StraceCall {
  readonly kind: 'call';
  readonly tid: number;
  readonly syscall: StraceSyscall;
  /**
   * The arguments decoded to numbers in the kernel's order: addresses (`NULL` is 0), lengths, fds
   * (-1 stays -1), offsets, and flag bitmasks including unknown hex bits. `brk(NULL)` is `[0]`;
   * `mremap` has 4 arguments, or 5 with `new_address`.
   */
  readonly args: readonly number[];
  /** The argument text as printed, both halves joined, comments kept. */
  readonly rawArgs: string;
  readonly result: StraceResult;
  /** When the call began, µs since midnight of the log's first day (the time stamp of the line where it began). */
  readonly startUs: number;
  /**
   * `startUs` + the `<duration>` of `-T`: the effect happened in `[startUs, endUs]`. A `= ?` result
   * has no duration: then it is the time stamp of the completing line (a lower bound).
   */
  readonly endUs: number;
  /** 1-based line of the completion: the resumed half, or the complete line. */
  readonly line: number;
  /** 1-based line where the call began (equal to `line` for a complete line). */
  readonly startLine: number;
}

/** A `--- SIGxxx {...} ---` line: a signal delivered to `tid`, not a syscall. */
export interface StraceSignal {
  readonly kind: 'signal';
  readonly tid: number;
  readonly signal: string;
  /** `si_code` as printed (`SEGV_ACCERR`), or null when absent. */
  readonly code: string | null;
  /** `si_addr` (`NULL` is 0), or null when absent (only fault signals carry it). */
  readonly addr: number | null;
  readonly line: number;
  readonly timeUs: number;
}

/** A `+++ exited with N +++` or `+++ killed by SIGxxx [(core dumped)] +++` line. */
export interface StraceExit {
  readonly kind: 'exit';
  readonly tid: number;
  readonly how: 'exited' | 'killed';
  /** The exit status when `exited`, else null. */
  readonly status: number | null;
  /** The fatal signal when `killed`, else null. */
  readonly signal: string | null;
  readonly coreDumped: boolean;
  readonly line: number;
  readonly timeUs: number;
}

export type StraceEvent = StraceCall | StraceSignal | StraceExit;

export interface StraceMalformed {
  readonly line: number;
  readonly text: string;
  readonly reason: string;
}

/** A call that began but never completed in the log (truncated log, thread killed, strace detached). */
export interface StraceUnfinished {
  readonly tid: number;
  readonly line: number;
  readonly syscall: StraceSyscall;
}

export interface StraceLog {
  readonly file: string;
  /** Calls at their completion line, signals and exits at their line: in line order. */
  readonly events: readonly StraceEvent[];
  readonly malformed: readonly StraceMalformed[];
  /** Every tid of a line's tid column, in order of first appearance. */
  readonly tids: readonly number[];
  /** Calls of the decoded syscalls never resumed, by line. */
  readonly unfinished: readonly StraceUnfinished[];
  /** How many calls of other syscalls the log holds (counted where they began, not decoded). */
  readonly skipped: number;
}

export interface StraceParseOptions {
  /** Names the log in reasons and errors. */
  readonly file: string;
  /** Throw a StraceParseError on the first malformed line instead of recording it. */
  readonly strict?: boolean;
  /** The tid of lines without a tid column (strace without `-f`, or one file of `-ff`); default 0. */
  readonly tid?: number;
}

/** The first malformed line of a log parsed with `strict: true`. */
export class StraceParseError extends Error {
  override readonly name = 'StraceParseError';

  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
  }
}

/** Why one line is malformed; caught per line, never escapes this module. */
class LineError extends Error {}

function fail(reason: string): never {
  throw new LineError(reason);
}

function clip(text: string): string {
  const max = 60;
  return text.length <= max ? text : `${text.slice(0, max)}...`;
}

/** The value of the `count` ASCII digits of `text` at `from`, or -1 if one is not a digit. */
function digitsAt(text: string, from: number, count: number): number {
  let n = 0;
  for (let i = from; i < from + count; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (!(digit >= 0 && digit <= 9)) return -1;
    n = n * 10 + digit;
  }
  return n;
}

/** `HH:MM:SS.micro` (strace `-tt`, and the tasks files) to µs since midnight, or null. */
export function parseTimeOfDayUs(text: string): number | null {
  // By hand rather than by regex: this runs on every line of logs of a million lines.
  if (text.length !== 15 || text[2] !== ':' || text[5] !== ':' || text[8] !== '.') return null;
  const [hours, minutes, seconds, micros] = [digitsAt(text, 0, 2), digitsAt(text, 3, 2), digitsAt(text, 6, 2), digitsAt(text, 9, 6)];
  // 60 seconds is a leap second.
  if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59 || seconds < 0 || seconds > 60 || micros < 0) return null;
  return ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros;
}

const numberRe = /^(?:-?\d+|0x[0-9a-f]+)$/i;

/** A decimal or `0x` hex integer, exactly: anything at or above 2^53 is refused, never rounded. */
function parseExact(text: string): number {
  if (!numberRe.test(text)) fail(`'${clip(text)}' is not a number`);
  const n = Number(text);
  // Number() of a value >= 2^53 rounds to a value >= 2^53, so this catches every inexact one.
  if (!Number.isSafeInteger(n)) fail(`'${clip(text)}' is not exact in a double (|n| >= 2^53)`);
  return n;
}

function parseNonNegative(text: string): number {
  const n = parseExact(text);
  if (n < 0) fail(`'${clip(text)}' is negative`);
  return n;
}

/** Runs `parse`; the reason of a malformed value gets `what` in front: `mmap: result '0x1x' is not a number`. */
function described<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw e instanceof LineError ? new LineError(`${what} ${e.message}`) : e;
  }
}

type FlagTable = ReadonlyMap<string, number>;

function flagTable(names: Readonly<Record<string, number>>): FlagTable {
  return new Map(Object.entries(names));
}

const protTable = flagTable(protNames);
const mapFlagTable = flagTable(mapFlagNames);
const mremapFlagTable = flagTable(mremapFlagNames);
const mlockFlagTable = flagTable(mlockFlagNames);
const madviseTable = flagTable(madviseNames);
const errnoTable = flagTable(errnoByName);
/** `mlockall` flags; not in core's uapi (include/uapi/asm-generic/mman-common.h). */
const mclFlagTable = flagTable({ MCL_CURRENT: 1, MCL_FUTURE: 2, MCL_ONFAULT: 4 });
/** strace prints the huge page size of `MAP_HUGETLB` as `21<<MAP_HUGE_SHIFT`. */
const mapShiftTable = flagTable({ MAP_HUGE_SHIFT: 26 });
const noShiftTable: FlagTable = new Map();

const shiftRe = /^(\d+)<<([A-Z_][A-Z0-9_]*)$/;
const twoTo32 = 2 ** 32;

/** `a | b` exactly for integers below 2^53 (JS's `|` works on 32 bits): the high and low words apart. */
function orExact(a: number, b: number): number {
  const high = (Math.floor(a / twoTo32) | Math.floor(b / twoTo32)) >>> 0;
  return high * twoTo32 + (((a >>> 0) | (b >>> 0)) >>> 0);
}

/** One `|`-joined flag token: a known name, a number (strace's unknown bits), or `N<<SHIFT`. */
function flagTokenBits(token: string, table: FlagTable, shifts: FlagTable): number {
  const named = table.get(token);
  if (named !== undefined) return named;
  const shift = shiftRe.exec(token);
  if (shift !== null) {
    const by = shifts.get(shift[2] ?? '');
    if (by === undefined) fail(`has an unknown shift '${clip(token)}'`);
    const bits = parseNonNegative(shift[1] ?? '') * 2 ** by;
    if (!Number.isSafeInteger(bits)) fail(`'${clip(token)}' is not exact in a double (>= 2^53)`);
    return bits;
  }
  if (!numberRe.test(token)) fail(`has an unknown flag '${clip(token)}'`);
  return parseNonNegative(token);
}

/** A `|`-joined flag set to its bitmask, exactly. */
function parseFlags(text: string, table: FlagTable, shifts: FlagTable): number {
  let bits = 0;
  for (const raw of text.split('|')) {
    const token = raw.trim();
    if (token === '') fail(`'${clip(text)}' has an empty flag`);
    bits = orExact(bits, flagTokenBits(token, table, shifts));
  }
  return bits;
}

/** A value that is one name of `table` (madvise advice), or a number for an unknown one. */
function parseEnum(text: string, table: FlagTable): number {
  const named = table.get(text);
  if (named !== undefined) return named;
  if (!numberRe.test(text)) fail(`'${clip(text)}' is not a known name or a number`);
  return parseNonNegative(text);
}

type ArgKind = 'addr' | 'size' | 'fd' | 'offset' | 'prot' | 'mapFlags' | 'mremapFlags' | 'advice' | 'mlock2Flags' | 'mlockallFlags';

interface ArgSpec {
  readonly name: string;
  readonly kind: ArgKind;
}

interface SyscallSpec {
  readonly args: readonly ArgSpec[];
  /** How many trailing arguments strace may leave out (mremap's `new_address`). */
  readonly optionalArgs: number;
}

const addr: ArgSpec = { name: 'addr', kind: 'addr' };
const length: ArgSpec = { name: 'length', kind: 'size' };
const len: ArgSpec = { name: 'len', kind: 'size' };
const prot: ArgSpec = { name: 'prot', kind: 'prot' };

/** Argument names and kinds as in the man pages. */
const syscallSpecs: Readonly<Record<StraceSyscall, SyscallSpec>> = {
  mmap: { args: [addr, length, prot, { name: 'flags', kind: 'mapFlags' }, { name: 'fd', kind: 'fd' }, { name: 'offset', kind: 'offset' }], optionalArgs: 0 },
  munmap: { args: [addr, length], optionalArgs: 0 },
  mprotect: { args: [addr, len, prot], optionalArgs: 0 },
  mremap: {
    args: [
      { name: 'old_address', kind: 'addr' },
      { name: 'old_size', kind: 'size' },
      { name: 'new_size', kind: 'size' },
      { name: 'flags', kind: 'mremapFlags' },
      { name: 'new_address', kind: 'addr' },
    ],
    optionalArgs: 1,
  },
  brk: { args: [addr], optionalArgs: 0 },
  madvise: { args: [addr, length, { name: 'advice', kind: 'advice' }], optionalArgs: 0 },
  mlock: { args: [addr, len], optionalArgs: 0 },
  munlock: { args: [addr, len], optionalArgs: 0 },
  mlock2: { args: [addr, len, { name: 'flags', kind: 'mlock2Flags' }], optionalArgs: 0 },
  mlockall: { args: [{ name: 'flags', kind: 'mlockallFlags' }], optionalArgs: 0 },
  munlockall: { args: [], optionalArgs: 0 },
};

const straceSyscallSet: ReadonlySet<string> = new Set(straceSyscalls);

function isStraceSyscall(name: string): name is StraceSyscall {
  return straceSyscallSet.has(name);
}

function decodeArg(text: string, kind: ArgKind): number {
  switch (kind) {
    case 'addr':
      return text === 'NULL' ? 0 : parseNonNegative(text);
    case 'size':
    case 'offset':
      return parseNonNegative(text);
    case 'fd':
      return parseExact(text);
    case 'prot':
      return parseFlags(text, protTable, noShiftTable);
    case 'mapFlags':
      return parseFlags(text, mapFlagTable, mapShiftTable);
    case 'mremapFlags':
      return parseFlags(text, mremapFlagTable, noShiftTable);
    case 'mlock2Flags':
      return parseFlags(text, mlockFlagTable, noShiftTable);
    case 'mlockallFlags':
      return parseFlags(text, mclFlagTable, noShiftTable);
    case 'advice':
      return parseEnum(text, madviseTable);
  }
}

const commentRe = /\/\*.*?\*\//g;

/** The argument text to numbers; C comments (`/* MAP_??? *\/`) are strace's annotations and go. */
function decodeArgs(syscall: StraceSyscall, rawArgs: string): number[] {
  const spec = syscallSpecs[syscall];
  const bare = (rawArgs.includes('/*') ? rawArgs.replace(commentRe, '') : rawArgs).trim();
  const texts = bare === '' ? [] : bare.split(',');
  const max = spec.args.length;
  const min = max - spec.optionalArgs;
  if (texts.length < min || texts.length > max) {
    fail(`${syscall}: ${texts.length} arguments '${clip(rawArgs)}', expected ${min === max ? max : `${min} or ${max}`}`);
  }
  const args: number[] = [];
  texts.forEach((text, i) => {
    const arg = spec.args[i]!;
    // Inline rather than described(): the reason's text is built only for a malformed argument.
    try {
      args.push(decodeArg(text.trim(), arg.kind));
    } catch (e) {
      throw e instanceof LineError ? new LineError(`${syscall}: argument ${i + 1} (${arg.name}) ${e.message}`) : e;
    }
  });
  return args;
}

const resultRe = /^(\?|-?\d+|0x[0-9a-fA-F]+)(?:\s+([A-Z][A-Z0-9_]*)\s+\(([^()]*)\))?(?:\s+<([^<>]*)>)?$/;
const durationRe = /^(\d+)\.(\d{6})$/;

/** `-T`'s `<seconds.micro>` to µs. */
function parseDurationUs(text: string, syscall: string): number {
  const m = durationRe.exec(text);
  if (m === null) fail(`${syscall}: duration '<${clip(text)}>' is not <seconds.micro>`);
  const us = Number(m[1]) * 1_000_000 + Number(m[2]);
  if (!Number.isSafeInteger(us)) fail(`${syscall}: duration '<${clip(text)}>' is not exact`);
  return us;
}

function errorResult(syscall: StraceSyscall, valueText: string, name: string): StraceResult {
  // A failed brk returns the old break, so strace never prints an errno for it.
  if (syscall === 'brk') fail(`brk: result '${valueText} ${name}' is impossible: a failed brk returns the old break, never -1`);
  if (valueText !== '-1') fail(`${syscall}: error result '${clip(valueText)}' is not -1`);
  const errno = errnoTable.get(name);
  if (errno === undefined) fail(`${syscall}: unknown errno '${name}'`);
  return { kind: 'error', errno, name };
}

function valueResult(syscall: StraceSyscall, valueText: string): StraceResult {
  // By regex the text is a number: only exactness can fail.
  const value = Number(valueText);
  if (!Number.isSafeInteger(value)) fail(`${syscall}: result '${clip(valueText)}' is not exact in a double (|n| >= 2^53)`);
  if (value < 0) fail(`${syscall}: result '${valueText}' is negative without an errno`);
  return { kind: 'value', value };
}

/** The text after ` = `: the result, then `<duration>` (absent only for `= ?`). */
function parseResult(syscall: StraceSyscall, text: string): { result: StraceResult; durationUs: number | null } {
  const m = resultRe.exec(text);
  if (m === null) fail(`${syscall}: result '${clip(text)}' is not a number, an errno or '?'`);
  const [, valueText = '', errnoName, , durationText] = m;
  if (valueText === '?') {
    const durationUs = durationText === undefined || durationText === 'unavailable' ? null : parseDurationUs(durationText, syscall);
    return { result: { kind: 'unknown' }, durationUs };
  }
  const result = errnoName === undefined ? valueResult(syscall, valueText) : errorResult(syscall, valueText, errnoName);
  if (durationText === undefined) fail(`${syscall}: no <duration> after the result (the log needs strace -T)`);
  return { result, durationUs: parseDurationUs(durationText, syscall) };
}

/** Splits `ARGS) = RESULT` (padding allowed before `=`) into the argument text and the result text. */
function splitResult(syscall: string, text: string): { argsText: string; resultText: string } {
  const eq = text.lastIndexOf(' = ');
  if (eq < 0) fail(`${syscall}: no ' = ' result and no <unfinished ...>`);
  const before = text.slice(0, eq).trimEnd();
  if (!before.endsWith(')')) fail(`${syscall}: no ')' closing the arguments before ' = '`);
  return { argsText: before.slice(0, -1), resultText: text.slice(eq + 3).trim() };
}

const unfinishedMark = '<unfinished ...>';
const detachedMark = '<detached ...>';
const tidRe = /^(?:(\d+)|\[pid\s+(\d+)\])\s+/;
const callRe = /^([A-Za-z_][A-Za-z0-9_]*)\(/;
const resumedRe = /^<\.\.\. ([A-Za-z_][A-Za-z0-9_]*) resumed>/;
const signalRe = /^--- (SIG[A-Z0-9_]+) \{(.*)\} ---$/;
const exitedRe = /^\+\+\+ exited with (\d+) \+\+\+$/;
const killedRe = /^\+\+\+ killed by (SIG[A-Z0-9_]+)( \(core dumped\))? \+\+\+$/;
const siCodeRe = /(?:^|[\s,{])si_code=([^,}\s]+)/;
const siAddrRe = /(?:^|[\s,{])si_addr=([^,}\s]+)/;
const dayUs = 86_400_000_000;
const halfDayUs = dayUs / 2;

/** The first half of a split call, waiting for its `<... NAME resumed>`. */
interface Pending {
  readonly syscall: string;
  readonly head: string;
  readonly startUs: number;
  readonly line: number;
}

/** Where a line sits: its number, tid and time stamp. */
interface LineContext {
  readonly line: number;
  readonly tid: number;
  readonly timeUs: number;
}

/** The state of one parse: halves in flight per tid, and what has been read so far. */
class StraceLogBuilder {
  private readonly events: StraceEvent[] = [];
  private readonly malformed: StraceMalformed[] = [];
  private readonly tids: number[] = [];
  private readonly seenTids = new Set<number>();
  private readonly unfinished: StraceUnfinished[] = [];
  private readonly pending = new Map<number, Pending>();
  private skipped = 0;
  private dayOffsetUs = 0;
  private lastTimeOfDayUs = -1;

  constructor(private readonly options: StraceParseOptions) {}

  /** Reads one line; `truncated` marks a last line without its newline. */
  read(line: number, text: string, truncated: boolean): void {
    if (text.trim() === '') return;
    try {
      this.readLine(line, text);
    } catch (e) {
      if (!(e instanceof LineError)) throw e;
      const reason = truncated ? `${e.message} (last line, no newline: truncated log)` : e.message;
      if (this.options.strict === true) throw new StraceParseError(this.options.file, line, reason);
      this.malformed.push({ line, text, reason });
    }
  }

  finish(): StraceLog {
    for (const [tid, p] of this.pending) this.abandon(tid, p);
    this.pending.clear();
    this.unfinished.sort((a, b) => a.line - b.line);
    return { file: this.options.file, events: this.events, malformed: this.malformed, tids: this.tids, unfinished: this.unfinished, skipped: this.skipped };
  }

  private readLine(line: number, text: string): void {
    const tidMatch = tidRe.exec(text);
    const tid = tidMatch === null ? (this.options.tid ?? 0) : Number(tidMatch[1] ?? tidMatch[2]);
    if (!Number.isSafeInteger(tid)) fail(`tid '${clip(tidMatch?.[0].trim() ?? '')}' is not exact in a double (>= 2^53)`);
    const afterTid = tidMatch === null ? text : text.slice(tidMatch[0].length);
    const space = afterTid.indexOf(' ');
    const timeText = space < 0 ? afterTid : afterTid.slice(0, space);
    const timeOfDayUs = parseTimeOfDayUs(timeText);
    if (timeOfDayUs === null) {
      fail(tidMatch === null ? `'${clip(timeText)}' is neither a tid nor a HH:MM:SS.micro time` : `time '${clip(timeText)}' is not HH:MM:SS.micro`);
    }
    const rest = space < 0 ? '' : afterTid.slice(space + 1);
    if (rest === '') fail('nothing after the time');
    this.noteTid(tid);
    this.readEvent({ line, tid, timeUs: this.clock(timeOfDayUs) }, rest);
  }

  /** Time of day to a clock that keeps counting past midnight (a jump back of over 12 h is a new day). */
  private clock(timeOfDayUs: number): number {
    if (timeOfDayUs < this.lastTimeOfDayUs - halfDayUs) this.dayOffsetUs += dayUs;
    this.lastTimeOfDayUs = timeOfDayUs;
    return this.dayOffsetUs + timeOfDayUs;
  }

  private noteTid(tid: number): void {
    if (this.seenTids.has(tid)) return;
    this.seenTids.add(tid);
    this.tids.push(tid);
  }

  private readEvent(ctx: LineContext, rest: string): void {
    if (rest.startsWith('--- ')) return this.readSignal(ctx, rest);
    if (rest.startsWith('+++ ')) return this.readExit(ctx, rest);
    if (rest.startsWith('<... ')) return this.readResumed(ctx, rest);
    const call = callRe.exec(rest);
    if (call === null) fail(`unrecognized event '${clip(rest)}'`);
    const name = call[1] ?? '';
    this.readCall(ctx, name, rest.slice(call[0].length));
  }

  /** `NAME(ARGS) = RESULT <DUR>`, or the first half `NAME(ARGS <unfinished ...>`, or `... <detached ...>`. */
  private readCall(ctx: LineContext, syscall: string, afterParen: string): void {
    if (afterParen.endsWith(unfinishedMark)) {
      // strace prints one space before the mark; the args text keeps any other (`read(3,  <unf...`).
      const head = afterParen.slice(0, -unfinishedMark.length).replace(/ $/, '');
      this.begin(ctx, syscall);
      this.pending.set(ctx.tid, { syscall, head, startUs: ctx.timeUs, line: ctx.line });
      return;
    }
    if (afterParen.endsWith(detachedMark)) {
      // strace let go of the thread in the middle of this call: it began, and its end is unknown.
      this.begin(ctx, syscall);
      if (isStraceSyscall(syscall)) this.unfinished.push({ tid: ctx.tid, line: ctx.line, syscall });
      return;
    }
    const { argsText, resultText } = splitResult(syscall, afterParen);
    if (!isStraceSyscall(syscall)) {
      this.begin(ctx, syscall);
      return;
    }
    const call = this.decodeCall(ctx, syscall, argsText, resultText, ctx.timeUs, ctx.line);
    this.begin(ctx, syscall);
    this.events.push(call);
  }

  /** A call begins on `ctx.tid`: a half still in flight there was never resumed, and other syscalls are counted. */
  private begin(ctx: LineContext, syscall: string): void {
    const stale = this.pending.get(ctx.tid);
    if (stale !== undefined) {
      this.abandon(ctx.tid, stale);
      this.pending.delete(ctx.tid);
    }
    if (!isStraceSyscall(syscall)) this.skipped++;
  }

  private abandon(tid: number, p: Pending): void {
    if (isStraceSyscall(p.syscall)) this.unfinished.push({ tid, line: p.line, syscall: p.syscall });
  }

  /** `<... NAME resumed>TAIL) = RESULT <DUR>`: joins the tid's first half; the args may be split across both. */
  private readResumed(ctx: LineContext, rest: string): void {
    const m = resumedRe.exec(rest);
    if (m === null) fail(`unrecognized resumed half '${clip(rest)}'`);
    const syscall = m[1] ?? '';
    const p = this.pending.get(ctx.tid);
    if (p === undefined) fail(`<... ${syscall} resumed> without an unfinished ${syscall} call on tid ${ctx.tid}`);
    if (p.syscall !== syscall) fail(`<... ${syscall} resumed> but tid ${ctx.tid}'s unfinished call is ${p.syscall} (line ${p.line})`);
    const { argsText, resultText } = splitResult(syscall, rest.slice(m[0].length));
    if (isStraceSyscall(syscall)) this.events.push(this.decodeCall(ctx, syscall, p.head + argsText, resultText, p.startUs, p.line));
    // Only a completion that parsed ends the call; a malformed one leaves it unfinished.
    this.pending.delete(ctx.tid);
  }

  private decodeCall(ctx: LineContext, syscall: StraceSyscall, rawArgs: string, resultText: string, startUs: number, startLine: number): StraceCall {
    const args = decodeArgs(syscall, rawArgs);
    const { result, durationUs } = parseResult(syscall, resultText);
    const endUs = durationUs === null ? ctx.timeUs : startUs + durationUs;
    return { kind: 'call', tid: ctx.tid, syscall, args, rawArgs, result, startUs, endUs, line: ctx.line, startLine };
  }

  /** `--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_ACCERR, si_addr=0x7fba53445000} ---`; SIGCHLD's carry C comments. */
  private readSignal(ctx: LineContext, rest: string): void {
    const m = signalRe.exec(rest.replace(commentRe, ''));
    if (m === null) fail(`unrecognized signal line '${clip(rest)}'`);
    const signal = m[1] ?? '';
    const body = m[2] ?? '';
    const code = siCodeRe.exec(body)?.[1] ?? null;
    const addrText = siAddrRe.exec(body)?.[1];
    const addr = addrText === undefined ? null : described(`${signal}: si_addr`, () => decodeArg(addrText, 'addr'));
    this.events.push({ kind: 'signal', tid: ctx.tid, signal, code, addr, line: ctx.line, timeUs: ctx.timeUs });
  }

  /** `+++ exited with 0 +++`, `+++ killed by SIGSEGV +++`, `+++ killed by SIGSEGV (core dumped) +++`. */
  private readExit(ctx: LineContext, rest: string): void {
    const exited = exitedRe.exec(rest);
    const killed = exited === null ? killedRe.exec(rest) : null;
    if (exited === null && killed === null) fail(`unrecognized exit line '${clip(rest)}'`);
    const p = this.pending.get(ctx.tid);
    if (p !== undefined) {
      this.abandon(ctx.tid, p);
      this.pending.delete(ctx.tid);
    }
    const base = { kind: 'exit', tid: ctx.tid, line: ctx.line, timeUs: ctx.timeUs } as const;
    if (exited !== null) {
      this.events.push({ ...base, how: 'exited', status: described('exit status', () => parseExact(exited[1] ?? '')), signal: null, coreDumped: false });
      return;
    }
    this.events.push({ ...base, how: 'killed', status: null, signal: killed?.[1] ?? '', coreDumped: killed?.[2] !== undefined });
  }
}

/**
 * Parses a `strace -f -tt -T` log of the mm syscalls. Halves of a split call are joined per tid;
 * calls of other syscalls are skipped and counted; a malformed line is recorded with a reason
 * naming the field, or with `strict: true` thrown as a StraceParseError.
 */
export function parseStrace(text: string, options: StraceParseOptions): StraceLog {
  const builder = new StraceLogBuilder(options);
  const lines = text.split('\n');
  const endsWithNewline = text.endsWith('\n');
  if (endsWithNewline) lines.pop();
  lines.forEach((raw, i) => {
    const truncated = !endsWithNewline && i === lines.length - 1;
    builder.read(i + 1, raw.endsWith('\r') ? raw.slice(0, -1) : raw, truncated);
  });
  return builder.finish();
}
