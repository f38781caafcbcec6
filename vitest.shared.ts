import { defineConfig } from 'vitest/config';

/** The one vitest base every package merges: run TS sources through the `@vmalock/source` condition. */
export default defineConfig({
  resolve: {
    conditions: ['@vmalock/source', 'module', 'node', 'development|production'],
  },
  ssr: {
    resolve: {
      conditions: ['@vmalock/source', 'module', 'node', 'development|production'],
    },
  },
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    environment: 'node',
    setupFiles: ['../../test-support/fastCheckSeed.ts'],
    testTimeout: 60_000,
  },
});
