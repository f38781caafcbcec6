// The small plan the harness tests share (run, shard, report, replay): one pft process with
// pkeys attached; a global-rwsem baseline, then vma-range with pkeys still legacy (pkeys breaks
// there: findings), then hybrid. No assertions here.

/** How a test wants the small plan. */
export interface SmallPlanOptions {
  /** Whether the vma-range phase's no-findings gate blocks the phases after it (default true). */
  readonly blocking?: boolean;
  /** A no-findings gate of this many schedules in the last (hybrid) phase too (default none). */
  readonly afterSchedules?: number;
  /** pft's pages per thread (default: the workload's own). */
  readonly pagesPerThread?: number;
  /** Keep the last (hybrid) phase (default true). */
  readonly after?: boolean;
  /** The plan's name (default `small`). */
  readonly name?: string;
}

/** The small plan's YAML (seed 3). */
export function smallPlanYaml(o: SmallPlanOptions = {}): string {
  const workload = o.pagesPerThread === undefined ? '{ name: pft }' : `{ name: pft, params: { pagesPerThread: ${o.pagesPerThread} } }`;
  const lines = [
    `name: ${o.name ?? 'small'}`,
    'seed: 3',
    'processes:',
    '  - name: app',
    `    workload: ${workload}`,
    '    threads: 2',
    '    cpus: 4',
    '    subsystems: [pkeys]',
    'phases:',
    '  - name: baseline',
    '    policy: global-rwsem',
    '  - name: legacy-on-vma-range',
    '    policy: vma-range',
    '    gates:',
    `      - { kind: no-findings, schedules: 20${o.blocking === false ? ', blocking: false' : ''} }`,
  ];
  if (o.after !== false) {
    lines.push('  - name: after', '    policy: hybrid', '    gates:');
    if (o.afterSchedules !== undefined) lines.push(`      - { kind: no-findings, schedules: ${o.afterSchedules} }`);
    lines.push('      - { kind: throughput, process: app, atLeastPercentOfBaseline: 10 }');
  }
  return `${lines.join('\n')}\n`;
}
