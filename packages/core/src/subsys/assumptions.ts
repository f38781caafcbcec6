import 'reflect-metadata';
import type { HookSite, LockPolicy, ProvidedLock } from '../mm/lockPolicy.js';

/**
 * A lock a subsystem's code relies on. The policy-level names of `ProvidedLock`, plus `vma`:
 * "whatever the policy uses to keep the hook's VMA stable (read) or exclusively held (write)" —
 * what converted code asks for when it does not care which lock that is.
 */
export type AssumedLock = ProvidedLock['lock'] | 'vma';

/** One assumption: which lock, held in which mode, during which hook, protecting what, and why. */
export interface Assumption {
  readonly lock: AssumedLock;
  readonly mode: 'read' | 'write';
  /** The hook site the code runs at (`LockPolicy.provides` says what the policy holds there). */
  readonly hook: HookSite;
  /** The state it protects (a shared location's name, or a phrase). */
  readonly protects: string;
  /** Why the code needs it (one line, for reports). */
  readonly why: string;
}

/** An assumption as declared on a class (member null) or a method (member its name). */
export interface DeclaredAssumption extends Assumption {
  readonly member: string | null;
}

/** The metadata key every declaration is written under. */
export const ASSUMPTIONS_KEY = 'vmalock:assumptions';

/**
 * Declare an assumption on a subsystem class or on one of its methods:
 *
 *     @assumes({ lock: 'mmap_sem', mode: 'write', hook: 'mmapRegion', protects: 'pkey map', why: '...' })
 *     class PkeysLegacy { ... }
 *
 * The one thin helper that writes the metadata (under `ASSUMPTIONS_KEY`, on the class);
 * `readAssumptions` is the one reader. Needs `reflect-metadata` loaded before the class is
 * evaluated (this module imports it).
 */
export function assumes(assumption: Assumption): ClassDecorator & MethodDecorator {
  return ((target: object, member?: string | symbol, descriptor?: PropertyDescriptor): PropertyDescriptor | void => {
    const ctor = (typeof target === 'function' ? target : target.constructor) as object;
    const own = (Reflect.getOwnMetadata(ASSUMPTIONS_KEY, ctor) as DeclaredAssumption[] | undefined) ?? [];
    const entry: DeclaredAssumption = { ...assumption, member: member === undefined ? null : String(member) };
    Reflect.defineMetadata(ASSUMPTIONS_KEY, [...own, entry], ctor);
    // A method's declaration is also checked at run time: each call counts as the hook reached
    // (`assumptionHits`), so a checker can tell a conflicting declaration that really ran from
    // one that did not.
    const original: unknown = descriptor?.value;
    if (member === undefined || descriptor === undefined || typeof original !== 'function') return;
    const name = String(member);
    return {
      ...descriptor,
      value: function (this: object, ...args: unknown[]): unknown {
        let hits = assumptionCalls.get(this);
        if (hits === undefined) assumptionCalls.set(this, (hits = new Map<string, number>()));
        hits.set(name, (hits.get(name) ?? 0) + 1);
        return (original as (...a: unknown[]) => unknown).apply(this, args);
      },
    };
  }) as ClassDecorator & MethodDecorator;
}

const assumptionCalls = new WeakMap<object, Map<string, number>>();

/** How often each method of `instance` that declares an assumption was called (by member name). */
export function assumptionHits(instance: object): ReadonlyMap<string, number> {
  return assumptionCalls.get(instance) ?? new Map();
}

/**
 * Every assumption declared on `subject` (an instance or a class) and its base classes, base
 * first, each class's in declaration order (decorators run bottom-up; the order is kept).
 */
export function readAssumptions(subject: object): DeclaredAssumption[] {
  let ctor: object | null = typeof subject === 'function' ? subject : subject.constructor;
  const chain: object[] = [];
  while (ctor !== null && ctor !== Function.prototype && ctor !== Object) {
    chain.unshift(ctor);
    ctor = Object.getPrototypeOf(ctor) as object | null;
  }
  const out: DeclaredAssumption[] = [];
  for (const c of chain) out.push(...((Reflect.getOwnMetadata(ASSUMPTIONS_KEY, c) as DeclaredAssumption[] | undefined) ?? []));
  return out;
}

/** The static verdict of one assumption under one policy. */
export interface AssumptionVerdict extends DeclaredAssumption {
  /** What the policy holds at the hook. */
  readonly provided: readonly ProvidedLock[];
  readonly verdict: 'ok' | 'conflict';
}

/**
 * Does `policy` hold what `a` needs at its hook? A write hold satisfies a read need; `vma` is
 * satisfied by any lock the policy holds there (in write mode for a write need).
 */
export function checkAssumption(a: DeclaredAssumption, policy: LockPolicy): AssumptionVerdict {
  const provided = policy.provides(a.hook);
  const satisfies = (p: ProvidedLock): boolean => (a.lock === 'vma' || p.lock === a.lock) && (a.mode === 'read' || p.mode === 'write');
  return { ...a, provided, verdict: provided.some(satisfies) ? 'ok' : 'conflict' };
}
