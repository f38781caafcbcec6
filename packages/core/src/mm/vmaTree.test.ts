// Proves VmaTree is a correct find_vma() / vm_unmapped_area() index, three ways:
// - scenarios drawn as small address spaces (one character an address unit, a letter run an
//   entry, lowercase a stack with a guard gap below it) pin down each query, the gap rules
//   (guard gaps, the low and high limits, the final gap, alignment with offsets, addresses and
//   alignments above 2^32), in-place adjustment, and the errors;
// - a fast-check model test runs random inserts, erases, adjustments (also of guard flags) and
//   every query against a naive sorted array whose unmapped-area search tries each candidate
//   address in turn, with 4-to-8-slot nodes so that its trees of up to about a hundred entries
//   are 3 to 5 levels deep, and checks every structural invariant after each command (now and
//   then it erases everything, to visit the empty tree). A failure names the command and prints
//   fast-check's seed and path: replay with fc.assert(property, { seed, path });
// - find() has a form of its own for the default node sizes (32-slot leaves, 64-slot internal
//   nodes), which the small-node tests never reach: a test of tens of thousands of entries in
//   default nodes compares it with a sorted array at every address around every entry;
// - a smoke test builds a million entries and checks the invariants once.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type TreeEntry, type UnmappedAreaRequest, VmaTree } from './vmaTree.js';

/** A test entry: mutable like a Vma, with the two flags that move its gap bounds. */
interface Area extends TreeEntry {
  start: number;
  end: number;
  readonly name: string;
  /** VM_GROWSDOWN: the free space below ends `guard` units under the start. */
  growsDown: boolean;
  /** VM_GROWSUP: the free space above begins `guard` units over the end. */
  growsUp: boolean;
}

const GUARD = 2;

function tree(options: { lowLimit?: number; highLimit?: number; guard?: number; nodeCapacity?: number; innerNodeCapacity?: number } = {}): VmaTree<Area> {
  const guard = options.guard ?? GUARD;
  return new VmaTree<Area>({
    lowLimit: options.lowLimit ?? 0,
    highLimit: options.highLimit ?? 16,
    startGap: (a) => (a.growsDown ? a.start - guard : a.start),
    endGap: (a) => (a.growsUp ? a.end + guard : a.end),
    ...(options.nodeCapacity === undefined ? {} : { nodeCapacity: options.nodeCapacity }),
    ...(options.innerNodeCapacity === undefined ? {} : { innerNodeCapacity: options.innerNodeCapacity }),
  });
}

function area(name: string, start: number, end: number, growsDown = false, growsUp = false): Area {
  return { name, start, end, growsDown, growsUp };
}

/**
 * The entries a diagram draws, in order: each character is one address unit; a run of the same
 * letter is one entry named by it (lowercase: growing down); spaces are free.
 */
function drawn(diagram: string): Area[] {
  const areas: Area[] = [];
  for (let i = 0; i < diagram.length; i++) {
    const c = diagram[i]!;
    if (c === ' ') continue;
    const last = areas.at(-1);
    if (last !== undefined && last.name === c && last.end === i) last.end = i + 1;
    else areas.push(area(c, i, i + 1, c === c.toLowerCase()));
  }
  return areas;
}

/** Insert what a diagram draws; returns the entries by name (the names given must be drawn). */
function filled<N extends string>(t: VmaTree<Area>, diagram: string, ...names: N[]): Record<N, Area> {
  const areas = drawn(diagram);
  for (const a of areas) t.insert(a);
  t.checkInvariants();
  const byName = Object.fromEntries(areas.map((a) => [a.name, a]));
  for (const name of names) if (byName[name] === undefined) throw new Error(`the diagram '${diagram}' draws no ${name}`);
  return byName as Record<N, Area>;
}

const names = (areas: Iterable<Area>): string => [...areas].map((a) => a.name).join('');
const up = (length: number, low = 0, high = 16, alignMask = 0, alignOffset = 0): UnmappedAreaRequest => ({
  length,
  low,
  high,
  alignMask,
  alignOffset,
  topDown: false,
});
const down = (length: number, low = 0, high = 16, alignMask = 0, alignOffset = 0): UnmappedAreaRequest => ({
  length,
  low,
  high,
  alignMask,
  alignOffset,
  topDown: true,
});

