// The public API of @vmalock/core. Explicit named exports only.
export { CacheLine, type CostModel, defaultCostModel } from './sim/costModel.js';
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
export { ScheduleRecorder, decodeSchedule, encodeSchedule } from './sim/schedule.js';
export { SeqCount } from './sim/seqCount.js';
export { SharedLocation } from './sim/sharedLocation.js';
export { type PctReport, PctStrategy, RandomStrategy, ScheduleDivergence, ScriptedStrategy, TimedStrategy } from './sim/strategies.js';
export { RunnableSet, type Strategy } from './sim/strategy.js';
export { type HeldLock, type Holdable, SimThread, type SpawnOptions, type ThreadBody, ThreadState } from './sim/thread.js';
export { WaitQueue } from './sim/waitQueue.js';
export type { Trace, TraceEvent, TraceObject } from './trace/traceEvent.js';
export { type PerfettoEvent, type PerfettoOptions, type PerfettoTrace, perfettoJson, perfettoPid, toPerfetto } from './trace/perfetto.js';
