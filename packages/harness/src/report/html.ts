// The HTML report of a plan run: one self-contained index.html (no network access: uPlot, its
// CSS and the data are inlined), deterministic (the same result and extra data give the same
// bytes: no dates, no random ids). It shows the plan, seed and verdict; charts of each process's
// speed-up over the baseline across the phases, and, when the caller has them, throughput
// against threads per policy and lock wait distributions; then a section per phase with its
// processes, gates and findings (evidence, replay command, and a link to the finding's Perfetto
// trace when one was written). Every chart is a `[data-chart]` element that the page's script
// marks `data-rendered="true"` with `data-points="N"` once drawn, so a browser test can check it.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { PhaseFinding, PhaseResult, PlanRunResult } from '../run/runPlan.js';

/**
 * One measurement of a scaling run: a workload's throughput under a policy at a thread count.
 * Points that name a process are drawn in a chart per process (plan runs measure each process's
 * workload alone); points without one in a single chart.
 */
export interface ScalingPoint {
  readonly policy: string;
  readonly threads: number;
  /** Ops per simulated second (null: nothing was counted; not drawn). */
  readonly throughput: number | null;
  readonly process?: string;
  readonly workload?: string;
}

/**
 * How long threads waited for one lock (class) under one policy: percentiles in simulated ns.
 * With `phase`, the bar is labelled by the phase (a plan run's machine mixes policies).
 */
export interface LockWaitPoint {
  readonly policy: string;
  readonly lock: string;
  readonly p50Ns: number;
  readonly p90Ns: number;
  readonly p99Ns: number;
  readonly phase?: string;
}

/** What the report shows beyond the plan run itself. */
export interface HtmlReportExtra {
  /** Throughput against threads per policy (a chart; a note when absent or empty). */
  readonly scaling?: readonly ScalingPoint[];
  /** Lock wait distributions (a chart; a note when absent or empty). */
  readonly lockWaits?: readonly LockWaitPoint[];
  /** The ids of the findings whose trace was written to `traces/<id>.json` beside index.html. */
  readonly traces?: readonly string[];
}

/** A chart as the page's script draws it (categories: x is their index). */
interface ChartSpec {
  readonly name: string;
  readonly kind: 'line' | 'bars';
  readonly xLabel: string;
  readonly yLabel: string;
  /** How the page formats y values: a speed-up factor, ops per second, or nanoseconds. */
  readonly unit: 'x' | 'ops' | 'ns';
  readonly logX: boolean;
  readonly categories: readonly string[] | null;
  readonly x: readonly number[];
  readonly series: readonly { readonly label: string; readonly values: readonly (number | null)[] }[];
}

/** The chart library, read once from node_modules (the exact version in @vmalock/harness's dependencies). */
let library: { js: string; css: string } | undefined;
function uplot(): { js: string; css: string } {
  if (library === undefined) {
    const require = createRequire(import.meta.url);
    const js = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
    const css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
    // Inlined as they are: neither may close its element early.
    if (/<\/script/i.test(js) || /<\/style/i.test(css)) throw new Error('html report: uPlot contains </script> or </style> and cannot be inlined');
    library = { js, css };
  }
  return library;
}

/** Text or an attribute value, escaped for HTML. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** JSON safe inside a `<script>` element (no `</script>`, no `<!--`, no line separators). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** 1234567.8 -> "1,234,568" (by hand: the same on every ICU). */
function thousands(n: number): string {
  const s = String(Math.round(Math.abs(n)));
  return `${n < 0 ? '-' : ''}${s.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}`;
}

function ns(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} ms`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)} µs`;
  return `${thousands(n)} ns`;
}

/** Series in first-appearance order. */
function uniq<T>(xs: Iterable<T>): T[] {
  return [...new Set(xs)];
}

function speedupChart(r: PlanRunResult): ChartSpec {
  const processes = uniq(r.phases.flatMap((p) => p.processes.map((x) => x.name)));
  return {
    name: 'speedup',
    kind: 'line',
    xLabel: 'phase',
    yLabel: 'speed-up over baseline',
    unit: 'x',
    logX: false,
    categories: r.phases.map((p) => p.name),
    x: r.phases.map((_, i) => i),
    series: processes.map((name) => ({
      label: name,
      values: r.phases.map((p) => p.processes.find((x) => x.name === name)?.speedupOverBaseline ?? null),
    })),
  };
}

