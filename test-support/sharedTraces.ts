// Where the shared real traces are: `shared/` sits beside the repository (here and in CI).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The `shared/traces` folder beside the repository. */
export const sharedTracesDir = fileURLToPath(new URL('../../shared/traces/', import.meta.url));

/** A file under `shared/traces`; throws a clear error when the folder is missing. */
export function sharedTrace(...parts: string[]): string {
  const path = join(sharedTracesDir, ...parts);
  if (!existsSync(path)) throw new Error(`missing shared trace ${path}: shared/ must sit beside the repository`);
  return path;
}
