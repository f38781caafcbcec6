import type { SimThread } from '../sim/thread.js';
import type { MmStruct } from './mmStruct.js';

/** A held-lock assertion that failed (lockdep-style): what was required and what was held. */
export class LockAssertionError extends Error {}

function count(mm: MmStruct, name: string): void {
  mm.assertionCounts[name] = (mm.assertionCounts[name] ?? 0) + 1;
}

/** `mmap_assert_locked()`: `thread` holds mmap_sem in some mode. */
export function mmapAssertLocked(mm: MmStruct, thread: SimThread, why: string): void {
  count(mm, 'mmapAssertLocked');
  if (mm.mmapSem.writer === thread || mm.mmapSem.readers.includes(thread)) return;
  throw new LockAssertionError(`mmap_assert_locked(${mm.mmapSem.name}) failed in ${thread.label}: ${why}`);
}

/** `mmap_assert_write_locked()`: `thread` holds mmap_sem for write. */
export function mmapAssertWriteLocked(mm: MmStruct, thread: SimThread, why: string): void {
  count(mm, 'mmapAssertWriteLocked');
  if (mm.mmapSem.writer === thread) return;
  const held = mm.mmapSem.readers.includes(thread) ? 'holds it for read only' : 'does not hold it';
  throw new LockAssertionError(`mmap_assert_write_locked(${mm.mmapSem.name}) failed in ${thread.label} (${held}): ${why}`);
}
