// Proves the linearizability checker right on objects whose answers are known by hand: a
// register and a FIFO queue, with sequential and overlapping operations, histories that are
// linearizable and histories that are not (a read that goes back in time, a dequeue that sees a
// value enqueued strictly after it). P-compositionality is shown on a map of independent
// registers (one sub-history per register; a failure names only its register's operations),
// and the step budget on an adversarial history (40 overlapping writes and a read of a value
// nobody wrote): the answer is `unknown`, with the same number of steps on every run, never a
// guess. Each witness order is replayed on the model and checked against real time.
import { describe, expect, it } from 'vitest';
import {
  type HistoryOp,
  type LinearizabilityResult,
  type SequentialModel,
  checkLinearizability,
  formatLinearizability,
  partitionHistory,
} from './linearizability.js';

// --- models ---

type RegCall = { readonly op: 'write'; readonly reg: string; readonly value: number } | { readonly op: 'read'; readonly reg: string };
type RegResult = number | null;

/** Registers by name, all 0 at first. A write returns null, a read the value. */
const registers: SequentialModel<ReadonlyMap<string, number>, RegCall, RegResult> = {
  init: () => new Map(),
  apply(state, call) {
    if (call.op === 'read') return { state, result: state.get(call.reg) ?? 0 };
    return { state: new Map(state).set(call.reg, call.value), result: null };
  },
  fingerprint: (state) => JSON.stringify([...state].sort()),
  describeCall: (call) => (call.op === 'read' ? `read(${call.reg})` : `write(${call.reg}, ${call.value})`),
};

type QueueCall = { readonly op: 'enq'; readonly value: number } | { readonly op: 'deq' };

/** A FIFO queue; dequeue from empty returns null. */
const queue: SequentialModel<readonly number[], QueueCall, number | null> = {
  init: () => [],
  apply(state, call) {
    if (call.op === 'enq') return { state: [...state, call.value], result: null };
    return state.length === 0 ? { state, result: null } : { state: state.slice(1), result: state[0]! };
  },
  fingerprint: (state) => state.join(','),
};

// --- history builders ---

let nextId = 0;
function op<C, R>(thread: string, invokedAt: number, respondedAt: number, call: C, result: R): HistoryOp<C, R> {
  return { id: nextId++, thread, invokedAt, respondedAt, call, result };
}
const w = (thread: string, at: [number, number], value: number, reg = 'x') => op<RegCall, RegResult>(thread, at[0], at[1], { op: 'write', reg, value }, null);
const r = (thread: string, at: [number, number], value: number, reg = 'x') => op<RegCall, RegResult>(thread, at[0], at[1], { op: 'read', reg }, value);
const enq = (thread: string, at: [number, number], value: number) => op<QueueCall, number | null>(thread, at[0], at[1], { op: 'enq', value }, null);
const deq = (thread: string, at: [number, number], value: number | null) => op<QueueCall, number | null>(thread, at[0], at[1], { op: 'deq' }, value);

/** The witness replays on the model with every observed result, and respects real time. */
function expectValidWitness<S, C, R>(result: LinearizabilityResult<C, R>, history: readonly HistoryOp<C, R>[], model: SequentialModel<S, C, R>): void {
  if (result.verdict !== 'linearizable') throw new Error(formatLinearizability(result, model));
  expect([...result.witness].sort((a, b) => a.id - b.id)).toEqual([...history].sort((a, b) => a.id - b.id));
  let state = model.init();
  result.witness.forEach((o, i) => {
    const next = model.apply(state, o.call);
    expect(JSON.stringify(next.result), `#${o.id}`).toBe(JSON.stringify(o.result));
    state = next.state;
    for (const later of result.witness.slice(i + 1)) expect(later.respondedAt < o.invokedAt, `#${later.id} responded before #${o.id} was invoked`).toBe(false);
  });
}

