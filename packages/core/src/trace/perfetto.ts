/**
 * Export a recorded run (`Trace`) as Chrome/Perfetto trace-event JSON (the "JSON object
 * format": `{ traceEvents, displayTimeUnit }`), loadable in ui.perfetto.dev or chrome://tracing.
 *
 * Layout: one process; one track per simulated thread carrying its effects ('X', cat `effect`)
 * and, where they nest, its lock holds (cat `lock`) and waits (cat `wait`). Holds released out
 * of LIFO order would cross, which a track cannot show, so hold/wait slices are packed into
 * lanes: lane 0 is the thread's own track, lane k > 0 an extra track `T<id> <name> (locks k+1)`.
 * Every hand-off (a `grant` caused by another thread) is a flow arrow from the releaser's effect
 * to the grantee's hold (or the end of its wait), and every lock's queue length is a counter.
 * Marks (`PerfettoOptions.marks`: a finding's accesses, the failing step) are instant events
 * named `finding: <label>`, cat `finding`, at the start of the marked step's effect: on a thread's
 * own track when the mark names a thread, else global (a line across every track).
 *
 * Times: trace ns are written as µs (ns / 1000). Perfetto converts µs back to ns by truncating
 * `µs * 1000`, which for ~0.6% of integers lands one ns short (1.001 * 1000 = 1000.999…); such
 * values are nudged up by one ulp so that every ns time survives the round trip exactly and
 * slices that touch in the trace still touch (and nest) after import.
 */
import { LockMode } from '../sim/effect.js';
import { stepTraceNs } from '../sim/engine.js';
import type { Trace, TraceEvent, TraceObject } from './traceEvent.js';

/** The phases this exporter writes: metadata, complete slices, flow start/finish, counters, instants. */
export type PerfettoPhase = 'M' | 'X' | 's' | 'f' | 'C' | 'i';

/** An argument value of a trace event. */
export type PerfettoArg = string | number | boolean;

/** One trace event. `ts` and `dur` are µs; keys are always written in the order declared here. */
export interface PerfettoEvent {
  readonly name: string;
  readonly cat?: string;
  readonly ph: PerfettoPhase;
  readonly ts: number;
  /** 'X' only. */
  readonly dur?: number;
  readonly pid: number;
  /** Absent on process-wide events (process_name, counters). */
  readonly tid?: number;
  /** Flow id ('s'/'f'): a start and its finish share it. */
  readonly id?: number;
  /** 'f' only: bind to the enclosing slice. */
  readonly bp?: 'e';
  /** 'i' only: the instant's scope, a thread's track ('t') or global ('g'). */
  readonly s?: 't' | 'g';
  readonly args?: Readonly<Record<string, PerfettoArg>>;
}

/** A whole Chrome/Perfetto JSON trace. */
export interface PerfettoTrace {
  readonly traceEvents: readonly PerfettoEvent[];
  readonly displayTimeUnit: 'ns';
  readonly metadata?: Readonly<Record<string, PerfettoArg>>;
}

/** A step to mark in the export (a finding's access, the step a run failed at). */
export interface PerfettoMark {
  /** The engine step (`RunFailure.step`, an observer's `step`). */
  readonly step: number;
  /** The simulated thread's id (`SimThread.id`): the instant goes on its track. Absent: a global instant. */
  readonly tid?: number;
  /** The instant is named `finding: <label>`. */
  readonly label: string;
  /** Written with the instant, after `step`. */
  readonly args?: Readonly<Record<string, PerfettoArg>>;
}

/** How to export. */
export interface PerfettoOptions {
  /** The process's name (default 'vmalock simulation'). */
  readonly processName?: string;
  /** Instants to add, in this order at equal times. A mark naming a thread the trace lacks is a RangeError. */
  readonly marks?: readonly PerfettoMark[];
}

/** The one process every track belongs to. */
export const perfettoPid = 1;

const defaultProcessName = 'vmalock simulation';
/** Ops whose `mode` field is a lock mode. */
const lockOps: ReadonlySet<string> = new Set(['acquire', 'tryAcquire', 'release']);

type SliceKind = 'effect' | 'hold' | 'wait';

