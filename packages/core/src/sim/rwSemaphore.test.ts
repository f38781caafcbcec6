// Proves the Linux rwsem rules of RwSemaphore through the engine: readers share, a waiting
// writer blocks new readers, hand-off is FIFO, downgrade_write lets queued readers in but not a
// queued writer, trylocks fail when anybody waits, killable waits end with -EINTR, and misuse
// (releasing what is not held, ending with a lock held) fails the run naming the thread.
// Each scenario fixes its interleaving with an explicit `replay` schedule or a single thread order.
import { describe, expect, it } from 'vitest';
import { EINTR, kill, spend, yieldNow } from './effect.js';
import { type Program, runProgram } from './engine.js';
import { RwSemaphore } from './rwSemaphore.js';

/** Run an explicit schedule prefix (thread ids per step), then the rest non-preemptively. */
function replay(program: Program, schedule: string) {
  return runProgram(program, { seed: 1, strategy: 'replay', schedule, extendSchedule: true });
}

describe('RwSemaphore', () => {
  describe('having a writer waiting behind a reader', () => {
    // T0 holds read; T1 queues for write; T2 then asks for read and must queue behind T1.
    const order: string[] = [];
    const program: Program = (sim) => {
      const sem = new RwSemaphore('mmap_sem');
      sim.spawn('reader0', function* () {
        yield sem.downRead();
        order.push('T0 read');
        yield yieldNow();
        yield yieldNow();
        yield sem.upRead();
      });
      sim.spawn('writer', function* () {
        yield sem.downWrite();
        order.push('T1 write');
        yield sem.upWrite();
      });
      sim.spawn('reader2', function* () {
        yield sem.downRead();
        order.push('T2 read');
        yield sem.upRead();
      });
    };

    it('should block new readers until the writer has had the lock (seed=1, schedule 0.1.2)', () => {
      order.length = 0;
      const r = replay(program, '0.1.2');
      expect(r.status, r.summary).toBe('ok');
      expect(order).toEqual(['T0 read', 'T1 write', 'T2 read']);
    });
  });

  describe('having readers and a writer queued behind a writer', () => {
    it('should wake every queued reader at once when a reader heads the queue (Linux rwsem_mark_wake)', () => {
      const granted: string[] = [];
      const program: Program = (sim) => {
        const sem = new RwSemaphore('sem');
        sim.spawn('w0', function* () {
          yield sem.downWrite();
          yield spend(10);
          yield spend(10);
          yield spend(10);
          yield sem.upWrite();
        });
        sim.spawn('r1', function* () {
          yield sem.downRead();
          granted.push('r1');
          yield sem.upRead();
        });
        sim.spawn('w2', function* () {
          yield sem.downWrite();
          granted.push('w2');
          yield sem.upWrite();
        });
        sim.spawn('r3', function* () {
          yield sem.downRead();
          granted.push('r3');
          yield sem.upRead();
        });
      };
      // w0 takes it; r1, w2, r3 queue in that order; w0 releases; r1 and r3 both hold it.
      const r = replay(program, '0.1.2.3');
      expect(r.status, r.summary).toBe('ok');
      expect(granted).toEqual(['r1', 'r3', 'w2']);
    });
  });

  describe('downgradeWrite', () => {
    it('should let queued readers in but not a queued writer at the head', () => {
      const log: string[] = [];
      let semRef: RwSemaphore | null = null;
      const program: Program = (sim) => {
        const sem = (semRef = new RwSemaphore('mmap_sem'));
        sim.spawn('munmap', function* () {
          yield sem.downWrite();
          yield spend(10);
          yield sem.downgradeWrite();
          log.push(`downgraded: readers=${sem.readers.length} writer=${sem.writer?.name ?? 'none'}`);
          yield spend(10);
          yield sem.upRead();
        });
        sim.spawn('fault', function* () {
          yield sem.downRead();
          log.push('fault read');
          yield sem.upRead();
        });
      };
      // T0 takes write, T1 queues for read, T0 downgrades: T1 is let in at once.
      const r = replay(program, '0.1.0*2');
      expect(r.status, r.summary).toBe('ok');
      expect(log).toEqual(['downgraded: readers=2 writer=none', 'fault read']);
      expect(semRef!.locked).toBe(false);
    });

    it('should not let a writer at the head of the queue in, nor the readers behind it', () => {
      const program: Program = (sim) => {
        const sem = new RwSemaphore('mmap_sem');
        sim.spawn('munmap', function* () {
          yield sem.downWrite();
          yield spend(10);
          yield sem.downgradeWrite();
          // Still the only holder: the queued writer (and the reader behind it) wait.
          if (sem.readers.length !== 1 || sem.waiters.length !== 2) throw new Error(`readers=${sem.readers.length} waiters=${sem.waiters.length}`);
          yield sem.upRead();
        });
        sim.spawn('mprotect', function* () {
          yield sem.downWrite();
          yield sem.upWrite();
        });
        sim.spawn('fault', function* () {
          yield sem.downRead();
          yield sem.upRead();
        });
      };
      const r = replay(program, '0.1.2');
      expect(r.status, r.summary).toBe('ok');
    });
  });

  describe('trylocks', () => {
    it('should fail down_read_trylock while a writer waits, and succeed when the lock is free', () => {
      const results: boolean[] = [];
      const program: Program = (sim) => {
        const sem = new RwSemaphore('sem');
        sim.spawn('holder', function* () {
          yield sem.downRead();
          yield yieldNow();
          yield yieldNow();
          yield sem.upRead();
          results.push((yield sem.downReadTrylock()) as boolean);
          yield sem.upRead();
        });
        sim.spawn('writer', function* () {
          yield sem.downWrite();
          yield sem.upWrite();
        });
        sim.spawn('try', function* () {
          results.push((yield sem.downReadTrylock()) as boolean);
          results.push((yield sem.downWriteTrylock()) as boolean);
        });
      };
      // holder reads; writer queues; try fails both; holder releases; writer runs; holder trylocks.
      const r = replay(program, '0.1.2*3.0*3.1*2');
      expect(r.status, r.summary).toBe('ok');
      expect(results).toEqual([false, false, true]);
    });
  });

  describe('killable waits', () => {
    it('should end down_write_killable with -EINTR when the waiter is killed, and let the queue move on', () => {
      const seen: unknown[] = [];
      const program: Program = (sim) => {
        const sem = new RwSemaphore('mmap_sem');
        let victim: ReturnType<typeof sim.spawn> | null = null;
        sim.spawn('holder', function* () {
          yield sem.downRead();
          yield kill(victim!);
          yield sem.upRead();
        });
        victim = sim.spawn('victim', function* () {
          seen.push(yield sem.downWriteKillable());
        });
        sim.spawn('reader', function* () {
          seen.push(yield sem.downRead());
          yield sem.upRead();
        });
      };
      // holder reads; victim queues for write; reader queues behind it; holder kills victim,
      // which lets the reader in at once (it shares with holder).
      const r = replay(program, '0.1.2.0');
      expect(r.status, r.summary).toBe('ok');
      expect(seen).toEqual([-EINTR, 0]);
    });
  });

  describe('misuse', () => {
    it('should fail the run naming the thread when it releases a lock it does not hold', () => {
      const r = runProgram(
        (sim) => {
          const sem = new RwSemaphore('mmap_sem');
          sim.spawn('bad', function* () {
            yield sem.upWrite();
          });
        },
        { seed: 7, strategy: 'random' },
      );
      expect(r.status).toBe('error');
      expect(r.failure?.thread).toBe('T0 bad');
      expect(r.failure?.message).toMatch(/releases mmap_sem \(write\), which it does not hold/);
      expect(r.summary).toMatch(/^seed=7 strategy=random error at step 0/);
    });

    it('should fail the run when a thread ends holding a lock', () => {
      const r = runProgram(
        (sim) => {
          const sem = new RwSemaphore('mmap_sem');
          sim.spawn('leaky', function* () {
            yield sem.downRead();
          });
        },
        { seed: 3, strategy: 'timed' },
      );
      expect(r.status).toBe('error');
      expect(r.failure?.message).toMatch(/T0 leaky ended holding mmap_sem \(read\)/);
    });
  });
});
