// The workloads' public surface (re-exported by the package's index).
export { OpCounter, type Workload, type WorkloadContext, type WorkloadName, WorkloadParamsError, WorkloadSetupError, workloadNameList } from './workload.js';
export { WORKLOADS, type WorkloadParams, parseWorkloadParams, spawnWorkload, workloadByName, workloadNames } from './registry.js';
export { type WorkloadRun, type WorkloadRunOptions, type WorkloadRunState, runWorkload, workloadProgram } from './run.js';
export { workloadDocsMarkdown } from './docs.js';
