// `vmalock flag`: subsystems run under a policy over PCT schedules become verdicts and findings.
// Under global-rwsem nothing breaks; under vma-range legacy variants break with findings whose
// ids do not depend on the seed, whose replay command reproduces them, and which say whether a
// declaration covered the broken state (aioring's legacy variant declares nothing: undeclared).
import { SUBSYSTEMS } from '@vmalock/subsystems';
import { describe, expect, it } from 'vitest';
import { runCli } from '../cliApp.js';
import { flag } from './flag.js';

const pick = (...names: string[]) => SUBSYSTEMS.filter((s) => names.includes(s.name));

describe('flag', () => {
  it('should find nothing under global-rwsem', () => {
    const r = flag({ policy: 'global-rwsem', subsystems: pick('pkeys', 'gem', 'aioring'), schedules: 60, pctDepth: 3 });
    expect(r.verdicts.map((v) => `${v.subsystem} ${v.variant} ${v.verdict}`)).toEqual([
      'pkeys legacy safe',
      'pkeys converted safe',
      'aioring legacy safe',
      'aioring converted safe',
      'gem legacy safe',
      'gem converted safe',
    ]);
    for (const v of r.verdicts) expect(Object.values(v.hookCounts).some((n) => n > 0)).toBe(true);
  });

  it('should break legacy variants under vma-range, declared or not, and keep converted ones safe', () => {
    const r = flag({ policy: 'vma-range', subsystems: pick('pkeys', 'aioring'), schedules: 150, pctDepth: 3 });
    const v = Object.fromEntries(r.verdicts.map((x) => [`${x.subsystem} ${x.variant}`, x]));
    expect(v['pkeys legacy']!.verdict).toBe('breaks');
    expect(v['pkeys legacy']!.declared).toBeGreaterThan(0);
    expect(v['aioring legacy']!.verdict).toBe('breaks');
    expect(v['aioring legacy']!.undeclared).toBeGreaterThan(0);
    expect(v['aioring legacy']!.declared).toBe(0);
    expect(v['pkeys converted']!.verdict).toBe('safe');
    expect(v['aioring converted']!.verdict).toBe('safe');
  });

  it('should give a finding an id that does not depend on the seed, and a replay that reproduces it', () => {
    const a = flag({ policy: 'vma-range', subsystems: pick('pkeys'), variants: ['legacy'], schedules: 150, pctDepth: 3 }).verdicts[0]!.findings[0]!;
    expect(a.id).toMatch(/^invariant-pkeys-[0-9a-f]{8}$/);
    const again = flag({
      policy: 'vma-range',
      subsystems: pick('pkeys'),
      variants: ['legacy'],
      schedules: 1,
      pctDepth: 3,
      replay: { seed: a.seed, schedule: a.minimised },
    });
    const replayed = again.verdicts[0]!.findings[0]!;
    expect(replayed.id).toBe(a.id);
    expect(replayed.evidence).toBe(a.evidence);
    expect(a.replay).toBe(`vmalock flag --policy vma-range --subsystem pkeys --variant legacy --seed ${a.seed} --schedule '${a.minimised}'`);
  });

  it('should print one JSON object and exit 0 whatever the verdicts; bad input exits 2', async () => {
    let out = '';
    let err = '';
    const io = { out: (s: string) => (out += s), err: (s: string) => (err += s) };
    expect(await runCli(['flag', '--policy', 'vma-range', '--subsystem', 'pkeys', '--schedules', '100', '--json'], io)).toBe(0);
    const json = JSON.parse(out) as {
      policy: string;
      verdicts: Array<{ subsystem: string; variant: string; verdict: string; findings: Array<{ id: string; replay: string }> }>;
    };
    expect(json.policy).toBe('vma-range');
    expect(json.verdicts.map((v) => [v.subsystem, v.variant, v.verdict])).toEqual([
      ['pkeys', 'legacy', 'breaks'],
      ['pkeys', 'converted', 'safe'],
    ]);
    expect(json.verdicts[0]!.findings[0]!.replay).toMatch(/^vmalock flag --policy vma-range --subsystem pkeys --variant legacy --seed \d+ --schedule '/);
    expect(await runCli(['flag', '--policy', 'vma-range', '--subsystem', 'nosuch'], io)).toBe(2);
    expect(err).toContain("--subsystem: unknown subsystem 'nosuch'");
  });
});
