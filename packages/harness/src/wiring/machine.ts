import 'reflect-metadata';
import { type LockPolicy, MmStruct, type MmLayout, type Subsystem, type SubsystemVariant } from '@vmalock/core';
import { type PolicyOptions, createPolicy } from '@vmalock/policies';
import type { SubsystemEntry } from '@vmalock/subsystems';
import { Container } from 'inversify';

/**
 * What one phase of a plan says about locking: the policy of the processes that opt in, the
 * policy the others stay on, and which subsystems run converted (the rest run legacy).
 */
export interface PhaseWiring {
  readonly policy: string;
  readonly policyOptions?: PolicyOptions;
  /** The processes on `policy`; every other process stays on `previousPolicy`. All when omitted. */
  readonly optedIn?: readonly string[];
  /** The policy of the processes that did not opt in (the previous phase's). */
  readonly previousPolicy?: string;
  readonly previousPolicyOptions?: PolicyOptions;
  /** Subsystems running their converted variant in this phase. */
  readonly converted: readonly string[];
}

/** A simulated process of a machine. */
export interface ProcessSpec {
  readonly name: string;
  readonly pid: number;
  readonly layout?: MmLayout;
}

/** A process as wired: its mm under its policy, and the subsystem instances serving it. */
export interface WiredProcess {
  readonly name: string;
  readonly pid: number;
  readonly policyName: string;
  readonly policy: LockPolicy;
  readonly mm: MmStruct;
  readonly subsystems: readonly Subsystem[];
}

/** Service identifiers of the containers. */
const POLICY = Symbol('LockPolicy');
const POLICY_NAME = Symbol('LockPolicy name');
const subsystemId = (name: string): string => `subsystem:${name}`;
const variantId = (name: string, variant: SubsystemVariant): string => `subsystem:${name}:${variant}`;

/**
 * Wire a simulated machine for one phase (inversify): a root container binds one shared instance
 * per (subsystem, variant) — a driver serves every process that uses it, as in the kernel — and
 * each process gets a child container binding its `LockPolicy` (the phase's when it opted in,
 * else the previous one) and, per subsystem, the variant the phase chose. Each container is
 * resolved once here, never in a simulation's hot loop; every subsystem is attached to every
 * process, in the order given.
 */
export function wireMachine(phase: PhaseWiring, processes: readonly ProcessSpec[], subsystems: readonly SubsystemEntry[]): WiredProcess[] {
  for (const name of phase.converted) {
    if (!subsystems.some((s) => s.name === name))
      throw new RangeError(`phase converts unknown subsystem '${name}' (known: ${subsystems.map((s) => s.name).join(', ') || 'none'})`);
  }
  for (const name of phase.optedIn ?? []) {
    if (!processes.some((p) => p.name === name))
      throw new RangeError(`phase opts in unknown process '${name}' (known: ${processes.map((p) => p.name).join(', ')})`);
  }
  const root = new Container();
  for (const s of subsystems) {
    for (const variant of ['legacy', 'converted'] as const) {
      root
        .bind<Subsystem>(variantId(s.name, variant))
        .toDynamicValue(() => s.create(variant))
        .inSingletonScope();
    }
  }
  const wired: WiredProcess[] = [];
  for (const spec of processes) {
    const optedIn = phase.optedIn === undefined || phase.optedIn.includes(spec.name);
    const policyName = optedIn ? phase.policy : (phase.previousPolicy ?? phase.policy);
    const options = optedIn ? phase.policyOptions : phase.previousPolicyOptions;
    const child = new Container({ parent: root });
    child.bind<LockPolicy>(POLICY).toConstantValue(createPolicy(policyName, options ?? {}));
    child.bind<string>(POLICY_NAME).toConstantValue(policyName);
    for (const s of subsystems) {
      const variant: SubsystemVariant = phase.converted.includes(s.name) ? 'converted' : 'legacy';
      child.bind<Subsystem>(subsystemId(s.name)).toService(variantId(s.name, variant));
    }
    const policy = child.get<LockPolicy>(POLICY);
    const mm = new MmStruct(spec.pid, policy, spec.layout ?? {});
    const served = subsystems.map((s) => child.get<Subsystem>(subsystemId(s.name)));
    wired.push({ name: spec.name, pid: spec.pid, policyName: child.get<string>(POLICY_NAME), policy, mm, subsystems: served });
  }
  for (const p of wired) for (const s of p.subsystems) s.attach({ pid: p.pid, name: p.name, mm: p.mm });
  return wired;
}
