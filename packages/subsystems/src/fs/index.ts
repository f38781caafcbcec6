// The filesystem family of mock subsystems (issue 5): a page-cache file with fault,
// page_mkwrite and truncate; userfaultfd ranges on a memfd mapping; the aio ring's pointer moved
// on mremap. Each comes legacy (leaning on mmap_sem) and converted (its own locking).
export { AIO_RING_PAGES, AIO_RING_SLOTS, type AioSubmission, AioRingBase, AioRingConverted, AioRingLegacy, aioring } from './aioring.js';
export {
  type CachedPage,
  PAGECACHE_PAGES_MAX,
  PAGECACHE_SLOTS,
  PAGECACHE_WINDOW,
  PageCacheBase,
  PageCacheConverted,
  PageCacheLegacy,
  pagecache,
  zapVmaPages,
} from './pagecache.js';
export {
  UFFD_MAPPING_PAGES,
  UFFD_SLOTS,
  UFFD_WINDOW,
  type UffdFault,
  type UffdRange,
  UserfaultfdBase,
  UserfaultfdConverted,
  UserfaultfdLegacy,
  coveredBy,
  cutRanges,
  rangeAt,
  userfaultfd,
} from './userfaultfd.js';
