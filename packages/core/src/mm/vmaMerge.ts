import type { SimThread } from '../sim/thread.js';
import { vmaAssertWriteLocked } from './mmapLock.js';
import type { MmStruct } from './mmStruct.js';
import { ENOMEM, HPAGE_PMD_SIZE, PAGE_SIZE, VM_SPECIAL } from './uapi.js';
import { type AnonVma, type MmFile, type MmGen, Vma, type VmOperations } from './vma.js';

/**
 * VMA split and merge, by the kernel's rules (`mm/vma.c`): flags, file, vm_ops and pgoff
 * continuity must agree; anon_vmas must be compatible; `VM_SPECIAL` VMAs never merge; a VMA
 * whose vm_ops has `close` is never deleted by a merge (it may still grow).
 *
 * Context: the caller holds what its lock policy requires to modify the range touched, and
 * the neighbours a merge may change. These functions take no lock.
 */

/** The properties a VMA must share with a neighbour to merge with it. */
export interface VmaProps {
  readonly flags: number;
  readonly file: MmFile | null;
  readonly vmOps: VmOperations | null;
  readonly anonVma: AnonVma | null;
}

/**
 * `is_mergeable_anon_vma()`: the same anon_vma, or one side has none yet while the other's
 * anon_vma_chain is a single entry. An anon_vma inherited through fork (it has a parent) has a
 * longer chain, so it merges only with itself.
 */
export function anonVmaCompatible(a: AnonVma | null, b: AnonVma | null): boolean {
  if (a === b) return true;
  return (a === null || b === null) && (a?.parent ?? null) === null && (b?.parent ?? null) === null;
}

/** `is_mergeable_vma()` without the pgoff test: same flags, file and vm_ops, nothing special. */
export function propsMergeable(vma: Vma, props: VmaProps): boolean {
  if (vma.dummy) return false;
  if ((vma.flags & VM_SPECIAL) !== 0 || (props.flags & VM_SPECIAL) !== 0) return false;
  return vma.flags === props.flags && vma.file === props.file && vma.vmOps === props.vmOps && anonVmaCompatible(vma.anonVma, props.anonVma);
}

/**
 * R7: two VMAs merge into one only when they share one `vm_area_lock` (range-lock policies;
 * every other policy leaves `areaLock` null, so this always holds).
 */
export function shareAreaLock(a: Vma, b: Vma): boolean {
  return a.areaLock === b.areaLock;
}

/** May `vma` be deleted by a merge? Not when its vm_ops has `close`. */
export function mayRemove(vma: Vma): boolean {
  return vma.vmOps?.close === undefined;
}

/** `prev` ends at `start` and a range [start, ...) with `props` at file page `pgoff` can extend it. */
export function canMergeAfter(prev: Vma | null, start: number, props: VmaProps, pgoff: number): prev is Vma {
  return prev !== null && prev.end === start && propsMergeable(prev, props) && prev.pgoff + prev.pages === pgoff;
}

/** `next` starts at `end` and a range [start, end) with `props` at file page `pgoff` can extend it downward. */
export function canMergeBefore(next: Vma | null, start: number, end: number, props: VmaProps, pgoff: number): next is Vma {
  return next !== null && next.start === end && propsMergeable(next, props) && pgoff + (end - start) / PAGE_SIZE === next.pgoff;
}

/** The visible VMA ending exactly at `addr`, or null. */
function adjacentBelow(mm: MmStruct, addr: number): Vma | null {
  const prev = mm.findVmaPrev(addr);
  return prev !== null && prev.end === addr ? prev : null;
}

/** The visible VMA starting exactly at `addr`, or null. */
function adjacentAbove(mm: MmStruct, addr: number): Vma | null {
  const next = mm.findVma(addr);
  return next !== null && next.start === addr ? next : null;
}

