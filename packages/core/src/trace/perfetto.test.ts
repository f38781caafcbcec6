// Proves that `toPerfetto`/`perfettoJson` turn real engine traces into well-formed Chrome/Perfetto
// JSON: a named track per thread, effect/hold/wait slices that nest properly on every track (a
// non-LIFO release moves the crossing hold to a second lane track), flow arrows whose ends pair
// up by id and sit inside a slice of their track, and waiter counters per lock. How: small
// contended programs run through `runProgram` (timed and random strategies, plus a non-LIFO
// release, a deadlock, a killed waiter and join/wait-queue wake-ups); the exported JSON string is
// parsed back with JSON.parse and checked by independent checkers written below, all in integer ns.
// Marks become instants at their step's effect (thread-scoped on the thread's own track, or
// global), at the step's place on the time line when the step ran no effect (a deadlock's step).
import { describe, expect, it } from 'vitest';
import { type Program, type RunResult, type StrategyName, runProgram } from '../sim/engine.js';
import { join, kill, spend } from '../sim/effect.js';
import { Mutex } from '../sim/mutex.js';
import { RwSemaphore } from '../sim/rwSemaphore.js';
import type { SimThread } from '../sim/thread.js';
import { WaitQueue } from '../sim/waitQueue.js';
import { type PerfettoEvent, type PerfettoMark, type PerfettoTrace, perfettoJson, toPerfetto } from './perfetto.js';
import type { Trace } from './traceEvent.js';

/** A writer holds mmap_sem for a while; two readers arrive meanwhile and queue behind it. */
const contended: Program = (sim) => {
  const sem = new RwSemaphore('mmap_sem');
  sim.spawn('writer', function* () {
    yield sem.downWrite();
    for (let i = 0; i < 8; i++) yield spend(100);
    yield sem.upWrite();
  });
  for (const [name, delay] of [
    ['reader1', 50],
    ['reader2', 60],
  ] as const) {
    sim.spawn(name, function* () {
      yield spend(delay);
      yield sem.downRead();
      yield spend(100);
      yield sem.upRead();
    });
  }
};

/** `worker` takes A then B and releases A first; `other` queues on B meanwhile. */
const nonLifo: Program = (sim) => {
  const a = new Mutex('A');
  const b = new Mutex('B');
  sim.spawn('worker', function* () {
    yield a.lock();
    yield b.lock();
    yield spend(200);
    yield a.unlock();
    yield spend(200);
    yield b.unlock();
  });
  sim.spawn('other', function* () {
    yield spend(100);
    yield b.lock();
    yield b.unlock();
  });
};

/** The ABBA deadlock: both waits stay open to the end. */
const abba: Program = (sim) => {
  const a = new Mutex('A');
  const b = new Mutex('B');
  sim.spawn('ab', function* () {
    yield a.lock();
    yield spend(100);
    yield b.lock();
  });
  sim.spawn('ba', function* () {
    yield b.lock();
    yield spend(100);
    yield a.lock();
  });
};

/** `victim` waits killably for `m` and is killed: woken with -EINTR, it never holds `m`. */
const killed: Program = (sim) => {
  const m = new Mutex('m');
  sim.spawn('holder', function* () {
    yield m.lock();
    yield spend(1000);
    yield m.unlock();
  });
  const victim = sim.spawn('victim', function* () {
    yield spend(10);
    if ((yield m.lockKillable()) === 0) yield m.unlock();
  });
  sim.spawn('killer', function* () {
    yield spend(100);
    yield kill(victim);
  });
};

/** Wake-ups that are not lock hand-offs: a join on a thread's exit, and a wait queue. */
const wakeUps: Program = (sim) => {
  const wq = new WaitQueue('wq');
  let ready = false;
  const child: SimThread = sim.spawn('child', function* () {
    yield spend(300);
  });
  sim.spawn('parent', function* () {
    yield join(child);
  });
  sim.spawn('sleeper', function* () {
    yield wq.waitEvent(() => ready);
  });
  sim.spawn('waker', function* () {
    yield spend(200);
    ready = true;
    yield wq.wakeUpAll();
  });
};

function run(program: Program, strategy: StrategyName, seed = 1): { result: RunResult; trace: Trace; out: PerfettoTrace } {
  const result = runProgram(program, { seed, strategy, trace: true });
  if (result.trace === null) throw new Error('no trace recorded');
  return { result, trace: result.trace, out: JSON.parse(perfettoJson(result.trace)) as PerfettoTrace };
}

