import { defineProject, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.js';

// reflect-metadata must load before any decorated class is evaluated.
export default mergeConfig(shared, defineProject({ test: { name: 'harness', setupFiles: ['reflect-metadata'] } }));
