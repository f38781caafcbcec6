// The conversion plan's schema (zod 4): the shape of a plan file and the checks across its
// fields. The same schema gives the TypeScript types, the loader's errors and the JSON Schema for
// editors (docs/plan.schema.json), so the three never disagree. docs/plans.md is the user's guide.
import type { FindingKind, SubsystemKind } from '@vmalock/core';
import { POLICIES, type PolicyEntry } from '@vmalock/policies';
import { SUBSYSTEMS } from '@vmalock/subsystems';
import * as z from 'zod';
import { workloadByName, workloadNames } from '../workloads/registry.js';

/** The workloads a process may run, by name: the workload registry's (docs/workloads.md). */
export const WORKLOAD_NAMES: readonly string[] = workloadNames();

/** Words a phase's `converted` may use for every attached subsystem of a kind, or all of them. */
export const CONVERSION_GROUPS = ['arch', 'fs', 'driver', 'hugepage', 'all'] as const satisfies readonly (SubsystemKind | 'all')[];
export type ConversionGroup = (typeof CONVERSION_GROUPS)[number];

/** Every `FindingKind`, for `no-findings` gates (the type check below keeps the two lists equal). */
export const FINDING_KINDS = ['invariant', 'assertion', 'race', 'deadlock', 'linearizability', 'lock-order', 'error'] as const;
type MissingFindingKind = Exclude<FindingKind, (typeof FINDING_KINDS)[number]>;
const findingKindsComplete: [MissingFindingKind] extends [never] ? true : MissingFindingKind = true;
void findingKindsComplete;

/** How many schedules a phase explores when neither it nor a `no-findings` gate says. */
export const DEFAULT_PHASE_SCHEDULES = 20;

/** Process, phase and gate names: they appear in reports, JUnit test names and file names. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const NAME_EXPECTED = "a name of letters, digits, '-', '_' or '.' (not starting with '-', '_' or '.')";

/** A subsystem attached by path: a compiled JavaScript module (Node 20 does not run TypeScript). */
const SUBSYSTEM_FILE_PATTERN = /\.[cm]?js$/;

/** True when a `subsystems` entry of a process names a file rather than a built-in subsystem. */
export function isSubsystemFile(ref: string): boolean {
  return SUBSYSTEM_FILE_PATTERN.test(ref);
}

/** The names the schema accepts; the defaults are the built-in registries. */
export interface PlanNames {
  readonly workloadNames?: readonly string[];
  /** The lock policies, each with the options a plan may set. */
  readonly policies?: readonly Pick<PolicyEntry, 'name' | 'options'>[];
  /** The built-in subsystems with their kinds (a plan may also attach `.js` files). */
  readonly subsystems?: readonly { readonly name: string; readonly kind: SubsystemKind }[];
}

const nonEmptyEnum = (values: readonly string[], what: string) => {
  if (values.length === 0) throw new RangeError(`makePlanSchema: no ${what} to accept`);
  return z.enum(values as [string, ...string[]]);
};

