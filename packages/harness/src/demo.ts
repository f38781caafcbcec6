import { type Program, RwSemaphore, type RunOptions, type RunResult, runProgram, spend } from '@vmalock/core';

/**
 * The demo scenario until the harness runs conversion plans: page faults against mmap on one
 * `mmap_sem`, the contention the whole project is about. Fault threads take `mmap_sem` for read
 * around a fault; one thread keeps mapping and unmapping, taking it for write.
 */
export interface DemoParams {
  /** Threads faulting (each on its own CPU, plus one CPU for the mmap thread). */
  readonly faulters: number;
  /** Faults per fault thread. */
  readonly faultsPerThread: number;
  /** Time to handle one fault under the lock, ns. */
  readonly faultNs: number;
  /** Time between two faults of one thread, ns. */
  readonly thinkNs: number;
  /** mmap/munmap calls of the mmap thread, and the time each holds the lock for write, ns. */
  readonly mmapCalls: number;
  readonly mmapNs: number;
}

export const defaultDemoParams: DemoParams = {
  faulters: 8,
  faultsPerThread: 500,
  faultNs: 300,
  thinkNs: 200,
  mmapCalls: 20,
  mmapNs: 2000,
};

export function demoProgram(p: DemoParams): Program {
  return (sim) => {
    const mmapSem = new RwSemaphore('mmap_sem');
    for (let t = 0; t < p.faulters; t++) {
      sim.spawn(`fault${t}`, function* () {
        for (let i = 0; i < p.faultsPerThread; i++) {
          yield mmapSem.downRead();
          yield spend(p.faultNs);
          yield mmapSem.upRead();
          yield spend(p.thinkNs);
        }
      });
    }
    sim.spawn('mmap', function* () {
      // Spread the writes over the faulters' run.
      const gapNs = Math.floor(((p.faultNs + p.thinkNs) * p.faultsPerThread) / (p.mmapCalls + 1));
      for (let i = 0; i < p.mmapCalls; i++) {
        yield spend(gapNs);
        yield mmapSem.downWrite();
        yield spend(p.mmapNs);
        yield mmapSem.upWrite();
      }
    });
  };
}

/** One demo run's figures. */
export interface DemoRun {
  readonly faulters: number;
  readonly result: RunResult;
  /** Faults per simulated second (timed strategy only; null otherwise). */
  readonly faultsPerSimSec: number | null;
  readonly mmapSemContended: number;
  readonly mmapSemWaitNsMean: number;
}

export function runDemo(p: DemoParams, options: RunOptions): DemoRun {
  const result = runProgram(demoProgram(p), options);
  const stats = result.locks.find((l) => l.name === 'mmap_sem');
  const faults = p.faulters * p.faultsPerThread;
  return {
    faulters: p.faulters,
    result,
    faultsPerSimSec: options.strategy === 'timed' && result.status === 'ok' && result.simTimeNs > 0 ? faults / (result.simTimeNs / 1e9) : null,
    mmapSemContended: stats?.contended ?? 0,
    mmapSemWaitNsMean: stats !== undefined && stats.contended > 0 ? stats.waitNsTotal / stats.contended : 0,
  };
}

/** The fault-thread counts of the scaling table. */
export const demoScalingThreads = [1, 2, 4, 8, 16, 32, 64] as const;
