// The public API of @vmalock/policies. Explicit named exports only; empty until the lock-policy issues add the LockPolicy implementations.
export {};