/** The plan's shape and defaults over `names`, without the checks across fields. */
function makePlanObject(names: PlanNames) {
  const workloadNames = names.workloadNames ?? WORKLOAD_NAMES;
  const policies = names.policies ?? POLICIES;
  const builtins = names.subsystems ?? SUBSYSTEMS;
  const builtinNames = builtins.map((s) => s.name);

  const name = (what: string) => z.string().regex(NAME_PATTERN, { error: NAME_EXPECTED }).meta({ description: what });

  const workload = z
    .strictObject({
      name: nonEmptyEnum(workloadNames, 'workload names').meta({ description: 'The workload generator, by name (docs/plans.md lists them)' }),
      params: z
        .record(z.string(), z.unknown())
        .optional()
        .meta({ description: "The workload's parameters, by name; each workload documents its own and their defaults" }),
    })
    // Each workload's own parameters, checked against its schema (docs/workloads.md).
    .superRefine((w, ctx) => {
      if (!workloadNames.includes(w.name) || !WORKLOAD_NAMES.includes(w.name)) return;
      const parsed = workloadByName(w.name).params.safeParse(w.params ?? {});
      if (!parsed.success)
        for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: ['params', ...issue.path], message: `${w.name}: ${issue.message}` });
    })
    .meta({ description: 'What the threads of the process run' });

  const subsystemRef = z
    .union([
      nonEmptyEnum(builtinNames, 'subsystems'),
      z
        .string()
        .regex(SUBSYSTEM_FILE_PATTERN, { error: `a built-in subsystem (${builtinNames.join(', ')}) or a path to a .js file` })
        .meta({ description: 'A third-party subsystem: a path to a .js file' }),
    ])
    .meta({ description: 'A built-in subsystem by name, or a path to a subsystem .js file (relative to the plan file)' });

  const process = z
    .strictObject({
      name: name('The process name, unique in the plan'),
      workload,
      threads: z.int().min(1).max(1024).meta({ description: 'Simulated threads running the workload' }),
      cpus: z.int().min(1).max(1024).meta({ description: 'Simulated CPUs the threads run on (may outnumber the real cores)' }),
      subsystems: z
        .array(subsystemRef)
        .default([])
        .meta({ description: 'The subsystems attached to the process (its open files, drivers, arch hooks); each runs legacy until a phase converts it' }),
    })
    .meta({ description: 'A simulated process: one mm_struct, its threads and the subsystems it uses' });

  const blocking = z
    .boolean()
    .default(true)
    .meta({ description: 'false: the verdict is reported but a failure does not block the later phases (an experiment)' });

  const gateName = z.string().min(1).optional().meta({ description: 'The name reports use; default from the kind (no-findings, throughput:<process>)' });

  const noFindingsGate = z
    .strictObject({
      kind: z.literal('no-findings'),
      name: gateName,
      findingKinds: z.array(z.enum(FINDING_KINDS)).min(1).optional().meta({ description: 'The kinds of finding that fail the gate; default every kind' }),
      schedules: z.int().min(1).max(1_000_000).meta({ description: 'Passes when this many schedules of the phase show no finding of those kinds' }),
      blocking,
    })
    .meta({ description: 'No findings of the chosen kinds over N schedules' });

  const throughputGate = z
    .strictObject({
      kind: z.literal('throughput'),
      name: gateName,
      process: z.string().meta({ description: 'The process whose throughput is compared' }),
      atLeastPercentOfBaseline: z
        .number()
        .gt(0)
        .max(100_000)
        .meta({ description: "Passes when the process's throughput is at least this percent of its throughput in the baseline phase" }),
      blocking,
    })
    .meta({ description: "A process's throughput against the baseline phase" });

  const gate = z.discriminatedUnion('kind', [noFindingsGate, throughputGate]).meta({ description: 'What must hold for the phase to pass' });

  const phase = z
    .strictObject({
      name: name('The phase name, unique in the plan'),
      policy: nonEmptyEnum(
        policies.map((p) => p.name),
        'policies',
      ).meta({ description: 'The lock policy of the processes that opt in' }),
      policyOptions: z
        .record(z.string(), z.union([z.string(), z.boolean()]))
        .optional()
        .meta({ description: "The policy's design choices (see vmalock --help and docs/locking.md); default each option's default" }),
      converted: z
        .array(
          z.union([
            z.enum([...CONVERSION_GROUPS, ...builtinNames] as [string, ...string[]]),
            z.string().meta({ description: 'A subsystem loaded from a file: its path or its name' }),
          ]),
        )
        .default([])
        .meta({
          description:
            'The subsystems this phase converts, in addition to those earlier phases converted: names, or arch, fs, driver, hugepage or all for every attached subsystem of that kind',
        }),
      optIn: z
        .array(z.string())
        .min(1)
        .optional()
        .meta({ description: "The processes that move to this phase's policy; the others stay on their policy of the previous phase. Default: every process" }),
      gates: z.array(gate).default([]).meta({ description: 'What must hold for the phase to pass' }),
      schedules: z
        .int()
        .min(1)
        .max(1_000_000)
        .optional()
        .meta({
          description: `Schedules the phase explores for findings; default the most any of its no-findings gates needs, else ${DEFAULT_PHASE_SCHEDULES}`,
        }),
    })
    .meta({ description: 'One step of the conversion: a policy, what is converted, who opts in, and its gates' });

  return z
    .strictObject({
      $schema: z.string().optional().meta({ description: 'The JSON Schema this file follows (for editors)' }),
      name: z.string().min(1).meta({ description: 'The plan name, shown in reports' }),
      seed: z.int().min(0).default(1).meta({ description: 'The one seed every random choice of the run derives from' }),
      processes: z.array(process).min(1).meta({ description: 'The simulated processes, each with its workload and subsystems' }),
      phases: z.array(phase).min(1).meta({ description: 'The steps of the conversion, run in order' }),
      baseline: z.string().optional().meta({ description: 'The phase throughput gates compare to; default the first phase' }),
    })
    .meta({ title: 'vmalock conversion plan', description: 'A staged conversion of the memory manager away from mmap_sem (docs/plans.md)' });
}

