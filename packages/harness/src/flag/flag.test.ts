// `vmalock flag`: subsystems run under a policy over PCT schedules become verdicts and findings.
// Under global-rwsem nothing breaks; under vma-range legacy variants break with findings whose
// ids do not depend on the seed, whose replay command reproduces them, and which say whether a
// declaration covered the broken state (aioring's legacy variant declares nothing: undeclared).
import { type MmGen, type MmTask, Mutex, type Prng, SharedLocation, type Subsystem, type SubsystemVariant, spend } from '@vmalock/core';
import { SUBSYSTEMS, type SubsystemEntry } from '@vmalock/subsystems';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../cliApp.js';
import { flag, flagParallel } from './flag.js';

const pick = (...names: string[]) => SUBSYSTEMS.filter((s) => names.includes(s.name));

/**
 * A driver with two locks of its own, `dev.a` and `dev.b`. Legacy: the ioctl takes a then b, the
 * release path b then a (an ABBA inversion); with `gate`, both paths hold `dev.gate` around them,
 * so the inversion can never deadlock. Converted: both paths take a then b.
 */
function abbaDriver(gate: boolean): SubsystemEntry {
  const create = (variant: SubsystemVariant): Subsystem => {
    const a = new Mutex('dev.a');
    const b = new Mutex('dev.b');
    const g = new Mutex('dev.gate');
    const state = new SharedLocation('dev.state', 0, 'abba');
    const counts = { ioctl: 0, release: 0 };
    function* both(first: Mutex, second: Mutex): MmGen<void> {
      if (gate) yield g.lock();
      yield first.lock();
      yield spend(50);
      yield second.lock();
      yield state.write(1);
      yield second.unlock();
      yield first.unlock();
      if (gate) yield g.unlock();
    }
    return {
      name: gate ? 'abba-gated' : 'abba',
      kind: 'driver',
      variant,
      summary: 'two driver locks taken in both orders',
      attach: () => undefined,
      *drive(_task: MmTask, rng: Prng): MmGen<void> {
        if (rng.chance(0.5)) {
          counts.ioctl++;
          yield* both(a, b);
        } else {
          counts.release++;
          yield* variant === 'legacy' ? both(b, a) : both(a, b);
        }
      },
      checkInvariants: () => undefined,
      locations: () => [state],
      hookCounts: counts,
    };
  };
  const probe = create('legacy');
  return { name: probe.name, kind: probe.kind, summary: probe.summary, create };
}

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
    const findings = flag({ policy: 'vma-range', subsystems: pick('pkeys'), variants: ['legacy'], schedules: 150, pctDepth: 3 }).verdicts[0]!.findings;
    // The invariant (the pkey map out of step with the VMAs) and the races on the pkey state.
    expect(findings.some((f) => /^invariant-pkeys-[0-9a-f]{8}$/.test(f.id))).toBe(true);
    expect(findings.some((f) => /^race-pkeys-[0-9a-f]{8}$/.test(f.id))).toBe(true);
    for (const a of findings) {
      const again = flag({
        policy: 'vma-range',
        subsystems: pick('pkeys'),
        variants: ['legacy'],
        schedules: 1,
        pctDepth: 3,
        replay: { seed: a.seed, schedule: a.minimised },
      });
      const replayed = again.verdicts[0]!.findings.find((f) => f.id === a.id);
      expect(replayed?.evidence, a.replay).toBe(a.evidence);
      expect(a.replay).toBe(`vmalock flag --policy vma-range --subsystem pkeys --variant legacy --seed ${a.seed} --schedule '${a.minimised}'`);
    }
    // Other seeds find the same problems under the same ids.
    const later = flag({ policy: 'vma-range', subsystems: pick('pkeys'), variants: ['legacy'], schedules: 150, pctDepth: 3, strategy: 'random' });
    const ids = new Set(findings.map((f) => f.id));
    expect(later.verdicts[0]!.findings.filter((f) => ids.has(f.id)).length).toBeGreaterThan(0);
  });

  it('should report a race with both accesses, their stacks and locks, as declared when an assumption protects its location', () => {
    const v = flag({ policy: 'vma-range', subsystems: pick('gem'), variants: ['legacy'], schedules: 100, pctDepth: 3 }).verdicts[0]!;
    const races = v.findings.filter((f) => f.kind === 'race');
    expect(races.length).toBeGreaterThan(0);
    for (const r of races) {
      expect(r.evidence).toMatch(/^=+\nBUG: vmalock: data-race on gem\.mm1\./);
      expect(r.evidence).toContain('stack:\n  Gem');
      // gem's legacy variant declares only the object refcount: a race on anything else is undeclared.
      expect(r.declared).toBe(/data-race on gem\.mm1\.obj\d+\.refcount /.test(r.evidence));
    }
    expect(races.some((r) => r.declared === false)).toBe(true);
  });

  it('should give the same verdicts, byte for byte, on worker threads as in one thread (--jobs)', async () => {
    const options = { policy: 'vma-range', subsystems: pick('pkeys', 'aioring'), schedules: 40, pctDepth: 3 };
    const here = flag(options);
    const pooled = await flagParallel(options, 2);
    expect(JSON.stringify(pooled)).toBe(JSON.stringify(here));
    expect(here.verdicts.filter((v) => v.verdict === 'breaks').length).toBe(2);
  });

  it('should break and keep safe the same variants under the bounded-preemption search, and replay its findings', () => {
    const r = flag({ policy: 'vma-range', subsystems: pick('pkeys'), schedules: 150, pctDepth: 3, strategy: 'bounded', preemptionBound: 2 });
    expect(r.verdicts.map((v) => `${v.variant} ${v.verdict} ${v.strategy}`)).toEqual([
      'legacy breaks bounded (at most 2 preemptions)',
      'converted safe bounded (at most 2 preemptions)',
    ]);
    const f = r.verdicts[0]!.findings[0]!;
    expect(f.strategy).toBe('bounded');
    const again = flag({
      policy: 'vma-range',
      subsystems: pick('pkeys'),
      variants: ['legacy'],
      schedules: 1,
      pctDepth: 3,
      replay: { seed: f.seed, schedule: f.minimised },
    });
    expect(again.verdicts[0]!.findings.map((x) => x.id)).toContain(f.id);
  });

  it('should report a lock-order inversion as demonstrated when a schedule really deadlocks, and as possible when a gate lock prevents it', () => {
    const [legacy, converted] = flag({ policy: 'global-rwsem', subsystems: [abbaDriver(false)], schedules: 60, pctDepth: 3 }).verdicts;
    const inversion = legacy!.findings.find((f) => f.kind === 'lock-order');
    expect(inversion?.lockOrder, JSON.stringify(legacy!.findings.map((f) => f.id))).toBe('demonstrated');
    expect(inversion!.evidence).toContain('WARNING: possible circular locking dependency detected');
    expect(inversion!.evidence).toMatch(
      /demonstrated \(.*\): .*\n {2}replay the deadlock: vmalock flag --policy global-rwsem --subsystem abba --variant legacy --seed \d+ --schedule '/,
    );
    expect(converted!.verdict).toBe('safe');
    const gated = flag({ policy: 'global-rwsem', subsystems: [abbaDriver(true)], variants: ['legacy'], schedules: 60, pctDepth: 3 }).verdicts[0]!;
    expect(gated.findings.map((f) => [f.kind, f.lockOrder])).toEqual([['lock-order', 'possible']]);
    expect(gated.findings[0]!.evidence).toMatch(/possible: no schedule of \d+ tried deadlocked on these locks$/);
  });

  it("should write a replay's Perfetto timeline with both accesses of a race marked (--trace)", async () => {
    const race = flag({ policy: 'vma-range', subsystems: pick('gem'), variants: ['legacy'], schedules: 60, pctDepth: 3 }).verdicts[0]!.findings.find(
      (f) => f.kind === 'race',
    )!;
    const dir = mkdtempSync(join(tmpdir(), 'vmalock-flag-'));
    const file = join(dir, 'race.json');
    const io = { out: () => undefined, err: () => undefined };
    const args = ['flag', '--policy', 'vma-range', '--subsystem', 'gem', '--variant', 'legacy', '--seed', String(race.seed), '--schedule', race.minimised];
    expect(await runCli([...args, '--trace', file], io)).toBe(0);
    const text = readFileSync(file, 'utf8');
    const events = (JSON.parse(text) as { traceEvents: Array<{ name: string; cat?: string }> }).traceEvents;
    const marks = events.filter((e) => e.cat === 'finding').map((e) => e.name);
    const location = /data-race on (\S+)/.exec(race.evidence)![1]!;
    expect(marks.some((m) => m.startsWith(`finding: data-race on ${location} (first: `))).toBe(true);
    expect(marks.some((m) => m.startsWith(`finding: data-race on ${location} (then: `))).toBe(true);
    // The same replay, the same bytes.
    expect(await runCli([...args, '--trace', join(dir, 'again.json')], io)).toBe(0);
    expect(readFileSync(join(dir, 'again.json'), 'utf8')).toBe(text);
    // A trace needs one replay.
    expect(await runCli(['flag', '--policy', 'vma-range', '--subsystem', 'gem', '--trace', join(dir, 'no.json')], io)).toBe(2);
    expect(existsSync(join(dir, 'no.json'))).toBe(false);
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
