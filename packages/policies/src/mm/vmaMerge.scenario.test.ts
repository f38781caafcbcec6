// Proves that VMAs merge and split by the kernel's rules (mm/vma.c). The cases are those of the
// kernel's own userspace VMA tests (tools/testing/vma/vma.c: simple merge/modify/expand/shrink,
// merge_new, special flags, vm_ops->close, merge_existing, anon_vma compatibility and
// duplication, allocation failure, merge_extend, copy_vma), restated in our words and driven
// through our syscalls wherever user space can reach the case: mmap MAP_FIXED into holes for new
// ranges, mprotect for changes to an existing range, mremap for expansion and copy, write faults
// to give a VMA its anon_vma. Where user space cannot (VM_SPECIAL flags), VMAs are inserted by
// hand and vmaMergeNewRange / vmaModify are called directly.
//
// Every case draws the address space one page per column from BASE = 0x10000000, e.g.
//   0123456789abc
//   AA B   **  CC     (A, B, C: VMAs; *: the range being mapped or changed)
// checks every mm invariant after each step, and asserts exactly what is left: which VMA
// object survived (the letters of `picture`), each VMA's start, end, flags and pgoff, and for
// the simple cases the /proc/pid/maps text. One thread, one CPU, seed 0: nothing here races.
import {
  type AnonVma,
  EFAULT,
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MmFile,
  type MmGen,
  type MmLayout,
  type MmTask,
  MmStruct,
  PAGE_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  VM_DONTEXPAND,
  VM_IO,
  VM_MAYREAD,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_PFNMAP,
  VM_READ,
  VM_SPECIAL,
  VM_WRITE,
  Vma,
  type VmaProps,
  checkMmInvariants,
  handleMmFault,
  renderMaps,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
  vmaMergeNewRange,
  vmaModify,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { GlobalRwsemPolicy } from '../globalRwsem.js';
import { MAY, RO, RW, at, closeOps, pages, run } from './mmTestKit.js';

/** The anonymous pgoff of column `col` (`addr >> PAGE_SHIFT`, as do_mmap gives it). */
const pg = (col: number): number => at(col) / PAGE_SIZE;

/**
 * RW never faulted (no anon_vma), then mprotect(PROT_READ): Linux 6.7+ mprotect_fixup drops
 * VM_ACCOUNT (nothing to charge for); making it writable again charges it anew, back to RW.
 */
const RO_UNFAULTED = VM_READ | MAY;
/** A private PROT_READ file mapping (never charged). */
const FILE_R = VM_READ | MAY;
/** The same after mprotect(PROT_NONE). */
const FILE_NONE = MAY;
/** The flags tools/testing/vma uses for its hand-made VMAs. */
const KFLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE;

const FD_CLOSE = 3;
const FD_PLAIN = 4;

function newMm(layout: MmLayout = {}): MmStruct {
  const mm = new MmStruct(1, new GlobalRwsemPolicy(), layout);
  checkMmInvariants(mm);
  return mm;
}

/** mmap(MAP_FIXED) an anonymous private range of `n` pages at column `col`. */
function mmapAnon(mm: MmStruct, col: number, n: number, prot = PROT_READ | PROT_WRITE): void {
  expect(run(mm, (t) => sysMmap(t, at(col), pages(n), prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0))).toBe(at(col));
}

/** mmap(MAP_FIXED, MAP_PRIVATE) `n` pages of file `fd` from file page `filePage` at column `col`. */
function mmapFile(mm: MmStruct, fd: number, col: number, n: number, filePage: number, prot = PROT_READ): void {
  expect(run(mm, (t) => sysMmap(t, at(col), pages(n), prot, MAP_PRIVATE | MAP_FIXED, fd, pages(filePage)))).toBe(at(col));
}

function mprotect(mm: MmStruct, col: number, n: number, prot: number): number {
  return run(mm, (t) => sysMprotect(t, at(col), pages(n), prot));
}

/** A write fault at column `col`: the first one gives the VMA its anon_vma. */
function touch(mm: MmStruct, col: number): void {
  expect(run(mm, (t) => handleMmFault(t, at(col), 'write'))).toBe('ok');
}

function vmaAt(mm: MmStruct, col: number): Vma {
  const vma = mm.vmaLookup(at(col));
  if (vma === null) throw new Error(`no VMA at column ${col}`);
  return vma;
}

/** Run `fn` (a direct call of a merge primitive) under mmap_sem for write, as its callers do. */
function locked<T>(mm: MmStruct, fn: () => T): T {
  return run(mm, (t) =>
    lockedGen(t, function* () {
      yield* [];
      return fn();
    }),
  );
}

/** Run the generator `fn` under mmap_sem for write. */
function* lockedGen<T>(t: MmTask, fn: () => MmGen<T>): MmGen<T> {
  const guard = yield* t.mm.policy.lockAll(t.mm, t.thread, 'write');
  const r = yield* fn();
  yield* t.mm.policy.unlock(guard);
  return r;
}

/** Insert a hand-made VMA over columns [from, to) with the anonymous pgoff, as tools/testing/vma's alloc_and_link_vma. */
function link(mm: MmStruct, from: number, to: number, flags: number): Vma {
  const vma = new Vma(at(from), at(to), flags, pg(from), null, null, null);
  mm.insertVmaUnchecked(vma);
  checkMmInvariants(mm);
  return vma;
}

/** One character per page from BASE: the name of the VMA object mapping it, '?' for another VMA, ' ' for a hole. */
function picture(mm: MmStruct, names: Readonly<Record<string, Vma>>, cols = 13): string {
  let out = '';
  for (let col = 0; col < cols; col++) {
    const vma = mm.vmaLookup(at(col));
    out += vma === null ? ' ' : (Object.entries(names).find(([, v]) => v === vma)?.[0] ?? '?');
  }
  return out.trimEnd();
}

interface Shape {
  readonly start: number;
  readonly end: number;
  readonly flags: number;
  readonly pgoff: number;
}

/** Every VMA as start, end, flags and pgoff, in address order. */
function layout(mm: MmStruct): Shape[] {
  return [...mm.vmas()].map(({ start, end, flags, pgoff }) => ({ start, end, flags, pgoff }));
}

/** The expected shape of the VMA over columns [from, to). */
function shape(from: number, to: number, flags: number, pgoff = pg(from)): Shape {
  return { start: at(from), end: at(to), flags, pgoff };
}

const anonProps = (flags: number): VmaProps => ({ flags, file: null, vmOps: null, anonVma: null });

describe('vma_merge: simple cases (test_simple_merge, test_simple_modify, test_simple_expand, test_simple_shrink)', () => {
  describe('having a one-page hole between two compatible VMAs', () => {
    it('should merge the new range with both into one VMA (simple merge)', () => {
      // 0123
      // A*B   ->  AAA
      const mm = newMm();
      mmapAnon(mm, 0, 1);
      mmapAnon(mm, 2, 1);
      const a = vmaAt(mm, 0);
      const b = vmaAt(mm, 2);
      expect(picture(mm, { A: a, B: b })).toBe('A B');

      mmapAnon(mm, 1, 1);
      expect(picture(mm, { A: a })).toBe('AAA');
      expect(b.detached).toBe(true);
      expect(layout(mm)).toEqual([shape(0, 3, RW)]);
      expect(renderMaps(mm)).toBe('10000000-10003000 rw-p 00000000 00:00 0 \n');
    });
  });

  describe('having one VMA whose middle page changes protection', () => {
    it('should split it in three, the original VMA keeping the middle (simple modify)', () => {
      // 012
      // V*V  ->  ABC, B being the original V
      const mm = newMm();
      mmapAnon(mm, 0, 3);
      const v = vmaAt(mm, 0);

      expect(mprotect(mm, 1, 1, PROT_READ)).toBe(0);
      expect(vmaAt(mm, 1)).toBe(v);
      // Linux 6.7+: an unfaulted anonymous VMA made read-only is no longer charged (VM_ACCOUNT dropped).
      expect(layout(mm)).toEqual([shape(0, 1, RW), shape(1, 2, RO_UNFAULTED), shape(2, 3, RW)]);
      expect(mm.mapCount).toBe(3);
      expect(renderMaps(mm)).toBe(
        '10000000-10001000 rw-p 00000000 00:00 0 \n' + '10001000-10002000 r--p 00000000 00:00 0 \n' + '10002000-10003000 rw-p 00000000 00:00 0 \n',
      );
    });
  });

  describe('having free space after a VMA', () => {
    it('should expand the VMA in place on an mremap that grows it (simple expand)', () => {
      // 012
      // V**  ->  VVV
      const mm = newMm();
      mmapAnon(mm, 0, 1);
      const v = vmaAt(mm, 0);

      expect(run(mm, (t) => sysMremap(t, at(0), pages(1), pages(3), 0, 0))).toBe(at(0));
      expect(picture(mm, { V: v })).toBe('VVV');
      expect(layout(mm)).toEqual([shape(0, 3, RW)]);
    });
  });

  describe('having a three-page VMA', () => {
    it('should shrink the VMA in place on an mremap to one page (simple shrink)', () => {
      // 012
      // V--  ->  V
      // mremap shrinks by munmap of the tail, which splits with the new VMA below (the kernel
      // test calls vma_shrink directly): the page kept is mapped by a new VMA object.
      const mm = newMm();
      mmapAnon(mm, 0, 3);

      expect(run(mm, (t) => sysMremap(t, at(0), pages(3), pages(1), 0, 0))).toBe(at(0));
      expect(layout(mm)).toEqual([shape(0, 1, RW)]);
      expect(mm.totalVm).toBe(1);
    });
  });
});

describe('vma_merge_new_range: mmap into holes (test_merge_new)', () => {
  describe('having VMAs A, B and C with holes between them', () => {
    it('should merge with neither, the previous, the next or both neighbours as the kernel does', () => {
      const mm = newMm();
      // 0123456789abc
      // AA B       CC
      mmapAnon(mm, 0, 2);
      mmapAnon(mm, 3, 1);
      mmapAnon(mm, 0xb, 1);
      const a = vmaAt(mm, 0);
      const b = vmaAt(mm, 3);
      const c = vmaAt(mm, 0xb);
      expect(picture(mm, { A: a, B: b, C: c })).toBe('AA B       C');

      // No merge: nothing adjacent.
      // 0123456789abc
      // AA B   **  C
      mmapAnon(mm, 7, 2);
      const d = vmaAt(mm, 7);
      expect(picture(mm, { A: a, B: b, C: c, D: d })).toBe('AA B   DD  C');
      expect(mm.mapCount).toBe(4);

      // Merge both sides: A grows over the range and B, and takes B's anon_vma.
      // 0123456789abc
      // AA*B   DD  C
      touch(mm, 3);
      const anon = b.anonVma;
      expect(anon).not.toBeNull();
      expect(a.anonVma).toBeNull();
      mmapAnon(mm, 2, 1);
      expect(picture(mm, { A: a, C: c, D: d })).toBe('AAAA   DD  C');
      expect(b.detached).toBe(true);
      expect(a.anonVma).toBe(anon);
      expect(mm.mapCount).toBe(3);

      // Merge with the previous VMA only.
      // 0123456789abc
      // AAAA*  DD  C
      mmapAnon(mm, 4, 1);
      expect(picture(mm, { A: a, C: c, D: d })).toBe('AAAAA  DD  C');
      expect(a.anonVma).toBe(anon);
      expect(mm.mapCount).toBe(3);

      // Merge with the next VMA only: D grows down (D shares A's anon_vma, as in the kernel test).
      // 0123456789abc
      // AAAAA *DD  C
      d.anonVma = anon;
      mmapAnon(mm, 6, 1);
      expect(picture(mm, { A: a, C: c, D: d })).toBe('AAAAA DDD  C');
      expect(layout(mm)[1]).toEqual(shape(6, 9, RW));
      expect(mm.mapCount).toBe(3);

      // Merge both sides: A swallows the range and D.
      // 0123456789abc
      // AAAAA*DDD  C
      mmapAnon(mm, 5, 1);
      expect(picture(mm, { A: a, C: c })).toBe('AAAAAAAAA  C');
      expect(d.detached).toBe(true);
      expect(mm.mapCount).toBe(2);

      // Merge with the next VMA: C grows down.
      // 0123456789abc
      // AAAAAAAAA *C
      c.anonVma = anon;
      mmapAnon(mm, 0xa, 1);
      expect(picture(mm, { A: a, C: c })).toBe('AAAAAAAAA CC');
      expect(layout(mm)[1]).toEqual(shape(0xa, 0xc, RW));

      // Merge both sides: one VMA is left.
      // 0123456789abc
      // AAAAAAAAA*CC
      mmapAnon(mm, 9, 1);
      expect(picture(mm, { A: a })).toBe('AAAAAAAAAAAA');
      expect(c.detached).toBe(true);
      expect(layout(mm)).toEqual([shape(0, 0xc, RW)]);
      expect(a.anonVma).toBe(anon);
      expect(mm.mapCount).toBe(1);
      expect(renderMaps(mm)).toBe('10000000-1000c000 rw-p 00000000 00:00 0 \n');
    });
  });
});

describe('VM_SPECIAL: no merge (test_vma_merge_special_flags)', () => {
  const specials = [
    ['VM_IO', VM_IO],
    ['VM_DONTEXPAND', VM_DONTEXPAND],
    ['VM_PFNMAP', VM_PFNMAP],
    ['VM_MIXEDMAP', VM_MIXEDMAP],
  ] as const;

  it('should know every VM_SPECIAL flag', () => {
    expect(specials.reduce((all, [, flag]) => all | flag, 0)).toBe(VM_SPECIAL);
  });

  describe.each(specials)('having a %s VMA that would otherwise merge', (_name, special) => {
    it('should not extend it over a new range with the same flags', () => {
      // 01234
      // AAA*   (A and the range both special)
      const mm = newMm();
      const a = link(mm, 0, 3, KFLAGS | special);
      expect(locked(mm, () => vmaMergeNewRange(mm, at(3), at(4), anonProps(KFLAGS | special), pg(3)))).toBeNull();
      checkMmInvariants(mm);
      expect(layout(mm)).toEqual([shape(0, 3, KFLAGS | special)]);
      expect(picture(mm, { A: a })).toBe('AAA');
    });

    it('should not merge an existing range given its flags', () => {
      // 01234
      // AAAB   B takes A's special flags: still two VMAs
      const mm = newMm();
      const a = link(mm, 0, 3, KFLAGS | special);
      const b = link(mm, 3, 4, KFLAGS);
      expect(run(mm, (t) => lockedGen(t, () => vmaModify(mm, t.thread, b, at(3), at(4), anonProps(KFLAGS | special))))).toBe(b);
      expect(picture(mm, { A: a, B: b })).toBe('AAAB');
      expect(layout(mm)).toEqual([shape(0, 3, KFLAGS | special), shape(3, 4, KFLAGS | special)]);
    });
  });

  describe('having the same VMAs without a special flag', () => {
    it('should merge both the new range and the modified range (the control)', () => {
      const mm = newMm();
      const a = link(mm, 0, 3, KFLAGS);
      expect(locked(mm, () => vmaMergeNewRange(mm, at(3), at(4), anonProps(KFLAGS), pg(3)))).toBe(a);
      checkMmInvariants(mm);
      const b = link(mm, 4, 5, KFLAGS | VM_IO);
      expect(run(mm, (t) => lockedGen(t, () => vmaModify(mm, t.thread, b, at(4), at(5), anonProps(KFLAGS))))).toBe(a);
      expect(layout(mm)).toEqual([shape(0, 5, KFLAGS)]);
    });
  });

  describe('having two adjacent VM_PFNMAP VMAs', () => {
    it('should leave both after an mprotect that makes them equal', () => {
      // 0123
      // AAA*  ->  AAAB, flags equal
      const mm = newMm();
      link(mm, 0, 3, RW | VM_PFNMAP);
      link(mm, 3, 4, RO | VM_PFNMAP);
      expect(mprotect(mm, 3, 1, PROT_READ | PROT_WRITE)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 3, RW | VM_PFNMAP), shape(3, 4, RW | VM_PFNMAP)]);

      // Without VM_PFNMAP the same mprotect merges them.
      const plain = newMm();
      link(plain, 0, 3, RW);
      link(plain, 3, 4, RO);
      expect(mprotect(plain, 3, 1, PROT_READ | PROT_WRITE)).toBe(0);
      expect(layout(plain)).toEqual([shape(0, 4, RW)]);
    });
  });
});

