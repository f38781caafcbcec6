// Loading a plan file (YAML or JSON) into a valid, resolved plan. Every error names the file, the
// line and column of the offending node, the field and what was expected:
//   plan.yaml:14:13: phases[2].optIn[0]: expected a process name (got 'wbe'; processes: web, jvm)
// The yaml library parses both formats and keeps each node's source range, so a zod issue's path
// maps back to where the user wrote the value (or, for a missing field, to the object that lacks it).
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { SUBSYSTEMS, type SubsystemEntry } from '@vmalock/subsystems';
import { type Document, LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type * as z from 'zod';
import { SubsystemLoadError, loadSubsystemFile } from '../wiring/loadSubsystem.js';
import { type ResolvedPlan, resolvePlan } from './resolve.js';
import { CONVERSION_GROUPS, type Plan, isSubsystemFile, planSchema } from './schema.js';

/** One problem in a plan file, at a place in it. */
export interface PlanIssue {
  readonly file: string;
  /** 1-based; 0 when the problem is the file as a whole (unreadable, wrong extension). */
  readonly line: number;
  readonly col: number;
  /** The field, like `phases[2].optIn[0]`; empty for a syntax error or the file as a whole. */
  readonly path: string;
  readonly message: string;
}

/** The one line of an issue: `file:line:col: field.path: what was expected (got ...)`. */
export function formatPlanIssue(issue: PlanIssue): string {
  const where = issue.line === 0 ? issue.file : `${issue.file}:${issue.line}:${issue.col}`;
  return issue.path === '' ? `${where}: ${issue.message}` : `${where}: ${issue.path}: ${issue.message}`;
}

/**
 * A plan that cannot be used. `message` has one line per issue, the first in file order first;
 * `firstLine` is what the CLI prints.
 */
export class PlanError extends Error {
  override readonly name = 'PlanError';
  readonly issues: readonly PlanIssue[];
  constructor(issues: readonly PlanIssue[]) {
    if (issues.length === 0) throw new RangeError('PlanError: no issues');
    super(issues.map(formatPlanIssue).join('\n'));
    this.issues = issues;
  }
  get firstLine(): string {
    return formatPlanIssue(this.issues[0]!);
  }
}

type Path = readonly PropertyKey[];

/** The source of a parsed plan: where each path of it was written. */
interface Located {
  readonly file: string;
  /** The issue at `path`: at its value, at its key (`key`), or at the nearest enclosing node. */
  issueAt(path: Path, message: string, key?: boolean): PlanIssue & { readonly offset: number };
}

const PLAN_EXTENSIONS = ['.yaml', '.yml', '.json'];

/** Read and validate a plan file (`.yaml`, `.yml` or `.json`). Throws `PlanError`. */
export function loadPlan(file: string): Plan {
  return parsePlan(readPlanFile(file), file);
}

/**
 * Validate plan text; `file` names it in errors, and a `.json` name makes the text strict JSON.
 * Throws `PlanError`.
 */
export function parsePlan(text: string, file: string): Plan {
  return parseLocated(text, file).plan;
}

/** A plan file validated, its subsystem files loaded, and resolved. */
export interface LoadedPlan {
  readonly file: string;
  readonly plan: Plan;
  readonly resolved: ResolvedPlan;
  /** The subsystems loaded from files, by the path the plan wrote. */
  readonly subsystemFiles: ReadonlyMap<string, SubsystemEntry>;
}

/**
 * `loadPlan`, then load each subsystem file a process attaches (paths relative to the plan file)
 * and check what only their names tell: no file subsystem named like a built-in one or like
 * another file's, every `converted` name attached. Then resolve the plan (`resolvePlan`).
 * Throws `PlanError`, with the line of the attachment for a file that fails to load.
 */
export async function loadResolvedPlan(file: string): Promise<LoadedPlan> {
  const { plan, located } = parseLocated(readPlanFile(file), file);
  const issues: (PlanIssue & { offset: number })[] = [];
  const loaded = new Map<string, SubsystemEntry>();
  const fileOfName = new Map<string, string>();
  for (const [i, p] of plan.processes.entries()) {
    for (const [j, ref] of p.subsystems.entries()) {
      if (!isSubsystemFile(ref) || loaded.has(ref)) continue;
      const at = ['processes', i, 'subsystems', j];
      let entry: SubsystemEntry;
      const path = resolve(dirname(file), ref);
      try {
        entry = await loadSubsystemFile(path);
      } catch (e) {
        if (!(e instanceof SubsystemLoadError)) throw e;
        // Name the file as the plan wrote it, not by the absolute path it was loaded from.
        issues.push(located.issueAt(at, e.message.startsWith(`${path}: `) ? `${ref}${e.message.slice(path.length)}` : e.message));
        continue;
      }
      const other = fileOfName.get(entry.name);
      if (SUBSYSTEMS.some((s) => s.name === entry.name))
        issues.push(located.issueAt(at, `${ref} defines a subsystem named '${entry.name}', like a built-in one: rename it`));
      else if (other !== undefined) issues.push(located.issueAt(at, `${ref} defines a subsystem named '${entry.name}', as ${other} does: rename one`));
      loaded.set(ref, entry);
      fileOfName.set(entry.name, ref);
    }
  }
  const attached = new Set([...plan.processes.flatMap((p) => p.subsystems), ...fileOfName.keys()]);
  const shown = [...new Set(plan.processes.flatMap((p) => p.subsystems))].map((ref) => {
    const name = loaded.get(ref)?.name;
    return name === undefined ? ref : `${name} (${ref})`;
  });
  for (const [i, phase] of plan.phases.entries()) {
    for (const [j, c] of phase.converted.entries()) {
      if ((CONVERSION_GROUPS as readonly string[]).includes(c) || attached.has(c)) continue;
      issues.push(
        located.issueAt(
          ['phases', i, 'converted', j],
          `expected an attached subsystem or one of ${CONVERSION_GROUPS.join(', ')} (got '${c}'; attached: ${shown.join(', ')})`,
        ),
      );
    }
  }
  if (issues.length > 0) throw new PlanError(sortIssues(issues));
  return { file, plan, resolved: resolvePlan(plan, loaded), subsystemFiles: loaded };
}

function readPlanFile(file: string): string {
  if (!PLAN_EXTENSIONS.includes(extname(file).toLowerCase()))
    throw new PlanError([{ file, line: 0, col: 0, path: '', message: 'a plan is a .yaml, .yml or .json file' }]);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new PlanError([{ file, line: 0, col: 0, path: '', message: `cannot read the plan: ${code}` }]);
  }
}

