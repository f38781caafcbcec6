/**
 * A linearizability checker: is a concurrent history of operations explained by some sequential
 * order of the same operations, run on a sequential model, that respects real time (an operation
 * that responded before another was invoked comes first) and gives every operation the result it
 * was observed to return?
 *
 * Algorithm: Wing and Gong's search as improved by Lowe ("Testing for linearizability", 2017):
 * the invocations and responses form one list in time order; the search linearizes a pending
 * operation whose invocation comes before every remaining response, when the model gives it the
 * observed result, and backtracks when it meets a response whose operation is not linearized yet.
 * A configuration (set of linearized operations, fingerprint of the model's state) already tried
 * is never tried again: whatever follows it failed the first time.
 *
 * P-compositionality (Horn and Kroening, 2015): when the caller's `partition` says which keys an
 * operation touches, operations whose keys are disjoint (transitively, by union-find over the
 * keys) form independent sub-histories, each checked on its own from the model's initial state.
 * That is sound only when operations on disjoint keys neither see nor change each other's part
 * of the state; the partition function carries that obligation.
 *
 * Budget: each sub-history may apply the model at most `stepBudget` times (deterministic: the
 * verdict never depends on the machine's speed); `timeBudgetMs` adds an optional wall-clock bound
 * (not deterministic, off by default). A sub-history that runs out is `unknown`, never guessed.
 */

/** One completed operation of a history. */
export interface HistoryOp<C, R> {
  /** Its number in the history (stable: used in reports and in the witness order). */
  readonly id: number;
  /** Who ran it: operations of one thread never overlap. */
  readonly thread: string;
  /**
   * When it was invoked and when it responded, on one clock for the whole history (engine steps,
   * or positions in the order in which the run's events happened). An operation precedes another
   * only when it responded strictly before the other was invoked; equal times overlap.
   */
  readonly invokedAt: number;
  readonly respondedAt: number;
  /** What was called, with its arguments. */
  readonly call: C;
  /** What it was observed to return. */
  readonly result: R;
}

/** The sequential specification the history is checked against. */
export interface SequentialModel<S, C, R> {
  init(): S;
  /** Apply one call; must not change `state` (return a new state, or a clone). */
  apply(state: S, call: C): { readonly state: S; readonly result: R };
  /**
   * A string that is equal for two states only when every later call gives both the same result
   * and equally fingerprinted states: the memoisation prunes on it, so an incomplete fingerprint
   * can turn a linearizable history into a false alarm.
   */
  fingerprint(state: S): string;
  /** Are two results the same? Default: equal `JSON.stringify`. */
  resultsEqual?(observed: R, model: R): boolean;
  /** A call for reports. Default: `JSON.stringify`. */
  describeCall?(call: C): string;
}

/** The keys an operation touches, for P-compositionality. */
export type PartitionKey = string | number;

export interface LinearizabilityOptions<C, R> {
  /** Keys of the state each operation touches; default: one key for all (no split). */
  readonly partition?: (op: HistoryOp<C, R>) => readonly PartitionKey[];
  /** Model applications allowed per sub-history (default `defaultStepBudget`). */
  readonly stepBudget?: number;
  /** Optional wall-clock bound over the whole check, in ms (not deterministic). */
  readonly timeBudgetMs?: number;
  /** Shrink a failing sub-history by removing operations (one greedy pass; default true). */
  readonly minimise?: boolean;
}

/** The step budget per sub-history when none is given: about 0.1-1 s for a cheap model. */
export const defaultStepBudget = 100_000;

/** What the model answered for a call that could have come next, against what was observed. */
export interface Mismatch<C, R> {
  readonly op: HistoryOp<C, R>;
  readonly observed: R;
  readonly model: R;
}

/** The verdict on one sub-history. */
export type SubHistoryVerdict<C, R> =
  | { readonly verdict: 'linearizable'; readonly ops: readonly HistoryOp<C, R>[]; readonly order: readonly HistoryOp<C, R>[]; readonly steps: number }
  | {
      readonly verdict: 'not linearizable';
      readonly ops: readonly HistoryOp<C, R>[];
      readonly steps: number;
      /** The longest order that could be linearized before the search got stuck. */
      readonly longestPrefix: readonly HistoryOp<C, R>[];
      /** The calls that could have come next, with what the model answered and what was observed. */
      readonly mismatches: readonly Mismatch<C, R>[];
    }
  | { readonly verdict: 'unknown'; readonly ops: readonly HistoryOp<C, R>[]; readonly steps: number; readonly reason: 'step budget' | 'time budget' };