/** The scaling points grouped by process (one group, unnamed, when no point names one), in first-appearance order. */
function scalingGroups(points: readonly ScalingPoint[]): { process: string | undefined; workload: string | undefined; points: ScalingPoint[] }[] {
  const groups = new Map<string | undefined, ScalingPoint[]>();
  for (const p of points) {
    let g = groups.get(p.process);
    if (g === undefined) groups.set(p.process, (g = []));
    g.push(p);
  }
  return [...groups].map(([process, pts]) => ({ process, workload: pts.find((p) => p.workload !== undefined)?.workload, points: pts }));
}

function scalingChart(name: string, points: readonly ScalingPoint[]): ChartSpec {
  const threads = uniq(points.map((p) => p.threads)).sort((a, b) => a - b);
  const policies = uniq(points.map((p) => p.policy));
  return {
    name,
    kind: 'line',
    xLabel: 'threads',
    yLabel: 'throughput (ops/s)',
    unit: 'ops',
    logX: threads.length > 1 && threads[0]! > 0 && threads[threads.length - 1]! / threads[0]! >= 4,
    categories: null,
    x: threads,
    series: policies.map((policy) => ({
      label: policy,
      values: threads.map((t) => points.find((p) => p.policy === policy && p.threads === t)?.throughput ?? null),
    })),
  };
}

function lockWaitChart(points: readonly LockWaitPoint[]): ChartSpec {
  // Nested bars per (policy, lock): p99 widest at the back, p50 narrowest in front.
  return {
    name: 'lock-waits',
    kind: 'bars',
    xLabel: points.some((p) => p.phase !== undefined) ? 'phase · lock' : 'policy · lock',
    yLabel: 'wait',
    unit: 'ns',
    logX: false,
    categories: points.map((p) => `${p.phase ?? p.policy} · ${p.lock}`),
    x: points.map((_, i) => i),
    series: [
      { label: 'p99', values: points.map((p) => p.p99Ns) },
      { label: 'p90', values: points.map((p) => p.p90Ns) },
      { label: 'p50', values: points.map((p) => p.p50Ns) },
    ],
  };
}

const points = (c: ChartSpec): number => c.series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);

/** A chart's element, a table of its data (folded), or a note when it has nothing to draw. */
function chartBlock(name: string, title: string, chart: ChartSpec | null, note: string, table: () => string): string {
  const h = `<h3>${escapeHtml(title)}</h3>\n`;
  if (chart === null || points(chart) === 0) return `<div class="chart-block">\n${h}<p class="note" data-note="${name}">${escapeHtml(note)}</p>\n</div>\n`;
  return `<div class="chart-block">\n${h}<div class="chart" data-chart="${name}" data-rendered="false"></div>\n<details class="chart-data"><summary>data</summary>\n${table()}</details>\n</div>\n`;
}

