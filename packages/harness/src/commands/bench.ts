import { policyNames } from '@vmalock/policies';
import { type BenchRow, benchScaling } from '../bench/benchScaling.js';
import { profileNames } from '@vmalock/core';
import { type CliIo, ExitCode, UsageError, formatTable, seedOf } from '../cliSupport.js';
import { parseWorkloadParams, workloadByName, workloadNames } from '../workloads/registry.js';
import { WorkloadParamsError } from '../workloads/workload.js';

/** Arguments of `vmalock bench`. */
export interface BenchArgs {
  /** Comma-separated policies; undefined: every policy. */
  readonly policies: string | undefined;
  readonly workload: string;
  /** The workload's params as a JSON object; undefined: all defaults. */
  readonly params: string | undefined;
  /** Comma-separated thread counts; undefined: 1,2,4,8 (1 for a workload that brings its own threads). */
  readonly threads: string | undefined;
  readonly seed: number;
  readonly profile?: string | undefined;
  readonly json: boolean;
}

/** The most threads one point may have (each thread gets its own simulated CPU). */
export const BENCH_THREADS_MAX = 4096;

const DEFAULT_THREADS = '1,2,4,8';

/** `a,b,c` to its items; an empty item is an error naming the option. */
function listOf(option: string, text: string): string[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new UsageError(`--${option}: an empty item in '${text}' (expected items separated by commas)`);
  const twice = items.find((s, i) => items.indexOf(s) !== i);
  if (twice !== undefined) throw new UsageError(`--${option}: '${twice}' is given twice in '${text}'`);
  return items;
}

/** `1,2,4` to thread counts, each an integer in 1..BENCH_THREADS_MAX. */
export function parseThreadCounts(text: string): number[] {
  return listOf('threads', text).map((s) => {
    const n = /^\d+$/.test(s) ? Number(s) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < 1 || n > BENCH_THREADS_MAX)
      throw new UsageError(`--threads: '${s}' is not a thread count (expected integers 1..${BENCH_THREADS_MAX} separated by commas, got '${text}')`);
    return n;
  });
}

function paramsOf(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--params: not JSON (${e instanceof Error ? e.message : String(e)}): '${text}'`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new UsageError(`--params: expected a JSON object like '{"pagesPerThread": 64}', got '${text}'`);
  return raw;
}

/** Ops per second as bench:policies prints them: 1.25M, 312.4K, 980. */
function rate(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return n.toFixed(0);
}

/** One cell: throughput (speed-up), or how the run ended when it did not end ok. */
function cell(r: BenchRow): string {
  if (r.throughput === null) return r.status === 'ok' ? 'no ops' : r.status;
  return `${rate(r.throughput)} (${r.speedup === null ? '-' : `${r.speedup.toFixed(2)}x`})`;
}

/**
 * `vmalock bench [--policies a,b] [--workload W] [--params JSON] [--threads 1,2,4] [--seed N]
 * [--json]`: the scaling table of a workload under each policy (`benchScaling`). Exits 0 when it
 * ran (a run that breaks under a policy is a result, shown in its cell), 2 on bad input.
 */
export function benchCommand(args: BenchArgs, io: CliIo): number {
  const policies = args.policies === undefined ? policyNames() : listOf('policies', args.policies);
  for (const p of policies) if (!policyNames().includes(p)) throw new UsageError(`--policies: unknown policy '${p}' (known: ${policyNames().join(', ')})`);
  if (!workloadNames().includes(args.workload as never))
    throw new UsageError(`--workload: unknown workload '${args.workload}' (known: ${workloadNames().join(', ')})`);
  const workload = workloadByName(args.workload);
  const threads = parseThreadCounts(args.threads ?? (workload.threadsFrom === 'workload' ? '1' : DEFAULT_THREADS));
  if (workload.threadsFrom === 'workload' && (threads.length !== 1 || threads[0] !== 1))
    throw new UsageError(
      `--threads: workload '${workload.name}' brings its own threads (one per traced tid), so it has no thread scaling: give --threads 1 (or leave it out) to compare policies`,
    );
  const seed = seedOf(args.seed);
  const profile = args.profile ?? 'default';
  if (!profileNames().includes(profile)) throw new UsageError(`--profile: unknown machine profile '${profile}' (known: ${profileNames().join(', ')})`);
  const raw = paramsOf(args.params);
  let params: unknown;
  let rows: BenchRow[];
  try {
    params = parseWorkloadParams(workload.name, raw);
    const tty = process.stderr.isTTY === true;
    rows = benchScaling({
      policies,
      workload: workload.name,
      params: raw,
      threads,
      seed,
      profile,
      ...(tty ? { progress: (done: number, total: number, p: string, t: number) => io.err(`\r\x1b[Kbench: ${done}/${total} (${p}, ${t} threads)`) } : {}),
    });
    if (tty) io.err('\r\x1b[K');
  } catch (e) {
    if (e instanceof WorkloadParamsError) throw new UsageError(`--params: ${e.message}`);
    throw e;
  }
  if (args.json) {
    io.out(
      `${JSON.stringify({ workload: workload.name, params, seed, profile, rows: rows.map((r) => ({ policy: r.policy, threads: r.threads, throughput: r.throughput, speedup: r.speedup, status: r.status })) })}\n`,
    );
    return ExitCode.ok;
  }
  const base = Math.min(...threads);
  io.out(
    `bench ${workload.name} ${JSON.stringify(params)}, seed ${seed}, strategy timed, machine profile ${profile}\nops per simulated second (speed-up over ${base} thread${base === 1 ? '' : 's'}); an op: ${workload.op}\n\n`,
  );
  io.out(
    formatTable(
      ['threads', ...policies],
      threads.map((t) => [String(t), ...policies.map((p) => cell(rows.find((r) => r.policy === p && r.threads === t)!))]),
    ),
  );
  return ExitCode.ok;
}
