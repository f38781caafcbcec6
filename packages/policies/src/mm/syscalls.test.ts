// Proves that each mm syscall of the model answers as Linux does: the errno of every refusal
// (checked against the kernel's do_mmap, do_vmi_munmap, do_mprotect_pkey, mremap, brk, do_madvise
// and the x86 fault path), the address space it leaves behind (including the partial work the
// kernel keeps when it fails half way), and the page tables it changes (zero page, allocation,
// zap, copy-on-write after fork). Each test drives the syscalls one at a time on a single
// simulated thread (runMmOp: one CPU, seed 0, nothing races), checks every mm invariant after
// each step, and asserts errno, VMAs (start, end, flags) and pages exactly. Addresses are
// explicit: mappings sit at BASE = 0x10000000 + column * 0x1000 unless the test is about
// where the kernel places them.
import {
  BRK_VM_FLAGS,
  EACCES,
  EAGAIN,
  EBADF,
  EEXIST,
  EFAULT,
  EINVAL,
  ENOMEM,
  EOPNOTSUPP,
  EPERM,
  MADV_DOFORK,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_LOCKED,
  MAP_NONBLOCK,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MMAP_MIN_ADDR,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MmFile,
  type MmLayout,
  MmStruct,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  STACK_GUARD_GAP,
  TASK_SIZE,
  VM_DONTCOPY,
  VM_DONTEXPAND,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_HUGEPAGE,
  VM_LOCKED,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_NOHUGEPAGE,
  VM_NORESERVE,
  VM_PFNMAP,
  VM_READ,
  VM_SHARED,
  VM_WRITE,
  Vma,
  checkMmInvariants,
  dupMmap,
  exitMmap,
  getUserPages,
  handleMmFault,
  renderMaps,
  sysBrk,
  sysMadvise,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { GlobalRwsemPolicy } from '../globalRwsem.js';
import { MAY, RO, RW, at, closeOps, pages, run } from './mmTestKit.js';

const RW_PROT = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
/**
 * A private anonymous PROT_READ mapping (not charged); also RW never faulted and then made
 * read-only, which Linux 6.7+ stops charging (mprotect_fixup drops VM_ACCOUNT when the
 * anonymous VMA has no anon_vma).
 */
const R = VM_READ | MAY;

const FD_RW = 3;
const FD_RDONLY = 4;
const FD_WRONLY = 5;
const FD_CLOSE = 6;

/** A fresh mm with four files open: read-write, read-only, write-only, and one with a close hook. */
function newMm(layout: MmLayout = {}): MmStruct {
  const mm = new MmStruct(1, new GlobalRwsemPolicy(), layout);
  mm.files.set(FD_RW, new MmFile('/data/rw', 11, 8, 1, true, true));
  mm.files.set(FD_RDONLY, new MmFile('/data/ro', 12, 8, 1, true, false));
  mm.files.set(FD_WRONLY, new MmFile('/data/wo', 13, 8, 1, false, true));
  mm.files.set(FD_CLOSE, new MmFile('/dev/close', 14, 8, 1, true, true, closeOps()));
  checkMmInvariants(mm);
  return mm;
}

const mmap = (mm: MmStruct, addr: number, len: number, prot: number, flags: number, fd = -1, off = 0): number =>
  run(mm, (t) => sysMmap(t, addr, len, prot, flags, fd, off));
const munmap = (mm: MmStruct, addr: number, len: number): number => run(mm, (t) => sysMunmap(t, addr, len));
const mprotect = (mm: MmStruct, addr: number, len: number, prot: number): number => run(mm, (t) => sysMprotect(t, addr, len, prot));
const mremap = (mm: MmStruct, addr: number, oldLen: number, newLen: number, flags: number, newAddr = 0): number =>
  run(mm, (t) => sysMremap(t, addr, oldLen, newLen, flags, newAddr));
const brk = (mm: MmStruct, addr: number): number => run(mm, (t) => sysBrk(t, addr));
const madvise = (mm: MmStruct, addr: number, len: number, advice: number): number => run(mm, (t) => sysMadvise(t, addr, len, advice));
const fault = (mm: MmStruct, addr: number, access: 'read' | 'write' | 'exec'): string => run(mm, (t) => handleMmFault(t, addr, access));

/** mmap(MAP_FIXED) an anonymous private range of `n` pages at column `col`. */
function mapAt(mm: MmStruct, col: number, n: number, prot = RW_PROT, flags = ANON): void {
  expect(mmap(mm, at(col), pages(n), prot, flags | MAP_FIXED)).toBe(at(col));
}

interface Shape {
  readonly start: number;
  readonly end: number;
  readonly flags: number;
}

function layout(mm: MmStruct): Shape[] {
  return [...mm.vmas()].map(({ start, end, flags }) => ({ start, end, flags }));
}

function shape(from: number, to: number, flags: number): Shape {
  return { start: at(from), end: at(to), flags };
}

function vmaAt(mm: MmStruct, addr: number): Vma {
  const vma = mm.vmaLookup(addr);
  if (vma === null) throw new Error(`no VMA at 0x${addr.toString(16)}`);
  return vma;
}

/** The columns in [0, cols) with a page present. */
function present(mm: MmStruct, cols = 8): number[] {
  return [...Array(cols).keys()].filter((col) => mm.pageTables.lookup(at(col)) !== null);
}

describe('sysMmap', () => {
  describe('having invalid arguments', () => {
    it('should return -EINVAL for a zero length', () => {
      const mm = newMm();
      expect(mmap(mm, 0, 0, RW_PROT, ANON)).toBe(-EINVAL);
      expect(mmap(mm, 0, 0, PROT_READ, MAP_PRIVATE, FD_RW)).toBe(-EINVAL);
      expect(mm.mapCount).toBe(0);
    });

    it('should return -EINVAL for an offset that is not page-aligned', () => {
      const mm = newMm();
      expect(mmap(mm, 0, pages(1), PROT_READ, MAP_PRIVATE, FD_RW, 0x800)).toBe(-EINVAL);
      expect(mm.mapCount).toBe(0);
    });

    it('should return -EINVAL for a map type neither shared nor private', () => {
      const mm = newMm();
      expect(mmap(mm, 0, pages(1), RW_PROT, MAP_ANONYMOUS)).toBe(-EINVAL);
      expect(mmap(mm, 0, pages(1), PROT_READ, 0, FD_RW)).toBe(-EINVAL);
      // do_mmap takes MAP_SHARED_VALIDATE for files only: the anonymous switch knows MAP_SHARED and MAP_PRIVATE.
      expect(mmap(mm, 0, pages(1), RW_PROT, MAP_SHARED_VALIDATE | MAP_ANONYMOUS)).toBe(-EINVAL);
      expect(mm.mapCount).toBe(0);
    });

    it('should return -EINVAL for MAP_FIXED at an address that is not page-aligned', () => {
      const mm = newMm();
      expect(mmap(mm, at(0) + 0x800, pages(1), RW_PROT, ANON | MAP_FIXED)).toBe(-EINVAL);
      expect(mm.mapCount).toBe(0);
    });

    it('should return -EINVAL for MAP_FIXED_NOREPLACE at an address that is not page-aligned, not round it as a hint', () => {
      const mm = newMm();
      expect(mmap(mm, at(0) + 0x800, pages(1), RW_PROT, ANON | MAP_FIXED_NOREPLACE)).toBe(-EINVAL);
      expect(mm.mapCount).toBe(0);
    });

    it('should return -EINVAL for MAP_GROWSDOWN on anything but a private anonymous mapping', () => {
      const mm = newMm();
      expect(mmap(mm, 0, pages(1), RW_PROT, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN)).toBe(-EINVAL);
      expect(mmap(mm, 0, pages(1), PROT_READ, MAP_PRIVATE | MAP_GROWSDOWN, FD_RW)).toBe(-EINVAL);
      expect(mmap(mm, 0, pages(1), PROT_READ, MAP_SHARED | MAP_GROWSDOWN, FD_RW)).toBe(-EINVAL);
      expect(mm.mapCount).toBe(0);
    });

    it('should return -EBADF for a file descriptor that is not open', () => {
      const mm = newMm();
      expect(mmap(mm, 0, pages(1), PROT_READ, MAP_PRIVATE, 42)).toBe(-EBADF);
      expect(mm.mapCount).toBe(0);
    });

    it('should return -EOPNOTSUPP for an unknown flag under MAP_SHARED_VALIDATE, and ignore it under MAP_SHARED', () => {
      const unknown = 0x200;
      const mm = newMm();
      expect(mmap(mm, 0, pages(1), PROT_READ, MAP_SHARED_VALIDATE | unknown, FD_RW)).toBe(-EOPNOTSUPP);
      expect(mm.mapCount).toBe(0);
      expect(mmap(mm, at(0), pages(1), PROT_READ, MAP_SHARED | MAP_FIXED | unknown, FD_RW)).toBe(at(0));
      expect(mm.mapCount).toBe(1);
    });
  });

  describe('having a file opened read-only', () => {
    it('should return -EACCES for a shared writable mapping', () => {
      const mm = newMm();
      expect(mmap(mm, 0, pages(1), RW_PROT, MAP_SHARED, FD_RDONLY)).toBe(-EACCES);
      expect(mm.mapCount).toBe(0);
    });

    it('should map it shared read-only without VM_MAYWRITE, and private writable', () => {
      const mm = newMm();
      expect(mmap(mm, at(0), pages(1), PROT_READ, MAP_SHARED | MAP_FIXED, FD_RDONLY)).toBe(at(0));
      expect(mmap(mm, at(2), pages(1), RW_PROT, MAP_PRIVATE | MAP_FIXED, FD_RDONLY)).toBe(at(2));
      // A shared mapping of a file that cannot be written keeps VM_MAYSHARE but neither VM_SHARED nor VM_MAYWRITE.
      expect(layout(mm)).toEqual([shape(0, 1, VM_READ | VM_MAYREAD | VM_MAYEXEC | VM_MAYSHARE), shape(2, 3, RW)]);
      expect(
        renderMaps(mm)
          .split('\n')
          .map((line) => line.slice(18, 22)),
      ).toEqual(['r--s', 'rw-p', '']);
    });
  });

  describe('having a file not opened for reading', () => {
    it('should return -EACCES for any mapping of it', () => {
      const mm = newMm();
      expect(mmap(mm, 0, pages(1), PROT_READ, MAP_PRIVATE, FD_WRONLY)).toBe(-EACCES);
      expect(mmap(mm, 0, pages(1), PROT_WRITE, MAP_SHARED, FD_WRONLY)).toBe(-EACCES);
      expect(mm.mapCount).toBe(0);
    });
  });

  describe('having MAP_FIXED_NOREPLACE', () => {
    it('should return -EEXIST over any part of a mapping and change nothing', () => {
      // 01234
      //  AA     NOREPLACE over [2,4): -EEXIST
      const mm = newMm();
      mapAt(mm, 1, 2);
      const before = renderMaps(mm);
      expect(mmap(mm, at(2), pages(2), RW_PROT, ANON | MAP_FIXED_NOREPLACE)).toBe(-EEXIST);
      expect(mmap(mm, at(0), pages(5), RW_PROT, ANON | MAP_FIXED_NOREPLACE)).toBe(-EEXIST);
      expect(renderMaps(mm)).toBe(before);
    });

    it('should map exactly there when the range is free', () => {
      const mm = newMm();
      mapAt(mm, 1, 2);
      expect(mmap(mm, at(4), pages(1), PROT_READ, ANON | MAP_FIXED_NOREPLACE)).toBe(at(4));
      expect(layout(mm)).toEqual([shape(1, 3, RW), shape(4, 5, R)]);
    });
  });

  describe('having no room for the mapping', () => {
    it('should return -ENOMEM for a length beyond the user address space', () => {
      const mm = newMm();
      expect(mmap(mm, 0, TASK_SIZE - MMAP_MIN_ADDR + PAGE_SIZE, RW_PROT, ANON)).toBe(-ENOMEM);
      expect(mmap(mm, 0, TASK_SIZE + PAGE_SIZE, RW_PROT, ANON)).toBe(-ENOMEM);
      expect(mm.mapCount).toBe(0);
    });

    it('should return -ENOMEM for MAP_FIXED past the top, and -EPERM below mmap_min_addr', () => {
      const mm = newMm();
      expect(mmap(mm, TASK_SIZE - PAGE_SIZE, pages(2), RW_PROT, ANON | MAP_FIXED)).toBe(-ENOMEM);
      expect(mmap(mm, MMAP_MIN_ADDR - PAGE_SIZE, pages(1), RW_PROT, ANON | MAP_FIXED)).toBe(-EPERM);
      expect(mm.mapCount).toBe(0);
    });
  });

  describe('having max_map_count VMAs', () => {
    it('should allow one more (do_mmap checks map_count > max before adding), then return -ENOMEM', () => {
      const mm = newMm({ maxMapCount: 2 });
      mapAt(mm, 0, 1);
      mapAt(mm, 2, 1, PROT_READ);
      mapAt(mm, 4, 1);
      expect(mm.mapCount).toBe(3);
      const before = renderMaps(mm);
      expect(mmap(mm, at(6), pages(1), RW_PROT, ANON | MAP_FIXED)).toBe(-ENOMEM);
      // Even a mapping that would only extend a neighbour: the check comes first.
      expect(mmap(mm, at(5), pages(1), RW_PROT, ANON | MAP_FIXED)).toBe(-ENOMEM);
      expect(mmap(mm, 0, pages(1), RW_PROT, ANON)).toBe(-ENOMEM);
      expect(renderMaps(mm)).toBe(before);
    });
  });

  describe('having an address hint', () => {
    it('should map exactly at a free hint, rounded down to a page', () => {
      const mm = newMm();
      expect(mmap(mm, at(3), pages(2), RW_PROT, ANON)).toBe(at(3));
      expect(mmap(mm, at(8) + 0x123, pages(1), RW_PROT, ANON)).toBe(at(8));
      expect(layout(mm)).toEqual([shape(3, 5, RW), shape(8, 9, RW)]);
    });

    it('should ignore a hint that is taken and map below mmap_base instead', () => {
      const mm = newMm();
      mapAt(mm, 3, 2);
      const got = mmap(mm, at(4), pages(2), RW_PROT, ANON);
      expect(got).not.toBe(at(4));
      expect(got % PAGE_SIZE).toBe(0);
      expect(got + pages(2)).toBeLessThanOrEqual(mm.mmapBase);
      expect(layout(mm)).toEqual([shape(3, 5, RW), { start: got, end: got + pages(2), flags: RW }]);
    });
  });

  describe('having MAP_FIXED over existing mappings', () => {
    it('should replace the part it covers, zapping its pages', () => {
      // 01234
      // AAAAA  ->  AA*AA with * read-only and empty
      const mm = newMm();
      mapAt(mm, 0, 5);
      for (let col = 0; col < 5; col++) expect(fault(mm, at(col), 'write')).toBe('ok');
      expect(mm.pageTables.rssAnon).toBe(5);
      mapAt(mm, 2, 1, PROT_READ);
      expect(layout(mm)).toEqual([shape(0, 2, RW), shape(2, 3, R), shape(3, 5, RW)]);
      expect(present(mm)).toEqual([0, 1, 3, 4]);
      expect(mm.pageTables.rssAnon).toBe(4);
    });

    it('should leave one VMA when the new mapping is like the one it cuts (merging both sides)', () => {
      const mm = newMm();
      mapAt(mm, 0, 5);
      mapAt(mm, 2, 1);
      expect(layout(mm)).toEqual([shape(0, 5, RW)]);
    });

    it('should replace several VMAs and the holes between them with one', () => {
      // 0123456789
      // AA BB  CC   ->  A*******C
      const mm = newMm();
      mapAt(mm, 0, 2, PROT_READ);
      mapAt(mm, 3, 2, PROT_READ);
      mapAt(mm, 7, 2, PROT_READ);
      mapAt(mm, 1, 7);
      expect(layout(mm)).toEqual([shape(0, 1, R), shape(1, 8, RW), shape(8, 9, R)]);
    });

    it('should run vm_ops->close of the VMAs it replaces', () => {
      const mm = newMm();
      const ops = mm.files.get(FD_CLOSE)!.vmOps as ReturnType<typeof closeOps>;
      expect(mmap(mm, at(0), pages(3), PROT_READ, MAP_SHARED | MAP_FIXED, FD_CLOSE)).toBe(at(0));
      mapAt(mm, 0, 3);
      expect(ops.closed).toBe(1);
      expect(layout(mm)).toEqual([shape(0, 3, RW)]);
    });
  });

  describe('having MAP_GROWSDOWN', () => {
    it('should make a VM_GROWSDOWN VMA', () => {
      const mm = newMm();
      mapAt(mm, 4, 2, RW_PROT, ANON | MAP_GROWSDOWN);
      expect(layout(mm)).toEqual([shape(4, 6, RW | VM_GROWSDOWN)]);
    });
  });

  describe('having MAP_POPULATE', () => {
    it('should fault in every page, for writing when the mapping is private and writable', () => {
      const mm = newMm();
      expect(mmap(mm, at(0), pages(4), RW_PROT, ANON | MAP_FIXED | MAP_POPULATE)).toBe(at(0));
      expect(present(mm)).toEqual([0, 1, 2, 3]);
      expect(mm.pageTables.lookup(at(3))).toMatchObject({ writable: true, page: { anon: true, zero: false } });
      expect(mm.pageTables.rssAnon).toBe(4);
    });

    it('should map the zero page for a read-only private mapping', () => {
      const mm = newMm();
      expect(mmap(mm, at(0), pages(2), PROT_READ, ANON | MAP_FIXED | MAP_POPULATE)).toBe(at(0));
      expect(present(mm)).toEqual([0, 1]);
      expect(mm.pageTables.lookup(at(0))).toMatchObject({ writable: false, page: { zero: true } });
      expect(mm.pageTables.rssAnon).toBe(0);
    });

    it('should fault in nothing with MAP_NONBLOCK', () => {
      const mm = newMm();
      expect(mmap(mm, at(0), pages(2), RW_PROT, ANON | MAP_FIXED | MAP_POPULATE | MAP_NONBLOCK)).toBe(at(0));
      expect(present(mm)).toEqual([]);
    });
  });

  describe('having MAP_NORESERVE', () => {
    it('should set VM_NORESERVE instead of charging (VM_ACCOUNT), and so not merge with a charged neighbour', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      mapAt(mm, 2, 2, RW_PROT, ANON | MAP_NORESERVE);
      expect(layout(mm)).toEqual([shape(0, 2, RW), shape(2, 4, VM_READ | VM_WRITE | MAY | VM_NORESERVE)]);
    });
  });
});

