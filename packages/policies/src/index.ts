// The public API of @vmalock/policies. Explicit named exports only.
export { GlobalRwsemPolicy } from './globalRwsem.js';
