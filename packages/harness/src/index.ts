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
export { type FlagOptions, type Verdict, flag, schedulesToFirstFinding } from './flag/flag.js';
export { type PhaseWiring, type ProcessSpec, type WiredProcess, wireMachine } from './wiring/machine.js';
export { SubsystemLoadError, loadSubsystemFile } from './wiring/loadSubsystem.js';