describe('sysMunmap', () => {
  describe('having invalid arguments', () => {
    it('should return -EINVAL for an unaligned address, a zero length, or a range outside the address space', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      const before = renderMaps(mm);
      expect(munmap(mm, at(0) + 1, pages(1))).toBe(-EINVAL);
      expect(munmap(mm, at(0), 0)).toBe(-EINVAL);
      expect(munmap(mm, TASK_SIZE + PAGE_SIZE, pages(1))).toBe(-EINVAL);
      expect(munmap(mm, at(0), TASK_SIZE)).toBe(-EINVAL);
      expect(renderMaps(mm)).toBe(before);
    });
  });

  describe('having nothing mapped in the range', () => {
    it('should succeed and change nothing', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(munmap(mm, at(4), pages(3))).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 2, RW)]);
    });
  });

  describe('having one VMA', () => {
    it('should unmap its head, its tail or its middle, zapping the pages there', () => {
      // 01234567
      // VVVVVVVV  ->  munmap [0,1), [7,8), [3,5):  _VV__VV_
      const mm = newMm();
      mapAt(mm, 0, 8);
      for (let col = 0; col < 8; col++) expect(fault(mm, at(col), 'write')).toBe('ok');
      expect(munmap(mm, at(0), pages(1))).toBe(0);
      expect(munmap(mm, at(7), pages(1))).toBe(0);
      expect(munmap(mm, at(3), pages(2))).toBe(0);
      expect(layout(mm)).toEqual([shape(1, 3, RW), shape(5, 7, RW)]);
      expect(present(mm)).toEqual([1, 2, 5, 6]);
      expect(mm.pageTables.rssAnon).toBe(4);
      expect(mm.totalVm).toBe(4);
    });

    it('should round the length up to a page', () => {
      const mm = newMm();
      mapAt(mm, 0, 3);
      expect(munmap(mm, at(0), 1)).toBe(0);
      expect(layout(mm)).toEqual([shape(1, 3, RW)]);
    });
  });

  describe('having several VMAs and holes in the range', () => {
    it('should unmap every VMA it covers and cut the two at its ends', () => {
      // 0123456789
      // AAA BB CCC  ->  munmap [1,8): A       CC
      const mm = newMm();
      mapAt(mm, 0, 3);
      mapAt(mm, 4, 2, PROT_READ);
      mapAt(mm, 7, 3);
      expect(munmap(mm, at(1), pages(7))).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 1, RW), shape(8, 10, RW)]);
    });
  });

  describe('having a VMA with vm_ops->close', () => {
    it('should close the part unmapped, once', () => {
      const mm = newMm();
      const ops = mm.files.get(FD_CLOSE)!.vmOps as ReturnType<typeof closeOps>;
      expect(mmap(mm, at(0), pages(3), PROT_READ, MAP_SHARED | MAP_FIXED, FD_CLOSE)).toBe(at(0));
      expect(munmap(mm, at(1), pages(1))).toBe(0);
      expect(ops.closed).toBe(1);
      expect(mm.mapCount).toBe(2);
    });
  });

  describe('having map_count at max_map_count', () => {
    it('should return -ENOMEM for cutting a VMA in three, but unmap its head', () => {
      const mm = newMm({ maxMapCount: 1 });
      mapAt(mm, 0, 3);
      expect(munmap(mm, at(1), pages(1))).toBe(-ENOMEM);
      expect(layout(mm)).toEqual([shape(0, 3, RW)]);
      expect(munmap(mm, at(0), pages(1))).toBe(0);
      expect(layout(mm)).toEqual([shape(1, 3, RW)]);
    });
  });
});

