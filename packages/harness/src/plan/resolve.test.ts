// Proves the resolution rules of docs/plans.md on small plans: a process outside a phase's optIn
// keeps its own policy (and options) of the previous phase, even across several opt-in phases; the
// converted set grows phase by phase, group words expand to the attached subsystems of that kind,
// and each process sees only its own subsystems split into converted and legacy; gate names and
// phase schedules get their defaults; and the complete example of docs/plans.md resolves as the
// table under it says.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePlan } from './load.js';
import { resolvePlan } from './resolve.js';
import { DEFAULT_PHASE_SCHEDULES } from './schema.js';

const PLAN = `
name: rules
processes:
  - { name: a, workload: { name: pft }, threads: 1, cpus: 1, subsystems: [pkeys, pagecache, gem] }
  - { name: b, workload: { name: mmap1, params: { regionPages: 8 } }, threads: 2, cpus: 2, subsystems: [gem, thp] }
  - { name: c, workload: { name: ebizzy }, threads: 1, cpus: 1 }
phases:
  - { name: p0, policy: global-rwsem }
  - { name: p1, policy: per-vma, policyOptions: { lockNewVma: false }, optIn: [a], converted: [arch] }
  - name: p2
    policy: vma-range
    optIn: [b]
    converted: [gem]
    gates: [{ kind: no-findings, schedules: 7, findingKinds: [race] }, { kind: throughput, process: b, atLeastPercentOfBaseline: 80, blocking: false }]
  - { name: p3, policy: vma-range, converted: [all], schedules: 3 }
`;

describe('resolvePlan', () => {
  const resolved = resolvePlan(parsePlan(PLAN, 'rules.yaml'));
  const policies = (phase: number) => resolved.phases[phase]!.processes.map((p) => `${p.name}:${p.policy}${p.optedIn ? '*' : ''}`);

  it('should keep each process outside optIn on its own policy of the previous phase', () => {
    expect(policies(0)).toEqual(['a:global-rwsem*', 'b:global-rwsem*', 'c:global-rwsem*']);
    expect(policies(1)).toEqual(['a:per-vma*', 'b:global-rwsem', 'c:global-rwsem']);
    // a did not opt in to p2: it stays on per-vma (with its options), not on p2's previous global-rwsem.
    expect(policies(2)).toEqual(['a:per-vma', 'b:vma-range*', 'c:global-rwsem']);
    expect(resolved.phases[2]!.processes[0]!.policyOptions).toEqual({ lockNewVma: false });
    expect(policies(3)).toEqual(['a:vma-range*', 'b:vma-range*', 'c:vma-range*']);
    expect(resolved.phases.map((p) => p.optIn)).toEqual([['a', 'b', 'c'], ['a'], ['b'], ['a', 'b', 'c']]);
  });

  it('should grow the converted set phase by phase and split each process into converted and legacy', () => {
    expect(resolved.phases.map((p) => p.converted)).toEqual([[], ['pkeys'], ['pkeys', 'gem'], ['pkeys', 'pagecache', 'gem', 'thp']]);
    expect(resolved.phases[2]!.processes.map((p) => [p.name, p.converted, p.legacy])).toEqual([
      ['a', ['pkeys', 'gem'], ['pagecache']],
      ['b', ['gem'], ['thp']],
      ['c', [], []],
    ]);
  });

  it('should name the gates, fill in their defaults and the schedules of each phase', () => {
    expect(resolved.phases[2]!.gates).toEqual([
      { kind: 'no-findings', name: 'no-findings', blocking: true, findingKinds: ['race'], schedules: 7 },
      { kind: 'throughput', name: 'throughput:b', blocking: false, process: 'b', atLeastPercentOfBaseline: 80 },
    ]);
    expect(resolved.phases.map((p) => p.schedules)).toEqual([DEFAULT_PHASE_SCHEDULES, DEFAULT_PHASE_SCHEDULES, 7, 3]);
    expect(resolved.baseline).toBe('p0');
    expect(resolved.processes[1]).toMatchObject({ workload: { name: 'mmap1', params: { regionPages: 8 } }, threads: 2, cpus: 2 });
  });

  it('should expand a group word over subsystem files by the kind they were loaded with', () => {
    const plan = parsePlan(
      `
name: files
processes: [{ name: a, workload: { name: pft }, threads: 1, cpus: 1, subsystems: [gem, ./mine.js] }]
phases: [{ name: p0, policy: global-rwsem }, { name: p1, policy: hybrid, converted: [driver] }]
`,
      'files.yaml',
    );
    expect(() => resolvePlan(plan)).toThrow("subsystem file './mine.js' was not loaded");
    const asDriver = resolvePlan(plan, new Map([['./mine.js', { name: 'mine', kind: 'driver' as const }]]));
    expect(asDriver.phases[1]!.processes[0]).toMatchObject({ converted: ['gem', 'mine'], legacy: [] });
    const asFs = resolvePlan(plan, new Map([['./mine.js', { name: 'mine', kind: 'fs' as const }]]));
    expect(asFs.phases[1]!.processes[0]).toMatchObject({ converted: ['gem'], legacy: ['mine'] });
  });
});

describe('the example of docs/plans.md', () => {
  const doc = readFileSync(new URL('../../../../docs/plans.md', import.meta.url), 'utf8');
  const example = /## A complete example\n\n```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
  const resolved = resolvePlan(parsePlan(example, 'example.yaml'), new Map([['./drivers/mydev.js', { name: 'mydev', kind: 'driver' as const }]]));

  it('should resolve as its table says', () => {
    const cell = (phase: number, process: number) => {
      const p = resolved.phases[phase]!.processes[process]!;
      return `${p.policy}; converted ${p.converted.join(',') || '-'}; legacy ${p.legacy.join(',') || '-'}`;
    };
    expect([0, 1, 2, 3].map((i) => [cell(i, 0), cell(i, 1)])).toEqual([
      ['global-rwsem; converted -; legacy vdso,gem,hmm,mydev', 'global-rwsem; converted -; legacy pagecache,userfaultfd'],
      ['per-vma; converted -; legacy vdso,gem,hmm,mydev', 'per-vma; converted -; legacy pagecache,userfaultfd'],
      ['vma-range; converted gem,hmm,mydev; legacy vdso', 'per-vma; converted -; legacy pagecache,userfaultfd'],
      ['vma-range; converted vdso,gem,hmm,mydev; legacy -', 'vma-range; converted pagecache,userfaultfd; legacy -'],
    ]);
  });
});
