// `vmalock run`: the built-in plan passes end to end (the opt-in experiment breaks without
// blocking anything); a failed blocking gate blocks the later phases (or not, --keep-going);
// --json has the layout; --out writes report.json and junit.xml all or nothing; bad
// input exits 2 and writes nothing. Seeds: the plans' own (1), strategy `timed` for throughput
// and flag's portfolio for findings.
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../cliApp.js';
import { DEFAULT_PLAN_YAML } from '../plan/defaultPlan.js';
import { parsePlan } from '../plan/load.js';
import { resolvePlan } from '../plan/resolve.js';
import { runPlan } from './runPlan.js';
import { smallPlanYaml } from './testPlans.js';

function capture() {
  const io = { out: '', err: '' };
  return { io, sink: { out: (s: string) => (io.out += s), err: (s: string) => (io.err += s) } };
}

const SMALL = smallPlanYaml();

describe('runPlan', () => {
  it('should pass the built-in plan end to end: the experiment fails its non-blocking gate and blocks nothing', async () => {
    const r = await runPlan(resolvePlan(parsePlan(DEFAULT_PLAN_YAML, 'default')));
    expect(r.passed).toBe(true);
    expect(r.phases.map((p) => `${p.name} ${p.status}`)).toEqual([
      'baseline passed',
      'part1-hybrid passed',
      'opt-in-web failed',
      'convert-arch passed',
      'convert-fs passed',
      'convert-drivers passed',
      'convert-hugepages passed',
      'remove-mmap-sem passed',
    ]);
    const experiment = r.phases[2]!;
    expect(experiment.processes.map((p) => `${p.name} ${p.policy}`)).toEqual(['web vma-range', 'jvm hybrid', 'gpu hybrid']);
    // It breaks on web's legacy subsystems, and only there.
    expect(experiment.findings.length).toBeGreaterThan(0);
    for (const f of experiment.findings) expect([f.variant, f.policy, f.processes]).toEqual(['legacy', 'vma-range', expect.arrayContaining(['web'])]);
    expect(experiment.gates.map((g) => [g.blocking, g.passed])).toEqual([[false, false]]);
    // The baseline compares to itself; the last phase has no finding.
    expect(r.phases[0]!.processes.map((p) => p.speedupOverBaseline)).toEqual([1, 1, 1]);
    expect(r.phases[7]!.findings).toEqual([]);
  });

  it('should block the phases after a failed blocking gate, and run them with keepGoing', async () => {
    const plan = resolvePlan(parsePlan(SMALL, 'small.yaml'));
    const r = await runPlan(plan);
    expect(r.passed).toBe(false);
    expect(r.phases.map((p) => p.status)).toEqual(['passed', 'failed', 'blocked']);
    expect(r.phases[1]!.gates[0]!.detail).toMatch(/^\d+ findings? in pkeys \(legacy, vma-range\): /);
    expect(r.phases[2]!.gates[0]!.detail).toBe("not run: a blocking gate of phase 'legacy-on-vma-range' failed");
    const going = await runPlan(plan, { keepGoing: true });
    expect(going.phases.map((p) => p.status)).toEqual(['passed', 'failed', 'passed']);
    expect(going.passed).toBe(false);
  });
});