describe('vm_ops->close: never deleted by a merge (test_vma_merge_with_close, test_vma_merge_new_with_close)', () => {
  // Our VMAs of one file share its vm_ops (the kernel compares files, and one file has one
  // vm_ops), so the kernel test's "vma has no close but next has" cannot be built here: every
  // VMA of the file below has the close hook.
  function closeMm(): { mm: MmStruct; ops: ReturnType<typeof closeOps> } {
    const mm = newMm();
    const ops = closeOps();
    mm.files.set(FD_CLOSE, new MmFile('/dev/close', 77, 8, 1, true, true, ops));
    return { mm, ops };
  }

  describe('having a new range between two VMAs with close', () => {
    it('should extend the previous VMA only, keeping the next (PPP**NNNN)', () => {
      // 0123456789
      // PPP**NNNN  ->  PPPPPNNNN
      const { mm, ops } = closeMm();
      mmapFile(mm, FD_CLOSE, 0, 3, 0);
      mmapFile(mm, FD_CLOSE, 5, 4, 5);
      const p = vmaAt(mm, 0);
      const n = vmaAt(mm, 5);
      mmapFile(mm, FD_CLOSE, 3, 2, 3);
      expect(picture(mm, { P: p, N: n })).toBe('PPPPPNNNN');
      expect(layout(mm)).toEqual([shape(0, 5, FILE_R, 0), shape(5, 9, FILE_R, 5)]);
      expect(p.vmOps).toBe(ops);
      expect(ops.closed).toBe(0);
    });
  });

  describe('having a VMA with close made equal to the VMA before it (PPPVV)', () => {
    it('should not merge: the VMA would be deleted', () => {
      // 01234
      // PPPVV  V: mprotect back to P's protection
      const { mm, ops } = closeMm();
      mmapFile(mm, FD_CLOSE, 0, 5, 0);
      expect(mprotect(mm, 3, 2, PROT_NONE)).toBe(0);
      expect(mprotect(mm, 3, 2, PROT_READ)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 3, FILE_R, 0), shape(3, 5, FILE_R, 3)]);
      expect(ops.closed).toBe(0);
    });

    it('should merge when the file has no close hook (the control)', () => {
      const mm = newMm();
      mm.files.set(FD_PLAIN, new MmFile('/data/plain', 78));
      mmapFile(mm, FD_PLAIN, 0, 5, 0);
      expect(mprotect(mm, 3, 2, PROT_NONE)).toBe(0);
      expect(mprotect(mm, 3, 2, PROT_READ)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 5, FILE_R, 0)]);
    });
  });

  describe('having a VMA with close made equal to the VMA after it (VVNNNN)', () => {
    it('should not merge', () => {
      // 0123456789
      //    VVNNNN
      const { mm } = closeMm();
      mmapFile(mm, FD_CLOSE, 3, 6, 3);
      expect(mprotect(mm, 3, 2, PROT_NONE)).toBe(0);
      expect(mprotect(mm, 3, 2, PROT_READ)).toBe(0);
      expect(layout(mm)).toEqual([shape(3, 5, FILE_R, 3), shape(5, 9, FILE_R, 5)]);
    });
  });

  describe('having a VMA with close between two it would join (PPPVVNNNN)', () => {
    it('should merge nothing', () => {
      const { mm } = closeMm();
      mmapFile(mm, FD_CLOSE, 0, 9, 0);
      expect(mprotect(mm, 3, 2, PROT_NONE)).toBe(0);
      expect(mprotect(mm, 3, 2, PROT_READ)).toBe(0);
      expect(layout(mm)).toEqual([shape(0, 3, FILE_R, 0), shape(3, 5, FILE_R, 3), shape(5, 9, FILE_R, 5)]);
    });
  });

  describe('having part of a VMA with close made equal to a neighbour', () => {
    it('should let the previous VMA grow over the part, the VMA only shrinking (PPPVVVV)', () => {
      // 0123456
      // PPPVVVV  <-> [3,6)  ->  PPPPPPV
      const { mm, ops } = closeMm();
      mmapFile(mm, FD_CLOSE, 0, 7, 0);
      expect(mprotect(mm, 3, 4, PROT_NONE)).toBe(0);
      const p = vmaAt(mm, 0);
      const v = vmaAt(mm, 3);
      expect(mprotect(mm, 3, 3, PROT_READ)).toBe(0);
      expect(picture(mm, { P: p, V: v })).toBe('PPPPPPV');
      expect(layout(mm)).toEqual([shape(0, 6, FILE_R, 0), shape(6, 7, FILE_NONE, 6)]);
      expect(ops.closed).toBe(0);
    });

    it('should let the next VMA grow down over the part, the VMA only shrinking (VVVVNNN)', () => {
      // 0123456789
      //   VVVVNNN  <-> [3,6)  ->  VNNNNNN
      const { mm } = closeMm();
      mmapFile(mm, FD_CLOSE, 2, 7, 2);
      expect(mprotect(mm, 2, 4, PROT_NONE)).toBe(0);
      const v = vmaAt(mm, 2);
      const n = vmaAt(mm, 6);
      expect(mprotect(mm, 3, 3, PROT_READ)).toBe(0);
      expect(picture(mm, { V: v, N: n })).toBe('  VNNNNNN');
      expect(layout(mm)).toEqual([shape(2, 3, FILE_NONE, 2), shape(3, 9, FILE_R, 3)]);
    });
  });
});

