// Proves `vmalock trace replay LOG --policy P`: the traced process replays concurrently, one
// simulated thread per traced tid (the strace-replay workload, timed, seed 1), under every policy:
// paced, sort_parallel's 45 calls all get their recorded results and the mm's invariants hold;
// the same seed prints the same bytes; --maps-out writes the process's final maps; the options
// of the concurrent replay without --policy, an unknown policy, an import file and bad numbers
// get one line and exit 2, writing nothing. In process.
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { policyNames } from '@vmalock/policies';
import { describe, expect, it } from 'vitest';
import { sharedTrace } from '../../../../test-support/sharedTraces.js';
import { runCli } from '../cliApp.js';
import { ExitCode } from '../cliSupport.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

const LOG = sharedTrace('strace', 'sort_parallel.strace.log');
const TASKS = sharedTrace('tasks', 'sort_parallel.tasks.tsv');

interface ConcurrentJson {
  policy: string;
  threads: number;
  calls: number;
  matched: number;
  mismatched: number;
  status: string;
  invariants: string;
  throughput: number;
}

describe('vmalock trace replay --policy', () => {
  it.each(policyNames())('should replay sort_parallel concurrently under %s, paced: every call its recorded result', async (policy) => {
    const r = await cli('trace', 'replay', LOG, '--tasks', TASKS, '--policy', policy, '--pace', '--json');
    expect(r.code, r.err).toBe(ExitCode.ok);
    const json = JSON.parse(r.out) as ConcurrentJson;
    expect(json).toMatchObject({ policy, threads: 4, calls: 45, matched: 45, mismatched: 0, status: 'ok', invariants: 'ok' });
    expect(json.throughput).toBeGreaterThan(0);
  });

  it('should run the threads back to back without --pace and print the same bytes for the same seed (java_allocstress, 40 threads)', async () => {
    const args = ['trace', 'replay', sharedTrace('strace', 'java_allocstress.strace.log'), '--tasks', sharedTrace('tasks', 'java_allocstress.tasks.tsv')];
    const first = await cli(...args, '--policy', 'vma-range', '--seed', '2');
    expect(first.code, first.err).toBe(ExitCode.ok);
    expect(first.out).toMatch(/^concurrent replay of process 13710 of .* under vma-range: 40 threads \(one per traced tid\), seed 2, strategy timed\n/);
    expect(first.out).toMatch(/^1023\s+\d+\s+\d+\s+0\s+/m);
    expect(first.out).toContain('mm invariants: ok');
    expect((await cli(...args, '--policy', 'vma-range', '--seed', '2')).out).toBe(first.out);
  });

  it("should write the process's final address space with --maps-out", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'vmalock-replay-')), 'maps');
    const r = await cli('trace', 'replay', LOG, '--tasks', TASKS, '--policy', 'per-vma', '--pace', '--maps-out', dir);
    expect(r.code, r.err).toBe(ExitCode.ok);
    expect(readdirSync(dir)).toEqual(['16320.maps']);
    const maps = readFileSync(join(dir, '16320.maps'), 'utf8').trimEnd().split('\n');
    expect(maps.length).toBeGreaterThan(10);
    for (const line of maps) expect(line).toMatch(/^[0-9a-f]+-[0-9a-f]+ [r-][w-][x-][ps] /);
  });

  it('should replay only the first calls with --calls-max', async () => {
    const json = JSON.parse((await cli('trace', 'replay', LOG, '--policy', 'hybrid', '--calls-max', '10', '--json')).out) as ConcurrentJson & {
      skipped: number;
    };
    expect(json.calls).toBe(10);
    expect(json.skipped).toBe(35);
  });

  describe('having bad input', () => {
    it.each([
      [['<log>', '--policy', 'nope'], /--policy: unknown policy 'nope' \(known: global-rwsem, /],
      [['<log>', '--seed', '3'], /--seed is for the concurrent replay: give --policy too/],
      [['<log>', '--pace'], /--pace is for the concurrent replay: give --policy too/],
      [['<log>', '--policy', 'hybrid', '--calls-max', '0'], /--calls-max must be an integer in 1\.\.10000000, got '0'/],
      [['<log>', '--policy', 'hybrid', '--tgid', '5'], /'.*sort_parallel\.strace\.log' has no process 5 \(processes: 16320\)/],
      [
        ['<dir>/cut.log', '--policy', 'hybrid', '--strict'],
        /cut\.log:2: mmap: no ' = ' result and no <unfinished \.\.\.> \(last line, no newline: truncated log\)/,
      ],
      [['<dir>/import.json', '--policy', 'hybrid'], /--policy replays the strace log itself: '.*import\.json' is a 'vmalock trace import' file/],
    ])('should exit 2 with one clear line for %j, writing nothing', async (argv, message) => {
      const dir = mkdtempSync(join(tmpdir(), 'vmalock-replay-'));
      writeFileSync(join(dir, 'cut.log'), readFileSync(LOG, 'utf8').slice(0, 160));
      writeFileSync(join(dir, 'import.json'), '{"format": "vmalock-strace"}');
      const r = await cli('trace', 'replay', ...argv.map((a) => a.replace('<log>', LOG).replace('<dir>', dir)), '--maps-out', join(dir, 'maps'));
      expect(r.code).toBe(ExitCode.badInput);
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.out).toBe('');
      expect(readdirSync(dir).sort()).toEqual(['cut.log', 'import.json']);
    });
  });
});