describe('vmalock run', () => {
  it('should print the issue-layout JSON and exit 0 for the built-in plan, 1 when a blocking gate fails', async () => {
    const { io, sink } = capture();
    expect(await runCli(['run', '--json'], sink)).toBe(0);
    const json = JSON.parse(io.out) as {
      plan: string;
      seed: number;
      passed: boolean;
      profile: string;
      phases: Array<{
        name: string;
        status: string;
        processes: Array<{ name: string; policy: string; throughput: number; speedupOverBaseline: number }>;
        findings: Array<{ id: string; kind: string; subsystem: string; replay: string }>;
        gates: Array<{ name: string; passed: boolean; detail: string }>;
      }>;
    };
    expect([json.plan, json.seed, json.passed, json.profile]).toEqual(['staged-conversion', 1, true, 'default']);
    expect(json.phases[7]!.processes.every((p) => p.throughput > 0 && p.speedupOverBaseline > 0)).toBe(true);
    expect(json.phases[2]!.findings[0]!.replay).toMatch(/^vmalock flag --policy vma-range --subsystem \S+ --variant legacy --seed \d+ --schedule '/);
    const dir = mkdtempSync(join(tmpdir(), 'vmalock-run-'));
    const file = join(dir, 'small.yaml');
    writeFileSync(file, SMALL);
    const second = capture();
    expect(await runCli(['run', file, '--quiet'], second.sink)).toBe(1);
    expect(second.io.out).toBe('');
  });

  it('should run on the machine profile asked for, record it, and refuse an unknown one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmalock-run-'));
    const file = join(dir, 'small.yaml');
    writeFileSync(file, smallPlanYaml());
    const runs: Record<string, { profile: string; phases: Array<{ processes: Array<{ throughput: number }> }> }> = {};
    for (const profile of ['default', 'xeon-e5-2690v3']) {
      const { io, sink } = capture();
      await runCli(['run', file, '--json', '--profile', profile], sink);
      runs[profile] = JSON.parse(io.out) as (typeof runs)[string];
    }
    expect(runs['xeon-e5-2690v3']!.profile).toBe('xeon-e5-2690v3');
    // Other costs, other simulated throughput.
    expect(runs['xeon-e5-2690v3']!.phases[0]!.processes[0]!.throughput).not.toBe(runs.default!.phases[0]!.processes[0]!.throughput);
    const bad = capture();
    expect(await runCli(['run', file, '--profile', 'nosuch'], bad.sink)).toBe(2);
    expect(bad.io.err).toBe("vmalock: --profile: unknown machine profile 'nosuch' (known: default, xeon-e5-2690v3, ivybridge-2s-40c, icelake-2s-64t)\n");
  });

  it('should write report.json and junit.xml with --out, one test case per phase and gate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmalock-run-'));
    const file = join(dir, 'small.yaml');
    writeFileSync(file, SMALL);
    const out = join(dir, 'report');
    expect(await runCli(['run', file, '--out', out, '--quiet'], capture().sink)).toBe(1);
    expect(readdirSync(out).sort()).toEqual(['index.html', 'junit.xml', 'report.json', 'traces']);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { version: number; plan: string; evidence: Record<string, string> };
    expect([report.version, report.plan]).toEqual([1, 'small']);
    expect(Object.values(report.evidence).length).toBeGreaterThan(0);
    // A Perfetto timeline per finding, linked from index.html, the finding's steps marked.
    const ids = Object.keys(report.evidence).sort();
    expect(readdirSync(join(out, 'traces')).sort()).toEqual(ids.map((id) => `${id}.json`));
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    for (const id of ids) {
      expect(html).toContain(`href="traces/${id}.json"`);
      const events = (JSON.parse(readFileSync(join(out, 'traces', `${id}.json`), 'utf8')) as { traceEvents: Array<{ cat?: string }> }).traceEvents;
      expect(events.some((ev) => ev.cat === 'finding')).toBe(true);
    }
    const junit = readFileSync(join(out, 'junit.xml'), 'utf8');
    expect(junit).toContain('<testsuites name="vmalock plan small" tests="2" failures="1" skipped="1">');
    expect(junit).toMatch(/<testcase classname="small\.legacy-on-vma-range" name="no-findings">\n {6}<failure message="\d+ findings? in pkeys/);
    expect(junit).toContain(`<skipped message="not run: a blocking gate of phase 'legacy-on-vma-range' failed"/>`);
    // A report is never mixed with another: a non-empty directory is refused, and nothing is written.
    expect(await runCli(['run', file, '--out', out], capture().sink)).toBe(2);
  });

  it('should refuse a bad plan with one line naming file:line:col, exit 2 and write nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmalock-run-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, SMALL.replace('policy: vma-range', 'policy: no-such-policy'));
    const out = join(dir, 'report');
    const { io, sink } = capture();
    expect(await runCli(['run', file, '--out', out], sink)).toBe(2);
    expect(io.err).toBe(
      `vmalock: ${file}:13:13: phases[1].policy: expected one of global-rwsem, hybrid, vma-range, per-vma, spf, range-lock (got "no-such-policy")\n`,
    );
    expect(existsSync(out)).toBe(false);
    // A workload's own parameters are checked against its schema, with the place of the bad one.
    writeFileSync(file, SMALL.replace('workload: { name: pft }', 'workload: { name: pft, params: { pagesPerThred: 8 } }'));
    const typo = capture();
    expect(await runCli(['run', file], typo.sink)).toBe(2);
    expect(typo.io.err).toMatch(/^vmalock: \S+bad\.yaml:5:\d+: processes\[0\]\.workload\.params: pft: Unrecognized key: "pagesPerThred"\n$/);
    const jobs = capture();
    expect(await runCli(['run', '--jobs', '0'], jobs.sink)).toBe(2);
    expect(jobs.io.err).toBe("vmalock: --jobs must be an integer in 1..256, got '0'\n");
  });
});
