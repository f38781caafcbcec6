// Proves the policy-differential run: the same policy on both sides never diverges and the same
// options give the same result byte for byte; one thread of the random workload gives every
// policy global-rwsem's results; each kind of divergence is found and described — a differing
// result (at the event first in the baseline's order), a failure under one policy only (a policy
// whose modify lock is its read lock: a held-lock assertion), a differing final address space —
// and the random workload's result divergences carry each run's linearizability verdict.
// Probe workloads make a policy-dependent difference on purpose; seeds are named.
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, type MmGen, type MmStruct, PAGE_SIZE, PROT_READ, type Program, sysMmap, yieldNow } from '@vmalock/core';
import { POLICIES, createPolicy } from '@vmalock/policies';
import { describe, expect, it } from 'vitest';
import { describeDivergence, explainDivergence, findDivergence, policyDiff, runWorkload } from './diff.js';
import type { UserSpace } from './userSpace.js';
import { DIFF_WORKLOADS, type DiffWorkload } from './workloads.js';

const BASE = 0x40000000;

/** A value computed by a "call" that yields once (a scheduling point) and returns `v`. */
function* answer(v: number): MmGen<number> {
  yield yieldNow();
  return v;
}

/** A probe: threads `a` and `b` make two calls each; `differs(thread, call, mm)` says which return 1 under vma-range. */
function probe(differs: (thread: string, call: number) => boolean): DiffWorkload {
  return {
    name: 'probe',
    summary: 'two threads whose calls return 1 under vma-range where `differs` says so',
    expectations: {},
    fixedThreads: 2,
    defaultThreads: 2,
    defaultCalls: 2,
    pctSteps: 20,
    build(mm: MmStruct, user: UserSpace): { program: Program } {
      const under = mm.policy.name;
      return {
        program: (sim) => {
          for (const name of ['a', 'b']) {
            sim.spawn(name, function* (thread) {
              for (let i = 0; i < 2; i++) yield* user.call(thread, `${name}${i}()`, answer(under === 'vma-range' && differs(name, i) ? 1 : 0));
            });
          }
        },
      };
    },
  };
}

