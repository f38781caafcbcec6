// The HTML report as text: self-contained (nothing to fetch), deterministic (the same run gives
// the same bytes), every text escaped, trace links only where the caller wrote a trace, and a
// chart or a note for each kind of extra data. The page in a real browser: html.browser.test.ts.
// Seed: the small plan's own (3); throughput under `timed`, findings under flag's portfolio.
import { describe, expect, it } from 'vitest';
import { parsePlan } from '../plan/load.js';
import { resolvePlan } from '../plan/resolve.js';
import { type PlanRunResult, runPlan } from '../run/runPlan.js';
import { escapeHtml, renderHtmlReport } from './html.js';
import { smallPlanYaml } from '../run/testPlans.js';

const SMALL_PLAN = smallPlanYaml({ blocking: false });

const smallRun = (): Promise<PlanRunResult> => runPlan(resolvePlan(parsePlan(SMALL_PLAN, 'small.yaml')));
/** One run shared by the tests that only read it. */
let shared: Promise<PlanRunResult> | undefined;
const sharedRun = (): Promise<PlanRunResult> => (shared ??= smallRun());

/** The elements of `html` carrying `data-chart`, by name. */
const charts = (html: string): string[] => [...html.matchAll(/<div class="chart" data-chart="([^"]+)"/g)].map((m) => m[1]!);

describe('renderHtmlReport', () => {
  it('should give the same bytes for the same run, with nothing to fetch from anywhere', async () => {
    const [a, b] = [await sharedRun(), await smallRun()];
    const html = renderHtmlReport(a);
    expect(renderHtmlReport(b)).toBe(html);
    expect(a.phases[1]!.findings.length).toBeGreaterThan(0);
    // uPlot and its CSS inlined; no element loads anything (only in-page and trace links).
    expect(html).toContain('/*! https://github.com/leeoniya/uPlot (v1.6.32) */');
    expect(html).toContain('.uplot, .uplot *');
    expect(html).not.toMatch(/<(script|link|img|iframe)\b[^>]*\s(src|href)=/i);
    expect(html).not.toMatch(/@import|url\(\s*['"]?(https?:|\/\/)/i);
    expect([...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]!).filter((h) => !h.startsWith('#phase-'))).toEqual([]);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none';`);
    // Plan, seed, verdict; a section per phase; every finding with its evidence and replay.
    expect(html).toContain('<h1>vmalock plan <code>small</code></h1>');
    expect(html).toMatch(/seed 3: 2 of 3 phases passed, \d+ findings?\./);
    expect(html.match(/<section class="phase"/g)).toHaveLength(3);
    const findings = a.phases.flatMap((p) => p.findings);
    expect(html.match(/<article class="finding"/g)).toHaveLength(findings.length);
    for (const f of findings) {
      expect(html).toContain(`<pre class="evidence">${escapeHtml(f.evidence)}</pre>`);
      expect(html).toContain(`<pre class="replay"><code>${escapeHtml(f.replay)}</code></pre>`);
    }
    // Without extra data: the speed-up chart, and a note for each of the others.
    expect(charts(html)).toEqual(['speedup']);
    expect(html).toContain('<p class="note" data-note="scaling">No scaling data in this report');
    expect(html).toContain('<p class="note" data-note="lock-waits">No lock wait data in this report.</p>');
  });

  it('should escape every text: names, details, evidence and chart labels', async () => {
    const r = await sharedRun();
    const evil = `</script><script>alert(1)</script> & <b>"x'</b>`;
    const found = r.phases[1]!.findings[0]!;
    const hostile: PlanRunResult = {
      ...r,
      plan: evil,
      phases: r.phases.map((p) => ({
        ...p,
        name: `${p.name}${evil}`,
        processes: p.processes.map((x) => ({ ...x, name: evil })),
        gates: p.gates.map((g) => ({ ...g, detail: evil })),
        findings: p.findings.map((f) => ({ ...f, evidence: `${f.evidence}\n${evil}`, replay: `${f.replay} ${evil}` })),
      })),
    };
    const html = renderHtmlReport(hostile, {
      scaling: [{ policy: evil, threads: 1, throughput: 5 }],
      lockWaits: [{ policy: evil, lock: evil, p50Ns: 1, p90Ns: 2, p99Ns: 3 }],
      traces: [found.id],
    });
    expect(html).not.toContain('<script>alert(1)');
    expect(html).not.toContain('<b>"x');
    // Only the page's own three scripts close: the data's `</script>` is \u003c/script\u003e in JSON.
    expect(html.match(/<\/script>/g)).toHaveLength(3);
    expect(html).toContain('&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;&quot;x&#39;&lt;/b&gt;');
    expect(html).toContain(`<pre class="evidence">${escapeHtml(found.evidence)}\n${escapeHtml(evil)}</pre>`);
    const data = /<script type="application\/json" id="report-data">(.*?)<\/script>/s.exec(html)![1]!;
    const parsed = JSON.parse(data) as { charts: { name: string; series: { label: string }[] }[] };
    expect(parsed.charts.map((c) => c.name)).toEqual(['speedup', 'scaling', 'lock-waits']);
    expect(parsed.charts[0]!.series[0]!.label).toBe(evil);
  });

  it('should link a finding to traces/<id>.json only when the caller wrote one', async () => {
    const r = await sharedRun();
    const [first, ...rest] = r.phases.flatMap((p) => p.findings);
    const html = renderHtmlReport(r, { traces: [first!.id] });
    expect(html).toContain(`<a href="traces/${first!.id}.json">Perfetto trace: traces/${first!.id}.json</a>`);
    expect(html.match(/href="traces\//g)).toHaveLength(1);
    for (const f of rest) expect(html).not.toContain(`traces/${f.id}.json`);
  });

  it('should draw a scaling chart per process (one when no point names a process) and a lock wait chart, and notes for empty data', async () => {
    const r = await sharedRun();
    const scaling = ['global-rwsem', 'vma-range'].flatMap((policy) =>
      [1, 2, 4].flatMap((threads) => ['a', 'b'].map((process) => ({ process, workload: 'pft', policy, threads, throughput: 1000 * threads }))),
    );
    const lockWaits = [{ phase: 'baseline', policy: 'global-rwsem', lock: 'mm1.mmap_sem', p50Ns: 10, p90Ns: 200, p99Ns: 4000 }];
    const html = renderHtmlReport(r, { scaling, lockWaits });
    expect(charts(html)).toEqual(['speedup', 'scaling-1', 'scaling-2', 'lock-waits']);
    expect(html).toContain('<h3>Throughput against threads per policy: a (pft)</h3>');
    expect(html).toContain('<td>baseline</td><td>global-rwsem</td><td><code>mm1.mmap_sem</code></td><td>10 ns</td><td>200 ns</td><td>4.00 µs</td>');
    const unnamed = renderHtmlReport(r, {
      scaling: scaling.filter((p) => p.process === 'a').map(({ policy, threads, throughput }) => ({ policy, threads, throughput })),
    });
    expect(charts(unnamed)).toEqual(['speedup', 'scaling']);
    expect(unnamed).toContain('<h3>Throughput against threads per policy</h3>');
    // Empty lists, or points with nothing counted, give notes rather than empty charts.
    const empty = renderHtmlReport(r, { scaling: [{ policy: 'hybrid', threads: 1, throughput: null }], lockWaits: [] });
    expect(charts(empty)).toEqual(['speedup']);
    expect(empty).toContain('<p class="note" data-note="scaling">No throughput was counted.</p>');
    expect(empty).toContain('<p class="note" data-note="lock-waits">');
  });
});
