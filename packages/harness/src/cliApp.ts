import { writeFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type RunOptions, type StrategyName, perfettoJson, strategyNames } from '@vmalock/core';
import yargs from 'yargs';
import { type DemoParams, type DemoRun, defaultDemoParams, demoScalingThreads, runDemo } from './demo.js';

/** Exit codes of every vmalock command. */
export const ExitCode = { ok: 0, gateFailed: 1, badInput: 2, internal: 3 } as const;

/** Where a command writes; tests pass their own. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** A bad argument or input: one clear line, exit 2. */
export class UsageError extends Error {}

const version = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/** Write `text` to `file` whole or not at all (a temporary file renamed into place). */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function positiveInt(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`--${name} must be an integer in 1..${max}, got '${String(value)}'`);
  return n;
}

function seedOf(value: unknown): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--seed must be a non-negative integer, got '${String(value)}'`);
  return n;
}

/** The command line that replays a demo run exactly. */
export function demoReplayCommand(run: DemoRun, params: DemoParams, cpus: number): string {
  return `npm run -s vmalock -- demo --threads ${params.faulters} --cpus ${cpus} --seed ${run.result.seed} --strategy replay --schedule '${run.result.schedule}'`;
}

interface DemoArgs {
  seed: unknown;
  strategy: string;
  threads: unknown;
  cpus: unknown;
  schedule: string | undefined;
  'pct-depth': unknown;
  'trace-out': string | undefined;
  json: boolean;
}

function demoCommand(args: DemoArgs, io: CliIo): number {
  const seed = seedOf(args.seed);
  if (!(strategyNames as readonly string[]).includes(args.strategy)) {
    throw new UsageError(`--strategy: unknown strategy '${args.strategy}' (expected one of ${strategyNames.join(', ')})`);
  }
  const strategy = args.strategy as StrategyName;
  if (strategy === 'replay' && args.schedule === undefined) throw new UsageError('--strategy replay needs --schedule');
  const pctDepth = positiveInt('pct-depth', args['pct-depth'], 16);
  const single = args.threads !== undefined || strategy !== 'timed' || args['trace-out'] !== undefined;
  const faulterCounts = single ? [positiveInt('threads', args.threads ?? defaultDemoParams.faulters, 1023)] : [...demoScalingThreads];
  const cpusFixed = args.cpus === undefined ? null : positiveInt('cpus', args.cpus, 65536);

  const runs: { run: DemoRun; params: DemoParams; cpus: number }[] = [];
  for (const faulters of faulterCounts) {
    const params: DemoParams = { ...defaultDemoParams, faulters };
    const cpus = cpusFixed ?? faulters + 1;
    const options: RunOptions = {
      seed,
      strategy,
      cpus,
      pctDepth,
      pctSteps: faulters * defaultDemoParams.faultsPerThread * 4 + 200,
      trace: args['trace-out'] !== undefined,
      ...(args.schedule !== undefined ? { schedule: args.schedule } : {}),
    };
    let run: DemoRun;
    try {
      run = runDemo(params, options);
    } catch (e) {
      // A malformed schedule or option is the user's input.
      if (e instanceof SyntaxError || e instanceof RangeError) throw new UsageError(e.message);
      throw e;
    }
    runs.push({ run, params, cpus });
  }

  const traceOut = args['trace-out'];
  if (traceOut !== undefined) {
    const trace = runs[0]!.run.result.trace!;
    writeFileAtomic(traceOut, perfettoJson(trace, { processName: 'vmalock demo' }));
  }

  const base = runs[0]!.run.faultsPerSimSec;
  if (args.json) {
    const json = {
      seed,
      strategy,
      runs: runs.map(({ run, params, cpus }) => ({
        faulters: params.faulters,
        cpus,
        status: run.result.status,
        steps: run.result.steps,
        simTimeNs: run.result.simTimeNs,
        faultsPerSimSec: run.faultsPerSimSec,
        speedup: base !== null && run.faultsPerSimSec !== null && !single ? run.faultsPerSimSec / base : null,
        mmapSemContended: run.mmapSemContended,
        mmapSemWaitNsMean: run.mmapSemWaitNsMean,
        failure: run.result.failure,
        ...(run.result.status !== 'ok' ? { replay: demoReplayCommand(run, params, cpus) } : {}),
      })),
    };
    io.out(`${JSON.stringify(json)}\n`);
  } else {
    io.out(`seed=${seed} strategy=${strategy}\n`);
    io.out('Page faults (mmap_sem read) against one mmap thread (mmap_sem write), simulated:\n\n');
    const header = ['fault threads', 'status', 'steps', 'sim time', 'faults/sim s', 'speed-up', 'mmap_sem waits', 'mean wait'];
    const rows = runs.map(({ run }) => [
      String(run.faulters),
      run.result.status,
      String(run.result.steps),
      strategy === 'timed' ? `${(run.result.simTimeNs / 1e6).toFixed(3)} ms` : '-',
      run.faultsPerSimSec === null ? '-' : `${(run.faultsPerSimSec / 1e6).toFixed(2)}M`,
      base === null || run.faultsPerSimSec === null || single ? '-' : `${(run.faultsPerSimSec / base).toFixed(2)}x`,
      String(run.mmapSemContended),
      strategy === 'timed' ? `${(run.mmapSemWaitNsMean / 1000).toFixed(2)} us` : '-',
    ]);
    io.out(formatTable(header, rows));
    if (!single) {
      io.out('\nThe fault threads only take mmap_sem for read, yet throughput flattens: every down_read\n');
      io.out("and up_read is an atomic on the semaphore's one cache line, which bounces between CPUs.\n");
    }
    if (traceOut !== undefined) io.out(`\nPerfetto trace written to ${traceOut} (open it in ui.perfetto.dev)\n`);
  }
  let exit: number = ExitCode.ok;
  for (const { run, params, cpus } of runs) {
    if (run.result.status === 'ok') continue;
    exit = ExitCode.gateFailed;
    io.err(`${run.result.summary}\nreplay: ${demoReplayCommand(run, params, cpus)}\n`);
  }
  return exit;
}

/** Render rows as an aligned text table. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return `${[line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`;
}

/**
 * Run the vmalock command line on `argv` (without `node` and the script). Returns the exit code;
 * never calls `process.exit`, so tests run it in process.
 */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let exitCode: number = ExitCode.ok;
  let handled = false;
  const parser = yargs([...argv])
    .scriptName('vmalock')
    .version(version)
    .strict()
    .exitProcess(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .usage('vmalock: a laboratory for taking mmap_sem out of the Linux memory manager safely\n\nUsage: $0 <command> [options]')
    .command(
      'demo',
      'Run a small engine scenario: page faults against mmap on one mmap_sem',
      (y) =>
        y
          .option('seed', { type: 'number', default: 1, describe: 'The one seed every random choice derives from' })
          .option('strategy', { type: 'string', default: 'timed', describe: `Scheduling strategy: ${strategyNames.join(', ')}` })
          .option('threads', { type: 'number', describe: 'Fault threads (one run); default: a scaling table over 1..64' })
          .option('cpus', { type: 'number', describe: 'Simulated CPUs (default: one per thread)' })
          .option('schedule', { type: 'string', describe: 'The schedule to replay (with --strategy replay)' })
          .option('pct-depth', { type: 'number', default: 3, describe: 'PCT bug depth d' })
          .option('trace-out', { type: 'string', describe: 'Write a Perfetto/Chrome trace of the run to this file' })
          .option('json', { type: 'boolean', default: false, describe: 'One JSON object on stdout' })
          .example('$0 demo', 'The scaling table under the timed strategy')
          .example('$0 demo --threads 4 --trace-out demo.json', 'One run, with a timeline to open in ui.perfetto.dev')
          .example('$0 demo --threads 3 --strategy pct --seed 7', 'One run under PCT'),
      (args) => {
        handled = true;
        exitCode = demoCommand(args, io);
      },
    )
    .demandCommand(1, 'Name a command (see --help)')
    .help()
    .alias('h', 'help')
    .alias('V', 'version')
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
  try {
    await parser.parseAsync();
  } catch (e) {
    if (e instanceof UsageError || (e instanceof Error && e.name === 'YError')) {
      io.err(`vmalock: ${e.message}\n`);
      return ExitCode.badInput;
    }
    io.err(`vmalock: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return ExitCode.internal;
  }
  if (!handled) return ExitCode.ok; // --help or --version printed by yargs
  return exitCode;
}
