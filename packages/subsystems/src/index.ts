// The public API of @vmalock/subsystems. Explicit named exports only.
export { SUBSYSTEMS, type SubsystemEntry, subsystemNames } from './registry.js';
