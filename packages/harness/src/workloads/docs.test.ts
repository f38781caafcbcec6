// Proves docs/workloads.md documents every workload's params as the schemas define them: the
// part between the markers equals `workloadDocsMarkdown()` (table padding aside, which prettier
// owns). With UPDATE_WORKLOAD_DOCS=1 the test rewrites that part instead (then run prettier).
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { workloadDocsMarkdown } from './docs.js';
import { workloadNames } from './registry.js';

const docPath = new URL('../../../../docs/workloads.md', import.meta.url);
const BEGIN = '<!-- workloads:begin -->';
const END = '<!-- workloads:end -->';

/** A markdown text with table rows' padding and separator widths normalised, blank lines dropped. */
function normalise(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      if (!line.startsWith('|')) return line;
      const cells = line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim());
      return `|${cells.map((c) => (/^:?-+:?$/.test(c) ? '---' : c)).join('|')}|`;
    })
    .join('\n');
}

describe('docs/workloads.md', () => {
  it('should hold the reference generated from the workload schemas', () => {
    const doc = readFileSync(docPath, 'utf8');
    const begin = doc.indexOf(BEGIN);
    const end = doc.indexOf(END);
    expect(begin, `${BEGIN} marker`).toBeGreaterThanOrEqual(0);
    expect(end, `${END} marker`).toBeGreaterThan(begin);
    const generated = workloadDocsMarkdown();
    if (process.env.UPDATE_WORKLOAD_DOCS === '1') {
      writeFileSync(docPath, `${doc.slice(0, begin + BEGIN.length)}\n\n${generated}\n${doc.slice(end)}`);
      return;
    }
    const current = doc.slice(begin + BEGIN.length, end);
    expect(normalise(current), 'docs/workloads.md is out of date: see its Reference section for the command that regenerates it').toBe(normalise(generated));
  });

  it('should give every workload a section with a params table', () => {
    const generated = workloadDocsMarkdown();
    for (const name of workloadNames()) {
      expect(generated).toContain(`### \`${name}\``);
    }
    expect(generated.match(/\| param \| type \| default \| meaning \|/g)).toHaveLength(workloadNames().length);
  });
});