describe('vma_merge_existing_range: mprotect joins a neighbour (test_merge_existing)', () => {
  describe('having V followed by N, V read-only and N read-write', () => {
    it('should move the boundary down when the end of V becomes N-like (merge right, partial)', () => {
      // 0123456789
      //   VVVVNNN   <-> [3,6)  ->  VNNNNNN
      const mm = newMm();
      mmapAnon(mm, 2, 7);
      expect(mprotect(mm, 2, 4, PROT_READ)).toBe(0);
      const v = vmaAt(mm, 2);
      const n = vmaAt(mm, 6);
      expect(mprotect(mm, 3, 3, PROT_READ | PROT_WRITE)).toBe(0);
      expect(picture(mm, { V: v, N: n })).toBe('  VNNNNNN');
      // V was never faulted: read-only it lost VM_ACCOUNT (Linux 6.7+), and [3,6) made writable
      // again is charged anew, so it equals N and merges; what is left of V stays uncharged.
      expect(layout(mm)).toEqual([shape(2, 3, RO_UNFAULTED), shape(3, 9, RW)]);
      expect(mm.mapCount).toBe(2);
    });

    it('should delete V when all of it becomes N-like (merge right, full)', () => {
      // 0123456789
      //   VVVVNNN   <--> [2,6)  ->  NNNNNNN
      const mm = newMm();
      mmapAnon(mm, 2, 7);
      expect(mprotect(mm, 2, 4, PROT_READ)).toBe(0);
      const v = vmaAt(mm, 2);
      const n = vmaAt(mm, 6);
      expect(mprotect(mm, 2, 4, PROT_READ | PROT_WRITE)).toBe(0);
      expect(picture(mm, { N: n })).toBe('  NNNNNNN');
      expect(v.detached).toBe(true);
      expect(layout(mm)).toEqual([shape(2, 9, RW)]);
    });
  });

  describe('having P followed by V, P read-write and V read-only', () => {
    it('should move the boundary up when the start of V becomes P-like (merge left, partial)', () => {
      // 0123456
      // PPPVVVV  <-> [3,6)  ->  PPPPPPV
      const mm = newMm();
      mmapAnon(mm, 0, 7);
      expect(mprotect(mm, 3, 4, PROT_READ)).toBe(0);
      const p = vmaAt(mm, 0);
      const v = vmaAt(mm, 3);
      expect(mprotect(mm, 3, 3, PROT_READ | PROT_WRITE)).toBe(0);
      expect(picture(mm, { P: p, V: v })).toBe('PPPPPPV');
      // V was never faulted: read-only it lost VM_ACCOUNT (Linux 6.7+), and [3,6) made writable
      // again is charged anew, so it equals P and merges; what is left of V stays uncharged.
      expect(layout(mm)).toEqual([shape(0, 6, RW), shape(6, 7, RO_UNFAULTED)]);
    });

    it('should delete V when all of it becomes P-like (merge left, full)', () => {
      // 0123456
      // PPPVVVV  <--> [3,7)  ->  PPPPPPP
      const mm = newMm();
      mmapAnon(mm, 0, 7);
      expect(mprotect(mm, 3, 4, PROT_READ)).toBe(0);
      const p = vmaAt(mm, 0);
      const v = vmaAt(mm, 3);
      expect(mprotect(mm, 3, 4, PROT_READ | PROT_WRITE)).toBe(0);
      expect(picture(mm, { P: p })).toBe('PPPPPPP');
      expect(v.detached).toBe(true);
      expect(layout(mm)).toEqual([shape(0, 7, RW)]);
    });
  });

  describe('having V between P and N, both read-write', () => {
    it('should delete V and N into P when V becomes like both (merge both)', () => {
      // 0123456789
      // PPPVVVVNNN  <--> [3,7)  ->  PPPPPPPPPP
      const mm = newMm();
      mmapAnon(mm, 0, 10);
      expect(mprotect(mm, 3, 4, PROT_READ)).toBe(0);
      const [p, v, n] = [vmaAt(mm, 0), vmaAt(mm, 3), vmaAt(mm, 7)];
      expect(mprotect(mm, 3, 4, PROT_READ | PROT_WRITE)).toBe(0);
      expect(picture(mm, { P: p })).toBe('PPPPPPPPPP');
      expect([v.detached, n.detached]).toEqual([true, true]);
      expect(layout(mm)).toEqual([shape(0, 10, RW)]);
      expect(mm.mapCount).toBe(1);
    });
  });

  describe('having a change strictly inside V (touching neither neighbour)', () => {
    // 0123456789a
    // PPPVVVVVNNN   ranges inside V: no merge, V splits around the range.
    it.each([
      [4, 5],
      [5, 6],
      [6, 7],
      [4, 7],
      [4, 6],
    ])('should split V around [%i, %i) and merge nothing', (from, to) => {
      const mm = newMm();
      mmapAnon(mm, 0, 11);
      expect(mprotect(mm, 3, 5, PROT_READ)).toBe(0);
      expect(mprotect(mm, from, to - from, PROT_READ | PROT_WRITE)).toBe(0);
      // V, never faulted, is uncharged while read-only (Linux 6.7+) and charged anew where made writable.
      expect(layout(mm)).toEqual([shape(0, 3, RW), shape(3, from, RO_UNFAULTED), shape(from, to, RW), shape(to, 8, RO_UNFAULTED), shape(8, 11, RW)]);
    });
  });
});

