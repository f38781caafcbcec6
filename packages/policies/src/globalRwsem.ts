import {
  type HookSite,
  type LockPolicy,
  type MmGen,
  type MmLockGuard,
  type MmStruct,
  type ProvidedLock,
  type SimThread,
  TASK_SIZE,
  type Vma,
  mmapAssertLocked,
  mmapAssertWriteLocked,
} from '@vmalock/core';
import { type ProvidesTable, providesLike } from './provides.js';

/** What each hook site runs under in Linux before 6.4. */
const PROVIDES: ProvidesTable = providesLike('mmap_sem');

/**
 * `global-rwsem`: the kernel before 6.4. Everything is serialised by the one mmap_sem: faults,
 * get_user_pages and madvise(MADV_DONTNEED) take it for read; mmap, munmap, mprotect, mremap,
 * brk and flag-changing madvise for write; munmap zaps under the lock downgraded to read; stack
 * growth runs under read plus `page_table_lock` (commit 4128997b5f0e).
 */
export class GlobalRwsemPolicy implements LockPolicy {
  readonly name: string = 'global-rwsem';

  attach(_mm: MmStruct): void {}

  *lockForFault(mm: MmStruct, thread: SimThread, addr: number): MmGen<MmLockGuard> {
    yield mm.mmapSem.downRead();
    return { mm, thread, start: addr, end: addr + 1, mode: 'read', state: null };
  }

  *lockForRead(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<MmLockGuard> {
    yield mm.mmapSem.downRead();
    return { mm, thread, start, end, mode: 'read', state: null };
  }

  *lockForModify(mm: MmStruct, thread: SimThread, start: number, end: number): MmGen<MmLockGuard> {
    yield mm.mmapSem.downWrite();
    return { mm, thread, start, end, mode: 'write', state: null };
  }

  *lockForMap(mm: MmStruct, thread: SimThread, length: number, place: (mm: MmStruct) => number): MmGen<{ guard: MmLockGuard | null; addr: number }> {
    yield mm.mmapSem.downWrite();
    const addr = place(mm);
    const start = addr < 0 ? 0 : addr;
    return { guard: { mm, thread, start, end: start + length, mode: 'write', state: null }, addr };
  }

  *lockForRemap(mm: MmStruct, thread: SimThread, _oldStart: number, _oldEnd: number): MmGen<MmLockGuard> {
    yield mm.mmapSem.downWrite();
    return { mm, thread, start: 0, end: TASK_SIZE, mode: 'write', state: null };
  }

  *lockAll(mm: MmStruct, thread: SimThread, mode: 'read' | 'write'): MmGen<MmLockGuard> {
    yield mode === 'write' ? mm.mmapSem.downWrite() : mm.mmapSem.downRead();
    return { mm, thread, start: 0, end: TASK_SIZE, mode, state: null };
  }

  *downgrade(guard: MmLockGuard): MmGen<void> {
    if (guard.mode !== 'write') return;
    yield guard.mm.mmapSem.downgradeWrite();
    guard.mode = 'read';
  }

  *unlock(guard: MmLockGuard): MmGen<void> {
    if (guard.mode === 'write') {
      yield guard.mm.mmapSem.upWrite();
      guard.mm.mmLockSeq++;
    } else yield guard.mm.mmapSem.upRead();
  }

  *beginStackGrowth(guard: MmLockGuard, _newStart: number): MmGen<boolean> {
    yield guard.mm.pageTables.pageTableLock.lock();
    return true;
  }

  *endStackGrowth(guard: MmLockGuard): MmGen<void> {
    yield guard.mm.pageTables.pageTableLock.unlock();
  }

  provides(site: HookSite): readonly ProvidedLock[] {
    return PROVIDES[site];
  }

  isVmaWriteLocked(mm: MmStruct, _vma: Vma): boolean {
    return mm.mmapSem.writer !== null;
  }

  isVmaLocked(guard: MmLockGuard, _vma: Vma): boolean {
    const sem = guard.mm.mmapSem;
    return sem.writer === guard.thread || sem.readers.includes(guard.thread);
  }

  assertModify(guard: MmLockGuard, _start: number, _end: number): void {
    mmapAssertWriteLocked(guard.mm, guard.thread, 'changing VMAs needs mmap_sem for write');
  }

  assertStable(guard: MmLockGuard, _addr: number): void {
    mmapAssertLocked(guard.mm, guard.thread, 'a VMA is stable only under mmap_sem');
  }
}
