// Every built-in subsystem's exercise — the workload `vmalock flag` runs on it (`spawnExercise`:
// its own `exercise`, or 3 threads calling `drive` 3 times), in one process — proved three ways:
// 1. under vma-range the legacy variant breaks: a bounded search over flag's portfolio (pct,
//    depth 3, 300 steps, on even seeds; random on odd ones) finds the failing seed named here,
//    with what its failure says; the replay of its schedule (strategy 'replay') fails the same
//    way, and the converted variant holds at that seed;
// 2. under global-rwsem both variants hold over SCHEDULES portfolio schedules;
// 3. under vma-range and per-vma the converted variant holds over SCHEDULES schedules.
// "Holds": the run ends ok and the subsystem's and the mm's invariants hold after it. Each suite
// prints one line; a failure prints seed=, strategy= and the schedule that replays it.
import { MmStruct, type Program, type RunResult, type StrategyName, type SubsystemVariant } from '@vmalock/core';
import { createPolicy } from '@vmalock/policies';
import { describe, expect, it } from 'vitest';
import { spawnExercise } from './exercise.js';
import { SUBSYSTEMS, type SubsystemEntry } from './registry.js';
import { firstFailing, replayLine, runChecked, runOptions, trialsAlternating } from './testing.js';

/** flag's PCT bounds (`PCT_STEPS` of packages/harness/src/flag/workload.ts). */
const PCT = { pctDepth: 3, pctSteps: 300 } as const;
/** Portfolio schedules each safe variant must hold over (flag itself runs 200 to 400). */
const SCHEDULES = 30;
/** The bound of the search for a legacy variant's failure. */
const SEARCH_SEEDS = 100;

/**
 * The first failing seed of each legacy variant under vma-range (its strategy: pct when even,
 * random when odd), and what the failure says.
 */
const BREAKS: Readonly<Record<string, { readonly seed: number; readonly breaks: RegExp }>> = {
  pkeys: { seed: 3, breaks: /^pkeys: pkeys\.mm1\.pkey_allocated_count is 5 but pkeys\.mm1\.pkey_allocation_map 0x3f has 6 keys/ },
  vdso: { seed: 7, breaks: /vdso: signal delivery in T1 vdso1: vdso\.mm1\.context\.vdso is 0x60000000 but nothing is mapped there/ },
  // A registration read the table, the unmapping thread trimmed its own range out of it, and
  // the registration wrote the old table back.
  archunmap: { seed: 1, breaks: /^archunmap: archunmap\.mm1\.bt_table entry \[0x70088000, 0x70089000\) covers 0x70088000, which is not mapped$/ },
  // A fault checked i_size, a truncate to 0 zapped and dropped the page, and the fault mapped it.
  pagecache: { seed: 19, breaks: /^pagecache: mm1 0x50014000 \(page 4\) is mapped beyond EOF \(i_size 0 pages\)$/ },
  // A fault found its registration, an unregister dropped it, and the fault was queued for it.
  userfaultfd: { seed: 9, breaks: /^userfaultfd: a fault at mm1 0x51002000 was handed to user space for registration 1, which no longer covered it$/ },
  aioring: { seed: 1, breaks: /^aioring: io_getevents of mm1 used ctx->mmap_base 0x52000000, where the ring was not mapped$/ },
  // The ioctl found the buffer's VMA, the munmap took it away, and the ioctl inserted its page.
  binder: { seed: 3, breaks: /^binder: mm1: a binder page is installed at 0x60001000, outside every live VMA of \/dev\/binder$/ },
  // A device fault made its page present, a MAP_FIXED mmap or munmap zapped it, and the device mirrored it.
  hmm: { seed: 21, breaks: /^hmm: mm1: hmm\.mm1\.mirror\[0x61000000\] holds a page but the CPU page table maps nothing at 0x61000000$/ },
  // Two plain increments and decrements of one object's refcount (opens and closes of its VMAs) lost an update.
  gem: { seed: 0, breaks: /^gem: mm1: gem\.mm1\.obj1\.refcount is 4 but 2 VMAs and 1 handles hold it$/ },
  // A user fault mapped a page into the PMD the collapse had flushed.
  khugepaged: { seed: 1, breaks: /khugepaged: mm1: BUG_ON\(!pmd_none\(\*pmd\)\) in collapse_huge_page at 0x40200000: a PTE table with 1 present pages/ },
  // Two splits of THPs in different VMAs updated the books at once: one update was lost.
  thp: { seed: 3, breaks: /^thp: mm1: THP counter 2 but 1 huge PMDs mapped$/ },
};