/** Take `removed`'s anon_vma into the survivor when it has none (`dup_anon_vma`), then drop `removed`. */
function absorb(mm: MmStruct, survivor: Vma, removed: Vma): void {
  if (survivor.anonVma === null) survivor.anonVma = removed.anonVma;
  mm.eraseVmaUnchecked(removed);
  mm.events.merged?.(survivor, removed);
}

/**
 * `vma_merge_new_range()`: a new range [start, end) with `props` at `pgoff` is about to be
 * mapped into a hole; extend a neighbour (or both, joining them) instead of making a VMA.
 * Returns the VMA now covering the range, or null when no neighbour can take it.
 */
export function vmaMergeNewRange(mm: MmStruct, start: number, end: number, props: VmaProps, pgoff: number): Vma | null {
  const prev = adjacentBelow(mm, start);
  const next = adjacentAbove(mm, end);
  const left = canMergeAfter(prev, start, props, pgoff);
  const right = canMergeBefore(next, start, end, props, pgoff);
  if (left && right && anonVmaCompatible(prev.anonVma, next.anonVma) && mayRemove(next) && shareAreaLock(prev, next)) {
    // prev, the range and next become one VMA: prev expands over both.
    const nextEnd = next.end;
    absorb(mm, prev, next);
    mm.setVmaRangeUnchecked(prev, prev.start, nextEnd, prev.pgoff);
    return prev;
  }
  if (left) {
    mm.setVmaRangeUnchecked(prev, prev.start, end, prev.pgoff);
    if (prev.anonVma === null) prev.anonVma = props.anonVma;
    return prev;
  }
  if (right) {
    mm.setVmaRangeUnchecked(next, start, next.end, pgoff);
    if (next.anonVma === null) next.anonVma = props.anonVma;
    return next;
  }
  return null;
}

/**
 * `__split_vma()`: split `vma` at `addr`. With `newBelow`, the new VMA is [start, addr) and
 * `vma` keeps [addr, end); otherwise the new VMA is [addr, end). The new VMA copies `vma`
 * (file, anon_vma, vm_ops, the policy's lock through `events.split`), and its vm_ops `open`
 * runs. A THP mapped across `addr` is split first. Returns the new VMA, or -ENOMEM at
 * `max_map_count`.
 */
export function* splitVma(mm: MmStruct, thread: SimThread, vma: Vma, addr: number, newBelow: boolean): MmGen<Vma | number> {
  if (addr <= vma.start || addr >= vma.end || addr % PAGE_SIZE !== 0)
    throw new RangeError(`split of ${vma.toString()} at 0x${addr.toString(16)}: not strictly inside on a page boundary`);
  if (mm.mapCount >= mm.maxMapCount) return -ENOMEM;
  splitVmaUnchecked(mm, vma, addr, newBelow);
  const created = newBelow ? mm.tree.prev(vma)! : mm.tree.next(vma)!;
  if (created.vmOps?.open !== undefined) yield* created.vmOps.open(created, thread);
  return created;
}

/** The part of `splitVma` that takes no lock and runs no hook (`__split_vma` without `vm_ops->open`). */
export function splitVmaUnchecked(mm: MmStruct, vma: Vma, addr: number, newBelow: boolean): Vma {
  if (addr % HPAGE_PMD_SIZE !== 0) mm.pageTables.splitHugePmd(addr);
  const offset = (addr - vma.start) / PAGE_SIZE;
  let created: Vma;
  if (newBelow) {
    created = new Vma(vma.start, addr, vma.flags, vma.pgoff, vma.file, vma.anonVma, vma.vmOps);
    mm.setVmaRangeUnchecked(vma, addr, vma.end, vma.pgoff + offset);
  } else {
    created = new Vma(addr, vma.end, vma.flags, vma.pgoff + offset, vma.file, vma.anonVma, vma.vmOps);
    mm.setVmaRangeUnchecked(vma, vma.start, addr, vma.pgoff);
  }
  created.areaLock = vma.areaLock;
  mm.insertVmaUnchecked(created);
  mm.events.split?.(vma, created);
  return created;
}

