// Proves `vmalock bench` and `benchScaling`: each point is the workload's own measure
// (`runWorkload`'s ops per simulated second under `timed`, seed 1), the speed-up is over the
// policy's own figure at the smallest thread count, the same seed gives the same rows byte for
// byte, `--json` has the layout and the table has a row per thread count and a column
// per policy; bad numbers, unknown names and bad params get one line and exit 2. Runs in process,
// with pft at 16 pages a thread so each point takes milliseconds.
import { describe, expect, it } from 'vitest';
import { runCli } from '../cliApp.js';
import { ExitCode } from '../cliSupport.js';
import { benchScaling } from '../bench/benchScaling.js';
import { runWorkload } from '../workloads/run.js';
import { WorkloadParamsError } from '../workloads/workload.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

const SMALL_PFT = { pagesPerThread: 16 };

describe('benchScaling', () => {
  describe('having pft under global-rwsem and per-vma at 1, 2 and 4 threads (timed, seed 1)', () => {
    const rows = benchScaling({ policies: ['global-rwsem', 'per-vma'], workload: 'pft', params: SMALL_PFT, threads: [1, 2, 4], seed: 1 });

    it('should give a row per policy and thread count, policy by policy', () => {
      expect(rows.map((r) => `${r.policy}@${r.threads}`)).toEqual([
        'global-rwsem@1',
        'global-rwsem@2',
        'global-rwsem@4',
        'per-vma@1',
        'per-vma@2',
        'per-vma@4',
      ]);
      for (const r of rows) expect(r.status).toBe('ok');
    });

    it("should measure each point as runWorkload does, and the speed-up over the policy's own 1-thread figure", () => {
      for (const r of rows) {
        const alone = runWorkload({ workload: 'pft', params: SMALL_PFT, policy: r.policy, threads: r.threads, seed: 1 });
        expect(r.throughput).toBe(alone.opsPerSimSec);
        const single = rows.find((x) => x.policy === r.policy && x.threads === 1)!.throughput!;
        expect(r.speedup).toBe(r.throughput! / single);
      }
      expect(rows.filter((r) => r.threads === 1).map((r) => r.speedup)).toEqual([1, 1]);
    });

    it('should give the same rows for the same seed', () => {
      const again = benchScaling({ policies: ['global-rwsem', 'per-vma'], workload: 'pft', params: SMALL_PFT, threads: [1, 2, 4], seed: 1 });
      expect(JSON.stringify(again)).toBe(JSON.stringify(rows));
    });
  });

  it('should take the speed-up over the smallest thread count when 1 is not measured', () => {
    const rows = benchScaling({ policies: ['hybrid'], workload: 'pft', params: SMALL_PFT, threads: [4, 2], seed: 1 });
    expect(rows.map((r) => r.threads)).toEqual([4, 2]);
    expect(rows[1]!.speedup).toBe(1);
    expect(rows[0]!.speedup).toBe(rows[0]!.throughput! / rows[1]!.throughput!);
  });

  it('should drive the converted subsystems subsystem-driver names, under a policy without mmap_sem', () => {
    const rows = benchScaling({ policies: ['vma-range'], workload: 'subsystem-driver', params: { subsystems: ['pkeys', 'gem'] }, threads: [1, 2], seed: 1 });
    expect(rows.map((r) => r.status)).toEqual(['ok', 'ok']);
    for (const r of rows) expect(r.throughput).toBeGreaterThan(0);
  });

  it('should refuse an unknown policy before any run', () => {
    expect(() => benchScaling({ policies: ['per-vma', 'nope'], workload: 'pft', threads: [1], seed: 1 })).toThrow(WorkloadParamsError);
  });
});

interface BenchJson {
  workload: string;
  params: Record<string, unknown>;
  seed: number;
  rows: { policy: string; threads: number; throughput: number | null; speedup: number | null }[];
}

describe('vmalock bench', () => {
  it("should print one JSON object with the workload, its resolved params, the seed and the rows (the issue's layout)", async () => {
    const r = await cli(
      'bench',
      '--policies',
      'global-rwsem,vma-range',
      '--workload',
      'pft',
      '--params',
      '{"pagesPerThread": 16}',
      '--threads',
      '1,2',
      '--json',
    );
    expect(r.code, r.err).toBe(ExitCode.ok);
    const json = JSON.parse(r.out) as BenchJson;
    expect(Object.keys(json)).toEqual(['workload', 'params', 'seed', 'profile', 'rows']);
    expect(json.workload).toBe('pft');
    expect(json.params).toMatchObject({ pagesPerThread: 16, mapper: true });
    expect(json.seed).toBe(1);
    const expected = benchScaling({ policies: ['global-rwsem', 'vma-range'], workload: 'pft', params: SMALL_PFT, threads: [1, 2], seed: 1 });
    expect(json.rows).toEqual(expected.map((x) => ({ policy: x.policy, threads: x.threads, throughput: x.throughput, speedup: x.speedup, status: x.status })));
  });

  it('should print the scaling table: a row per thread count, a column per policy, throughput and speed-up', async () => {
    const r = await cli('bench', '--policies', 'global-rwsem,per-vma', '--params', '{"pagesPerThread": 16}', '--threads', '1,2,4', '--seed', '5');
    expect(r.code, r.err).toBe(ExitCode.ok);
    const lines = r.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^bench pft \{"pagesPerThread":16,.*\}, seed 5, strategy timed, machine profile default$/);
    expect(lines[3]).toMatch(/^threads\s+global-rwsem\s+per-vma$/);
    expect(lines.slice(5).map((l) => l.split(/\s+/)[0])).toEqual(['1', '2', '4']);
    expect(lines[5]).toMatch(/^1\s+\S+ \(1\.00x\)\s+\S+ \(1\.00x\)$/);
  });

  it('should take a workload that brings its own threads at one thread count only', async () => {
    const r = await cli('bench', '--workload', 'strace-replay', '--params', '{"path": "x.log"}', '--threads', '1,2');
    expect(r.code).toBe(ExitCode.badInput);
    expect(r.err).toMatch(/brings its own threads \(one per traced tid\)/);
  });

  describe('having bad input', () => {
    it.each([
      [['--threads', '0'], /--threads: '0' is not a thread count \(expected integers 1\.\.4096 separated by commas, got '0'\)/],
      [['--threads', '1,x'], /--threads: 'x' is not a thread count .*got '1,x'/],
      [['--threads', '1,,2'], /--threads: an empty item in '1,,2'/],
      [['--threads', '2,2'], /--threads: '2' is given twice/],
      [['--threads', '5000'], /--threads: '5000' is not a thread count/],
      [['--policies', 'per-vma,nope'], /--policies: unknown policy 'nope' \(known: global-rwsem, /],
      [['--workload', 'nope'], /--workload: unknown workload 'nope' \(known: pft, /],
      [['--params', '{pagesPerThread: 1}'], /--params: not JSON \(/],
      [['--params', '[1]'], /--params: expected a JSON object/],
      [['--params', '{"pagesPerThread": 0}'], /--params: workload 'pft': bad params: pagesPerThread: /],
      [['--params', '{"pages": 4}'], /--params: workload 'pft': bad params: .*pages/],
      [['--seed', '-1'], /--seed must be a non-negative integer/],
    ])('should exit 2 with one clear line for %j', async (argv, message) => {
      const r = await cli('bench', ...argv);
      expect(r.code).toBe(ExitCode.badInput);
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.out).toBe('');
    });
  });
});