/** The verdict on a whole history. */
export type LinearizabilityResult<C, R> =
  | {
      readonly verdict: 'linearizable';
      /** A sequential order of every operation that respects real time and every result. */
      readonly witness: readonly HistoryOp<C, R>[];
      readonly subHistories: readonly SubHistoryVerdict<C, R>[];
      readonly steps: number;
    }
  | {
      readonly verdict: 'not linearizable';
      /** The smallest failing sub-history, as the partition gave it. */
      readonly subHistory: readonly HistoryOp<C, R>[];
      /** A subset of it that still fails: one greedy pass removed every operation it could, last first. */
      readonly minimal: readonly HistoryOp<C, R>[];
      /** The failure of `minimal`: the longest linearizable prefix and what came next. */
      readonly longestPrefix: readonly HistoryOp<C, R>[];
      readonly mismatches: readonly Mismatch<C, R>[];
      readonly subHistories: readonly SubHistoryVerdict<C, R>[];
      readonly steps: number;
    }
  | {
      readonly verdict: 'unknown';
      /** The sub-histories whose budget ran out (the others are linearizable). */
      readonly unknown: readonly SubHistoryVerdict<C, R>[];
      readonly subHistories: readonly SubHistoryVerdict<C, R>[];
      readonly steps: number;
    };

/** Check `history` against `model` (see the file comment). */
export function checkLinearizability<S, C, R>(
  history: readonly HistoryOp<C, R>[],
  model: SequentialModel<S, C, R>,
  options: LinearizabilityOptions<C, R> = {},
): LinearizabilityResult<C, R> {
  const stepBudget = options.stepBudget ?? defaultStepBudget;
  assert(Number.isSafeInteger(stepBudget) && stepBudget >= 1, `stepBudget must be a positive integer, got ${stepBudget}`);
  checkHistory(history);
  const deadlineMs = options.timeBudgetMs === undefined ? Infinity : Date.now() + options.timeBudgetMs;
  const pieces = partitionHistory(history, options.partition);
  // Smallest first: a small failing sub-history is the best evidence, and cheap to find.
  const ordered = [...pieces].sort((a, b) => a.length - b.length || a[0]!.id - b[0]!.id);
  const verdicts = ordered.map((ops) => checkSubHistory(ops, model, stepBudget, deadlineMs));
  const steps = verdicts.reduce((n, v) => n + v.steps, 0);
  const failed = verdicts.find((v) => v.verdict === 'not linearizable');
  if (failed !== undefined) {
    const minimal = options.minimise === false ? failed : minimiseFailure(failed, model, stepBudget, deadlineMs);
    assert(minimal.verdict === 'not linearizable', 'a minimised failure still fails');
    return {
      verdict: 'not linearizable',
      subHistory: failed.ops,
      minimal: minimal.ops,
      longestPrefix: minimal.longestPrefix,
      mismatches: minimal.mismatches,
      subHistories: verdicts,
      steps,
    };
  }
  const unknown = verdicts.filter((v) => v.verdict === 'unknown');
  if (unknown.length > 0) return { verdict: 'unknown', unknown, subHistories: verdicts, steps };
  return { verdict: 'linearizable', witness: mergeOrders(verdicts), subHistories: verdicts, steps };
}

/** The sub-histories of `history`: operations linked by a shared key, transitively, in id order. */
export function partitionHistory<C, R>(
  history: readonly HistoryOp<C, R>[],
  partition: ((op: HistoryOp<C, R>) => readonly PartitionKey[]) | undefined,
): HistoryOp<C, R>[][] {
  if (partition === undefined) return history.length === 0 ? [] : [[...history]];
  // Union-find over operations; each key remembers the first operation that touched it.
  const parent = history.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  const owner = new Map<string, number>();
  history.forEach((op, i) => {
    for (const key of partition(op)) {
      const k = `${typeof key}:${key}`;
      const j = owner.get(k);
      if (j === undefined) owner.set(k, i);
      else parent[find(i)] = find(j);
    }
  });
  const groups = new Map<number, HistoryOp<C, R>[]>();
  history.forEach((op, i) => {
    const root = find(i);
    const group = groups.get(root);
    if (group === undefined) groups.set(root, [op]);
    else group.push(op);
  });
  return [...groups.values()];
}

