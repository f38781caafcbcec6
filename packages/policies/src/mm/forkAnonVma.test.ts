// Proves the anon_vma chain rule after fork: in the child, a faulted VMA inherited from the
// parent (its anon_vma_chain has more than one entry) is neither extended over a new adjacent
// range nor lends its anon_vma (`is_mergeable_anon_vma`, `reusable_anon_vma` need a singular
// chain), while in the parent the same mmap merges as usual.
//
//   0x10000000  AA.   parent: A = [0, 2p) faulted; child gets A' (forked anon_vma)
//               AAB   mmap B = [2p, 3p): merges in the parent, stays apart in the child
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MmStruct,
  PROT_READ,
  PROT_WRITE,
  checkMmInvariants,
  dupMmap,
  handleMmFault,
  renderMaps,
  runMmOp,
  sysMmap,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { GlobalRwsemPolicy } from '../globalRwsem.js';

const base = 0x10000000;
const page = 0x1000;
const rw = PROT_READ | PROT_WRITE;
const anonFixed = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;

describe('anon_vma after dupMmap', () => {
  it('should keep a new range apart from an inherited faulted VMA in the child, and merge it in the parent', () => {
    const parent = new MmStruct(1, new GlobalRwsemPolicy());
    expect(runMmOp(parent, (t) => sysMmap(t, base, 2 * page, rw, anonFixed, -1, 0))).toBe(base);
    expect(runMmOp(parent, (t) => handleMmFault(t, base, 'write'))).toBe('ok');
    const child = runMmOp(parent, (t) => dupMmap(t, 2, new GlobalRwsemPolicy()));
    for (const mm of [parent, child]) expect(runMmOp(mm, (t) => sysMmap(t, base + 2 * page, page, rw, anonFixed, -1, 0))).toBe(base + 2 * page);
    checkMmInvariants(parent);
    checkMmInvariants(child);
    expect(renderMaps(parent)).toBe('10000000-10003000 rw-p 00000000 00:00 0 \n');
    expect(renderMaps(child)).toBe('10000000-10002000 rw-p 00000000 00:00 0 \n10002000-10003000 rw-p 00000000 00:00 0 \n');
  });
});
