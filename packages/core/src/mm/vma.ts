import type { Effect } from '../sim/effect.js';
import type { SimThread } from '../sim/thread.js';
import { PAGE_SIZE, STACK_GUARD_GAP, VM_EXEC, VM_GROWSDOWN, VM_MAYSHARE, VM_READ, VM_WRITE } from './uapi.js';

/** A generator an mm operation or hook runs as: it yields engine effects, returns `T`. */
export type MmGen<T> = Generator<Effect, T, unknown>;

/**
 * A mapped file (`struct file` + its inode, as far as the mm cares). `/proc/pid/maps` shows its
 * device, inode and path.
 */
export class MmFile {
  /** Page-cache pages by file page offset (created on first fault). */
  readonly pageCache = new Map<number, unknown>();

  constructor(
    readonly path: string,
    /** The inode number. */
    readonly ino: number,
    /** The device, as `major:minor`. */
    readonly devMajor = 0,
    readonly devMinor = 0,
    /** Opened for reading / writing (a shared writable mapping needs `writable`). */
    readonly readable = true,
    readonly writable = true,
    /** The file's own vm_operations (from its filesystem); null: generic file pages. */
    readonly vmOps: VmOperations | null = null,
    /**
     * The shmem file behind one `MAP_SHARED|MAP_ANONYMOUS` mapping (`shmem_zero_setup`): each
     * such mapping is its own file, so two never merge and none gets an anon_vma. /proc/pid/maps
     * shows it here like anonymous memory (Linux shows `/dev/zero (deleted)`).
     */
    readonly anonShared = false,
  ) {}

  /** The shmem file of a new shared anonymous mapping, numbered `ino` within its mm. */
  static anonShared(ino: number): MmFile {
    return new MmFile('/dev/zero (deleted)', ino, 0, 1, true, true, null, true);
  }
}

/**
 * An anon_vma: the reverse-map anchor of a VMA's anonymous pages. Two VMAs merge only with the
 * same anon_vma (or when one has none yet). A child's anon_vma after fork points to its parent's.
 */
export class AnonVma {
  constructor(readonly parent: AnonVma | null = null) {}
}

/** What a fault handler is asked (`struct vm_fault`). */
export interface VmFault {
  readonly vma: Vma;
  readonly address: number;
  /** Page offset in the file of the faulting page. */
  readonly pgoff: number;
  readonly write: boolean;
  readonly thread: SimThread;
}

/** A fault handler's answer: a page for the file offset, or a fault error. */
export type VmFaultResult =
  { readonly kind: 'page'; readonly page: number } | { readonly kind: 'sigbus' } | { readonly kind: 'oom' } | { readonly kind: 'retry' };

/**
 * `vm_operations_struct`: the hooks a subsystem attaches to its VMAs. Hooks are generators so
 * they can take locks and touch instrumented state; each runs under what the lock policy
 * guarantees at its call site (see `LockPolicy.provides`).
 */
export interface VmOperations {
  /** The subsystem, for reports. */
  readonly name: string;
  /** A VMA was duplicated (split, fork, mremap copy). */
  open?(vma: Vma, thread: SimThread): MmGen<void>;
  /** A VMA goes away (unmap, merge removal is forbidden for VMAs with `close`). */
  close?(vma: Vma, thread: SimThread): MmGen<void>;
  /** Supply the page at `vmf.pgoff`. */
  fault?(vmf: VmFault): MmGen<VmFaultResult>;
  /** A read-only page of a shared mapping is about to become writable. */
  pageMkwrite?(vmf: VmFault): MmGen<VmFaultResult>;
  /** The VMA was moved by mremap to `vma.start`. */
  mremap?(vma: Vma, thread: SimThread): MmGen<void>;
  /** A name for `/proc/pid/maps` (like `[vdso]`), or null. */
  vmaName?(vma: Vma): string | null;
}

/**
 * A virtual memory area: `[start, end)`, page-aligned, with the same flags, backing and
 * protection throughout (`struct vm_area_struct`).
 *
 * Lock rules (global-rwsem; docs/locking.md has every policy):
 * - `start`, `end`, `pgoff`, `flags`, `anonVma`: written under mmap_sem write; read under
 *   mmap_sem read or write. Stack growth writes `start` under mmap_sem read plus the mm's
 *   page_table_lock.
 */
export class Vma {
  /**
   * The VMA's range lock (vma-range, hybrid: `vm_area_lock`), shared by VMAs split from one
   * another. Written under: the policy's own locking. Read under: the same.
   */
  areaLock: unknown = null;
  /** per-vma (6.4+): the `vm_lock_seq` that marks the VMA write-locked for `mm.mmLockSeq`. */
  vmLockSeq = -1;
  /** per-vma: the VMA's read/write lock, created on first use. */
  vmLock: unknown = null;
  /** A policy's bookkeeping the mm never reads. */
  policyData: unknown = null;
  /** Detached from the tree (unmapped or merged away): lookups that raced must revalidate. */
  detached = false;
  /** A user-given name (`PR_SET_VMA_ANON_NAME`), shown as `[anon:name]`; or a special name like `[vdso]`. */
  name: string | null = null;

  constructor(
    /** Written under: the policy's write lock on the VMA (global-rwsem: mmap_sem write; stack growth: see above). Read under: its read lock. */
    public start: number,
    /** Written under: the policy's write lock on the VMA. Read under: its read lock. */
    public end: number,
    /** `VM_*` flags. Written under: the policy's write lock on the VMA (`vmaAssertWriteLocked`). */
    public flags: number,
    /** Offset of `start` in the file, in pages (anonymous: start >> PAGE_SHIFT, as the kernel does). */
    public pgoff: number,
    public file: MmFile | null,
    public anonVma: AnonVma | null,
    public vmOps: VmOperations | null,
    /**
     * A dummy VMA holds a range lock over a hole (range-lock policies, R3): it occupies address
     * space for `get_unmapped_area` but is never visible to lookups, maps or user space.
     */
    readonly dummy = false,
  ) {}

  get length(): number {
    return this.end - this.start;
  }

  get pages(): number {
    return (this.end - this.start) / PAGE_SIZE;
  }

  /** The file page offset of `addr` inside this VMA. */
  pgoffOf(addr: number): number {
    return this.pgoff + Math.floor((addr - this.start) / PAGE_SIZE);
  }

  isAnonymous(): boolean {
    return this.file === null && this.vmOps === null;
  }

  isShared(): boolean {
    return (this.flags & VM_MAYSHARE) !== 0;
  }

  /** `vma_is_accessible()`: any of read, write, exec. */
  isAccessible(): boolean {
    return (this.flags & (VM_READ | VM_WRITE | VM_EXEC)) !== 0;
  }

  toString(): string {
    return `${hex(this.start)}-${hex(this.end)}`;
  }
}

/** `vm_start_gap()`: a stack growing down keeps a guard gap below it free. */
export function vmStartGap(vma: Vma): number {
  if ((vma.flags & VM_GROWSDOWN) === 0) return vma.start;
  return Math.max(0, vma.start - STACK_GUARD_GAP);
}

/** `vm_end_gap()` (no VM_GROWSUP on x86-64). */
export function vmEndGap(vma: Vma): number {
  return vma.end;
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}