describe('sysMprotect', () => {
  describe('having invalid arguments', () => {
    it('should return -EINVAL for an unaligned start, an unknown prot bit, or both grow directions', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      const before = renderMaps(mm);
      expect(mprotect(mm, at(0) + 1, pages(1), PROT_READ)).toBe(-EINVAL);
      expect(mprotect(mm, at(0), pages(1), PROT_READ | 0x10)).toBe(-EINVAL);
      expect(mprotect(mm, at(0), pages(1), PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP)).toBe(-EINVAL);
      expect(renderMaps(mm)).toBe(before);
    });

    it('should return 0 for a zero length, before looking at prot (arch_validate_prot comes later)', () => {
      const mm = newMm();
      expect(mprotect(mm, at(0), 0, PROT_READ)).toBe(0);
      expect(mprotect(mm, at(0), 0, PROT_READ | 0x10)).toBe(0);
    });
  });

  describe('having a VMA that does not grow', () => {
    it('should return -EINVAL for PROT_GROWSDOWN or PROT_GROWSUP, but -ENOMEM where nothing is mapped', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(mprotect(mm, at(0), pages(1), PROT_READ | PROT_GROWSDOWN)).toBe(-EINVAL);
      expect(mprotect(mm, at(0), pages(1), PROT_READ | PROT_GROWSUP)).toBe(-EINVAL);
      expect(mprotect(mm, at(4), pages(1), PROT_READ | PROT_GROWSUP)).toBe(-ENOMEM);
      expect(layout(mm)).toEqual([shape(0, 2, RW)]);
    });
  });

  describe('having a VM_GROWSDOWN VMA', () => {
    it('should apply PROT_GROWSDOWN from the start of the VMA up to the end of the range', () => {
      // 0123
      // SSSS  mprotect [2,3) PROT_READ|PROT_GROWSDOWN  ->  [0,3) r--, [3,4) rw-
      const mm = newMm();
      mapAt(mm, 0, 4, RW_PROT, ANON | MAP_GROWSDOWN);
      expect(mprotect(mm, at(2), pages(1), PROT_READ | PROT_GROWSDOWN)).toBe(0);
      // Linux 6.7+: an unfaulted anonymous VMA made read-only is no longer charged (VM_ACCOUNT dropped).
      expect(layout(mm)).toEqual([shape(0, 3, R | VM_GROWSDOWN), shape(3, 4, RW | VM_GROWSDOWN)]);
    });
  });

  describe('having a private anonymous read-write VMA', () => {
    it('should stop charging it when made read-only before any fault, and keep charging a faulted one', () => {
      // 01234
      // AA BB   A never faulted, B faulted (so it has an anon_vma)
      // mprotect_fixup (Linux 6.7+): "(oldflags & VM_ACCOUNT) && vma_is_anonymous(vma) &&
      // !vma->anon_vma" drops VM_ACCOUNT; making it writable again charges it anew.
      const mm = newMm();
      mapAt(mm, 0, 2);
      mapAt(mm, 3, 2);
      expect(fault(mm, at(3), 'write')).toBe('ok');
      expect(mprotect(mm, at(0), pages(2), PROT_READ)).toBe(0);
      expect(mprotect(mm, at(3), pages(2), PROT_READ)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 2, R), shape(3, 5, RO)]);
      expect(mprotect(mm, at(0), pages(2), RW_PROT)).toBe(0);
      expect(mprotect(mm, at(3), pages(2), RW_PROT)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 2, RW), shape(3, 5, RW)]);
    });
  });

  describe('having holes in the range', () => {
    it('should return -ENOMEM and change nothing when the range starts in a hole', () => {
      const mm = newMm();
      mapAt(mm, 1, 2);
      expect(mprotect(mm, at(0), pages(3), PROT_READ)).toBe(-ENOMEM);
      expect(layout(mm)).toEqual([shape(1, 3, RW)]);
    });

    it('should return -ENOMEM after changing the part before the hole, like Linux', () => {
      // 012345
      // AA BB    mprotect [0,5) PROT_READ: A changed, B not
      const mm = newMm();
      mapAt(mm, 0, 2);
      mapAt(mm, 3, 2);
      expect(mprotect(mm, at(0), pages(5), PROT_READ)).toBe(-ENOMEM);
      // Linux 6.7+: A, never faulted, is no longer charged once read-only (VM_ACCOUNT dropped).
      expect(layout(mm)).toEqual([shape(0, 2, R), shape(3, 5, RW)]);
    });

    it('should return -ENOMEM after changing everything mapped when the range runs past the last VMA', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(mprotect(mm, at(0), pages(4), PROT_READ)).toBe(-ENOMEM);
      // Linux 6.7+: an unfaulted anonymous VMA made read-only is no longer charged (VM_ACCOUNT dropped).
      expect(layout(mm)).toEqual([shape(0, 2, R)]);
    });
  });

  describe('having a shared mapping of a read-only file', () => {
    it('should return -EACCES for PROT_WRITE (no VM_MAYWRITE) and allow PROT_EXEC', () => {
      const mm = newMm();
      expect(mmap(mm, at(0), pages(2), PROT_READ, MAP_SHARED | MAP_FIXED, FD_RDONLY)).toBe(at(0));
      expect(mprotect(mm, at(0), pages(2), RW_PROT)).toBe(-EACCES);
      expect(mprotect(mm, at(0), pages(2), PROT_READ | PROT_EXEC)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 2, VM_READ | VM_EXEC | VM_MAYREAD | VM_MAYEXEC | VM_MAYSHARE)]);
    });

    it('should keep the new protection of the VMAs before the one refused', () => {
      // 0123
      // AABB   A anonymous, B the read-only file: PROT_WRITE over both -> A changed, -EACCES
      const mm = newMm();
      mapAt(mm, 0, 2, PROT_READ);
      expect(mmap(mm, at(2), pages(2), PROT_READ, MAP_SHARED | MAP_FIXED, FD_RDONLY)).toBe(at(2));
      expect(mprotect(mm, at(0), pages(4), RW_PROT)).toBe(-EACCES);
      expect(layout(mm)).toEqual([shape(0, 2, RW), shape(2, 4, VM_READ | VM_MAYREAD | VM_MAYEXEC | VM_MAYSHARE)]);
    });
  });

  describe('having a private mapping of a read-only file', () => {
    it('should allow PROT_WRITE (copy-on-write) and charge it from then on', () => {
      const mm = newMm();
      expect(mmap(mm, at(0), pages(1), PROT_READ, MAP_PRIVATE | MAP_FIXED, FD_RDONLY)).toBe(at(0));
      expect(mprotect(mm, at(0), pages(1), RW_PROT)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 1, RW)]);
    });
  });

  describe('having pages present', () => {
    it('should write-protect them, so a write faults with SEGV_ACCERR until made writable again', () => {
      const mm = newMm();
      mapAt(mm, 0, 1);
      expect(fault(mm, at(0), 'write')).toBe('ok');
      const page = mm.pageTables.lookup(at(0))!.page;
      expect(mprotect(mm, at(0), pages(1), PROT_READ)).toBe(0);
      expect(mm.pageTables.lookup(at(0))).toMatchObject({ page, writable: false });
      expect(fault(mm, at(0), 'write')).toBe('SEGV_ACCERR');
      expect(mprotect(mm, at(0), pages(1), RW_PROT)).toBe(0);
      // The page is ours alone: the write fault makes it writable again instead of copying.
      expect(fault(mm, at(0), 'write')).toBe('ok');
      expect(mm.pageTables.lookup(at(0))).toMatchObject({ page, writable: true });
    });
  });
});

