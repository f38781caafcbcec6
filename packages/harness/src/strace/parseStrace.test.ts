// Proves parseStrace reads real `strace -f -tt -T` logs exactly: every log in shared/traces/strace
// parses with no malformed line, and its per-syscall call counts, signals and exits equal the
// figures counted independently with grep (`grep -cE ' mmap\(.*\) += .*>$'` for complete lines plus
// `grep -c '<\.\.\. mmap resumed>'` for joined halves). Then each line form of the README is parsed
// from a literal line: lines quoted from the real logs where the form occurs there, and lines
// written in strace's format for the forms the README lists as possible but absent (errors, unknown
// flag bits, `= ?`, `<detached ...>`, SIGCHLD, no tid column). Malformed input must come back as
// `file:line: reason` naming the field, and throw with `strict: true`. The logs must also fit the
// task trees of shared/traces/tasks recorded by perf in the same runs (tids and times).
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type StraceCall, type StraceEvent, type StraceLog, StraceParseError, parseStrace } from './parseStrace.js';
import { parseTasks } from './parseTasks.js';

// Kernel values (include/uapi/asm-generic/mman-common.h, arch/x86/include/uapi/asm/mman.h) written
// out, not imported, so that these tests check core's name tables as well as the parser.
const PROT_NONE = 0x0;
const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const PROT_EXEC = 0x4;
const MAP_PRIVATE = 0x02;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MAP_DENYWRITE = 0x0800;
const MAP_NORESERVE = 0x4000;
const MAP_HUGETLB = 0x40000;
const MAP_HUGE_SHIFT = 26;
const MREMAP_MAYMOVE = 1;
const MREMAP_FIXED = 2;
const MADV_DONTNEED = 4;
const MADV_DONTFORK = 10;
const MLOCK_ONFAULT = 0x01;
const MCL_CURRENT = 1;
const MCL_FUTURE = 2;

const tracesDir = new URL('../../../../../shared/traces/', import.meta.url);
const straceDir = new URL('strace/', tracesDir);

function parseLines(lines: readonly string[], options: { strict?: boolean; tid?: number } = {}): StraceLog {
  return parseStrace(lines.map((l) => `${l}\n`).join(''), { file: 'test.log', ...options });
}

function calls(log: StraceLog): StraceCall[] {
  return log.events.filter((e): e is StraceCall => e.kind === 'call');
}

function onlyCall(log: StraceLog): StraceCall {
  expect(log.malformed).toEqual([]);
  const all = calls(log);
  expect(all).toHaveLength(1);
  return all[0]!;
}

function onlyEvent(log: StraceLog): StraceEvent {
  expect(log.malformed).toEqual([]);
  expect(log.events).toHaveLength(1);
  return log.events[0]!;
}

/** The one malformed line of `lines`, as `line: reason`, checked to throw the same in strict mode. */
function malformedReason(lines: readonly string[]): string {
  const log = parseLines(lines);
  expect(log.malformed).toHaveLength(1);
  const bad = log.malformed[0]!;
  expect(() => parseLines(lines, { strict: true })).toThrow(new StraceParseError('test.log', bad.line, bad.reason));
  return `${bad.line}: ${bad.reason}`;
}

interface Expected {
  syscalls: Record<string, number>;
  signals: number;
  exits: number;
  tids: number;
  split: number;
}

/** Counted with grep over the files (see the comment at the top). */
const expectedByLog: Record<string, Expected> = {
  'edge_python_segv.strace.log': { syscalls: { mmap: 117, munmap: 10, mprotect: 29, brk: 20 }, signals: 1, exits: 4, tids: 4, split: 0 },
  'java_allocstress.strace.log': { syscalls: { mmap: 391, munmap: 28, mprotect: 505, brk: 29, madvise: 70 }, signals: 44, exits: 40, tids: 40, split: 169 },
  'node_workers.strace.log': { syscalls: { mmap: 4764, munmap: 9394, mprotect: 7096, brk: 23, madvise: 5237 }, signals: 0, exits: 11, tids: 11, split: 16354 },
  'python_threads.strace.log': { syscalls: { mmap: 414, munmap: 200, mprotect: 187, brk: 32, madvise: 13 }, signals: 0, exits: 6, tids: 6, split: 5 },
  'sort_parallel.strace.log': { syscalls: { mmap: 27, munmap: 7, mprotect: 5, brk: 3, madvise: 3 }, signals: 0, exits: 4, tids: 4, split: 0 },
};

