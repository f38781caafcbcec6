// Proves that `findingTrace` replays a failing run into Perfetto JSON with the finding marked: a
// depth-2 ordering bug (`early` reads the flag before `publisher` stores it, `late` after) replayed
// from its schedule (seed=1, `1*12.0.2*12`: early's 10 yields, read and end, the store, late's 10
// yields, read and the throw at step 24) gives JSON that parses, a global instant at step 24
// naming the error, one on late's track, the two reads marked on their threads' tracks inside
// their effect slices, and the same bytes on a second replay. A mark on a thread the replay lacks
// is an error.
import { type PerfettoEvent, type PerfettoTrace, type Program, SharedLocation, runProgram, yieldNow } from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { findingTrace } from './findingTrace.js';

/** Throws 'depth-2 bug' when `early` saw flag=0 and `late` flag=1. */
const depth2Bug: Program = (sim) => {
  const flag = new SharedLocation('flag', 0, 'test');
  const seen: { early: number | null; late: number | null } = { early: null, late: null };
  const check = () => {
    if (seen.early === 0 && seen.late === 1) throw new Error('depth-2 bug: early saw flag=0, late saw flag=1');
  };
  sim.spawn('publisher', function* () {
    yield flag.write(1);
  });
  sim.spawn('early', function* () {
    for (let i = 0; i < 10; i++) yield yieldNow();
    seen.early = (yield flag.read()) as number;
    check();
  });
  sim.spawn('late', function* () {
    for (let i = 0; i < 10; i++) yield yieldNow();
    seen.late = (yield flag.read()) as number;
    check();
  });
};

const replay = { seed: 1, strategy: 'replay', schedule: '1*12.0.2*12' } as const;
const marks = [
  { step: 10, thread: 1, label: 'early reads flag' },
  { step: 23, thread: 'T2 late', label: 'late reads flag', args: { value: 1 } },
];

function trackOf(out: PerfettoTrace, tid: number | undefined): string | undefined {
  return out.traceEvents.find((e) => e.ph === 'M' && e.name === 'thread_name' && e.tid === tid)?.args?.name as string | undefined;
}

function instant(out: PerfettoTrace, name: string): PerfettoEvent {
  const found = out.traceEvents.filter((e) => e.ph === 'i' && e.name === name);
  expect(found, name).toHaveLength(1);
  return found[0]!;
}

describe('findingTrace', () => {
  it('should replay the failing run (seed=1, schedule 1*12.0.2*12) to an error at step 24 by T2 late', () => {
    const r = runProgram(depth2Bug, replay);
    expect(r.status).toBe('error');
    expect(r.failure).toMatchObject({ step: 24, thread: 'T2 late' });
  });

  it('should mark the failing step globally and on the failing thread, and the finding steps on their threads', () => {
    const out = JSON.parse(findingTrace(depth2Bug, replay, marks)) as PerfettoTrace;
    expect(out.traceEvents[0]).toMatchObject({ name: 'process_name', args: { name: 'vmalock finding replay' } });
    const global = instant(out, 'finding: error at step 24');
    expect(global).toMatchObject({ cat: 'finding', s: 'g', ts: 24, args: { step: 24 } });
    expect(global.args?.message).toMatch(/^T2 late threw at step 24: depth-2 bug/);
    const onThread = instant(out, 'finding: error (T2 late)');
    expect(onThread).toMatchObject({ s: 't', ts: 24 });
    expect(trackOf(out, onThread.tid)).toBe('T2 late');
    for (const [name, step, track] of [
      ['finding: early reads flag', 10, 'T1 early'],
      ['finding: late reads flag', 23, 'T2 late'],
    ] as const) {
      const mark = instant(out, name);
      expect(mark.args?.step).toBe(step);
      expect(trackOf(out, mark.tid)).toBe(track);
      // The instant sits at the start of its step's `read flag` effect slice, on the same track.
      const effect = out.traceEvents.find((e) => e.ph === 'X' && e.cat === 'effect' && e.args?.step === step);
      expect(effect).toMatchObject({ name: 'read flag', tid: mark.tid, ts: mark.ts });
    }
    expect(instant(out, 'finding: late reads flag').args?.value).toBe(1);
  });

  it('should give byte-identical JSON on two replays', () => {
    expect(findingTrace(depth2Bug, replay, marks)).toBe(findingTrace(depth2Bug, replay, marks));
  });

  it('should mark nothing more than the marks given when the run does not fail (T0 first)', () => {
    const out = JSON.parse(
      findingTrace(depth2Bug, { seed: 1, strategy: 'replay', schedule: '0', extendSchedule: true }, marks, { processName: 'ok run' }),
    ) as PerfettoTrace;
    expect(out.traceEvents.filter((e) => e.ph === 'i').map((e) => e.name)).toEqual(['finding: early reads flag', 'finding: late reads flag']);
    expect(out.traceEvents[0]?.args?.name).toBe('ok run');
  });

  it('should reject a mark on a thread the replay does not have', () => {
    expect(() => findingTrace(depth2Bug, replay, [{ step: 3, thread: 'T9 ghost', label: 'ghost' }])).toThrow(
      "findingTrace: mark 'ghost' names thread 'T9 ghost', which the replay does not have (threads: T0 publisher, T1 early, T2 late)",
    );
  });
});