describe('sysMremap', () => {
  describe('having invalid arguments', () => {
    it('should return -EINVAL for bad flags, alignment or lengths', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      const before = renderMaps(mm);
      expect(mremap(mm, at(0), pages(2), pages(3), 0x8)).toBe(-EINVAL);
      expect(mremap(mm, at(0), pages(2), pages(3), MREMAP_FIXED, at(8))).toBe(-EINVAL);
      expect(mremap(mm, at(0), pages(2), pages(3), MREMAP_MAYMOVE | MREMAP_DONTUNMAP)).toBe(-EINVAL);
      expect(mremap(mm, at(0) + 1, pages(2), pages(3), 0)).toBe(-EINVAL);
      expect(mremap(mm, at(0), pages(2), 0, 0)).toBe(-EINVAL);
      expect(mremap(mm, at(0), pages(2), pages(2), MREMAP_MAYMOVE | MREMAP_FIXED, at(8) + 1)).toBe(-EINVAL);
      expect(renderMaps(mm)).toBe(before);
    });

    it('should return -EINVAL for a fixed target overlapping the source', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(mremap(mm, at(0), pages(2), pages(2), MREMAP_MAYMOVE | MREMAP_FIXED, at(1))).toBe(-EINVAL);
      expect(layout(mm)).toEqual([shape(0, 2, RW)]);
    });

    it('should return -EINVAL for old_len 0 on a private mapping', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(mremap(mm, at(0), 0, pages(1), MREMAP_MAYMOVE)).toBe(-EINVAL);
      expect(layout(mm)).toEqual([shape(0, 2, RW)]);
    });
  });

  describe('having no VMA at the old address', () => {
    it('should return -EFAULT', () => {
      const mm = newMm();
      mapAt(mm, 1, 2);
      expect(mremap(mm, at(0), pages(1), pages(2), MREMAP_MAYMOVE)).toBe(-EFAULT);
      expect(mremap(mm, at(3), pages(1), pages(1), 0)).toBe(-EFAULT);
      expect(layout(mm)).toEqual([shape(1, 3, RW)]);
    });
  });

  describe('having an old range past the end of its VMA', () => {
    it('should return -EFAULT for growing it', () => {
      // 0123
      // AABB   mremap [0,3) -> 4 pages: crosses A's end
      const mm = newMm();
      mapAt(mm, 0, 2);
      mapAt(mm, 2, 2, PROT_READ);
      expect(mremap(mm, at(0), pages(3), pages(4), MREMAP_MAYMOVE)).toBe(-EFAULT);
      expect(layout(mm)).toEqual([shape(0, 2, RW), shape(2, 4, R)]);
    });

    it('should shrink it all the same: a shrink only unmaps the tail, across VMAs', () => {
      // 0123
      // AABB   mremap [0,4) -> 1 page  ->  A
      const mm = newMm();
      mapAt(mm, 0, 2);
      mapAt(mm, 2, 2, PROT_READ);
      expect(mremap(mm, at(0), pages(4), pages(1), 0)).toBe(at(0));
      expect(layout(mm)).toEqual([shape(0, 1, RW)]);
    });
  });

  describe('having a VM_DONTEXPAND VMA', () => {
    it('should return -EFAULT for growing it, in place or by a move', () => {
      const mm = newMm();
      mm.insertVmaUnchecked(new Vma(at(0), at(2), RW | VM_DONTEXPAND, at(0) / PAGE_SIZE, null, null, null));
      checkMmInvariants(mm);
      expect(mremap(mm, at(0), pages(2), pages(3), 0)).toBe(-EFAULT);
      expect(mremap(mm, at(0), pages(2), pages(3), MREMAP_MAYMOVE | MREMAP_FIXED, at(8))).toBe(-EFAULT);
      expect(mremap(mm, at(0), pages(2), pages(1), 0)).toBe(at(0));
      expect(layout(mm)).toEqual([shape(0, 1, RW | VM_DONTEXPAND)]);
    });
  });

  describe('having a mapping to shrink', () => {
    it('should keep the address and unmap the tail, zapping its pages', () => {
      const mm = newMm();
      mapAt(mm, 0, 4);
      for (let col = 0; col < 4; col++) expect(fault(mm, at(col), 'write')).toBe('ok');
      expect(mremap(mm, at(0), pages(4), pages(1) + 1, 0)).toBe(at(0));
      expect(layout(mm)).toEqual([shape(0, 2, RW)]);
      expect(present(mm)).toEqual([0, 1]);
      expect(mm.pageTables.rssAnon).toBe(2);
    });
  });

  describe('having free space after the mapping', () => {
    it('should grow it in place, keeping its pages', () => {
      const mm = newMm();
      mapAt(mm, 0, 1);
      expect(fault(mm, at(0), 'write')).toBe('ok');
      expect(mremap(mm, at(0), pages(1), pages(3), 0)).toBe(at(0));
      expect(layout(mm)).toEqual([shape(0, 3, RW)]);
      expect(present(mm)).toEqual([0]);
    });
  });

  describe('having a MAP_GROWSDOWN stack above the mapping', () => {
    it("should grow in place up to the stack's start: vma_expandable ignores the stack guard gap", () => {
      // 0123
      // AA S   A grows to [0,3), right below the stack
      const mm = newMm();
      mapAt(mm, 0, 2);
      mapAt(mm, 3, 1, RW_PROT, ANON | MAP_GROWSDOWN);
      expect(mremap(mm, at(0), pages(2), pages(3), 0)).toBe(at(0));
      expect(layout(mm)).toEqual([shape(0, 3, RW), shape(3, 4, RW | VM_GROWSDOWN)]);
    });
  });

  describe('having no room after the mapping', () => {
    it('should return -ENOMEM without MREMAP_MAYMOVE and change nothing', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      mapAt(mm, 2, 1, PROT_READ);
      const before = renderMaps(mm);
      expect(mremap(mm, at(0), pages(2), pages(3), 0)).toBe(-ENOMEM);
      expect(renderMaps(mm)).toBe(before);
    });

    it('should move it with MREMAP_MAYMOVE, carrying its pages, and unmap the old range', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      mapAt(mm, 2, 1, PROT_READ);
      expect(fault(mm, at(1), 'write')).toBe('ok');
      const page = mm.pageTables.lookup(at(1))!.page;
      const moved = mremap(mm, at(0), pages(2), pages(3), MREMAP_MAYMOVE);
      expect(moved).not.toBe(at(0));
      expect(moved % PAGE_SIZE).toBe(0);
      expect(layout(mm)).toEqual([shape(2, 3, R), { start: moved, end: moved + pages(3), flags: RW }]);
      expect(mm.pageTables.lookup(moved + PAGE_SIZE)?.page).toBe(page);
      expect(present(mm)).toEqual([]);
    });
  });

  describe('having MREMAP_FIXED', () => {
    it('should move to the new address, replacing what was mapped there', () => {
      // 0123456789
      // AA      BB   A -> [7,10): B's page 8 is replaced
      const mm = newMm();
      const ops = mm.files.get(FD_CLOSE)!.vmOps as ReturnType<typeof closeOps>;
      mapAt(mm, 0, 2);
      expect(mmap(mm, at(8), pages(2), PROT_READ, MAP_SHARED | MAP_FIXED, FD_CLOSE)).toBe(at(8));
      expect(mremap(mm, at(0), pages(2), pages(3), MREMAP_MAYMOVE | MREMAP_FIXED, at(7))).toBe(at(7));
      expect(layout(mm)).toEqual([shape(7, 10, RW)]);
      expect(ops.closed).toBe(1);
    });

    it('should return -ENOMEM near max_map_count before unmapping anything', () => {
      const mm = newMm({ maxMapCount: 5 });
      mapAt(mm, 0, 2);
      expect(mremap(mm, at(0), pages(2), pages(2), MREMAP_MAYMOVE | MREMAP_FIXED, at(8))).toBe(-ENOMEM);
      expect(layout(mm)).toEqual([shape(0, 2, RW)]);
    });
  });

  describe('having MREMAP_DONTUNMAP without MREMAP_FIXED', () => {
    it('should move to a new area like a MAYMOVE move (mremap_to), leaving the old range mapped, empty', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(fault(mm, at(1), 'write')).toBe('ok');
      const page = mm.pageTables.lookup(at(1))!.page;
      const moved = mremap(mm, at(0), pages(2), pages(2), MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
      expect(moved).not.toBe(at(0));
      expect(moved % PAGE_SIZE).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 2, RW), { start: moved, end: moved + pages(2), flags: RW }]);
      expect(mm.pageTables.lookup(moved + PAGE_SIZE)?.page).toBe(page);
      expect(present(mm)).toEqual([]);
    });

    it('should return -EINVAL for a VM_PFNMAP VMA', () => {
      const mm = newMm();
      mm.insertVmaUnchecked(new Vma(at(0), at(2), RW | VM_PFNMAP, at(0) / PAGE_SIZE, null, null, null));
      checkMmInvariants(mm);
      expect(mremap(mm, at(0), pages(2), pages(2), MREMAP_MAYMOVE | MREMAP_DONTUNMAP)).toBe(-EINVAL);
      expect(layout(mm)).toEqual([shape(0, 2, RW | VM_PFNMAP)]);
    });
  });

  describe('having MREMAP_DONTUNMAP with MREMAP_FIXED', () => {
    it('should move the pages and leave the old range mapped, empty', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(fault(mm, at(0), 'write')).toBe('ok');
      expect(mremap(mm, at(0), pages(2), pages(2), MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, at(5))).toBe(at(5));
      expect(layout(mm)).toEqual([shape(0, 2, RW), shape(5, 7, RW)]);
      expect(present(mm)).toEqual([5]);
    });
  });
});

