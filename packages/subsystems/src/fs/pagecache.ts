import {
  MAP_FIXED,
  MAP_SHARED,
  MmFile,
  type MmGen,
  type MmStruct,
  type MmTask,
  Mutex,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  Page,
  type Prng,
  RwSemaphore,
  SharedLocation,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemProcess,
  type SubsystemVariant,
  VM_SHARED,
  VM_WRITE,
  type Vma,
  type VmFault,
  type VmFaultResult,
  type VmOperations,
  anonVmaPrepare,
  assumes,
  handleMmFault,
  hex,
  mmapLegacyLock,
  mmapLegacyUnlock,
  runMmOp,
  sysMmap,
} from '@vmalock/core';
import { fdInstall } from '../common.js';
import { type ExerciseSpawn, spawnCalls } from '../exercise.js';

/** The most pages the file ever holds (ftruncate's sizes are 0..this). */
export const PAGECACHE_PAGES_MAX = 8;
/** Where user threads map the file (MAP_SHARED|MAP_FIXED, the whole size range): two slots, so mappings replace each other. */
export const PAGECACHE_SLOTS: readonly number[] = [0x50000000, 0x50000000 + 16 * PAGE_SIZE];
/** The window user threads' mm syscalls on the file's mappings aim at. */
export const PAGECACHE_WINDOW = { start: 0x50000000, end: 0x50000000 + 32 * PAGE_SIZE } as const;

/** One page in the page cache. `dirtiedBy`: the mapping (`pid:address`) whose `page_mkwrite` dirtied it, or null when clean. */
export interface CachedPage {
  readonly dirtiedBy: string | null;
}

const SIGBUS: VmFaultResult = { kind: 'sigbus' };
/** `VM_FAULT_NOPAGE`: the handler installed the PTE itself (the core's `retry` answer maps nothing and returns ok). */
const NOPAGE: VmFaultResult = { kind: 'retry' };

/**
 * A page-cache file mapped shared by user threads, with `fault`, `page_mkwrite` and truncate:
 * mm/filemap.c `filemap_fault()` and `filemap_page_mkwrite()`, mm/truncate.c
 * `truncate_pagecache()` (`truncate_setsize()` then `unmap_mapping_range()` and
 * `truncate_inode_pages()`).
 *
 * State (SharedLocations owned by `pagecache`): `pagecache.i_size` (pages) and `pagecache.pages`
 * (the cached pages by index, with their dirty state); the file's `MmFile.pageCache` mirrors the
 * page objects the page tables map. One file serves every attached process (it is a file): each
 * gets it in its fd table.
 *
 * Invariants (`checkInvariants`, at quiescence): no page at or beyond EOF is mapped in any
 * attached mm nor in the cache; every mapped file page is the cached one; a page mapped writable
 * is dirty (its `page_mkwrite` ran: writeback would not lose the write), and a dirty page names
 * the shared writable mapping that dirtied it.
 *
 * The variants differ in what keeps a fault's size check valid until its PTE is in place:
 * `legacy` leans on mmap_sem (truncate takes `mmap_write_lock`), `converted` on the page lock and
 * the `i_mmap` lock, as the kernel does.
 */
export abstract class PageCacheBase implements Subsystem {
  readonly name = 'pagecache';
  readonly kind = 'fs';
  abstract readonly variant: SubsystemVariant;
  abstract readonly summary: string;
  readonly hookCounts: Record<string, number> = { fault: 0, pageMkwrite: 0 };
  /** `i_size`, in pages. Legacy: written under mmap_sem write (truncate); read under mmap_sem read (fault). Converted: written under i_rwsem; read under the page lock. Loaded and stored marked, as `i_size_read()`/`i_size_write()` do. */
  readonly iSize = new SharedLocation<number>('pagecache.i_size', PAGECACHE_PAGES_MAX / 2, 'pagecache');
  /** The page cache (`mapping->i_pages`) by page index. Legacy: as `i_size`. Converted: an entry changes only under its page lock. Changed by atomics; loaded marked (`xa_load()` is a lockless RCU walk). */
  readonly pages = new SharedLocation<ReadonlyMap<number, CachedPage>>('pagecache.pages', new Map(), 'pagecache');
  readonly file: MmFile;
  protected readonly procs: SubsystemProcess[] = [];
  readonly #fds = new Map<MmStruct, number>();

  constructor() {
    this.file = new MmFile('/data/pagecache.bin', 0x2001, 8, 1, true, true, this.vmOps());
  }

  /** The file's vm_operations (`generic_file_vm_ops` with this subsystem's handlers). */
  protected abstract vmOps(): VmOperations;

