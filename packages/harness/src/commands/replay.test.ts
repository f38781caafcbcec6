// Proves `vmalock replay`: a finding of a real run's report (a small plan, seed 3: pkeys legacy
// under vma-range, found by flag's portfolio) replays from the command the report recorded for
// it, shows the same finding id again with the same evidence (exit 0), and writes its Perfetto
// timeline with `--trace`; the explicit form replays a run by its parts; a replay that does not
// show the finding exits 1; an unknown id, a missing or bad report, and bad parts get one line,
// exit 2, and write nothing. Runs in process.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../cliApp.js';
import { ExitCode } from '../cliSupport.js';
import { parseReplayCommand, shellWords } from './replay.js';
import { smallPlanYaml } from '../run/testPlans.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

/** One pft process with pkeys; vma-range with pkeys legacy breaks (20 schedules, seed 3). */
const PLAN = smallPlanYaml({ name: 'replay-test', pagesPerThread: 16, after: false });

interface ReportFinding {
  id: string;
  kind: string;
  replay: string;
}
interface Report {
  phases: { findings: ReportFinding[] }[];
  evidence: Record<string, string>;
}

let reportDir = '';
let report: Report;
let findings: ReportFinding[] = [];

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmalock-replay-'));
  writeFileSync(join(dir, 'plan.yaml'), PLAN);
  reportDir = join(dir, 'report');
  const r = await cli('run', join(dir, 'plan.yaml'), '--out', reportDir, '--quiet');
  expect(r.code, r.err).toBe(ExitCode.gateFailed);
  report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')) as Report;
  findings = report.phases.flatMap((p) => p.findings);
});

