// The public API of @vmalock/policies. Explicit named exports only.
export { GlobalRwsemPolicy } from './globalRwsem.js';
export { POLICIES, type PolicyEntry, createPolicy, policyNames } from './registry.js';
export { HybridPolicy, VmAreaLock, VmaRangePolicy, type VmaRangeStats } from './vmaRange.js';
