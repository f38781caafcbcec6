import type { SimThread } from '../sim/thread.js';
import type { MmStruct } from './mmStruct.js';
import { PAGE_SIZE } from './uapi.js';

/**
 * Who runs an mm operation: a simulated thread of the process owning `mm`. Operations take
 * their locks through `mm.policy`.
 */
export interface MmTask {
  readonly thread: SimThread;
  readonly mm: MmStruct;
}

/** Round up to a page (`PAGE_ALIGN`); returns a value above 2^53 unchanged for the overflow checks. */
export function pageAlign(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}
