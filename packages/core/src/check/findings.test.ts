// Findings: ids from kind, subsystem and the folded message (not the seed), and schedule
// minimisation that keeps the failure's signature while shortening the prefix and dropping
// preemptions.
import { describe, expect, it } from 'vitest';
import { runProgram } from '../sim/engine.js';
import { depth2Bug } from '../sim/testPrograms.js';
import { findingId, foldMessage, minimiseSchedule, switchesOf } from './findings.js';

describe('findings', () => {
  it('should fold addresses, thread numbers and counts out of a signature', () => {
    expect(foldMessage('T3 w threw at step 41: page at 0x7fff1000 mapped 2 times')).toBe(
      foldMessage('T1 w threw at step 7: page at 0x40000000 mapped 3 times'),
    );
    expect(findingId('race', 'binder', 'x')).toBe(findingId('race', 'binder', 'x'));
    expect(findingId('race', 'binder', 'x')).not.toBe(findingId('race', 'gem', 'x'));
    expect(findingId('invariant', null, 'x')).toMatch(/^invariant-mm-[0-9a-f]{8}$/);
  });

  it('should minimise a failing schedule to one that fails the same way with no more preemptions', () => {
    let failing: { seed: number; schedule: string; message: string } | null = null;
    for (let seed = 0; seed < 500 && failing === null; seed++) {
      const r = runProgram(depth2Bug, { seed, strategy: 'random' });
      if (r.status === 'error') failing = { seed, schedule: r.schedule, message: r.failure!.message };
    }
    expect(failing).not.toBeNull();
    const sig = foldMessage(failing!.message);
    const signatureOf = (r: ReturnType<typeof runProgram>): string | null => (r.status === 'error' ? foldMessage(r.failure!.message) : null);
    const min = minimiseSchedule(depth2Bug, { seed: failing!.seed }, failing!.schedule, sig, signatureOf);
    expect(switchesOf(min)).toBeLessThanOrEqual(switchesOf(failing!.schedule));
    const replay = runProgram(depth2Bug, { seed: failing!.seed, strategy: 'replay', schedule: min });
    expect(replay.status).toBe('error');
    expect(foldMessage(replay.failure!.message)).toBe(sig);
  });
});