  attach(proc: SubsystemProcess): void {
    const fd = fdInstall(proc.mm, this.file);
    this.#fds.set(proc.mm, fd);
    this.procs.push(proc);
  }

  /** The fd of the file in `mm`'s table. */
  fdIn(mm: MmStruct): number {
    const fd = this.#fds.get(mm);
    if (fd === undefined) throw new Error(`pagecache: not attached to mm${mm.pid}`);
    return fd;
  }

  /** One user operation: map the file in a slot, read or write a page of a slot, or ftruncate. */
  *drive(task: MmTask, rng: Prng): MmGen<void> {
    const slot = PAGECACHE_SLOTS[rng.index(PAGECACHE_SLOTS.length)]!;
    const op = rng.int(0, 6);
    if (op === 0) yield* this.mmap(task, slot);
    else if (op <= 2) yield* this.ftruncate(task, rng.int(0, PAGECACHE_PAGES_MAX));
    else yield* this.touch(task, slot + rng.int(0, PAGECACHE_PAGES_MAX - 1) * PAGE_SIZE, op >= 5);
  }

  /** `mmap(slot, PAGES_MAX pages, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED, fd, 0)`. */
  *mmap(task: MmTask, slot: number): MmGen<number> {
    return yield* sysMmap(task, slot, PAGECACHE_PAGES_MAX * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, this.fdIn(task.mm), 0);
  }

  /** A user load or store at `addr` (a page fault when the page is not mapped, or mapped read-only for a store). */
  *touch(task: MmTask, addr: number, write: boolean): MmGen<string> {
    return yield* handleMmFault(task, addr, write ? 'write' : 'read');
  }

  /** `ftruncate(fd, pages * PAGE_SIZE)`. */
  abstract ftruncate(task: MmTask, pages: number): MmGen<void>;

  /**
   * flag's workload: both slots mapped and the pages below EOF faulted in (set up first), then
   * two threads loading and storing random pages of the slots while a third truncates the file
   * to random sizes: each truncate below a page races the faults on it.
   */
  exercise(proc: SubsystemProcess, spawn: ExerciseSpawn): void {
    runMmOp(
      proc.mm,
      function* (this: PageCacheBase, task: MmTask): MmGen<void> {
        for (const slot of PAGECACHE_SLOTS) {
          yield* this.mmap(task, slot);
          for (let i = 0; i < this.iSize.value; i++) yield* this.touch(task, slot + i * PAGE_SIZE, false);
        }
      }.bind(this),
      'pagecache-setup',
    );
    const page = (rng: Prng): number => PAGECACHE_SLOTS[rng.index(PAGECACHE_SLOTS.length)]! + rng.int(0, PAGECACHE_PAGES_MAX - 1) * PAGE_SIZE;
    for (let t = 0; t < 2; t++) spawnCalls(spawn, `pagecache-fault${t}`, 6, (task, rng) => this.touch(task, page(rng), rng.chance(0.5)));
    spawnCalls(spawn, 'pagecache-truncate', 4, (task, rng) => this.ftruncate(task, rng.int(0, PAGECACHE_PAGES_MAX)));
  }

  checkInvariants(): void {
    const size = this.iSize.value;
    const cache = this.pages.value;
    for (const index of cache.keys()) if (index >= size) this.fail(`page ${index} is in the cache beyond EOF (i_size ${size} pages)`);
    for (const index of this.file.pageCache.keys()) if (!cache.has(index)) this.fail(`inode page ${index} is not in pagecache.pages`);
    for (const [index, entry] of cache) {
      if (!this.file.pageCache.has(index)) this.fail(`page ${index} of pagecache.pages has no inode page`);
      if (entry.dirtiedBy !== null && !/^\d+:0x[0-9a-f]+$/.test(entry.dirtiedBy)) this.fail(`dirty page ${index} names no mapping writer`);
    }
    for (const { mm } of this.procs) {
      for (const vma of mm.vmas()) {
        if (vma.file !== this.file) continue;
        for (const { addr, view } of mm.pageTables.walk(vma.start, vma.end)) {
          const index = vma.pgoffOf(addr);
          const where = `mm${mm.pid} ${hex(addr)} (page ${index})`;
          if (index >= size) this.fail(`${where} is mapped beyond EOF (i_size ${size} pages)`);
          if (view.page.anon) continue; // a private copy (not mapped by our fault)
          const entry = cache.get(index);
          if (entry === undefined || this.file.pageCache.get(index) !== view.page) this.fail(`${where} maps a page that is not the cached one`);
          if (view.writable && entry.dirtiedBy === null) this.fail(`${where} is mapped writable but the page is clean (page_mkwrite skipped)`);
        }
      }
    }
  }

