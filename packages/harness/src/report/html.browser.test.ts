// The HTML report in a real headless browser (Debian's chromium driven by playwright-core):
// `vmalock run --out` of a small plan, and the same run rendered with scaling and lock wait data
// and a trace link. Each page must draw every chart with data, list every finding with its
// evidence as text, raise no error, and fetch nothing but its own file (every request is
// recorded; anything not file:// is aborted and fails the test). A screenshot of each page is
// saved in the test's temp directory (its path is printed). Seed: the small plan's own (3).
// Without /usr/bin/chromium this test fails and says how to install it.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../cliApp.js';
import { parsePlan } from '../plan/load.js';
import { resolvePlan } from '../plan/resolve.js';
import { runPlan } from '../run/runPlan.js';
import { renderHtmlReport } from './html.js';
import { smallPlanYaml } from '../run/testPlans.js';

const CHROMIUM = '/usr/bin/chromium';
/** As root, on a closed network: no sandbox, no GPU, and none of chromium's own connections. */
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const SMALL_PLAN = smallPlanYaml({ blocking: false });

// Run in the page (as text: this project's TypeScript has no DOM types).
const CHARTS_SETTLED = `[...document.querySelectorAll('[data-chart]')].every((e) => e.hasAttribute('data-points') || e.hasAttribute('data-error'))`;
const READ_PAGE = `(() => {
  const inked = (canvas) => {
    if (canvas === null || canvas.width === 0 || canvas.height === 0) return false;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
    return false;
  };
  return {
    charts: [...document.querySelectorAll('[data-chart]')].map((e) => ({
      name: e.dataset.chart,
      rendered: e.getAttribute('data-rendered'),
      points: Number(e.getAttribute('data-points') ?? '0'),
      error: e.getAttribute('data-error'),
      canvasInked: inked(e.querySelector('canvas')),
    })),
    findings: [...document.querySelectorAll('article.finding')].map((a) => ({
      id: a.dataset.findingId,
      evidence: a.querySelector('pre.evidence')?.textContent ?? '',
    })),
    traceLinks: [...document.querySelectorAll('.finding a')].map((a) => a.getAttribute('href') ?? ''),
  };
})()`;

interface PageReport {
  charts: { name: string; rendered: string | null; points: number; error: string | null; canvasInked: boolean }[];
  findings: { id: string; evidence: string }[];
  traceLinks: string[];
  offPage: string[];
  errors: string[];
  screenshot: string;
}

/** Open `file` in `context`, wait for its charts, and read what a person would see. */
async function open(context: BrowserContext, file: string, screenshot: string): Promise<PageReport> {
  const page = await context.newPage();
  const offPage: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith('file://')) offPage.push(r.url());
  });
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  await page.route('**/*', (route) => (route.request().url().startsWith('file://') ? route.continue() : route.abort()));
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  // The charts are drawn by the page's last script; wait until each says whether it was.
  await page.waitForFunction(CHARTS_SETTLED, null, { timeout: 10_000 });
  const seen = await page.evaluate<Pick<PageReport, 'charts' | 'findings' | 'traceLinks'>>(READ_PAGE);
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.close();
  return { ...seen, offPage, errors, screenshot };
}

/** One browser for the file's tests, with a new empty profile; fails (never skips) without chromium. */
let browser: { context: Promise<BrowserContext>; userDataDir: string } | undefined;
function launch(): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `${CHROMIUM} not found: the HTML report's browser test needs Debian's chromium. Install it with ` +
        `'apt-get install -y --no-install-recommends chromium' (as root; 'npm test' and .ci/run do it through scripts/ensure-chromium.mjs)`,
    );
  if (browser === undefined) {
    const userDataDir = mkdtempSync(join(tmpdir(), 'vmalock-chromium-'));
    browser = {
      userDataDir,
      context: chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: ARGS,
        viewport: { width: 1280, height: 900 },
        timeout: 30_000,
      }),
    };
  }
  return browser.context;
}

afterAll(async () => {
  if (browser === undefined) return;
  await (await browser.context.catch(() => undefined))?.close();
  rmSync(browser.userDataDir, { recursive: true, force: true });
});

