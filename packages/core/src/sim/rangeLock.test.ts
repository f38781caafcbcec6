// Proves the range lock (Kara 2013, Bueso 2017): requests that do not overlap, or only read,
// are held together; overlapping writers exclude; fairness is FIFO per range (a waiting writer
// holds back later overlapping readers, nobody else); a failed trylock leaves no trace; a
// range-order inversion is reported as a deadlock with its cycle, and so is taking two ranges
// in address order while a waiter spans both (why a holder must not wait for a second range);
// a downgraded write request lets in the waiting readers it alone held back, never a writer,
// and is released as a reader. A fast-check property checks that no two conflicting ranges are
// ever held at once under random and pct schedules (fixed fast-check seed; a failure prints
// the engine seed and schedule).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { yieldNow } from './effect.js';
import { type Program, runProgram } from './engine.js';
import { RangeLock, type RangeLockRequest } from './rangeLock.js';

/** Requests as `[start,end)`, space-separated. */
function ranges(requests: readonly RangeLockRequest[]): string {
  return requests.map((r) => `[${r.start},${r.end})`).join(' ');
}

/** Run a schedule prefix (thread ids per step), then the rest non-preemptively. */
function replay(program: Program, schedule: string) {
  return runProgram(program, { seed: 1, strategy: 'replay', schedule, extendSchedule: true });
}

