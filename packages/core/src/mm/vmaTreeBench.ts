/**
 * The VmaTree micro-benchmark body (bench/src/vmaTree.ts runs it once core exports it): how
 * fast find_vma() and vm_unmapped_area() are on a tree of n one-page VMAs, and what the tree
 * costs per entry beyond the entries themselves.
 *
 * The layout is an address space fragmented the hard way: one-page VMAs separated by one-page
 * holes, with every 64th hole (on average) wider, up to 4 MiB, so that unmappedArea() must
 * really use the gap augmentation. Inserts come in random order, which fills leaves to about
 * 70% (ascending or descending runs pack them full), so the memory figure is the usual, not the best.
 * Everything random is drawn before the clock starts, from a fixed seed.
 */
import { Prng } from '../sim/prng.js';
import { MMAP_MIN_ADDR, PAGE_SIZE, TASK_SIZE } from './uapi.js';
import { type TreeEntry, type UnmappedAreaRequest, VmaTree } from './vmaTree.js';

/** What benchVmaTree() measures. */
export interface VmaTreeBenchResult {
  /** find() calls a second, at uniformly random addresses across the mapped range. */
  readonly findPerSec: number;
  /** unmappedArea() calls a second, half top-down and half bottom-up, random lengths, a quarter aligned. */
  readonly unmappedAreaPerSec: number;
  /**
   * Bytes the tree holds per entry: V8 heap plus ArrayBuffer backing stores (where the node
   * pool lives, outside the heap), measured around building the tree, the entry objects
   * excluded. Exact only when node runs with --expose-gc.
   */
  readonly treeBytesPerEntry: number;
}

const SEED = 20240611;
const QUERIES = 1_000_000;
const AREA_QUERIES = 400_000;
const REPETITIONS = 3;
/** The mapped range starts where a PIE's mmap area might. */
const BASE_ADDR = 0x7f0000000000 - 2 ** 36;

/** Build a tree of n one-page entries and time its queries; see the file comment. */
export function benchVmaTree(n: number): VmaTreeBenchResult {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`benchVmaTree: n must be a positive integer, got ${n}`);
  const prng = new Prng(SEED);
  // Holes: mostly one page, about one in 64 wider (up to 1024 pages), so a wide request skips far.
  const starts = new Float64Array(n);
  let addr = BASE_ADDR;
  for (let i = 0; i < n; i++) {
    starts[i] = addr;
    const holePages = prng.chance(1 / 64) ? prng.int(2, 1024) : 1;
    addr += PAGE_SIZE + holePages * PAGE_SIZE;
  }
  if (addr >= TASK_SIZE) throw new RangeError(`benchVmaTree: ${n} entries do not fit below TASK_SIZE`);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = prng.int(0, i);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }

  const entries: TreeEntry[] = new Array<TreeEntry>(n);
  for (let i = 0; i < n; i++) entries[i] = { start: starts[i]!, end: starts[i]! + PAGE_SIZE };
  const before = memoryBytes();
  const tree = new VmaTree<TreeEntry>({ lowLimit: MMAP_MIN_ADDR, highLimit: TASK_SIZE });
  for (let i = 0; i < n; i++) tree.insert(entries[order[i]!]!);
  const after = memoryBytes();
  const treeBytesPerEntry = (after - before) / n;

  const lo = starts[0]!;
  const hi = starts[n - 1]! + PAGE_SIZE;
  const findAddrs = new Float64Array(QUERIES);
  for (let i = 0; i < QUERIES; i++) findAddrs[i] = lo + Math.floor((prng.int(0, 0x3fffffff) / 0x40000000) * (hi - lo));
  const findPerSec = rate(() => {
    let hits = 0;
    for (let i = 0; i < QUERIES; i++) if (tree.find(findAddrs[i]!) !== null) hits++;
    if (hits === 0) throw new Error('benchVmaTree: no find() hit anything');
    return QUERIES;
  });

  // Each request is bounded on the far side by a random address inside the mapped range, so
  // the search must walk into the fragmented part instead of taking the open space above it.
  const requests: UnmappedAreaRequest[] = [];
  for (let i = 0; i < AREA_QUERIES; i++) {
    const pages = Math.floor(2 ** (prng.int(0, 10_000) / 1000)); // 1 to 1024 pages, log-uniform
    const cut = lo + Math.floor(((prng.int(0, 0x3fffffff) / 0x40000000) * (hi - lo)) / PAGE_SIZE) * PAGE_SIZE;
    const topDown = i % 2 === 0;
    const alignMask = prng.chance(0.25) ? 16 * PAGE_SIZE - 1 : 0;
    requests.push(
      topDown
        ? { length: pages * PAGE_SIZE, low: MMAP_MIN_ADDR, high: cut, alignMask, topDown }
        : { length: pages * PAGE_SIZE, low: cut, high: TASK_SIZE, alignMask, topDown },
    );
  }
  const unmappedAreaPerSec = rate(() => {
    let found = 0;
    for (const r of requests) if (tree.unmappedArea(r) >= 0) found++;
    if (found === 0) throw new Error('benchVmaTree: no unmappedArea() request found room');
    return requests.length;
  });
  // Last, so that its sweep over every entry does not warm the caches for the timed loops.
  tree.checkInvariants();
  return { findPerSec, unmappedAreaPerSec, treeBytesPerEntry };
}

/** V8 heap plus ArrayBuffer backing stores, after a full GC when one can be asked for. */
function memoryBytes(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** The best of a few timed repetitions after a warm-up: `fn` returns how many operations it did. */
function rate(fn: () => number): number {
  fn();
  let best = 0;
  for (let i = 0; i < REPETITIONS; i++) {
    const t0 = performance.now();
    const ops = fn();
    best = Math.max(best, ops / ((performance.now() - t0) / 1000));
  }
  return best;
}