/** A slice being built: times in trace ns; `end` is null while a hold or wait is open. */
interface Slice {
  readonly kind: SliceKind;
  readonly name: string;
  readonly thread: number;
  readonly start: number;
  end: number | null;
  /** Creation order: the stable tie-break. */
  readonly seq: number;
  lane: number;
  readonly args: Record<string, PerfettoArg>;
}

/** Creates a slice on a thread (an open one when `end` is null). */
type MakeSlice = (kind: SliceKind, name: string, t: ThreadInfo, start: number, end: number | null, args: Record<string, PerfettoArg>) => Slice;

/** A flow arrow: its anchors are resolved to tracks once lanes are known. */
interface Flow {
  readonly id: number;
  readonly name: string;
  readonly fromThread: number;
  readonly fromTs: number;
  readonly fromSlice: Slice;
  readonly toThread: number;
  readonly toTs: number;
  readonly toSlice: Slice | null;
}

interface ThreadInfo {
  readonly id: number;
  readonly name: string;
  /** Effect slices in time order (they never overlap). */
  readonly effects: Slice[];
  /** Hold and wait slices, in creation order. */
  readonly spans: Slice[];
  /** Open holds, in acquisition order (a release closes the latest match, like the engine). */
  readonly openHolds: { readonly obj: number; readonly mode: number; readonly slice: Slice }[];
  openWait: Slice | null;
  lastEffect: Slice | null;
  exited: boolean;
  lanes: number;
}

/**
 * Convert a recorded run to a Chrome/Perfetto JSON trace. Deterministic: the same trace gives
 * the same events in the same order with the same keys.
 */
