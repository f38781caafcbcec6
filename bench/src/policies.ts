// bench:policies — the scaling picture: a pft-like workload under every lock policy.
//
//   npm run bench:policies                    a table on stdout
//   npm run bench:policies -- --json          {"workload": "pft", "results": [...]} on stdout
//   options: --threads 1,2,4,... --policies a,b,... --pages N (per thread) --no-mapper
//
// The workload (Gorman's pft, with a disturber): T threads each write-fault their own N pages
// of one large private anonymous mapping (THP off: 4 KiB faults), while one more thread keeps
// mapping and unmapping 16 pages elsewhere (MAP_FIXED into a hole fenced by two small VMAs, so
// it never touches the big mapping or its neighbours). Each thread has its own CPU. The run is
// timed by the engine's cost model (sim/costModel.ts): lock words are cache lines whose
// atomics serialise and bounce between CPUs, and the mm charges its own work (fault handling,
// zeroing a page, VMA updates, zap). Nothing here sets a figure: faults per simulated second
// is faults / (when the last faulting thread finished).
import { parseArgs } from 'node:util';
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MmStruct,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  handleMmFault,
  runMmOp,
  runProgram,
  sysMmap,
  sysMunmap,
} from '@vmalock/core';
import { LockWaits, percentile } from '@vmalock/harness';
import { createPolicy, policyNames } from '@vmalock/policies';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    threads: { type: 'string', default: '1,2,4,8,16,32,64,128' },
    policies: { type: 'string', default: policyNames().join(',') },
    pages: { type: 'string', default: '256' },
    'no-mapper': { type: 'boolean', default: false },
  },
  strict: true,
});

function fail(message: string): never {
  process.stderr.write(`bench:policies: ${message}\n`);
  process.exit(2);
}

const threadCounts = values.threads.split(',').map((s) => Number(s));
if (threadCounts.some((n) => !Number.isInteger(n) || n < 1 || n > 4096))
  fail(`--threads: expected integers 1..4096 separated by commas, got '${values.threads}'`);
const policies = values.policies.split(',');
for (const p of policies) if (!policyNames().includes(p)) fail(`--policies: unknown policy '${p}' (known: ${policyNames().join(', ')})`);
const pagesPerThread = Number(values.pages);
if (!Number.isInteger(pagesPerThread) || pagesPerThread < 1) fail(`--pages: expected an integer >= 1, got '${values.pages}'`);
const withMapper = !values['no-mapper'];

/** The big mapping, the mapper's fenced hole and its two fences. */
const BIG = 0x100000000000;
const FENCE_LOW = 0x200000000000;
const HOLE = FENCE_LOW + 2 * PAGE_SIZE;
const MAPPER_PAGES = 16;
const FENCE_HIGH = HOLE + (MAPPER_PAGES + 1) * PAGE_SIZE;

interface Result {
  readonly policy: string;
  readonly threads: number;
  readonly faults: number;
  readonly simTimeNs: number;
  readonly faultsPerSimSec: number;
  readonly speedupOver1Thread: number;
  readonly mmapSemAcquisitions: number;
  readonly mmapSemWaitNsP50: number;
  readonly mmapSemWaitNsP99: number;
  /** mmap+munmap cycles the disturbing thread completed meanwhile. */
  readonly mapperCycles: number;
  /** The lock class with the most wait time, its acquisitions and median wait. */
  readonly hottestLock: { readonly lockClass: string; readonly acquisitions: number; readonly waitNsP50: number; readonly waitNsTotal: number };
  readonly steps: number;
}