describe('sysBrk', () => {
  const START = 0x20000000;
  const brkMm = (layout: MmLayout = {}): MmStruct => newMm({ startBrk: START, ...layout });

  describe('having a fresh heap', () => {
    it('should answer brk(0) with the current break and map nothing', () => {
      const mm = brkMm();
      expect(brk(mm, 0)).toBe(START);
      expect(mm.mapCount).toBe(0);
    });

    it('should grow to the exact break asked, mapping whole pages as [heap]', () => {
      const mm = brkMm();
      expect(brk(mm, START + 0x2800)).toBe(START + 0x2800);
      expect(mm.brk).toBe(START + 0x2800);
      expect(layout(mm)).toEqual([{ start: START, end: START + 0x3000, flags: BRK_VM_FLAGS }]);
      expect(renderMaps(mm)).toBe(`20000000-20003000 rw-p 00000000 00:00 0${' '.repeat(34)}[heap]\n`);
    });

    it('should extend the same VMA on the next grow', () => {
      const mm = brkMm();
      expect(brk(mm, START + 0x1000)).toBe(START + 0x1000);
      const heap = vmaAt(mm, START);
      expect(fault(mm, START, 'write')).toBe('ok');
      expect(brk(mm, START + 0x4000)).toBe(START + 0x4000);
      expect(vmaAt(mm, START + 0x3000)).toBe(heap);
      expect(layout(mm)).toEqual([{ start: START, end: START + 0x4000, flags: BRK_VM_FLAGS }]);
    });
  });

  describe('having a grown heap', () => {
    it('should shrink, unmapping the pages freed and zapping them', () => {
      const mm = brkMm();
      expect(brk(mm, START + 0x4000)).toBe(START + 0x4000);
      for (let off = 0; off < 0x4000; off += PAGE_SIZE) expect(fault(mm, START + off, 'write')).toBe('ok');
      expect(brk(mm, START + 0x1800)).toBe(START + 0x1800);
      expect(layout(mm)).toEqual([{ start: START, end: START + 0x2000, flags: BRK_VM_FLAGS }]);
      expect(mm.pageTables.rssAnon).toBe(2);
    });

    it('should refuse a break below start_brk, returning the old break', () => {
      const mm = brkMm();
      expect(brk(mm, START + 0x1000)).toBe(START + 0x1000);
      expect(brk(mm, START - 0x1000)).toBe(START + 0x1000);
      expect(layout(mm)).toEqual([{ start: START, end: START + 0x1000, flags: BRK_VM_FLAGS }]);
    });
  });

  describe('having a mapping above the heap', () => {
    it('should refuse to grow into it, or closer than a page, returning the old break', () => {
      const mm = brkMm();
      expect(mmap(mm, START + 0x10000, pages(1), RW_PROT, ANON | MAP_FIXED)).toBe(START + 0x10000);
      expect(brk(mm, START + 0x10000)).toBe(START);
      expect(brk(mm, START + 0x20000)).toBe(START);
      expect(mm.mapCount).toBe(1);
      expect(brk(mm, START + 0xf000)).toBe(START + 0xf000);
      expect(layout(mm)).toEqual([
        { start: START, end: START + 0xf000, flags: BRK_VM_FLAGS },
        { start: START + 0x10000, end: START + 0x11000, flags: RW },
      ]);
    });
  });

  describe('having map_count above max_map_count', () => {
    it('should refuse a new heap VMA, returning the old break', () => {
      const mm = brkMm({ maxMapCount: 1 });
      mapAt(mm, 0, 1);
      mapAt(mm, 2, 1);
      expect(brk(mm, START + 0x1000)).toBe(START);
      expect(mm.mapCount).toBe(2);
    });
  });
});