describe('VmaTree', () => {
  describe('having no entries', () => {
    const t = tree({ lowLimit: 3, highLimit: 16 });

    it('should find nothing', () => {
      expect(t.size).toBe(0);
      expect(t.find(0)).toBeNull();
      expect(t.lookup(5)).toBeNull();
      expect(t.findIntersection(0, 16)).toBeNull();
      expect(t.findPrev(16)).toBeNull();
      expect(t.first()).toBeNull();
      expect(t.last()).toBeNull();
      expect([...t.entries()]).toEqual([]);
      t.checkInvariants();
    });

    it('should offer [lowLimit, highLimit) as the one gap', () => {
      expect(t.maxGap()).toBe(13);
      expect(t.unmappedArea(up(4))).toBe(3);
      expect(t.unmappedArea(down(4))).toBe(12);
      expect(t.unmappedArea(up(13))).toBe(3);
      expect(t.unmappedArea(up(14))).toBe(-1);
    });
  });

  describe('having had its last entry erased', () => {
    // An entry above highLimit leaves a gap reaching past highLimit; once the entry is gone the
    // only gap is [lowLimit, highLimit) again, whatever the emptied leaf still holds.
    it('should forget its gaps', () => {
      const t = tree({ lowLimit: 3, highLimit: 16 });
      const X = area('X', 20, 21);
      t.insert(X);
      expect(t.unmappedArea(down(14, 0, 20))).toBe(6);
      t.erase(X);
      t.checkInvariants();
      expect(t.unmappedArea(down(14, 0, 20))).toBe(-1);
      expect(t.unmappedArea(up(14, 0, 20))).toBe(-1);
      expect(t.unmappedArea(down(13, 0, 20))).toBe(3);
      expect(t.maxGap()).toBe(13);
    });
  });

  describe('having three entries', () => {
    //   0123456789abcdef
    //     AA B   CCC
    const t = tree();
    const { A, B, C } = filled(t, '  AA B   CCC', 'A', 'B', 'C');

    it('should find the first entry ending above an address (find_vma)', () => {
      expect(t.find(0)).toBe(A);
      expect(t.find(3)).toBe(A);
      expect(t.find(4)).toBe(B);
      expect(t.find(6)).toBe(C);
      expect(t.find(11)).toBe(C);
      expect(t.find(12)).toBeNull();
    });

    it('should look up only an entry containing the address (vma_lookup)', () => {
      expect(t.lookup(1)).toBeNull();
      expect(t.lookup(2)).toBe(A);
      expect(t.lookup(4)).toBeNull();
      expect(t.lookup(5)).toBe(B);
      expect(t.lookup(11)).toBe(C);
      expect(t.lookup(12)).toBeNull();
    });

    it('should find the first entry intersecting a range (find_vma_intersection)', () => {
      expect(t.findIntersection(0, 2)).toBeNull();
      expect(t.findIntersection(0, 3)).toBe(A);
      expect(t.findIntersection(4, 5)).toBeNull();
      expect(t.findIntersection(4, 9)).toBe(B);
      expect(t.findIntersection(6, 9)).toBeNull();
      expect(t.findIntersection(6, 10)).toBe(C);
      expect(t.findIntersection(10, 10)).toBeNull();
    });

    it('should find the last entry starting below an address', () => {
      expect(t.findPrev(2)).toBeNull();
      expect(t.findPrev(3)).toBe(A);
      expect(t.findPrev(5)).toBe(A);
      expect(t.findPrev(6)).toBe(B);
      expect(t.findPrev(10)).toBe(C);
      expect(t.findPrev(100)).toBe(C);
    });

    it('should step to neighbours and iterate in address order', () => {
      expect(t.prev(A)).toBeNull();
      expect(t.next(A)).toBe(B);
      expect(t.prev(C)).toBe(B);
      expect(t.next(C)).toBeNull();
      expect(t.first()).toBe(A);
      expect(t.last()).toBe(C);
      expect(names(t.entries())).toBe('ABC');
      expect(names(t.entries(4))).toBe('BC');
      expect(names(t.entries(5))).toBe('BC');
      expect(names(t.entries(6))).toBe('C');
      expect(names(t.entries(12))).toBe('');
    });

    it('should take the lowest gap that fits, bottom-up', () => {
      expect(t.unmappedArea(up(1))).toBe(0);
      expect(t.unmappedArea(up(2))).toBe(0);
      expect(t.unmappedArea(up(3))).toBe(6);
      expect(t.unmappedArea(up(4))).toBe(12);
      expect(t.unmappedArea(up(5))).toBe(-1);
      expect(t.unmappedArea(up(1, 3))).toBe(4);
      expect(t.unmappedArea(up(2, 1))).toBe(6);
      expect(t.unmappedArea(up(3, 0, 12))).toBe(6);
      expect(t.unmappedArea(up(3, 0, 8))).toBe(-1);
    });

    it('should take the highest gap that fits, top-down, the final gap included', () => {
      expect(t.unmappedArea(down(1))).toBe(15);
      expect(t.unmappedArea(down(4))).toBe(12);
      expect(t.unmappedArea(down(3, 0, 12))).toBe(6);
      expect(t.unmappedArea(down(2, 0, 9))).toBe(7);
      expect(t.unmappedArea(down(1, 0, 5))).toBe(4);
      expect(t.unmappedArea(down(2, 1, 5))).toBe(-1);
    });

    it('should report the largest gap, the final one included', () => {
      expect(t.maxGap()).toBe(4);
    });
  });

  describe('having a stack that grows down, with a guard gap of 2 below it', () => {
    //   0123456789abcdef
    //   AA      sss
    //           ^^ guard: the gap below s is [2, 6), not [2, 8)
    const t = tree();
    filled(t, 'AA      sss');

    it('should keep the guard gap out of the free space', () => {
      expect(t.maxGap()).toBe(5);
      expect(t.unmappedArea(up(4))).toBe(2);
      expect(t.unmappedArea(up(5))).toBe(11);
      expect(t.unmappedArea(down(4, 0, 11))).toBe(2);
      expect(t.unmappedArea(down(5))).toBe(11);
      expect(t.unmappedArea(down(6))).toBe(-1);
    });

    it('should still find and look up by the entry itself, guard excluded', () => {
      expect(t.lookup(7)).toBeNull();
      expect(t.find(7)?.name).toBe('s');
    });
  });

  describe('having an entry that grows up, with a guard gap of 2 above it', () => {
    //   0123456789abcdef
    //    AA        B
    //      ^^ guard: the gap above A is [5, 11), not [3, 11)
    const t = tree();
    const { A } = filled(t, ' AA        B', 'A');
    A.growsUp = true;
    t.adjusted(A, A.start);

    it('should keep the guard gap out of the free space', () => {
      t.checkInvariants();
      expect(t.unmappedArea(up(6))).toBe(5);
      expect(t.unmappedArea(up(7))).toBe(-1);
      expect(t.maxGap()).toBe(6);
    });
  });

  describe('having alignment with an offset', () => {
    //   0123456789abcdef
    //   AAA          BBB      one gap, [3, 13)
    const t = tree();
    filled(t, 'AAA          BBB');

    it('should take the lowest and the highest address congruent to the offset', () => {
      // s = 1 (mod 4): 5 and 9 are the candidates with [s, s + 4) inside [3, 13).
      expect(t.unmappedArea(up(4, 0, 16, 3, 1))).toBe(5);
      expect(t.unmappedArea(down(4, 0, 16, 3, 1))).toBe(9);
      // An offset above the mask counts modulo mask + 1.
      expect(t.unmappedArea(up(4, 0, 16, 3, 13))).toBe(5);
      // s = 0 (mod 8): only 8 fits; then nothing does.
      expect(t.unmappedArea(up(5, 0, 16, 7))).toBe(8);
      expect(t.unmappedArea(up(6, 0, 16, 7))).toBe(-1);
    });

    it('should find a gap that fits the length exactly when the alignment happens to agree', () => {
      // Length 10 with 16-alignment offset 3: only s = 3, where the gap is exactly 10 wide. The
      // kernel, asking for length + alignMask = 25, would miss it.
      expect(t.unmappedArea(up(10, 0, 16, 15, 3))).toBe(3);
      expect(t.unmappedArea(down(10, 0, 16, 15, 3))).toBe(3);
      expect(t.unmappedArea(up(10, 0, 16, 15, 4))).toBe(-1);
    });

    it('should reject an alignMask that is not a power of two minus one', () => {
      expect(() => t.unmappedArea(up(4, 0, 16, 5))).toThrow(/power of two/);
    });
  });

  describe('having addresses and alignments above 2^32', () => {
    // Units of 2^36 (64 GiB) up to 2^47, aligned to 2^40 with an offset of 2^39: arithmetic
    // that 32-bit bitwise operators would silently truncate.
    const G = 2 ** 36;
    const t = new VmaTree<Area>({ highLimit: 2 ** 47 });
    const A = area('A', 1 * G, 3 * G);
    const B = area('B', 40 * G, 2 ** 47 - G);
    t.insert(A);
    t.insert(B);

    it('should compute aligned areas exactly', () => {
      t.checkInvariants();
      const mask = 2 ** 40 - 1;
      const offset = 2 ** 39;
      // Gap [3G, 40G); s = 8G (mod 16G) => 8G is the lowest, 24G the highest with s + 4G <= 40G.
      expect(t.unmappedArea({ length: 4 * G, low: 0, high: 2 ** 47, alignMask: mask, alignOffset: offset, topDown: false })).toBe(8 * G);
      expect(t.unmappedArea({ length: 4 * G, low: 0, high: 2 ** 47, alignMask: mask, alignOffset: offset, topDown: true })).toBe(24 * G);
      expect(t.unmappedArea({ length: 33 * G, low: 0, high: 2 ** 47, alignMask: mask, topDown: false })).toBe(-1);
      expect(t.find(2 ** 47 - 2 * G)).toBe(B);
      expect(t.maxGap()).toBe(37 * G);
    });
  });

  describe('having an entry adjusted in place', () => {
    //   0123456789abcdef
    //   AA   BB    CC
    it('should move the gaps on both sides', () => {
      const t = tree();
      const { A, B, C } = filled(t, 'AA   BB    CC', 'A', 'B', 'C');
      // vma_expand: B grows to [3, 9): the gap below shrinks to 1, the one above to 2.
      B.start = 3;
      B.end = 9;
      t.adjusted(B, 5);
      t.checkInvariants();
      expect(t.lookup(3)).toBe(B);
      expect(t.find(9)).toBe(C);
      expect(t.unmappedArea(up(2))).toBe(9);
      expect(t.unmappedArea(up(3))).toBe(13);
      expect(t.prev(B)).toBe(A);
    });

    it('should refuse an adjustment that overlaps a neighbour, leaving the tree as it was', () => {
      const t = tree();
      const { B } = filled(t, 'AA   BB    CC', 'B');
      B.end = 12;
      expect(() => t.adjusted(B, 5)).toThrow(/\[0x5, 0xc\) now overlaps \[0xb, 0xd\)/);
      B.end = 7;
      t.checkInvariants();
      expect(t.lookup(6)).toBe(B);
    });

    it('should refuse an entry that is not where oldStart says', () => {
      const t = tree();
      const { B } = filled(t, 'AA   BB    CC', 'B');
      // Any oldStart from which the descent reaches B would do; one inside C does not.
      B.start = 4;
      expect(() => t.adjusted(B, 11)).toThrow(/not in the tree at 0xb/);
      B.start = 5;
      t.checkInvariants();
    });
  });

  describe('having misuse', () => {
    //   0123456789abcdef
    //   AA   BB
    const t = tree();
    const { B } = filled(t, 'AA   BB', 'B');

    it('should refuse an overlapping insert, naming both ranges', () => {
      expect(() => t.insert(area('X', 6, 9))).toThrow(RangeError);
      expect(() => t.insert(area('X', 6, 9))).toThrow('[0x6, 0x9) overlaps [0x5, 0x7)');
      expect(() => t.insert(area('X', 1, 6))).toThrow('[0x1, 0x6) overlaps [0x0, 0x2)');
      t.checkInvariants();
      expect(t.size).toBe(2);
    });

    it('should refuse an empty or inverted entry', () => {
      expect(() => t.insert(area('X', 9, 9))).toThrow(RangeError);
      expect(() => t.insert(area('X', 10, 9))).toThrow(RangeError);
    });

    it('should refuse guard gaps that reach inside the entry', () => {
      const bad = new VmaTree<Area>({ startGap: (a) => a.start + 1 });
      expect(() => bad.insert(area('X', 1, 3))).toThrow(/startGap 0x2 of \[0x1, 0x3\) is above its start/);
    });

    it('should refuse to erase or step from an entry it does not hold, even with the same range', () => {
      const twin = area('B', B.start, B.end);
      expect(() => t.erase(twin)).toThrow('VmaTree.erase: [0x5, 0x7) is not in the tree');
      expect(() => t.next(twin)).toThrow(/not in the tree/);
      expect(() => t.prev(area('Y', 9, 10))).toThrow(/not in the tree/);
      t.checkInvariants();
    });

    it('should refuse node capacities outside [4, 255]', () => {
      expect(() => new VmaTree<Area>({ nodeCapacity: 3 })).toThrow(/nodeCapacity must be an integer in \[4, 255\], got 3/);
      expect(() => new VmaTree<Area>({ innerNodeCapacity: 256 })).toThrow(/innerNodeCapacity must be an integer in \[4, 255\], got 256/);
      expect(() => new VmaTree<Area>({ innerNodeCapacity: 4.5 })).toThrow(RangeError);
    });

    it('should stop an iteration the tree changed under', () => {
      const u = tree();
      filled(u, 'AA B C');
      expect(() => {
        for (const a of u.entries()) if (a.name === 'A') u.insert(area('X', 8, 9));
      }).toThrow(/changed during the iteration/);
    });
  });

  describe('having thousands of entries in nodes of 4 slots', () => {
    // Runs of inserts in order, in reverse and shuffled, then erases, with invariants checked
    // every few hundred steps: splits (also the uneven edge splits), borrows, merges, root growth and collapse.
    const count = 3000;
    const make = (): Area[] => Array.from({ length: count }, (_, i) => area(`#${i}`, 3 * i, 3 * i + 2, i % 7 === 0));
    const orders: [string, (xs: Area[]) => Area[]][] = [
      ['ascending', (xs) => xs],
      ['descending', (xs) => [...xs].reverse()],
      ['shuffled', (xs) => shuffled(xs, 12345)],
    ];

    for (const [name, order] of orders) {
      it(`should stay valid inserting ${name} and erasing shuffled`, () => {
        const t = tree({ highLimit: 3 * count + 10, nodeCapacity: 4, innerNodeCapacity: 4 });
        const areas = make();
        order(areas).forEach((a, i) => {
          t.insert(a);
          if (i % 250 === 0) t.checkInvariants();
        });
        t.checkInvariants();
        expect(t.size).toBe(count);
        expect([...t.entries()]).toEqual(areas);
        expect(t.find(3 * 1234 + 2)).toBe(areas[1235]);
        shuffled(areas, 777).forEach((a, i) => {
          t.erase(a);
          if (i % 250 === 0) t.checkInvariants();
        });
        t.checkInvariants();
        expect(t.size).toBe(0);
        expect(t.unmappedArea(up(3 * count + 10, 0, 3 * count + 10))).toBe(0);
      });
    }
  });

  describe('having tens of thousands of entries in nodes of the default sizes', () => {
    // Entries of 1 to 3 units with holes of 0 to 2 between them, inserted shuffled (so splits
    // leave nodes between half and fully used, 3 levels deep), then three in four erased: after
    // each phase find() must agree with a search of the sorted entries at every address from
    // below the first entry to past the last, which visits each slot of every row.
    const count = 40_000;
    const make = (): Area[] => {
      const areas: Area[] = [];
      let state = 99;
      let at = 5;
      for (let i = 0; i < count; i++) {
        state = (state * 1103515245 + 12345) % 2 ** 31;
        const length = 1 + (state % 3);
        areas.push(area(`#${i}`, at, at + length));
        at += length + ((state >> 8) % 3);
      }
      return areas;
    };
    const expectFindAgrees = (t: VmaTree<Area>, sorted: readonly Area[]): void => {
      let next = 0;
      const last = sorted.at(-1)!.end;
      for (let a = 0; a <= last + 2; a++) {
        while (next < sorted.length && sorted[next]!.end <= a) next++;
        const want = sorted[next] ?? null;
        const got = t.find(a);
        if (got !== want) throw new Error(`find(${a}) gave ${got === null ? 'null' : got.name}, want ${want === null ? 'null' : want.name}`);
      }
    };

    it('should find like a sorted array after shuffled inserts and erases', () => {
      const areas = make();
      const t = tree({ highLimit: 2 ** 40 });
      for (const a of shuffled(areas, 4242)) t.insert(a);
      t.checkInvariants();
      expectFindAgrees(t, areas);
      const erased = new Set(shuffled(areas, 99).slice(0, (3 * count) / 4));
      for (const a of erased) t.erase(a);
      t.checkInvariants();
      expectFindAgrees(
        t,
        areas.filter((a) => !erased.has(a)),
      );
    });

    it('should find like a sorted array after inserts in order', () => {
      const areas = make();
      const t = tree({ highLimit: 2 ** 40 });
      for (const a of areas) t.insert(a);
      t.checkInvariants();
      expectFindAgrees(t, areas);
    });
  });

  describe('having random commands against a sorted-array model', () => {
    it('should agree on every query and keep every invariant after every command', () => {
      fc.assert(
        fc.property(configArb, fc.array(commandArb, { maxLength: 500, size: 'max' }), (config, commands) => {
          const run = new ModelRun(config);
          commands.forEach((command, i) => {
            try {
              run.apply(command);
              run.compare();
            } catch (err) {
              const message = err instanceof Error ? err.message : String(err);
              throw new Error(
                `command ${i} ${JSON.stringify(command)} (scale ${config.scale}, capacities ${config.nodeCapacity}/${config.innerNodeCapacity}): ${message}`,
                { cause: err },
              );
            }
          });
        }),
        // Shrinking hundreds of commands can take long: bound it, and report what it reached.
        { numRuns: 200, plugins: [fc.interruptAfterTimeLimit(40_000)] },
      );
    });
  });

  describe('having a million entries', () => {
    it('should build one page apart and keep every invariant', () => {
      const page = 4096;
      const n = 1_000_000;
      const t = new VmaTree<TreeEntry>();
      for (let i = 0; i < n; i++) t.insert({ start: (2 * i + 1) * page, end: (2 * i + 2) * page });
      t.checkInvariants();
      expect(t.size).toBe(n);
      expect(t.find(2 * 777_777 * page + page)?.start).toBe((2 * 777_777 + 1) * page);
      expect(t.unmappedArea({ length: 2 * page, low: 0, high: 2 ** 46, topDown: false })).toBe(2 * n * page);
      expect(t.unmappedArea({ length: page, low: 1_000 * page, high: 2 ** 46, topDown: false })).toBe(1_000 * page);
    });
  });
});

