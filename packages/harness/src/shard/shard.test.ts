// Proves `--shard i/n` and `vmalock merge`: the n slices of a search cover its schedules once, in
// order; a flag of two subsystems over 40 schedules cut in 3 shards (one on worker threads) and
// merged prints the unsharded flag's JSON byte for byte — with findings first seen in
// shards 2 and 3, so the merge really joins them; a plan run cut in 2 shards and merged writes the
// unsharded run's report.json, junit.xml and index.html byte for byte and exits as it does (a
// blocking gate fails and blocks the last phase, which the shards ran anyway), and with
// --keep-going prints its --json. Shards that do not belong together, garbled shard files and
// bad --shard values are one error line, exit 2, and write nothing. Seeds: the plan's own (3),
// flag's portfolio from seed 0. Runs in process.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode, UsageError, runCli } from '../cliApp.js';
import { unitsOf } from '../flag/flag.js';
import { parseShard, shardSlice, shardUnit } from './shard.js';
import type { FlagShardFile } from './shardFile.js';
import { smallPlanYaml } from '../run/testPlans.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'vmalock-shard-'));

/** Every file under `dir`, by its path in `dir`. */
function filesOf(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name))
      .sort()
      .map((f) => [relative(dir, f), readFileSync(f, 'utf8')]),
  );
}

describe('parseShard', () => {
  it('should accept i/n with 1 <= i <= n <= 1024', () => {
    expect(parseShard('1/1')).toEqual({ index: 1, count: 1 });
    expect(parseShard('3/3')).toEqual({ index: 3, count: 3 });
    expect(parseShard('7/1024')).toEqual({ index: 7, count: 1024 });
  });

  it.each(['3/2', '0/2', '1/0', '0/0', '-1/2', '1.5/2', '2', '1/2/3', 'a/b', '', ' 1/2'])("should refuse '%s'", (value) => {
    expect(() => parseShard(value)).toThrow(new UsageError(`--shard: expected i/n with 1 <= i <= n, got '${value}'`));
  });

  it('should refuse more than 1024 shards', () => {
    expect(() => parseShard('1/1025')).toThrow(new UsageError("--shard: at most 1024 shards, got '1/1025'"));
  });
});

describe('shardSlice', () => {
  it('should cut [0, N) into n consecutive slices that cover it once, in order', () => {
    for (let total = 0; total <= 40; total++)
      for (let count = 1; count <= 9; count++) {
        const slices = Array.from({ length: count }, (_, i) => shardSlice(total, { index: i + 1, count }));
        expect(slices[0]!.from).toBe(0);
        expect(slices.at(-1)!.to).toBe(total);
        for (let i = 1; i < count; i++) expect(slices[i]!.from).toBe(slices[i - 1]!.to);
        for (const s of slices) expect(s.to - s.from).toBeGreaterThanOrEqual(Math.floor(total / count));
      }
  });

  it('should slice the bounded search by program seeds, keeping the whole search’s schedule limit', () => {
    const options = { policy: 'vma-range', subsystems: [], schedules: 120, pctDepth: 3, strategy: 'bounded' as const };
    const whole = unitsOf(options, 'legacy', 1)[0]!;
    expect([whole.from, whole.to, whole.limit]).toEqual([0, 3, 120]);
    expect([1, 2, 3].map((index) => shardUnit(options, 'legacy', { index, count: 3 })).map((u) => [u.from, u.to, u.limit])).toEqual([
      [0, 1, 120],
      [1, 2, 120],
      [2, 3, 120],
    ]);
    // More shards than seeds: some shards run nothing.
    expect(shardUnit(options, 'legacy', { index: 1, count: 4 })).toMatchObject({ from: 0, to: 0 });
  });
});

const FLAG = ['flag', '--policy', 'vma-range', '--subsystem', 'khugepaged', '--subsystem', 'binder', '--schedules', '40'];

