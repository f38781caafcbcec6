import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { profileNames } from '@vmalock/core';
import { type CliIo, ExitCode, UsageError, formatTable, positiveInt, progressBar, seedOf } from '../cliSupport.js';
import { DEFAULT_PLAN_YAML } from '../plan/defaultPlan.js';
import { type LoadedPlan, PlanError, loadResolvedPlan, parsePlan } from '../plan/load.js';
import { resolvePlan } from '../plan/resolve.js';
import { type HtmlReportExtra, renderHtmlReport } from '../report/html.js';
import { type PlanRunResult, findingTraces, runPlan } from '../run/runPlan.js';
import { type PlanPrecomputedSource, planShard } from '../shard/planShard.js';
import { parseShard } from '../shard/shard.js';
import { writeShard } from '../shard/shardFile.js';

/** Arguments of `vmalock run`. */
export interface RunArgs {
  /** The plan file; undefined: the built-in default plan. */
  readonly plan: string | undefined;
  readonly seed: number | undefined;
  readonly keepGoing: boolean;
  readonly jobs: number;
  readonly out: string | undefined;
  readonly json: boolean;
  readonly quiet: boolean;
  /** `--shard i/n`: run this slice of the finding searches and write it (shard.json) into `out`, for `vmalock merge`. */
  readonly shard?: string | undefined;
  /** `--profile NAME`: the machine profile whose costs every run uses (default `default`). */
  readonly profile?: string | undefined;
}

/** The version of report.json's layout. */
export const REPORT_VERSION = 1;

/**
 * `vmalock run [plan]`: run a conversion plan (the built-in default without one), phase by
 * phase, and print a table per phase (or, with `--json`, one object). Exit 0 when every blocking
 * gate passed, 1 when one failed, 2 on a bad plan or argument. `--out DIR` writes report.json,
 * junit.xml, index.html and each finding's Perfetto timeline (traces/<id>.json), all or nothing.
 */
export async function runCommand(args: RunArgs, io: CliIo, merged?: PlanPrecomputedSource): Promise<number> {
  const jobs = positiveInt('jobs', args.jobs, 256);
  const seed = args.seed === undefined ? undefined : seedOf(args.seed);
  const shard = args.shard === undefined ? undefined : parseShard(args.shard);
  if (shard !== undefined && args.out === undefined)
    throw new UsageError('--shard needs --out DIR: a shard writes its part (shard.json) there, for vmalock merge');
  const profile = args.profile ?? 'default';
  if (!profileNames().includes(profile)) throw new UsageError(`--profile: unknown machine profile '${profile}' (known: ${profileNames().join(', ')})`);
  if (profile !== 'default' && (shard !== undefined || merged !== undefined))
    throw new UsageError('--profile: shards run on the default profile only (for now); run without --shard');
  if (args.out !== undefined) checkOutDir(args.out);
  let loaded: Pick<LoadedPlan, 'resolved' | 'subsystemFiles'>;
  try {
    loaded =
      args.plan === undefined
        ? { resolved: resolvePlan(parsePlan(DEFAULT_PLAN_YAML, '<built-in default plan>')), subsystemFiles: new Map() }
        : await loadResolvedPlan(args.plan);
  } catch (e) {
    if (e instanceof PlanError) throw new UsageError(e.firstLine);
    throw e;
  }
  // A progress bar on a terminal (stderr): the phase being run, of all of them, and what it does.
  const bar = progressBar('run', args.quiet);
  const phaseNames = loaded.resolved.phases.map((p) => p.name);
  const progress = (m: string): void => {
    const phase = /^phase (\S+): /.exec(m)?.[1];
    const at = phase === undefined ? phaseNames.length : phaseNames.indexOf(phase);
    bar.update(Math.max(at, 0), phaseNames.length, m);
  };
  if (shard !== undefined) {
    const file = await planShard(
      loaded,
      { planFile: args.plan ?? null, seedArg: seed ?? null, keepGoing: args.keepGoing },
      seed ?? loaded.resolved.seed,
      shard,
      jobs,
      (m) => progress(m),
    );
    bar.stop();
    return writeShard(args.out!, file, io, args);
  }
  const result = await runPlan(loaded.resolved, {
    profile,
    ...(seed !== undefined ? { seed } : {}),
    keepGoing: args.keepGoing,
    jobs,
    // The report's throughput-against-threads chart.
    scaling: args.out !== undefined,
    subsystemFiles: loaded.subsystemFiles,
    progress: (m: string) => progress(m),
    // `vmalock merge`: what the shards computed.
    ...(merged !== undefined ? { precomputed: merged(loaded, seed ?? loaded.resolved.seed) } : {}),
  });
  bar.stop();
  const json = runJson(result);
  if (args.out !== undefined)
    writeReport(
      args.out,
      result,
      {
        scaling: result.scaling,
        lockWaits: result.phases.flatMap((p) =>
          p.lockWaits.map((w) => ({ phase: p.name, policy: p.policy, lock: w.lockClass, p50Ns: w.p50Ns, p90Ns: w.p90Ns, p99Ns: w.p99Ns })),
        ),
      },
      // Each finding's replay as a Perfetto timeline, its steps marked: traces/<id>.json.
      findingTraces(result, loaded.resolved, loaded.subsystemFiles),
    );
  if (args.json) io.out(`${JSON.stringify(json)}\n`);
  else if (!args.quiet) io.out(formatRun(result));
  return result.passed ? ExitCode.ok : ExitCode.gateFailed;
}