  locations(): readonly SharedLocation[] {
    return [this.iSize, this.pages];
  }

  protected fail(what: string): never {
    throw new SubsystemInvariantError(this.name, what);
  }

  protected count(hook: string): void {
    this.hookCounts[hook] = (this.hookCounts[hook] ?? 0) + 1;
  }

  /** The attached mm `vma` is in (a fault's VMA is in its mm's tree). */
  protected mmOf(vma: Vma): MmStruct {
    for (const { mm } of this.procs) if (mm.vmaLookup(vma.start) === vma) return mm;
    throw new Error(`pagecache: VMA ${vma.toString()} is in no attached mm`);
  }

  /** The inode page of `index` (created with its cache entry). */
  protected inodePage(index: number): Page {
    let page = this.file.pageCache.get(index) as Page | undefined;
    if (page === undefined) {
      page = new Page(false, false, this.file, index);
      this.file.pageCache.set(index, page);
    }
    return page;
  }

  /** Zap every PTE of [from, to) page indexes in the file's mappings of `mm` (VMAs found in its tree). */
  protected zapMm(mm: MmStruct, from: number, to: number): void {
    for (const vma of mm.vmas()) if (vma.file === this.file) zapVmaPages(mm, vma, from, to);
  }
}

/** Unmap page indexes [from, to) of the file in `vma` (`unmap_mapping_range_vma` with even_cows: private copies go too). One step. */
export function zapVmaPages(mm: MmStruct, vma: Vma, from: number, to: number): void {
  const start = Math.max(vma.start, vma.start + (from - vma.pgoff) * PAGE_SIZE);
  const end = Math.min(vma.end, vma.start + (to - vma.pgoff) * PAGE_SIZE);
  if (start < end) mm.pageTables.zap(start, end);
}

/**
 * `legacy`: faults and `page_mkwrite` read `i_size` once and trust it until the core installs
 * the PTE, because truncate runs under `mmap_write_lock` and so cannot run between them.
 * Truncate takes `mmapLegacyLock(write)`, sets the size, zaps the pages beyond it from the
 * caller's mm (walking its VMAs and page tables) and drops them from the cache. A model, not a
 * kernel version: Linux's truncate never took mmap_sem (the nopage/truncate race was closed by
 * `mapping->truncate_count`, then by the page lock); it stands for filesystem fault paths that
 * lean on mmap_sem. Safe for one process: it excludes only the caller's mm.
 */
export class PageCacheLegacy extends PageCacheBase {
  readonly variant = 'legacy';
  readonly summary = 'page-cache file (filemap_fault, filemap_page_mkwrite, truncate_pagecache) trusting i_size under mmap_sem';

  protected vmOps(): VmOperations {
    return { name: 'pagecache', fault: (vmf) => this.fault(vmf), pageMkwrite: (vmf) => this.pageMkwrite(vmf) };
  }

  /** `filemap_fault()` of old: the size check holds until the PTE is in, since truncate needs mmap_sem write. */
  @assumes({
    lock: 'mmap_sem',
    mode: 'read',
    hook: 'fault',
    protects: 'pagecache.i_size, pagecache.pages',
    why: 'truncate (mmap_sem write) cannot shrink the file between the size check and the PTE install',
  })
  *fault(vmf: VmFault): MmGen<VmFaultResult> {
    this.count('fault');
    const size = (yield this.iSize.readOnce()) as number;
    if (vmf.pgoff >= size) return SIGBUS;
    yield this.pages.rmw((m) => (m.has(vmf.pgoff) ? m : new Map(m).set(vmf.pgoff, { dirtiedBy: null })));
    return { kind: 'page', page: vmf.pgoff };
  }

  /** `filemap_page_mkwrite()` of old: dirty the page; the size and the cache entry cannot change under mmap_sem read. */
  @assumes({
    lock: 'mmap_sem',
    mode: 'read',
    hook: 'pageMkwrite',
    protects: 'pagecache.i_size, pagecache.pages',
    why: 'truncate (mmap_sem write) cannot drop the page between page_mkwrite and the writable PTE',
  })
  *pageMkwrite(vmf: VmFault): MmGen<VmFaultResult> {
    this.count('pageMkwrite');
    const size = (yield this.iSize.readOnce()) as number;
    if (vmf.pgoff >= size) return SIGBUS;
    const writer = writerOf(this.mmOf(vmf.vma), vmf);
    yield this.pages.rmw((m) => new Map(m).set(vmf.pgoff, { dirtiedBy: writer }));
    return { kind: 'page', page: vmf.pgoff };
  }