/** Trace µs back to integer ns (the exporter writes ns / 1000). */
const ns = (us: number): number => Math.round(us * 1000);

interface Span {
  readonly ev: PerfettoEvent;
  readonly start: number;
  readonly end: number;
}

function trackNames(out: PerfettoTrace): Map<number, string> {
  const names = new Map<number, string>();
  for (const e of out.traceEvents) if (e.ph === 'M' && e.name === 'thread_name' && e.tid !== undefined) names.set(e.tid, String(e.args?.name));
  return names;
}

function slicesByTrack(out: PerfettoTrace): Map<number, Span[]> {
  const tracks = new Map<number, Span[]>();
  for (const e of out.traceEvents) {
    if (e.ph !== 'X') continue;
    const tid = e.tid ?? -1;
    let list = tracks.get(tid);
    if (list === undefined) tracks.set(tid, (list = []));
    list.push({ ev: e, start: ns(e.ts), end: ns(e.ts + (e.dur ?? 0)) });
  }
  return tracks;
}

/** Every pair of slices on one track is disjoint or one contains the other. Returns the crossings. */
function crossings(out: PerfettoTrace): string[] {
  const bad: string[] = [];
  for (const [tid, spans] of slicesByTrack(out)) {
    for (let i = 0; i < spans.length; i++) {
      for (let j = i + 1; j < spans.length; j++) {
        const a = spans[i]!;
        const b = spans[j]!;
        const disjoint = a.end <= b.start || b.end <= a.start;
        const nested = (a.start <= b.start && b.end <= a.end) || (b.start <= a.start && a.end <= b.end);
        if (!disjoint && !nested) bad.push(`tid ${tid}: '${a.ev.name}' [${a.start},${a.end}] crosses '${b.ev.name}' [${b.start},${b.end}]`);
      }
    }
  }
  return bad;
}

/** Flow problems: unpaired ids, or an end outside every slice of its track. */
function flowProblems(out: PerfettoTrace): string[] {
  const bad: string[] = [];
  const tracks = slicesByTrack(out);
  const inSlice = (e: PerfettoEvent): boolean => (tracks.get(e.tid ?? -1) ?? []).some((s) => s.start <= ns(e.ts) && ns(e.ts) <= s.end);
  const starts = new Map<number, PerfettoEvent>();
  const finishes = new Map<number, PerfettoEvent>();
  for (const e of out.traceEvents) {
    if (e.ph !== 's' && e.ph !== 'f') continue;
    const byId = e.ph === 's' ? starts : finishes;
    if (e.id === undefined || byId.has(e.id)) bad.push(`flow '${e.ph}' with missing or duplicate id ${e.id}`);
    else byId.set(e.id, e);
    if (!inSlice(e)) bad.push(`flow '${e.ph}' ${e.id} at ${e.ts} is inside no slice of tid ${e.tid}`);
  }
  for (const [id, s] of starts) {
    const f = finishes.get(id);
    if (f === undefined) bad.push(`flow ${id} has no finish`);
    else {
      if (f.bp !== 'e') bad.push(`flow ${id} finish does not bind to its enclosing slice`);
      if (f.name !== s.name || f.cat !== s.cat) bad.push(`flow ${id} start and finish differ in name or cat`);
      if (ns(f.ts) < ns(s.ts)) bad.push(`flow ${id} goes back in time`);
    }
  }
  for (const id of finishes.keys()) if (!starts.has(id)) bad.push(`flow ${id} has no start`);
  return bad;
}

/** The checks every export must pass. */
function expectWellFormed(trace: Trace, out: PerfettoTrace): void {
  expect(out.displayTimeUnit).toBe('ns');
  // Metadata first, then non-decreasing time.
  const firstTimed = out.traceEvents.findIndex((e) => e.ph !== 'M');
  expect(out.traceEvents.slice(firstTimed).some((e) => e.ph === 'M')).toBe(false);
  const times = out.traceEvents.slice(firstTimed).map((e) => ns(e.ts));
  expect(times).toEqual([...times].sort((a, b) => a - b));
  for (const e of out.traceEvents) expect(e.pid).toBe(1);
  // A named track for every thread, on a tid of its own.
  const names = trackNames(out);
  expect(new Set(names.values()).size).toBe(names.size);
  const threads = trace.events.flatMap((e) => (e.type === 'thread' ? [e] : []));
  for (const t of threads) expect([...names.values()]).toContain(`T${t.tid} ${t.name}`);
  // Slices sit on named tracks, with non-negative durations, and nest.
  for (const e of out.traceEvents.filter((x) => x.ph === 'X')) {
    expect(names.has(e.tid ?? -1)).toBe(true);
    expect(e.dur).toBeGreaterThanOrEqual(0);
    expect(['effect', 'lock', 'wait']).toContain(e.cat);
  }
  expect(crossings(out)).toEqual([]);
  expect(flowProblems(out)).toEqual([]);
  // One flow per hand-off from a thread.
  const handoffs = trace.events.filter((e) => e.type === 'grant' && e.fromTid >= 0).length;
  expect(out.traceEvents.filter((e) => e.ph === 's')).toHaveLength(handoffs);
  // Counters are non-negative.
  for (const c of out.traceEvents.filter((e) => e.ph === 'C')) expect(c.args?.waiters).toBeGreaterThanOrEqual(0);
}

