// One lint config for the whole workspace: typescript-eslint's type-checked rules, and the
// package direction of ARCHITECTURE.md section 1 (core <- policies, subsystems <- harness).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const deepImport = { group: ['@vmalock/*/*'], message: 'Import a package through its index (@vmalock/<pkg>), never its internals.' };

/** Only these workspace packages may be imported from each package. */
function direction(pkg, allowed, files = [`packages/${pkg}/**/*.ts`]) {
  const forbidden = ['core', 'policies', 'subsystems', 'harness'].filter((p) => p !== pkg && !allowed.includes(p));
  return {
    files,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            deepImport,
            ...forbidden.map((p) => ({
              group: [`@vmalock/${p}`],
              message: `packages/${pkg} must not import @vmalock/${p}: the direction is core <- policies, subsystems <- harness.`,
            })),
            { group: ['../../*/src/*', '../../../*/src/*'], message: 'No relative imports across packages.' },
          ],
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'scripts/**', 'eslint.config.js', '**/vitest.config.ts', 'vitest.shared.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  direction('core', []),
  direction('policies', ['core']),
  direction('subsystems', ['core']),
  // A subsystem's tests run it under the lock policies; its code never sees them.
  direction('subsystems', ['core', 'policies'], ['packages/subsystems/**/*.test.ts']),
  direction('harness', ['core', 'policies', 'subsystems']),
  {
    files: ['bench/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [deepImport] }] },
  },
);
