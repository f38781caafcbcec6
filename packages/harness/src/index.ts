// The public API of @vmalock/harness. Explicit named exports only.
export { runCli } from './cliApp.js';
export { type CliIo, ExitCode, UsageError, formatTable, writeFileAtomic } from './cliSupport.js';
export { type ReplayMismatch, type ReplayOptions, type ReplayReport, groupTids, replayStrace } from './replay/traceReplay.js';
export {
  type StraceCall,
  type StraceEvent,
  type StraceExit,
  type StraceLog,
  type StraceMalformed,
  StraceParseError,
  type StraceResult,
  type StraceSignal,
  type StraceSyscall,
  parseStrace,
} from './strace/parseStrace.js';
export { type TaskRecord, parseTasks } from './strace/parseTasks.js';
export { type DemoParams, type DemoRun, defaultDemoParams, demoProgram, demoScalingThreads, runDemo } from './demo.js';
export {
  type FlagOptions,
  type FlagStrategy,
  type Verdict,
  flag,
  flagParallel,
  flagReplayTrace,
  flagStrategies,
  schedulesToFirstFinding,
} from './flag/flag.js';
export {
  type Divergence,
  type PolicyDiffOptions,
  type PolicyDiffResult,
  describeDivergence,
  explainDivergence,
  findDivergence,
  policyDiff,
} from './diff/diff.js';
export { DIFF_WORKLOADS, type DiffWorkload, diffWorkload, diffWorkloadNames } from './diff/workloads.js';
export { type FindingMark, type FindingTraceOptions, findingTrace } from './flag/findingTrace.js';
export { type PhaseWiring, type ProcessSpec, type WiredProcess, wireMachine } from './wiring/machine.js';
export { SubsystemLoadError, loadSubsystemFile } from './wiring/loadSubsystem.js';
export {
  OpCounter,
  WORKLOADS,
  type Workload,
  type WorkloadContext,
  type WorkloadName,
  WorkloadParamsError,
  type WorkloadRun,
  type WorkloadRunOptions,
  parseWorkloadParams,
  runWorkload,
  spawnWorkload,
  workloadByName,
  workloadNames,
  workloadProgram,
} from './workloads/index.js';
export { DEFAULT_PLAN_YAML } from './plan/defaultPlan.js';
export { type LoadedPlan, PlanError, loadPlan, loadResolvedPlan, parsePlan } from './plan/load.js';
export { type ResolvedPhase, type ResolvedPlan, resolvePlan } from './plan/resolve.js';
export { type Plan, planSchema } from './plan/schema.js';
export { type PhaseResult, type PlanRunResult, type RunPlanOptions, runPlan } from './run/runPlan.js';
export { LockWaits, type LockWaitSummary, percentile } from './run/lockWaits.js';
export { type HtmlReportExtra, renderHtmlReport } from './report/html.js';
export { type BenchRow, type BenchScalingOptions, benchScaling } from './bench/benchScaling.js';
