/**
 * The address-ordered index of an mm's VMAs, doing the job of the kernel's maple tree
 * (`lib/maple_tree.c`, `mm/mmap.c`): find_vma() and friends by address, and vm_unmapped_area()
 * in O(log n) because every internal slot records the largest free gap below it.
 *
 * Layout: a B+tree with wide nodes (by default 32 slots a leaf, 64 an internal node, so that a
 * million entries need three internal levels even when splits leave nodes half full). Nodes are
 * not objects but rows of flat arrays indexed by `node * capacity + slot`, one set of arrays
 * for leaves and one for internal nodes, so that a node is a few contiguous cache lines, the
 * internal nodes of even a million-entry tree stay together in cache, and the tree costs 32
 * bytes a leaf slot:
 *
 * - leaf slot:     key = the entry's end; gap = the free space just below the entry, and where
 *                  that space ends (startGap of the entry); the entry;
 * - internal slot: key = the last end in the child, gap = the largest gap in the child, child id.
 *
 * find() reads only keys (and the entry found), so leaf keys have an array to themselves and
 * stay dense. Key slots past a node's count hold +Infinity, so that find() searches whole rows
 * without reading the count. A leaf's gaps and gap ends share a row, so that unmappedArea() has
 * a gap's both bounds from one page without dereferencing the entry, which would cost two cache
 * misses.
 *
 * Keying by end (not start) makes find_vma(), "the first entry with end > addr", a single
 * descent: take the first slot whose key exceeds addr. Because entries do not overlap, ends are
 * sorted exactly like starts, so the same descent by `e.start` finds where `e` goes or lives.
 *
 * A gap belongs to the entry above it. Since `startGap(e) <= e.start` and `endGap(e) >= e.end`,
 * every non-empty gap of a slot lies between the key of the slot before it and its own key;
 * unmappedArea() uses those bounds to skip slots outside [low, high] without visiting them.
 * The final gap, above the last entry, is owned by nobody and checked separately.
 *
 * Context: not safe for concurrent use; the simulated mm serialises access (mutations under
 * whatever the lock policy requires for writing the VMA tree, queries under what it requires
 * for reading). Nothing here sleeps.
 */
import { TASK_SIZE } from './uapi.js';

/** What the tree needs of an entry. Entries are the caller's objects (Vma); the tree never copies them. */
export interface TreeEntry {
  /** First address, inclusive. */
  readonly start: number;
  /** Last address, exclusive: the entry is `[start, end)`. */
  readonly end: number;
}

/** How a tree computes its gaps, and (for tests) how wide its nodes are. */
export interface VmaTreeOptions<V> {
  /** Lowest address a gap may start at (mmap_min_addr); default 0. */
  readonly lowLimit?: number;
  /** Highest address (TASK_SIZE); gaps end there; default 0x7ffffffff000. */
  readonly highLimit?: number;
  /**
   * Where the free space before an entry ends (kernel vm_start_gap: a VM_GROWSDOWN stack keeps a
   * guard gap below it); default e => e.start. Must not exceed `e.start`.
   */
  readonly startGap?: (e: V) => number;
  /** Where the free space after an entry begins (vm_end_gap); default e => e.end. Must not be below `e.end`. */
  readonly endGap?: (e: V) => number;
  /**
   * Slots per leaf, 4 to 255; default 32. Tests pass small values to get deep trees from a
   * few hundred entries; production code should leave it alone.
   */
  readonly nodeCapacity?: number;
  /**
   * Slots per internal node, 4 to 255; default twice nodeCapacity (at most 255). Like
   * nodeCapacity, for tests.
   */
  readonly innerNodeCapacity?: number;
}

/** One vm_unmapped_area() question (`struct vm_unmapped_area_info`). */
export interface UnmappedAreaRequest {
  /** Bytes wanted; a positive integer. */
  readonly length: number;
  /** The area must start at or above this address. */
  readonly low: number;
  /** The area must end at or below this address. */
  readonly high: number;
  /** The area's start minus `alignOffset` must be a multiple of `alignMask + 1` (a power of two); default 0 (PAGE alignment is the caller's). */
  readonly alignMask?: number;
  /** See `alignMask`; default 0. */
  readonly alignOffset?: number;
  /** Take the highest fitting address instead of the lowest. */
  readonly topDown: boolean;
}

/** No node: the ends of the leaf chain, and empty child slots. */
const NIL = -1;
const NODE_CAPACITY_DEFAULT = 32;
/**
 * Twice the leaves': half-full internal nodes (what even splits leave after inserts in order)
 * still index a million entries in three levels above the leaves, where 32 slots need four.
 */
const INNER_NODE_CAPACITY_FACTOR = 2;
const NODE_CAPACITY_MIN = 4;
/** Node counts are bytes. */
const NODE_CAPACITY_MAX = 255;
/** Internal nodes have at least two children, so 64 levels would index 2^63 entries: a bound never reached. */
const HEIGHT_MAX = 64;
/** Nodes a pool starts with. */
const POOL_NODES_INITIAL = 4;
/**
 * A full pool grows by a quarter: amortised O(1) copying a node, and at most a fifth of the
 * pool idle (a pool never shrinks; freed nodes are reused).
 */
function poolGrown(nodes: number): number {
  return nodes + Math.max(POOL_NODES_INITIAL, Math.ceil(nodes / 4));
}

/**
 * The VMA tree: entries ordered by address, with the largest free gap of every subtree kept up
 * to date so that unmappedArea() needs O(log n) steps. See the file comment for the layout.
 */
export class VmaTree<V extends TreeEntry> {
  readonly #lowLimit: number;
  readonly #highLimit: number;
  readonly #startGap: (e: V) => number;
  readonly #endGap: (e: V) => number;
  /** Slots per leaf. */
  readonly #cap: number;
  /** Slots per internal node. */
  readonly #innerCap: number;
  /** Fewest slots of a non-root leaf, except that the first and last leaf may hold fewer (see #insertLeaf). */
  readonly #minFill: number;
  /** Fewest slots of a non-root internal node. */
  readonly #innerMinFill: number;
  /** Whether the capacities are the defaults, for which find() has a faster form (#find32x64). */
  readonly #defaultShape: boolean;

  // Leaves: leaf n owns slots [n * cap, n * cap + leafCount[n]) of the keys and entries; slots
  // past the count hold the key +Infinity and the entry null. Gaps are at #gapIndex(slot) and
  // their ends cap further on.
  #leafKeys: Float64Array;
  #leafGaps: Float64Array;
  #leafEntries: (V | null)[];
  #leafCount: Uint8Array;
  /** The leaf chain, in address order. */
  #leafNext: Int32Array;
  #leafPrev: Int32Array;
  #leavesUsed = 0;
  readonly #leavesFree: number[] = [];

  // Internal nodes, likewise with innerCap; slots past the count hold the key +Infinity and the child NIL.
  #innerKeys: Float64Array;
  #innerGaps: Float64Array;
  #innerChild: Int32Array;
  #innerCount: Uint8Array;
  #innersUsed = 0;
  readonly #innersFree: number[] = [];