/** A deterministic Fisher-Yates shuffle (a linear congruential generator is plenty here). */
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let state = seed;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// --- the model test ---

/** Model addresses are units of `scale`; entries fill [0, SPACE + 4). */
const SPACE = 600;

interface Config {
  readonly nodeCapacity: number;
  readonly innerNodeCapacity: number;
  /** 1, or 2^33 so that addresses, lengths and alignments exceed 32 bits. */
  readonly scale: number;
  readonly lowLimit: number;
  readonly highLimit: number;
  readonly guard: number;
  /** Whether eraseAll commands act: a quarter of the runs; the others grow trees of 100 entries and more. */
  readonly clears: boolean;
}

/** True one time in four. */
const rare = fc.nat({ max: 3 }).map((x) => x === 0);

const configArb: fc.Arbitrary<Config> = fc.record({
  nodeCapacity: fc.integer({ min: 4, max: 8 }),
  innerNodeCapacity: fc.integer({ min: 4, max: 8 }),
  scale: fc.constantFrom(1, 2 ** 33),
  lowLimit: fc.nat({ max: 8 }),
  highLimit: fc.integer({ min: SPACE - 40, max: SPACE + 8 }),
  guard: fc.integer({ min: 1, max: 4 }),
  clears: rare,
});

const addr = fc.integer({ min: -2, max: SPACE + 8 });