const ofName = (out: PerfettoTrace, name: string): PerfettoEvent[] => out.traceEvents.filter((e) => e.name === name);

describe('toPerfetto', () => {
  it('should export a contended rwsem run under timed with tracks, holds, waits, flows and counters', () => {
    const { trace, out } = run(contended, 'timed');
    expectWellFormed(trace, out);
    expect(ofName(out, 'hold mmap_sem (write)')).toHaveLength(1);
    expect(ofName(out, 'hold mmap_sem (read)')).toHaveLength(2);
    const waits = ofName(out, 'wait mmap_sem');
    expect(waits).toHaveLength(2);
    for (const w of waits) {
      expect(w.cat).toBe('wait');
      expect(w.dur).toBeGreaterThan(0);
    }
    expect(ofName(out, 'acquire mmap_sem (write)').every((e) => e.cat === 'effect')).toBe(true);
    // The writer's release hands the semaphore to both readers.
    const names = trackNames(out);
    const starts = out.traceEvents.filter((e) => e.ph === 's');
    expect(starts).toHaveLength(2);
    for (const s of starts) {
      expect(s.name).toBe('handoff mmap_sem');
      expect(names.get(s.tid ?? -1)).toBe('T0 writer');
    }
    const finishTracks = out.traceEvents.filter((e) => e.ph === 'f').map((e) => names.get(e.tid ?? -1));
    expect(finishTracks.sort()).toEqual(['T1 reader1', 'T2 reader2']);
    const counts = ofName(out, 'waiters mmap_sem').map((e) => e.args?.waiters);
    expect(counts.length).toBeGreaterThan(0);
    expect(counts.some((c) => typeof c === 'number' && c > 0)).toBe(true);
    expect(out.metadata?.timed).toBe(true);
  });

  it('should export well-formed traces of the contended run under random for many seeds', () => {
    let contendedRuns = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const { result, trace, out } = run(contended, 'random', seed);
      expect(result.status).toBe('ok');
      expectWellFormed(trace, out);
      expect(ofName(out, 'hold mmap_sem (write)')).toHaveLength(1);
      expect(ofName(out, 'hold mmap_sem (read)')).toHaveLength(2);
      const waits = ofName(out, 'wait mmap_sem');
      if (waits.length === 0) continue;
      contendedRuns++;
      expect(out.traceEvents.some((e) => e.ph === 's')).toBe(true);
      expect(ofName(out, 'waiters mmap_sem').some((e) => (e.args?.waiters as number) > 0)).toBe(true);
    }
    expect(contendedRuns).toBeGreaterThan(0);
  });

  it('should move a hold released out of LIFO order to a second lane track', () => {
    for (const strategy of ['timed', 'random'] as const) {
      const { trace, out } = run(nonLifo, strategy);
      expectWellFormed(trace, out);
      const names = trackNames(out);
      const main = [...names].find(([, name]) => name === 'T0 worker')?.[0];
      const lane2 = [...names].find(([, name]) => name === 'T0 worker (locks 2)')?.[0];
      expect(main).toBeDefined();
      expect(lane2).toBeDefined();
      const holdsOfWorker = (name: string): PerfettoEvent[] => ofName(out, name).filter((e) => e.tid === main || e.tid === lane2);
      const [holdA] = holdsOfWorker('hold A (write)');
      const [holdB] = holdsOfWorker('hold B (write)');
      expect(holdA?.tid).toBe(main);
      expect(holdB?.tid).toBe(lane2);
      // The two holds cross in time, which is why B had to leave the thread's own track.
      const [a, b] = [holdA!, holdB!].map((h) => ({ start: ns(h.ts), end: ns(h.ts + h.dur!) }));
      expect(a!.start < b!.start && b!.start < a!.end && a!.end < b!.end).toBe(true);
      // Effects never leave the thread's own track.
      for (const e of out.traceEvents.filter((x) => x.cat === 'effect')) expect(names.get(e.tid!)).not.toMatch(/\(locks/);
    }
  });

  it('should end holds and waits still open at a deadlock at the last timestamp', () => {
    const { result, trace, out } = run(abba, 'timed');
    expect(result.status).toBe('deadlock');
    expectWellFormed(trace, out);
    const slices = out.traceEvents.filter((e) => e.ph === 'X');
    const last = Math.max(...slices.map((e) => ns(e.ts + e.dur!)));
    const waits = slices.filter((e) => e.cat === 'wait');
    expect(waits.map((w) => w.name).sort()).toEqual(['wait A', 'wait B']);
    for (const w of waits) {
      expect(ns(w.ts + w.dur!)).toBe(last);
      expect(w.args?.outcome).toBe('unfinished');
    }
    for (const h of slices.filter((e) => e.cat === 'lock')) expect(ns(h.ts + h.dur!)).toBe(last);
  });

  it('should not show a hold for a killed waiter', () => {
    const { trace, out } = run(killed, 'timed');
    expectWellFormed(trace, out);
    const victim = [...trackNames(out)].filter(([, name]) => name.startsWith('T1 victim')).map(([tid]) => tid);
    const onVictim = out.traceEvents.filter((e) => e.ph === 'X' && victim.includes(e.tid!));
    expect(onVictim.some((e) => e.cat === 'lock')).toBe(false);
    expect(onVictim.find((e) => e.name === 'wait m')?.args?.outcome).toBe('interrupted');
    // The killer's kill effect is where the arrow leaves.
    const [start] = out.traceEvents.filter((e) => e.ph === 's');
    expect(trackNames(out).get(start!.tid!)).toBe('T2 killer');
    // Under random the kill may come too late to interrupt anything; the export is still sound.
    for (let seed = 1; seed <= 5; seed++) {
      const r = run(killed, 'random', seed);
      expectWellFormed(r.trace, r.out);
    }
  });

  it('should anchor wake-up flows of joins and wait queues inside slices', () => {
    const { result, trace, out } = run(wakeUps, 'timed');
    expect(result.status).toBe('ok');
    expectWellFormed(trace, out);
    const names = trackNames(out);
    const starts = out.traceEvents.filter((e) => e.ph === 's');
    expect(starts.map((e) => `${e.name} from ${names.get(e.tid!)}`).sort()).toEqual(['handoff T0 child from T0 child', 'handoff wq from T3 waker']);
    expect(
      out.traceEvents
        .filter((e) => e.ph === 'f')
        .map((e) => names.get(e.tid!))
        .sort(),
    ).toEqual(['T1 parent', 'T2 sleeper']);
    for (let seed = 1; seed <= 5; seed++) {
      const r = run(wakeUps, 'random', seed);
      expect(r.result.status).toBe('ok');
      expectWellFormed(r.trace, r.out);
    }
  });

  it('should be deterministic and honour processName', () => {
    const { trace } = run(contended, 'timed');
    expect(perfettoJson(trace)).toBe(perfettoJson(trace));
    expect(perfettoJson(trace)).toBe(JSON.stringify(toPerfetto(trace)));
    const named = toPerfetto(trace, { processName: 'mm test' });
    expect(named.traceEvents[0]).toEqual({ name: 'process_name', ph: 'M', ts: 0, pid: 1, args: { name: 'mm test' } });
    expect(toPerfetto(trace).traceEvents[0]?.args?.name).toBe('vmalock simulation');
  });

  it('should write times that convert back to exact ns', () => {
    const trace: Trace = {
      timed: true,
      objects: [],
      events: [
        { type: 'thread', tid: 0, name: 't', cpu: 0, ts: 0 },
        { type: 'effect', step: 0, tid: 0, ts: 1001, dur: 1003, op: 'spend', obj: -1, mode: 1000 },
      ],
    };
    const [x] = toPerfetto(trace).traceEvents.filter((e) => e.ph === 'X');
    // Perfetto truncates µs * 1000 to ns: the exported values must not land one ns short.
    expect(Math.trunc(x!.ts * 1000)).toBe(1001);
    expect(Math.trunc(x!.dur! * 1000)).toBe(1003);
  });

  describe('having marks', () => {
    /** The one instant named `finding: label`. */
    const instant = (out: PerfettoTrace, label: string): PerfettoEvent => {
      const found = out.traceEvents.filter((e) => e.ph === 'i' && e.name === `finding: ${label}`);
      expect(found).toHaveLength(1);
      return found[0]!;
    };
    const effectAt = (trace: Trace, step: number) =>
      trace.events.find((e) => e.type === 'effect' && e.step === step) as Extract<Trace['events'][number], { type: 'effect' }>;

    it('should put a thread mark on its track at its step and a global one at a deadlock (abba, random, seed=1)', () => {
      const result = runProgram(abba, { seed: 1, strategy: 'random', trace: true });
      expect(result.status).toBe('deadlock');
      const trace = result.trace!;
      // T1's `lock B`: the first acquire effect of thread 1.
      const lockB = trace.events.find((e) => e.type === 'effect' && e.tid === 1 && e.op === 'acquire') as Extract<Trace['events'][number], { type: 'effect' }>;
      const marks: PerfettoMark[] = [
        { step: lockB.step, tid: 1, label: 'ba takes B', args: { lock: 'B' } },
        { step: result.failure!.step, label: 'deadlock' },
      ];
      const out = JSON.parse(perfettoJson(trace, { marks })) as PerfettoTrace;
      expectWellFormed(trace, out);
      const onThread = instant(out, 'ba takes B');
      expect(onThread).toMatchObject({ cat: 'finding', s: 't', args: { step: lockB.step, lock: 'B' } });
      expect(trackNames(out).get(onThread.tid!)).toBe('T1 ba');
      // Inside the marked effect's slice on that track (steps span 1000 trace ns).
      expect(ns(onThread.ts)).toBe(lockB.step * 1000);
      const slice = out.traceEvents.find((e) => e.ph === 'X' && e.cat === 'effect' && e.args?.step === lockB.step)!;
      expect(slice.tid).toBe(onThread.tid);
      expect(slice.ts).toBe(onThread.ts);
      // The deadlock's step ran no effect: it sits where that step would start, after every effect.
      const global = instant(out, 'deadlock');
      expect(global).toMatchObject({ cat: 'finding', s: 'g', args: { step: result.failure!.step } });
      expect(global.tid).toBeUndefined();
      expect(ns(global.ts)).toBe(result.failure!.step * 1000);
      expect(out.traceEvents.at(-1)).toBe(out.traceEvents.find((e) => e.name === 'finding: deadlock'));
    });

    it('should put a mark at its effect under timed, and a step with no effect at the trace end', () => {
      const result = runProgram(abba, { seed: 1, strategy: 'timed', trace: true });
      expect(result.status).toBe('deadlock');
      const trace = result.trace!;
      const step2 = effectAt(trace, 2);
      const out = toPerfetto(trace, {
        marks: [
          { step: 2, tid: step2.tid, label: 'two' },
          { step: result.failure!.step, label: 'end' },
        ],
      });
      expect(ns(instant(out, 'two').ts)).toBe(step2.ts);
      const ends = out.traceEvents.filter((e) => e.ph === 'X').map((e) => ns(e.ts + e.dur!));
      expect(ns(instant(out, 'end').ts)).toBe(Math.max(...ends));
    });

    it('should keep marks at one time in the order given, and be deterministic', () => {
      const { trace } = run(contended, 'random', 3);
      const marks: PerfettoMark[] = [
        { step: 4, label: 'second access', tid: effectAt(trace, 4).tid },
        { step: 4, label: 'first access', tid: effectAt(trace, 4).tid },
      ];
      const out = toPerfetto(trace, { marks });
      expect(out.traceEvents.filter((e) => e.ph === 'i').map((e) => e.name)).toEqual(['finding: second access', 'finding: first access']);
      expect(perfettoJson(trace, { marks })).toBe(perfettoJson(trace, { marks }));
      // Without marks, no instant at all.
      expect(toPerfetto(trace).traceEvents.some((e) => e.ph === 'i')).toBe(false);
    });

    it('should reject a mark on a thread the trace lacks, or at a negative step', () => {
      const { trace } = run(contended, 'random');
      expect(() => toPerfetto(trace, { marks: [{ step: 1, tid: 7, label: 'ghost' }] })).toThrow(
        "perfetto mark 'ghost' at step 1: the trace has no thread T7 (threads: T0, T1, T2)",
      );
      expect(() => toPerfetto(trace, { marks: [{ step: -1, label: 'early' }] })).toThrow(/step must be an integer >= 0, got -1/);
    });
  });
});
