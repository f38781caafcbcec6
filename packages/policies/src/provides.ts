import type { HookSite, ProvidedLock } from '@vmalock/core';

/** What each hook site runs under: a policy's `provides` table. */
export type ProvidesTable = Readonly<Record<HookSite, readonly ProvidedLock[]>>;

/**
 * The table of a policy whose one lock stands where mmap_sem stood before 6.4, in the modes
 * mmap_sem had at each site: read for faults, `get_user_pages` and munmap's cleanup after its
 * downgrade (the zap, `vm_ops->close`); write for every change; stack growth under read plus
 * `page_table_lock` (commit 4128997b5f0e). `overrides` replaces the sites a policy does
 * differently.
 */
export function providesLike(lock: ProvidedLock['lock'], overrides: Partial<Record<HookSite, readonly ProvidedLock[]>> = {}): ProvidesTable {
  const read: readonly ProvidedLock[] = [{ lock, mode: 'read' }];
  const write: readonly ProvidedLock[] = [{ lock, mode: 'write' }];
  return {
    fault: read,
    pageMkwrite: read,
    gup: read,
    stackGrowth: [...read, { lock: 'page_table_lock', mode: 'write' }],
    vmaOpen: write,
    vmaClose: read, // munmap closes VMAs after downgrading
    vmaMremap: write,
    fileMmap: write,
    mmapRegion: write,
    munmapRegion: read,
    archUnmap: write, // arch_unmap runs before munmap's downgrade
    mprotectFixup: write,
    mremapMove: write,
    fork: write,
    exit: write,
    ...overrides,
  };
}