describe('vmalock flag --shard, vmalock merge', () => {
  it('should merge 3 shards into the unsharded JSON, byte for byte', async () => {
    const dir = tmp();
    const dirs = [1, 2, 3].map((i) => join(dir, `shard-${i}`));
    for (const [k, d] of dirs.entries()) {
      const r = await cli(...FLAG, '--shard', `${k + 1}/3`, '--out', d, ...(k === 1 ? ['--jobs', '2'] : []));
      expect(r.code, r.err).toBe(ExitCode.ok);
      expect(r.out).toBe('');
      expect(r.err).toMatch(new RegExp(`^flag: shard ${k + 1}/3 wrote \\S+shard\\.json \\(4 searches, ${[13, 13, 14][k]! * 4} schedules\\)`));
      expect(readdirSync(d)).toEqual(['shard.json']);
    }
    const shard2 = JSON.parse(readFileSync(join(dirs[1]!, 'shard.json'), 'utf8')) as FlagShardFile;
    expect(shard2.searches.map((s) => `${s.search} [${s.from}, ${s.to}) ${s.outcomes.length}`)).toEqual([
      'khugepaged legacy [13, 26) 13',
      'khugepaged converted [13, 26) 13',
      'binder legacy [13, 26) 13',
      'binder converted [13, 26) 13',
    ]);

    const merged = await cli('merge', dirs[2]!, dirs[0]!, dirs[1]!, '--json');
    const whole = await cli(...FLAG, '--json');
    expect(merged.code, merged.err).toBe(ExitCode.ok);
    expect(merged.out).toBe(whole.out);
    // The merge joined every shard: findings first seen in shard 2's and shard 3's slices, 40 schedules per verdict.
    const json = JSON.parse(merged.out) as { verdicts: { schedules: number; findings: { seed: number }[] }[] };
    const seeds = json.verdicts.flatMap((v) => v.findings.map((f) => f.seed));
    expect(seeds.some((s) => s >= 13 && s < 26)).toBe(true);
    expect(seeds.some((s) => s >= 26)).toBe(true);
    expect(json.verdicts.map((v) => v.schedules)).toEqual([40, 40, 40, 40]);
  });
});

const SMALL = smallPlanYaml({ afterSchedules: 6 });

/** Two shards of SMALL (with `extra` arguments) in `dir`: their directories. */
async function smallShards(dir: string, plan: string, ...extra: string[]): Promise<string[]> {
  const dirs = [join(dir, `${extra.join('')}s1`), join(dir, `${extra.join('')}s2`)];
  for (const [k, d] of dirs.entries()) {
    const r = await cli('run', plan, '--shard', `${k + 1}/2`, '--out', d, '--quiet', ...extra);
    expect(r.code, r.err).toBe(ExitCode.ok);
    expect([r.out, r.err]).toEqual(['', '']);
  }
  return dirs;
}

describe('vmalock run --shard, vmalock merge', () => {
  it('should merge 2 shards into the unsharded report, byte for byte, and exit as it does', async () => {
    const dir = tmp();
    const plan = join(dir, 'small.yaml');
    writeFileSync(plan, SMALL);
    const dirs = await smallShards(dir, plan);
    const merged = await cli('merge', ...dirs, '--out', join(dir, 'merged'));
    const whole = await cli('run', plan, '--out', join(dir, 'whole'));
    // A blocking gate fails: exit 1, the last phase blocked.
    expect(whole.code, whole.err).toBe(ExitCode.gateFailed);
    expect(merged.code, merged.err).toBe(ExitCode.gateFailed);
    expect(merged.out).toBe(whole.out);
    expect(whole.out).toContain('phase after (hybrid): blocked');
    const files = filesOf(join(dir, 'whole'));
    expect(Object.keys(files)).toEqual(expect.arrayContaining(['junit.xml', 'report.json']));
    expect(filesOf(join(dir, 'merged'))).toEqual(files);
    // The shards ran the blocked phase's search too (only the merge can tell it is blocked).
    const shard = JSON.parse(readFileSync(join(dirs[0]!, 'shard.json'), 'utf8')) as { searches: { search: string }[] };
    expect(shard.searches.map((s) => s.search)).toEqual(['legacy-on-vma-range: pkeys legacy under vma-range', 'after: pkeys legacy under hybrid']);
  });

  it('should merge shards of --keep-going into the unsharded --json', async () => {
    const dir = tmp();
    const plan = join(dir, 'small.yaml');
    writeFileSync(plan, SMALL);
    const dirs = await smallShards(dir, plan, '--keep-going');
    const merged = await cli('merge', ...dirs, '--json');
    const whole = await cli('run', plan, '--keep-going', '--json');
    expect(merged.out).toBe(whole.out);
    expect(merged.code).toBe(whole.code);
    expect((JSON.parse(whole.out) as { phases: { status: string }[] }).phases.map((p) => p.status)).toEqual(['passed', 'failed', 'passed']);
  });
});