const logFiles = readdirSync(straceDir).filter((f) => f.endsWith('.strace.log'));
const realLogs = new Map(logFiles.map((f) => [f, parseStrace(readFileSync(new URL(f, straceDir), 'utf8'), { file: f, strict: true })]));

function realLog(file: string): StraceLog {
  const log = realLogs.get(file);
  if (log === undefined) throw new Error(`${file} is not in ${straceDir.pathname}`);
  return log;
}

describe('parseStrace', () => {
  describe('having the real logs of shared/traces/strace', () => {
    it('should find exactly the five logs of the README', () => {
      expect(logFiles.sort()).toEqual(Object.keys(expectedByLog).sort());
    });

    it.each(Object.entries(expectedByLog))('should parse %s strictly with the grep counts', (file, expected) => {
      const log = realLog(file);
      expect(log.malformed).toEqual([]);
      expect(log.unfinished).toEqual([]);
      expect(log.skipped).toBe(0);
      const perSyscall: Record<string, number> = {};
      for (const c of calls(log)) perSyscall[c.syscall] = (perSyscall[c.syscall] ?? 0) + 1;
      expect(perSyscall).toEqual(expected.syscalls);
      expect(log.events.filter((e) => e.kind === 'signal')).toHaveLength(expected.signals);
      expect(log.events.filter((e) => e.kind === 'exit')).toHaveLength(expected.exits);
      expect(log.tids).toHaveLength(expected.tids);
      expect(calls(log).filter((c) => c.startLine < c.line)).toHaveLength(expected.split);
    });

    it('should keep every log in line order with each call inside its time stamps', () => {
      for (const log of realLogs.values()) {
        const lines = log.events.map((e) => e.line);
        expect(lines).toEqual([...lines].sort((a, b) => a - b));
        const bad = calls(log).filter((c) => c.endUs < c.startUs || c.result.kind !== 'value');
        expect(bad, log.file).toEqual([]);
      }
    });

    it.each(Object.keys(expectedByLog))("should fit the task tree of %s: same tids, lines inside each task's life", (file) => {
      const log = realLog(file);
      const tasksFile = file.replace('.strace.log', '.tasks.tsv');
      const tasks = parseTasks(readFileSync(new URL(`tasks/${tasksFile}`, tracesDir), 'utf8'), tasksFile);
      expect([...log.tids].sort()).toEqual(tasks.map((t) => t.tid).sort());
      for (const task of tasks) {
        const events = log.events.filter((e) => e.tid === task.tid);
        const first = events[0];
        const exit = events.find((e) => e.kind === 'exit');
        expect(first?.kind === 'call' ? first.startUs : first?.timeUs).toBeGreaterThan(task.startUs);
        // strace reports an exit when it reaps the thread: after the kernel's exit, not long after.
        expect(exit?.timeUs).toBeGreaterThanOrEqual(task.exitUs);
        expect(exit?.timeUs).toBeLessThan(task.exitUs + 100_000);
      }
    });

    it('should decode the node V8 reservations and MADV_DONTFORK as numbers', () => {
      const node = calls(realLog('node_workers.strace.log'));
      const reservations = node.filter((c) => c.syscall === 'mmap' && c.args[3] === (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE) && c.args[2] === PROT_NONE);
      // grep -c 'PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE' node_workers.strace.log
      expect(reservations).toHaveLength(4678);
      expect(node.filter((c) => c.syscall === 'madvise' && c.args[2] === MADV_DONTFORK)).toHaveLength(4669);
    });

    it('should read the 44 SIGSEGVs of java, 43 of them at the safepoint polling page', () => {
      const signals = realLog('java_allocstress.strace.log').events.filter((e) => e.kind === 'signal');
      expect(signals.filter((s) => s.signal === 'SIGSEGV')).toHaveLength(44);
      expect(signals.filter((s) => s.code === 'SEGV_ACCERR' && s.addr === 0x7f6b1cb9b000)).toHaveLength(43);
    });

    it('should end the segv run with every thread killed by SIGSEGV', () => {
      const exits = realLog('edge_python_segv.strace.log').events.filter((e) => e.kind === 'exit');
      expect(exits.map((e) => [e.tid, e.how, e.signal])).toEqual([
        [14322, 'killed', 'SIGSEGV'],
        [14320, 'killed', 'SIGSEGV'],
        [14321, 'killed', 'SIGSEGV'],
        [14319, 'killed', 'SIGSEGV'],
      ]);
    });
  });

  describe('having a complete line', () => {
    it('should decode an anonymous mmap with its times', () => {
      const c = onlyCall(
        parseLines(['16320 00:24:11.724921 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f431158f000 <0.000030>']),
      );
      expect(c).toEqual({
        kind: 'call',
        tid: 16320,
        syscall: 'mmap',
        args: [0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0],
        rawArgs: 'NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0',
        result: { kind: 'value', value: 0x7f431158f000 },
        startUs: (24 * 60 + 11) * 1_000_000 + 724_921,
        endUs: (24 * 60 + 11) * 1_000_000 + 724_951,
        line: 1,
        startLine: 1,
      });
    });

    it('should decode a file mapping with a hex offset', () => {
      const c = onlyCall(
        parseLines([
          '16320 00:24:11.725339 mmap(0x7f43113ca000, 1400832, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x26000) = 0x7f43113ca000 <0.000027>',
        ]),
      );
      expect(c.args).toEqual([0x7f43113ca000, 1400832, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED | MAP_DENYWRITE, 3, 0x26000]);
    });

    it('should read a short call padded before the result', () => {
      const c = onlyCall(parseLines(['16320 00:24:11.724511 brk(NULL)         = 0x55fc61416000 <0.000014>']));
      expect(c).toMatchObject({ syscall: 'brk', args: [0], rawArgs: 'NULL', result: { kind: 'value', value: 0x55fc61416000 } });
    });

    it('should read madvise advice and munmap', () => {
      const log = parseLines([
        '16321 00:24:12.588401 madvise(0x7f430cb3f000, 8368128, MADV_DONTNEED) = 0 <0.000016>',
        '16321 00:24:12.281682 munmap(0x7f430c000000, 10485760) = 0 <0.000014>',
      ]);
      expect(calls(log).map((c) => [c.syscall, c.args])).toEqual([
        ['madvise', [0x7f430cb3f000, 8368128, MADV_DONTNEED]],
        ['munmap', [0x7f430c000000, 10485760]],
      ]);
    });
  });

  describe('having a call split into halves', () => {
    // node_workers.strace.log lines 176-180: two threads' halves interleaved.
    const lines = [
      '13661 00:20:16.390118 mprotect(0x7f69b4029000, 61440, PROT_READ|PROT_WRITE <unfinished ...>',
      '13662 00:20:16.390127 mmap(0x7f69b8000000, 67108864, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0 <unfinished ...>',
      '13661 00:20:16.390153 <... mprotect resumed>) = 0 <0.000030>',
      '13662 00:20:16.390164 <... mmap resumed>) = 0x7f69b8000000 <0.000031>',
      '13662 00:20:16.390230 mprotect(0x7f69b8000000, 135168, PROT_READ|PROT_WRITE) = 0 <0.000030>',
    ];

    it('should join the halves per tid, ordered by completion, timed from the first half', () => {
      const log = parseLines(lines);
      expect(log.malformed).toEqual([]);
      const [mprotect, mmap, third] = calls(log);
      expect(mprotect).toMatchObject({ tid: 13661, syscall: 'mprotect', args: [0x7f69b4029000, 61440, PROT_READ | PROT_WRITE], startLine: 1, line: 3 });
      expect(mprotect!.endUs - mprotect!.startUs).toBe(30);
      expect(mprotect!.startUs % 1_000_000).toBe(390_118);
      expect(mmap).toMatchObject({ tid: 13662, syscall: 'mmap', startLine: 2, line: 4, result: { kind: 'value', value: 0x7f69b8000000 } });
      expect(mmap!.rawArgs).toBe('0x7f69b8000000, 67108864, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0');
      expect(third).toMatchObject({ startLine: 5, line: 5 });
      expect(log.tids).toEqual([13661, 13662]);
    });

    it('should join arguments split across the halves', () => {
      const c = onlyCall(
        parseLines([
          '13726 00:20:22.404877 mmap(NULL, 8192, PROT_READ|PROT_WRITE,  <unfinished ...>',
          '13726 00:20:22.405328 <... mmap resumed>MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f431158f000 <0.000438>',
        ]),
      );
      expect(c.rawArgs).toBe('NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0');
      expect(c.args).toEqual([0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0]);
    });

    it('should list a half never resumed as unfinished', () => {
      const log = parseLines(lines.slice(0, 3));
      expect(calls(log)).toHaveLength(1);
      expect(log.unfinished).toEqual([{ tid: 13662, line: 2, syscall: 'mmap' }]);
    });
  });

  describe('having an error result', () => {
    it('should read -1 with the errno', () => {
      const c = onlyCall(
        parseLines([
          '13710 00:20:21.922401 mmap(NULL, 140737488355328, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory) <0.000010>',
        ]),
      );
      expect(c.result).toEqual({ kind: 'error', errno: 12, name: 'ENOMEM' });
      expect(c.args[1]).toBe(2 ** 47);
    });

    it('should read EINVAL from mprotect and EAGAIN from mlock', () => {
      const log = parseLines([
        '13710 00:20:21.922401 mprotect(0x7f6b1cb9b001, 4096, PROT_READ) = -1 EINVAL (Invalid argument) <0.000004>',
        '13710 00:20:21.922501 mlock(0x7f6b1cb9b000, 4096) = -1 EAGAIN (Resource temporarily unavailable) <0.000004>',
      ]);
      expect(calls(log).map((c) => c.result)).toEqual([
        { kind: 'error', errno: 22, name: 'EINVAL' },
        { kind: 'error', errno: 11, name: 'EAGAIN' },
      ]);
    });
  });

  describe('having flags strace could not name', () => {
    it('should keep unknown bits after the known flags', () => {
      const c = onlyCall(
        parseLines(['16320 00:24:11.724921 mmap(NULL, 8192, PROT_READ|0x10, MAP_PRIVATE|MAP_ANONYMOUS|0x8000000, -1, 0) = 0x7f431158f000 <0.000030>']),
      );
      expect(c.args[2]).toBe(PROT_READ | 0x10);
      expect(c.args[3]).toBe(MAP_PRIVATE | MAP_ANONYMOUS | 0x8000000);
    });

    it('should read a value with only unknown bits and its /* MAP_??? */ comment', () => {
      const c = onlyCall(
        parseLines(['16320 00:24:11.724921 mmap(NULL, 8192, PROT_READ, 0x80000000 /* MAP_??? */, -1, 0) = -1 EINVAL (Invalid argument) <0.000030>']),
      );
      expect(c.args[3]).toBe(0x80000000);
    });

    it('should read the huge page size of MAP_HUGETLB and an unknown madvise advice', () => {
      const log = parseLines([
        '16320 00:24:11.724921 mmap(NULL, 2097152, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|21<<MAP_HUGE_SHIFT, -1, 0) = 0x7f4311400000 <0.000030>',
        '16320 00:24:11.725921 madvise(0x7f4311400000, 2097152, 0x3f /* MADV_??? */) = -1 EINVAL (Invalid argument) <0.000003>',
      ]);
      expect(log.malformed).toEqual([]);
      expect(calls(log).map((c) => c.args.at(-3))).toEqual([MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), 0x7f4311400000]);
      expect(calls(log)[1]!.args[2]).toBe(0x3f);
    });
  });

  describe('having the other mm syscalls', () => {
    it('should read mremap with and without new_address', () => {
      const log = parseLines([
        '13756 00:20:31.500000 mremap(0x7f8e7a000000, 4096, 8192, MREMAP_MAYMOVE) = 0x7f8e79000000 <0.000012>',
        '13756 00:20:31.500100 mremap(0x7f8e79000000, 8192, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x7f8e78000000) = 0x7f8e78000000 <0.000012>',
        '13756 00:20:31.500200 mremap(0x7f8e78000000, 8192, 4096, 0) = 0x7f8e78000000 <0.000012>',
      ]);
      expect(log.malformed).toEqual([]);
      expect(calls(log).map((c) => c.args)).toEqual([
        [0x7f8e7a000000, 4096, 8192, MREMAP_MAYMOVE],
        [0x7f8e79000000, 8192, 8192, MREMAP_MAYMOVE | MREMAP_FIXED, 0x7f8e78000000],
        [0x7f8e78000000, 8192, 4096, 0],
      ]);
    });

    it('should read mlock2, mlockall and munlockall', () => {
      const log = parseLines([
        '13756 00:20:31.500000 mlock2(0x7f8e7a000000, 4096, MLOCK_ONFAULT) = 0 <0.000012>',
        '13756 00:20:31.500100 mlockall(MCL_CURRENT|MCL_FUTURE) = 0 <0.000412>',
        '13756 00:20:31.500600 munlockall() = 0 <0.000020>',
        '13756 00:20:31.500700 munlock(0x7f8e7a000000, 4096) = 0 <0.000002>',
      ]);
      expect(log.malformed).toEqual([]);
      expect(calls(log).map((c) => [c.syscall, c.args])).toEqual([
        ['mlock2', [0x7f8e7a000000, 4096, MLOCK_ONFAULT]],
        ['mlockall', [MCL_CURRENT | MCL_FUTURE]],
        ['munlockall', []],
        ['munlock', [0x7f8e7a000000, 4096]],
      ]);
    });

    it('should skip other syscalls silently and count them, halves included', () => {
      const log = parseLines([
        '13756 00:20:31.500000 futex(0x7f8e7a000000, FUTEX_WAIT_PRIVATE, 0, NULL <unfinished ...>',
        '13757 00:20:31.500001 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3 <0.000012>',
        '13756 00:20:31.500100 <... futex resumed>) = 0 <0.000100>',
        '13756 00:20:31.500200 munmap(0x7f8e78000000, 8192) = 0 <0.000012>',
      ]);
      expect(log.malformed).toEqual([]);
      expect(log.skipped).toBe(2);
      expect(log.unfinished).toEqual([]);
      expect(calls(log).map((c) => c.syscall)).toEqual(['munmap']);
    });
  });

  describe('having signal lines', () => {
    it('should read a handled SIGSEGV with its code and address', () => {
      const e = onlyEvent(parseLines(['13727 00:20:22.452960 --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_ACCERR, si_addr=0x7f6b1cb9b000} ---']));
      expect(e).toEqual({
        kind: 'signal',
        tid: 13727,
        signal: 'SIGSEGV',
        code: 'SEGV_ACCERR',
        addr: 0x7f6b1cb9b000,
        line: 1,
        timeUs: (20 * 60 + 22) * 1_000_000 + 452_960,
      });
    });

    it('should read si_addr=NULL as 0', () => {
      const e = onlyEvent(parseLines(['14322 00:21:57.077791 --- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=NULL} ---']));
      expect(e).toMatchObject({ signal: 'SIGSEGV', code: 'SEGV_MAPERR', addr: 0 });
    });

    it('should read SIGCHLD with its C comments and no address', () => {
      const e = onlyEvent(
        parseLines([
          '14319 00:21:56.806700 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=14330, si_uid=0, si_status=0, si_utime=0 /* 0.00 s */, si_stime=1 /* 0.01 s */} ---',
        ]),
      );
      expect(e).toMatchObject({ signal: 'SIGCHLD', code: 'CLD_EXITED', addr: null });
    });
  });

  describe('having exit lines', () => {
    it('should read exited, killed and core dumped', () => {
      const log = parseLines([
        '16321 00:24:12.588521 +++ exited with 0 +++',
        '14322 00:21:57.078065 +++ killed by SIGSEGV +++',
        '14319 00:21:57.079815 +++ killed by SIGABRT (core dumped) +++',
      ]);
      expect(log.malformed).toEqual([]);
      expect(log.events.map((e) => (e.kind === 'exit' ? [e.how, e.status, e.signal, e.coreDumped] : null))).toEqual([
        ['exited', 0, null, false],
        ['killed', null, 'SIGSEGV', false],
        ['killed', null, 'SIGABRT', true],
      ]);
    });

    it('should move a call in flight at the exit to unfinished', () => {
      const log = parseLines(['14322 00:21:57.077000 munmap(0x7f8e78000000, 8192 <unfinished ...>', '14322 00:21:57.078065 +++ killed by SIGKILL +++']);
      expect(log.malformed).toEqual([]);
      expect(log.unfinished).toEqual([{ tid: 14322, line: 1, syscall: 'munmap' }]);
    });
  });

  describe('having a thread killed in a call or strace detached', () => {
    it('should read = ? as an unknown result ending at the resumed line', () => {
      const log = parseLines([
        '14322 00:21:57.077000 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>',
        '14322 00:21:57.078000 <... mmap resumed>) = ?',
        '14322 00:21:57.078065 +++ killed by SIGKILL +++',
      ]);
      const c = onlyCall({ ...log, events: log.events.filter((e) => e.kind === 'call') });
      expect(c.result).toEqual({ kind: 'unknown' });
      expect(c.endUs - c.startUs).toBe(1000);
      expect(log.unfinished).toEqual([]);
    });

    it('should list a call cut by <detached ...> as unfinished', () => {
      const log = parseLines(['14322 00:21:57.077000 madvise(0x7f8e78000000, 8192, MADV_DONTNEED <detached ...>']);
      expect(log.malformed).toEqual([]);
      expect(log.events).toEqual([]);
      expect(log.unfinished).toEqual([{ tid: 14322, line: 1, syscall: 'madvise' }]);
    });
  });

  describe('having no tid column', () => {
    it('should use the tid option, else 0', () => {
      const line = '00:24:11.724511 brk(NULL) = 0x55fc61416000 <0.000014>';
      expect(onlyCall(parseLines([line])).tid).toBe(0);
      expect(onlyCall(parseLines([line], { tid: 16320 })).tid).toBe(16320);
    });

    it("should read strace's [pid N] prefix of stderr output", () => {
      expect(onlyCall(parseLines(['[pid 16321] 00:24:11.724511 brk(NULL) = 0x55fc61416000 <0.000014>'])).tid).toBe(16321);
    });
  });

  describe('having a log that crosses midnight', () => {
    it('should keep the clock counting into the next day', () => {
      const log = parseLines(['1 23:59:59.999990 brk(NULL) = 0x1000 <0.000020>', '1 00:00:00.000030 brk(NULL) = 0x1000 <0.000001>']);
      expect(calls(log).map((c) => c.startUs)).toEqual([86_399_999_990, 86_400_000_030]);
    });
  });

  describe('having malformed lines', () => {
    const good = '16320 00:24:11.725943 munmap(0x7f4311586000, 34547) = 0 <0.000018>';

    it('should name a truncated last line', () => {
      const log = parseStrace(`${good}\n16320 00:24:11.727647 mmap(NULL, 81`, { file: 'cut.log' });
      expect(log.malformed).toEqual([
        {
          line: 2,
          text: '16320 00:24:11.727647 mmap(NULL, 81',
          reason: "mmap: no ' = ' result and no <unfinished ...> (last line, no newline: truncated log)",
        },
      ]);
      expect(() => parseStrace(`${good}\n16320 00:24:11.727647 mmap(NULL, 81`, { file: 'cut.log', strict: true })).toThrow(
        "cut.log:2: mmap: no ' = ' result and no <unfinished ...> (last line, no newline: truncated log)",
      );
    });

    it('should name a result cut before its duration', () => {
      expect(malformedReason([good, '16320 00:24:11.725943 munmap(0x7f4311586000, 34547) = 0'])).toBe(
        '2: munmap: no <duration> after the result (the log needs strace -T)',
      );
    });

    it('should name garbage', () => {
      expect(malformedReason(['@@@ garbage', good])).toBe("1: '@@@' is neither a tid nor a HH:MM:SS.micro time");
      expect(malformedReason([good, '16320 00:24:11.725943 ??? what'])).toBe("2: unrecognized event '??? what'");
      expect(malformedReason([good, '16320 0:24:11 munmap(0x1000, 4096) = 0 <0.000018>'])).toBe("2: time '0:24:11' is not HH:MM:SS.micro");
    });

    it('should name the argument that is not a number', () => {
      expect(malformedReason(['16320 00:24:11.724921 mmap(NULL, 12x, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f431158f000 <0.000030>'])).toBe(
        "1: mmap: argument 2 (length) '12x' is not a number",
      );
      expect(malformedReason(['16320 00:24:11.724921 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_BOGUS, -1, 0) = 0x7f431158f000 <0.000030>'])).toBe(
        "1: mmap: argument 4 (flags) has an unknown flag 'MAP_BOGUS'",
      );
      expect(malformedReason(['16320 00:24:11.724921 munmap(0x7f4311586000) = 0 <0.000018>'])).toBe("1: munmap: 1 arguments '0x7f4311586000', expected 2");
    });

    it('should refuse a number it cannot hold exactly', () => {
      expect(malformedReason(['16320 00:24:11.725943 munmap(0x20000000000001, 4096) = 0 <0.000018>'])).toBe(
        "1: munmap: argument 1 (addr) '0x20000000000001' is not exact in a double (|n| >= 2^53)",
      );
    });

    it('should name a resumed half without its unfinished half', () => {
      expect(malformedReason([good, '13661 00:20:16.390153 <... mprotect resumed>) = 0 <0.000030>'])).toBe(
        '2: <... mprotect resumed> without an unfinished mprotect call on tid 13661',
      );
      expect(
        malformedReason([
          '13661 00:20:16.390118 munmap(0x7f69b4029000, 61440 <unfinished ...>',
          '13661 00:20:16.390153 <... mprotect resumed>) = 0 <0.000030>',
        ]),
      ).toBe("2: <... mprotect resumed> but tid 13661's unfinished call is munmap (line 1)");
    });

    it('should name results that cannot be', () => {
      expect(malformedReason(['16320 00:24:11.727695 brk(0x55fc61437000) = -1 ENOMEM (Cannot allocate memory) <0.000017>'])).toBe(
        "1: brk: result '-1 ENOMEM' is impossible: a failed brk returns the old break, never -1",
      );
      expect(malformedReason(['16320 00:24:11.725943 munmap(0x7f4311586000, 34547) = -1 EWHAT (Who knows) <0.000018>'])).toBe(
        "1: munmap: unknown errno 'EWHAT'",
      );
    });

    it('should record and go on without strict', () => {
      const log = parseLines(['garbage', good, '16320 00:24:11.725943 munmap(0x7f4311586000, 12x) = 0 <0.000018>', good]);
      expect(log.malformed.map((m) => m.line)).toEqual([1, 3]);
      expect(calls(log).map((c) => c.line)).toEqual([2, 4]);
    });
  });
});
