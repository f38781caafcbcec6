import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['packages/*'],
    // Every core (vitest's default leaves one idle: half the workers on a 2-core machine).
    maxWorkers: '100%',
  },
});