/** The `--json` object (the issue's layout), also the core of report.json. */
export function runJson(r: PlanRunResult) {
  return {
    plan: r.plan,
    seed: r.seed,
    profile: r.profile,
    passed: r.passed,
    phases: r.phases.map((p) => ({
      name: p.name,
      status: p.status,
      policy: p.policy,
      processes: p.processes.map((x) => ({
        name: x.name,
        policy: x.policy,
        throughput: x.throughput,
        speedupOverBaseline: x.speedupOverBaseline,
        converted: x.converted,
        legacy: x.legacy,
      })),
      findings: p.findings.map((f) => ({
        id: f.id,
        kind: f.kind,
        subsystem: f.subsystem,
        variant: f.variant,
        policy: f.policy,
        declared: f.declared,
        replay: f.replay,
      })),
      gates: p.gates.map((g) => ({ name: g.name, kind: g.kind, blocking: g.blocking, passed: g.passed, detail: g.detail })),
      lockWaits: p.lockWaits,
    })),
    scaling: r.scaling,
  };
}

/** The console report: a table per phase, its findings and gates. */
export function formatRun(r: PlanRunResult): string {
  const out: string[] = [`plan ${r.plan}, seed ${r.seed}, machine profile ${r.profile}\n`];
  for (const p of r.phases) {
    out.push(`\nphase ${p.name} (${p.policy}): ${p.status}\n`);
    if (p.processes.length > 0)
      out.push(
        formatTable(
          ['process', 'policy', 'throughput (ops/s)', 'vs baseline', 'converted'],
          p.processes.map((x) => [
            x.name,
            x.policy,
            x.throughput === null ? '-' : Math.round(x.throughput).toLocaleString('en-US'),
            x.speedupOverBaseline === null ? '-' : `${x.speedupOverBaseline.toFixed(2)}x`,
            x.converted.length === 0 ? 'none' : x.converted.length === x.converted.length + x.legacy.length ? 'all' : x.converted.join(','),
          ]),
        ),
      );
    if (p.findings.length > 0) {
      out.push(`findings (${p.findings.length}):\n`);
      for (const f of p.findings)
        out.push(`  ${f.id}  ${f.subsystem} ${f.variant} under ${f.policy}${f.declared === false ? ' (undeclared)' : ''}\n    replay: ${f.replay}\n`);
    }
    for (const g of p.gates) out.push(`  gate ${g.name}${g.blocking ? '' : ' (non-blocking)'}: ${g.passed ? 'passed' : 'FAILED'} — ${g.detail}\n`);
  }
  out.push(`\n${r.passed ? 'passed' : 'FAILED'}: ${r.phases.filter((p) => p.status === 'passed').length} of ${r.phases.length} phases passed\n`);
  return out.join('');
}

/** `--out DIR` must be a directory that does not exist yet or is empty (a report is never mixed with another). */
export function checkOutDir(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new UsageError(`--out: '${dir}' exists and is not empty (give a new or empty directory)`);
  if (!existsSync(dirname(resolve(dir)))) throw new UsageError(`--out: the parent of '${dir}' does not exist`);
}

/**
 * Write report.json, junit.xml and index.html into `dir` all at once: every file is rendered
 * first, then written into a sibling directory that is renamed into place.
 */
function writeReport(dir: string, r: PlanRunResult, extra: HtmlReportExtra = {}, traces: ReadonlyMap<string, string> = new Map()): void {
  const files: [string, string][] = [
    ['report.json', `${JSON.stringify({ version: REPORT_VERSION, ...runJson(r), evidence: evidenceOf(r) }, null, 2)}\n`],
    ['junit.xml', junitXml(r)],
    ['index.html', renderHtmlReport(r, { ...extra, traces: [...traces.keys()] })],
    ...[...traces].map(([id, json]): [string, string] => [join('traces', `${id}.json`), json]),
  ];
  const target = resolve(dir);
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    if (traces.size > 0) mkdirSync(join(tmp, 'traces'));
    for (const [name, text] of files) writeFileSync(join(tmp, name), text);
    if (existsSync(target)) rmSync(target, { recursive: true });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

function evidenceOf(r: PlanRunResult): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of r.phases) for (const f of p.findings) out[f.id] ??= f.evidence;
  return out;
}

const xml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** JUnit XML: a test suite per phase, a test case per gate (a blocked phase's gates are skipped). */
export function junitXml(r: PlanRunResult): string {
  const cases = r.phases.flatMap((p) => p.gates.map((g) => ({ p, g })));
  const failures = cases.filter(({ p, g }) => p.status !== 'blocked' && !g.passed && g.blocking).length;
  const skipped = cases.filter(({ p, g }) => p.status === 'blocked' || (!g.passed && !g.blocking)).length;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${xml(`vmalock plan ${r.plan}`)}" tests="${cases.length}" failures="${failures}" skipped="${skipped}">`,
  ];
  for (const p of r.phases) {
    const f = p.gates.filter((g) => p.status !== 'blocked' && !g.passed && g.blocking).length;
    lines.push(
      `  <testsuite name="${xml(p.name)}" tests="${p.gates.length}" failures="${f}" skipped="${p.gates.filter((g) => p.status === 'blocked' || (!g.passed && !g.blocking)).length}">`,
    );
    for (const g of p.gates) {
      lines.push(`    <testcase classname="${xml(`${r.plan}.${p.name}`)}" name="${xml(g.name)}">`);
      if (p.status === 'blocked') lines.push(`      <skipped message="${xml(g.detail)}"/>`);
      // A non-blocking gate (an experiment) reports what it found without failing the build.
      else if (!g.passed && !g.blocking) lines.push(`      <skipped message="${xml(`non-blocking gate failed: ${g.detail}`)}"/>`);
      else if (!g.passed) lines.push(`      <failure message="${xml(g.detail)}" type="gate">${xml(g.detail)}</failure>`);
      lines.push('    </testcase>');
    }
    lines.push('  </testsuite>');
  }
  lines.push('</testsuites>', '');
  return lines.join('\n');
}