/** Describe a verdict in a few lines (for test failures and reports). */
export function formatLinearizability<S, C, R>(result: LinearizabilityResult<C, R>, model: SequentialModel<S, C, R>): string {
  const describe = (call: C): string => (model.describeCall !== undefined ? model.describeCall(call) : JSON.stringify(call));
  const opLine = (op: HistoryOp<C, R>): string =>
    `#${op.id} ${op.thread} [${op.invokedAt}, ${op.respondedAt}] ${describe(op.call)} -> ${JSON.stringify(op.result)}`;
  const pieces = `${result.subHistories.length} sub-histories, ${result.steps} model steps`;
  switch (result.verdict) {
    case 'linearizable':
      return `linearizable (${pieces}); witness: ${result.witness.map((op) => `#${op.id}`).join(' ')}`;
    case 'unknown':
      return [
        `unknown: step or time budget exhausted (${pieces}) in:`,
        ...result.unknown.map((v) => `  ${v.ops.length} operations: ${v.ops.map((op) => `#${op.id}`).join(' ')} (${v.steps} steps)`),
      ].join('\n');
    case 'not linearizable':
      return [
        `not linearizable (${pieces}); failing sub-history of ${result.subHistory.length} operations, minimal of ${result.minimal.length}:`,
        ...result.minimal.map((op) => `  ${opLine(op)}`),
        `longest linearizable prefix: ${result.longestPrefix.map((op) => `#${op.id}`).join(' ') || '(none)'}`,
        ...result.mismatches.map(
          (m) => `  then #${m.op.id} ${describe(m.op.call)}: model answered ${JSON.stringify(m.model)}, observed ${JSON.stringify(m.observed)}`,
        ),
      ].join('\n');
  }
}

// --- the search ---

/** An entry of the time-ordered list: an invocation or a response. */
interface Entry<C, R> {
  readonly op: HistoryOp<C, R>;
  /** Index of the op in the sub-history (its bit in the linearized set). */
  readonly index: number;
  readonly isCall: boolean;
  /** The call entry's matching response entry. */
  match: Entry<C, R> | null;
  prev: Entry<C, R> | null;
  next: Entry<C, R> | null;
}

/** Lowe's WGL search on one sub-history. */
function checkSubHistory<S, C, R>(
  ops: readonly HistoryOp<C, R>[],
  model: SequentialModel<S, C, R>,
  stepBudget: number,
  deadlineMs: number,
): SubHistoryVerdict<C, R> {
  const equal = (a: R, b: R): boolean => (model.resultsEqual !== undefined ? model.resultsEqual(a, b) : JSON.stringify(a) === JSON.stringify(b));
  const head = entryList(ops);
  const linearized = new Uint32Array(Math.ceil(ops.length / 32));
  const tried = new Set<string>();
  const stack: Array<{ readonly entry: Entry<C, R>; readonly state: S }> = [];
  let longest: HistoryOp<C, R>[] = [];
  let state = model.init();
  let steps = 0;
  let entry = head.next;
  while (head.next !== null) {
    assert(entry !== null, 'the search never walks past the last response');
    if (entry.isCall) {
      if (steps >= stepBudget) return { verdict: 'unknown', ops, steps, reason: 'step budget' };
      // The clock is read every 256 steps: Date.now() would cost more than a cheap model.
      if ((steps & 255) === 0 && Date.now() > deadlineMs) return { verdict: 'unknown', ops, steps, reason: 'time budget' };
      steps++;
      const next = model.apply(state, entry.op.call);
      if (equal(entry.op.result, next.result)) {
        setBit(linearized, entry.index, true);
        const key = `${linearized.join(',')}|${model.fingerprint(next.state)}`;
        if (!tried.has(key)) {
          tried.add(key);
          stack.push({ entry, state });
          if (stack.length > longest.length) longest = stack.map((s) => s.entry.op);
          state = next.state;
          lift(entry);
          entry = head.next;
          continue;
        }
        setBit(linearized, entry.index, false);
      }
      entry = entry.next;
    } else {
      // The response of an operation not linearized yet: undo the last choice.
      const top = stack.pop();
      if (top === undefined)
        return { verdict: 'not linearizable', ops, steps, longestPrefix: longest, mismatches: mismatchesAfter(ops, longest, model, equal) };
      state = top.state;
      setBit(linearized, top.entry.index, false);
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return { verdict: 'linearizable', ops, order: stack.map((s) => s.entry.op), steps };
}

/** The invocations and responses of `ops` in time order (invocations first on a tie), behind a sentinel head. */
function entryList<C, R>(ops: readonly HistoryOp<C, R>[]): Entry<C, R> {
  const entries: Entry<C, R>[] = [];
  ops.forEach((op, index) => {
    const call: Entry<C, R> = { op, index, isCall: true, match: null, prev: null, next: null };
    const ret: Entry<C, R> = { op, index, isCall: false, match: null, prev: null, next: null };
    call.match = ret;
    entries.push(call, ret);
  });
  const time = (e: Entry<C, R>): number => (e.isCall ? e.op.invokedAt : e.op.respondedAt);
  // Equal times overlap: invocations sort before responses, so no order is imposed on a tie.
  entries.sort((a, b) => time(a) - time(b) || Number(b.isCall) - Number(a.isCall) || a.op.id - b.op.id);
  const head: Entry<C, R> = { op: ops[0]!, index: -1, isCall: false, match: null, prev: null, next: null };
  let prev = head;
  for (const e of entries) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  return head;
}

/** Take an operation's two entries out of the list (it is linearized). */
function lift<C, R>(call: Entry<C, R>): void {
  const ret = call.match!;
  call.prev!.next = call.next;
  if (call.next !== null) call.next.prev = call.prev;
  ret.prev!.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

/** Put them back (backtracking), in the reverse order of `lift`. */
function unlift<C, R>(call: Entry<C, R>): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next !== null) call.next.prev = call;
}

function setBit(bits: Uint32Array, i: number, on: boolean): void {
  const w = i >>> 5;
  const m = 1 << (i & 31);
  bits[w] = on ? bits[w]! | m : bits[w]! & ~m;
}

/**
 * After the longest prefix, the operations that could come next (invoked before every remaining
 * operation's response), each with the model's answer: the ones that disagree are the evidence.
 */
function mismatchesAfter<S, C, R>(
  ops: readonly HistoryOp<C, R>[],
  prefix: readonly HistoryOp<C, R>[],
  model: SequentialModel<S, C, R>,
  equal: (a: R, b: R) => boolean,
): Mismatch<C, R>[] {
  let state = model.init();
  for (const op of prefix) state = model.apply(state, op.call).state;
  const done = new Set(prefix);
  const rest = ops.filter((op) => !done.has(op));
  const firstResponse = Math.min(...rest.map((op) => op.respondedAt));
  const out: Mismatch<C, R>[] = [];
  for (const op of rest.filter((o) => o.invokedAt <= firstResponse)) {
    const answer = model.apply(state, op.call).result;
    if (!equal(op.result, answer)) out.push({ op, observed: op.result, model: answer });
  }
  return out;
}

/**
 * Remove operations one by one (last first) while the rest still fails, each try with its own
 * budget; a try that runs out keeps the operation. One pass only, so an operation kept early may
 * become removable later: the last operations, which usually carry the impossible result, go
 * first, and what they needed before them tends to stay as context (a munmap before a fault
 * that saw its page). The removed operations are not innocent: the rest only needs them absent.
 */
function minimiseFailure<S, C, R>(
  failed: Extract<SubHistoryVerdict<C, R>, { verdict: 'not linearizable' }>,
  model: SequentialModel<S, C, R>,
  stepBudget: number,
  deadlineMs: number,
): Extract<SubHistoryVerdict<C, R>, { verdict: 'not linearizable' }> {
  let best = failed;
  for (let i = best.ops.length - 1; i >= 0 && best.ops.length > 1; i--) {
    if (i >= best.ops.length) continue;
    const fewer = best.ops.filter((_, j) => j !== i);
    const v = checkSubHistory(fewer, model, stepBudget, deadlineMs);
    if (v.verdict === 'not linearizable') best = v;
  }
  return best;
}

/**
 * One order of all operations from the sub-histories' orders: each operation gets the latest
 * invocation time of itself and those before it in its sub-history (a point inside its own
 * interval, since its order respects real time), and the points are sorted. An operation that
 * responded before another was invoked has the smaller point, so the merge respects real time.
 */
function mergeOrders<C, R>(verdicts: readonly SubHistoryVerdict<C, R>[]): HistoryOp<C, R>[] {
  const points: Array<{ readonly op: HistoryOp<C, R>; readonly at: number; readonly piece: number; readonly pos: number }> = [];
  verdicts.forEach((v, piece) => {
    assert(v.verdict === 'linearizable', 'only linearizable sub-histories are merged');
    let at = -Infinity;
    v.order.forEach((op, pos) => {
      at = Math.max(at, op.invokedAt);
      assert(at <= op.respondedAt, `the order of a sub-history respects real time (#${op.id})`);
      points.push({ op, at, piece, pos });
    });
  });
  points.sort((a, b) => a.at - b.at || a.piece - b.piece || a.pos - b.pos);
  return points.map((p) => p.op);
}

function checkHistory<C, R>(history: readonly HistoryOp<C, R>[]): void {
  const ids = new Set<number>();
  const lastByThread = new Map<string, HistoryOp<C, R>>();
  for (const op of [...history].sort((a, b) => a.invokedAt - b.invokedAt)) {
    assert(!ids.has(op.id), `operation ids are unique (#${op.id})`);
    ids.add(op.id);
    assert(Number.isFinite(op.invokedAt) && Number.isFinite(op.respondedAt), `#${op.id}: every operation has finite invocation and response times`);
    assert(op.invokedAt <= op.respondedAt, `#${op.id}: an operation responds after it is invoked`);
    const last = lastByThread.get(op.thread);
    assert(last === undefined || last.respondedAt <= op.invokedAt, `#${op.id}: operations of thread ${op.thread} do not overlap (#${last?.id})`);
    lastByThread.set(op.thread, op);
  }
}

function assert(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`linearizability: ${what}`);
}