describe('anon_vma: incompatible neighbours (test_anon_vma_non_mergeable)', () => {
  describe('having P and N with different anon_vmas around V', () => {
    it('should merge V into P only when V becomes like both (existing range)', () => {
      // 0123456789
      // PPPVVVVNNN  <--> [3,7)  ->  PPPPPPPNNN
      const mm = newMm();
      mmapAnon(mm, 0, 10);
      expect(mprotect(mm, 3, 4, PROT_READ)).toBe(0);
      touch(mm, 0);
      touch(mm, 7);
      const [p, n] = [vmaAt(mm, 0), vmaAt(mm, 7)];
      expect(p.anonVma).not.toBeNull();
      expect(n.anonVma).not.toBeNull();
      expect(p.anonVma).not.toBe(n.anonVma);

      expect(mprotect(mm, 3, 4, PROT_READ | PROT_WRITE)).toBe(0);
      expect(picture(mm, { P: p, N: n })).toBe('PPPPPPPNNN');
      expect(layout(mm)).toEqual([shape(0, 7, RW), shape(7, 10, RW)]);
    });

    it('should extend P only over a new range between them', () => {
      // 0123456789
      // PPP****NNN  ->  PPPPPPPNNN
      const mm = newMm();
      mmapAnon(mm, 0, 3);
      mmapAnon(mm, 7, 3);
      touch(mm, 0);
      touch(mm, 7);
      const [p, n] = [vmaAt(mm, 0), vmaAt(mm, 7)];
      expect(p.anonVma).not.toBe(n.anonVma);

      mmapAnon(mm, 3, 4);
      expect(picture(mm, { P: p, N: n })).toBe('PPPPPPPNNN');
      expect(layout(mm)).toEqual([shape(0, 7, RW), shape(7, 10, RW)]);
    });
  });
});

