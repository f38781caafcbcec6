// Lints import lines as if they stood in a package's own index.ts, with the workspace's real
// ESLint config, and returns the package-direction findings (`no-restricted-imports`). Each
// package's direction test uses it to prove the lint keeps core <- policies, subsystems <- harness.
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** For each import specifier, the direction messages ESLint gives in `packages/<pkg>/src/index.ts`. */
export async function directionFindings(pkg: string, specifiers: readonly string[]): Promise<Map<string, string[]>> {
  const eslint = new ESLint({ cwd: root });
  const out = new Map<string, string[]>();
  for (const spec of specifiers) {
    const [result] = await eslint.lintText(`import * as probe from '${spec}';\nexport const used = probe;\n`, {
      filePath: `${root}packages/${pkg}/src/index.ts`,
    });
    out.set(
      spec,
      (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message),
    );
  }
  return out;
}