describe('parseReplayCommand', () => {
  it("should read the run out of a finding's recorded command, the schedule unquoted", () => {
    expect(parseReplayCommand("vmalock flag --policy vma-range --subsystem pkeys --variant legacy --seed 3 --schedule '0.1.2.1*2.0*9'")).toEqual({
      policy: 'vma-range',
      subsystem: 'pkeys',
      variant: 'legacy',
      seed: 3,
      schedule: '0.1.2.1*2.0*9',
    });
  });

  it.each([
    ['vmalock run --seed 3', /does not start with 'vmalock flag'/],
    ["vmalock flag --policy p --subsystem s --variant legacy --seed 3 --schedule '0", /unbalanced '/],
    ['vmalock flag --policy p --subsystem s --variant legacy --seed 3', /missing --schedule/],
    ['vmalock flag --policy p --subsystem s --variant new --seed 3 --schedule 0', /--variant 'new' is not legacy or converted/],
    ['vmalock flag --policy p --subsystem s --variant legacy --seed x --schedule 0', /--seed 'x' is not a seed/],
    ['vmalock flag --policy p --jobs 2', /unexpected '--jobs'/],
  ])('should refuse %j', (command, message) => {
    expect(() => parseReplayCommand(command)).toThrow(message);
  });

  it('should split words as a shell does', () => {
    expect(shellWords(`a 'b c'  "d"e`)).toEqual(['a', 'b c', 'de']);
  });
});

describe('vmalock replay <finding-id>', () => {
  it('should find the run broken (the report has findings of a race and of an invariant)', () => {
    expect(findings.length).toBeGreaterThan(1);
    expect(new Set(findings.map((f) => f.kind))).toEqual(new Set(['race', 'invariant']));
  });

  it.each(['race', 'invariant'])('should reproduce the first %s finding: same id, same evidence, exit 0', async (kind) => {
    const f = findings.find((x) => x.kind === kind)!;
    const r = await cli('replay', f.id, '--report', reportDir);
    expect(r.code, r.err).toBe(ExitCode.ok);
    expect(r.out).toContain(`finding ${f.id} (${kind}) of phase legacy-on-vma-range: pkeys legacy under vma-range\n`);
    expect(r.out).toContain(`evidence:\n${report.evidence[f.id]}\n`);
    expect(r.out.trimEnd().split('\n').at(-1)).toBe(`reproduced: the replay shows ${f.id} again`);
  });

  it('should print one JSON object with --json, and write the Perfetto timeline with --trace', async () => {
    const f = findings.find((x) => x.kind === 'race')!;
    const trace = join(mkdtempSync(join(tmpdir(), 'vmalock-replay-')), 'race.json');
    const r = await cli('replay', f.id, '--report', reportDir, '--json', '--trace', trace);
    expect(r.code, r.err).toBe(ExitCode.ok);
    const json = JSON.parse(r.out) as { id: string; reproduced: boolean; evidence: string; findings: { id: string }[]; trace: string; schedule: string };
    expect(json).toMatchObject({ id: f.id, reproduced: true, evidence: report.evidence[f.id], trace });
    expect(json.findings.map((x) => x.id)).toContain(f.id);
    expect(f.replay).toContain(`--schedule '${json.schedule}'`);
    const timeline = JSON.parse(readFileSync(trace, 'utf8')) as { traceEvents: { name: string }[] };
    expect(timeline.traceEvents.some((e) => e.name.startsWith('finding: data-race on pkeys.'))).toBe(true);
  });

  it('should say NOT reproduced and exit 1 when the recorded run no longer shows the finding', async () => {
    // The same report, its invariant finding's replay moved to global-rwsem: pkeys legacy is safe there.
    const f = findings.find((x) => x.kind === 'invariant')!;
    const dir = mkdtempSync(join(tmpdir(), 'vmalock-replay-'));
    const edited = {
      ...report,
      phases: report.phases.map((p) => ({
        ...p,
        findings: p.findings.map((x) => (x.id === f.id ? { ...x, replay: x.replay.replace('--policy vma-range', '--policy global-rwsem') } : x)),
      })),
    };
    writeFileSync(join(dir, 'report.json'), JSON.stringify({ version: 1, ...edited }));
    const r = await cli('replay', f.id, '--report', dir);
    expect(r.code, r.err).toBe(ExitCode.gateFailed);
    expect(r.out).toContain(`recorded evidence:\n${report.evidence[f.id]}\n`);
    expect(r.out).toMatch(/^NOT reproduced: the replay shows /m);
  });
});

describe('vmalock replay --policy ... --schedule X', () => {
  it("should replay a finding's run by its parts and show it (exit 0)", async () => {
    const f = findings.find((x) => x.kind === 'invariant')!;
    const t = parseReplayCommand(f.replay);
    const r = await cli(
      'replay',
      '--policy',
      t.policy,
      '--subsystem',
      t.subsystem,
      '--variant',
      t.variant,
      '--seed',
      String(t.seed),
      '--schedule',
      t.schedule,
      '--json',
    );
    expect(r.code, r.err).toBe(ExitCode.ok);
    const json = JSON.parse(r.out) as { id: null; reproduced: boolean; findings: { id: string; evidence: string }[] };
    expect(json.id).toBeNull();
    expect(json.findings.find((x) => x.id === f.id)?.evidence).toBe(report.evidence[f.id]);
  });

  it("should not count a schedule that does not fit the run (another variant's) as a finding: exit 1", async () => {
    const t = parseReplayCommand(findings.find((x) => x.kind === 'invariant')!.replay);
    const r = await cli(
      'replay',
      '--policy',
      t.policy,
      '--subsystem',
      t.subsystem,
      '--variant',
      'converted',
      '--seed',
      String(t.seed),
      '--schedule',
      `${t.schedule}.0*40`,
    );
    expect(r.code).toBe(ExitCode.gateFailed);
    expect(r.out).toContain('NOT reproduced: the run shows no finding\n');
    expect(r.out).toMatch(/^the run left the schedule: the schedule /m);
  });
});

describe('vmalock replay, having bad input', () => {
  /** Report directories that are wrong in one way each. */
  const fixtures = mkdtempSync(join(tmpdir(), 'vmalock-replay-fixtures-'));
  const reportIn = (name: string, text: string | null): string => {
    const dir = join(fixtures, name);
    mkdirSync(dir);
    if (text !== null) writeFileSync(join(dir, 'report.json'), text);
    return dir;
  };
  const places: Record<string, string> = {
    '<empty>': reportIn('empty', null),
    '<garbled>': reportIn('garbled', '{"version": 1, "phases": ['),
    '<not-a-report>': reportIn('not-a-report', '{"version": 1, "phases": {}}'),
    '<bad-command>': reportIn(
      'bad-command',
      JSON.stringify({
        version: 1,
        phases: [
          {
            name: 'p',
            findings: [
              {
                id: 'race-pkeys-00000000',
                kind: 'race',
                subsystem: 'pkeys',
                variant: 'legacy',
                policy: 'vma-range',
                replay: 'vmalock flag --policy vma-range',
              },
            ],
          },
        ],
      }),
    ),
    '<missing-dir>': join(fixtures, 'missing'),
  };
  const explicit = ['--policy', 'vma-range', '--subsystem', 'pkeys', '--variant', 'legacy', '--seed', '3', '--schedule', '0.1'];
  const trace = ['--trace', '<out>/t.json'];
  it.each([
    [['nope-pkeys-00000000', '--report', '<report>', ...trace], /^vmalock: unknown finding id 'nope-pkeys-00000000': .*report\.json has \d+ finding ids \(/],
    [['race-pkeys-00000000', '--report', '<empty>', ...trace], /--report: no report\.json in '.*' \(give the directory a 'vmalock run --out DIR' wrote\)/],
    [['race-pkeys-00000000', '--report', '<garbled>', ...trace], /report\.json: not JSON \(/],
    [['race-pkeys-00000000', '--report', '<not-a-report>', ...trace], /report\.json: not a vmalock run report: phases: /],
    [
      ['race-pkeys-00000000', '--report', '<bad-command>', ...trace],
      /finding race-pkeys-00000000: replay command 'vmalock flag --policy vma-range' cannot be read: missing --subsystem, --variant, --seed, --schedule/,
    ],
    [['race-pkeys-00000000', '--report', '<report>', '--policy', 'vma-range', ...trace], /give a finding id, or --policy, .* not both/],
    [[...trace], /give a finding id, or the run to replay: .*\(missing: --policy, --subsystem, --variant, --seed, --schedule\)/],
    [['--policy', 'vma-range', ...trace], /\(missing: --subsystem, --variant, --seed, --schedule\)/],
    [['--policy', 'nope', ...explicit.slice(2), ...trace], /--policy: unknown policy 'nope'/],
    [[...explicit.slice(0, 3), 'nope', ...explicit.slice(4), ...trace], /--subsystem: unknown subsystem 'nope'/],
    [[...explicit.slice(0, 5), 'new', ...explicit.slice(6), ...trace], /--variant: expected legacy or converted, got 'new'/],
    [[...explicit.slice(0, 9), '0.x', ...trace], /--schedule: schedule: part 2 'x' is not 'id' or 'id\*count'/],
    [[...explicit.slice(0, 7), '-2', ...explicit.slice(8), ...trace], /--seed must be a non-negative integer/],
    [[...explicit, '--trace', '<missing-dir>/t.json'], /--trace: the directory of '.*' does not exist/],
    [[...explicit, '--report', '<report>', ...trace], /--report names where to look a finding id up: give the id too/],
  ])('should exit 2 with one clear line for %j, writing nothing', async (argv, message) => {
    const out = mkdtempSync(join(tmpdir(), 'vmalock-replay-out-'));
    const args = argv.map((a) => (a === '<report>' ? reportDir : (places[a] ?? a.replace('<out>', out).replace('<missing-dir>', places['<missing-dir>']!))));
    const before = listAll(fixtures);
    const r = await cli('replay', ...args);
    expect(r.code).toBe(ExitCode.badInput);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.out).toBe('');
    expect(readdirSync(out)).toEqual([]);
    expect(listAll(fixtures)).toEqual(before);
  });
});

/** Every file and folder under `dir`, relative, sorted. */
function listAll(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).sort();
}
