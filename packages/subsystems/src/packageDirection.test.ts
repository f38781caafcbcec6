// Proves the lint keeps this package's place in the direction core <- policies, subsystems <-
// harness: imports of the packages it may use pass, the others and deep imports are errors.
// It lints probe imports with the workspace's real ESLint config (slow to start: one instance).
import { describe, expect, it } from 'vitest';
import { directionFindings } from '../../../test-support/packageDirection.js';

describe('@vmalock/subsystems package direction', () => {
  it('should allow [core] and forbid [policies harness] and deep imports', async () => {
    const allowed = ['@vmalock/core'] as string[];
    const forbidden = ['@vmalock/policies', '@vmalock/harness', '@vmalock/core/src/sim/engine.js'];
    const findings = await directionFindings('subsystems', [...allowed, ...forbidden]);
    for (const spec of allowed) expect(findings.get(spec), spec).toEqual([]);
    for (const spec of forbidden) expect(findings.get(spec)?.length, spec).toBe(1);
  });
});