/** How one run ended: its result and what failed (the run's error, or the first invariant broken after it), null when all held. */
interface Outcome {
  readonly result: RunResult;
  readonly failure: string | null;
}

/** One run of the exercise: a fresh process on `policy` with the subsystem attached, as flag runs it. */
function runOnce(entry: SubsystemEntry, variant: SubsystemVariant, policy: string, seed: number, strategy: StrategyName, schedule?: string): Outcome {
  const subsystem = entry.create(variant);
  const mm = new MmStruct(1, createPolicy(policy));
  const proc = { pid: 1, name: 'p1', mm };
  subsystem.attach(proc);
  const program: Program = (sim) =>
    spawnExercise(subsystem, proc, (name, body) => {
      sim.spawn(name, function* (thread) {
        yield* body({ thread, mm }, thread.rng);
      });
    });
  const { result, broken } = runChecked(program, subsystem, [mm], runOptions(seed, strategy, PCT, schedule));
  return { result, failure: result.status === 'ok' ? broken : (result.failure?.message ?? result.summary) };
}

/** Flag's portfolio: pct on even seeds, random on odd ones. */
function portfolio(seed: number): StrategyName {
  return seed % 2 === 0 ? 'pct' : 'random';
}

/** SCHEDULES portfolio runs that must all hold. */
function holdsOver(entry: SubsystemEntry, variant: SubsystemVariant, policy: string): void {
  for (let seed = 0; seed < SCHEDULES; seed++) {
    const { result, failure } = runOnce(entry, variant, policy, seed, portfolio(seed));
    expect(failure, `${entry.name} ${variant} under ${policy}: ${failure}\nreplay: ${replayLine(result)}`).toBeNull();
  }
}

describe.each(SUBSYSTEMS)('the exercise of $name', (entry) => {
  it('should break the legacy variant under vma-range at its named seed, the first a bounded search finds, and again on the replay', () => {
    const b = BREAKS[entry.name];
    expect(b, `no named failing seed for ${entry.name}`).toBeDefined();
    const found = firstFailing(
      trialsAlternating(['pct', 'random'], SEARCH_SEEDS),
      (t) => runOnce(entry, 'legacy', 'vma-range', t.seed, t.strategy),
      (o) => o.failure !== null,
    );
    expect(found, `${entry.name} legacy: no failing schedule in ${SEARCH_SEEDS} seeds`).not.toBeNull();
    const { result, failure } = found!.outcome;
    expect(failure, `replay: ${replayLine(result)}`).toMatch(b!.breaks);
    expect({ seed: result.seed, strategy: result.strategy }).toEqual({ seed: b!.seed, strategy: portfolio(b!.seed) });
    const again = runOnce(entry, 'legacy', 'vma-range', result.seed, 'replay', result.schedule);
    expect(again.result.status).not.toBe('diverged');
    expect(again.failure).toBe(failure);
    const converted = runOnce(entry, 'converted', 'vma-range', result.seed, portfolio(result.seed));
    expect(converted.failure, `${entry.name} converted at seed=${result.seed}: replay: ${replayLine(converted.result)}`).toBeNull();
    console.log(`${entry.name} legacy under vma-range: breaks at seed=${result.seed} (${result.strategy}): ${failure}\nreplay: ${replayLine(result)}`);
  });

  it.each<SubsystemVariant>(['legacy', 'converted'])(`should keep the %s variant's invariants under global-rwsem over ${SCHEDULES} schedules`, (variant) => {
    holdsOver(entry, variant, 'global-rwsem');
  });

  it.each(['vma-range', 'per-vma'])(`should keep the converted variant's invariants under %s over ${SCHEDULES} schedules`, (policy) => {
    holdsOver(entry, 'converted', policy);
  });
});
