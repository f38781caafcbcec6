// Proves the built-in plan is valid and follows the design's staged conversion: global-rwsem, then
// hybrid, then one process opted in to vma-range with every subsystem legacy behind a non-blocking
// gate, then arch, filesystems, drivers and huge pages converted in that order under hybrid, then
// vma-range for every process with everything converted. Read from its resolved form, so what is
// checked is what the runner will run.
import { SUBSYSTEMS } from '@vmalock/subsystems';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEFAULT_PLAN_YAML } from './defaultPlan.js';
import { parsePlan } from './load.js';
import { resolvePlan } from './resolve.js';

describe('DEFAULT_PLAN_YAML', () => {
  const plan = resolvePlan(parsePlan(DEFAULT_PLAN_YAML, 'default.yaml'));
  const kindOf = new Map(SUBSYSTEMS.map((s) => [s.name, s.kind]));

  it('should be a valid plan of two or three processes that attach every built-in subsystem', () => {
    expect(plan.processes.length).toBeGreaterThanOrEqual(2);
    expect(plan.processes.length).toBeLessThanOrEqual(3);
    const attached = new Set(plan.processes.flatMap((p) => p.subsystems.map((s) => s.name)));
    expect([...attached].sort()).toEqual(SUBSYSTEMS.map((s) => s.name).sort());
  });

  it('should run the phases of the design in order', () => {
    expect(plan.phases.map((p) => [p.name, p.policy])).toEqual([
      ['baseline', 'global-rwsem'],
      ['part1-hybrid', 'hybrid'],
      ['opt-in-web', 'vma-range'],
      ['convert-arch', 'hybrid'],
      ['convert-fs', 'hybrid'],
      ['convert-drivers', 'hybrid'],
      ['convert-hugepages', 'hybrid'],
      ['remove-mmap-sem', 'vma-range'],
    ]);
    expect(plan.baseline).toBe('baseline');
  });

  it('should opt one process in to vma-range with everything legacy, behind gates that block nothing', () => {
    const experiment = plan.phases[2]!;
    expect(experiment.processes.map((p) => [p.name, p.policy])).toEqual([
      ['web', 'vma-range'],
      ['jvm', 'hybrid'],
      ['gpu', 'hybrid'],
    ]);
    expect(experiment.converted).toEqual([]);
    expect(experiment.gates.length).toBeGreaterThan(0);
    expect(experiment.gates.every((g) => !g.blocking)).toBe(true);
  });

  it('should convert arch, then filesystems, drivers and huge pages, and end on vma-range with everything converted', () => {
    const order = ['arch', 'fs', 'driver', 'hugepage'];
    const kinds = plan.phases.slice(3).map((p) => order.filter((k) => p.converted.some((n) => kindOf.get(n) === k)));
    expect(kinds).toEqual([['arch'], ['arch', 'fs'], ['arch', 'fs', 'driver'], order, order]);
    // Converting a kind converts every attached subsystem of it.
    for (const phase of plan.phases.slice(3))
      for (const p of phase.processes) for (const name of p.legacy) expect(phase.converted.map((n) => kindOf.get(n))).not.toContain(kindOf.get(name));
    const last = plan.phases.at(-1)!;
    for (const p of last.processes) expect(p).toMatchObject({ policy: 'vma-range', optedIn: true, legacy: [] });
    expect(last.gates.filter((g) => g.kind === 'throughput').map((g) => g.process)).toEqual(['web', 'jvm', 'gpu']);
  });

  it('should gate every other phase with blocking gates', () => {
    for (const phase of plan.phases.filter((p) => p.name !== 'opt-in-web')) {
      expect(phase.gates.some((g) => g.kind === 'no-findings' && g.blocking)).toBe(true);
    }
  });

  it('should be commented, as plan init writes it for a user to read', () => {
    const comments = DEFAULT_PLAN_YAML.split('\n').filter((l) => l.trimStart().startsWith('#')).length;
    expect(comments).toBeGreaterThan(30);
    expect(parse(DEFAULT_PLAN_YAML)).toMatchObject({ name: 'staged-conversion', seed: 1 });
  });
});
