import { createRequire } from 'node:module';
import { strategyNames } from '@vmalock/core';
import yargs from 'yargs';
import { type CliIo, ExitCode, UsageError, processIo } from './cliSupport.js';
import { demoCommand } from './commands/demo.js';
import { diffCommand } from './commands/diff.js';
import { diffWorkloadNames } from './diff/workloads.js';
import { flagCommand } from './commands/flag.js';
import { mergeCommand } from './commands/merge.js';
import { runCommand } from './commands/run.js';
import { planInitCommand, planSchemaCommand, planValidateCommand } from './commands/plan.js';
import { subsystemsCommand } from './commands/subsystems.js';
import { traceReplayCommand } from './commands/traceReplay.js';
import { benchCommand } from './commands/bench.js';
import { replayCommand } from './commands/replay.js';
import { traceImportCommand } from './commands/traceImport.js';
import { workloadNames } from './workloads/registry.js';

export { type CliIo, ExitCode, UsageError, formatTable, writeFileAtomic } from './cliSupport.js';

const version = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

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
      'run [plan]',
      'Run a conversion plan phase by phase (the built-in default without one): throughput, findings, gates',
      (y) =>
        y
          .positional('plan', { type: 'string', describe: 'A plan file (.yaml, .yml or .json; docs/plans.md); default: the built-in plan' })
          .option('seed', { type: 'number', describe: "Override the plan's seed" })
          .option('profile', { type: 'string', default: 'default', describe: 'The machine profile whose costs the runs use (docs/fidelity.md)' })
          .option('keep-going', { type: 'boolean', default: false, describe: 'Run the phases after a failed blocking gate instead of blocking them' })
          .option('jobs', { type: 'number', default: 1, describe: 'Worker threads for the finding search (same results for any number)' })
          .option('out', { type: 'string', describe: 'Write report.json, junit.xml, index.html and traces/<finding>.json into this new (or empty) directory' })
          .option('json', { type: 'boolean', default: false, describe: 'One JSON object on stdout' })
          .option('quiet', { type: 'boolean', default: false, describe: 'No table, no progress: only the exit code (and --json/--out)' })
          .option('shard', {
            type: 'string',
            describe: 'Run slice i of n of every finding search and write it (shard.json) into --out, for vmalock merge (e.g. 2/4)',
          })
          .example('$0 run', 'The built-in staged conversion: baseline, hybrid, an opt-in experiment, conversions, mmap_sem removed')
          .example('$0 run my-plan.yaml --out report/ --jobs 2', 'Your plan, with the HTML report, report.json and junit.xml for CI')
          .example('$0 plan init my-plan.yaml', 'Start your own plan from the commented default')
          .example('$0 run my-plan.yaml --shard 2/4 --out shard-2/', 'One of four machines: its part, joined later by vmalock merge'),
      async (args) => {
        handled = true;
        exitCode = await runCommand(
          {
            plan: args.plan,
            seed: args.seed,
            keepGoing: args['keep-going'],
            jobs: args.jobs,
            out: args.out,
            json: args.json,
            quiet: args.quiet,
            shard: args.shard,
            profile: args.profile,
          },
          io,
        );
      },
    )
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
    .command(
      'flag',
      'Run each subsystem, legacy and converted, under a policy over many schedules; print the verdicts and findings',
      (y) =>
        y
          .option('policy', { type: 'string', demandOption: true, describe: 'The lock policy to judge the subsystems under' })
          .option('subsystem', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe: 'A subsystem by name, or a .js file (repeatable; default all)',
          })
          .option('variant', { type: 'string', describe: 'Only legacy or only converted' })
          .option('schedules', { type: 'number', default: 200, describe: 'PCT schedules per subsystem variant' })
          .option('pct-depth', { type: 'number', default: 3, describe: 'PCT bug depth d' })
          .option('strategy', {
            type: 'string',
            default: 'portfolio',
            describe: 'How schedules are chosen: portfolio (PCT on even seeds, random on odd), pct, random, or bounded (bounded-preemption search)',
          })
          .option('preemptions', { type: 'number', default: 2, describe: 'bounded: the most preemptions a schedule may have' })
          .option('jobs', { type: 'number', default: 1, describe: 'Worker threads (the verdicts are the same for any number)' })
          .option('seed', { type: 'number', describe: 'Replay one run: its seed (with --schedule)' })
          .option('schedule', { type: 'string', describe: 'Replay one run: its recorded schedule (with --seed)' })
          .option('trace', { type: 'string', describe: "With a replay: write its Perfetto timeline, the finding's steps marked, to this file" })
          .option('json', { type: 'boolean', default: false, describe: 'One JSON object on stdout' })
          .option('shard', { type: 'string', describe: 'Run slice i of n of every search and write it (shard.json) into --out, for vmalock merge (e.g. 2/4)' })
          .option('out', { type: 'string', describe: "With --shard: the new (or empty) directory for the shard's part" })
          .example('$0 flag --policy vma-range', 'Which subsystems break without mmap_sem')
          .example('$0 flag --policy per-vma --subsystem khugepaged --schedules 1000 --jobs 2 --json', 'One subsystem, deeper, on two worker threads')
          .example('$0 flag --policy vma-range --subsystem gem --strategy bounded --preemptions 2', 'Every schedule with at most 2 preemptions')
          .example("$0 flag --policy vma-range --subsystem pkeys --variant legacy --seed 3 --schedule '0*5.1*4'", 'Replay a finding')
          .example(
            "$0 flag --policy vma-range --subsystem pkeys --variant legacy --seed 3 --schedule '0*5.1*4' --trace f.json",
            'Replay it and write its timeline',
          ),
      async (args) => {
        handled = true;
        exitCode = await flagCommand(
          {
            policy: args.policy,
            subsystem: args.subsystem,
            variant: args.variant,
            schedules: args.schedules,
            pctDepth: args['pct-depth'],
            strategy: args.strategy,
            preemptions: args.preemptions,
            jobs: args.jobs,
            seed: args.seed,
            schedule: args.schedule,
            trace: args.trace,
            json: args.json,
            shard: args.shard,
            out: args.out,
          },
          io,
        );
      },
    )
    .command(
      'merge <dirs..>',
      'Join the shards of one run or flag (each written by --shard i/n --out DIR) into the report the unsharded command gives',
      (y) =>
        y
          .positional('dirs', { type: 'string', array: true, demandOption: true, describe: "The shards' --out directories, every shard 1..n once, any order" })
          .option('out', { type: 'string', describe: 'Run shards: write report.json, junit.xml and index.html into this new (or empty) directory' })
          .option('json', { type: 'boolean', default: false, describe: 'One JSON object on stdout, as the unsharded command prints' })
          .option('quiet', { type: 'boolean', default: false, describe: 'Run shards: no table, only the exit code (and --json/--out)' })
          .example('$0 merge shard-1/ shard-2/ shard-3/ shard-4/ --out report/', 'The plan run of four machines: its report and exit code')
          .example('$0 merge flag-1/ flag-2/ --json', 'A sharded flag: the verdicts, as one unsharded flag prints them'),
      async (args) => {
        handled = true;
        exitCode = await mergeCommand({ dirs: args.dirs, out: args.out, json: args.json, quiet: args.quiet }, io);
      },
    )
    .command(
      'diff',
      'Run one workload and seed under two policies and report their first divergence (result, user-visible expectation, finding, state)',
      (y) =>
        y
          .option('policies', { type: 'string', demandOption: true, describe: 'Two policies, the baseline first: A,B' })
          .option('workload', { type: 'string', default: 'random', describe: `The workload: ${diffWorkloadNames().join(', ')} (docs/differential.md)` })
          .option('seed', { type: 'number', default: 1, describe: 'The one seed every random choice derives from' })
          .option('seeds', { type: 'number', default: 1, describe: 'Try this many seeds from --seed on; stop at the first that diverges' })
          .option('threads', { type: 'number', describe: 'Threads (random workload; the user programs have their own)' })
          .option('calls', { type: 'number', describe: "Calls per thread (random), or rounds of the program's loop" })
          .option('strategy', { type: 'string', default: 'random', describe: 'Scheduling strategy: pct or random' })
          .option('pct-depth', { type: 'number', default: 3, describe: 'PCT bug depth d' })
          .option('json', { type: 'boolean', default: false, describe: 'One JSON object on stdout' })
          .example(
            '$0 diff --policies global-rwsem,per-vma --workload maps-vs-mremap --seeds 50',
            'A /proc/self/maps reader that relied on mmap_sem, under per-VMA locks',
          )
          .example(
            '$0 diff --policies global-rwsem,hybrid --workload random --seed 7 --threads 1 --calls 40',
            'One thread: any divergence is a semantic difference',
          ),
      (args) => {
        handled = true;
        exitCode = diffCommand(
          {
            policies: args.policies,
            workload: args.workload,
            seed: args.seed,
            seeds: args.seeds,
            threads: args.threads,
            calls: args.calls,
            strategy: args.strategy,
            pctDepth: args['pct-depth'],
            json: args.json,
          },
          io,
        );
      },
    )
    .command(
      'subsystems',
      'List the subsystems and their declared mmap_sem assumptions; with --policy, the static verdict of each',
      (y) =>
        y
          .option('policy', { type: 'string', describe: 'Judge every declared assumption against what this policy holds at its hook' })
          .option('subsystem', { type: 'string', array: true, default: [] as string[], describe: 'Also load a subsystem from this .js file (repeatable)' })
          .option('json', { type: 'boolean', default: false, describe: 'One JSON object on stdout' })
          .example('$0 subsystems', 'Every subsystem, legacy and converted, with what it declares')
          .example('$0 subsystems --policy vma-range', 'Which declared assumptions vma-range breaks')
          .example('$0 subsystems --subsystem ./mydriver.js --policy per-vma --json', 'A third-party subsystem too, as JSON'),
      async (args) => {
        handled = true;
        exitCode = await subsystemsCommand({ policy: args.policy, subsystem: args.subsystem, json: args.json }, io);
      },
    )
    .command(
      'bench',
      'Measure a workload under lock policies side by side: throughput and speed-up at each thread count (timed)',
      (y) =>
        y
          .option('policies', { type: 'string', describe: 'Policies, comma-separated (default: all)' })
          .option('workload', { type: 'string', default: 'pft', describe: `The workload: ${workloadNames().join(', ')} (docs/workloads.md)` })
          .option('params', { type: 'string', describe: "The workload's params as a JSON object (default: its defaults)" })
          .option('threads', { type: 'string', describe: 'Thread counts, comma-separated (default 1,2,4,8)' })
          .option('seed', { type: 'number', default: 1, describe: 'The one seed every random choice derives from' })
          .option('profile', { type: 'string', default: 'default', describe: 'The machine profile whose costs the runs use (docs/fidelity.md)' })
          .option('json', { type: 'boolean', default: false, describe: 'One JSON object on stdout' })
          .example('$0 bench', 'pft under every policy at 1, 2, 4 and 8 threads')
          .example('$0 bench --policies global-rwsem,per-vma,vma-range --workload jvm-gc --threads 1,2,4,8,16', 'A mprotect-heavy JVM-like GC')
          .example('$0 bench --workload pft --params \'{"pagesPerThread": 64}\' --threads 1,4,16 --json', 'Smaller runs, as JSON'),
      (args) => {
        handled = true;
        exitCode = benchCommand(
          {
            policies: args.policies,
            workload: args.workload,
            params: args.params,
            threads: args.threads,
            seed: args.seed,
            profile: args.profile,
            json: args.json,
          },
          io,
        );
      },
    )
    .command(
      'replay [id]',
      "Replay a finding: by its id from a run's report, or by its run (policy, subsystem, variant, seed, schedule); exit 0 when it breaks again",
      (y) =>
        y
          .positional('id', { type: 'string', describe: "A finding id from a run's report.json (e.g. race-gem-ed23d222)" })
          .option('report', { type: 'string', describe: "With an id: the directory 'vmalock run --out DIR' wrote (default ./vmalock-report)" })
          .option('policy', { type: 'string', describe: 'Without an id: the lock policy of the run' })
          .option('subsystem', { type: 'string', describe: 'Without an id: the subsystem, by name or a .js file' })
          .option('variant', { type: 'string', describe: 'Without an id: legacy or converted' })
          .option('seed', { type: 'number', describe: 'Without an id: the seed of the run' })
          .option('schedule', { type: 'string', describe: 'Without an id: the recorded schedule' })
          .option('trace', { type: 'string', describe: "Write the replay's Perfetto timeline, the finding's steps marked, to this file" })
          .option('json', { type: 'boolean', default: false, describe: 'One JSON object on stdout' })
          .example('$0 replay race-gem-ed23d222 --report report/', 'Replay a finding of a run, print its evidence again')
          .example('$0 replay race-gem-ed23d222 --report report/ --trace race.json', 'And write its timeline for ui.perfetto.dev')
          .example("$0 replay --policy vma-range --subsystem pkeys --variant legacy --seed 3 --schedule '0*5.1*4'", 'Replay a run by its parts'),
      async (args) => {
        handled = true;
        exitCode = await replayCommand(
          {
            id: args.id,
            report: args.report,
            policy: args.policy,
            subsystem: args.subsystem,
            variant: args.variant,
            seed: args.seed,
            schedule: args.schedule,
            trace: args.trace,
            json: args.json,
          },
          io,
        );
      },
    )
    .command('trace', 'Work with real strace logs of mm syscalls', (y) =>
      y
        .command(
          'replay <log>',
          'Replay an strace log through the mm and compare every result: sequentially under global-rwsem, or concurrently under --policy',
          (r) =>
            r
              .positional('log', {
                type: 'string',
                demandOption: true,
                describe: "strace -f -tt -T log of mmap/munmap/mprotect/mremap/brk/madvise (or the JSON 'trace import' wrote)",
              })
              .option('tasks', { type: 'string', describe: 'The task tree of the same run (tasks.tsv): which tids share an mm' })
              .option('maps-out', { type: 'string', describe: "Write each process's final address space to DIR/<tgid>.maps" })
              .option('strict', { type: 'boolean', default: false, describe: 'Stop at the first malformed line (exit 2)' })
              .option('policy', { type: 'string', describe: 'Replay one process concurrently under this policy, one simulated thread per traced tid (timed)' })
              .option('seed', { type: 'number', describe: 'With --policy: the seed of the run (default 1)' })
              .option('calls-max', { type: 'number', describe: "With --policy: only the process's first N calls (default all)" })
              .option('pace', { type: 'boolean', describe: 'With --policy: start each call no earlier than its recorded time' })
              .option('tgid', { type: 'number', describe: 'With --policy: the traced process (default the one with the most calls)' })
              .option('json', { type: 'boolean', default: false, describe: 'One JSON object on stdout' })
              .example('$0 trace replay ../shared/traces/strace/sort_parallel.strace.log --tasks ../shared/traces/tasks/sort_parallel.tasks.tsv', '')
              .example('$0 trace replay node.log --json --maps-out out/', '')
              .example('$0 trace replay java.log --tasks java.tasks.tsv --policy vma-range --pace', 'Its 40 threads at once, without mmap_sem'),
          (args) => {
            handled = true;
            exitCode = traceReplayCommand(
              {
                log: args.log,
                tasks: args.tasks,
                mapsOut: args['maps-out'],
                json: args.json,
                strict: args.strict,
                policy: args.policy,
                seed: args.seed,
                callsMax: args['calls-max'],
                pace: args.pace,
                tgid: args.tgid,
              },
              io,
            );
          },
        )
        .command(
          'import <log>',
          'Parse a real strace log into a normalised, replayable JSON file: the calls of each tid, decoded, and which tids make a process',
          (r) =>
            r
              .positional('log', { type: 'string', demandOption: true, describe: 'strace -f -tt -T log of the mm syscalls' })
              .option('tasks', { type: 'string', describe: 'The task tree of the same run (tasks.tsv): which tids share an mm' })
              .option('out', { type: 'string', nargs: 1, describe: "Where to write the JSON (default <log name>.json here; '-' prints it)" })
              .option('skip-malformed', {
                type: 'boolean',
                default: false,
                describe: 'Record malformed lines and cut calls in the file instead of refusing the log (exit 2)',
              })
              .option('json', { type: 'boolean', default: false, describe: 'The summary as one JSON object on stdout' })
              .example('$0 trace import ../shared/traces/strace/java_allocstress.strace.log --tasks ../shared/traces/tasks/java_allocstress.tasks.tsv', '')
              .example('$0 trace import node.log --out node.json && $0 trace replay node.json', 'Import once, replay the import'),
          (args) => {
            handled = true;
            exitCode = traceImportCommand({ log: args.log, tasks: args.tasks, out: args.out, skipMalformed: args['skip-malformed'], json: args.json }, io);
          },
        )
        .demandCommand(1, 'Name a trace command: replay or import'),
    )
    .command('plan', 'Write, check and describe conversion plans (docs/plans.md)', (y) =>
      y
        .command(
          'validate <file>',
          'Check a plan (YAML or JSON): prints "file: ok" or one error line file:line:col: field: what was expected',
          (v) =>
            v
              .positional('file', { type: 'string', demandOption: true, describe: 'The plan: a .yaml, .yml or .json file' })
              .option('all', { type: 'boolean', default: false, describe: 'Print every error, one a line, not only the first' })
              .option('json', { type: 'boolean', default: false, describe: 'Print the resolved plan (each phase per process) as one JSON object' })
              .example('$0 plan validate vmalock-plan.yaml', 'Check a plan')
              .example('$0 plan validate plan.json --json', 'The resolved plan: who runs which policy, what is converted, in each phase'),
          async (args) => {
            handled = true;
            exitCode = await planValidateCommand({ file: args.file, all: args.all, json: args.json }, io);
          },
        )
        .command(
          'init [file]',
          'Write the built-in staged conversion plan, commented, to edit (never overwrites a file)',
          (i) =>
            i
              .positional('file', { type: 'string', describe: "Where to write it (default vmalock-plan.yaml; a .json name writes JSON; '-' prints it)" })
              .example('$0 plan init', 'Write vmalock-plan.yaml')
              .example('$0 plan init plans/mine.yaml', 'Write it elsewhere'),
          (args) => {
            handled = true;
            exitCode = planInitCommand({ file: args.file }, io);
          },
        )
        .command(
          'schema',
          'Print the JSON Schema of plan files, for editors (docs/plan.schema.json)',
          (s) => s.example('$0 plan schema > plan.schema.json', 'Point your editor at it'),
          () => {
            handled = true;
            exitCode = planSchemaCommand(io);
          },
        )
        .demandCommand(1, 'Name a plan command: validate, init or schema'),
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
