import type { LockPolicy } from './lockPolicy.js';
import { rangeAssertCovered, vmaStartWriteRange } from './mmapLock.js';
import { MmStruct } from './mmStruct.js';
import { invalidateRangeEnd, invalidateRangeStart } from './notify.js';
import type { MmTask } from './task.js';
import { TASK_SIZE, VM_DONTCOPY, VM_SHARED, VM_WIPEONFORK } from './uapi.js';
import { AnonVma, type MmGen, Vma } from './vma.js';

/**
 * `dup_mmap()` (fork): a new mm for process `childPid` under `childPolicy`, with a copy of every
 * VMA but the VM_DONTCOPY ones. Anonymous private pages become shared copy-on-write (both sides
 * write-protected); VM_WIPEONFORK VMAs are copied empty. `vm_ops->open` runs for each copy.
 * Context: no mm lock held; takes the policy's whole-mm write lock on the parent.
 */
export function* dupMmap(task: MmTask, childPid: number, childPolicy: LockPolicy): MmGen<MmStruct> {
  const { mm: parent, thread } = task;
  const guard = yield* parent.policy.lockAll(parent, thread, 'write');
  rangeAssertCovered(guard, 0, TASK_SIZE, 'dup_mmap copies every VMA');
  const child = new MmStruct(childPid, childPolicy, {
    mmapBase: parent.mmapBase,
    maxMapCount: parent.maxMapCount,
    startBrk: parent.startBrk,
    startStack: parent.startStack,
  });
  child.brk = parent.brk;
  child.thp = parent.thp;
  for (const [fd, file] of parent.files) child.files.set(fd, file);
  const anonCopies = new Map<AnonVma, AnonVma>();
  for (const vma of [...parent.vmas()]) {
    if ((vma.flags & VM_DONTCOPY) !== 0) continue;
    const wipe = (vma.flags & VM_WIPEONFORK) !== 0;
    let anonVma: AnonVma | null = null;
    if (vma.anonVma !== null && !wipe) {
      anonVma = anonCopies.get(vma.anonVma) ?? new AnonVma(vma.anonVma);
      anonCopies.set(vma.anonVma, anonVma);
    }
    thread.work('vmaUpdateNs');
    const copy = new Vma(vma.start, vma.end, vma.flags, vma.pgoff, vma.file, anonVma, vma.vmOps);
    copy.name = vma.name;
    child.insertVmaUnchecked(copy);
    if (copy.vmOps?.open !== undefined) yield* copy.vmOps.open(copy, thread);
    if (wipe) continue;
    // copy_page_range(): share every page; private writable ones become COW on both sides.
    const cow = (vma.flags & VM_SHARED) === 0;
    // copy_page_range(): write-protecting the parent's pages invalidates secondary MMUs' copies.
    if (cow) yield* invalidateRangeStart(parent, thread, vma.start, vma.end);
    for (const { addr, view } of [...parent.pageTables.walk(vma.start, vma.end)]) {
      const writable = view.writable && !cow;
      if (view.huge) child.pageTables.setHugePmd(addr, view.page, writable);
      else child.pageTables.setPte(addr, view.page, writable);
      if (cow && view.writable) parent.pageTables.setWritable(addr, false);
    }
    if (cow) yield* invalidateRangeEnd(parent, thread, vma.start, vma.end);
  }
  yield* parent.policy.unlock(guard);
  return child;
}

/**
 * `exit_mmap()`: tear the address space down: zap every page, run `vm_ops->close`, free every
 * VMA. Context: the last user of the mm; takes the policy's whole-mm write lock.
 */
export function* exitMmap(task: MmTask): MmGen<void> {
  const { mm, thread } = task;
  const guard = yield* mm.policy.lockAll(mm, thread, 'write');
  rangeAssertCovered(guard, 0, TASK_SIZE, 'exit_mmap removes every VMA');
  yield* vmaStartWriteRange(guard, 0, TASK_SIZE, false);
  for (const n of mm.mmuNotifiers) if (n.release !== undefined) yield* n.release(mm, thread);
  const all = [...mm.tree.entries()];
  for (const vma of all) {
    // A dummy (a range lock's stand-in over a hole, R3) never maps a page: nothing to zap, and
    // walking the page tables across the holes it covers (up to the whole user space) is slow.
    if (!vma.dummy) thread.work('zapPageNs', mm.pageTables.zap(vma.start, vma.end));
    thread.work('vmaUpdateNs');
    mm.eraseVmaUnchecked(vma);
    mm.events.removed?.(vma);
  }
  for (const vma of all) if (vma.vmOps?.close !== undefined) yield* vma.vmOps.close(vma, thread);
  mm.dead = true;
  yield* mm.policy.unlock(guard);
}