  *ftruncate(task: MmTask, pages: number): MmGen<void> {
    const { mm, thread } = task;
    const hold = yield* mmapLegacyLock(mm, thread, 'write');
    const old = (yield this.iSize.readOnce()) as number;
    yield this.iSize.writeOnce(pages);
    if (pages < old) {
      this.zapMm(mm, pages, PAGECACHE_PAGES_MAX);
      yield this.pages.rmw((m) => dropFrom(m, pages));
      for (const index of [...this.file.pageCache.keys()]) if (index >= pages) this.file.pageCache.delete(index);
    }
    yield* mmapLegacyUnlock(mm, hold);
  }
}

/**
 * `converted`: what `filemap_fault()` does today. The fault adds the page to the cache, locks it
 * (`lock_page`), rechecks `i_size` under the page lock, and maps it before unlocking
 * (`finish_fault()` under the page lock; here the handler installs the PTE itself and answers
 * VM_FAULT_NOPAGE). `page_mkwrite` locks the page, checks it is still in the file and makes the
 * PTE writable under the page lock (`filemap_page_mkwrite` + `wp_page_reuse`). Truncate
 * (`i_rwsem` held) sets the size, unmaps the range from every mapping under `i_mmap` write
 * (`unmap_mapping_range`: the file's VMAs in every attached mm),
 * then locks each page beyond EOF, unmaps it again and drops it (`truncate_inode_pages`).
 * Lock order: mm lock (the fault's) -> page lock -> PTE lock; `i_rwsem` -> page lock -> i_mmap.
 */
export class PageCacheConverted extends PageCacheBase {
  readonly variant = 'converted';
  readonly summary = 'page-cache file (filemap_fault, filemap_page_mkwrite, truncate_pagecache) with page lock and i_mmap lock';
  /**
   * `mapping->i_mmap_rwsem`. The i_mmap tree itself is not kept apart: the core links a file VMA
   * into its mm's tree in one step, as `vma_link` does under this lock, so the file's mappings
   * are found by walking each attached mm's tree (`zapMm`) in the step that zaps them.
   */
  readonly iMmapRwsem = new RwSemaphore('pagecache.i_mmap_rwsem');
  /** `inode->i_rwsem`: serialises truncates. */
  readonly iRwsem = new RwSemaphore('pagecache.i_rwsem');
  /** `PG_locked` of each page index (one per index: a page's lock outlives its removal here). */
  readonly pageLocks: readonly Mutex[] = Array.from({ length: PAGECACHE_PAGES_MAX }, (_, i) => new Mutex(`pagecache.page_lock[${i}]`));

  protected vmOps(): VmOperations {
    return { name: 'pagecache', fault: (vmf) => this.fault(vmf), pageMkwrite: (vmf) => this.pageMkwrite(vmf) };
  }

  @assumes({ lock: 'vma', mode: 'read', hook: 'fault', protects: 'vmf.vma', why: 'the PTE goes into the VMA the fault found' })
  *fault(vmf: VmFault): MmGen<VmFaultResult> {
    this.count('fault');
    const index = vmf.pgoff;
    if (index >= PAGECACHE_PAGES_MAX) return SIGBUS;
    const lock = this.pageLocks[index]!;
    yield lock.lock();
    // The page is in the cache before the size check, so a truncate that set the size later
    // finds it and waits for its lock (filemap_fault: __filemap_get_folio(FGP_CREAT), lock, check).
    yield this.pages.rmw((m) => (m.has(index) ? m : new Map(m).set(index, { dirtiedBy: null })));
    const page = this.inodePage(index);
    const size = (yield this.iSize.readOnce()) as number;
    if (index >= size) {
      yield this.pages.rmw((m) => dropFrom(m, index, index + 1));
      this.file.pageCache.delete(index);
      yield lock.unlock();
      return SIGBUS;
    }
    const mm = this.mmOf(vmf.vma);
    const shared = (vmf.vma.flags & VM_SHARED) !== 0;
    if (vmf.write && shared) yield this.pages.rmw((m) => new Map(m).set(index, { dirtiedBy: writerOf(mm, vmf) }));
    yield* this.#installPte(mm, vmf, page, shared);
    yield lock.unlock();
    return NOPAGE;
  }