describe('vmalock merge, having shards that do not belong together', () => {
  /** Shards of a small flag over `schedules` in `dir`, each i/n of `shards`. */
  async function flagShards(dir: string, name: string, shards: string[], schedules = 4): Promise<string[]> {
    const flag = ['flag', '--policy', 'vma-range', '--subsystem', 'pkeys', '--variant', 'converted', '--schedules', String(schedules), '--json'];
    const dirs: string[] = [];
    for (const s of shards) {
      const d = join(dir, `${name}-${s.replace('/', 'of')}`);
      const r = await cli(...flag, '--shard', s, '--out', d);
      expect(r.code, r.err).toBe(ExitCode.ok);
      expect(JSON.parse(r.out)).toMatchObject({ shard: s, searches: 1 });
      dirs.push(d);
    }
    return dirs;
  }

  it('should refuse each with one clear line, exit 2, and write nothing', async () => {
    const dir = tmp();
    const [a1, a2, a3] = await flagShards(dir, 'a', ['1/3', '2/3', '3/3']);
    const [b2] = await flagShards(dir, 'b', ['2/3'], 5);
    const [c1] = await flagShards(dir, 'c', ['1/2']);
    const plan = join(dir, 'small.yaml');
    writeFileSync(plan, SMALL);
    const [r1] = await smallShards(dir, plan);
    const empty = join(dir, 'empty');
    const garbled = join(dir, 'garbled');
    const future = join(dir, 'future');
    const tampered = join(dir, 'tampered');
    for (const d of [empty, garbled, future, tampered]) mkdirSync(d);
    writeFileSync(join(garbled, 'shard.json'), '{"format":"vmalock-shard","version":1,"command":"flag","shard":{"index":1,"count":1}}');
    writeFileSync(join(future, 'shard.json'), '{"format":"vmalock-shard","version":2}');
    const file = JSON.parse(readFileSync(join(a2!, 'shard.json'), 'utf8')) as { searches: { from: number }[] };
    file.searches[0]!.from = 0;
    writeFileSync(join(tampered, 'shard.json'), JSON.stringify(file));
    const cases: [string[], string][] = [
      [[a1!, a3!], `merge: shard 2/3 missing (given: 1/3, 3/3)`],
      [[a1!], `merge: shards 2/3, 3/3 missing (given: 1/3)`],
      [[a1!, a2!, a2!, a3!], `merge: shard 2/3 is given twice ('${a2}' and '${a2}')`],
      [[a1!, b2!, a3!], `merge: '${b2}' is a shard of another run than '${a1}' (schedules: 4 vs 5)`],
      [[a1!, c1!], `merge: '${c1}' is a shard of another run than '${a1}' (shard count: 3 vs 2)`],
      [[a1!, r1!], `merge: '${r1}' is a shard of another run than '${a1}' (command: "flag" vs "run")`],
      [[a1!, tampered, a3!], `merge: '${tampered}' (shard 2/3): search 'pkeys converted' covers [0, 2), expected [1, 2)`],
      [[empty], `merge: '${empty}' holds no shard.json (not the --out directory of a vmalock run|flag --shard i/n)`],
      [[join(dir, 'nowhere')], `merge: '${join(dir, 'nowhere')}' is not a directory (give the --out directories of the shards)`],
      [[garbled], `merge: ${join(garbled, 'shard.json')}: not a shard file: searches: Invalid input: expected array, received undefined`],
      [[future], `merge: ${join(future, 'shard.json')}: shard file version 2; this vmalock reads version 1`],
      [[a1!, a2!, a3!, '--out', join(dir, 'report')], 'merge: --out is for the shards of vmalock run; flag shards merge into the verdicts on stdout'],
    ];
    for (const [argv, message] of cases) {
      const r = await cli('merge', ...argv);
      expect([r.code, r.err, r.out], argv.join(' ')).toEqual([ExitCode.badInput, `vmalock: ${message}\n`, '']);
    }
    expect(existsSync(join(dir, 'report'))).toBe(false);
  });

  it('should refuse a plan that changed since the shards ran it, and write nothing', async () => {
    const dir = tmp();
    const plan = join(dir, 'small.yaml');
    writeFileSync(plan, SMALL);
    const dirs = await smallShards(dir, plan);
    writeFileSync(plan, SMALL.replace('schedules: 20', 'schedules: 21'));
    const r = await cli('merge', ...dirs, '--out', join(dir, 'report'));
    expect([r.code, r.err, r.out]).toEqual([ExitCode.badInput, `vmalock: merge: the plan '${plan}' is not the one the shards ran (it changed since)\n`, '']);
    expect(existsSync(join(dir, 'report'))).toBe(false);
  });
});