/** The plan schema over `names`: the shape, the defaults, and every check across fields. */
export function makePlanSchema(names: PlanNames = {}) {
  const policies = names.policies ?? POLICIES;
  const builtins = names.subsystems ?? SUBSYSTEMS;
  const check: CheckNames = { policies, builtinKinds: new Map(builtins.map((s) => [s.name, s.kind])) };
  return makePlanObject(names).superRefine((plan, ctx) => checkPlan(plan, ctx, check));
}

/** The plan schema over the built-in workloads, policies and subsystems. */
export const planSchema = makePlanSchema();

/** A plan as written (defaults not applied). */
export type PlanInput = z.input<ReturnType<typeof makePlanObject>>;
/** A valid plan, defaults applied. */
export type Plan = z.output<ReturnType<typeof makePlanObject>>;
export type PlanProcess = Plan['processes'][number];
export type PlanPhase = Plan['phases'][number];
export type PlanGate = PlanPhase['gates'][number];

type Ctx = z.RefinementCtx<Plan>;
interface CheckNames {
  readonly policies: readonly Pick<PolicyEntry, 'name' | 'options'>[];
  readonly builtinKinds: ReadonlyMap<string, SubsystemKind>;
}

const list = (xs: readonly string[]): string => (xs.length === 0 ? 'none' : [...new Set(xs)].join(', '));

/** Report a second use of a name at `path`, naming the first. */
function checkUnique(ctx: Ctx, values: readonly string[], path: (i: number) => (string | number)[], what: string, where: (i: number) => string): void {
  const first = new Map<string, number>();
  values.forEach((v, i) => {
    const at = first.get(v);
    if (at === undefined) first.set(v, i);
    else ctx.addIssue({ code: 'custom', path: path(i), message: `duplicate ${what} '${v}' (also at ${where(at)})` });
  });
}

/**
 * The checks across fields: unique names; opt-in, gate and baseline names that exist; converted
 * subsystems that are attached; policy options the policy has; gates that can be judged. A
 * converted name that may belong to a subsystem loaded from a file is left to `loadResolvedPlan`,
 * which loads the files.
 */
