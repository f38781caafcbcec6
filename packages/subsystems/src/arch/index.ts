// The arch family of mock subsystems (ARCHITECTURE.md section 5): x86 protection keys, the
// per-mm vdso pointer, arch_unmap bookkeeping. The package index re-exports what it needs.
export { ARCH_MAX_PKEY, ENOSPC, PKEYS_ARENA, PKEYS_ARENA_PAGES, PkeysConverted, PkeysLegacy, type PkeysMm, pkeys } from './pkeys.js';
export { VDSO_LEN, VDSO_NAME, VDSO_SLOTS, VDSO_WINDOW, VdsoConverted, VdsoLegacy, type VdsoMm, vdso, vdsoReadRetriesMax } from './vdso.js';
export { ARCH_RANGE_PAGES_MAX, type ArchRange, ArchUnmapConverted, ArchUnmapLegacy, type ArchUnmapMm, archunmap, trimRanges } from './archUnmap.js';