describe('policyDiff', () => {
  describe('having the same policy on both sides', () => {
    // The random workload's runs cost more (each history is checked for linearizability): fewer seeds.
    it.each(DIFF_WORKLOADS.map((w) => [w.name, w.name === 'random' ? 3 : 5] as const))(
      'should find no divergence in %s (%i pct and as many random seeds, every policy)',
      (workload, seeds) => {
        for (const { name } of POLICIES) {
          for (const strategy of ['pct', 'random'] as const) {
            for (let seed = 0; seed < seeds; seed++) {
              const r = policyDiff({ policies: [name, name], workload, seed, strategy, ...(workload === 'random' ? { calls: 6 } : {}) });
              expect(r.divergence, `${name} seed=${seed} strategy=${strategy}: ${describeDivergence(r.divergence, r.policies)}`).toBeNull();
            }
          }
        }
      },
    );
  });

  describe('having the same options twice', () => {
    it('should give the same result byte for byte (global-rwsem, vma-range, random workload, seed 3)', () => {
      const once = JSON.stringify(policyDiff({ policies: ['global-rwsem', 'vma-range'], workload: 'random', seed: 3, strategy: 'random' }));
      expect(JSON.stringify(policyDiff({ policies: ['global-rwsem', 'vma-range'], workload: 'random', seed: 3, strategy: 'random' }))).toBe(once);
    });
  });

  describe('having one thread of the random workload', () => {
    it.each(POLICIES.map((p) => p.name))('should give %s the results and state of global-rwsem (10 seeds, 30 calls)', (name) => {
      for (let seed = 0; seed < 10; seed++) {
        const r = policyDiff({ policies: ['global-rwsem', name], workload: 'random', seed, strategy: 'random', threads: 1, calls: 30 });
        expect(r.runs[1].calls).toBe(30);
        expect(r.divergence, `seed=${seed}: ${describeDivergence(r.divergence, r.policies)}`).toBeNull();
      }
    });
  });

  describe('having results that differ in two threads', () => {
    it("should report the one first in the baseline's order, with both results (seeds 0-19, both orders seen)", () => {
      const w = probe((thread, call) => (thread === 'a' && call === 1) || (thread === 'b' && call === 0));
      const firsts = new Set<string>();
      for (let seed = 0; seed < 20; seed++) {
        const r = policyDiff({ policies: ['global-rwsem', 'vma-range'], workload: w, seed, strategy: 'random' });
        // Which of a1 and b0 returned first under global-rwsem, from the baseline run itself.
        const baseline = runWorkload({
          workload: w,
          policy: 'global-rwsem',
          lockPolicy: createPolicy('global-rwsem'),
          seed,
          strategy: 'random',
          threads: 2,
          calls: 2,
        });
        const first = baseline.user.events.find((e) => (e.thread === 'a' && e.index === 1) || (e.thread === 'b' && e.index === 0))!.thread;
        firsts.add(first);
        const call = first === 'a' ? 'a1()' : 'b0()';
        expect(r.divergence, `seed=${seed}`).toEqual({ kind: 'result', thread: first, index: first === 'a' ? 1 : 0, did: [call, call], results: ['0', '1'] });
        expect(describeDivergence(r.divergence, r.policies)).toBe(
          `result: ${first}'s event ${first === 'a' ? 1 : 0} ${call} returned 0 under global-rwsem, 1 under vma-range`,
        );
      }
      expect([...firsts].sort()).toEqual(['a', 'b']);
    });

    it('should report the one of thread b when only b differs, whatever the order (seed 4)', () => {
      const r = policyDiff({
        policies: ['global-rwsem', 'vma-range'],
        workload: probe((thread, call) => thread === 'b' && call === 1),
        seed: 4,
        strategy: 'pct',
      });
      expect(r.divergence).toEqual({ kind: 'result', thread: 'b', index: 1, did: ['b1()', 'b1()'], results: ['0', '1'] });
    });
  });

  describe('having a policy whose modify lock is its read lock', () => {
    it('should report the held-lock assertion under it alone, where it cut the thread short (seed 1)', () => {
      const r = policyDiff({
        policies: ['global-rwsem', 'vma-range'],
        workload: 'random',
        seed: 1,
        strategy: 'random',
        threads: 1,
        calls: 20,
        createPolicy: (name, side) => {
          const p = createPolicy(name);
          if (side === 1) p.lockForModify = (mm, thread, start, end) => p.lockForRead(mm, thread, start, end);
          return p;
        },
      });
      expect(r.runs[1].status).toBe('error');
      expect(r.divergence).toMatchObject({ kind: 'finding', findings: [null, { kind: 'assertion', thread: 'T0 task0' }], thread: 'task0' });
      expect(describeDivergence(r.divergence, r.policies)).toMatch(
        /^finding: nothing under global-rwsem; assertion under vma-range: .*range_assert_covered.*\(task0 did not reach its event \d+\)$/,
      );
    });
  });

  describe('having final address spaces that differ', () => {
    it('should report the first differing line of /proc/pid/maps', () => {
      const w: DiffWorkload = {
        ...probe(() => false),
        build(mm, user) {
          const at = mm.policy.name === 'vma-range' ? BASE + PAGE_SIZE : BASE;
          return {
            program: (sim) => {
              sim.spawn('a', function* (thread) {
                yield* user.call(thread, 'mmap(...)', sysMmap({ thread, mm }, at, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), {
                  ignoreResult: true,
                });
              });
            },
          };
        },
      };
      const r = policyDiff({ policies: ['global-rwsem', 'vma-range'], workload: w, seed: 0, strategy: 'random' });
      expect(r.divergence).toEqual({
        kind: 'state',
        what: 'maps',
        line: 1,
        lines: ['40000000-40001000 r--p 00000000 00:00 0 ', '40001000-40002000 r--p 00000000 00:00 0 '],
      });
    });
  });

  describe('having the random workload under global-rwsem and per-vma (seed 0, random)', () => {
    it('should report a differing result, with both runs linearizable', () => {
      const r = policyDiff({ policies: ['global-rwsem', 'per-vma'], workload: 'random', seed: 0, strategy: 'random' });
      expect(r.divergence).toEqual({
        kind: 'result',
        thread: 'task1',
        index: 8,
        did: ['fault(0x4001bacd, write)', 'fault(0x4001bacd, write)'],
        results: ['SEGV_MAPERR', 'ok'],
      });
      expect(r.runs.map((x) => x.linearizability)).toEqual(['linearizable', 'linearizable']);
      expect(explainDivergence(r)).toMatch(/^both runs are linearizable/);
    });
  });
});

describe('findDivergence', () => {
  it('should stop at the first seed that diverges (maps-vs-mremap, global-rwsem vs per-vma, pct from seed 0)', () => {
    const r = findDivergence({ policies: ['global-rwsem', 'per-vma'], workload: 'maps-vs-mremap', strategy: 'pct' }, 0, 10);
    expect(r.seed).toBe(3);
    expect(r.seedsRun).toBe(4);
    expect(r.divergence?.kind).toBe('user-visible');
  });

  it('should run every seed when none diverges (global-rwsem vs hybrid)', () => {
    const r = findDivergence({ policies: ['global-rwsem', 'hybrid'], workload: 'maps-vs-mprotect', strategy: 'random' }, 0, 10);
    expect(r.seedsRun).toBe(10);
    expect(r.seed).toBe(9);
    expect(r.divergence).toBeNull();
  });
});
