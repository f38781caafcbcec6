// bench:engine — how fast the simulation engine runs, against the bare cost of a generator
// yield measured in the same process (the ceiling no effect can beat).
//
//   npm run bench:engine            a table on stdout
//   npm run bench:engine -- --json  one JSON object on stdout
//
// Every figure is the median of several timed repetitions after a warm-up; ratios within one
// run are what to compare on a noisy machine.
import { parseArgs } from 'node:util';
import { Effect, Mutex, type Program, RwSemaphore, type RunOptions, SharedLocation, runProgram, spend, yieldNow } from '@vmalock/core';

const { values } = parseArgs({
  options: { json: { type: 'boolean', default: false }, reps: { type: 'string', default: '5' } },
  strict: true,
});
const reps = Number(values.reps);
if (!Number.isInteger(reps) || reps < 1) {
  process.stderr.write(`bench:engine: --reps must be an integer >= 1, got '${values.reps}'\n`);
  process.exit(2);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Run `fn` (which returns a count of work items) `reps` times after a warm-up; median items/s. */
function rate(fn: () => number): number {
  fn();
  const rates: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const n = fn();
    const dt = (performance.now() - t0) / 1000;
    rates.push(n / dt);
  }
  return median(rates);
}

/** The ceiling: a bare generator yielding a preallocated value, resumed in a loop. */
function bareYields(): number {
  const n = 20_000_000;
  const value = new Effect(0);
  function* gen(): Generator<Effect, void, unknown> {
    for (;;) yield value;
  }
  const g = gen();
  let sink = 0;
  for (let i = 0; i < n; i++) sink += (g.next(i).value as Effect).op;
  if (sink !== 0) throw new Error('unreachable');
  return n;
}

function effectsOf(program: Program, options: RunOptions): () => number {
  return () => {
    const r = runProgram(program, options);
    if (r.status !== 'ok') throw new Error(`bench program failed: ${r.summary}`);
    return r.steps;
  };
}

/** One thread: a mutex-protected read-modify-write plus some work, in a loop. */
const oneThread: Program = (sim) => {
  const m = new Mutex('m');
  const loc = new SharedLocation('x', 0);
  sim.spawn('t', function* () {
    for (let i = 0; i < 400_000; i++) {
      yield m.lock();
      const v = (yield loc.read()) as number;
      yield loc.write(v + 1);
      yield spend(50);
      yield m.unlock();
    }
  });
};

/** 64 threads on 64 CPUs taking one rwsem for read. */
const rwsem64: Program = (sim) => {
  const sem = new RwSemaphore('mmap_sem');
  for (let t = 0; t < 64; t++) {
    sim.spawn(`r${t}`, function* () {
      for (let i = 0; i < 5_000; i++) {
        yield sem.downRead();
        yield spend(100);
        yield sem.upRead();
      }
    });
  }
};

/** 1024 threads on 1024 CPUs, each on its own mutex. */
const separate1024: Program = (sim) => {
  for (let t = 0; t < 1024; t++) {
    const m = new Mutex(`m${t}`);
    sim.spawn(`t${t}`, function* () {
      for (let i = 0; i < 300; i++) {
        yield m.lock();
        yield spend(100);
        yield m.unlock();
      }
    });
  }
};

/** 3 threads of 20 steps on one mutex: a typical small PCT exploration target. */
const pct3x20: Program = (sim) => {
  const m = new Mutex('m');
  const loc = new SharedLocation('x', 0);
  for (let t = 0; t < 3; t++) {
    sim.spawn(`t${t}`, function* () {
      for (let i = 0; i < 4; i++) {
        yield m.lock();
        const v = (yield loc.read()) as number;
        yield loc.write(v + 1);
        yield m.unlock();
        yield yieldNow();
      }
    });
  }
};

function pctSchedules(): number {
  const runs = 20_000;
  for (let seed = 0; seed < runs; seed++) {
    const r = runProgram(pct3x20, { seed, strategy: 'pct', pctDepth: 3, pctSteps: 63 });
    if (r.status !== 'ok') throw new Error(`bench program failed: ${r.summary}`);
  }
  return runs;
}

const generatorYieldsPerSec = rate(bareYields);
const result = {
  effectsPerSec: {
    oneThread: rate(effectsOf(oneThread, { seed: 1, strategy: 'timed', cpus: 1, stepLimit: 10_000_000 })),
    rwsem64Threads: rate(effectsOf(rwsem64, { seed: 1, strategy: 'timed', cpus: 64, stepLimit: 10_000_000 })),
    threads1024SeparateLocks: rate(effectsOf(separate1024, { seed: 1, strategy: 'timed', cpus: 1024, stepLimit: 10_000_000 })),
  },
  schedulesPerSec: { pct3x20: rate(pctSchedules) },
  generatorYieldsPerSec,
};

if (values.json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const fmt = (n: number) => `${(n / 1e6).toFixed(2)}M`;
  const rows: [string, number][] = [
    ['effects/s, 1 thread (timed)', result.effectsPerSec.oneThread],
    ['effects/s, 64 threads on one rwsem (timed)', result.effectsPerSec.rwsem64Threads],
    ['effects/s, 1024 threads, separate locks (timed)', result.effectsPerSec.threads1024SeparateLocks],
    ['schedules/s, pct 3 threads x 20 steps', result.schedulesPerSec.pct3x20],
    ['bare generator yields/s (ceiling)', generatorYieldsPerSec],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  console.log(`${'measure'.padEnd(width)}  ${'rate'.padStart(9)}  of ceiling`);
  for (const [name, value] of rows) {
    const ratio = name.startsWith('schedules') ? '' : `${((100 * value) / generatorYieldsPerSec).toFixed(1)}%`;
    console.log(`${name.padEnd(width)}  ${fmt(value).padStart(9)}  ${ratio}`);
  }
  console.log(`node ${process.version}, median of ${reps} repetitions`);
}
