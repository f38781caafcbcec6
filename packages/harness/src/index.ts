// The public API of @vmalock/harness. Explicit named exports only.
export { type CliIo, ExitCode, UsageError, formatTable, runCli, writeFileAtomic } from './cliApp.js';
export { type DemoParams, type DemoRun, defaultDemoParams, demoProgram, demoScalingThreads, runDemo } from './demo.js';