export function toPerfetto(trace: Trace, options?: PerfettoOptions): PerfettoTrace {
  const objects = new Map<number, TraceObject>();
  for (const o of trace.objects) objects.set(o.id, o);
  const objName = (id: number): string => objects.get(id)?.name ?? `#${id}`;

  const threads = new Map<number, ThreadInfo>();
  const thread = (id: number, name?: string): ThreadInfo => {
    let t = threads.get(id);
    if (t === undefined) {
      t = { id, name: name ?? '', effects: [], spans: [], openHolds: [], openWait: null, lastEffect: null, exited: false, lanes: 1 };
      threads.set(id, t);
    }
    return t;
  };

  let seq = 0;
  const slice: MakeSlice = (kind, name, t, start, end, args) => {
    const s: Slice = { kind, name, thread: t.id, start, end, seq: seq++, lane: 0, args };
    if (kind === 'effect') t.effects.push(s);
    else t.spans.push(s);
    return s;
  };
  const openHold = (t: ThreadInfo, e: { readonly obj: number; readonly mode: number; readonly ts: number }, via: string): Slice => {
    const lock = objName(e.obj);
    const mode = modeName(e.mode);
    const s = slice('hold', `hold ${lock} (${mode})`, t, e.ts, null, { lock, mode, via });
    t.openHolds.push({ obj: e.obj, mode: e.mode, slice: s });
    return s;
  };

  const counters: { readonly ns: number; readonly ev: PerfettoEvent }[] = [];
  const flows: Flow[] = [];
  let lastTs = 0;
  /** Each traced step's start, for the marks. */
  const stepStarts = new Map<number, number>();

  for (const e of trace.events) {
    lastTs = Math.max(lastTs, e.type === 'effect' ? e.ts + e.dur : e.ts);
    switch (e.type) {
      case 'thread':
        thread(e.tid, e.name);
        break;
      case 'effect': {
        if (!stepStarts.has(e.step)) stepStarts.set(e.step, e.ts);
        const t = thread(e.tid);
        t.lastEffect = slice('effect', effectName(e, objName), t, e.ts, e.ts + e.dur, effectArgs(e, objName));
        break;
      }
      case 'block': {
        const t = thread(e.tid);
        const kind = objects.get(e.obj)?.kind ?? 'unknown';
        const args: Record<string, PerfettoArg> = { on: objName(e.obj), kind };
        if (kind === 'lock') args.mode = modeName(e.mode);
        if (t.openWait !== null) closeSlice(t.openWait, e.ts, 'superseded');
        t.openWait = slice('wait', `wait ${objName(e.obj)}`, t, e.ts, null, args);
        break;
      }
      case 'grant': {
        const t = thread(e.tid);
        // A killed lock waiter is woken with -EINTR by the killer's `kill` effect: no hold.
        const from = e.fromTid >= 0 ? thread(e.fromTid) : null;
        const cause = from?.lastEffect?.args;
        const interrupted = cause?.op === 'kill' && typeof cause.obj === 'string' && cause.obj.startsWith(`T${e.tid} `);
        const isLock = objects.get(e.obj)?.kind === 'lock' && !interrupted;
        const wait = t.openWait;
        if (wait !== null) {
          closeSlice(wait, e.ts, interrupted ? 'interrupted' : isLock ? 'granted' : 'woken');
          t.openWait = null;
        }
        const hold = isLock ? openHold(t, e, 'grant') : null;
        if (from !== null) {
          const anchor = releaserAnchor(from, e.fromTs, slice);
          flows.push({
            id: flows.length + 1,
            name: `handoff ${objName(e.obj)}`,
            fromThread: from.id,
            fromTs: anchor.ts,
            fromSlice: anchor.slice,
            toThread: t.id,
            toTs: e.ts,
            toSlice: hold ?? wait,
          });
        }
        break;
      }
      case 'acquired':
        openHold(thread(e.tid), e, 'acquired');
        break;
      case 'released': {
        const t = thread(e.tid);
        const i = t.openHolds.findLastIndex((h) => h.obj === e.obj && h.mode === e.mode);
        if (i >= 0) {
          closeSlice(t.openHolds[i]!.slice, e.ts, 'released');
          t.openHolds.splice(i, 1);
        }
        break;
      }
      case 'waiters':
        counters.push({ ns: e.ts, ev: { name: `waiters ${objName(e.obj)}`, ph: 'C', ts: usOf(e.ts), pid: perfettoPid, args: { waiters: e.count } } });
        break;
      case 'exit':
        thread(e.tid).exited = true;
        break;
    }
  }

  // Holds and waits still open end with the trace.
  for (const t of threads.values()) {
    for (const s of t.spans) if (s.end === null) closeSlice(s, lastTs, 'unfinished');
  }

  const ordered = [...threads.values()].sort((a, b) => a.id - b.id);
  let laneSlots = 1;
  for (const t of ordered) laneSlots = Math.max(laneSlots, assignLanes(t));
  let stride = 10;
  while (stride <= (ordered.at(-1)?.id ?? 0) + 1) stride *= 10;
  /** The Chrome tid of lane `lane` of thread `id`: thread id + 1 on lane 0, + lane * stride above. */
  const trackOf = (id: number, lane: number): number => lane * stride + id + 1;

  const meta: PerfettoEvent[] = [{ name: 'process_name', ph: 'M', ts: 0, pid: perfettoPid, args: { name: options?.processName ?? defaultProcessName } }];
  for (const t of ordered) {
    const label = t.name === '' ? `T${t.id}` : `T${t.id} ${t.name}`;
    for (let lane = 0; lane < t.lanes; lane++) {
      const tid = trackOf(t.id, lane);
      meta.push({ name: 'thread_name', ph: 'M', ts: 0, pid: perfettoPid, tid, args: { name: lane === 0 ? label : `${label} (locks ${lane + 1})` } });
      meta.push({ name: 'thread_sort_index', ph: 'M', ts: 0, pid: perfettoPid, tid, args: { sort_index: t.id * laneSlots + lane } });
    }
  }

  const timed: { readonly ev: PerfettoEvent; readonly ns: number; readonly rank: number; readonly durNs: number; readonly seq: number }[] = [];
  let order = 0;
  for (const t of ordered) {
    for (const s of [...t.effects, ...t.spans]) {
      const end = s.end ?? s.start;
      timed.push({
        ev: {
          name: s.name,
          cat: s.kind === 'hold' ? 'lock' : s.kind,
          ph: 'X',
          ts: usOf(s.start),
          dur: usOf(end - s.start),
          pid: perfettoPid,
          tid: trackOf(t.id, s.lane),
          args: s.args,
        },
        ns: s.start,
        rank: 0,
        durNs: end - s.start,
        seq: s.seq,
      });
    }
  }
  for (const c of counters) timed.push({ ev: c.ev, ns: c.ns, rank: 1, durNs: 0, seq: order++ });
  for (const f of flows) {
    const start: PerfettoEvent = {
      name: f.name,
      cat: 'flow',
      ph: 's',
      ts: usOf(f.fromTs),
      pid: perfettoPid,
      tid: trackOf(f.fromThread, f.fromSlice.lane),
      id: f.id,
    };
    const finish: PerfettoEvent = {
      name: f.name,
      cat: 'flow',
      ph: 'f',
      ts: usOf(f.toTs),
      pid: perfettoPid,
      tid: trackOf(f.toThread, f.toSlice?.lane ?? 0),
      id: f.id,
      bp: 'e',
    };
    timed.push({ ev: start, ns: f.fromTs, rank: 2, durNs: 0, seq: order++ });
    timed.push({ ev: finish, ns: f.toTs, rank: 2, durNs: 0, seq: order++ });
  }
  for (const m of options?.marks ?? []) {
    if (!Number.isInteger(m.step) || m.step < 0) throw new RangeError(`perfetto mark '${m.label}': step must be an integer >= 0, got ${m.step}`);
    if (m.tid !== undefined && !threads.has(m.tid)) {
      throw new RangeError(
        `perfetto mark '${m.label}' at step ${m.step}: the trace has no thread T${m.tid} (threads: ${ordered.map((t) => `T${t.id}`).join(', ')})`,
      );
    }
    const ts = markTs(m.step, stepStarts, trace.timed, lastTs);
    const args: Record<string, PerfettoArg> = { step: m.step, ...m.args };
    const ev: PerfettoEvent =
      m.tid === undefined
        ? { name: `finding: ${m.label}`, cat: 'finding', ph: 'i', ts: usOf(ts), pid: perfettoPid, s: 'g', args }
        : { name: `finding: ${m.label}`, cat: 'finding', ph: 'i', ts: usOf(ts), pid: perfettoPid, tid: trackOf(m.tid, 0), s: 't', args };
    timed.push({ ev, ns: ts, rank: 3, durNs: 0, seq: order++ });
  }
  // By time; at one time slices first (outermost first, so they open before what nests in them
  // and before the flows that bind to them), then counters, then flows, then marks; then creation order.
  timed.sort((a, b) => a.ns - b.ns || a.rank - b.rank || b.durNs - a.durNs || a.seq - b.seq);

  return {
    traceEvents: [...meta, ...timed.map((x) => canonical(x.ev))],
    displayTimeUnit: 'ns',
    metadata: { source: 'vmalock', timed: trace.timed, clock: trace.timed ? 'simulated ns' : 'steps' },
  };
}