describe('sysMadvise', () => {
  describe('having invalid arguments', () => {
    it('should return -EINVAL for unknown advice or an unaligned start, and 0 for a zero length', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(madvise(mm, at(0), pages(1), 5)).toBe(-EINVAL);
      expect(madvise(mm, at(0) + 1, pages(1), MADV_DONTNEED)).toBe(-EINVAL);
      expect(madvise(mm, at(0), 0, MADV_DONTFORK)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 2, RW)]);
    });
  });

  describe('having pages present', () => {
    it('should zap them on MADV_DONTNEED, leaving the VMA, so the next read finds the zero page', () => {
      const mm = newMm();
      mapAt(mm, 0, 3);
      for (let col = 0; col < 3; col++) expect(fault(mm, at(col), 'write')).toBe('ok');
      expect(madvise(mm, at(1), pages(1), MADV_DONTNEED)).toBe(0);
      expect(present(mm)).toEqual([0, 2]);
      expect(mm.pageTables.rssAnon).toBe(2);
      expect(layout(mm)).toEqual([shape(0, 3, RW)]);
      expect(fault(mm, at(1), 'read')).toBe('ok');
      expect(mm.pageTables.lookup(at(1))?.page.zero).toBe(true);
    });

    it('should return -EINVAL for MADV_DONTNEED on a VM_LOCKED VMA and keep its pages', () => {
      const mm = newMm();
      mapAt(mm, 0, 2, RW_PROT, ANON | MAP_LOCKED);
      expect(layout(mm)).toEqual([shape(0, 2, RW | VM_LOCKED)]);
      expect(present(mm)).toEqual([0, 1]);
      expect(madvise(mm, at(0), pages(2), MADV_DONTNEED)).toBe(-EINVAL);
      expect(present(mm)).toEqual([0, 1]);
    });
  });

  describe('having MADV_DONTFORK and MADV_DOFORK', () => {
    it('should set and clear VM_DONTCOPY on the range, and fork should leave it out while set', () => {
      // 0123
      // AAAA  DONTFORK [1,3)  ->  A**A  then DOFORK merges back
      const mm = newMm();
      mapAt(mm, 0, 4);
      expect(madvise(mm, at(1), pages(2), MADV_DONTFORK)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 1, RW), shape(1, 3, RW | VM_DONTCOPY), shape(3, 4, RW)]);

      const child = run(mm, (t) => dupMmap(t, 2, new GlobalRwsemPolicy()));
      checkMmInvariants(child);
      expect(layout(child)).toEqual([shape(0, 1, RW), shape(3, 4, RW)]);

      expect(madvise(mm, at(1), pages(2), MADV_DOFORK)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 4, RW)]);
      const second = run(mm, (t) => dupMmap(t, 3, new GlobalRwsemPolicy()));
      checkMmInvariants(second);
      expect(layout(second)).toEqual([shape(0, 4, RW)]);
    });
  });

  describe('having MADV_HUGEPAGE and MADV_NOHUGEPAGE', () => {
    it('should split out the range and set one flag, clearing the other', () => {
      const mm = newMm();
      mapAt(mm, 0, 4);
      expect(madvise(mm, at(1), pages(2), MADV_HUGEPAGE)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 1, RW), shape(1, 3, RW | VM_HUGEPAGE), shape(3, 4, RW)]);
      expect(madvise(mm, at(2), pages(1), MADV_NOHUGEPAGE)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 1, RW), shape(1, 2, RW | VM_HUGEPAGE), shape(2, 3, RW | VM_NOHUGEPAGE), shape(3, 4, RW)]);
    });
  });

  describe('having holes in the range', () => {
    it('should advise every mapped part and return -ENOMEM', () => {
      // 012345
      //  A BB    DONTFORK [0,5): both advised, -ENOMEM
      const mm = newMm();
      mapAt(mm, 1, 1);
      mapAt(mm, 3, 2);
      expect(madvise(mm, at(0), pages(5), MADV_DONTFORK)).toBe(-ENOMEM);
      expect(layout(mm)).toEqual([shape(1, 2, RW | VM_DONTCOPY), shape(3, 5, RW | VM_DONTCOPY)]);
      expect(madvise(mm, at(2), pages(4), MADV_DOFORK)).toBe(-ENOMEM);
      expect(layout(mm)).toEqual([shape(1, 2, RW | VM_DONTCOPY), shape(3, 5, RW)]);
      expect(madvise(mm, at(6), pages(1), MADV_DOFORK)).toBe(-ENOMEM);
    });
  });
});

