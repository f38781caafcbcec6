// Proves `vmalock trace import`: real logs (shared/traces) import to a JSON file that reads back
// as exactly the log `parseStrace` gives, with the task tree's grouping; `trace replay` of the
// import gives the same report as of the log; the same log gives the same bytes; the summary's
// figures are the parser's. A log cut in the middle of a line, cut between the halves of a call,
// garbled, empty, missing or with a bad task tree gets one line `file:line: ...`, exit 2, and
// nothing written — unless --skip-malformed, which records the bad lines in the file. In process.
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sharedTrace } from '../../../../test-support/sharedTraces.js';
import { runCli } from '../cliApp.js';
import { ExitCode } from '../cliSupport.js';
import { parseStrace } from '../strace/parseStrace.js';
import { parseTasks } from '../strace/parseTasks.js';
import { type TraceImport, defaultImportOut, readTraceImport } from './traceImport.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

const log = (name: string) => sharedTrace('strace', `${name}.strace.log`);
const tasks = (name: string) => sharedTrace('tasks', `${name}.tasks.tsv`);
const tmp = () => mkdtempSync(join(tmpdir(), 'vmalock-import-'));

describe('vmalock trace import', () => {
  describe.each([
    ['sort_parallel', 45, 4],
    ['java_allocstress', 1023, 40],
    ['python_threads', 846, 6],
  ] as const)('having the real log %s and its task tree', (name, calls, tids) => {
    it('should write a file that reads back as the parsed log and the task records, and print the parser’s figures', async () => {
      const out = join(tmp(), 'import.json');
      const r = await cli('trace', 'import', log(name), '--tasks', tasks(name), '--out', out, '--json');
      expect(r.code, r.err).toBe(ExitCode.ok);
      const summary = JSON.parse(r.out) as {
        calls: number;
        tids: number;
        processes: number;
        bySyscall: Record<string, number>;
        malformed: number;
        grouping: string;
      };
      expect(summary).toMatchObject({ calls, tids, processes: 1, malformed: 0, grouping: 'tasks' });
      expect(Object.values(summary.bySyscall).reduce((a, b) => a + b, 0)).toBe(calls);

      const text = readFileSync(log(name), 'utf8');
      const back = readTraceImport(readFileSync(out, 'utf8'), out);
      expect(back.log).toEqual(parseStrace(text, { file: log(name) }));
      expect(back.tasks).toEqual(parseTasks(readFileSync(tasks(name), 'utf8'), tasks(name)));
      const json = JSON.parse(readFileSync(out, 'utf8')) as TraceImport;
      expect(json.threads.map((t) => t.tid)).toEqual(back.log.tids);
      expect(json.processes).toEqual([{ tgid: json.threads[0]!.tid, tids: back.log.tids }]);
    });
  });

  it('should give the same replay from the import as from the log (java_allocstress)', async () => {
    const out = join(tmp(), 'java.json');
    expect((await cli('trace', 'import', log('java_allocstress'), '--tasks', tasks('java_allocstress'), '--out', out)).code).toBe(ExitCode.ok);
    const fromLog = await cli('trace', 'replay', log('java_allocstress'), '--tasks', tasks('java_allocstress'), '--json');
    const fromImport = await cli('trace', 'replay', out, '--json');
    expect(fromImport.code, fromImport.err).toBe(ExitCode.ok);
    expect(fromImport.out).toBe(fromLog.out);
    expect(JSON.parse(fromImport.out)).toMatchObject({ calls: 1023, matched: 1023, grouping: 'tasks' });
  });

  it('should write the same bytes for the same log, and print them with --out -', async () => {
    const dir = tmp();
    await cli('trace', 'import', log('sort_parallel'), '--out', join(dir, 'a.json'));
    await cli('trace', 'import', log('sort_parallel'), '--out', join(dir, 'b.json'));
    const a = readFileSync(join(dir, 'a.json'), 'utf8');
    expect(readFileSync(join(dir, 'b.json'), 'utf8')).toBe(a);
    const r = await cli('trace', 'import', log('sort_parallel'), '--out', '-');
    expect(r.out).toBe(a);
    expect(r.err).toMatch(/^.*sort_parallel\.strace\.log: 45 calls from 4 tids in 1 process \(grouped by the brk\(NULL\) heuristic\)\n/);
    expect(readdirSync(dir).sort()).toEqual(['a.json', 'b.json']);
  });

  it('should print a summary: calls, tids, calls by syscall, malformed lines, and where it wrote', async () => {
    const out = join(tmp(), 'sort.json');
    const r = await cli('trace', 'import', log('sort_parallel'), '--out', out);
    expect(r.code).toBe(ExitCode.ok);
    expect(r.out).toMatch(/^syscall\s+calls$/m);
    expect(r.out).toMatch(/^mmap\s+27$/m);
    expect(r.out).toContain('signals 0, exits 4, unfinished 0, malformed lines 0, other syscalls 0\n');
    expect(r.out.trimEnd().split('\n').at(-1)).toBe(`wrote ${out}`);
  });

  it('should name the default output after the log', () => {
    expect(defaultImportOut('/x/node_workers.strace.log')).toBe('node_workers.json');
    expect(defaultImportOut('a.log')).toBe('a.json');
  });

  describe('having a damaged log', () => {
    const text = readFileSync(log('python_threads'), 'utf8');
    const lines = text.split('\n');
    const damaged: [string, string, RegExp][] = [
      ['cut mid-line', text.slice(0, 3000), /^vmalock: .*cut mid-line\.log:27: mmap: no ' = ' result .*\(last line, no newline: truncated log\)/],
      // Line 441 is the first half of tid 13759's mmap; nothing of 13759 follows.
      [
        'cut between halves',
        `${lines.slice(0, 441).join('\n')}\n`,
        /cut between halves\.log:441: mmap on tid 13759 begins here and the log ends before it completes/,
      ],
      [
        'garbled',
        [...lines.slice(0, 20), '13756 00:20:31.7 mmap(NULL, 4096', ...lines.slice(21)].join('\n'),
        /garbled\.log:21: time '00:20:31\.7' is not HH:MM:SS\.micro/,
      ],
      ['binary', '\u0000\u0001\u0002 garbage\n', /binary\.log:1: '.*' is neither a tid nor a HH:MM:SS\.micro time/],
      ['empty', '', /empty\.log: no strace line in it \(an empty log\)/],
    ];
    it.each(damaged)('should refuse a log %s: one line file:line, exit 2, nothing written', async (what, content, message) => {
      const dir = tmp();
      const file = join(dir, `${what}.log`);
      writeFileSync(file, content);
      const r = await cli('trace', 'import', file, '--out', join(dir, 'out.json'));
      expect(r.code).toBe(ExitCode.badInput);
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.out).toBe('');
      expect(readdirSync(dir)).toEqual([`${what}.log`]);
    });

    it('should import the rest with --skip-malformed, the bad line recorded', async () => {
      const dir = tmp();
      const file = join(dir, 'garbled.log');
      writeFileSync(file, damaged[2]![1]);
      const r = await cli('trace', 'import', file, '--out', join(dir, 'out.json'), '--skip-malformed', '--json');
      expect(r.code, r.err).toBe(ExitCode.ok);
      expect(JSON.parse(r.out)).toMatchObject({ malformed: 1 });
      const json = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as TraceImport;
      expect(json.malformed).toEqual([{ line: 21, text: '13756 00:20:31.7 mmap(NULL, 4096', reason: "time '00:20:31.7' is not HH:MM:SS.micro" }]);
    });
  });

  describe('having bad arguments', () => {
    it.each([
      [['<dir>/missing.log'], /cannot read strace log '.*missing\.log': ENOENT/],
      [['<log>', '--tasks', '<log>'], /sort_parallel\.strace\.log:1: header '16320 .*' is not 'tid\\ttgid/],
      [['<log>', '--out', '<dir>/no/such/dir/x.json'], /--out: the directory of '.*x\.json' does not exist/],
      [['<log>', '--out', '<dir>'], /--out '.*' is a directory/],
      [['<log>', '--out', '-', '--json'], /--out - prints the import on stdout: --json \(the summary\) cannot go there too/],
    ])('should exit 2 with one clear line for %j, writing nothing', async (argv, message) => {
      const dir = tmp();
      const r = await cli('trace', 'import', ...argv.map((a) => a.replace('<dir>', dir).replace('<log>', log('sort_parallel'))));
      expect(r.code).toBe(ExitCode.badInput);
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.out).toBe('');
      expect(readdirSync(dir)).toEqual([]);
    });

    it('should refuse a JSON file that is not an import, in trace replay: one line, exit 2', async () => {
      const file = join(tmp(), 'other.json');
      writeFileSync(file, '{"format": "something-else"}');
      const r = await cli('trace', 'replay', file);
      expect(r.code).toBe(ExitCode.badInput);
      expect(r.err).toMatch(/other\.json: not a 'vmalock trace import' file: format: /);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(existsSync(file)).toBe(true);
    });
  });
});