type Command =
  | { readonly kind: 'insert'; readonly start: number; readonly length: number; readonly growsDown: boolean; readonly growsUp: boolean }
  | { readonly kind: 'erase'; readonly pick: number }
  | { readonly kind: 'eraseTwin'; readonly pick: number }
  | { readonly kind: 'eraseAll'; readonly backwards: boolean }
  | { readonly kind: 'adjust'; readonly pick: number; readonly dStart: number; readonly dEnd: number; readonly growsDown: boolean; readonly growsUp: boolean }
  | { readonly kind: 'find' | 'lookup' | 'findPrev' | 'entries'; readonly addr: number }
  | { readonly kind: 'intersect'; readonly addr: number; readonly length: number }
  | { readonly kind: 'neighbours'; readonly pick: number }
  | {
      readonly kind: 'unmapped';
      /** The gap that Measures not given as values are taken from. */
      readonly pick: number;
      readonly length: Measure;
      readonly low: Measure;
      readonly high: Measure;
      readonly alignShift: number;
      readonly alignOffset: number;
      readonly topDown: boolean;
    };

/**
 * A length or bound of an unmapped-area request, in units: a plain number, or one taken from
 * the picked gap of the model at the time (its start, end or size, give or take a little), so
 * that exact fits and bounds on gap edges, where off-by-one errors live, come up often.
 */