function parseLocated(text: string, file: string): { plan: Plan; located: Located } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const at = (offset: number): { line: number; col: number } => lineCounter.linePos(Math.min(offset, text.length));
  const syntax = (offset: number, message: string): never => {
    throw new PlanError([{ file, ...at(offset), path: '', message }]);
  };
  const [yamlError] = doc.errors;
  if (yamlError !== undefined) {
    const message = yamlError.code === 'MULTIPLE_DOCS' ? "a plan is one YAML document (remove the '---')" : yamlError.message.split('\n')[0]!;
    syntax(yamlError.pos[0], `${isJson(file) ? 'bad JSON' : 'bad YAML'}: ${message}`);
  }
  if (isJson(file)) {
    try {
      JSON.parse(text);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const position = /at position (\d+)/.exec(message);
      syntax(position === null ? 0 : Number(position[1]), `bad JSON: ${message.replace(/ in JSON at position \d+.*$/, '')}`);
    }
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (e) {
    syntax(0, `bad YAML: ${e instanceof Error ? e.message : String(e)}`);
  }
  const located = locator(doc, file, at);
  const result = planSchema.safeParse(data, { reportInput: true });
  if (!result.success) throw new PlanError(sortIssues(result.error.issues.flatMap((issue) => toPlanIssues(issue, located, data))));
  return { plan: result.data, located };
}

const isJson = (file: string): boolean => extname(file).toLowerCase() === '.json';

function sortIssues<T extends PlanIssue & { offset: number }>(issues: T[]): PlanIssue[] {
  return issues
    .map((issue, order) => ({ issue, order }))
    .sort((a, b) => a.issue.offset - b.issue.offset || a.order - b.order)
    .map(({ issue: { offset: _offset, ...issue } }) => issue);
}

function locator(doc: Document, file: string, at: (offset: number) => { line: number; col: number }): Located {
  return {
    file,
    issueAt(path, message, key = false) {
      const offset = offsetOf(doc, path, key);
      return { file, ...at(offset), path: formatPath(path), message, offset };
    },
  };
}

/** Where `path` was written: its value node (or key), else the deepest enclosing node that exists. */
function offsetOf(doc: Document, path: Path, key: boolean): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const [i, seg] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (pair === undefined) return offset;
      const keyStart = rangeStart(pair.key);
      if (key && i === path.length - 1) return keyStart ?? offset;
      // A key with no value (`threads:`) has no node of its own: point at the key.
      node = pair.value;
      offset = rangeStart(node) ?? keyStart ?? offset;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (node === undefined) return offset;
      offset = rangeStart(node) ?? offset;
    } else return offset;
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  return range?.[0];
}

/** `['phases', 2, 'optIn', 0]` -> `phases[2].optIn[0]`; the root is `plan`. */
export function formatPath(path: Path): string {
  if (path.length === 0) return 'plan';
  return path.map((seg, i) => (typeof seg === 'number' ? `[${seg}]` : i === 0 ? String(seg) : `.${String(seg)}`)).join('');
}

// ---------------------------------------------------------------------------------------------
// From zod issues to one-line messages: what was expected, and what was there.