describe('RangeLock', () => {
  describe('having requests that do not conflict', () => {
    it('should hold disjoint writers and overlapping readers at the same time (schedule 0.1.2)', () => {
      let maxHeld = 0;
      const program: Program = (sim) => {
        const rl = new RangeLock('mm1.range');
        const ranges: [number, number, 'read' | 'write'][] = [
          [0, 10, 'write'],
          [10, 20, 'write'],
          [10, 15, 'read'],
        ];
        ranges.forEach(([s, e, mode], i) => {
          sim.spawn(`t${i}`, function* () {
            const r = rl.request(s, e, mode);
            yield r.lock();
            maxHeld = Math.max(maxHeld, rl.granted().length);
            yield yieldNow();
            yield r.unlock();
          });
        });
      };
      // 0..10 write, 10..20 write, then 10..15 read overlaps the second writer: it waits.
      const r = replay(program, '0.1.2');
      expect(r.status, r.summary).toBe('ok');
      expect(maxHeld).toBe(2);
    });
  });

  describe('having a writer waiting behind a reader', () => {
    it('should hold back a later overlapping reader but not a reader elsewhere (FIFO per range)', () => {
      const order: string[] = [];
      const program: Program = (sim) => {
        const rl = new RangeLock('mm1.range');
        const spawn = (name: string, s: number, e: number, mode: 'read' | 'write', hold: number) =>
          sim.spawn(name, function* () {
            const r = rl.request(s, e, mode);
            yield r.lock();
            order.push(name);
            for (let i = 0; i < hold; i++) yield yieldNow();
            yield r.unlock();
          });
        spawn('reader', 0, 10, 'read', 3);
        spawn('writer', 0, 10, 'write', 0);
        spawn('lateReader', 5, 6, 'read', 0);
        spawn('elsewhere', 50, 60, 'read', 0);
      };
      // reader holds; writer queues; lateReader queues behind it; elsewhere goes straight in and
      // (running on, non-preemptively) records first; then reader, and the writer before the
      // later reader although that one only wanted to read.
      const r = replay(program, '0.1.2.3');
      expect(r.status, r.summary).toBe('ok');
      expect(order).toEqual(['elsewhere', 'reader', 'writer', 'lateReader']);
    });
  });

  describe('downgradeWrite', () => {
    it('should wake the readers it alone held back, not a writer nor a reader queued behind that writer (schedule 0.1.2.3.4.0)', () => {
      const order: string[] = [];
      const program: Program = (sim) => {
        const rl = new RangeLock('mm1.range');
        // 0         1         2
        // 01234567890123456789
        // WWWWWWWWWWWWWWWWWWWW   holder: write, downgraded to read
        // aaaaa                  reader a: waits for the holder only
        //           bbbbb        writer b: waits for the holder
        //             c          reader c: waits for the holder and for b (FIFO)
        //                ddddd   reader d: waits for the holder only
        sim.spawn('holder', function* () {
          const r = rl.request(0, 20, 'write');
          yield r.lock();
          yield r.downgradeWrite();
          order.push(`downgraded; granted ${ranges(rl.granted())}; waiting ${ranges(rl.waiting())}`);
          yield yieldNow();
          yield r.unlock();
          order.push('holder unlocked');
        });
        const spawn = (name: string, s: number, e: number, mode: 'read' | 'write') =>
          sim.spawn(name, function* () {
            const r = rl.request(s, e, mode);
            yield r.lock();
            order.push(name);
            yield r.unlock();
          });
        spawn('a', 0, 5, 'read');
        spawn('b', 10, 15, 'write');
        spawn('c', 12, 13, 'read');
        spawn('d', 15, 20, 'read');
      };
      // The holder takes the range, a..d queue, the holder downgrades (a and d granted, b and c
      // still wait), then runs on non-preemptively to its unlock, which lets b in, then c.
      const r = replay(program, '0.1.2.3.4.0');
      expect(r.status, r.summary).toBe('ok');
      expect(order).toEqual(['downgraded; granted [0,20) [0,5) [15,20); waiting [10,15) [12,13)', 'holder unlocked', 'a', 'b', 'c', 'd']);
    });

    it('should refuse a request that is held for read', () => {
      const program: Program = (sim) => {
        const rl = new RangeLock('mm1.range');
        sim.spawn('reader', function* () {
          const r = rl.request(0, 10, 'read');
          yield r.lock();
          yield r.downgradeWrite();
        });
      };
      const r = replay(program, '0');
      expect(r.status).toBe('error');
      expect(r.failure?.message).toMatch(/downgrade_write\(mm1\.range\[0x0-0xa\)\) by T0 reader, which does not hold it for write/);
    });
  });

  describe('trylock', () => {
    it('should fail on a conflict without blocking anyone, and the request can be locked later', () => {
      const results: unknown[] = [];
      const program: Program = (sim) => {
        const rl = new RangeLock('mm1.range');
        sim.spawn('holder', function* () {
          const r = rl.request(0, 10, 'write');
          yield r.lock();
          yield yieldNow();
          yield yieldNow();
          yield r.unlock();
        });
        sim.spawn('trier', function* () {
          const r = rl.request(5, 6, 'read');
          results.push(yield r.trylock());
          results.push(rl.waiting().length);
          yield r.lock();
          results.push('locked');
          yield r.unlock();
        });
      };
      const r = replay(program, '0.1');
      expect(r.status, r.summary).toBe('ok');
      expect(results).toEqual([false, 0, 'locked']);
    });
  });

  describe('having two threads taking two ranges in opposite orders', () => {
    it('should report the deadlock with both threads in the cycle (schedule 0.1.0.1)', () => {
      const program: Program = (sim) => {
        const rl = new RangeLock('mm1.range');
        const take = (name: string, first: number, second: number) =>
          sim.spawn(name, function* () {
            const a = rl.request(first, first + 10, 'write');
            yield a.lock();
            const b = rl.request(second, second + 10, 'write');
            yield b.lock();
            yield b.unlock();
            yield a.unlock();
          });
        take('low-high', 0, 100);
        take('high-low', 100, 0);
      };
      const r = replay(program, '0.1.0.1');
      expect(r.status).toBe('deadlock');
      expect(r.failure?.cycle?.map((e) => e.thread)).toEqual(['T0 low-high', 'T1 high-low']);
    });
  });

  describe('having one thread take two ranges in address order while a waiter spans both', () => {
    it('should deadlock: FIFO makes the second request wait for the spanning waiter (schedule 0.1.0)', () => {
      // 0         1         2
      // 0123456789012345678901234567890
      // AAAAAAAAAA          BBBBBBBBBB   two-ranges: A, then B
      // SSSSSSSSSSSSSSSSSSSSSSSSSSSSSS   spanning: waits for A; B arrives later and waits for it
      const program: Program = (sim) => {
        const rl = new RangeLock('mm1.range');
        sim.spawn('two-ranges', function* () {
          const a = rl.request(0, 10, 'write');
          yield a.lock();
          const b = rl.request(20, 30, 'write');
          yield b.lock();
          yield b.unlock();
          yield a.unlock();
        });
        sim.spawn('spanning', function* () {
          const s = rl.request(0, 30, 'read');
          yield s.lock();
          yield s.unlock();
        });
      };
      const r = replay(program, '0.1.0');
      expect(r.status).toBe('deadlock');
      expect(r.failure?.cycle?.map((e) => e.thread)).toEqual(['T0 two-ranges', 'T1 spanning']);
    });
  });

  describe('under random and pct schedules', () => {
    const spec = fc.array(
      fc.array(fc.record({ start: fc.nat({ max: 40 }), len: fc.integer({ min: 1, max: 12 }), write: fc.boolean(), hold: fc.nat({ max: 3 }) }), {
        minLength: 1,
        maxLength: 4,
      }),
      {
        minLength: 2,
        maxLength: 4,
      },
    );

    it('should never hold two conflicting ranges at once', () => {
      fc.assert(
        fc.property(spec, fc.nat(), fc.constantFrom<'random' | 'pct'>('random', 'pct'), (threads, seed, strategy) => {
          const held: { start: number; end: number; write: boolean }[] = [];
          const program: Program = (sim) => {
            const rl = new RangeLock('mm1.range');
            threads.forEach((reqs, t) => {
              sim.spawn(`t${t}`, function* () {
                for (const q of reqs) {
                  const r = rl.request(q.start, q.start + q.len, q.write ? 'write' : 'read');
                  yield r.lock();
                  const mine = { start: q.start, end: q.start + q.len, write: q.write };
                  for (const h of held) {
                    if (h.start < mine.end && mine.start < h.end && (h.write || mine.write))
                      throw new Error(`conflicting ranges held: [${h.start},${h.end}) and [${mine.start},${mine.end})`);
                  }
                  held.push(mine);
                  for (let i = 0; i < q.hold; i++) yield yieldNow();
                  held.splice(held.indexOf(mine), 1);
                  yield r.unlock();
                }
              });
            });
          };
          const r = runProgram(program, { seed, strategy, pctSteps: 200 });
          expect(r.status, `${r.summary}\nreplay: seed=${seed} strategy=replay schedule=${r.schedule}`).toBe('ok');
        }),
        { numRuns: 300 },
      );
    });
  });
});