describe('--shard, having bad values', () => {
  it.each([
    [['run', '--shard', '3/2'], "--shard: expected i/n with 1 <= i <= n, got '3/2'"],
    [['run', '--shard', '0/4'], "--shard: expected i/n with 1 <= i <= n, got '0/4'"],
    [['run', '--shard', 'two/4'], "--shard: expected i/n with 1 <= i <= n, got 'two/4'"],
    [['run', '--shard', '1/2000'], "--shard: at most 1024 shards, got '1/2000'"],
    [['flag', '--policy', 'vma-range', '--shard', '3/2'], "--shard: expected i/n with 1 <= i <= n, got '3/2'"],
    [['flag', '--policy', 'vma-range', '--shard', '2'], "--shard: expected i/n with 1 <= i <= n, got '2'"],
  ])('should exit 2 with one clear line for %j, writing nothing', async (argv, message) => {
    const out = join(tmp(), 'out');
    const r = await cli(...argv, '--out', out);
    expect([r.code, r.err, r.out]).toEqual([ExitCode.badInput, `vmalock: ${message}\n`, '']);
    expect(existsSync(out)).toBe(false);
  });

  it.each([
    [['run', '--shard', '1/2'], '--shard needs --out DIR: a shard writes its part (shard.json) there, for vmalock merge'],
    [['flag', '--policy', 'vma-range', '--shard', '1/2'], '--shard needs --out DIR: a shard writes its part (shard.json) there, for vmalock merge'],
    [['flag', '--policy', 'vma-range', '--out', 'x'], "--out writes a shard's part: give --shard i/n too"],
    [
      ['flag', '--policy', 'vma-range', '--subsystem', 'pkeys', '--seed', '1', '--schedule', '0*5', '--shard', '1/2', '--out', 'x'],
      '--shard splits a search over many schedules; --seed and --schedule replay one run',
    ],
  ])('should exit 2 with one clear line for %j', async (argv, message) => {
    const r = await cli(...argv);
    expect([r.code, r.err, r.out]).toEqual([ExitCode.badInput, `vmalock: ${message}\n`, '']);
    expect(existsSync('x')).toBe(false);
  });
});
