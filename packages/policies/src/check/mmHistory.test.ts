// Proves that the mm calls of concurrent runs are linearizable under the real lock policies,
// and that the check would see it if they were not. How:
// - 3 threads x 8 random calls of the shared workload (mmap MAP_FIXED, munmap, mprotect,
//   madvise, brk, mremap MREMAP_MAYMOVE, faults in a 32-page window) run under global-rwsem,
//   hybrid, vma-range and per-vma, 50 pct seeds each; every recorded history is checked against
//   the sequential model (the calls replayed on a fresh mm under global-rwsem), split by the
//   page-range partition. Each must be linearizable, or unknown within the step budget (counted
//   and printed; none is expected at this size).
// - A hand-made history where a fault succeeds on a page munmapped strictly before it is not
//   linearizable, and the report names the fault and what the model answered.
// - Recorded histories with one fault's result flipped: most are caught, and the failing
//   sub-history always holds the flipped call (the others are sub-histories of a linearizable
//   history). The unperturbed histories pass, which shows the flipped result is what fails.
// A failure prints the policy, `seed=`, the strategy and the schedule that replays the run.
import {
  EINVAL,
  type LinearizabilityResult,
  MmStruct,
  PROT_READ,
  type RunResult,
  type StrategyName,
  checkLinearizability,
  formatLinearizability,
  runProgram,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { createPolicy } from '../registry.js';
import { type MmCall, base, page } from '../testing/mmWorkload.js';
import { type MmHistoryOp, type MmResult, MmHistoryRecorder, describeMmCall, mmPartition, mmSequentialModel, recordedWorkload } from './mmHistory.js';

const SEEDS = 50;
const THREADS = 3;
const CALLS = 8;
const STEP_BUDGET = 20_000;

function record(policyName: string, seed: number, strategy: StrategyName = 'pct'): { history: MmHistoryOp[]; run: RunResult } {
  const mm = new MmStruct(1, createPolicy(policyName));
  const recorder = new MmHistoryRecorder();
  const run = runProgram(recordedWorkload(mm, THREADS, CALLS, recorder), { seed, strategy, pctDepth: 3, pctSteps: 400 });
  return { history: recorder.ops, run };
}

function check(history: readonly MmHistoryOp[]): LinearizabilityResult<MmCall, MmResult> {
  return checkLinearizability(history, mmSequentialModel(), { partition: mmPartition(), stepBudget: STEP_BUDGET });
}

function replayLine(policy: string, r: RunResult): string {
  return `policy=${policy} seed=${r.seed} strategy=${r.strategy} schedule=${r.schedule}`;
}

describe('linearizability of mm calls', () => {
  describe.each(['global-rwsem', 'hybrid', 'vma-range', 'per-vma'])('having %s, 3 threads x 8 calls', (policy) => {
    it.each<StrategyName>(['pct', 'random'])(`should be linearizable for every recorded history (${SEEDS} %s seeds)`, (strategy) => {
      const counts = { linearizable: 0, unknown: 0, subHistories: 0, steps: 0, overlapping: 0 };
      for (let seed = 0; seed < SEEDS; seed++) {
        const { history, run } = record(policy, seed, strategy);
        expect(run.status, replayLine(policy, run)).toBe('ok');
        expect(history).toHaveLength(THREADS * CALLS);
        const result = check(history);
        expect(result.verdict, `${replayLine(policy, run)}\n${formatLinearizability(result, mmSequentialModel())}`).not.toBe('not linearizable');
        counts[result.verdict === 'linearizable' ? 'linearizable' : 'unknown']++;
        counts.subHistories += result.subHistories.length;
        counts.steps += result.steps;
        counts.overlapping += history.filter((a) =>
          history.some((b) => b.thread !== a.thread && b.invokedAt < a.respondedAt && a.invokedAt < b.respondedAt),
        ).length;
      }
      console.log(
        `linearizability ${policy}: ${SEEDS} ${strategy} histories of ${THREADS}x${CALLS} calls: ${counts.linearizable} linearizable, ${counts.unknown} unknown (budget ${STEP_BUDGET} steps per sub-history), ${counts.subHistories} sub-histories, ${counts.overlapping} of ${SEEDS * THREADS * CALLS} calls overlapping another thread's, ${counts.steps} model steps`,
      );
      expect(counts.linearizable + counts.unknown).toBe(SEEDS);
      // The budget is far above what these histories need: an unknown would be news.
      expect(counts.unknown).toBe(0);
    });
  });

  describe('having a hand-made history', () => {
    //   0123
    //   AAAA    T0: mmap [0, 4), then munmap [0, 4)
    //    *      T1: fault on page 1 after the munmap returned: observed 'ok'
    const op = (id: number, thread: string, at: [number, number], call: MmCall, result: MmResult): MmHistoryOp => ({
      id,
      thread,
      invokedAt: at[0],
      respondedAt: at[1],
      call,
      result,
    });
    const mmap = op(0, 'T0', [0, 1], { op: 'mmap', addr: base, len: 4 * page }, base);
    const munmap = op(1, 'T0', [2, 3], { op: 'munmap', addr: base, len: 4 * page }, 0);

    it('should reject a fault that succeeded on a page munmapped strictly before it, naming the calls', () => {
      const fault = op(2, 'T1', [4, 5], { op: 'fault', addr: base + page + 8, write: true }, 'ok');
      const result = check([mmap, munmap, fault]);
      expect(result.verdict).toBe('not linearizable');
      if (result.verdict !== 'not linearizable') return;
      expect(result.subHistory.map((o) => o.id)).toEqual([0, 1, 2]);
      expect(result.mismatches.map((m) => [describeMmCall(m.op.call), m.model, m.observed])).toEqual([['fault(0x40001008, write)', 'SEGV_MAPERR', 'ok']]);
      expect(formatLinearizability(result, mmSequentialModel())).toMatch(/then #2 fault\(0x40001008, write\): model answered "SEGV_MAPERR", observed "ok"/);
    });

    it('should accept the same fault when it overlapped the munmap', () => {
      const fault = op(2, 'T1', [2, 5], { op: 'fault', addr: base + page + 8, write: true }, 'ok');
      expect(check([mmap, munmap, fault]).verdict).toBe('linearizable');
    });

    it('should split calls on distant pages into sub-histories and check each', () => {
      //   0123456789
      //   AA      BB   T0 maps A, T1 maps B; each faults its own: 2 sub-histories
      const h = [
        op(0, 'T0', [0, 3], { op: 'mmap', addr: base, len: 2 * page }, base),
        op(1, 'T1', [1, 2], { op: 'mmap', addr: base + 8 * page, len: 2 * page }, base + 8 * page),
        op(2, 'T0', [4, 5], { op: 'fault', addr: base, write: false }, 'ok'),
        op(3, 'T1', [4, 6], { op: 'mprotect', addr: base + 8 * page, len: page, arg: PROT_READ }, 0),
        op(4, 'T1', [7, 8], { op: 'fault', addr: base + 8 * page, write: true }, 'SEGV_ACCERR'),
      ];
      const result = check(h);
      expect(result.verdict).toBe('linearizable');
      expect(result.subHistories.map((v) => v.ops.map((o) => o.id))).toEqual([
        [0, 2],
        [1, 3, 4],
      ]);
    });

    it('should reject a result no state can give', () => {
      expect(check([mmap, { ...munmap, result: -EINVAL }]).verdict).toBe('not linearizable');
    });
  });

  describe('having recorded histories with one fault result flipped', () => {
    it('should catch most flips, always in the sub-history of the flipped call', () => {
      const flip: Record<string, MmResult> = { ok: 'SEGV_MAPERR', SEGV_MAPERR: 'ok', SEGV_ACCERR: 'ok' };
      let flipped = 0;
      let caught = 0;
      for (let seed = 0; seed < 20; seed++) {
        const { history, run } = record('global-rwsem', seed);
        const i = history.findIndex((o) => o.call.op === 'fault');
        if (i < 0) continue;
        const victim = history[i]!;
        const perturbed = history.map((o) => (o === victim ? { ...o, result: flip[o.result as string]! } : o));
        const result = check(perturbed);
        flipped++;
        if (result.verdict !== 'not linearizable') continue;
        caught++;
        expect(
          result.subHistory.map((o) => o.id),
          replayLine('global-rwsem', run),
        ).toContain(victim.id);
      }
      console.log(`linearizability: ${caught} of ${flipped} flipped fault results caught`);
      expect(flipped).toBeGreaterThan(10);
      expect(caught).toBeGreaterThan(flipped / 2);
    });
  });
});