function table(head: readonly string[], rows: readonly (readonly string[])[], cls = ''): string {
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const tr = rows.map((row) => `<tr>${row.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table${cls === '' ? '' : ` class="${cls}"`}>\n<thead><tr>${th}</tr></thead>\n<tbody>\n${tr}\n</tbody>\n</table>\n`;
}

const statusBadge = (status: string): string => `<span class="status status-${escapeHtml(status)}">${escapeHtml(status)}</span>`;

function findingBlock(f: PhaseFinding, phaseIndex: number, traces: ReadonlySet<string>): string {
  const e = escapeHtml;
  const facts = [
    `<dt>kind</dt><dd>${e(f.kind)}</dd>`,
    `<dt>subsystem</dt><dd>${e(f.subsystem)} (${e(f.variant)})</dd>`,
    `<dt>policy</dt><dd>${e(f.policy)}</dd>`,
    `<dt>processes</dt><dd>${e(f.processes.join(', '))}</dd>`,
    `<dt>declared</dt><dd>${f.declared === null ? '-' : f.declared ? 'yes' : '<strong>no (undeclared)</strong>'}</dd>`,
  ];
  const trace = traces.has(f.id)
    ? `<p class="trace"><a href="traces/${e(encodeURIComponent(f.id))}.json">Perfetto trace: traces/${e(f.id)}.json</a> (open it in ui.perfetto.dev)</p>\n`
    : '';
  return (
    `<article class="finding" id="finding-${phaseIndex}-${e(f.id)}" data-finding-id="${e(f.id)}">\n` +
    `<h4><code>${e(f.id)}</code></h4>\n<dl>${facts.join('')}</dl>\n` +
    `<p class="label">replay</p>\n<pre class="replay"><code>${e(f.replay)}</code></pre>\n${trace}` +
    `<details class="evidence"${f.declared === false ? ' open' : ''}><summary>evidence</summary>\n<pre class="evidence">${e(f.evidence)}</pre>\n</details>\n</article>\n`
  );
}

function phaseSection(p: PhaseResult, i: number, traces: ReadonlySet<string>): string {
  const e = escapeHtml;
  const out = [`<section class="phase" id="phase-${i}" data-phase="${e(p.name)}" data-status="${e(p.status)}">\n`];
  out.push(`<h2>${i + 1}. ${e(p.name)} ${statusBadge(p.status)}</h2>\n<p>policy <code>${e(p.policy)}</code>`);
  if (p.machine !== null) out.push(`; machine run: ${e(p.machine.status)}${p.machine.status === 'ok' ? '' : ` — ${e(p.machine.summary)}`}`);
  out.push('</p>\n');
  if (p.processes.length > 0)
    out.push(
      '<h3>Processes</h3>\n',
      table(
        ['process', 'policy', 'throughput (ops/s)', 'vs baseline', 'converted', 'legacy'],
        p.processes.map((x) => [
          e(x.name),
          `<code>${e(x.policy)}</code>`,
          x.throughput === null ? '-' : thousands(x.throughput),
          x.speedupOverBaseline === null ? '-' : `${x.speedupOverBaseline.toFixed(2)}x`,
          x.converted.length === 0 ? 'none' : e(x.converted.join(', ')),
          x.legacy.length === 0 ? 'none' : e(x.legacy.join(', ')),
        ]),
        'processes',
      ),
    );
  if (p.gates.length > 0)
    out.push(
      '<h3>Gates</h3>\n',
      table(
        ['gate', 'kind', 'blocking', 'verdict', 'detail'],
        p.gates.map((g) => [
          e(g.name),
          e(g.kind),
          g.blocking ? 'yes' : 'no (experiment)',
          p.status === 'blocked' ? statusBadge('blocked') : g.passed ? statusBadge('passed') : statusBadge('failed'),
          e(g.detail),
        ]),
        'gates',
      ),
    );
  out.push(`<h3>Findings (${p.findings.length})</h3>\n`);
  if (p.findings.length === 0) out.push(`<p class="note">${p.status === 'blocked' ? 'Not run.' : 'None.'}</p>\n`);
  else out.push(`<div class="findings">\n${p.findings.map((f) => findingBlock(f, i, traces)).join('')}</div>\n`);
  out.push('</section>\n');
  return out.join('');
}

const STYLE = `
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em 2em 3em; color: #1a1a1a; line-height: 1.4; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
code, pre { font-family: "DejaVu Sans Mono", monospace; font-size: 0.88em; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.5em; overflow-x: auto; white-space: pre; }
.status { display: inline-block; border-radius: 3px; padding: 0 0.4em; font-size: 0.8em; font-weight: bold; color: #fff; vertical-align: middle; }
.status-passed { background: #2e7d32; } .status-failed { background: #c62828; } .status-blocked { background: #757575; }
.verdict { font-size: 1.1em; }
.note { color: #666; font-style: italic; }
.chart-block { margin: 1em 0 2em; }
.chart { min-height: 360px; }
.finding { border-left: 4px solid #c62828; padding: 0.2em 0 0.2em 1em; margin: 1em 0; }
.finding h4 { margin: 0.2em 0; }
.finding dl { display: grid; grid-template-columns: max-content auto; gap: 0 1em; margin: 0.3em 0; }
.finding dt { color: #555; } .finding dd { margin: 0; }
.label { margin: 0.3em 0 0; color: #555; }
`;

/** Draws every chart of the embedded data with uPlot, then marks it rendered with its point count. */
const CLIENT = `
(function () {
  'use strict';
  var report = JSON.parse(document.getElementById('report-data').textContent);
  var palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
  var barColors = ['#f4b183', '#e06666', '#8b1a1a'];
  function group(n) { return String(Math.round(Math.abs(n))).replace(/\\B(?=(\\d{3})+(?!\\d))/g, ','); }
  function fmt(unit, v) {
    if (v === null || v === undefined) return '-';
    if (unit === 'x') return v.toFixed(2) + 'x';
    if (unit === 'ns') return v >= 1e6 ? (v / 1e6).toFixed(2) + ' ms' : v >= 1e3 ? (v / 1e3).toFixed(1) + ' \\u00b5s' : group(v) + ' ns';
    return v >= 1e6 ? (v / 1e6).toFixed(2) + 'M' : v >= 1e3 ? (v / 1e3).toFixed(1) + 'k' : group(v);
  }
  function draw(c, el) {
    var cats = c.categories;
    var width = Math.max(480, Math.min(el.clientWidth || 960, 1150));
    var xAxis = { label: c.xLabel, stroke: '#333', grid: { stroke: '#eee' } };
    var xScale = { time: false };
    if (cats) {
      xScale.range = function () { return [-0.5, cats.length - 0.5]; };
      xAxis.splits = function () { return cats.map(function (_, i) { return i; }); };
      xAxis.values = function (u, splits) { return splits.map(function (i) { return cats[i] === undefined ? '' : cats[i]; }); };
      var longest = cats.reduce(function (n, s) { return Math.max(n, s.length); }, 0);
      if (cats.length > 3 && longest * 7 > width / cats.length) { xAxis.rotate = -30; xAxis.size = Math.min(180, 30 + longest * 5); }
    } else {
      // Thread counts are discrete: a tick at each measured one.
      xAxis.splits = function () { return c.x; };
      xAxis.values = function (u, splits) { return splits.map(function (v) { return String(v); }); };
      if (c.logX) { xScale.distr = 3; xScale.log = 2; }
    }
    var series = [{ label: c.xLabel }];
    if (cats) series[0].value = function (u, v) { return v === null || cats[v] === undefined ? '-' : cats[v]; };
    c.series.forEach(function (s, i) {
      var o = { label: s.label, width: 2, spanGaps: true, value: function (u, v) { return fmt(c.unit, v); } };
      if (c.kind === 'bars') {
        var color = barColors[i % barColors.length];
        o.stroke = color;
        o.fill = color;
        o.paths = uPlot.paths.bars({ size: [0.75 - 0.2 * i, 120] });
        o.points = { show: false };
      } else {
        o.stroke = palette[i % palette.length];
        o.points = { show: true, size: 8 };
      }
      series.push(o);
    });
    var yScale = { range: function (u, min, max) { return [0, max > 0 ? max * 1.12 : 1]; } };
    var yAxis = { label: c.yLabel, size: 80, stroke: '#333', grid: { stroke: '#eee' }, values: function (u, splits) { return splits.map(function (v) { return fmt(c.unit, v); }); } };
    var height = 340;
    if (cats && c.kind === 'bars' && cats.length > 8) {
      // Many bars: horizontal, one readable label per row, the first at the top.
      xScale.ori = 1;
      xScale.dir = -1;
      yScale.ori = 0;
      yScale.dir = 1;
      xAxis.side = 3;
      xAxis.rotate = 0;
      xAxis.size = Math.min(360, 24 + 7 * cats.reduce(function (n, s) { return Math.max(n, s.length); }, 0));
      yAxis.side = 2;
      yAxis.size = 50;
      yAxis.space = 70;
      height = Math.max(340, 120 + 22 * cats.length);
    }
    var opts = {
      width: width,
      height: height,
      series: series,
      scales: { x: xScale, y: yScale },
      axes: [xAxis, yAxis],
      cursor: { drag: { x: false, y: false } },
    };
    var u = new uPlot(opts, [c.x].concat(c.series.map(function (s) { return s.values; })), el);
    var n = 0;
    u.data.slice(1).forEach(function (vs) { vs.forEach(function (v) { if (v !== null && v !== undefined) n++; }); });
    el.setAttribute('data-points', String(n));
    el.setAttribute('data-rendered', 'true');
  }
  report.charts.forEach(function (c) {
    var el = document.querySelector('[data-chart="' + c.name + '"]');
    if (!el) return;
    try { draw(c, el); } catch (e) {
      el.setAttribute('data-rendered', 'false');
      el.setAttribute('data-error', String(e && e.message ? e.message : e));
      el.textContent = 'This chart could not be drawn: ' + String(e && e.message ? e.message : e);
    }
  });
})();
`;

/** The report of `r` as one self-contained HTML page. */
export function renderHtmlReport(r: PlanRunResult, extra: HtmlReportExtra = {}): string {
  const e = escapeHtml;
  const lib = uplot();
  const traces = new Set(extra.traces ?? []);
  const findings = r.phases.reduce((n, p) => n + p.findings.length, 0);
  const passedPhases = r.phases.filter((p) => p.status === 'passed').length;

  const speedup = speedupChart(r);
  const groups = scalingGroups(extra.scaling ?? []);
  const scaling = groups.map((g, i) => ({
    ...g,
    chart: scalingChart(groups.length === 1 ? 'scaling' : `scaling-${i + 1}`, g.points),
  }));
  const waits = extra.lockWaits !== undefined && extra.lockWaits.length > 0 ? lockWaitChart(extra.lockWaits) : null;
  const charts = [speedup, ...scaling.map((s) => s.chart), waits].filter((c): c is ChartSpec => c !== null && points(c) > 0);
  const scalingTable = (pts: readonly ScalingPoint[]): string =>
    table(
      ['policy', 'threads', 'throughput (ops/s)'],
      pts.map((p) => [e(p.policy), String(p.threads), p.throughput === null ? '-' : thousands(p.throughput)]),
    );
  const scalingNote =
    'No scaling data in this report (throughput against threads per policy: vmalock run --out measures it for each process; npm run bench:policies prints it for pft).';
  const scalingBlocks =
    scaling.length === 0
      ? chartBlock('scaling', 'Throughput against threads per policy', null, scalingNote, () => '')
      : scaling
          .map((s) =>
            chartBlock(
              s.chart.name,
              `Throughput against threads per policy${s.process === undefined ? '' : `: ${s.process}${s.workload === undefined ? '' : ` (${s.workload})`}`}`,
              s.chart,
              `No throughput was counted${s.process === undefined ? '' : ` for ${s.process}`}.`,
              () => scalingTable(s.points),
            ),
          )
          .join('');

  const summaryRows = r.phases.map((p, i) => [
    `<a href="#phase-${i}">${e(p.name)}</a>`,
    `<code>${e(p.policy)}</code>`,
    statusBadge(p.status),
    String(p.findings.length),
    `${p.gates.filter((g) => g.passed).length} of ${p.gates.length}`,
  ]);

  const html = [
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
    // Nothing may be fetched: inline scripts and styles, data: images at most.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">\n`,
    `<title>vmalock plan ${e(r.plan)}: ${r.passed ? 'passed' : 'FAILED'}</title>\n`,
    `<style>\n${lib.css}\n</style>\n<style>${STYLE}</style>\n</head>\n<body>\n`,
    `<header>\n<h1>vmalock plan <code>${e(r.plan)}</code></h1>\n`,
    `<p class="verdict" data-passed="${r.passed}">${statusBadge(r.passed ? 'passed' : 'failed')} seed ${r.seed}: ${passedPhases} of ${r.phases.length} phases passed, ${findings} finding${findings === 1 ? '' : 's'}.</p>\n</header>\n`,
    '<nav>\n<h2>Phases</h2>\n',
    table(['phase', 'policy', 'status', 'findings', 'gates passed'], summaryRows, 'summary'),
    '</nav>\n<section class="charts">\n<h2>Charts</h2>\n',
    chartBlock('speedup', 'Throughput per process across phases (speed-up over the baseline)', speedup, 'No process was measured in any phase.', () =>
      table(
        ['phase', ...speedup.series.map((s) => s.label)],
        r.phases.map((p, i) => [e(p.name), ...speedup.series.map((s) => (s.values[i] == null ? '-' : `${s.values[i].toFixed(2)}x`))]),
      ),
    ),
    scalingBlocks,
    chartBlock('lock-waits', 'Lock wait distributions', waits, 'No lock wait data in this report.', () =>
      table(
        ['phase', 'policy', 'lock', 'p50', 'p90', 'p99'],
        (extra.lockWaits ?? []).map((p) => [e(p.phase ?? '-'), e(p.policy), `<code>${e(p.lock)}</code>`, ns(p.p50Ns), ns(p.p90Ns), ns(p.p99Ns)]),
      ),
    ),
    '</section>\n',
    r.phases.map((p, i) => phaseSection(p, i, traces)).join(''),
    `<script type="application/json" id="report-data">${scriptJson({ charts })}</script>\n`,
    `<script>\n${lib.js}\n</script>\n<script>${CLIENT}</script>\n</body>\n</html>\n`,
  ];
  return html.join('');
}
