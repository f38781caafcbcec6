// The public API of @vmalock/policies. Explicit named exports only.
export { GlobalRwsemPolicy } from './globalRwsem.js';
export { POLICIES, type PolicyEntry, type PolicyOption, type PolicyOptions, createPolicy, policyNames } from './registry.js';
export { HybridPolicy, VM_AREA_LOCK_CLASS, VmAreaLock, VmaRangePolicy, type VmaRangeStats, vmAreaLockOrder } from './vmaRange.js';
export { type PerVmaOptions, PerVmaPolicy, type VmaLockStats, vmaLockMissRetriesMax } from './perVma.js';
export { type SpfAbortReason, SpfPolicy, type SpfStats, spfAbortReasons, spfAbortTotal, spfStatsBalanced } from './spf.js';
export {
  RangeLockPolicy,
  type RangeLockPolicyOptions,
  type RangeLockRanges,
  type RangeLockStats,
  rangeLockOf,
  rangeLockRetriesMax,
  rangeLockStatsOf,
} from './rangeLockPolicy.js';
export {
  type MmHistoryOp,
  MmHistoryRecorder,
  type MmModelState,
  type MmResult,
  type MmWindow,
  describeMmCall,
  mmFingerprint,
  mmPartition,
  mmSequentialModel,
  recordedWorkload,
  replayCalls,
  workloadWindow,
} from './check/mmHistory.js';