describe('handleMmFault', () => {
  describe('having an anonymous private VMA', () => {
    it('should map the shared zero page on a read, allocating nothing (no page, no anon_vma)', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(fault(mm, at(0) + 0x123, 'read')).toBe('ok');
      expect(mm.pageTables.lookup(at(0))).toMatchObject({ writable: false, page: { zero: true } });
      expect(mm.pageTables.rssAnon).toBe(0);
      expect(vmaAt(mm, at(0)).anonVma).toBeNull();
    });

    it('should allocate a writable anonymous page on a write, giving the VMA its anon_vma', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(fault(mm, at(1), 'write')).toBe('ok');
      expect(mm.pageTables.lookup(at(1))).toMatchObject({ writable: true, page: { anon: true, zero: false } });
      expect(mm.pageTables.rssAnon).toBe(1);
      expect(vmaAt(mm, at(1)).anonVma).not.toBeNull();
    });

    it('should replace the zero page with a new page on a write after a read', () => {
      const mm = newMm();
      mapAt(mm, 0, 1);
      expect(fault(mm, at(0), 'read')).toBe('ok');
      expect(fault(mm, at(0), 'write')).toBe('ok');
      expect(mm.pageTables.lookup(at(0))).toMatchObject({ writable: true, page: { anon: true, zero: false } });
      expect(mm.pageTables.rssAnon).toBe(1);
    });
  });

  describe('having a VMA that forbids the access', () => {
    it('should return SEGV_ACCERR and map nothing', () => {
      const mm = newMm();
      mapAt(mm, 0, 1, PROT_READ);
      mapAt(mm, 1, 1, PROT_NONE);
      expect(fault(mm, at(0), 'write')).toBe('SEGV_ACCERR');
      expect(fault(mm, at(0), 'exec')).toBe('SEGV_ACCERR');
      expect(fault(mm, at(1), 'read')).toBe('SEGV_ACCERR');
      expect(present(mm)).toEqual([]);
      expect(mm.faultCounts.sigsegv).toBe(3);
    });
  });

  describe('having no VMA at the address', () => {
    it('should return SEGV_MAPERR in a hole, below and above every VMA', () => {
      const mm = newMm();
      mapAt(mm, 1, 1);
      mapAt(mm, 3, 1);
      expect(fault(mm, at(2), 'read')).toBe('SEGV_MAPERR');
      expect(fault(mm, at(0), 'read')).toBe('SEGV_MAPERR');
      expect(fault(mm, at(9), 'write')).toBe('SEGV_MAPERR');
      expect(present(mm, 10)).toEqual([]);
    });
  });

  describe('having a MAP_GROWSDOWN stack with room below', () => {
    it('should grow the stack down to the faulting page', () => {
      // stack at [0x30000000, 0x30004000), a VMA far below (beyond the guard gap)
      const S = 0x30000000;
      const mm = newMm();
      expect(mmap(mm, S - 2 * STACK_GUARD_GAP, pages(1), RW_PROT, ANON | MAP_FIXED)).toBe(S - 2 * STACK_GUARD_GAP);
      expect(mmap(mm, S, pages(4), RW_PROT, ANON | MAP_FIXED | MAP_GROWSDOWN)).toBe(S);
      const stack = vmaAt(mm, S);
      expect(fault(mm, S - pages(3) + 0x10, 'write')).toBe('ok');
      expect(stack.start).toBe(S - pages(3));
      expect(stack.pgoff).toBe((S - pages(3)) / PAGE_SIZE);
      expect(mm.pageTables.lookup(S - pages(3))?.writable).toBe(true);
      expect(mm.faultCounts.stackGrowth).toBe(1);
    });
  });

  describe('having an accessible VMA within the guard gap below the stack', () => {
    it('should refuse to grow (SEGV_MAPERR), but grow when that VMA is PROT_NONE', () => {
      const S = 0x30000000;
      const below = S - 0x20000;
      const mm = newMm();
      expect(mmap(mm, below, pages(1), RW_PROT, ANON | MAP_FIXED)).toBe(below);
      expect(mmap(mm, S, pages(4), RW_PROT, ANON | MAP_FIXED | MAP_GROWSDOWN)).toBe(S);
      expect(fault(mm, S - PAGE_SIZE, 'write')).toBe('SEGV_MAPERR');
      expect(vmaAt(mm, S).start).toBe(S);

      expect(mprotect(mm, below, pages(1), PROT_NONE)).toBe(0);
      expect(fault(mm, S - PAGE_SIZE, 'write')).toBe('ok');
      expect(vmaAt(mm, S).start).toBe(S - PAGE_SIZE);
    });
  });

  describe('having forked (dupMmap) after a write', () => {
    it('should give the child its own copy on its write and leave the parent its page', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      expect(fault(mm, at(0), 'write')).toBe('ok');
      const page = mm.pageTables.lookup(at(0))!.page;

      const child = run(mm, (t) => dupMmap(t, 2, new GlobalRwsemPolicy()));
      checkMmInvariants(child);
      checkMmInvariants(mm);
      expect(layout(child)).toEqual(layout(mm));
      // Both map the page read-only now: copy-on-write.
      expect(mm.pageTables.lookup(at(0))).toMatchObject({ page, writable: false });
      expect(child.pageTables.lookup(at(0))).toMatchObject({ page, writable: false });
      expect(page.mapcount).toBe(2);

      expect(fault(child, at(0), 'write')).toBe('ok');
      checkMmInvariants(mm);
      const copy = child.pageTables.lookup(at(0))!.page;
      expect(copy).not.toBe(page);
      expect(child.pageTables.lookup(at(0))?.writable).toBe(true);
      expect(mm.pageTables.lookup(at(0))).toMatchObject({ page, writable: false });
      expect(page.mapcount).toBe(1);

      // The parent is the page's only user now: its write reuses the page.
      expect(fault(mm, at(0), 'write')).toBe('ok');
      expect(mm.pageTables.lookup(at(0))).toMatchObject({ page, writable: true });
    });
  });
});

