import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { type CliIo, ExitCode, UsageError, writeFileAtomic } from '../cliSupport.js';
import { DEFAULT_PLAN_FILE, DEFAULT_PLAN_YAML } from '../plan/defaultPlan.js';
import { planJsonSchemaText } from '../plan/jsonSchema.js';
import { type LoadedPlan, PlanError, loadResolvedPlan } from '../plan/load.js';

/** Arguments of `vmalock plan validate`. */
export interface PlanValidateArgs {
  readonly file: string;
  /** Print the resolved plan as one JSON object. */
  readonly json: boolean;
  /** Print every error, one a line, not only the first. */
  readonly all: boolean;
}

/**
 * `vmalock plan validate <file>`: load the plan, its subsystem files, and resolve it. Prints
 * `file: ok — N phases, M processes` (or, with `--json`, the resolved plan); a bad plan is one
 * error line `file:line:col: field: expected ... (got ...)` and exit 2 (`--all`: every error).
 */
export async function planValidateCommand(args: PlanValidateArgs, io: CliIo): Promise<number> {
  let loaded: LoadedPlan;
  try {
    loaded = await loadResolvedPlan(args.file);
  } catch (e) {
    if (!(e instanceof PlanError)) throw e;
    if (args.all && e.issues.length > 1) {
      io.err(`${e.message}\n`);
      return ExitCode.badInput;
    }
    throw new UsageError(e.issues.length > 1 ? `${e.firstLine} (and ${e.issues.length - 1} more: --all lists them)` : e.firstLine);
  }
  const { resolved } = loaded;
  if (args.json) io.out(`${JSON.stringify({ file: args.file, ok: true, plan: resolved })}\n`);
  else io.out(`${args.file}: ok — ${count(resolved.phases.length, 'phase')}, ${count(resolved.processes.length, 'process', 'processes')}\n`);
  return ExitCode.ok;
}

const count = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/**
 * `vmalock plan init [file]`: write the built-in plan, with its comments, to `file` (default
 * vmalock-plan.yaml; a .json name gets the same plan as JSON, without comments; `-` prints it).
 * Never overwrites: an existing file is exit 2 and left as it was. The write is atomic.
 */
export function planInitCommand(args: { readonly file: string | undefined }, io: CliIo): number {
  const file = args.file ?? DEFAULT_PLAN_FILE;
  // yargs hands a lone '-' over as ''.
  if (file === '-' || file === '') {
    io.out(DEFAULT_PLAN_YAML);
    return ExitCode.ok;
  }
  const ext = extname(file).toLowerCase();
  if (!['.yaml', '.yml', '.json'].includes(ext)) throw new UsageError(`${file}: a plan is a .yaml, .yml or .json file`);
  if (existsSync(file)) throw new UsageError(`${file} exists: not overwriting it (remove it or name another file)`);
  const text = ext === '.json' ? `${JSON.stringify(parseYaml(DEFAULT_PLAN_YAML), null, 2)}\n` : DEFAULT_PLAN_YAML;
  try {
    writeFileAtomic(file, text);
  } catch (e) {
    throw new UsageError(`${file}: cannot write: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  io.out(`wrote ${file}: the staged conversion plan; edit it, then: vmalock plan validate ${file}\n`);
  return ExitCode.ok;
}

/** `vmalock plan schema`: print the JSON Schema of plan files (docs/plan.schema.json). */
export function planSchemaCommand(io: CliIo): number {
  io.out(planJsonSchemaText());
  return ExitCode.ok;
}