/** `toPerfetto` as a JSON string (stable key order: the same trace gives the same bytes). */
export function perfettoJson(trace: Trace, options?: PerfettoOptions): string {
  return JSON.stringify(toPerfetto(trace, options));
}

/**
 * Where a mark at `step` goes: the start of that step's effect. A step with no effect (a thread
 * that threw, a woken sleeper that went back to sleep, the step a deadlock was found at) goes at
 * `step` on the step time line, or, under `timed`, at the start of the nearest later traced
 * step, else at the trace's end.
 */
function markTs(step: number, stepStarts: ReadonlyMap<number, number>, timed: boolean, lastTs: number): number {
  const start = stepStarts.get(step);
  if (start !== undefined) return start;
  if (!timed) return step * stepTraceNs;
  let nearest = Infinity;
  for (const s of stepStarts.keys()) if (s > step && s < nearest) nearest = s;
  return stepStarts.get(nearest) ?? lastTs;
}

/** A trace ns time in µs that Perfetto's truncating µs→ns conversion maps back to `ns`. */
function usOf(ns: number): number {
  const us = ns / 1000;
  return us * 1000 < ns ? nextUp(us) : us;
}

/** The next double above a finite, non-negative `x`. */
function nextUp(x: number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  view.setBigUint64(0, view.getBigUint64(0) + 1n);
  return view.getFloat64(0);
}

function modeName(mode: number): string {
  return mode === LockMode.read ? 'read' : 'write';
}

function effectName(e: Extract<TraceEvent, { type: 'effect' }>, objName: (id: number) => string): string {
  if (e.obj < 0) return e.op;
  return lockOps.has(e.op) ? `${e.op} ${objName(e.obj)} (${modeName(e.mode)})` : `${e.op} ${objName(e.obj)}`;
}