/**
 * `vma_modify()`: give [start, end) of `vma` the properties `props` (new flags from mprotect,
 * madvise, mlock), merging with a neighbour where the kernel would (`vma_merge_existing_range`)
 * and splitting otherwise. Returns the VMA now covering [start, end), or -ENOMEM when a split
 * would pass `max_map_count` (flags unchanged; a first split already made stays, as in Linux).
 */
export function* vmaModify(mm: MmStruct, thread: SimThread, vma: Vma, start: number, end: number, props: VmaProps): MmGen<Vma | number> {
  // vma_adjust_trans_huge(): a THP mapped across a boundary that moves is split first, whether
  // the change below splits the VMA or merges part of it into a neighbour.
  if (start % HPAGE_PMD_SIZE !== 0) mm.pageTables.splitHugePmd(start);
  if (end % HPAGE_PMD_SIZE !== 0) mm.pageTables.splitHugePmd(end);
  const pgoff = vma.pgoffOf(start);
  const prev = start === vma.start ? adjacentBelow(mm, start) : null;
  const next = end === vma.end ? adjacentAbove(mm, end) : null;
  const left = canMergeAfter(prev, start, props, pgoff) && anonVmaCompatible(prev.anonVma, vma.anonVma);
  const right = canMergeBefore(next, start, end, props, pgoff) && anonVmaCompatible(next.anonVma, vma.anonVma);

  if (left && start === vma.start && end === vma.end && mayRemove(vma) && shareAreaLock(prev, vma)) {
    // The whole VMA joins prev (and next too when it can go).
    const survivor = prev;
    const nextGoes = right && mayRemove(next) && anonVmaCompatible(survivor.anonVma, next.anonVma) && shareAreaLock(survivor, next);
    const newEnd = nextGoes ? next.end : vma.end;
    absorb(mm, survivor, vma);
    if (nextGoes) absorb(mm, survivor, next);
    mm.setVmaRangeUnchecked(survivor, survivor.start, newEnd, survivor.pgoff);
    return survivor;
  }
  if (left && start === vma.start && end < vma.end) {
    // prev grows over [start, end); vma keeps the rest.
    const survivor = prev;
    mm.setVmaRangeUnchecked(vma, end, vma.end, vma.pgoffOf(end));
    mm.setVmaRangeUnchecked(survivor, survivor.start, end, survivor.pgoff);
    if (survivor.anonVma === null) survivor.anonVma = vma.anonVma;
    return survivor;
  }
  if (right && end === vma.end && start === vma.start && mayRemove(vma) && shareAreaLock(next, vma)) {
    // The whole VMA joins next.
    const survivor = next;
    const survivorEnd = survivor.end;
    absorb(mm, survivor, vma);
    mm.setVmaRangeUnchecked(survivor, start, survivorEnd, pgoff);
    return survivor;
  }
  if (right && end === vma.end && start > vma.start) {
    // next grows down over [start, end); vma keeps the rest.
    const survivor = next;
    mm.setVmaRangeUnchecked(vma, vma.start, start, vma.pgoff);
    mm.setVmaRangeUnchecked(survivor, start, survivor.end, pgoff);
    if (survivor.anonVma === null) survivor.anonVma = vma.anonVma;
    return survivor;
  }

  // No merge: split off what stays as it was, then change the middle. Like the kernel's
  // vma_modify(), each split_vma() checks max_map_count on its own: when the first split is
  // made and the second refused, the VMA stays cut in two (flags unchanged) and -ENOMEM returns.
  if (start > vma.start) {
    const r = yield* splitVma(mm, thread, vma, start, true);
    if (typeof r === 'number') return r;
  }
  if (end < vma.end) {
    const r = yield* splitVma(mm, thread, vma, end, false);
    if (typeof r === 'number') return r;
  }
  vmaAssertWriteLocked(mm, vma, 'vma_modify changes its flags');
  vma.flags = props.flags;
  if (vma.anonVma === null) vma.anonVma = props.anonVma;
  return vma;
}
