// The public API of @vmalock/subsystems. Explicit named exports only; empty until the subsystems issue adds the mock arch, fs, driver and huge-page subsystems.
export {};
