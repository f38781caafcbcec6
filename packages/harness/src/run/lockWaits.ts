// How long threads waited for locks, by lock class: the engine's lock events, request to grant,
// in simulated ns. What `vmalock run` reports per phase and bench:policies prints.
import type { EngineObserver, SimLock, SimThread } from '@vmalock/core';

/** Per-acquisition waits (request to grant, ns) by lock class (`mm#.mmap_sem`, `mm#.vm_area_lock#`). */
export class LockWaits implements EngineObserver {
  readonly #asked = new Map<SimThread, number>();
  readonly byClass = new Map<string, number[]>();

  onLockRequest(thread: SimThread): void {
    this.#asked.set(thread, thread.clockNs);
  }

  onLockAcquired(thread: SimThread, lock: SimLock): void {
    const asked = this.#asked.get(thread);
    if (asked === undefined) return;
    this.#asked.delete(thread);
    let list = this.byClass.get(lock.lockClass);
    if (list === undefined) this.byClass.set(lock.lockClass, (list = []));
    list.push(thread.clockNs - asked);
  }

  /** The `count` classes waited on longest in total, with their wait percentiles. */
  summary(count = 5): LockWaitSummary[] {
    return [...this.byClass]
      .map(([lockClass, list]) => {
        const sorted = [...list].sort((a, b) => a - b);
        return {
          lockClass,
          acquisitions: list.length,
          waitNsTotal: list.reduce((a, b) => a + b, 0),
          p50Ns: percentile(sorted, 50),
          p90Ns: percentile(sorted, 90),
          p99Ns: percentile(sorted, 99),
        };
      })
      .sort((a, b) => b.waitNsTotal - a.waitNsTotal || (a.lockClass < b.lockClass ? -1 : 1))
      .slice(0, count);
  }
}

/** One lock class's waits. */
export interface LockWaitSummary {
  readonly lockClass: string;
  readonly acquisitions: number;
  readonly waitNsTotal: number;
  readonly p50Ns: number;
  readonly p90Ns: number;
  readonly p99Ns: number;
}

/** The p-th percentile of ascending `sorted` (nearest rank; 0 when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
