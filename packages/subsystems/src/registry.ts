import type { Subsystem, SubsystemKind, SubsystemVariant } from '@vmalock/core';
import { archunmap, pkeys, vdso } from './arch/index.js';
import { binder, gem, hmm } from './driver/index.js';
import { aioring, pagecache, userfaultfd } from './fs/index.js';
import { khugepaged, thp } from './hugepage/index.js';

/** A subsystem by name, with both its variants. */
export interface SubsystemEntry {
  readonly name: string;
  readonly kind: SubsystemKind;
  /** One line: the kernel case it models. */
  readonly summary: string;
  /** A new instance of `variant` (one instance may serve several processes). */
  create(variant: SubsystemVariant): Subsystem;
}

function entry(create: (variant: SubsystemVariant) => Subsystem): SubsystemEntry {
  const probe = create('legacy');
  return { name: probe.name, kind: probe.kind, summary: probe.summary, create };
}

/** The built-in subsystems, in report order: arch, filesystems, drivers, huge pages. */
export const SUBSYSTEMS: readonly SubsystemEntry[] = [pkeys, vdso, archunmap, pagecache, userfaultfd, aioring, binder, hmm, gem, khugepaged, thp].map(entry);

/** The names of the built-in subsystems. */
export function subsystemNames(): string[] {
  return SUBSYSTEMS.map((s) => s.name);
}