describe('the HTML report in headless chromium', () => {
  it('should draw every chart with data, list every finding with its evidence, and fetch nothing', async () => {
    const context = await launch();
    const dir = mkdtempSync(join(tmpdir(), 'vmalock-html-'));
    const planFile = join(dir, 'small.yaml');
    writeFileSync(planFile, SMALL_PLAN);
    // 1. What `vmalock run --out` writes.
    const out = join(dir, 'report');
    expect(await runCli(['run', planFile, '--out', out, '--quiet'], { out: () => {}, err: () => {} })).toBe(0);
    const reportJson = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as {
      phases: { findings: { id: string }[] }[];
      evidence: Record<string, string>;
    };
    const cliIds = reportJson.phases.flatMap((p) => p.findings.map((f) => f.id));
    expect(cliIds.length).toBeGreaterThan(0);
    // 2. The same run rendered with scaling and lock wait data (made up here) and a trace for its first finding.
    const r = await runPlan(resolvePlan(parsePlan(SMALL_PLAN, 'small.yaml')));
    const ids = r.phases.flatMap((p) => p.findings.map((f) => f.id));
    const extraDir = join(dir, 'extra');
    mkdirSync(join(extraDir, 'traces'), { recursive: true });
    writeFileSync(join(extraDir, 'traces', `${ids[0]}.json`), '{"traceEvents": []}\n');
    writeFileSync(
      join(extraDir, 'index.html'),
      renderHtmlReport(r, {
        scaling: ['global-rwsem', 'hybrid', 'vma-range'].flatMap((policy, k) =>
          [1, 2, 4, 8].map((threads) => ({ policy, threads, throughput: 1e5 * threads ** (k / 2) })),
        ),
        lockWaits: [
          { policy: 'global-rwsem', lock: 'mm1.mmap_sem', p50Ns: 120, p90Ns: 2_400, p99Ns: 51_000 },
          { policy: 'vma-range', lock: 'mm1.vm_area_lock', p50Ns: 40, p90Ns: 300, p99Ns: 1_900 },
        ],
        traces: [ids[0]!],
      }),
    );

    const plain = await open(context, join(out, 'index.html'), join(dir, 'run-out.png'));
    const extra = await open(context, join(extraDir, 'index.html'), join(dir, 'with-extra.png'));
    console.log(`HTML report screenshots: ${plain.screenshot} ${extra.screenshot}`);

    for (const seen of [plain, extra]) {
      expect(seen.errors).toEqual([]);
      expect(seen.offPage).toEqual([]);
      expect(seen.charts.length).toBeGreaterThan(0);
      for (const c of seen.charts)
        expect({ ...c, points: c.points > 0 }).toEqual({ name: c.name, rendered: 'true', points: true, error: null, canvasInked: true });
    }
    expect(plain.charts.map((c) => c.name)).toContain('speedup');
    expect(plain.findings.map((f) => f.id)).toEqual(cliIds);
    for (const f of plain.findings) expect(f.evidence).toBe(reportJson.evidence[f.id]);
    expect(extra.charts.map((c) => c.name)).toEqual(['speedup', 'scaling', 'lock-waits']);
    // One process over three phases; four thread counts by three policies; two locks by three percentiles.
    expect(extra.charts.map((c) => c.points)).toEqual([3, 12, 6]);
    expect(extra.findings).toEqual(r.phases.flatMap((p) => p.findings.map((f) => ({ id: f.id, evidence: f.evidence }))));
    expect(extra.traceLinks).toEqual([`traces/${ids[0]}.json`]);
  });

  it('should see a request that leaves the page (the check above can fail)', async () => {
    const context = await launch();
    const dir = mkdtempSync(join(tmpdir(), 'vmalock-html-'));
    const file = join(dir, 'leaky.html');
    writeFileSync(
      file,
      '<!DOCTYPE html><html><body><div data-chart="x" data-rendered="true" data-points="1"></div><img src="http://127.0.0.1:9/x.png"></body></html>',
    );
    const seen = await open(context, file, join(dir, 'leaky.png'));
    expect(seen.offPage).toEqual(['http://127.0.0.1:9/x.png']);
  });
});