type Measure = { readonly at: 'value'; readonly value: number } | { readonly at: 'gapLo' | 'gapHi' | 'gapSize'; readonly delta: number };

const measureArb = (max: number, at: 'gapLo' | 'gapHi' | 'gapSize'): fc.Arbitrary<Measure> =>
  fc.oneof(
    fc.record({ at: fc.constant('value' as const), value: fc.nat({ max }) }),
    fc.record({ at: fc.constant(at), delta: fc.integer({ min: -2, max: 2 }) }),
  );

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 30,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      start: fc.nat({ max: SPACE - 1 }),
      length: fc.integer({ min: 1, max: 4 }),
      growsDown: rare,
      growsUp: rare,
    }),
  },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('erase' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('eraseTwin' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('eraseAll' as const), backwards: fc.boolean() }) },
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('adjust' as const),
      pick: fc.nat(),
      dStart: fc.integer({ min: -3, max: 3 }),
      dEnd: fc.integer({ min: -3, max: 3 }),
      growsDown: rare,
      growsUp: rare,
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constantFrom('find' as const, 'lookup' as const, 'findPrev' as const, 'entries' as const), addr }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('intersect' as const), addr, length: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('neighbours' as const), pick: fc.nat() }) },
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant('unmapped' as const),
      pick: fc.nat(),
      length: measureArb(24, 'gapSize'),
      low: measureArb(SPACE, 'gapLo'),
      high: measureArb(SPACE + 16, 'gapHi'),
      alignShift: fc.nat({ max: 4 }),
      alignOffset: fc.nat({ max: 40 }),
      topDown: fc.boolean(),
    }),
  },
);

