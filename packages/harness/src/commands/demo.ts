import { type RunOptions, type StrategyName, perfettoJson, strategyNames } from '@vmalock/core';
import { type CliIo, ExitCode, UsageError, formatTable, positiveInt, seedOf, writeFileAtomic } from '../cliSupport.js';
import { type DemoParams, type DemoRun, defaultDemoParams, demoScalingThreads, runDemo } from '../demo.js';

/** The command line that replays a demo run exactly. */
export function demoReplayCommand(run: DemoRun, params: DemoParams, cpus: number): string {
  return `npm run -s vmalock -- demo --threads ${params.faulters} --cpus ${cpus} --seed ${run.result.seed} --strategy replay --schedule '${run.result.schedule}'`;
}

export interface DemoArgs {
  seed: unknown;
  strategy: string;
  threads: unknown;
  cpus: unknown;
  schedule: string | undefined;
  'pct-depth': unknown;
  'trace-out': string | undefined;
  json: boolean;
}

export function demoCommand(args: DemoArgs, io: CliIo): number {
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