  /** A leaf when the height is 1, else an internal node. */
  #root: number;
  /** Levels; 1 means the root is a leaf. Every leaf is at level height - 1, the root at 0. */
  #height = 1;
  #head: number;
  #tail: number;
  #size = 0;
  /** Bumped by every mutation, so that entries() notices a tree changed under it. */
  #version = 0;

  /** The internal nodes and slots the last #descend() passed through, root first. */
  readonly #pathNode = new Int32Array(HEIGHT_MAX);
  readonly #pathSlot = new Int32Array(HEIGHT_MAX);
  /** The leaf #locate() found. */
  #locatedLeaf = NIL;

  // The unmappedArea() request being served, kept in fields so the recursion stays cheap.
  #qLength = 0;
  #qLow = 0;
  #qHigh = 0;
  #qAlign = 1;
  #qOffset = 0;
  /** The last alignMask found valid: callers reuse one or two, and the check is not free. */
  #alignMaskChecked = 0;

  /** An empty tree; throws RangeError for limits that are not integers with lowLimit <= highLimit, or a bad nodeCapacity. */
  constructor(options: VmaTreeOptions<V> = {}) {
    const lowLimit = options.lowLimit ?? 0;
    const highLimit = options.highLimit ?? TASK_SIZE;
    const cap = options.nodeCapacity ?? NODE_CAPACITY_DEFAULT;
    const innerCap = options.innerNodeCapacity ?? Math.min(INNER_NODE_CAPACITY_FACTOR * cap, NODE_CAPACITY_MAX);
    if (!Number.isSafeInteger(lowLimit) || !Number.isSafeInteger(highLimit) || lowLimit > highLimit) {
      throw new RangeError(`VmaTree: need integer limits with lowLimit <= highLimit, got ${hex(lowLimit)} and ${hex(highLimit)}`);
    }
    if (!Number.isInteger(cap) || cap < NODE_CAPACITY_MIN || cap > NODE_CAPACITY_MAX) {
      throw new RangeError(`VmaTree: nodeCapacity must be an integer in [${NODE_CAPACITY_MIN}, ${NODE_CAPACITY_MAX}], got ${cap}`);
    }
    if (!Number.isInteger(innerCap) || innerCap < NODE_CAPACITY_MIN || innerCap > NODE_CAPACITY_MAX) {
      throw new RangeError(`VmaTree: innerNodeCapacity must be an integer in [${NODE_CAPACITY_MIN}, ${NODE_CAPACITY_MAX}], got ${innerCap}`);
    }
    this.#lowLimit = lowLimit;
    this.#highLimit = highLimit;
    this.#startGap = options.startGap ?? ((e: V) => e.start);
    this.#endGap = options.endGap ?? ((e: V) => e.end);
    this.#cap = cap;
    this.#innerCap = innerCap;
    this.#minFill = cap >> 1;
    this.#innerMinFill = innerCap >> 1;
    this.#defaultShape = cap === 32 && innerCap === 64;
    const slots = POOL_NODES_INITIAL * cap;
    const innerSlots = POOL_NODES_INITIAL * innerCap;
    this.#leafKeys = new Float64Array(slots).fill(Infinity);
    this.#leafGaps = new Float64Array(2 * slots);
    this.#leafEntries = new Array<V | null>(slots).fill(null);
    this.#leafCount = new Uint8Array(POOL_NODES_INITIAL);
    this.#leafNext = new Int32Array(POOL_NODES_INITIAL).fill(NIL);
    this.#leafPrev = new Int32Array(POOL_NODES_INITIAL).fill(NIL);
    this.#innerKeys = new Float64Array(innerSlots).fill(Infinity);
    this.#innerGaps = new Float64Array(innerSlots);
    this.#innerChild = new Int32Array(innerSlots).fill(NIL);
    this.#innerCount = new Uint8Array(POOL_NODES_INITIAL);
    this.#root = this.#allocLeaf();
    this.#head = this.#root;
    this.#tail = this.#root;
  }

  /** How many entries the tree holds. */
  get size(): number {
    return this.#size;
  }

  // --- queries ---

  /** find_vma(): the first entry with end > addr, or null. */
  find(addr: number): V | null {
    if (Number.isNaN(addr)) throw new RangeError('VmaTree.find: addr is NaN');
    return this.#defaultShape ? this.#find32x64(addr) : this.#findAnyShape(addr);
  }

  /**
   * find() for nodes of any capacity. Past the last end there is nothing; below it, every slot
   * chosen on the way down has a key above addr, so the leaf reached surely holds the answer.
   * Slots past a node's count hold the key +Infinity, so each search runs over the whole row
   * without reading the count: one dependent load less per level.
   */
  #findAnyShape(addr: number): V | null {
    const cap = this.#cap;
    let node = this.#root;
    if (this.#height === 1) {
      const n = this.#leafCount[node]!;
      if (n === 0 || this.#leafKeys[node * cap + n - 1]! <= addr) return null;
    } else {
      const innerCap = this.#innerCap;
      const keys = this.#innerKeys;
      const children = this.#innerChild;
      if (keys[node * innerCap + this.#innerCount[node]! - 1]! <= addr) return null;
      for (let level = this.#height - 1; level > 0; level--) {
        const base = node * innerCap;
        let lo = 0;
        let hi = innerCap - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (keys[base + mid]! > addr) hi = mid;
          else lo = mid + 1;
        }
        node = children[base + lo]!;
      }
    }
    const keys = this.#leafKeys;
    const base = node * cap;
    let lo = 0;
    let hi = cap - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (keys[base + mid]! > addr) hi = mid;
      else lo = mid + 1;
    }
    return this.#leafEntries[base + lo]!;
  }

