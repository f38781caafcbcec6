import { createHash } from 'node:crypto';
import { type Program, type RunOptions, type RunResult, runProgram } from '../sim/engine.js';
import { decodeSchedule, encodeSchedule } from '../sim/schedule.js';

/** What kind of thing went wrong. */
export type FindingKind = 'invariant' | 'assertion' | 'race' | 'deadlock' | 'linearizability' | 'lock-order' | 'error';

/** One problem a run showed, as users see it (`vmalock flag`, reports). */
export interface Finding {
  /** Stable across seeds and runs: from kind, subsystem and site (`signature`), never from the seed. */
  readonly id: string;
  readonly kind: FindingKind;
  readonly subsystem: string | null;
  readonly policy: string;
  readonly process: string | null;
  /** The run that first showed it. */
  readonly seed: number;
  readonly strategy: string;
  readonly schedule: string;
  /** A schedule with the same signature, shortest prefix first, then fewest preemptions. */
  readonly minimised: string;
  /** What identifies "the same problem": the message with numbers and addresses folded. */
  readonly signature: string;
  /** The message, as the run reported it. */
  readonly evidence: string;
  /** On state a declared assumption covers (true), on state no declaration covers (false), or not about a subsystem (null). */
  readonly declared: boolean | null;
  /** The exact command that replays it. */
  readonly replay: string;
  /**
   * A lock-order finding: `demonstrated` when a schedule was found that really deadlocks on its
   * locks (the evidence gives it and its replay), `possible` when none was within the budget.
   */
  readonly lockOrder?: 'demonstrated' | 'possible';
}

/** Fold what varies between runs of the same problem: hex addresses, numbers, thread numbers. */
export function foldMessage(message: string): string {
  return message
    .replace(/0x[0-9a-f]+/gi, '0x#')
    .replace(/\bT\d+\b/g, 'T#')
    .replace(/\d+/g, '#');
}

/** The stable id of a finding: `kind-subsystem-xxxxxxxx` from its kind, subsystem and folded site. */
export function findingId(kind: FindingKind, subsystem: string | null, signature: string): string {
  const hash = createHash('sha256')
    .update(`${kind}\u0000${subsystem ?? ''}\u0000${signature}`)
    .digest('hex')
    .slice(0, 8);
  return `${kind}-${subsystem ?? 'mm'}-${hash}`;
}

/** How many times a schedule switches thread: its preemptions (and hand-offs). */
export function switchesOf(schedule: string): number {
  const ids = decodeSchedule(schedule);
  let n = 0;
  for (let i = 1; i < ids.length; i++) if (ids[i] !== ids[i - 1]) n++;
  return n;
}

/** Options of `minimiseSchedule`. */
export interface MinimiseOptions {
  /** Runs allowed in all (default 400): minimisation is best effort within it. */
  readonly budget?: number;
}

/**
 * Minimise a failing schedule while `signatureOf(result)` stays `signature`: first the shortest
 * prefix that, replayed and then run without preemption (`extendSchedule`), still fails the same
 * way (binary search), then drop preemptions one by one (each switch in the prefix merged into
 * the segment before it) while the failure holds. Deterministic; bounded by `budget` runs.
 * Returns the minimised schedule (the run's full recorded schedule, replayable without
 * `extendSchedule`) — or the original when nothing smaller reproduces it.
 */
export function minimiseSchedule(
  program: Program,
  base: Omit<RunOptions, 'strategy' | 'schedule' | 'extendSchedule'>,
  schedule: string,
  signature: string,
  signatureOf: (r: RunResult) => string | null,
  options: MinimiseOptions = {},
): string {
  let budget = options.budget ?? 400;
  const attempt = (prefix: readonly number[]): string | null => {
    if (budget-- <= 0) return null;
    const r = runProgram(program, { ...base, strategy: 'replay', schedule: encodeSchedule(prefix), extendSchedule: true });
    return signatureOf(r) === signature ? r.schedule : null;
  };
  let ids = decodeSchedule(schedule);
  let best = schedule;
  // 1. The shortest prefix.
  let lo = 0;
  let hi = ids.length;
  while (lo < hi && budget > 0) {
    const mid = Math.floor((lo + hi) / 2);
    const got = attempt(ids.slice(0, mid));
    if (got !== null) {
      hi = mid;
      best = got;
    } else lo = mid + 1;
  }
  ids = ids.slice(0, hi);
  // 2. Fewer preemptions: merge each switch into the segment before it, last first.
  for (let i = ids.length - 1; i > 0 && budget > 0; i--) {
    if (ids[i] === ids[i - 1]) continue;
    const merged = [...ids.slice(0, i), ...ids.slice(i).map((id, j) => (j === 0 ? ids[i - 1]! : id))];
    const trimmed = merged.slice(0, i + 1);
    const got = attempt(trimmed);
    if (got !== null && switchesOf(got) < switchesOf(best)) {
      ids = trimmed;
      best = got;
    }
  }
  return switchesOf(best) <= switchesOf(schedule) ? best : schedule;
}