/** One model run: the tree under test and a sorted array of the same Area objects. */
class ModelRun {
  readonly #config: Config;
  readonly #tree: VmaTree<Area>;
  #model: Area[] = [];
  #created = 0;

  constructor(config: Config) {
    this.#config = config;
    const { scale, guard } = config;
    this.#tree = new VmaTree<Area>({
      lowLimit: config.lowLimit * scale,
      highLimit: config.highLimit * scale,
      startGap: (a) => (a.growsDown ? a.start - guard * scale : a.start),
      endGap: (a) => (a.growsUp ? a.end + guard * scale : a.end),
      nodeCapacity: config.nodeCapacity,
      innerNodeCapacity: config.innerNodeCapacity,
    });
  }

  apply(c: Command): void {
    const t = this.#tree;
    const s = this.#config.scale;
    const m = this.#model;
    const picked = (pick: number): Area | undefined => m[pick % m.length];
    switch (c.kind) {
      case 'insert': {
        const a = area(`#${this.#created++}`, c.start * s, (c.start + c.length) * s, c.growsDown, c.growsUp);
        const clash = m.find((b) => b.start < a.end && a.start < b.end);
        if (clash !== undefined) {
          expect(() => t.insert(a)).toThrow(RangeError);
        } else {
          t.insert(a);
          m.push(a);
          m.sort((x, y) => x.start - y.start);
        }
        break;
      }
      case 'erase': {
        const a = picked(c.pick);
        if (a === undefined) break;
        t.erase(a);
        this.#model = m.filter((b) => b !== a);
        break;
      }
      case 'eraseAll': {
        // Empty trees are where stale slots could show: get there now and then.
        if (!this.#config.clears) break;
        for (const a of c.backwards ? [...m].reverse() : m) t.erase(a);
        this.#model = [];
        break;
      }
      case 'eraseTwin': {
        const a = picked(c.pick);
        if (a === undefined) break;
        expect(() => t.erase({ ...a })).toThrow(/not in the tree/);
        break;
      }
      case 'adjust': {
        const i = c.pick % Math.max(1, m.length);
        const a = m[i];
        if (a === undefined) break;
        const old = { ...a };
        a.start += c.dStart * s;
        a.end += c.dEnd * s;
        a.growsDown = c.growsDown;
        a.growsUp = c.growsUp;
        const prev = m[i - 1];
        const next = m[i + 1];
        const valid = a.start < a.end && (prev === undefined || prev.end <= a.start) && (next === undefined || a.end <= next.start);
        if (valid) {
          t.adjusted(a, old.start);
        } else {
          expect(() => t.adjusted(a, old.start)).toThrow(RangeError);
          Object.assign(a, old);
        }
        break;
      }
      case 'find':
        expect(t.find(c.addr * s)).toBe(m.find((a) => a.end > c.addr * s) ?? null);
        break;
      case 'lookup':
        expect(t.lookup(c.addr * s)).toBe(m.find((a) => a.start <= c.addr * s && c.addr * s < a.end) ?? null);
        break;
      case 'findPrev':
        expect(t.findPrev(c.addr * s)).toBe(m.findLast((a) => a.start < c.addr * s) ?? null);
        break;
      case 'entries':
        expect([...t.entries(c.addr * s)]).toEqual(m.filter((a) => a.end > c.addr * s));
        break;
      case 'intersect': {
        const [lo, hi] = [c.addr * s, (c.addr + c.length) * s];
        expect(t.findIntersection(lo, hi)).toBe(m.find((a) => a.start < hi && lo < a.end) ?? null);
        break;
      }
      case 'neighbours': {
        const i = c.pick % Math.max(1, m.length);
        const a = m[i];
        if (a === undefined) break;
        expect(t.prev(a)).toBe(m[i - 1] ?? null);
        expect(t.next(a)).toBe(m[i + 1] ?? null);
        break;
      }
      case 'unmapped': {
        const align = 2 ** c.alignShift * s;
        const req: UnmappedAreaRequest = {
          length: Math.max(1, this.#measure(c.length, c.pick)) * s,
          low: Math.max(0, this.#measure(c.low, c.pick)) * s,
          high: this.#measure(c.high, c.pick) * s,
          alignMask: align - 1,
          alignOffset: c.alignOffset * s,
          topDown: c.topDown,
        };
        expect(t.unmappedArea(req)).toBe(this.#unmappedArea(req));
        break;
      }
    }
  }

  /** A Measure in units, resolved against the gaps as they are now. */
  #measure(m: Measure, pick: number): number {
    if (m.at === 'value') return m.value;
    const gaps = this.#gaps();
    const gap = gaps[pick % gaps.length];
    if (gap === undefined) return m.delta;
    const [lo, hi] = gap.map((x) => x / this.#config.scale) as [number, number];
    return (m.at === 'gapLo' ? lo : m.at === 'gapHi' ? hi : hi - lo) + m.delta;
  }

  /** Everything observable without arguments, and every invariant. */
  compare(): void {
    const t = this.#tree;
    const m = this.#model;
    t.checkInvariants();
    expect(t.size).toBe(m.length);
    expect(t.first()).toBe(m[0] ?? null);
    expect(t.last()).toBe(m.at(-1) ?? null);
    expect(t.maxGap()).toBe(Math.max(0, ...this.#gaps().map(([lo, hi]) => hi - lo)));
  }

  /** The free ranges, in order: the gap below each entry, then the final one. */
  #gaps(): [number, number][] {
    const { scale, guard, lowLimit, highLimit } = this.#config;
    const m = this.#model;
    const gaps: [number, number][] = [];
    for (let i = 0; i <= m.length; i++) {
      const prev = m[i - 1];
      const next = m[i];
      const lo = prev === undefined ? lowLimit * scale : prev.growsUp ? prev.end + guard * scale : prev.end;
      const hi = next === undefined ? highLimit * scale : next.growsDown ? next.start - guard * scale : next.start;
      if (hi > lo) gaps.push([lo, hi]);
    }
    return gaps;
  }

  /** Try every candidate address of every gap in order: slow and obviously right. */
  #unmappedArea(req: UnmappedAreaRequest): number {
    const scale = this.#config.scale;
    const align = (req.alignMask ?? 0) + 1;
    const offset = req.alignOffset ?? 0;
    const aligned = (x: number): boolean => (((x - offset) % align) + align) % align === 0;
    const gaps = this.#gaps();
    if (req.topDown) gaps.reverse();
    for (const [lo, hi] of gaps) {
      const first = Math.max(lo, req.low);
      const last = Math.min(hi, req.high) - req.length;
      // Every bound is a multiple of the scale, and so is every aligned address.
      if (req.topDown) {
        for (let x = last; x >= first; x -= scale) if (aligned(x)) return x;
      } else {
        for (let x = first; x <= last; x += scale) if (aligned(x)) return x;
      }
    }
    return -1;
  }
}