  @assumes({ lock: 'vma', mode: 'read', hook: 'pageMkwrite', protects: 'vmf.vma', why: 'the PTE made writable is in the VMA the fault found' })
  *pageMkwrite(vmf: VmFault): MmGen<VmFaultResult> {
    this.count('pageMkwrite');
    const index = vmf.pgoff;
    const lock = this.pageLocks[index]!;
    yield lock.lock();
    const cache = (yield this.pages.readOnce()) as ReadonlyMap<number, CachedPage>;
    const size = (yield this.iSize.readOnce()) as number;
    // Truncated meanwhile (folio->mapping != inode->i_mapping): the PTE is gone or going.
    if (!cache.has(index) || index >= size) {
      yield lock.unlock();
      return NOPAGE;
    }
    const mm = this.mmOf(vmf.vma);
    yield this.pages.rmw((m) => new Map(m).set(index, { dirtiedBy: writerOf(mm, vmf) }));
    const table = mm.pageTables.pteTableFor(vmf.address);
    yield table.ptl.lock();
    // pte_same(): still the cached page, still read-only.
    const now = mm.pageTables.lookup(vmf.address);
    if (now !== null && !now.writable && now.page === this.file.pageCache.get(index)) mm.pageTables.setWritable(vmf.address, true);
    yield table.ptl.unlock();
    yield lock.unlock();
    return NOPAGE;
  }

  /** `finish_fault()`: map the locked page (a private write maps a copy) under the PTE lock. */
  *#installPte(mm: MmStruct, vmf: VmFault, page: Page, shared: boolean): MmGen<void> {
    const pt = mm.pageTables;
    const table = pt.pteTableFor(vmf.address);
    yield table.ptl.lock();
    if (pt.lookup(vmf.address) === null) {
      if (vmf.write && !shared) {
        anonVmaPrepare(mm, vmf.vma);
        pt.setPte(vmf.address, new Page(true, false), true);
        mm.faultCounts.cow++;
      } else {
        pt.setPte(vmf.address, page, vmf.write && (vmf.vma.flags & VM_WRITE) !== 0);
        mm.faultCounts.file++;
      }
    }
    yield table.ptl.unlock();
  }

  *ftruncate(_task: MmTask, pages: number): MmGen<void> {
    yield this.iRwsem.downWrite();
    const old = (yield this.iSize.readOnce()) as number;
    yield this.iSize.writeOnce(pages);
    if (pages < old) {
      yield* this.#unmapMappingRange(pages);
      const cache = (yield this.pages.readOnce()) as ReadonlyMap<number, CachedPage>;
      for (const index of [...cache.keys()].sort((a, b) => a - b)) {
        if (index < pages) continue;
        // truncate_inode_pages(): lock each page, unmap it if it was mapped meanwhile, drop it.
        const lock = this.pageLocks[index]!;
        yield lock.lock();
        yield* this.#unmapMappingRange(index, index + 1);
        yield this.pages.rmw((m) => dropFrom(m, index, index + 1));
        this.file.pageCache.delete(index);
        yield lock.unlock();
      }
    }
    yield this.iRwsem.upWrite();
  }

  /**
   * `unmap_mapping_range()`: zap page indexes [from, to) in every mapping of the file, under
   * i_mmap write. The walk and zap over all mappings is one step (the PTE locks of each table,
   * taken and dropped within it), so a concurrent split or mremap's PTE move cannot slip a page
   * past it.
   */
  *#unmapMappingRange(from: number, to = PAGECACHE_PAGES_MAX): MmGen<void> {
    yield this.iMmapRwsem.downWrite();
    for (const { mm } of this.procs) this.zapMm(mm, from, to);
    yield this.iMmapRwsem.upWrite();
  }
}

/** The mapping writer a dirty page names: `pid:address`. */
function writerOf(mm: MmStruct, vmf: VmFault): string {
  if ((vmf.vma.flags & (VM_SHARED | VM_WRITE)) !== (VM_SHARED | VM_WRITE))
    throw new SubsystemInvariantError('pagecache', `page_mkwrite on a VMA that is not shared writable (${vmf.vma.toString()})`);
  return `${mm.pid}:${hex(vmf.address)}`;
}

/** The cache without indexes [from, to). */
function dropFrom(m: ReadonlyMap<number, CachedPage>, from: number, to = Infinity): ReadonlyMap<number, CachedPage> {
  const out = new Map(m);
  for (const index of m.keys()) if (index >= from && index < to) out.delete(index);
  return out;
}

/** The `pagecache` subsystem in the given variant. */
export function pagecache(variant: SubsystemVariant): Subsystem {
  return variant === 'legacy' ? new PageCacheLegacy() : new PageCacheConverted();
}
