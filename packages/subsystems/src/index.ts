// The public API of @vmalock/subsystems. Explicit named exports only.
export { type ExerciseSpawn, spawnExercise } from './exercise.js';
export { SUBSYSTEMS, type SubsystemEntry, subsystemNames } from './registry.js';