describe('getUserPages', () => {
  describe('having no VMA at the start', () => {
    it('should return -EFAULT', () => {
      const mm = newMm();
      mapAt(mm, 1, 2);
      expect(run(mm, (t) => getUserPages(t, at(0), 2, false))).toBe(-EFAULT);
      expect(present(mm)).toEqual([]);
    });
  });

  describe('having a mapped range', () => {
    it('should fault in every page and return how many', () => {
      const mm = newMm();
      mapAt(mm, 0, 3);
      expect(run(mm, (t) => getUserPages(t, at(0), 3, true))).toBe(3);
      expect(present(mm)).toEqual([0, 1, 2]);
      expect(mm.pageTables.rssAnon).toBe(3);
    });

    it('should stop at a hole and return the pages done before it', () => {
      const mm = newMm();
      mapAt(mm, 0, 2);
      mapAt(mm, 3, 1);
      expect(run(mm, (t) => getUserPages(t, at(0), 4, false))).toBe(2);
      expect(present(mm)).toEqual([0, 1]);
    });

    it('should return -EFAULT for a write to a read-only VMA', () => {
      const mm = newMm();
      mapAt(mm, 0, 1, PROT_READ);
      expect(run(mm, (t) => getUserPages(t, at(0), 1, true))).toBe(-EFAULT);
    });
  });

  describe('having a MAP_GROWSDOWN VMA above the start', () => {
    it('should not grow the stack (only a user fault may) and return -EFAULT', () => {
      const mm = newMm();
      mapAt(mm, 4, 2, RW_PROT, ANON | MAP_GROWSDOWN);
      expect(run(mm, (t) => getUserPages(t, at(3), 1, true))).toBe(-EFAULT);
      expect(layout(mm)).toEqual([shape(4, 6, RW | VM_GROWSDOWN)]);
    });
  });
});

describe('dupMmap / exitMmap', () => {
  describe('having a parent with anonymous, shared-file and closing VMAs', () => {
    it('should copy every VMA, and on exit bring every counter back to zero', () => {
      const mm = newMm();
      const ops = mm.files.get(FD_CLOSE)!.vmOps as ReturnType<typeof closeOps>;
      mapAt(mm, 0, 3);
      expect(mmap(mm, at(4), pages(2), RW_PROT, MAP_SHARED | MAP_FIXED, FD_RW)).toBe(at(4));
      expect(mmap(mm, at(7), pages(1), PROT_READ, MAP_SHARED | MAP_FIXED, FD_CLOSE)).toBe(at(7));
      for (const col of [0, 2, 4, 5]) expect(fault(mm, at(col), 'write')).toBe('ok');
      expect(fault(mm, at(7), 'read')).toBe('ok');
      const shared = mm.pageTables.lookup(at(4))!.page;

      const child = run(mm, (t) => dupMmap(t, 2, new GlobalRwsemPolicy()));
      checkMmInvariants(child);
      expect(layout(child)).toEqual(layout(mm));
      expect([child.mapCount, child.totalVm]).toEqual([mm.mapCount, mm.totalVm]);
      expect([child.pageTables.rssAnon, child.pageTables.rssFile]).toEqual([2, 3]);
      // A shared file page stays writable in both: no copy-on-write for VM_SHARED.
      expect(child.pageTables.lookup(at(4))).toMatchObject({ page: shared, writable: true });
      expect(shared.mapcount).toBe(2);

      run(child, (t) => exitMmap(t));
      checkMmInvariants(mm);
      expect(child.dead).toBe(true);
      expect([child.mapCount, child.totalVm, child.dummyCount]).toEqual([0, 0, 0]);
      expect([child.pageTables.rssAnon, child.pageTables.rssFile, child.pageTables.ptePages, child.pageTables.hugePmds]).toEqual([0, 0, 0, 0]);
      expect(ops.closed).toBe(1);
      expect(shared.mapcount).toBe(1);
      expect(layout(mm)).toEqual([
        shape(0, 3, RW),
        shape(4, 6, VM_READ | VM_WRITE | MAY | VM_SHARED | VM_MAYSHARE),
        shape(7, 8, VM_READ | MAY | VM_SHARED | VM_MAYSHARE),
      ]);

      run(mm, (t) => exitMmap(t));
      expect([mm.mapCount, mm.totalVm, mm.pageTables.rssAnon, mm.pageTables.rssFile, mm.pageTables.ptePages]).toEqual([0, 0, 0, 0, 0]);
      expect(ops.closed).toBe(2);
      expect(shared.mapcount).toBe(0);
    });
  });
});

describe('max_map_count', () => {
  describe('having map_count at the limit', () => {
    it('should refuse every operation that needs a new VMA and allow those that do not', () => {
      // 0123456789
      // AAA B CCC    limit 3
      const mm = newMm({ maxMapCount: 3 });
      mapAt(mm, 0, 3);
      mapAt(mm, 4, 1, PROT_READ);
      mapAt(mm, 6, 3);
      const before = renderMaps(mm);
      expect(mprotect(mm, at(1), pages(1), PROT_READ)).toBe(-ENOMEM);
      // madvise_vma_behavior() turns the split's -ENOMEM into -EAGAIN ("kernel resources ...
      // temporarily unavailable"); mprotect and munmap pass -ENOMEM on.
      expect(madvise(mm, at(7), pages(1), MADV_DONTFORK)).toBe(-EAGAIN);
      expect(munmap(mm, at(7), pages(1))).toBe(-ENOMEM);
      expect(renderMaps(mm)).toBe(before);
      // No new VMA: a change of a whole VMA, an unmap of a tail, an mmap extending a neighbour.
      expect(mprotect(mm, at(4), pages(1), PROT_READ | PROT_EXEC)).toBe(0);
      expect(munmap(mm, at(8), pages(1))).toBe(0);
      mapAt(mm, 3, 1);
      expect(layout(mm)).toEqual([shape(0, 4, RW), shape(4, 5, R | VM_EXEC), shape(6, 8, RW)]);
    });

    it('should refuse an mremap move within three VMAs of the limit', () => {
      const mm = newMm({ maxMapCount: 4 });
      mapAt(mm, 0, 2);
      mapAt(mm, 2, 1, PROT_READ);
      expect(mremap(mm, at(0), pages(2), pages(3), MREMAP_MAYMOVE)).toBe(-ENOMEM);
      expect(layout(mm)).toEqual([shape(0, 2, RW), shape(2, 3, R)]);
    });
  });
});
