// The public API of @vmalock/core. Explicit named exports only.
export { CacheLine, type CostModel, MemoryBus, type WorkKind, defaultCostModel } from './sim/costModel.js';
export { type MachineProfile, profileByName, profileNames } from './sim/profiles.js';
export {
  EINTR,
  Effect,
  LockMode,
  Op,
  type SpawnRequest,
  callRcu,
  join,
  kill,
  opNames,
  rcuReadLock,
  rcuReadUnlock,
  spawn,
  spend,
  synchronizeRcu,
  yieldNow,
} from './sim/effect.js';
export {
  Engine,
  type EngineObserver,
  type LockStats,
  type Program,
  type RunFailure,
  type RunOptions,
  type RunResult,
  type RunStatus,
  type SimSetup,
  type StrategyName,
  type ThreadSummary,
  type WaitEdge,
  defaultCpus,
  defaultPctDepth,
  defaultPctSteps,
  defaultStepLimit,
  runProgram,
  stepTraceNs,
  strategyNames,
} from './sim/engine.js';
export { type ExploreOptions, type ExploreResult, explore } from './sim/explore.js';
export { type LockHost, type LockWaiter, SimLock, WaitKind, modeName } from './sim/lock.js';
export { Mutex, SpinLock } from './sim/mutex.js';
export { Prng, PrngStream } from './sim/prng.js';
export { type ReaderWakeup, RwSemaphore, maxReadersWakeup } from './sim/rwSemaphore.js';
export { RangeLock, RangeLockRequest } from './sim/rangeLock.js';
export { ScheduleRecorder, decodeSchedule, encodeSchedule } from './sim/schedule.js';
export { SeqCount } from './sim/seqCount.js';
export { SharedLocation } from './sim/sharedLocation.js';
export { type PctReport, PctStrategy, RandomStrategy, ScheduleDivergence, ScriptedStrategy, TimedStrategy } from './sim/strategies.js';
export { RunnableSet, type Strategy } from './sim/strategy.js';
export { type HeldLock, type Holdable, SimThread, type SpawnOptions, type ThreadBody, ThreadState } from './sim/thread.js';
export { WaitQueue } from './sim/waitQueue.js';
export type { Trace, TraceEvent, TraceObject } from './trace/traceEvent.js';
export { type PerfettoEvent, type PerfettoOptions, type PerfettoTrace, perfettoJson, perfettoPid, toPerfetto } from './trace/perfetto.js';
export { type PerfettoArg, type PerfettoMark, type PerfettoPhase } from './trace/perfetto.js';
export {
  DEFAULT_MAX_MAP_COUNT,
  EACCES,
  EAGAIN,
  EBADF,
  EBUSY,
  EEXIST,
  EFAULT,
  EINVAL,
  ENFILE,
  ENODEV,
  ENOENT,
  ENOMEM,
  EOPNOTSUPP,
  EOVERFLOW,
  EPERM,
  HPAGE_PMD_SHIFT,
  HPAGE_PMD_SIZE,
  MADV_COLD,
  MADV_COLLAPSE,
  MADV_DODUMP,
  MADV_DOFORK,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_DONTNEED_LOCKED,
  MADV_FREE,
  MADV_HUGEPAGE,
  MADV_HWPOISON,
  MADV_KEEPONFORK,
  MADV_MERGEABLE,
  MADV_NOHUGEPAGE,
  MADV_NORMAL,
  MADV_PAGEOUT,
  MADV_POPULATE_READ,
  MADV_POPULATE_WRITE,
  MADV_RANDOM,
  MADV_REMOVE,
  MADV_SEQUENTIAL,
  MADV_SOFT_OFFLINE,
  MADV_UNMERGEABLE,
  MADV_WILLNEED,
  MADV_WIPEONFORK,
  MAP_32BIT,
  MAP_ANONYMOUS,
  MAP_DENYWRITE,
  MAP_EXECUTABLE,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_HUGETLB,
  MAP_LOCKED,
  MAP_NONBLOCK,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_STACK,
  MAP_SYNC,
  MAP_TYPE,
  MAP_UNINITIALIZED,
  MLOCK_ONFAULT,
  MMAP_MIN_ADDR,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  PAGE_SHIFT,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_NONE,
  PROT_READ,
  PROT_SEM,
  PROT_WRITE,
  STACK_GUARD_GAP,
  TASK_SIZE,
  VM_ACCOUNT,
  VM_DONTCOPY,
  VM_DONTDUMP,
  VM_DONTEXPAND,
  VM_EXEC,
  VM_GROWSDOWN,
  VM_HUGEPAGE,
  VM_HUGETLB,
  VM_IO,
  VM_LOCKED,
  VM_LOCKED_MASK,
  VM_LOCKONFAULT,
  VM_MAYEXEC,
  VM_MAYREAD,
  VM_MAYSHARE,
  VM_MAYWRITE,
  VM_MIXEDMAP,
  VM_NOHUGEPAGE,
  VM_NONE,
  VM_NORESERVE,
  VM_PFNMAP,
  VM_RAND_READ,
  VM_READ,
  VM_SEQ_READ,
  VM_SHARED,
  VM_SPECIAL,
  VM_SYNC,
  VM_UFFD_MISSING,
  VM_UFFD_WP,
  VM_WIPEONFORK,
  VM_WRITE,
  errnoByName,
  errnoNames,
  madviseNames,
  mapFlagNames,
  mlockFlagNames,
  mremapFlagNames,
  protNames,
} from './mm/uapi.js';
export { BRK_VM_FLAGS, sysBrk } from './mm/brk.js';
export { type FaultAccess, type FaultResult, accessAllowed, anonVmaPrepare, faultLocked, getUserPages, handleMmFault, populate } from './mm/fault.js';
export { dupMmap, exitMmap } from './mm/fork.js';
export { MmInvariantError, checkMmInvariants } from './mm/invariants.js';
export { type HookSite, type LockPolicy, type MmLockGuard, type ProvidedLock } from './mm/lockPolicy.js';
export { sysMadvise } from './mm/madvise.js';
export { accountable, mmapRegion, sysMmap, vmProtBits } from './mm/mmap.js';
export {
  LockAssertionError,
  mmapAssertLocked,
  mmapAssertWriteLocked,
  mmapLegacyLock,
  mmapLegacyUnlock,
  rangeAssertCovered,
  vmaAssertLocked,
  vmaAssertWriteLocked,
  vmaStartWriteRange,
} from './mm/mmapLock.js';
export { MMAP_MIN_GAP, type MmLayout, MmStruct, TASK_UNMAPPED_BASE, type VmaEvents } from './mm/mmStruct.js';
export { sysMprotect } from './mm/mprotect.js';
export { sysMremap } from './mm/mremap.js';
export { detachRange, sysMunmap, unmapRange } from './mm/munmap.js';
export { Page, PageTables, PmdEntry, PTRS_PER_PTE, type PteView, PteTable, zeroPage } from './mm/pageTables.js';
export { MapsParseError, loadMaps, mapsLine, renderMaps, specialMapping, vmaDisplayName } from './mm/procMaps.js';
export { type MmTask, pageAlign } from './mm/task.js';
export { AnonVma, type MmGen, MmFile, Vma, type VmFault, type VmFaultResult, type VmOperations, hex, vmEndGap, vmStartGap } from './mm/vma.js';
export {
  type VmaProps,
  anonVmaCompatible,
  canMergeAfter,
  canMergeBefore,
  mayRemove,
  propsMergeable,
  shareAreaLock,
  splitVma,
  splitVmaUnchecked,
  vmaMergeNewRange,
  vmaModify,
} from './mm/vmaMerge.js';
export { type TreeEntry, type UnmappedAreaRequest, VmaTree, type VmaTreeOptions } from './mm/vmaTree.js';
export { runMmOp } from './mm/runOp.js';
export { archUnmap, invalidateRangeEnd, invalidateRangeStart } from './mm/notify.js';
export {
  type AssumedLock,
  type Assumption,
  type AssumptionVerdict,
  ASSUMPTIONS_KEY,
  type DeclaredAssumption,
  assumes,
  assumptionHits,
  checkAssumption,
  readAssumptions,
} from './subsys/assumptions.js';
export {
  type ArchHooks,
  type MmuNotifier,
  type Subsystem,
  SubsystemInvariantError,
  type SubsystemKind,
  type SubsystemProcess,
  type SubsystemVariant,
} from './subsys/subsystem.js';
export { type Finding, type FindingKind, type MinimiseOptions, findingId, foldMessage, minimiseSchedule, switchesOf } from './check/findings.js';
export {
  type HistoryOp,
  type LinearizabilityOptions,
  type LinearizabilityResult,
  type Mismatch,
  type PartitionKey,
  type SequentialModel,
  type SubHistoryVerdict,
  checkLinearizability,
  defaultStepBudget,
  formatLinearizability,
  partitionHistory,
} from './check/linearizability.js';
export {
  RaceDetector,
  type RaceAccess,
  type RaceAccessKind,
  type RaceDetectorOptions,
  type RaceHeldLock,
  type RaceReport,
  formatRaceReport,
} from './check/races.js';
export { Lockdep, type LockdepAcquisition, type LockdepDependency, type LockdepOptions, type LockdepReport, formatLockdepReport } from './check/lockdep.js';
export {
  type LockOrderDemonstrated,
  type LockOrderPossible,
  type LockOrderSearchOptions,
  type LockOrderVerdict,
  defaultLockOrderBudget,
  demonstrateLockOrder,
  lockOrderSignature,
} from './check/lockOrder.js';
