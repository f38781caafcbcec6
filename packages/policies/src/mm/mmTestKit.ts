// What the mm scenario and syscall tests share: diagram columns, the flags VMAs end up with,
// a vm_operations with a counting close hook, and an operation runner that checks every mm
// invariant after each operation.
import {
  type MmGen,
  type MmStruct,
  type MmTask,
  PAGE_SIZE,
  VM_ACCOUNT,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYWRITE,
  VM_READ,
  VM_WRITE,
  type VmOperations,
  checkMmInvariants,
  runMmOp,
} from '@vmalock/core';

/** Column 0 of every diagram. */
export const BASE = 0x10000000;
/** The address of column `col` of a diagram. */
export const at = (col: number): number => BASE + col * PAGE_SIZE;
export const pages = (n: number): number => n * PAGE_SIZE;

export const MAY = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
/** A private anonymous PROT_READ|PROT_WRITE mapping: charged, hence VM_ACCOUNT. */
export const RW = VM_READ | VM_WRITE | MAY | VM_ACCOUNT;
/** RW faulted (so with an anon_vma), then mprotect(PROT_READ): mprotect_fixup keeps the charge. */
export const RO = VM_READ | MAY | VM_ACCOUNT;

/** vm_operations whose close hook counts its calls (such a VMA may grow but never be deleted by a merge). */
export function closeOps(): VmOperations & { closed: number } {
  return {
    name: 'test-close',
    closed: 0,
    *close(this: { closed: number }) {
      this.closed++;
      yield* [];
    },
  };
}

/** Run one operation to completion, then check every invariant of the mm. */
export function run<T>(mm: MmStruct, body: (task: MmTask) => MmGen<T>): T {
  const result = runMmOp(mm, body);
  checkMmInvariants(mm);
  return result;
}