  /**
   * #findAnyShape() for the default capacities, 32-slot leaves and 64-slot internal nodes,
   * written out with the sizes as literals: V8 then compiles each row's search to six (five in
   * a leaf) straight compares with constant offsets instead of a loop, which makes random
   * lookups in a large tree about a fifth faster (bench:mm). Each step adds half of what is
   * left to `i` when the key just below that point is <= addr, so `i` ends on the first slot
   * whose key exceeds addr; the row's last slot always does (see #findAnyShape), so `i` never
   * leaves the row.
   */
  #find32x64(addr: number): V | null {
    let node = this.#root;
    if (this.#height > 1) {
      const keys = this.#innerKeys;
      const children = this.#innerChild;
      if (keys[node * 64 + this.#innerCount[node]! - 1]! <= addr) return null;
      for (let level = this.#height - 1; level > 0; level--) {
        let i = node * 64;
        if (keys[i + 31]! <= addr) i += 32;
        if (keys[i + 15]! <= addr) i += 16;
        if (keys[i + 7]! <= addr) i += 8;
        if (keys[i + 3]! <= addr) i += 4;
        if (keys[i + 1]! <= addr) i += 2;
        if (keys[i]! <= addr) i += 1;
        node = children[i]!;
      }
    } else {
      const n = this.#leafCount[node]!;
      if (n === 0 || this.#leafKeys[node * 32 + n - 1]! <= addr) return null;
    }
    // The leaf is the first node not in cache, and its keys and entries are two cache misses in
    // two arrays. So that they overlap instead of following one another, load the first entry
    // before searching, and begin the search with three independent loads, one in each of the
    // first three quarters of the row (a quarter is about a cache line), then finish inside one
    // quarter.
    const keys = this.#leafKeys;
    const entries = this.#leafEntries;
    const base = node * 32;
    const first = entries[base]!;
    const k7 = keys[base + 7]!;
    const k15 = keys[base + 15]!;
    const k23 = keys[base + 23]!;
    let i = base;
    if (k15 <= addr) i += k23 <= addr ? 24 : 16;
    else if (k7 <= addr) i += 8;
    if (keys[i + 3]! <= addr) i += 4;
    if (keys[i + 1]! <= addr) i += 2;
    if (keys[i]! <= addr) i += 1;
    return i === base ? first : entries[i]!;
  }

  /** The entry containing addr, or null. */
  lookup(addr: number): V | null {
    const e = this.find(addr);
    return e !== null && e.start <= addr ? e : null;
  }

  /** The first entry intersecting [start, end), or null (find_vma_intersection); an empty range intersects nothing. */
  findIntersection(start: number, end: number): V | null {
    if (!(start < end)) return null;
    const e = this.find(start);
    return e !== null && e.start < end ? e : null;
  }

  /**
   * The last entry with start < addr, or null (find_vma_prev's prev for addr). Note that when
   * addr lies inside an entry this is that entry, where the kernel's `*pprev` would be the one
   * before it.
   */
  findPrev(addr: number): V | null {
    if (Number.isNaN(addr)) throw new RangeError('VmaTree.findPrev: addr is NaN');
    const leaf = this.#descend(addr);
    const slot = this.#leafSearch(leaf, addr);
    // Only the last leaf is reached without a key above addr: then every entry ends at or below addr.
    if (slot === this.#leafCount[leaf]) return this.last();
    const e = this.#leafEntries[leaf * this.#cap + slot]!;
    return e.start < addr ? e : this.#entryBefore(leaf, slot);
  }

  /** The entry before `e` in address order, or null; throws if e is not in the tree. */
  prev(e: V): V | null {
    const slot = this.#locate(e, e.start, 'prev');
    return this.#entryBefore(this.#locatedLeaf, slot);
  }

  /** The entry after `e` in address order, or null; throws if e is not in the tree. */
  next(e: V): V | null {
    const slot = this.#locate(e, e.start, 'next');
    return this.#entryAfter(this.#locatedLeaf, slot);
  }

  /** The lowest entry, or null when the tree is empty. */
  first(): V | null {
    return this.#leafEntries[this.#head * this.#cap] ?? null;
  }

  /** The highest entry, or null when the tree is empty. */
  last(): V | null {
    const tail = this.#tail;
    return this.#size === 0 ? null : this.#leafEntries[tail * this.#cap + this.#leafCount[tail]! - 1]!;
  }

  /**
   * Entries in address order with end > from (default all). Throws if the tree changes while
   * the iteration is under way: collect first, then modify.
   */
  *entries(from?: number): IterableIterator<V> {
    if (from !== undefined && Number.isNaN(from)) throw new RangeError('VmaTree.entries: from is NaN');
    const version = this.#version;
    let leaf = this.#head;
    let slot = 0;
    if (from !== undefined) {
      leaf = this.#descend(from);
      slot = this.#leafSearch(leaf, from);
    }
    const cap = this.#cap;
    while (leaf !== NIL) {
      for (; slot < this.#leafCount[leaf]!; slot++) {
        yield this.#leafEntries[leaf * cap + slot]!;
        if (this.#version !== version) throw new Error('VmaTree.entries: the tree changed during the iteration');
      }
      leaf = this.#leafNext[leaf]!;
      slot = 0;
    }
  }

  /** Largest gap in the whole tree, the final one above the last entry included (for tests/diagnostics). */
  maxGap(): number {
    const inner = this.#maxGapOf(this.#height === 1, this.#root);
    return Math.max(inner, this.#highLimit - this.#finalGapLo(), 0);
  }

  // --- updates ---

  /** Insert; throws RangeError naming both ranges if it overlaps an entry, or if start >= end. */
  insert(e: V): void {
    this.#assertEntry(e, 'insert');
    const leaf = this.#descend(e.start);
    const slot = this.#leafSearch(leaf, e.start);
    const i = leaf * this.#cap + slot;
    // The slot found holds the first entry ending above e.start: the only one that can overlap.
    // Everything before it ends at or below e.start, so it is also e's successor, in this leaf.
    if (slot < this.#leafCount[leaf]!) {
      const next = this.#leafEntries[i]!;
      if (next.start < e.end) throw new RangeError(`VmaTree.insert: ${range(e)} overlaps ${range(next)}`);
      this.#setLeafGap(i, e, next);
    }
    const gap = this.#gapBetween(this.#entryBefore(leaf, slot), e);
    const sibling = this.#insertLeaf(leaf, slot, e.end, gap, e);
    this.#size++;
    this.#version++;
    this.#fixUpward(leaf, sibling);
  }

  /** Remove; throws if e is not in the tree. */
  erase(e: V): void {
    const slot = this.#locate(e, e.start, 'erase');
    const leaf = this.#locatedLeaf;
    const cap = this.#cap;
    const n = this.#leafCount[leaf]!;
    const prev = this.#entryBefore(leaf, slot);
    this.#removeSlot(true, leaf, slot);
    // The successor's gap now reaches down to prev. When the successor heads the next leaf it
    // is refreshed after rebalancing, which may move it.
    let nextElsewhere: V | null = null;
    if (slot < n - 1) {
      this.#setLeafGap(leaf * cap + slot, prev, this.#leafEntries[leaf * cap + slot]!);
    } else if (this.#leafNext[leaf] !== NIL) {
      nextElsewhere = this.#leafEntries[this.#leafNext[leaf]! * cap]!;
    }
    this.#size--;
    this.#version++;
    this.#fixAfterRemove(leaf);
    if (nextElsewhere !== null) this.#refreshGap(nextElsewhere);
  }

  /**
   * e.start and/or e.end were changed in place by the caller (vma_adjust/expand/shrink) keeping
   * order and non-overlap; fix keys and gaps. Throws if e is not in the tree (find it by
   * oldStart) or now overlaps a neighbour; the tree is then unchanged and the caller must put e
   * back as it was. Also call it (with oldStart = e.start) when what startGap/endGap return for
   * e changes, e.g. when VM_GROWSDOWN is set.
   */
  adjusted(e: V, oldStart: number): void {
    this.#assertEntry(e, 'adjusted');
    const slot = this.#locate(e, oldStart, 'adjusted');
    const leaf = this.#locatedLeaf;
    const i = leaf * this.#cap + slot;
    const prev = this.#entryBefore(leaf, slot);
    const next = this.#entryAfter(leaf, slot);
    if (prev !== null && prev.end > e.start) throw new RangeError(`VmaTree.adjusted: ${range(e)} now overlaps ${range(prev)}`);
    if (next !== null && next.start < e.end) throw new RangeError(`VmaTree.adjusted: ${range(e)} now overlaps ${range(next)}`);
    this.#leafKeys[i] = e.end;
    this.#setLeafGap(i, prev, e);
    const nextInLeaf = slot + 1 < this.#leafCount[leaf]!;
    if (next !== null && nextInLeaf) this.#setLeafGap(i + 1, e, next);
    this.#version++;
    this.#fixUpward(leaf, NIL);
    if (next !== null && !nextInLeaf) this.#refreshGap(next);
  }

  // --- get_unmapped_area ---

  /**
   * vm_unmapped_area(): the lowest (bottom-up) or highest (top-down) address s with low <= s,
   * s + length <= high, (s - alignOffset) a multiple of alignMask + 1, and [s, s + length) inside
   * one gap (between endGap(prev) (or lowLimit) and startGap(next) (or highLimit)); returns s,
   * or -1 when there is none.
   *
   * Cost: O(log n) plus a leaf visit for each gap that is wide enough for `length` but loses to
   * the alignment, or is cut by low/high (only at the two ends of the range). Slots are tested
   * against the alignment before they are entered, so most such gaps cost no visit. Unlike the
   * kernel, which asks for length + alignMask and so may miss a gap that a lucky alignment would
   * fit, the answer is exact; a gap of length + alignMask always fits, so only gaps narrower than
   * that are ever skipped.
   */
  unmappedArea(req: UnmappedAreaRequest): number {
    const { length, low, high, topDown } = req;
    const alignMask = req.alignMask ?? 0;
    const alignOffset = req.alignOffset ?? 0;
    if (!Number.isSafeInteger(length) || length <= 0) throw new RangeError(`VmaTree.unmappedArea: length must be a positive integer, got ${length}`);
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || low < 0) {
      throw new RangeError(`VmaTree.unmappedArea: low and high must be integers with low >= 0, got ${hex(low)} and ${hex(high)}`);
    }
    if (alignMask !== this.#alignMaskChecked) {
      if (!isPowerOfTwo(alignMask + 1)) throw new RangeError(`VmaTree.unmappedArea: alignMask + 1 must be a power of two, got mask ${hex(alignMask)}`);
      this.#alignMaskChecked = alignMask;
    }
    if (!Number.isSafeInteger(alignOffset) || alignOffset < 0)
      throw new RangeError(`VmaTree.unmappedArea: alignOffset must be an integer >= 0, got ${alignOffset}`);
    if (high - low < length) return -1;
    this.#qLength = length;
    this.#qLow = low;
    this.#qHigh = high;
    this.#qAlign = alignMask + 1;
    this.#qOffset = alignOffset;
    if (topDown) {
      const s = this.#fitHighest(this.#finalGapLo(), this.#highLimit);
      return s >= 0 ? s : this.#searchDown(this.#root, 0, -Infinity);
    }
    const s = this.#searchUp(this.#root, 0, -Infinity);
    return s >= 0 ? s : this.#fitLowest(this.#finalGapLo(), this.#highLimit);
  }

  /** The lowest fit in node's subtree, whose gaps all lie at or above `lo`; -1 if none. */
  #searchUp(node: number, level: number, lo: number): number {
    const leaf = level === this.#height - 1;
    const keys = leaf ? this.#leafKeys : this.#innerKeys;
    const gaps = leaf ? this.#leafGaps : this.#innerGaps;
    const base = node * (leaf ? this.#cap : this.#innerCap);
    const gbase = leaf ? 2 * base : base;
    const n = (leaf ? this.#leafCount : this.#innerCount)[node]!;
    const length = this.#qLength;
    const high = this.#qHigh;
    // Slots whose key (the bound above their gaps) is below low + length cannot fit: skip them
    // by bisection, so that only the cache lines near the answer are read.
    const floor = this.#qLow + length;
    let i = 0;
    let hi = n;
    while (i < hi) {
      const mid = (i + hi) >> 1;
      if (keys[base + mid]! < floor) i = mid + 1;
      else hi = mid;
    }
    for (; i < n; i++) {
      // Slot i's gaps lie in [cLo, cHi): see the file comment.
      const cLo = i === 0 ? lo : keys[base + i - 1]!;
      if (cLo + length > high) return -1; // this slot and every later one start too high
      if (gaps[gbase + i]! < length || this.#fitLowest(cLo, keys[base + i]!) < 0) continue;
      const s = leaf ? this.#fitLowestInSlot(gbase + i) : this.#searchUp(this.#innerChild[base + i]!, level + 1, cLo);
      if (s >= 0) return s;
    }
    return -1;
  }

  /** The highest fit in node's subtree, whose gaps all lie at or above `lo`; -1 if none. */
  #searchDown(node: number, level: number, lo: number): number {
    const leaf = level === this.#height - 1;
    const keys = leaf ? this.#leafKeys : this.#innerKeys;
    const gaps = leaf ? this.#leafGaps : this.#innerGaps;
    const base = node * (leaf ? this.#cap : this.#innerCap);
    const gbase = leaf ? 2 * base : base;
    const n = (leaf ? this.#leafCount : this.#innerCount)[node]!;
    const length = this.#qLength;
    const low = this.#qLow;
    // Slots after the first whose key exceeds high - length have gaps starting above it:
    // skip them by bisection.
    const ceiling = this.#qHigh - length;
    if (n === 0) return -1; // an empty root leaf, whose slot 0 may hold a stale gap
    let i = 0;
    let hi = n - 1;
    while (i < hi) {
      const mid = (i + hi) >> 1;
      if (keys[base + mid]! > ceiling) hi = mid;
      else i = mid + 1;
    }
    for (; i >= 0; i--) {
      const cHi = keys[base + i]!;
      if (cHi - length < low) return -1; // this slot and every earlier one end too low
      const cLo = i === 0 ? lo : keys[base + i - 1]!;
      if (gaps[gbase + i]! < length || this.#fitHighest(cLo, cHi) < 0) continue;
      const s = leaf ? this.#fitHighestInSlot(gbase + i) : this.#searchDown(this.#innerChild[base + i]!, level + 1, cLo);
      if (s >= 0) return s;
    }
    return -1;
  }

  /** The lowest fit in the gap at index g of #leafGaps, or -1. */
  #fitLowestInSlot(g: number): number {
    const hi = this.#leafGaps[g + this.#cap]!;
    return this.#fitLowest(hi - this.#leafGaps[g]!, hi);
  }

  /** The highest fit in the gap at index g of #leafGaps, or -1. */
  #fitHighestInSlot(g: number): number {
    const hi = this.#leafGaps[g + this.#cap]!;
    return this.#fitHighest(hi - this.#leafGaps[g]!, hi);
  }

  /** The lowest aligned s with max(lo, low) <= s and s + length <= min(hi, high), or -1. */
  #fitLowest(lo: number, hi: number): number {
    const a = lo > this.#qLow ? lo : this.#qLow;
    const s = this.#qAlign === 1 ? a : a + floorMod(this.#qOffset - a, this.#qAlign);
    return s + this.#qLength <= (hi < this.#qHigh ? hi : this.#qHigh) ? s : -1;
  }

  /** The highest aligned s with max(lo, low) <= s and s + length <= min(hi, high), or -1. */
  #fitHighest(lo: number, hi: number): number {
    const b = (hi < this.#qHigh ? hi : this.#qHigh) - this.#qLength;
    const s = this.#qAlign === 1 ? b : b - floorMod(b - this.#qOffset, this.#qAlign);
    return s >= (lo > this.#qLow ? lo : this.#qLow) ? s : -1;
  }

  /** Where the final gap, up to highLimit, starts. */
  #finalGapLo(): number {
    const last = this.last();
    return last === null ? this.#lowLimit : this.#endGap(last);
  }

  // --- invariants ---

  /**
   * Check every structural invariant (sorted, non-overlapping, non-empty entries, node sizes,
   * keys, the leaf chain, every stored gap equal to the recomputed one); throw an Error
   * describing the first violation. O(n): one recursive walk over the internal nodes, then one
   * loop along the leaf chain over the entries.
   */
  checkInvariants(): void {
    if (this.#height < 1 || this.#height > HEIGHT_MAX) this.#fail(`height ${this.#height} is outside [1, ${HEIGHT_MAX}]`);
    const walk: InvariantWalk = { prevLeaf: NIL, nextLeaf: this.#head };
    this.#checkNode(this.#root, 0, true, true, walk);
    if (walk.nextLeaf !== NIL) this.#fail(`the leaf chain goes on past the last leaf, to leaf ${walk.nextLeaf}`);
    if (walk.prevLeaf !== this.#tail) this.#fail(`the tail is leaf ${this.#tail} but the last leaf is ${walk.prevLeaf}`);
    this.#checkEntries();
    for (const leaf of this.#leavesFree) if (this.#leafCount[leaf] !== 0) this.#fail(`free leaf ${leaf} has count ${this.#leafCount[leaf]}`);
    for (const node of this.#innersFree) if (this.#innerCount[node] !== 0) this.#fail(`free internal node ${node} has count ${this.#innerCount[node]}`);
  }

  /**
   * Check a subtree's shape: slot counts, child ids, leaves reached in chain order, and that each
   * internal slot records its child's last end and largest gap (the leaves' own keys and gaps
   * are #checkEntries' business).
   */
  #checkNode(node: number, level: number, leftmost: boolean, rightmost: boolean, walk: InvariantWalk): void {
    const leaf = level === this.#height - 1;
    const cap = leaf ? this.#cap : this.#innerCap;
    const n = (leaf ? this.#leafCount : this.#innerCount)[node]!;
    // The first and last leaf may run low: #insertLeaf splits them unevenly to pack sequential inserts.
    const minCount = level === 0 ? (leaf ? 0 : 2) : leaf ? (leftmost || rightmost ? 1 : this.#minFill) : this.#innerMinFill;
    if (n < minCount || n > cap) this.#fail(`${nodeName(leaf, node, level)} holds ${n} slots, outside [${minCount}, ${cap}]`);
    if (leaf) {
      if (node !== walk.nextLeaf) this.#fail(`${nodeName(leaf, node, level)} is reached in order but the leaf chain leads to leaf ${walk.nextLeaf}`);
      if (this.#leafPrev[node] !== walk.prevLeaf) this.#fail(`${nodeName(leaf, node, level)} links back to leaf ${this.#leafPrev[node]}, not ${walk.prevLeaf}`);
      walk.prevLeaf = node;
      walk.nextLeaf = this.#leafNext[node]!;
      return;
    }
    const base = node * cap;
    const used = level + 1 === this.#height - 1 ? this.#leavesUsed : this.#innersUsed;
    for (let i = 0; i < n; i++) {
      const child = this.#innerChild[base + i]!;
      if (child < 0 || child >= used) this.#fail(`${nodeName(leaf, node, level)} slot ${i} holds ${child}, not a node id`);
      this.#checkNode(child, level + 1, leftmost && i === 0, rightmost && i === n - 1, walk);
      const childIsLeaf = level + 1 === this.#height - 1;
      const end = this.#lastEndOf(childIsLeaf, child);
      const gap = this.#maxGapOf(childIsLeaf, child);
      if (this.#innerKeys[base + i] !== end)
        this.#fail(`${nodeName(leaf, node, level)} slot ${i} key ${hex(this.#innerKeys[base + i]!)} != last end ${hex(end)} of its child`);
      if (this.#innerGaps[base + i] !== gap)
        this.#fail(`${nodeName(leaf, node, level)} slot ${i} gap ${hex(this.#innerGaps[base + i]!)} != largest gap ${hex(gap)} of its child`);
    }
    for (let i = n; i < cap; i++) {
      if (this.#innerChild[base + i] !== NIL) this.#fail(`${nodeName(leaf, node, level)} slot ${i} is past the count ${n} but not empty`);
      // find() relies on it to search a whole row without reading the count.
      if (this.#innerKeys[base + i] !== Infinity) this.#fail(`${nodeName(leaf, node, level)} slot ${i} is past the count ${n} but its key is not +Infinity`);
    }
  }

  /** Check every entry, its key and its gap, along the leaf chain (whose order #checkNode checked). */
  #checkEntries(): void {
    const cap = this.#cap;
    let prev: V | null = null;
    let entries = 0;
    for (let leaf = this.#head; leaf !== NIL; leaf = this.#leafNext[leaf]!) {
      const base = leaf * cap;
      const n = this.#leafCount[leaf]!;
      for (let i = 0; i < n; i++) {
        const e = this.#leafEntries[base + i];
        if (e === null || typeof e !== 'object') this.#fail(`leaf ${leaf} slot ${i} holds ${String(e)}, not an entry`);
        if (!Number.isSafeInteger(e.start) || !Number.isSafeInteger(e.end) || e.start >= e.end)
          this.#fail(`leaf ${leaf} slot ${i} holds the empty or non-integer ${range(e)}`);
        if (prev !== null && prev.end > e.start) this.#fail(`leaf ${leaf} slot ${i}: ${range(e)} overlaps or precedes ${range(prev)}`);
        const gapEnd = this.#startGap(e);
        if (gapEnd > e.start || this.#endGap(e) < e.end) this.#fail(`leaf ${leaf} slot ${i}: the guard gaps of ${range(e)} reach inside it`);
        const key = this.#leafKeys[base + i]!;
        if (key !== e.end) this.#fail(`leaf ${leaf} slot ${i} key ${hex(key)} != end of ${range(e)}`);
        const g = this.#gapIndex(base + i);
        const gap = this.#gapBetween(prev, e);
        if (this.#leafGaps[g] !== gap) this.#fail(`leaf ${leaf} slot ${i} gap ${hex(this.#leafGaps[g]!)} != ${hex(gap)} recomputed below ${range(e)}`);
        if (this.#leafGaps[g + cap] !== gapEnd)
          this.#fail(`leaf ${leaf} slot ${i} gap end ${hex(this.#leafGaps[g + cap]!)} != startGap ${hex(gapEnd)} of ${range(e)}`);
        prev = e;
        entries++;
      }
      for (let i = n; i < cap; i++) {
        if (this.#leafEntries[base + i] !== null) this.#fail(`leaf ${leaf} slot ${i} is past the count ${n} but still holds an entry`);
        if (this.#leafKeys[base + i] !== Infinity) this.#fail(`leaf ${leaf} slot ${i} is past the count ${n} but its key is not +Infinity`);
      }
    }
    if (entries !== this.#size) this.#fail(`size is ${this.#size} but the tree holds ${entries} entries`);
  }

  #fail(message: string): never {
    throw new Error(`VmaTree invariant violated: ${message}`);
  }

  // --- internals: finding ---

  /**
   * Walk from the root to the leaf where `key` (an address) belongs: at each internal node the
   * first slot whose key exceeds it, or the last slot. Records the path for the fix-ups.
   */
  #descend(key: number): number {
    const cap = this.#innerCap;
    const keys = this.#innerKeys;
    let node = this.#root;
    for (let level = 0; level < this.#height - 1; level++) {
      const base = node * cap;
      let lo = 0;
      let hi = this.#innerCount[node]! - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (keys[base + mid]! > key) hi = mid;
        else lo = mid + 1;
      }
      this.#pathNode[level] = node;
      this.#pathSlot[level] = lo;
      node = this.#innerChild[base + lo]!;
    }
    return node;
  }

  /** The first slot of `leaf` whose end exceeds key, or its count when none does. */
  #leafSearch(leaf: number, key: number): number {
    const keys = this.#leafKeys;
    const base = leaf * this.#cap;
    let lo = 0;
    let hi = this.#leafCount[leaf]!;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (keys[base + mid]! > key) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The slot of `e` (by identity), descending by `key`; sets #locatedLeaf and the path. */
  #locate(e: V, key: number, op: string): number {
    const leaf = this.#descend(key);
    const slot = this.#leafSearch(leaf, key);
    if (slot >= this.#leafCount[leaf]! || this.#leafEntries[leaf * this.#cap + slot] !== e) {
      throw new Error(`VmaTree.${op}: ${range(e)} is not in the tree${key === e.start ? '' : ` at ${hex(key)}`}`);
    }
    this.#locatedLeaf = leaf;
    return slot;
  }

  #entryBefore(leaf: number, slot: number): V | null {
    if (slot > 0) return this.#leafEntries[leaf * this.#cap + slot - 1]!;
    const p = this.#leafPrev[leaf]!;
    return p === NIL ? null : this.#leafEntries[p * this.#cap + this.#leafCount[p]! - 1]!;
  }

  #entryAfter(leaf: number, slot: number): V | null {
    if (slot + 1 < this.#leafCount[leaf]!) return this.#leafEntries[leaf * this.#cap + slot + 1]!;
    const q = this.#leafNext[leaf]!;
    return q === NIL ? null : this.#leafEntries[q * this.#cap]!;
  }

  // --- internals: gaps ---

  /** The free space between prev (or lowLimit) and e, as the slot of e records it. */
  #gapBetween(prev: V | null, e: V): number {
    const gap = this.#startGap(e) - (prev === null ? this.#lowLimit : this.#endGap(prev));
    return gap > 0 ? gap : 0;
  }

  /** Where in #leafGaps the gap of leaf slot i (= leaf * cap + slot) is; its end is cap further. */
  #gapIndex(i: number): number {
    return 2 * i - (i % this.#cap);
  }

  /** Record in leaf slot i the gap below e, whose predecessor is prev (null: e is first). */
  #setLeafGap(i: number, prev: V | null, e: V): void {
    const g = this.#gapIndex(i);
    this.#leafGaps[g] = this.#gapBetween(prev, e);
    this.#leafGaps[g + this.#cap] = this.#startGap(e);
  }

  /** The largest gap a node's slots record: what its parent slot must say. */
  #maxGapOf(leaf: boolean, node: number): number {
    const gaps = leaf ? this.#leafGaps : this.#innerGaps;
    const base = leaf ? node * this.#cap * 2 : node * this.#innerCap;
    const end = base + (leaf ? this.#leafCount : this.#innerCount)[node]!;
    let max = 0;
    for (let i = base; i < end; i++) {
      const g = gaps[i]!;
      if (g > max) max = g;
    }
    return max;
  }

  /** The key of a node's last slot: what its parent slot must say. */
  #lastEndOf(leaf: boolean, node: number): number {
    return leaf ? this.#leafKeys[node * this.#cap + this.#leafCount[node]! - 1]! : this.#innerKeys[node * this.#innerCap + this.#innerCount[node]! - 1]!;
  }

  /** Recompute the gap recorded for `e` (its predecessor changed) and pass it up. */
  #refreshGap(e: V): void {
    const slot = this.#locate(e, e.start, 'refreshGap');
    const leaf = this.#locatedLeaf;
    this.#setLeafGap(leaf * this.#cap + slot, this.#entryBefore(leaf, slot), e);
    this.#fixUpward(leaf, NIL);
  }

  #assertEntry(e: V, op: string): void {
    if (!Number.isSafeInteger(e.start) || !Number.isSafeInteger(e.end) || e.start >= e.end) {
      throw new RangeError(`VmaTree.${op}: ${range(e)} is empty or not integer (need start < end)`);
    }
    // The pruning in unmappedArea() relies on guard gaps only ever shrinking the free space.
    const startGap = this.#startGap(e);
    const endGap = this.#endGap(e);
    if (startGap > e.start) throw new RangeError(`VmaTree.${op}: startGap ${hex(startGap)} of ${range(e)} is above its start`);
    if (endGap < e.end) throw new RangeError(`VmaTree.${op}: endGap ${hex(endGap)} of ${range(e)} is below its end`);
  }

  // --- internals: node pools ---

  #allocLeaf(): number {
    const reused = this.#leavesFree.pop();
    if (reused !== undefined) return reused;
    if (this.#leavesUsed === this.#leafCount.length) {
      const nodes = this.#leafCount.length;
      const total = poolGrown(nodes);
      const cap = this.#cap;
      this.#leafKeys = grownFloat64(this.#leafKeys, total * cap, Infinity);
      this.#leafGaps = grownFloat64(this.#leafGaps, 2 * total * cap, 0);
      // A new array of the exact size: pushing would let V8 add its own half again of slack.
      const entries = new Array<V | null>(total * cap).fill(null);
      for (let i = 0; i < nodes * cap; i++) entries[i] = this.#leafEntries[i]!;
      this.#leafEntries = entries;
      this.#leafCount = grownUint8(this.#leafCount, total);
      this.#leafNext = grownInt32(this.#leafNext, total, NIL);
      this.#leafPrev = grownInt32(this.#leafPrev, total, NIL);
    }
    return this.#leavesUsed++;
  }

  #allocInner(): number {
    const reused = this.#innersFree.pop();
    if (reused !== undefined) return reused;
    if (this.#innersUsed === this.#innerCount.length) {
      const nodes = this.#innerCount.length;
      const total = poolGrown(nodes);
      const cap = this.#innerCap;
      this.#innerKeys = grownFloat64(this.#innerKeys, total * cap, Infinity);
      this.#innerGaps = grownFloat64(this.#innerGaps, total * cap, 0);
      this.#innerChild = grownInt32(this.#innerChild, total * cap, NIL);
      this.#innerCount = grownUint8(this.#innerCount, total);
    }
    return this.#innersUsed++;
  }

  #freeNode(leaf: boolean, node: number): void {
    if (leaf) {
      const base = node * this.#cap;
      this.#leafKeys.fill(Infinity, base, base + this.#cap);
      for (let i = 0; i < this.#cap; i++) this.#leafEntries[base + i] = null;
      this.#leafCount[node] = 0;
      this.#leafNext[node] = NIL;
      this.#leafPrev[node] = NIL;
      this.#leavesFree.push(node);
    } else {
      const base = node * this.#innerCap;
      this.#innerKeys.fill(Infinity, base, base + this.#innerCap);
      this.#innerChild.fill(NIL, base, base + this.#innerCap);
      this.#innerCount[node] = 0;
      this.#innersFree.push(node);
    }
  }

  /**
   * Copy `count` slots (key, gap and entry or child) from src to dst, which may be in the same
   * node and overlap, and empty the source slots that are not overwritten (key +Infinity).
   */
  #moveSlots(leaf: boolean, dst: number, src: number, count: number): void {
    if (count <= 0 || dst === src) return;
    if (leaf) {
      this.#leafKeys.copyWithin(dst, src, src + count);
      const gd = this.#gapIndex(dst);
      const gs = this.#gapIndex(src);
      const cap = this.#cap;
      this.#leafGaps.copyWithin(gd, gs, gs + count);
      this.#leafGaps.copyWithin(gd + cap, gs + cap, gs + cap + count);
      const refs = this.#leafEntries;
      if (dst < src) for (let i = 0; i < count; i++) refs[dst + i] = refs[src + i]!;
      else for (let i = count - 1; i >= 0; i--) refs[dst + i] = refs[src + i]!;
    } else {
      this.#innerKeys.copyWithin(dst, src, src + count);
      this.#innerGaps.copyWithin(dst, src, src + count);
      this.#innerChild.copyWithin(dst, src, src + count);
    }
    // Empty what was vacated: [src, src + count) minus [dst, dst + count).
    const from = dst < src ? Math.max(src, dst + count) : src;
    const to = dst < src ? src + count : Math.min(src + count, dst);
    for (let i = from; i < to; i++) {
      if (leaf) {
        this.#leafKeys[i] = Infinity;
        this.#leafEntries[i] = null;
      } else {
        this.#innerKeys[i] = Infinity;
        this.#innerChild[i] = NIL;
      }
    }
  }

  #setSlot(leaf: boolean, i: number, key: number, gap: number, ref: V | number): void {
    if (leaf) {
      const g = this.#gapIndex(i);
      this.#leafKeys[i] = key;
      this.#leafGaps[g] = gap;
      this.#leafGaps[g + this.#cap] = this.#startGap(ref as V);
      this.#leafEntries[i] = ref as V;
    } else {
      this.#innerKeys[i] = key;
      this.#innerGaps[i] = gap;
      this.#innerChild[i] = ref as number;
    }
  }

  // --- internals: structure ---

  /**
   * Put an entry at `slot` of `leaf`; see #insertSlot. The first and last leaf split unevenly
   * when the insertion is at their outer end, leaving the old leaf full, so that ascending or
   * descending runs of inserts (fork, a growing mmap region) pack leaves instead of leaving
   * them half empty.
   */
  #insertLeaf(leaf: number, slot: number, key: number, gap: number, e: V): number {
    const cap = this.#cap;
    let leftCount = (cap + 1) >> 1;
    if (slot === cap && leaf === this.#tail) leftCount = cap;
    else if (slot === 0 && leaf === this.#head) leftCount = 1;
    const right = this.#insertSlot(true, leaf, slot, key, gap, e, leftCount);
    if (right !== NIL) {
      const after = this.#leafNext[leaf]!;
      this.#leafNext[right] = after;
      this.#leafPrev[right] = leaf;
      this.#leafNext[leaf] = right;
      if (after === NIL) this.#tail = right;
      else this.#leafPrev[after] = right;
    }
    return right;
  }

  /**
   * Put (key, gap, ref) at `slot` of `node`. A full node splits, keeping `leftCount` of the
   * cap + 1 slots: the new right sibling is returned (NIL otherwise) for the caller to hang in
   * the parent.
   */
  #insertSlot(leaf: boolean, node: number, slot: number, key: number, gap: number, ref: V | number, leftCount: number): number {
    const cap = leaf ? this.#cap : this.#innerCap;
    const counts = leaf ? this.#leafCount : this.#innerCount;
    const base = node * cap;
    const n = counts[node]!;
    if (n < cap) {
      this.#moveSlots(leaf, base + slot + 1, base + slot, n - slot);
      this.#setSlot(leaf, base + slot, key, gap, ref);
      counts[node] = n + 1;
      return NIL;
    }
    const right = leaf ? this.#allocLeaf() : this.#allocInner(); // may grow the pool
    const rbase = right * cap;
    // Of the cap + 1 slots (old ones with the new one at `slot`), the right node takes those
    // from leftCount on; move them first, then make room on the left if the new one goes there.
    if (slot < leftCount) {
      this.#moveSlots(leaf, rbase, base + leftCount - 1, cap - leftCount + 1);
      this.#moveSlots(leaf, base + slot + 1, base + slot, leftCount - 1 - slot);
      this.#setSlot(leaf, base + slot, key, gap, ref);
    } else {
      this.#moveSlots(leaf, rbase, base + leftCount, slot - leftCount);
      this.#setSlot(leaf, rbase + slot - leftCount, key, gap, ref);
      this.#moveSlots(leaf, rbase + slot - leftCount + 1, base + slot, cap - slot);
    }
    (leaf ? this.#leafCount : this.#innerCount)[node] = leftCount;
    (leaf ? this.#leafCount : this.#innerCount)[right] = cap + 1 - leftCount;
    return right;
  }

  /** Take slot `slot` out of `node`, closing the hole. */
  #removeSlot(leaf: boolean, node: number, slot: number): void {
    const counts = leaf ? this.#leafCount : this.#innerCount;
    const base = node * (leaf ? this.#cap : this.#innerCap);
    const n = counts[node]!;
    this.#moveSlots(leaf, base + slot, base + slot + 1, n - slot - 1);
    if (leaf) {
      this.#leafKeys[base + n - 1] = Infinity;
      this.#leafEntries[base + n - 1] = null;
    } else {
      this.#innerKeys[base + n - 1] = Infinity;
      this.#innerChild[base + n - 1] = NIL;
    }
    counts[node] = n - 1;
  }

  /** Record what `child` says (its last end and largest gap) in slot i of its parent's row. */
  #record(leaf: boolean, child: number, i: number): void {
    this.#innerKeys[i] = this.#lastEndOf(leaf, child);
    this.#innerGaps[i] = this.#maxGapOf(leaf, child);
  }

  /**
   * After `leaf` (on the recorded path) changed, record each level's last end and largest gap
   * in its parent slot, hanging split-off siblings as we go; stop as soon as a level records
   * what it recorded before.
   */
  #fixUpward(leaf: number, sibling: number): void {
    const cap = this.#innerCap;
    let child = leaf;
    let split = sibling;
    for (let level = this.#height - 2; level >= 0; level--) {
      const childIsLeaf = level === this.#height - 2;
      const parent = this.#pathNode[level]!;
      const slot = this.#pathSlot[level]!;
      const i = parent * cap + slot;
      const end = this.#lastEndOf(childIsLeaf, child);
      const gap = this.#maxGapOf(childIsLeaf, child);
      if (split === NIL && this.#innerKeys[i] === end && this.#innerGaps[i] === gap) return;
      this.#innerKeys[i] = end;
      this.#innerGaps[i] = gap;
      if (split !== NIL) {
        const key = this.#lastEndOf(childIsLeaf, split);
        split = this.#insertSlot(false, parent, slot + 1, key, this.#maxGapOf(childIsLeaf, split), split, (cap + 1) >> 1);
      }
      child = parent;
    }
    if (split !== NIL) this.#growRoot(child, split);
  }

  /** The root split into `left` and `right`: a new root above them. */
  #growRoot(left: number, right: number): void {
    if (this.#height === HEIGHT_MAX) throw new Error(`VmaTree: height would exceed ${HEIGHT_MAX}`);
    const leaves = this.#height === 1;
    const root = this.#allocInner();
    const base = root * this.#innerCap;
    this.#record(leaves, left, base);
    this.#innerChild[base] = left;
    this.#record(leaves, right, base + 1);
    this.#innerChild[base + 1] = right;
    this.#innerCount[root] = 2;
    this.#root = root;
    this.#height++;
  }

  /**
   * After a slot left `leaf` (on the recorded path), refill every node that fell below the
   * minimum from a sibling or merge it into one, and record last ends and gaps upward.
   */
  #fixAfterRemove(leaf: number): void {
    const cap = this.#innerCap;
    let child = leaf;
    for (let level = this.#height - 2; level >= 0; level--) {
      const childIsLeaf = level === this.#height - 2;
      const parent = this.#pathNode[level]!;
      const slot = this.#pathSlot[level]!;
      if (childIsLeaf ? this.#leafCount[child]! < this.#minFill : this.#innerCount[child]! < this.#innerMinFill) {
        this.#rebalance(childIsLeaf, parent, slot);
      } else {
        const i = parent * cap + slot;
        const end = this.#lastEndOf(childIsLeaf, child);
        const gap = this.#maxGapOf(childIsLeaf, child);
        if (this.#innerKeys[i] === end && this.#innerGaps[i] === gap) return;
        this.#innerKeys[i] = end;
        this.#innerGaps[i] = gap;
      }
      child = parent;
    }
    // A root left with one child hands the job down (a leaf root may even be empty).
    while (this.#height > 1 && this.#innerCount[this.#root] === 1) {
      const only = this.#innerChild[this.#root * cap]!;
      this.#freeNode(false, this.#root);
      this.#root = only;
      this.#height--;
    }
  }

  /**
   * The child at `slot` of `parent` is short: merge it with a neighbour when both fit in one
   * node, else share their slots evenly. Either way the parent records both anew.
   */
  #rebalance(leaves: boolean, parent: number, slot: number): void {
    const cap = leaves ? this.#cap : this.#innerCap;
    const counts = leaves ? this.#leafCount : this.#innerCount;
    const pbase = parent * this.#innerCap;
    const ls = slot > 0 ? slot - 1 : 0;
    const left = this.#innerChild[pbase + ls]!;
    const right = this.#innerChild[pbase + ls + 1]!;
    const lbase = left * cap;
    const rbase = right * cap;
    const lc = counts[left]!;
    const rc = counts[right]!;
    const total = lc + rc;
    if (total <= cap) {
      this.#moveSlots(leaves, lbase + lc, rbase, rc);
      counts[left] = total;
      if (leaves) {
        const after = this.#leafNext[right]!;
        this.#leafNext[left] = after;
        if (after === NIL) this.#tail = left;
        else this.#leafPrev[after] = left;
      }
      this.#freeNode(leaves, right);
      this.#removeSlot(false, parent, ls + 1);
    } else {
      const leftCount = total >> 1;
      if (lc > leftCount) {
        const k = lc - leftCount; // left's top k slots go to the front of right
        this.#moveSlots(leaves, rbase + k, rbase, rc);
        this.#moveSlots(leaves, rbase, lbase + leftCount, k);
      } else {
        const k = leftCount - lc; // right's bottom k slots go to the top of left
        this.#moveSlots(leaves, lbase + lc, rbase, k);
        this.#moveSlots(leaves, rbase, rbase + k, rc - k);
      }
      counts[left] = leftCount;
      counts[right] = total - leftCount;
      this.#record(leaves, right, pbase + ls + 1);
    }
    this.#record(leaves, left, pbase + ls);
  }
}

/** What checkInvariants() carries from leaf to leaf while walking the internal nodes. */
interface InvariantWalk {
  prevLeaf: number;
  nextLeaf: number;
}

/** x mod m in [0, m) for any integer x and power of two m (JS `%` keeps the sign of x). */
function floorMod(x: number, m: number): number {
  // Exact: dividing by a power of two only shifts the exponent. Cheaper than `%`, which is a
  // library call on doubles.
  return x - Math.floor(x / m) * m;
}

/** Powers of two above 2^31 included, which rules out the bitwise test. */
function isPowerOfTwo(m: number): boolean {
  return Number.isSafeInteger(m) && m > 0 && 2 ** Math.round(Math.log2(m)) === m;
}

function grownFloat64(a: Float64Array, length: number, fill: number): Float64Array {
  const b = new Float64Array(length).fill(fill);
  b.set(a);
  return b;
}

function grownInt32(a: Int32Array, length: number, fill: number): Int32Array {
  const b = new Int32Array(length).fill(fill);
  b.set(a);
  return b;
}

function grownUint8(a: Uint8Array, length: number): Uint8Array {
  const b = new Uint8Array(length);
  b.set(a);
  return b;
}

function nodeName(leaf: boolean, node: number, level: number): string {
  return `${leaf ? 'leaf' : 'internal node'} ${node} (level ${level})`;
}

function hex(n: number): string {
  return Number.isSafeInteger(n) && n >= 0 ? `0x${n.toString(16)}` : String(n);
}

function range(e: TreeEntry): string {
  return `[${hex(e.start)}, ${hex(e.end)})`;
}
