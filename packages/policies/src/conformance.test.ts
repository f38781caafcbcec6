// The conformance suite every lock policy of the registry runs (ARCHITECTURE section 4):
// - sequential programs give exactly global-rwsem's results (the model-based test in
//   mm/model.test.ts runs the same scenarios under every policy against the reference model;
//   here the random workload runs on one thread under each policy and under global-rwsem);
// - concurrent programs under `random` and `pct` never deadlock, never fail a held-lock
//   assertion, never break an mm invariant, and leave no dummy VMA behind;
// - hybrid (mmap_sem kept, range locks added) gives exactly global-rwsem's results: for 500
//   seeds, every call of a concurrent run returns what it returns when the calls are run one
//   by one, under global-rwsem, in the order in which they took mmap_sem — and the final
//   /proc/pid/maps is the same. global-rwsem itself passes the same check (the control).
// Each test prints how many schedules it ran; a failure prints the seed, strategy and the
// schedule that replays it.
import {
  EFAULT,
  type EngineObserver,
  Lockdep,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  getUserPages,
  sysMmap,
  MmStruct,
  type RunResult,
  type SimLock,
  type SimThread,
  type StrategyName,
  checkMmInvariants,
  renderMaps,
  runMmOp,
  runProgram,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { GlobalRwsemPolicy } from './globalRwsem.js';
import { POLICIES, type PolicyOptions, createPolicy } from './registry.js';
import { type MmCall, base, page, runCall, workload } from './testing/mmWorkload.js';
import { VM_AREA_LOCK_CLASS, vmAreaLockOrder } from './vmaRange.js';

const SEEDS = 200;
const DIFFERENTIAL_SEEDS = 500;

function replayLine(r: RunResult): string {
  return `${r.summary}\nreplay: seed=${r.seed} strategy=replay schedule=${r.schedule}`;
}

/** Every policy of the registry with its defaults, and the non-default variants worth a run of their own. */
const CASES: ReadonlyArray<readonly [label: string, name: string, options: PolicyOptions]> = [
  ...POLICIES.map((p) => [p.name, p.name, {}] as const),
  ['range-lock (fine)', 'range-lock', { ranges: 'fine' }],
  ['per-vma (6.4.0: no fork fix, new VMAs unlocked)', 'per-vma', { forkWriteLocksParent: false, lockNewVma: false }],
];

describe.each(CASES)('conformance of %s', (label, name, options) => {
  it('should give global-rwsem results for sequential programs (one thread, 50 seeds)', () => {
    for (let seed = 0; seed < 50; seed++) {
      const results = (policyName: string): { calls: string[]; maps: string } => {
        const mm = new MmStruct(1, policyName === name ? createPolicy(name, options) : createPolicy(policyName));
        const calls: string[] = [];
        const r = runProgram(
          workload(mm, 1, 40, (_t, call, result) => calls.push(`${JSON.stringify(call)} -> ${result}`)),
          { seed, strategy: 'random' },
        );
        expect(r.status, replayLine(r)).toBe('ok');
        return { calls, maps: renderMaps(mm) };
      };
      expect(results(name), `seed=${seed}`).toEqual(results('global-rwsem'));
    }
  });

  it('should fail a held-lock assertion when its modify lock is replaced by its read-side lock', () => {
    // A broken variant of the policy: munmap, mprotect, ... get what lockForRead gives.
    const policy = createPolicy(name, options);
    policy.lockForModify = (mm, thread, start, end) => policy.lockForRead(mm, thread, start, end);
    const mm = new MmStruct(1, policy);
    expect(
      runMmOp(new MmStruct(1, createPolicy(name, options)), (t) =>
        sysMmap(t, base, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
      ),
    ).toBe(base);
    mm.files.clear();
    const r = runProgram(
      (sim) => {
        sim.spawn('broken', function* (thread) {
          yield* sysMmap({ thread, mm }, base, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        });
      },
      { seed: 1, strategy: 'random' },
    );
    expect(r.status, r.summary).toBe('error');
    expect(r.failure?.message).toMatch(/ threw at step \d+: range_assert_covered\(\[0x40000000, 0x40002000\)\): mmap_region changes the VMAs of its range: /);
  });

  it('should answer get_user_pages on a hole below a VMA with -EFAULT (no stack to grow)', () => {
    const mm = new MmStruct(1, createPolicy(name, options));
    expect(runMmOp(mm, (t) => sysMmap(t, base + 4 * page, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0))).toBe(base + 4 * page);
    expect(runMmOp(mm, (t) => getUserPages(t, base, 1, true))).toBe(-EFAULT);
    expect(runMmOp(mm, (t) => getUserPages(t, base + 4 * page, 1, true))).toBe(1);
  });

  describe.each<StrategyName>(['random', 'pct'])('having 3 threads of random mm calls (%s)', (strategy) => {
    it(`should never deadlock, fail an assertion or break an mm invariant (${SEEDS} seeds)`, () => {
      let schedules = 0;
      let assertions = 0;
      // One lockdep over all the runs: every order any run showed, checked against every other.
      const lockdep = new Lockdep({ orderedClasses: { [VM_AREA_LOCK_CLASS]: vmAreaLockOrder } });
      for (let seed = 0; seed < SEEDS; seed++) {
        const mm = new MmStruct(1, createPolicy(name, options));
        lockdep.run = `seed=${seed} strategy=${strategy}`;
        const r = runProgram(workload(mm, 3, 12), { seed, strategy, pctDepth: 3, pctSteps: 400, observers: [lockdep] });
        expect(r.status, replayLine(r)).toBe('ok');
        expect(() => checkMmInvariants(mm), `seed=${seed} strategy=${strategy}`).not.toThrow();
        expect(mm.dummyCount, `seed=${seed}: dummy VMAs left behind`).toBe(0);
        assertions += Object.values(mm.assertionCounts).reduce((a, b) => a + b, 0);
        schedules++;
      }
      // The assertions ran (so a policy changing VMAs without its locks would have been caught).
      expect(assertions).toBeGreaterThan(schedules * 10);
      expect(lockdep.reports.map((r) => r.splat).join('\n\n')).toBe('');
      expect(lockdep.dependencyCount).toBeGreaterThan(0);
      console.log(
        `conformance ${label}: ${schedules} ${strategy} schedules, 3 threads x 12 calls, ${assertions} held-lock assertions, lockdep: ${lockdep.classCount} classes, ${lockdep.dependencyCount} orders, no report`,
      );
    });
  });
});

/** Records, per thread, the number of the last mmap_sem acquisition (its ticket). */
class MmapSemTickets implements EngineObserver {
  #next = 0;
  readonly last = new Map<SimThread, number>();
  constructor(readonly mm: MmStruct) {}
  onLockAcquired(thread: SimThread, lock: SimLock): void {
    if (lock === this.mm.mmapSem) this.last.set(thread, this.#next++);
  }
}

describe.each(['global-rwsem', 'hybrid'])('%s against global-rwsem in mmap_sem order', (name) => {
  it(`should give every call the result it gets run alone in that order, and the same maps (${DIFFERENTIAL_SEEDS} seeds)`, () => {
    let calls = 0;
    for (let seed = 0; seed < DIFFERENTIAL_SEEDS; seed++) {
      const strategy: StrategyName = seed % 2 === 0 ? 'random' : 'pct';
      const mm = new MmStruct(1, createPolicy(name));
      const tickets = new MmapSemTickets(mm);
      const ran: Array<{ ticket: number; call: MmCall; result: number | string }> = [];
      const r = runProgram(
        workload(mm, 3, 12, (thread, call, result) => ran.push({ ticket: tickets.last.get(thread)!, call, result })),
        { seed, strategy, pctDepth: 3, pctSteps: 400, observers: [tickets] },
      );
      expect(r.status, replayLine(r)).toBe('ok');
      // The same calls, one at a time, in the order they held mmap_sem, on global-rwsem.
      const reference = new MmStruct(1, new GlobalRwsemPolicy());
      for (const { call, result } of [...ran].sort((a, b) => a.ticket - b.ticket)) {
        const alone = runMmOp(reference, (task) => runCall(task, call));
        expect(result, `${replayLine(r)}\ncall ${JSON.stringify(call)}`).toBe(alone);
        calls++;
      }
      expect(renderMaps(mm), replayLine(r)).toBe(renderMaps(reference));
    }
    console.log(`${name} vs global-rwsem: ${DIFFERENTIAL_SEEDS} seeds (random and pct), ${calls} calls, all results and maps equal`);
  });
});