describe('anon_vma: duplicated into the survivor (test_dup_anon_vma)', () => {
  describe('having a new range between P (no anon_vma) and N (with one)', () => {
    it("should give P N's anon_vma when P grows over N", () => {
      // 01234567
      // PPP**NNN  ->  PPPPPPPP
      const mm = newMm();
      mmapAnon(mm, 0, 3);
      mmapAnon(mm, 5, 3);
      touch(mm, 5);
      const [p, n] = [vmaAt(mm, 0), vmaAt(mm, 5)];
      const anon = n.anonVma;
      expect([p.anonVma === null, anon === null]).toEqual([true, false]);

      mmapAnon(mm, 3, 2);
      expect(picture(mm, { P: p }, 8)).toBe('PPPPPPPP');
      expect(p.anonVma).toBe(anon);
    });
  });

  /** P [0,3) rw, V [3,5) r--, N [5,8) rw: only `faulted` ('V' or 'N') has an anon_vma. */
  function pvn(faulted: 'V' | 'N'): { mm: MmStruct; p: Vma; v: Vma; n: Vma; anon: AnonVma } {
    const mm = newMm();
    // Map and fault V on its own first, so its anon_vma is not shared with P or N.
    mmapAnon(mm, 3, 2);
    if (faulted === 'V') touch(mm, 3);
    expect(mprotect(mm, 3, 2, PROT_READ)).toBe(0);
    mmapAnon(mm, 0, 3);
    mmapAnon(mm, 5, 3);
    if (faulted === 'N') touch(mm, 5);
    const [p, v, n] = [vmaAt(mm, 0), vmaAt(mm, 3), vmaAt(mm, 5)];
    const anon = (faulted === 'V' ? v : n).anonVma;
    if (anon === null) throw new Error('the faulted VMA has no anon_vma');
    // A V made read-only before any fault has lost VM_ACCOUNT (Linux 6.7+ mprotect_fixup); making
    // it writable again charges it anew, so it still joins P and N.
    expect(layout(mm)).toEqual([shape(0, 3, RW), shape(3, 5, faulted === 'V' ? RO : RO_UNFAULTED), shape(5, 8, RW)]);
    return { mm, p, v, n, anon };
  }

  describe('having P, V, N with only N holding an anon_vma', () => {
    it("should give P N's anon_vma when V joins both", () => {
      //    |<->|
      // PPPVVNNN  ->  PPPPPPPP
      const { mm, p, anon } = pvn('N');
      expect(mprotect(mm, 3, 2, PROT_READ | PROT_WRITE)).toBe(0);
      expect(picture(mm, { P: p }, 8)).toBe('PPPPPPPP');
      expect(p.anonVma).toBe(anon);
    });
  });

  describe('having P, V, N with only V holding an anon_vma', () => {
    it("should give P V's anon_vma when V joins both", () => {
      const { mm, p, anon } = pvn('V');
      expect(mprotect(mm, 3, 2, PROT_READ | PROT_WRITE)).toBe(0);
      expect(picture(mm, { P: p }, 8)).toBe('PPPPPPPP');
      expect(p.anonVma).toBe(anon);
    });
  });

  describe('having P (no anon_vma) before V (with one)', () => {
    it("should give P V's anon_vma when P takes the start of V", () => {
      //    |<->|
      // PPPVVVVV  ->  PPPPPVVV
      const mm = newMm();
      mmapAnon(mm, 3, 5);
      touch(mm, 3);
      expect(mprotect(mm, 3, 5, PROT_READ)).toBe(0);
      mmapAnon(mm, 0, 3);
      const [p, v] = [vmaAt(mm, 0), vmaAt(mm, 3)];
      const anon = v.anonVma;
      expect([p.anonVma, anon === null]).toEqual([null, false]);

      expect(mprotect(mm, 3, 2, PROT_READ | PROT_WRITE)).toBe(0);
      expect(picture(mm, { P: p, V: v }, 8)).toBe('PPPPPVVV');
      expect(layout(mm)).toEqual([shape(0, 5, RW), shape(5, 8, RO)]);
      expect(p.anonVma).toBe(anon);
      expect(v.anonVma).toBe(anon);
    });
  });

  describe('having V (with an anon_vma) before N (no anon_vma)', () => {
    it("should give N V's anon_vma when N takes the end of V", () => {
      //    |<->|
      // VVVVVNNN  ->  VVVNNNNN
      const mm = newMm();
      mmapAnon(mm, 0, 5);
      touch(mm, 0);
      expect(mprotect(mm, 0, 5, PROT_READ)).toBe(0);
      mmapAnon(mm, 5, 3);
      const [v, n] = [vmaAt(mm, 0), vmaAt(mm, 5)];
      const anon = v.anonVma;
      expect(n.anonVma).toBeNull();

      expect(mprotect(mm, 3, 2, PROT_READ | PROT_WRITE)).toBe(0);
      expect(picture(mm, { V: v, N: n }, 8)).toBe('VVVNNNNN');
      expect(layout(mm)).toEqual([shape(0, 3, RO), shape(3, 8, RW)]);
      expect(n.anonVma).toBe(anon);
    });
  });
});