function checkPlan(plan: Plan, ctx: Ctx, names: CheckNames): void {
  const processNames = plan.processes.map((p) => p.name);
  checkUnique(
    ctx,
    processNames,
    (i) => ['processes', i, 'name'],
    'process name',
    (i) => `processes[${i}]`,
  );
  checkUnique(
    ctx,
    plan.phases.map((p) => p.name),
    (i) => ['phases', i, 'name'],
    'phase name',
    (i) => `phases[${i}]`,
  );
  plan.processes.forEach((p, i) =>
    checkUnique(
      ctx,
      p.subsystems,
      (j) => ['processes', i, 'subsystems', j],
      'subsystem',
      (j) => `processes[${i}].subsystems[${j}]`,
    ),
  );

  const attached = new Set(plan.processes.flatMap((p) => p.subsystems));
  const hasFiles = [...attached].some(isSubsystemFile);
  const baselineIndex = plan.baseline === undefined ? 0 : plan.phases.findIndex((p) => p.name === plan.baseline);
  if (baselineIndex < 0)
    ctx.addIssue({
      code: 'custom',
      path: ['baseline'],
      message: `expected a phase name (got '${plan.baseline}'; phases: ${list(plan.phases.map((p) => p.name))})`,
    });

  plan.phases.forEach((phase, i) => {
    const at = (...rest: (string | number)[]) => ['phases', i, ...rest];
    const policy = names.policies.find((p) => p.name === phase.policy);
    for (const [key, value] of Object.entries(phase.policyOptions ?? {})) {
      const option = policy?.options[key];
      if (policy === undefined) break;
      if (option === undefined) {
        const known = Object.keys(policy.options);
        ctx.addIssue({
          code: 'custom',
          path: at('policyOptions', key),
          message: `policy '${policy.name}' has no option '${key}' (${known.length === 0 ? 'it has none' : `known: ${list(known)}`})`,
        });
      } else if (!option.values.includes(value)) {
        ctx.addIssue({
          code: 'custom',
          path: at('policyOptions', key),
          message: `expected one of ${option.values.map(String).join(', ')} (got ${JSON.stringify(value)})`,
        });
      }
    }

    if (phase.optIn !== undefined) {
      if (i === 0)
        ctx.addIssue({
          code: 'custom',
          path: at('optIn'),
          message: 'the first phase cannot have optIn: there is no previous phase for the other processes to stay on',
        });
      checkUnique(
        ctx,
        phase.optIn,
        (j) => at('optIn', j),
        'process',
        (j) => `optIn[${j}]`,
      );
      phase.optIn.forEach((p, j) => {
        if (!processNames.includes(p))
          ctx.addIssue({ code: 'custom', path: at('optIn', j), message: `expected a process name (got '${p}'; processes: ${list(processNames)})` });
      });
    }

    checkUnique(
      ctx,
      phase.converted,
      (j) => at('converted', j),
      'subsystem',
      (j) => `converted[${j}]`,
    );
    phase.converted.forEach((c, j) => {
      if ((CONVERSION_GROUPS as readonly string[]).includes(c) || attached.has(c)) return;
      if (names.builtinKinds.has(c)) {
        ctx.addIssue({
          code: 'custom',
          path: at('converted', j),
          message: `subsystem '${c}' is not attached to any process (attached: ${list([...attached])})`,
        });
      } else if (!hasFiles) {
        ctx.addIssue({
          code: 'custom',
          path: at('converted', j),
          message: `expected an attached subsystem or one of ${CONVERSION_GROUPS.join(', ')} (got '${c}'; attached: ${list([...attached])})`,
        });
      }
    });

    checkUnique(
      ctx,
      phase.gates.map(gateName),
      (j) => at('gates', j),
      'gate name',
      (j) => `gates[${j}]; give one a name`,
    );
    phase.gates.forEach((g, j) => {
      if (g.kind === 'no-findings') {
        checkUnique(
          ctx,
          g.findingKinds ?? [],
          (k) => at('gates', j, 'findingKinds', k),
          'finding kind',
          (k) => `findingKinds[${k}]`,
        );
        if (phase.schedules !== undefined && g.schedules > phase.schedules)
          ctx.addIssue({
            code: 'custom',
            path: at('gates', j, 'schedules'),
            message: `expected at most the phase's schedules, ${phase.schedules} (got ${g.schedules})`,
          });
        return;
      }
      if (!processNames.includes(g.process))
        ctx.addIssue({
          code: 'custom',
          path: at('gates', j, 'process'),
          message: `expected a process name (got '${g.process}'; processes: ${list(processNames)})`,
        });
      if (baselineIndex >= 0 && i <= baselineIndex)
        ctx.addIssue({
          code: 'custom',
          path: at('gates', j),
          message: `a throughput gate compares to the baseline phase '${plan.phases[baselineIndex]!.name}', which must run before this phase`,
        });
    });
  });
}

/** A gate's name in reports: its own, or one made from its kind. */
export function gateName(gate: PlanGate): string {
  if (gate.name !== undefined) return gate.name;
  return gate.kind === 'no-findings' ? 'no-findings' : `throughput:${gate.process}`;
}