function toPlanIssues(issue: z.core.$ZodIssue, located: Located, data: unknown): (PlanIssue & { offset: number })[] {
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(issue.path, data);
    return issue.keys.map((k) => {
      const near = known.find((x) => x.toLowerCase() === k.toLowerCase()) ?? known.find((x) => editDistance(x, k) <= 2);
      const hint = near !== undefined ? `did you mean '${near}'?` : `expected one of ${known.join(', ')}`;
      return located.issueAt([...issue.path, k], `unknown field (${hint})`, true);
    });
  }
  if (issue.code === 'custom') return [located.issueAt(issue.path, issue.message)];
  return [located.issueAt(issue.path, `expected ${expectation(issue, data)} (${got(issue)})`)];
}

function got(issue: z.core.$ZodIssue): string {
  let input = (issue as { input?: unknown }).input;
  // A discriminated union reports the whole object; what was wrong is its discriminator.
  const discriminator = (issue as { discriminator?: string }).discriminator;
  if (discriminator !== undefined) input = (input as Record<string, unknown> | null | undefined)?.[discriminator];
  if (input === undefined) return 'missing';
  return `got ${describeValue(input)}`;
}

function describeValue(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  return typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' ? String(value) : typeof value;
}

const TYPE_WORDS: Readonly<Record<string, string>> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

function expectation(issue: z.core.$ZodIssue, data: unknown): string {
  switch (issue.code) {
    case 'invalid_type': {
      const schema = issue.expected === 'number' ? schemaAt(issue.path, data) : undefined;
      const integer = schema !== undefined && defOf(schema).format?.endsWith('int') === true;
      return integer ? 'an integer' : (TYPE_WORDS[issue.expected] ?? issue.expected);
    }
    case 'invalid_value':
      return issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${issue.values.map(String).join(', ')}`;
    case 'too_small':
    case 'too_big': {
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      const op = issue.code === 'too_small' ? (issue.inclusive === false ? '>' : '>=') : issue.inclusive === false ? '<' : '<=';
      if (issue.origin === 'array' || issue.origin === 'set')
        return issue.code === 'too_small' ? `at least ${String(bound)} item${bound === 1 ? '' : 's'}` : `at most ${String(bound)} items`;
      if (issue.origin === 'string') return issue.code === 'too_small' && bound === 1 ? 'a non-empty string' : `a string of ${op} ${String(bound)} characters`;
      const schema = schemaAt(issue.path, data);
      const integer = schema !== undefined && defOf(schema).format?.endsWith('int') === true;
      return `${integer ? 'an integer' : 'a number'} ${op} ${String(bound)}`;
    }
    case 'invalid_format':
      return issue.message;
    case 'invalid_union': {
      const discriminator = (issue as { discriminator?: string }).discriminator;
      const options = (issue as { options?: unknown[] }).options;
      if (discriminator !== undefined && options !== undefined) return `one of ${options.map(String).join(', ')}`;
      const branches = issue.errors.map((branch) => branch.find((i) => i.path.length === 0)).filter((i) => i !== undefined);
      return branches.length === 0 ? 'a valid value' : [...new Set(branches.map((b) => expectation(b, undefined)))].join(' or ');
    }
    default:
      return issue.message;
  }
}

type Def = {
  type: string;
  format?: string;
  innerType?: z.core.$ZodType;
  shape?: Record<string, z.core.$ZodType>;
  element?: z.core.$ZodType;
  valueType?: z.core.$ZodType;
  options?: z.core.$ZodType[];
  discriminator?: string;
  values?: unknown[];
};
const defOf = (schema: z.core.$ZodType): Def => schema._zod.def;

/**
 * The schema that judged the value at `path` of `data`, wrappers (optional, default) removed; a
 * discriminated union resolves to the option the value's discriminator picks. Undefined when the
 * path leaves the schema.
 */
function schemaAt(path: Path, data: unknown): z.core.$ZodType | undefined {
  let schema: z.core.$ZodType = planSchema;
  let value = data;
  for (let i = 0; ;) {
    for (let def = defOf(schema); def.innerType !== undefined && ['optional', 'default', 'nullable', 'prefault'].includes(def.type); def = defOf(schema))
      schema = def.innerType;
    const def = defOf(schema);
    if (def.type === 'union' && def.discriminator !== undefined && def.options !== undefined) {
      const tag = (value as Record<string, unknown> | null)?.[def.discriminator];
      const option = def.options.find((o) => defOf(defOf(o).shape?.[def.discriminator!] ?? o).values?.includes(tag));
      if (option === undefined) return schema;
      schema = option;
      continue;
    }
    if (i === path.length) return schema;
    const seg = path[i++]!;
    value = (value as Record<PropertyKey, unknown> | null | undefined)?.[seg];
    if (def.type === 'object' && typeof seg === 'string' && def.shape?.[seg] !== undefined) schema = def.shape[seg];
    else if (def.type === 'array' && def.element !== undefined) schema = def.element;
    else if (def.type === 'record' && def.valueType !== undefined) schema = def.valueType;
    else return undefined;
  }
}

/** The fields the object at `path` accepts (to suggest the right spelling of an unknown one). */
function knownKeys(path: Path, data: unknown): string[] {
  const schema = schemaAt(path, data);
  return Object.keys((schema !== undefined ? defOf(schema).shape : undefined) ?? {});
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
