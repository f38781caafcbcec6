import type { Subsystem, SubsystemKind, SubsystemVariant } from '@vmalock/core';

/** A subsystem by name, with both its variants. */
export interface SubsystemEntry {
  readonly name: string;
  readonly kind: SubsystemKind;
  /** One line: the kernel case it models. */
  readonly summary: string;
  /** A new instance of `variant` (one instance may serve several processes). */
  create(variant: SubsystemVariant): Subsystem;
}

/** The built-in subsystems, in report order (the families add theirs here). */
export const SUBSYSTEMS: readonly SubsystemEntry[] = [];

/** The names of the built-in subsystems. */
export function subsystemNames(): string[] {
  return SUBSYSTEMS.map((s) => s.name);
}
