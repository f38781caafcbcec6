// Proves the strace replay: all five real logs of shared/traces replay with 0 malformed lines
// and every call's simulated result equal to the recorded one (addresses included); recorded
// failures replay as the same failure and change nothing; pre-existing ranges become implied
// mappings; an execve (brk(NULL) answering a new break) starts a new address space; threads
// group by the task tree or, without one, by the brk(NULL) heuristic.
import { readFileSync } from 'node:fs';
import { GlobalRwsemPolicy } from '@vmalock/policies';
import { describe, expect, it } from 'vitest';
import { sharedTrace } from '../../../../test-support/sharedTraces.js';
import { parseStrace } from '../strace/parseStrace.js';
import { parseTasks } from '../strace/parseTasks.js';
import { groupTids, replayStrace } from './traceReplay.js';

const logs = ['edge_python_segv', 'java_allocstress', 'node_workers', 'python_threads', 'sort_parallel'] as const;
const policy = () => new GlobalRwsemPolicy();

function load(name: string) {
  const log = parseStrace(readFileSync(sharedTrace('strace', `${name}.strace.log`), 'utf8'), { file: `${name}.strace.log` });
  const tasks = parseTasks(readFileSync(sharedTrace('tasks', `${name}.tasks.tsv`), 'utf8'), `${name}.tasks.tsv`);
  return { log, tasks };
}

describe('replayStrace', () => {
  describe.each(logs)('having the real log %s', (name) => {
    it('should replay every call with the recorded result', () => {
      const { log, tasks } = load(name);
      const r = replayStrace(log, { tasks, policy });
      expect(r.malformed).toBe(0);
      expect(r.calls).toBeGreaterThan(0);
      expect(r.mismatches).toEqual([]);
      expect(r.matched).toBe(r.calls);
      expect(r.failuresThatChangedState).toBe(0);
      for (const p of r.processes) expect(p.vmas).toBeGreaterThan(0);
    });
  });

  it('should count the pre-existing ranges and the execve of edge_python_segv', () => {
    const { log, tasks } = load('edge_python_segv');
    const r = replayStrace(log, { tasks, policy });
    expect(r.execs).toBe(1);
    expect(r.implied).toBeGreaterThan(0);
  });

  it('should group the tids of node_workers into one process by the heuristic as by the task tree', () => {
    const { log, tasks } = load('node_workers');
    const byTasks = groupTids(log, tasks);
    const byHeuristic = groupTids(log, undefined);
    expect(new Set(byHeuristic.values()).size).toBe(1);
    for (const tid of log.tids) expect(byHeuristic.get(tid)).toBe(byTasks.get(tid));
  });

  describe('having recorded failures', () => {
    // 0x7f0000000000: one 4-page mapping; then failures the kernel gave for this state.
    const text = [
      '100 10:00:00.000001 brk(NULL) = 0x555555559000 <0.000001>',
      '100 10:00:00.000002 mmap(0x7f0000000000, 16384, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0) = 0x7f0000000000 <0.000001>',
      '100 10:00:00.000003 mmap(0x7f0000000000, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0) = -1 EEXIST (File exists) <0.000001>',
      '100 10:00:00.000004 munmap(0x7f0000000001, 4096) = -1 EINVAL (Invalid argument) <0.000001>',
      '100 10:00:00.000005 mprotect(0x7f0000002000, 16384, PROT_READ) = -1 ENOMEM (Cannot allocate memory) <0.000001>',
      '100 10:00:00.000006 madvise(0x7f0000000000, 4096, 0x3e7 /* MADV_??? */) = -1 EINVAL (Invalid argument) <0.000001>',
      '100 10:00:00.000007 brk(0x7f0000001000) = 0x555555559000 <0.000001>',
      '',
    ].join('\n');

    it('should replay each as the same errno, with the mm as it was (except the kernel-partial mprotect)', () => {
      const log = parseStrace(text, { file: 'failures.log' });
      expect(log.malformed).toEqual([]);
      const r = replayStrace(log, { policy });
      expect(r.mismatches).toEqual([]);
      expect(r.matched).toBe(7);
      // mprotect up to a hole changes the part before it (Linux does the same), and so the
      // address space: that is the one recorded failure allowed to change it.
      expect(r.failuresThatChangedState).toBe(1);
    });
  });
});