function effectArgs(e: Extract<TraceEvent, { type: 'effect' }>, objName: (id: number) => string): Record<string, PerfettoArg> {
  const args: Record<string, PerfettoArg> = { step: e.step, op: e.op };
  if (e.obj >= 0) args.obj = objName(e.obj);
  if (lockOps.has(e.op)) args.mode = modeName(e.mode);
  else if (e.op === 'spend') args.ns = e.mode;
  else if (e.mode !== 0) args.n = e.mode;
  return args;
}

function closeSlice(s: Slice, ts: number, outcome: string): void {
  s.end = Math.max(s.start, ts);
  s.args.outcome = outcome;
}

/**
 * Where a hand-off's arrow leaves the releaser: inside the effect that caused it (the last one
 * the releaser ran; for a wake-up at thread exit, the end of its last effect). A releaser with
 * no effect at all gets a zero-length `exit` slice to anchor the arrow.
 */
function releaserAnchor(from: ThreadInfo, fromTs: number, slice: MakeSlice): { readonly ts: number; readonly slice: Slice } {
  const e = from.lastEffect;
  if (e === null) return { ts: fromTs, slice: slice('effect', 'exit', from, fromTs, fromTs, { op: 'exit' }) };
  const end = e.end ?? e.start;
  const ts = from.exited ? end : Math.min(Math.max(fromTs, e.start), end);
  return { ts, slice: e };
}

/**
 * Pack a thread's slices into lanes so that the slices of every lane nest properly. Effects
 * stay on lane 0; a hold or wait takes the lowest lane where it nests with everything already
 * there (and, on lane 0, with every effect). Returns the number of lanes.
 */
function assignLanes(t: ThreadInfo): number {
  const effects = [...t.effects].sort((a, b) => a.start - b.start || a.seq - b.seq);
  const items = [...effects, ...t.spans].sort(
    (a, b) => a.start - b.start || (b.end ?? b.start) - (a.end ?? a.start) || kindRank(a) - kindRank(b) || a.seq - b.seq,
  );
  // Per lane, the ends of the slices open at the sweep's time, innermost last.
  const stacks: number[][] = [[]];
  for (const s of items) {
    const end = s.end ?? s.start;
    if (s.kind === 'effect') {
      const stack = stacks[0]!;
      while (stack.length > 0 && stack.at(-1)! <= s.start) stack.pop();
      stack.push(end);
      s.lane = 0;
      continue;
    }
    for (let lane = 0; ; lane++) {
      if (lane === 0 && crossesEffects(effects, s.start, end)) continue;
      let stack = stacks[lane];
      if (stack === undefined) {
        stack = [];
        stacks.push(stack);
      }
      while (stack.length > 0 && stack.at(-1)! <= s.start) stack.pop();
      if (stack.length > 0 && stack.at(-1)! < end) continue;
      stack.push(end);
      s.lane = lane;
      break;
    }
  }
  t.lanes = stacks.length;
  return t.lanes;
}

function kindRank(s: Slice): number {
  return s.kind === 'effect' ? 1 : 0;
}

/** True when [start, end] partially overlaps one of the (disjoint, time-ordered) effects. */
function crossesEffects(effects: readonly Slice[], start: number, end: number): boolean {
  const a = lastStartingBefore(effects, start);
  if (a !== undefined && (a.end ?? a.start) > start && (a.end ?? a.start) < end) return true;
  const b = lastStartingBefore(effects, end);
  return b !== undefined && b.start > start && (b.end ?? b.start) > end;
}

/** The last effect starting strictly before `ts` (binary search). */
function lastStartingBefore(effects: readonly Slice[], ts: number): Slice | undefined {
  let lo = 0;
  let hi = effects.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (effects[mid]!.start < ts) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? effects[lo - 1] : undefined;
}

/** A copy with keys in the declared order and no absent keys, so the JSON is byte-stable. */
function canonical(e: PerfettoEvent): PerfettoEvent {
  return {
    name: e.name,
    ...(e.cat !== undefined ? { cat: e.cat } : {}),
    ph: e.ph,
    ts: e.ts,
    ...(e.dur !== undefined ? { dur: e.dur } : {}),
    pid: e.pid,
    ...(e.tid !== undefined ? { tid: e.tid } : {}),
    ...(e.id !== undefined ? { id: e.id } : {}),
    ...(e.bp !== undefined ? { bp: e.bp } : {}),
    ...(e.s !== undefined ? { s: e.s } : {}),
    ...(e.args !== undefined ? { args: e.args } : {}),
  };
}
