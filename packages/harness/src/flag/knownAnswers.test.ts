// The known answers `vmalock flag` must give over the built-in subsystems (the 'Finding what
// breaks' issue): under global-rwsem no subsystem breaks; under vma-range every legacy variant
// breaks and every converted one is safe; a legacy variant that relies on mmap_sem without
// declaring it is reported `undeclared`; hybrid breaks nothing that global-rwsem does not.
// Schedules: the default portfolio (PCT depth 3 on even seeds 0, 2, ..., random on odd ones).
import { readAssumptions } from '@vmalock/core';
import { SUBSYSTEMS } from '@vmalock/subsystems';
import { describe, expect, it } from 'vitest';
import { type Verdict, flag } from './flag.js';

const SCHEDULES = 120;

function verdicts(policy: string): Verdict[] {
  return flag({ policy, subsystems: SUBSYSTEMS, schedules: SCHEDULES, pctDepth: 3 }).verdicts;
}

/** `subsystem variant verdict`, and the replay commands of what broke (printed by a failing assertion). */
function summary(vs: readonly Verdict[]): string[] {
  return vs.map((v) => `${v.subsystem} ${v.variant} ${v.verdict}${v.findings.map((f) => `\n    ${f.id}: ${f.replay}`).join('')}`);
}

describe(`flag's known answers over the built-in subsystems (${SCHEDULES} portfolio schedules each, seeds 0..${SCHEDULES - 1})`, () => {
  it('should find nothing under global-rwsem, and exercise every variant', () => {
    const vs = verdicts('global-rwsem');
    expect(summary(vs)).toEqual(vs.map((v) => `${v.subsystem} ${v.variant} safe`));
  });

  it('should find, under hybrid, nothing that global-rwsem does not', () => {
    const vs = verdicts('hybrid');
    expect(summary(vs)).toEqual(vs.map((v) => `${v.subsystem} ${v.variant} safe`));
  });

  it('should break every legacy variant under vma-range and keep every converted one safe; undeclared reliance is undeclared', () => {
    const vs = verdicts('vma-range');
    expect(summary(vs).map((l) => l.split('\n')[0])).toEqual(SUBSYSTEMS.flatMap((s) => [`${s.name} legacy breaks`, `${s.name} converted safe`]));
    for (const v of vs.filter((x) => x.variant === 'legacy')) {
      const declaresNothing = readAssumptions(SUBSYSTEMS.find((s) => s.name === v.subsystem)!.create('legacy')).length === 0;
      // What breaks in a variant that declares nothing is undeclared, all of it; one that declares
      // its reliance has declared findings.
      if (declaresNothing) expect([v.subsystem, v.declared, v.undeclared > 0]).toEqual([v.subsystem, 0, true]);
      else expect([v.subsystem, v.declared > 0]).toEqual([v.subsystem, true]);
    }
    // The point of the tool: some legacy variant relies on mmap_sem without saying so.
    expect(vs.some((v) => v.variant === 'legacy' && v.undeclared > 0 && v.declared === 0)).toBe(true);
  });
});
