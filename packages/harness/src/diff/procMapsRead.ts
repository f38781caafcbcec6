/**
 * A user thread reading /proc/self/maps, the way the kernel's seq_file walk reads it
 * (`fs/proc/task_mmu.c`: `m_start`, `m_next`, `show_map`, `m_stop`), in one of its two lockings:
 *
 * - `mmap-lock` (every kernel up to 6.16): each `read()` call takes the whole-mm read lock
 *   (`mmap_read_lock`; here the policy's `lockAll(mm, 'read')`), renders lines until the page-sized
 *   buffer is full, and drops the lock when the call returns. One call is a consistent snapshot;
 *   Documentation/filesystems/proc.rst: "reading /proc/PID/maps or /proc/PID/smaps is inherently
 *   racy (consistent output can be achieved only in the single read call)".
 * - `vma-lock` (Linux 6.17, "fs/proc/task_mmu: read proc/pid/maps under per-vma lock"): the walk
 *   finds the next VMA locklessly (under RCU) and stabilises that one VMA with its own read lock
 *   (`lock_next_vma`: `vma_start_read`, falling back to mmap_lock read for the one VMA), so "a
 *   concurrently modified vma is reported either in its original form or after it was
 *   modified" — and a VMA moved across the walk's position by mremap is missed or shown twice,
 *   even within one `read()`. The per-VMA stabilisation here is the policy's fault-side request,
 *   `lockForFault(mm, addr)`: the lock that makes the VMA at an address stable.
 */
import { type MmGen, type MmLockGuard, type MmTask, PAGE_SIZE, type Vma, hex, mapsLine } from '@vmalock/core';

/** How a maps read locks the address space. */
export type MapsLocking = 'mmap-lock' | 'vma-lock';

/**
 * How the kernel a policy stands for reads /proc/pid/maps. Per-VMA reading came with per-VMA
 * locks (6.17), so `per-vma` reads that way; `vma-range`, the seed's design without mmap_sem,
 * reads as its analogue, each VMA under its own area lock (a whole-space read lock would stop
 * every writer for the length of the read, the priority inversion 6.17 set out to end). The
 * policies that keep one lock over the whole mm (global-rwsem, hybrid, spf, range-lock) read
 * under it.
 */
export function mapsLockingOf(policy: string): MapsLocking {
  return policy === 'per-vma' || policy === 'vma-range' ? 'vma-lock' : 'mmap-lock';
}

/** One line of a maps read: the range (to check) and the text (to show). */
export interface MapsEntry {
  readonly start: number;
  readonly end: number;
  readonly line: string;
}

/** Bound on re-finding one VMA that moved while the walk locked it (the kernel retries until it holds). */
const relookupsMax = 64;

/**
 * Read /proc/self/maps to EOF with `read()` calls of `bufferBytes` (seq_file's page-sized buffer);
 * the entries in the order the reads returned them. Context: no mm lock held; may sleep.
 */
export function* readProcMaps(task: MmTask, locking: MapsLocking, bufferBytes = PAGE_SIZE): MmGen<MapsEntry[]> {
  const entries: MapsEntry[] = [];
  let pos = 0;
  // Each read() call resumes at the address where the last one stopped (`m->version`/`last_addr`).
  for (let calls = 0; ; calls++) {
    if (calls > 1_000_000) throw new Error('readProcMaps: no progress (a walk that never ends)');
    const got = locking === 'mmap-lock' ? yield* readCallMmapLocked(task, pos, bufferBytes) : yield* readCallVmaLocked(task, pos, bufferBytes);
    entries.push(...got.entries);
    if (got.eof) return entries;
    pos = got.next;
  }
}

interface ReadCall {
  readonly entries: MapsEntry[];
  readonly next: number;
  readonly eof: boolean;
}

/** One read() under the whole-mm read lock: a consistent snapshot of what fits in the buffer. */
function* readCallMmapLocked(task: MmTask, pos: number, bufferBytes: number): MmGen<ReadCall> {
  const { mm, thread } = task;
  const guard = yield* mm.policy.lockAll(mm, thread, 'read');
  const entries: MapsEntry[] = [];
  let bytes = 0;
  let next = pos;
  let eof = true;
  for (let vma = mm.findVma(pos); vma !== null; vma = mm.nextVma(vma)) {
    const line = mapsLine(mm, vma);
    if (bytes + line.length + 1 > bufferBytes && entries.length > 0) {
      eof = false;
      break;
    }
    entries.push({ start: vma.start, end: vma.end, line });
    bytes += line.length + 1;
    next = vma.end;
  }
  yield* mm.policy.unlock(guard);
  return { entries, next, eof };
}

/** One read() under per-VMA locks: each VMA stable on its own while its line is rendered. */
function* readCallVmaLocked(task: MmTask, pos: number, bufferBytes: number): MmGen<ReadCall> {
  const { mm } = task;
  const entries: MapsEntry[] = [];
  let bytes = 0;
  let next = pos;
  for (;;) {
    const found = yield* lockNextVma(task, next);
    if (found === null) return { entries, next, eof: true };
    const { vma, guard } = found;
    const line = mapsLine(mm, vma);
    const entry = { start: vma.start, end: vma.end, line };
    yield* mm.policy.unlock(guard);
    if (bytes + line.length + 1 > bufferBytes && entries.length > 0) return { entries, next, eof: false };
    entries.push(entry);
    bytes += line.length + 1;
    next = entry.end;
  }
}

/**
 * `lock_next_vma()`: the first VMA ending above `pos`, found without a lock and then locked
 * with the policy's per-address lock; looked up again under it, since it may have moved,
 * shrunk or gone between the lookup and the lock (then: unlock and retry).
 */
function* lockNextVma(task: MmTask, pos: number): MmGen<{ vma: Vma; guard: MmLockGuard } | null> {
  const { mm } = task;
  for (let attempt = 0; attempt < relookupsMax; attempt++) {
    const seen = mm.findVma(pos);
    if (seen === null) return null;
    const at = Math.max(seen.start, pos);
    const guard = yield* mm.policy.lockForFault(mm, task.thread, at);
    const now = mm.findVma(pos);
    if (now === seen && now.start <= at && at < now.end) {
      if (mm.policy.isVmaLocked(guard, now)) return { vma: now, guard };
      yield* mm.policy.unlock(guard);
      throw new Error(`readProcMaps: ${mm.policy.name} does not lock the VMA at ${hex(at)} for a fault (a speculative policy?): read maps with 'mmap-lock'`);
    }
    yield* mm.policy.unlock(guard);
  }
  throw new Error(`readProcMaps: the VMA after ${hex(pos)} kept changing under the walk (${relookupsMax} lookups)`);
}
