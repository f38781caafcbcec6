// The workloads by name: what plans, `bench` and the CLI name, and the parsing of their params.
import type { z } from 'zod';
import { ebizzy } from './ebizzy.js';
import { forkHeavy } from './forkHeavy.js';
import { jvmGc } from './jvmGc.js';
import { mallocArenas } from './mallocArenas.js';
import { mremapGrowth } from './mremapGrowth.js';
import { pft } from './pft.js';
import { procMaps } from './procMaps.js';
import { stackGrowth } from './stackGrowth.js';
import { straceReplay } from './straceReplay.js';
import { subsystemDriver } from './subsystemDriver.js';
import { mmap1, pageFault1 } from './willItScale.js';
import { type Workload, type WorkloadContext, type WorkloadName, WorkloadParamsError } from './workload.js';

/** Every workload, in the order docs and reports list them. */
export const WORKLOADS = [
  pft,
  pageFault1,
  mmap1,
  ebizzy,
  jvmGc,
  mallocArenas,
  stackGrowth,
  mremapGrowth,
  forkHeavy,
  procMaps,
  subsystemDriver,
  straceReplay,
] as const;

type AnyWorkload = (typeof WORKLOADS)[number];

/** The parsed params of workload `N`. */
export type WorkloadParams<N extends WorkloadName> = z.output<Extract<AnyWorkload, { readonly name: N }>['params']>;

/** The names of the workloads, in registry order. */
export function workloadNames(): WorkloadName[] {
  return WORKLOADS.map((w) => w.name);
}

/** The workload called `name`; throws `WorkloadParamsError` listing the known ones otherwise. */
export function workloadByName(name: string): Workload {
  const w = WORKLOADS.find((x) => x.name === name);
  if (w === undefined) throw new WorkloadParamsError(`unknown workload '${name}' (known: ${workloadNames().join(', ')})`);
  return w;
}

/**
 * Parse `raw` (a plan's `params`, JSON or YAML data; undefined means all defaults) into the
 * params of workload `name`, with every default filled in. Throws `WorkloadParamsError` naming
 * the workload and each bad field with what was expected.
 */
export function parseWorkloadParams<N extends WorkloadName>(name: N, raw: unknown): WorkloadParams<N>;
export function parseWorkloadParams(name: string, raw: unknown): unknown;
export function parseWorkloadParams(name: string, raw: unknown): unknown {
  const w = workloadByName(name);
  const parsed = w.params.safeParse(raw ?? {});
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message));
    throw new WorkloadParamsError(`workload '${name}': bad params: ${fields.join('; ')}`);
  }
  w.check?.(parsed.data);
  return parsed.data;
}

/** Parse `raw` as `name`'s params and spawn its threads into `ctx` (from a program's setup). */
export function spawnWorkload(name: string, ctx: WorkloadContext, raw: unknown): void {
  const w = workloadByName(name);
  if (!Number.isInteger(ctx.threads) || ctx.threads < 1)
    throw new WorkloadParamsError(`workload '${name}': threads must be an integer >= 1, got ${ctx.threads}`);
  w.spawn(ctx, parseWorkloadParams(name, raw) as z.output<typeof w.params>);
}
