import type { SimThread } from '../sim/thread.js';
import type { MmStruct } from './mmStruct.js';
import type { MmGen } from './vma.js';

/** `mmu_notifier_invalidate_range_start()`: every notifier of `mm`, in registration order. */
export function* invalidateRangeStart(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<void> {
  for (const n of mm.mmuNotifiers) yield* n.invalidateRangeStart(mm, thread, start, end);
}

/** `mmu_notifier_invalidate_range_end()`. */
export function* invalidateRangeEnd(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<void> {
  for (const n of mm.mmuNotifiers) yield* n.invalidateRangeEnd(mm, thread, start, end);
}

/** `arch_unmap()`: every arch hook of `mm` on [start, end), after the VMAs left the tree. */
export function* archUnmap(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<void> {
  for (const h of mm.archHooks) if (h.unmap !== undefined) yield* h.unmap(mm, thread, start, end);
}