function run(policyName: string, threads: number): Omit<Result, 'speedupOver1Thread'> {
  const mm = new MmStruct(1, createPolicy(policyName));
  mm.thp = 'never';
  const len = threads * pagesPerThread * PAGE_SIZE;
  const fixed = (addr: number, bytes: number): void => {
    const r = runMmOp(mm, (t) => sysMmap(t, addr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
    if (r !== addr) throw new Error(`setup mmap at 0x${addr.toString(16)} failed: ${r}`);
  };
  fixed(BIG, len);
  fixed(FENCE_LOW, PAGE_SIZE);
  fixed(FENCE_HIGH, PAGE_SIZE);
  const waits = new LockWaits();
  let running = threads;
  let lastFinishNs = 0;
  let mapperCycles = 0;
  const result = runProgram(
    (sim) => {
      for (let i = 0; i < threads; i++) {
        sim.spawn(`pft${i}`, function* (thread) {
          const task = { thread, mm };
          const first = BIG + i * pagesPerThread * PAGE_SIZE;
          for (let p = 0; p < pagesPerThread; p++) {
            const r = yield* handleMmFault(task, first + p * PAGE_SIZE, 'write');
            if (r !== 'ok') throw new Error(`fault at page ${p} of thread ${i}: ${r}`);
          }
          lastFinishNs = Math.max(lastFinishNs, thread.clockNs);
          running--;
        });
      }
      if (withMapper)
        sim.spawn('mapper', function* (thread) {
          const task = { thread, mm };
          while (running > 0) {
            const a = yield* sysMmap(task, HOLE, MAPPER_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (a !== HOLE) throw new Error(`mapper mmap: ${a}`);
            const r = yield* sysMunmap(task, HOLE, MAPPER_PAGES * PAGE_SIZE);
            if (r !== 0) throw new Error(`mapper munmap: ${r}`);
            mapperCycles++;
          }
        });
    },
    { seed: 1, strategy: 'timed', cpus: threads + 1, observers: [waits], stepLimit: 50_000_000 },
  );
  if (result.status !== 'ok') throw new Error(`${policyName} at ${threads} threads: ${result.summary}`);
  const faults = threads * pagesPerThread;
  const mmapSem = [...(waits.byClass.get('mm#.mmap_sem') ?? [])].sort((a, b) => a - b);
  let hottest: Result['hottestLock'] = { lockClass: '-', acquisitions: 0, waitNsP50: 0, waitNsTotal: 0 };
  for (const [lockClass, list] of waits.byClass) {
    const total = list.reduce((a, b) => a + b, 0);
    if (total > hottest.waitNsTotal) {
      const sorted = [...list].sort((a, b) => a - b);
      hottest = { lockClass, acquisitions: list.length, waitNsP50: percentile(sorted, 50), waitNsTotal: total };
    }
  }
  return {
    policy: policyName,
    threads,
    faults,
    simTimeNs: lastFinishNs,
    faultsPerSimSec: Math.round((faults / lastFinishNs) * 1e9),
    mmapSemAcquisitions: mmapSem.length,
    mmapSemWaitNsP50: percentile(mmapSem, 50),
    mmapSemWaitNsP99: percentile(mmapSem, 99),
    mapperCycles,
    hottestLock: hottest,
    steps: result.steps,
  };
}

const results: Result[] = [];
const wall0 = performance.now();
for (const policy of policies) {
  let single = 0;
  for (const threads of threadCounts) {
    const r = run(policy, threads);
    if (threads === 1 || single === 0) single = threads === 1 ? r.faultsPerSimSec : single;
    results.push({ ...r, speedupOver1Thread: single > 0 ? Number((r.faultsPerSimSec / single).toFixed(2)) : 0 });
    if (process.stderr.isTTY && !values.json) process.stderr.write(`\r${policy} ${threads} threads done   `);
  }
}
if (process.stderr.isTTY && !values.json) process.stderr.write('\r'.padEnd(40) + '\r');

if (values.json) {
  process.stdout.write(`${JSON.stringify({ workload: 'pft', pagesPerThread, mapper: withMapper, results })}\n`);
} else {
  console.log(
    `pft: ${pagesPerThread} write faults per thread (4 KiB pages), ${withMapper ? 'one thread mapping/unmapping 16 pages elsewhere' : 'no disturber'}; simulated (timed, default cost model)`,
  );
  console.log('faults per simulated second (speed-up over 1 thread):');
  const header = ['threads', ...policies].map((h, i) => (i === 0 ? h.padEnd(8) : h.padStart(20))).join('');
  console.log(header);
  for (const threads of threadCounts) {
    const cells = policies.map((p) => {
      const r = results.find((x) => x.policy === p && x.threads === threads)!;
      return `${(r.faultsPerSimSec / 1e6).toFixed(2)}M (${r.speedupOver1Thread.toFixed(1)}x)`.padStart(20);
    });
    console.log(String(threads).padEnd(8) + cells.join(''));
  }
  console.log('\nmmap_sem wait p50 / p99 (ns) and the hottest lock class at the largest thread count:');
  const top = threadCounts[threadCounts.length - 1]!;
  for (const p of policies) {
    const r = results.find((x) => x.policy === p && x.threads === top)!;
    console.log(
      `  ${p.padEnd(14)} mmap_sem ${String(r.mmapSemAcquisitions).padStart(7)} acq, p50 ${String(r.mmapSemWaitNsP50).padStart(6)}, p99 ${String(r.mmapSemWaitNsP99).padStart(7)}; hottest ${r.hottestLock.lockClass} (p50 ${r.hottestLock.waitNsP50} ns); mapper cycles ${r.mapperCycles}`,
    );
  }
  console.log(`(${((performance.now() - wall0) / 1000).toFixed(1)} s wall, node ${process.version})`);
}
