// Proves the user programs that work by luck (R12): each one's expectations hold under
// global-rwsem on every schedule tried (200 PCT and 200 random), and under the policies that
// keep one lock around the mm's changes and its maps reads; a finer policy breaks them on a
// named seed and schedule strategy, and the differential run reports it as `user-visible` with
// the expectation's name — not as a kernel finding (both runs end well, no checker fires).
import { createPolicy } from '@vmalock/policies';
import { describe, expect, it } from 'vitest';
import { policyDiff, runWorkload } from './diff.js';
import { DIFF_WORKLOADS, diffWorkload } from './workloads.js';

const userPrograms = DIFF_WORKLOADS.filter((w) => Object.keys(w.expectations).length > 0);

/** Where each program still holds: the policies that read maps, and place mappings, under one lock. */
const HOLDS_UNDER: Readonly<Record<string, readonly string[]>> = {
  'maps-vs-mremap': ['hybrid', 'spf', 'range-lock'],
  'maps-vs-mprotect': ['hybrid', 'spf', 'range-lock'],
  'remap-vs-madvise': ['hybrid', 'per-vma', 'spf', 'range-lock'],
};

/** Where each breaks: [workload, policy, strategy, seed, expectation]. */
const BREAKS: ReadonlyArray<readonly [string, string, 'pct' | 'random', number, string]> = [
  ['maps-vs-mremap', 'per-vma', 'random', 0, 'arena-listed-once'],
  ['maps-vs-mremap', 'per-vma', 'pct', 3, 'arena-listed-once'],
  ['maps-vs-mremap', 'vma-range', 'random', 0, 'arena-listed-once'],
  ['maps-vs-mremap', 'vma-range', 'pct', 41, 'arena-listed-once'],
  ['maps-vs-mprotect', 'per-vma', 'random', 2, 'code-lines-tile'],
  ['maps-vs-mprotect', 'per-vma', 'pct', 13, 'code-lines-tile'],
  ['maps-vs-mprotect', 'vma-range', 'random', 4, 'code-lines-tile'],
  ['maps-vs-mprotect', 'vma-range', 'pct', 10, 'code-lines-tile'],
  ['remap-vs-madvise', 'vma-range', 'random', 1, 'same-address-back'],
  ['remap-vs-madvise', 'vma-range', 'pct', 23, 'same-address-back'],
];

function run(workload: string, policy: string, strategy: 'pct' | 'random', seed: number) {
  const w = diffWorkload(workload);
  return runWorkload({ workload: w, policy, lockPolicy: createPolicy(policy), seed, strategy, threads: w.defaultThreads, calls: w.defaultCalls }).run;
}

describe.each(userPrograms.map((w) => w.name))('user program %s', (name) => {
  it('should hold every expectation under global-rwsem (200 pct and 200 random schedules)', () => {
    let checked = 0;
    for (const strategy of ['pct', 'random'] as const) {
      for (let seed = 0; seed < 200; seed++) {
        const r = run(name, 'global-rwsem', strategy, seed);
        const where = `seed=${seed} strategy=${strategy} schedule=${r.schedule}`;
        expect(r.status, where).toBe('ok');
        expect(r.finding, where).toBeNull();
        expect(r.broken, where).toEqual([]);
        checked += r.expectationsChecked;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(400 * 4);
  });

  it.each(HOLDS_UNDER[name]!)('should hold every expectation under %s (20 pct and 20 random schedules)', (policy) => {
    for (const strategy of ['pct', 'random'] as const) {
      for (let seed = 0; seed < 20; seed++) {
        const r = run(name, policy, strategy, seed);
        expect(r.broken, `seed=${seed} strategy=${strategy}`).toEqual([]);
        expect(r.finding, `seed=${seed} strategy=${strategy}`).toBeNull();
      }
    }
  });
});

describe.each(BREAKS)('user program %s under %s (%s, seed %i)', (workload, policy, strategy, seed, expectation) => {
  it(`should break '${expectation}' and be reported as user-visible against global-rwsem`, () => {
    const r = policyDiff({ policies: ['global-rwsem', policy], workload, seed, strategy });
    const where = `seed=${seed} strategy=${strategy} schedule=${r.runs[1].schedule}`;
    expect(r.divergence, where).toMatchObject({ kind: 'user-visible', expectation, holds: [true, false] });
    expect(r.runs.map((x) => x.status)).toEqual(['ok', 'ok']);
    expect(r.runs.map((x) => x.finding)).toEqual([null, null]);
    expect(r.runs[0].broken).toEqual([]);
    expect(r.runs[1].broken.map((e) => e.name)).toContain(expectation);
  });
});
