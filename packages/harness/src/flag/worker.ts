// A worker thread of `vmalock flag --jobs N`: runs units of schedules and sends back their
// outcomes (plain data). Subsystems come by name (built in) or by path (loaded once per worker).
import { SUBSYSTEMS, type SubsystemEntry } from '@vmalock/subsystems';
import { loadSubsystemFile } from '../wiring/loadSubsystem.js';
import { type FlagUnit, type ScheduleOutcome, runUnit } from './flag.js';

/** Where a worker finds a subsystem: a built-in one by name, a third party's by the path of its file. */
export type SubsystemRef = { readonly name: string } | { readonly path: string };

/** One task of the pool. */
export interface FlagTask {
  readonly subsystem: SubsystemRef;
  readonly unit: FlagUnit;
}

const loaded = new Map<string, SubsystemEntry>();

async function entryOf(ref: SubsystemRef): Promise<SubsystemEntry> {
  if ('name' in ref) {
    const entry = SUBSYSTEMS.find((s) => s.name === ref.name);
    if (entry === undefined) throw new Error(`flag worker: no built-in subsystem '${ref.name}'`);
    return entry;
  }
  let entry = loaded.get(ref.path);
  if (entry === undefined) loaded.set(ref.path, (entry = await loadSubsystemFile(ref.path)));
  return entry;
}

export default async function runFlagTask(task: FlagTask): Promise<ScheduleOutcome[]> {
  return runUnit(await entryOf(task.subsystem), task.unit);
}