describe(checkLinearizability, () => {
  describe('having a register', () => {
    it('should accept a sequential history in its own order', () => {
      // T0: W1 ----  R1 ----
      // T1:       W2 ----  R2 ----
      const h = [w('T0', [0, 1], 1), r('T0', [4, 5], 2), w('T1', [2, 3], 2), r('T1', [6, 7], 2)];
      const result = checkLinearizability(h, registers);
      expectValidWitness(result, h, registers);
      expect(result.verdict === 'linearizable' && result.witness.map((o) => o.id)).toEqual([h[0]!.id, h[2]!.id, h[1]!.id, h[3]!.id]);
    });

    it('should reject a read of a value overwritten strictly before it was invoked', () => {
      const h = [w('T0', [0, 1], 1), w('T0', [2, 3], 2), r('T1', [4, 5], 1)];
      const result = checkLinearizability(h, registers);
      expect(result.verdict).toBe('not linearizable');
      if (result.verdict !== 'not linearizable') return;
      expect(result.mismatches.map((m) => [m.op.id, m.model, m.observed])).toEqual([[h[2]!.id, 2, 1]]);
      expect(formatLinearizability(result, registers)).toMatch(/then #\d+ read\(x\): model answered 2, observed 1/);
    });

    it('should accept either value for reads overlapping a write', () => {
      // T0: W1 ---------------------
      // T1:    R0 --   R1 --   R1 --
      const h = [w('T0', [0, 10], 1), r('T1', [1, 2], 0), r('T1', [3, 4], 1), r('T1', [5, 6], 1)];
      expectValidWitness(checkLinearizability(h, registers), h, registers);
    });

    it('should reject a new-old inversion even though every read overlaps the write', () => {
      // T0: W1 ---------------------
      // T1:    R1 --   R0 --
      const h = [w('T0', [0, 10], 1), r('T1', [1, 2], 1), r('T1', [3, 4], 0)];
      const result = checkLinearizability(h, registers);
      expect(result.verdict, formatLinearizability(result, registers)).toBe('not linearizable');
    });

    it('should treat equal times as overlapping (no order imposed on a tie)', () => {
      const h = [w('T0', [0, 5], 1), r('T1', [5, 6], 0)];
      expectValidWitness(checkLinearizability(h, registers), h, registers);
    });

    it('should refuse a history where one thread runs two operations at once', () => {
      expect(() => checkLinearizability([w('T0', [0, 5], 1), r('T0', [3, 8], 1)], registers)).toThrow(/operations of thread T0 do not overlap/);
    });
  });

  describe('having a queue', () => {
    it('should accept overlapping enqueues dequeued in either order', () => {
      const h = [enq('T0', [0, 3], 1), enq('T1', [1, 2], 2), deq('T0', [4, 5], 2), deq('T1', [6, 7], 1), deq('T1', [8, 9], null)];
      expectValidWitness(checkLinearizability(h, queue), h, queue);
    });

    it('should reject a dequeue that returns a value enqueued strictly after it', () => {
      const h = [enq('T0', [0, 1], 1), deq('T1', [2, 3], 2), enq('T0', [4, 5], 2)];
      const result = checkLinearizability(h, queue);
      expect(result.verdict).toBe('not linearizable');
      if (result.verdict !== 'not linearizable') return;
      expect(result.minimal.map((o) => o.id)).toEqual([h[1]!.id]);
      expect(result.subHistory).toHaveLength(3);
    });

    it('should reject a FIFO violation between sequential enqueues', () => {
      const h = [enq('T0', [0, 1], 1), enq('T0', [2, 3], 2), deq('T1', [4, 5], 2)];
      expect(checkLinearizability(h, queue).verdict).toBe('not linearizable');
    });
  });

  describe('having a partition by register', () => {
    const byReg = (o: HistoryOp<RegCall, RegResult>) => [o.call.reg];

    it('should check independent registers as separate sub-histories and merge their witnesses', () => {
      const h = [w('T0', [0, 4], 1, 'a'), w('T1', [1, 2], 7, 'b'), r('T1', [3, 6], 1, 'a'), r('T0', [5, 8], 7, 'b'), r('T2', [0, 9], 0, 'c')];
      expect(partitionHistory(h, byReg).map((p) => p.map((o) => o.call.reg))).toEqual([['a', 'a'], ['b', 'b'], ['c']]);
      const result = checkLinearizability(h, registers, { partition: byReg });
      expect(result.subHistories).toHaveLength(3);
      expectValidWitness(result, h, registers);
    });

    it('should join sub-histories through an operation touching two keys', () => {
      const h = [w('T0', [0, 1], 1, 'a'), w('T1', [0, 1], 2, 'b'), w('T2', [0, 1], 3, 'c')];
      const keys = (o: HistoryOp<RegCall, RegResult>) => (o.id === h[1]!.id ? ['a', 'b'] : [o.call.reg]);
      expect(partitionHistory(h, keys).map((p) => p.length)).toEqual([2, 1]);
    });

    it('should name only the failing register operations', () => {
      const h = [w('T0', [0, 1], 1, 'a'), r('T1', [2, 3], 1, 'a'), w('T0', [2, 3], 5, 'b'), r('T1', [4, 5], 0, 'b')];
      const result = checkLinearizability(h, registers, { partition: byReg });
      expect(result.verdict).toBe('not linearizable');
      if (result.verdict !== 'not linearizable') return;
      expect(result.subHistory.map((o) => o.call.reg)).toEqual(['b', 'b']);
      expect(result.mismatches.map((m) => [m.model, m.observed])).toEqual([[5, 0]]);
    });
  });

  describe('having a step budget', () => {
    // 40 writes of distinct values, all overlapping, and a read of a value none of them wrote:
    // not linearizable, but proving it means trying every subset of writes (2^40 states).
    const adversarial = (n: number) => [...Array.from({ length: n }, (_, i) => w(`T${i}`, [0, 100], i + 1)), r('R', [50, 60], -1)];

    it('should answer unknown, deterministically, when the budget runs out', () => {
      const h = adversarial(40);
      const runs = [0, 1].map(() => checkLinearizability(h, registers, { stepBudget: 20_000 }));
      for (const result of runs) {
        expect(result.verdict).toBe('unknown');
        if (result.verdict !== 'unknown') return;
        expect(result.unknown).toHaveLength(1);
        expect(result.unknown[0]!.ops).toHaveLength(41);
        expect(result.unknown[0]!.verdict === 'unknown' && result.unknown[0]!.reason).toBe('step budget');
        expect(result.steps).toBe(20_000);
      }
    });

    it('should answer not linearizable when the budget suffices', () => {
      // 8 writes: 8 * 2^8 states at most, far below the default budget.
      const result = checkLinearizability(adversarial(8), registers);
      expect(result.verdict).toBe('not linearizable');
      expect(result.steps).toBeLessThan(10_000);
    });

    it('should answer unknown when the time budget runs out', () => {
      const result = checkLinearizability(adversarial(40), registers, { stepBudget: Number.MAX_SAFE_INTEGER, timeBudgetMs: 50 });
      expect(result.verdict === 'unknown' && result.unknown[0]!.verdict === 'unknown' && result.unknown[0]!.reason).toBe('time budget');
    });
  });
});
