// Proves the model of a user thread reading /proc/self/maps: on a quiescent mm both lockings
// read exactly what `renderMaps` renders, in as many read() calls as the buffer needs; under
// mmap_sem a read() call is a consistent snapshot but several calls are not (proc.rst:
// "consistent output can be achieved only in the single read call") — a one-line buffer lists a
// VMA moved by mremap twice even under global-rwsem (seed 0, random); and the per-VMA walk
// (Linux 6.17) lists it twice within one read() (per-vma seed 9, vma-range seed 0).
import {
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MmStruct,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  renderMaps,
  runMmOp,
  runProgram,
  sysBrk,
  sysMmap,
  sysMremap,
} from '@vmalock/core';
import { POLICIES, createPolicy } from '@vmalock/policies';
import { describe, expect, it } from 'vitest';
import { type MapsEntry, type MapsLocking, mapsLockingOf, readProcMaps } from './procMapsRead.js';

const P = PAGE_SIZE;
const BASE = 0x40000000;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** An mm with a library, a data mapping, a heap and a mapping placed top-down. */
function populated(policy: string): MmStruct {
  const mm = new MmStruct(1, createPolicy(policy));
  runMmOp(mm, (t) => sysMmap(t, BASE + 10 * P, 2 * P, PROT_READ | PROT_EXEC, ANON | MAP_FIXED, -1, 0));
  runMmOp(mm, (t) => sysMmap(t, BASE + 2 * P, 2 * P, PROT_READ | PROT_WRITE, ANON | MAP_FIXED, -1, 0));
  runMmOp(mm, (t) => sysMmap(t, 0, 3 * P, PROT_READ, ANON, -1, 0));
  runMmOp(mm, (t) => sysBrk(t, mm.startBrk + 2 * P));
  return mm;
}

function readAlone(mm: MmStruct, locking: MapsLocking, bufferBytes?: number): MapsEntry[] {
  return runMmOp(mm, (t) => readProcMaps(t, locking, bufferBytes));
}

/** A mover that moves a 2-page rw-p VMA from page 2 to page 16 while a reader reads maps once; the rw-p lines the reader saw. */
function racedRead(policy: string, locking: MapsLocking, bufferBytes: number, seed: number): number {
  const mm = new MmStruct(1, createPolicy(policy));
  runMmOp(mm, (t) => sysMmap(t, BASE + 10 * P, 2 * P, PROT_READ | PROT_EXEC, ANON | MAP_FIXED, -1, 0));
  runMmOp(mm, (t) => sysMmap(t, BASE + 2 * P, 2 * P, PROT_READ | PROT_WRITE, ANON | MAP_FIXED, -1, 0));
  let seen = -1;
  const r = runProgram(
    (sim) => {
      sim.spawn('mover', function* (thread) {
        expect(yield* sysMremap({ thread, mm }, BASE + 2 * P, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, BASE + 16 * P)).toBe(BASE + 16 * P);
      });
      sim.spawn('reader', function* (thread) {
        seen = (yield* readProcMaps({ thread, mm }, locking, bufferBytes)).filter((e) => e.line.includes(' rw-p ')).length;
      });
    },
    { seed, strategy: 'random' },
  );
  expect(r.status, r.summary).toBe('ok');
  return seen;
}

describe('readProcMaps', () => {
  describe.each(POLICIES.map((p) => p.name))('having a quiescent mm (%s)', (policy) => {
    it.each<MapsLocking>(['mmap-lock', 'vma-lock'])('should read what renderMaps renders (%s)', (locking) => {
      const mm = populated(policy);
      const text = readAlone(mm, locking)
        .map((e) => `${e.line}\n`)
        .join('');
      expect(text).toBe(renderMaps(mm));
      expect(text.split('\n')).toHaveLength(5);
    });

    it('should read the same lines in several read() calls when the buffer holds one line', () => {
      const mm = populated(policy);
      expect(readAlone(mm, 'mmap-lock', 50)).toEqual(readAlone(mm, 'mmap-lock'));
      expect(readAlone(mm, 'vma-lock', 50)).toEqual(readAlone(mm, 'vma-lock'));
    });
  });

  describe('having mremap move a VMA across the walk (mover and reader, random)', () => {
    it('should list it once per read() call under mmap_sem when one call holds the whole text (global-rwsem, seeds 0-49)', () => {
      for (let seed = 0; seed < 50; seed++) expect(racedRead('global-rwsem', 'mmap-lock', PAGE_SIZE, seed), `seed=${seed}`).toBe(1);
    });

    it('should list it twice across read() calls even under mmap_sem (global-rwsem, one-line buffer, seed 0)', () => {
      expect(racedRead('global-rwsem', 'mmap-lock', 50, 0)).toBe(2);
    });

    it('should list it twice within one read() under per-VMA locks (per-vma seed 9, vma-range seed 0)', () => {
      expect(racedRead('per-vma', 'vma-lock', PAGE_SIZE, 9)).toBe(2);
      expect(racedRead('vma-range', 'vma-lock', PAGE_SIZE, 0)).toBe(2);
    });
  });
});

describe('mapsLockingOf', () => {
  it('should read per VMA exactly under the policies with per-VMA read locks and no mmap_sem around them', () => {
    expect(Object.fromEntries(POLICIES.map((p) => [p.name, mapsLockingOf(p.name)]))).toEqual({
      'global-rwsem': 'mmap-lock',
      hybrid: 'mmap-lock',
      'vma-range': 'vma-lock',
      'per-vma': 'vma-lock',
      spf: 'mmap-lock',
      'range-lock': 'mmap-lock',
    });
  });
});