describe('allocation failure: max_map_count (test_vmi_prealloc_fail)', () => {
  // The kernel's test makes the maple tree preallocation fail; what user space can make fail is
  // a split at vm.max_map_count. A failed split changes nothing that came before it.

  /** A [0,3), B [4,5), C [6,7): three VMAs that cannot merge. */
  function threeVmas(maxMapCount: number): MmStruct {
    const mm = newMm({ maxMapCount });
    mmapAnon(mm, 0, 3);
    mmapAnon(mm, 4, 1);
    mmapAnon(mm, 6, 1);
    expect(mm.mapCount).toBe(3);
    return mm;
  }

  describe('having map_count at max_map_count', () => {
    it('should refuse to split A for an mprotect of its middle, leaving the tree as it was', () => {
      // 0123456
      // A*A B C   mprotect [1,2): two splits needed, none allowed
      const mm = threeVmas(3);
      const before = renderMaps(mm);
      expect(mprotect(mm, 1, 1, PROT_READ)).toBe(-ENOMEM);
      expect(renderMaps(mm)).toBe(before);
      expect(mm.mapCount).toBe(3);
    });

    it('should refuse an munmap that cuts A in three, leaving the tree as it was', () => {
      const mm = threeVmas(3);
      const before = renderMaps(mm);
      expect(run(mm, (t) => sysMunmap(t, at(1), pages(1)))).toBe(-ENOMEM);
      expect(renderMaps(mm)).toBe(before);
    });

    it('should still merge, which needs no new VMA', () => {
      // 0123456
      // AAA*B C  ->  AAAAB C   (A extends; map_count unchanged)
      const mm = threeVmas(3);
      mmapAnon(mm, 3, 1);
      expect(layout(mm)).toEqual([shape(0, 5, RW), shape(6, 7, RW)]);
      expect(mm.mapCount).toBe(2);
    });
  });

  describe('having map_count one below max_map_count', () => {
    it('should make the first split of an mprotect and fail the second with -ENOMEM, as vma_modify does', () => {
      // 0123456
      // A*A B C  ->  AAA B C cut at 1 into [0,1) and [1,3), flags unchanged, -ENOMEM
      const mm = threeVmas(4);
      expect(mprotect(mm, 1, 1, PROT_READ)).toBe(-ENOMEM);
      expect(layout(mm)).toEqual([shape(0, 1, RW), shape(1, 3, RW), shape(4, 5, RW), shape(6, 7, RW)]);
      expect(mm.mapCount).toBe(4);
    });
  });
});

