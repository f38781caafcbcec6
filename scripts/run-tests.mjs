// Runs every vitest project, then prints the plain closing line `N passed, N failed` that this
// workplace's CI reads (vitest's own summary is not read). Exit code: vitest's.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

const resultsFile = '.vitest-results.json';
rmSync(resultsFile, { force: true });
const run = spawnSync(
  process.execPath,
  ['node_modules/vitest/vitest.mjs', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${resultsFile}`, ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
let passed = 0;
let failed = 0;
try {
  const results = JSON.parse(readFileSync(resultsFile, 'utf8'));
  passed = results.numPassedTests;
  // A file that fails to load has no tests of its own: count it once.
  const brokenFiles = results.testResults.filter((f) => f.status === 'failed' && f.assertionResults.length === 0);
  failed = results.numFailedTests + brokenFiles.length;
} catch {
  failed += 1;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(run.status === 0 && failed === 0 ? 0 : run.status || 1);
