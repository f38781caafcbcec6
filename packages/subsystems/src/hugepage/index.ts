// The huge-page subsystems (issue 5): khugepaged's collapse and the THP fault/split paths, each
// legacy and converted. Not exported from the package index yet: the lead wires it.
export { type Khugepaged, khugepaged } from './khugepaged.js';
export { type Thp, thp } from './thp.js';
export {
  HPAGE_PMD_NR,
  HUGEPAGE_AREAS,
  type HugePmdHit,
  hugePmdsIn,
  mapHugepageAreas,
  mprotectReadOnly,
  pmdNone,
  randomAreaPage,
  thpSuitable,
} from './hugepageOps.js';
