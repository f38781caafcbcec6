// Proves the vmalock command line: `demo` runs the engine and reports figures that come out of
// the simulation (the scaling table flattens on one mmap_sem), `--json` prints one parseable
// object, a run replays from the schedule it printed, `--trace-out` writes a whole Perfetto file,
// and bad arguments get one clear line and exit 2 without writing anything. Runs in process.
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode, runCli } from './cliApp.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

interface DemoJson {
  seed: number;
  strategy: string;
  runs: { faulters: number; status: string; steps: number; faultsPerSimSec: number | null; speedup: number | null }[];
}

describe('runCli', () => {
  describe('demo', () => {
    it('should print a scaling table whose speed-up flattens well below the thread count', async () => {
      const r = await cli('demo', '--json');
      expect(r.code).toBe(ExitCode.ok);
      const json = JSON.parse(r.out) as DemoJson;
      expect(json.runs.map((x) => x.faulters)).toEqual([1, 2, 4, 8, 16, 32, 64]);
      for (const run of json.runs) expect(run.status).toBe('ok');
      const at64 = json.runs.at(-1)!;
      expect(at64.speedup).toBeGreaterThan(1);
      expect(at64.speedup).toBeLessThan(16);
    });

    it('should replay a pct run exactly from its schedule', async () => {
      const first = JSON.parse((await cli('demo', '--threads', '3', '--strategy', 'pct', '--seed', '11', '--json')).out) as DemoJson;
      const { runProgram } = await import('@vmalock/core');
      const { demoProgram, defaultDemoParams } = await import('./demo.js');
      const original = runProgram(demoProgram({ ...defaultDemoParams, faulters: 3 }), { seed: 11, strategy: 'pct', cpus: 4, pctSteps: 3 * 500 * 4 + 200 });
      expect(original.steps).toBe(first.runs[0]!.steps);
      const again = JSON.parse(
        (await cli('demo', '--threads', '3', '--cpus', '4', '--seed', '11', '--strategy', 'replay', '--schedule', original.schedule, '--json')).out,
      ) as DemoJson;
      expect(again.runs[0]).toMatchObject({ status: 'ok', steps: original.steps });
    });

    it('should write a Perfetto trace with --trace-out', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'vmalock-cli-'));
      const file = join(dir, 'demo.json');
      const r = await cli('demo', '--threads', '2', '--trace-out', file);
      expect(r.code, r.err).toBe(ExitCode.ok);
      const trace = JSON.parse(readFileSync(file, 'utf8')) as { traceEvents: { ph: string; name: string }[] };
      expect(trace.traceEvents.some((e) => e.ph === 'X' && e.name.includes('mmap_sem'))).toBe(true);
      expect(readdirSync(dir)).toEqual(['demo.json']);
    });
  });

  describe('having bad arguments', () => {
    it.each([
      [['demo', '--threads', '0'], /--threads must be an integer in 1\.\.1023, got '0'/],
      [['demo', '--strategy', 'fifo'], /unknown strategy 'fifo'/],
      [['demo', '--strategy', 'replay'], /--strategy replay needs --schedule/],
      [['demo', '--strategy', 'replay', '--schedule', '1*x'], /schedule: part 1 '1\*x'/],
      [['demo', '--seed', '-3'], /--seed must be a non-negative integer/],
      [['frobnicate'], /Unknown argument: frobnicate/],
      [[], /Name a command/],
    ])('should exit 2 with one clear line for %j', async (argv, message) => {
      const dir = mkdtempSync(join(tmpdir(), 'vmalock-cli-'));
      const r = await cli(...argv, ...(argv.length > 0 && argv[0] === 'demo' ? ['--trace-out', join(dir, 't.json')] : []));
      expect(r.code).toBe(ExitCode.badInput);
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.out).toBe('');
      expect(existsSync(join(dir, 't.json'))).toBe(false);
    });
  });
});

// `vmalock diff`: prints seed= first, the two runs and the first divergence (exit 0 even when
// there is one), the replay command reproduces the output byte for byte, --json is one
// parseable object, and bad arguments exit 2 with one line.
describe('runCli diff', () => {
  it('should report a user-visible divergence with its expectation and a replay command that reproduces it', async () => {
    const r = await cli('diff', '--policies', 'global-rwsem,per-vma', '--workload', 'maps-vs-mremap', '--seed', '0');
    expect(r.code, r.err).toBe(ExitCode.ok);
    expect(r.out.split('\n')[0]).toBe('seed=0 strategy=random workload=maps-vs-mremap threads=2 calls=4');
    expect(r.out).toMatch(
      /\nfirst divergence: user-visible \(a change user space sees, not a kernel bug\): profiler's expectation 'arena-listed-once' holds under global-rwsem, fails under per-vma: /,
    );
    const replay = /\nreplay: vmalock (.*)\n$/.exec(r.out)?.[1];
    expect(replay).toBe('diff --policies global-rwsem,per-vma --workload maps-vs-mremap --seed 0 --strategy random --calls 4');
    expect((await cli(...replay!.split(' '))).out).toBe(r.out);
  });

  it('should search seeds and print one JSON object with --json', async () => {
    const r = await cli('diff', '--policies', 'global-rwsem,vma-range', '--workload', 'remap-vs-madvise', '--seed', '0', '--seeds', '5', '--json');
    expect(r.code, r.err).toBe(ExitCode.ok);
    const json = JSON.parse(r.out) as { seed: number; seedsRun: number; divergence: { kind: string; expectation: string }; replay: string };
    expect(json).toMatchObject({ seed: 1, seedsRun: 2, divergence: { kind: 'user-visible', expectation: 'same-address-back' } });
    expect(json.replay).toBe('vmalock diff --policies global-rwsem,vma-range --workload remap-vs-madvise --seed 1 --strategy random --calls 4');
  });

  it('should say so when no seed diverges', async () => {
    const r = await cli('diff', '--policies', 'global-rwsem,hybrid', '--workload', 'maps-vs-mprotect', '--seeds', '3');
    expect(r.code, r.err).toBe(ExitCode.ok);
    expect(r.out).toContain('\nno divergence in 3 seeds (1..3)\n');
  });

  it.each([
    [['--policies', 'global-rwsem,nope'], /--policies: unknown policy 'nope' \(known: global-rwsem, /],
    [['--policies', 'global-rwsem'], /--policies: expected two policies separated by a comma/],
    [['--policies', 'global-rwsem,per-vma', '--workload', 'nope'], /--workload: unknown workload 'nope' \(known: random, maps-vs-mremap/],
    [['--policies', 'global-rwsem,per-vma', '--workload', 'maps-vs-mremap', '--threads', '3'], /workload 'maps-vs-mremap' runs 2 threads of its own/],
    [['--policies', 'global-rwsem,per-vma', '--strategy', 'timed'], /--strategy: expected pct or random, got 'timed'/],
    [['--policies', 'global-rwsem,per-vma', '--calls', '0'], /--calls must be an integer in 1\.\.10000, got '0'/],
    [[], /Missing required argument: policies/],
  ])('should exit 2 with one clear line for %j', async (args, message) => {
    const r = await cli('diff', ...args);
    expect(r.code).toBe(ExitCode.badInput);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.out).toBe('');
  });
});