describe('vma_merge_extend: mremap grows into a gap (test_merge_extend)', () => {
  describe('having a gap after V up to a compatible N', () => {
    it('should grow V over the gap and N into one VMA', () => {
      // 0123
      // V**N  ->  VVVV
      const mm = newMm();
      mmapAnon(mm, 0, 1);
      mmapAnon(mm, 3, 1);
      const [v, n] = [vmaAt(mm, 0), vmaAt(mm, 3)];
      expect(run(mm, (t) => sysMremap(t, at(0), pages(1), pages(3), 0, 0))).toBe(at(0));
      expect(picture(mm, { V: v })).toBe('VVVV');
      expect(n.detached).toBe(true);
      expect(layout(mm)).toEqual([shape(0, 4, RW)]);
    });
  });
});

describe('copy_vma: mremap moves a VMA (test_copy_vma)', () => {
  const MOVE = MREMAP_MAYMOVE | MREMAP_FIXED;

  describe('having an unfaulted anonymous VMA moved backwards into free space', () => {
    it('should make a new VMA whose pgoff follows its new address', () => {
      // 012345
      // **  VV  ->  VV
      const mm = newMm();
      mmapAnon(mm, 3, 2);
      expect(run(mm, (t) => sysMremap(t, at(3), pages(2), pages(2), MOVE, at(0)))).toBe(at(0));
      expect(layout(mm)).toEqual([shape(0, 2, RW, pg(0))]);
    });
  });

  describe('having an unfaulted anonymous VMA moved right before a compatible N', () => {
    it('should merge the copy into N', () => {
      // 01234567
      // VV  **NN  ->      NNNN
      const mm = newMm();
      mmapAnon(mm, 0, 2);
      mmapAnon(mm, 6, 2);
      const n = vmaAt(mm, 6);
      expect(run(mm, (t) => sysMremap(t, at(0), pages(2), pages(2), MOVE, at(4)))).toBe(at(4));
      expect(picture(mm, { N: n }, 8)).toBe('    NNNN');
      expect(layout(mm)).toEqual([shape(4, 8, RW, pg(4))]);
    });
  });

  describe('having a faulted anonymous VMA moved right before N', () => {
    it('should keep its pgoff (its pages are indexed by it), so not merge, and carry its page', () => {
      const mm = newMm();
      mmapAnon(mm, 0, 2);
      touch(mm, 0);
      mmapAnon(mm, 6, 2);
      const page = mm.pageTables.lookup(at(0))?.page;
      expect(run(mm, (t) => sysMremap(t, at(0), pages(2), pages(2), MOVE, at(4)))).toBe(at(4));
      expect(layout(mm)).toEqual([shape(4, 6, RW, pg(0)), shape(6, 8, RW, pg(6))]);
      expect(mm.pageTables.lookup(at(4))?.page).toBe(page);
      expect(mm.pageTables.lookup(at(0))).toBeNull();
    });
  });

  describe('having a file VMA moved next to the VMA mapping the following file pages', () => {
    it('should merge the copy into it', () => {
      // 01234567
      // VV  **NN   V: file pages 4-5, N: file pages 6-7
      const mm = newMm();
      mm.files.set(FD_PLAIN, new MmFile('/data/plain', 78));
      mmapFile(mm, FD_PLAIN, 0, 2, 4);
      mmapFile(mm, FD_PLAIN, 6, 2, 6);
      const n = vmaAt(mm, 6);
      expect(run(mm, (t) => sysMremap(t, at(0), pages(2), pages(2), MOVE, at(4)))).toBe(at(4));
      expect(picture(mm, { N: n }, 8)).toBe('    NNNN');
      expect(layout(mm)).toEqual([shape(4, 8, FILE_R, 4)]);
    });
  });

  describe('having a hole at the source', () => {
    it('should fail with -EFAULT and change nothing', () => {
      const mm = newMm();
      mmapAnon(mm, 6, 2);
      const before = renderMaps(mm);
      expect(run(mm, (t) => sysMremap(t, at(0), pages(2), pages(2), MOVE, at(4)))).toBe(-EFAULT);
      expect(renderMaps(mm)).toBe(before);
    });
  });
});
