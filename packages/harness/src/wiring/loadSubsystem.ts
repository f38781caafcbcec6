import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as core from '@vmalock/core';
import type { Subsystem, SubsystemVariant } from '@vmalock/core';
import type { SubsystemEntry } from '@vmalock/subsystems';

/** A subsystem file that cannot be used: names the file and what is wrong. */
export class SubsystemLoadError extends Error {
  override readonly name = 'SubsystemLoadError';
}

/** What a subsystem file's default export may be. */
type Factory = (variant: SubsystemVariant, api: typeof core) => Subsystem;

const KINDS = ['arch', 'fs', 'driver', 'hugepage'];

/**
 * Load a third-party subsystem from a `.js`/`.mjs` file by path. Its default export is either a
 * `SubsystemEntry`-like object (`{ name, kind, summary, create(variant) }`) or a factory
 * `(variant, api) => Subsystem`, where `api` is `@vmalock/core` itself (so a file outside any
 * project that has the package installed can still build on it). Both variants are created once
 * here, to check them against the `Subsystem` interface; `create` makes new instances.
 */
export async function loadSubsystemFile(path: string): Promise<SubsystemEntry> {
  if (/\.[cm]?tsx?$/.test(path))
    throw new SubsystemLoadError(`${path}: Node 20 does not run TypeScript: compile the subsystem to .js first (tsc), then load the .js`);
  const url = pathToFileURL(resolve(path)).href;
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (e) {
    throw new SubsystemLoadError(`${path}: cannot load: ${e instanceof Error ? e.message : String(e)}`);
  }
  const exported = mod.default;
  let create: (variant: SubsystemVariant) => Subsystem;
  if (typeof exported === 'function') create = (variant) => (exported as Factory)(variant, core);
  else if (typeof exported === 'object' && exported !== null && typeof (exported as { create?: unknown }).create === 'function') {
    const entry = exported as { create: (variant: SubsystemVariant) => Subsystem };
    create = (variant) => entry.create(variant);
  } else throw new SubsystemLoadError(`${path}: the default export must be a factory (variant, api) => Subsystem or an object with create(variant)`);
  const made: Partial<Record<SubsystemVariant, Subsystem>> = {};
  for (const variant of ['legacy', 'converted'] as const) {
    let s: Subsystem;
    try {
      s = create(variant);
    } catch (e) {
      throw new SubsystemLoadError(`${path}: creating the ${variant} variant threw: ${e instanceof Error ? e.message : String(e)}`);
    }
    check(path, variant, s);
    made[variant] = s;
  }
  const legacy = made.legacy!;
  if (made.converted!.name !== legacy.name)
    throw new SubsystemLoadError(`${path}: the variants disagree on the name ('${legacy.name}' and '${made.converted!.name}')`);
  const entry: SubsystemEntry = { name: legacy.name, kind: legacy.kind, summary: legacy.summary, create };
  loadedFrom.set(entry, path);
  return entry;
}

const loadedFrom = new WeakMap<SubsystemEntry, string>();

/** The path a subsystem was loaded from (`loadSubsystemFile`), or null for any other entry (a built-in one). */
export function subsystemSource(entry: SubsystemEntry): string | null {
  return loadedFrom.get(entry) ?? null;
}

function check(path: string, variant: SubsystemVariant, s: Subsystem): void {
  const bad = (field: string, expected: string): never => {
    throw new SubsystemLoadError(`${path}: the ${variant} variant's '${field}' must be ${expected}`);
  };
  if (typeof s !== 'object' || s === null) bad('default export result', 'an object');
  if (typeof s.name !== 'string' || s.name === '') bad('name', 'a non-empty string');
  if (!KINDS.includes(s.kind)) bad('kind', `one of ${KINDS.join(', ')}`);
  if (s.variant !== variant) bad('variant', `'${variant}'`);
  if (typeof s.summary !== 'string') bad('summary', 'a string');
  for (const m of ['attach', 'drive', 'checkInvariants', 'locations'] as const) if (typeof s[m] !== 'function') bad(m, 'a method');
  for (const m of ['daemon', 'exercise'] as const) if (s[m] !== undefined && typeof s[m] !== 'function') bad(m, 'a method when present');
  if (typeof s.hookCounts !== 'object' || s.hookCounts === null) bad('hookCounts', 'an object');
}
