// Proves strace-replay replays real logs concurrently: one simulated thread per traced tid; with
// `pace` (timed strategy, seed 1) every call of sort_parallel, java_allocstress (40 tids) and
// python_threads gets its recorded result under global-rwsem and vma-range; back to back the
// threads race and every call is still run and counted (matched or mismatched); calls before an
// execve and past callsMax are skipped; pre-tracing ranges are mapped first; and a missing file,
// a garbled line under `strict`, or an unknown process each get one clear error.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkMmInvariants } from '@vmalock/core';
import { afterAll, describe, expect, it } from 'vitest';
import { sharedTrace } from '../../../../test-support/sharedTraces.js';
import { parseWorkloadParams } from './registry.js';
import { runWorkload } from './run.js';
import { replayScript } from './straceReplay.js';

function traceParams(name: string, extra: Record<string, unknown> = {}) {
  return { path: sharedTrace('strace', `${name}.strace.log`), tasks: sharedTrace('tasks', `${name}.tasks.tsv`), ...extra };
}

describe('strace-replay', () => {
  describe.each([
    ['sort_parallel', 4, 45],
    ['java_allocstress', 40, 1023],
    ['python_threads', 6, 846],
  ] as const)('having the real log %s, paced', (name, tids, calls) => {
    it.each(['global-rwsem', 'vma-range'])('should give every call its recorded result under %s (timed, seed 1)', (policy) => {
      const r = runWorkload({ workload: 'strace-replay', params: traceParams(name, { pace: true }), policy, threads: 1, seed: 1 });
      expect(r.result.status, r.result.summary).toBe('ok');
      expect(r.result.threads).toHaveLength(tids);
      expect(r.ops).toBe(calls);
      expect(r.extras.matched).toBe(calls);
      expect(r.extras.mismatched).toBeUndefined();
      expect(r.extras.implied).toBeGreaterThan(0);
      checkMmInvariants(r.mm);
    });
  });

  describe('having calls back to back', () => {
    it('should run and count every call, matched or not (java_allocstress, timed, seed 1)', () => {
      const r = runWorkload({ workload: 'strace-replay', params: traceParams('java_allocstress'), policy: 'per-vma', threads: 1, seed: 1 });
      expect(r.result.status).toBe('ok');
      expect(r.ops).toBe(1023);
      expect((r.extras.matched ?? 0) + (r.extras.mismatched ?? 0)).toBe(1023);
      checkMmInvariants(r.mm);
    });
  });

  describe('having an execve in the log (edge_python_segv)', () => {
    it('should skip the calls of the address space the exec threw away', () => {
      const script = replayScript(parseWorkloadParams('strace-replay', traceParams('edge_python_segv')));
      expect(script.skipped).toBeGreaterThan(0);
      const r = runWorkload({
        workload: 'strace-replay',
        params: traceParams('edge_python_segv', { pace: true }),
        policy: 'global-rwsem',
        threads: 1,
        seed: 1,
      });
      expect(r.extras.skipped).toBe(script.skipped);
      expect(r.ops).toBe(script.calls);
      expect(r.extras.matched).toBe(script.calls);
    });
  });

  describe('having callsMax', () => {
    it('should replay only the first calls of the process', () => {
      const r = runWorkload({
        workload: 'strace-replay',
        params: traceParams('python_threads', { callsMax: 100 }),
        policy: 'global-rwsem',
        threads: 1,
        seed: 1,
      });
      expect(r.ops).toBe(100);
      expect(r.extras.skipped).toBe(846 - 100);
    });
  });

  describe('without the task tree', () => {
    it('should group the tids by the brk(NULL) heuristic into the same process', () => {
      const withTasks = replayScript(parseWorkloadParams('strace-replay', traceParams('python_threads')));
      const without = replayScript(parseWorkloadParams('strace-replay', { path: sharedTrace('strace', 'python_threads.strace.log') }));
      expect([...without.threads.keys()]).toEqual([...withTasks.threads.keys()]);
      expect(without.tgid).toBe(withTasks.tgid);
    });
  });

  describe('having bad input', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmalock-strace-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('should name a file it cannot read', () => {
      expect(() => parseWorkloadParams('strace-replay', { path: join(dir, 'missing.log') })).toThrow(
        `strace-replay: cannot read strace log '${join(dir, 'missing.log')}': ENOENT`,
      );
    });

    it('should name the first garbled line under strict, and skip it otherwise', () => {
      const path = join(dir, 'garbled.log');
      writeFileSync(
        path,
        '100 10:00:00.000001 brk(NULL) = 0x555555559000 <0.000001>\n100 10:00:00.000002 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000 <0.\n',
      );
      expect(() => parseWorkloadParams('strace-replay', { path, strict: true })).toThrow(
        new RegExp(`^strace-replay: ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2: `),
      );
      const r = runWorkload({ workload: 'strace-replay', params: { path }, policy: 'global-rwsem', threads: 1, seed: 1 });
      expect(r.extras.malformed).toBe(1);
      expect(r.ops).toBe(1);
    });

    it('should name a process the log does not have', () => {
      expect(() => parseWorkloadParams('strace-replay', traceParams('sort_parallel', { tgid: 4242 }))).toThrow(/has no process 4242 \(processes: 16320\)/);
    });

    it('should say when the log has no mm call', () => {
      const path = join(dir, 'empty.log');
      writeFileSync(path, '');
      expect(() => parseWorkloadParams('strace-replay', { path })).toThrow(`strace-replay: '${path}' holds no mm call to replay`);
    });
  });
});
