// `vmalock run --out` is all or nothing with the HTML report too: when index.html cannot be
// rendered, nothing is written (no DIR, no half-built sibling), and the run exits 3 (internal
// error). The renderer is replaced by one that throws. Seed: the plan's own (5).
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runCli } from '../cliApp.js';
import type * as html from './html.js';

vi.mock('./html.js', async (importOriginal) => ({
  ...(await importOriginal<typeof html>()),
  renderHtmlReport: () => {
    throw new Error('html report: cannot render');
  },
}));

const ONE_PHASE = `name: one
seed: 5
processes:
  - name: app
    workload: { name: pft }
    threads: 1
    cpus: 1
phases:
  - name: baseline
    policy: global-rwsem
`;

describe('vmalock run --out with index.html', () => {
  it('should write nothing when the HTML report fails to render', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmalock-write-'));
    const plan = join(dir, 'one.yaml');
    writeFileSync(plan, ONE_PHASE);
    let err = '';
    const code = await runCli(['run', plan, '--out', join(dir, 'report'), '--quiet'], { out: () => {}, err: (s) => (err += s) });
    expect([code, err.split('\n')[0]]).toEqual([3, 'vmalock: internal error: Error: html report: cannot render']);
    expect(existsSync(join(dir, 'report'))).toBe(false);
    expect(readdirSync(dir)).toEqual(['one.yaml']);
  });
});
