// Proves that the simulated mm behaves like Linux for sequences of mm syscalls and faults run by
// one thread: fast-check generates command lists (mmap of private and shared, anonymous and
// file-backed memory with MAP_FIXED, MAP_FIXED_NOREPLACE, hints or no address, MAP_GROWSDOWN,
// MAP_NORESERVE, MAP_STACK; munmap; mprotect, also with PROT_GROWSDOWN; mremap shrinking,
// growing in place, moving with MREMAP_MAYMOVE and MREMAP_FIXED; brk; madvise DONTNEED,
// DONTFORK, DOFORK, HUGEPAGE, NOHUGEPAGE; read and write faults) and runs each command on a
// fresh `MmStruct` (global-rwsem policy) and on `ReferenceMm`, a naive page-by-page model
// written from the kernel sources (see referenceMm.ts for the version and what it leaves out).
// After every command the two must return the same value (address, errno, break, fault
// outcome), `checkMmInvariants` must hold, and `/proc/pid/maps` must be the same text, byte for
// byte.
//
// Why exact maps and not a per-page comparison: VMA boundaries depend on history (an anon_vma
// set by a fault blocks later merges, an unfaulted anonymous VMA moved by mremap takes its new
// address as pgoff and a faulted one keeps its old one, a split that fails at max_map_count
// leaves the first half split, the heap only grows a VMA above start_brk), so a reference that
// only coalesced equal pages would be wrong in both directions. The reference instead records
// in every page the identity of its VMA and the VMA's anon_vma, and applies the kernel's split
// and merge rules by relabelling pages, which makes the whole maps text, and map_count (hence
// every ENOMEM at max_map_count), predictable.
//
// Every run starts with 1-6 MAP_FIXED mappings of any kind filling a window of 64 pages (W
// below; its first 48 pages lie just under mmap_base, so top-down placement lands in it, and
// start_brk is W+8p), then runs up to 34 more commands. A command's addresses are either window
// pages or, resolved when the command runs, a few pages around the start or end of a VMA mapped
// then; lengths are 1-16 pages, up to (around) the end of a VMA, sometimes unaligned, zero or
// 2 MiB (THP-aligned placement). So placement, MAP_FIXED and mremap targets, the heap, stacks
// and faults keep colliding, and splits and merges happen at VMA boundaries. A quarter of the
// runs use a max_map_count of 4-12 to reach every ENOMEM path.
//
// A failure prints the fast-check seed and path, the command that replays it
// (VMALOCK_MODEL_POLICY=... VMALOCK_MODEL_SEED=... VMALOCK_MODEL_PATH=... npx vitest run --project policies src/mm/model),
// the shrunk command list with both sides' results, both maps texts and a picture of the window.
// VMALOCK_MODEL_RUNS=N runs N scenarios instead of the default (for a deeper search).
import fc from 'fast-check';
import { describe, it } from 'vitest';
import {
  DEFAULT_MAX_MAP_COUNT,
  MADV_DOFORK,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_FIXED_NOREPLACE,
  MAP_GROWSDOWN,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_STACK,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  MmFile,
  MmStruct,
  PAGE_SIZE,
  PROT_EXEC,
  PROT_GROWSDOWN,
  PROT_GROWSUP,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  checkMmInvariants,
  errnoNames,
  handleMmFault,
  madviseNames,
  mapFlagNames,
  mremapFlagNames,
  protNames,
  renderMaps,
  runMmOp,
  sysBrk,
  sysMadvise,
  sysMmap,
  sysMprotect,
  sysMremap,
  sysMunmap,
} from '@vmalock/core';
import { POLICIES, createPolicy } from '../registry.js';
import { ReferenceMm } from './referenceMm.js';

const P = PAGE_SIZE;
/** `mm->mmap_base`, 2 MiB-aligned so that THP-aligned placement is easy to read. */
const MMAP_BASE = 0x7f0000000000;
const WINDOW_PAGES = 64;
/** The window's first page: top-down placement starts under its 48th page. */
const W = MMAP_BASE - 48 * P;
const START_BRK = W + 8 * P;
/** Far above the window, as for a real process. */
const START_STACK = 0x7ffffffde000;
/** Scenarios per test run: about 3 s. */
const RUNS = 500;
const COMMANDS_MAX = 40;
/** Up to this many of them are MAP_FIXED mappings that fill the window first. */
const FILL_MAX = 6;

// --- commands ---

/** A command as run: every address and length concrete. */
type Cmd =
  | {
      readonly op: 'mmap';
      readonly addr: number;
      readonly len: number;
      readonly prot: number;
      readonly flags: number;
      readonly fd: number;
      readonly offset: number;
    }
  | { readonly op: 'munmap'; readonly addr: number; readonly len: number }
  | { readonly op: 'mprotect'; readonly addr: number; readonly len: number; readonly prot: number }
  | { readonly op: 'mremap'; readonly addr: number; readonly oldLen: number; readonly newLen: number; readonly flags: number; readonly newAddr: number }
  | { readonly op: 'brk'; readonly addr: number }
  | { readonly op: 'madvise'; readonly addr: number; readonly len: number; readonly advice: number }
  | { readonly op: 'fault'; readonly addr: number; readonly access: 'read' | 'write' };

/**
 * Where an address comes from, decided when the command runs so that commands land on what is
 * mapped then: a window page, or a few pages around the start or end of the `index`-th VMA
 * (modulo the VMA count; a window page when nothing is mapped). `byte` unaligns it.
 */
type AddrSpec =
  | { readonly kind: 'page'; readonly page: number; readonly byte: number }
  | { readonly kind: 'vma'; readonly index: number; readonly edge: 'start' | 'end'; readonly pages: number; readonly byte: number };

/** A length: bytes, from the address to the end of the VMA there (plus `pages`), or another length plus `pages`. */
type LenSpec =
  | { readonly kind: 'bytes'; readonly bytes: number }
  | { readonly kind: 'toVmaEnd'; readonly pages: number }
  | { readonly kind: 'delta'; readonly pages: number };

/** A command as generated: addresses and lengths still to resolve against the reference's VMAs. */
type CmdSpec =
  | {
      readonly op: 'mmap';
      readonly addr: AddrSpec | null;
      readonly len: LenSpec;
      readonly prot: number;
      readonly flags: number;
      readonly fd: number;
      readonly offset: number;
    }
  | { readonly op: 'munmap'; readonly addr: AddrSpec; readonly len: LenSpec }
  | { readonly op: 'mprotect'; readonly addr: AddrSpec; readonly len: LenSpec; readonly prot: number }
  | { readonly op: 'mremap'; readonly addr: AddrSpec; readonly oldLen: LenSpec; readonly newLen: LenSpec; readonly flags: number; readonly newAddr: AddrSpec }
  | { readonly op: 'brk'; readonly addr: number }
  | { readonly op: 'madvise'; readonly addr: AddrSpec; readonly len: LenSpec; readonly advice: number }
  | { readonly op: 'fault'; readonly addr: AddrSpec; readonly access: 'read' | 'write' };

interface Config {
  readonly maxMapCount: number;
}

function resolveAddr(spec: AddrSpec, vmas: readonly { readonly start: number; readonly end: number }[]): number {
  const vma = spec.kind === 'vma' ? vmas[spec.index % Math.max(1, vmas.length)] : undefined;
  if (spec.kind === 'page' || vma === undefined) return W + (spec.kind === 'page' ? spec.page : spec.index % WINDOW_PAGES) * P + spec.byte;
  return (spec.edge === 'start' ? vma.start : vma.end) + spec.pages * P + spec.byte;
}

function resolveLen(spec: LenSpec, addr: number, vmas: readonly { readonly start: number; readonly end: number }[], base: number): number {
  if (spec.kind === 'bytes') return spec.bytes;
  const from = spec.kind === 'delta' ? base : (vmas.find((v) => v.end > addr)?.end ?? addr + P) - addr;
  return Math.max(P, from + spec.pages * P);
}

/** The concrete command `spec` is, given the VMAs mapped now. */
function resolve(spec: CmdSpec, vmas: readonly { readonly start: number; readonly end: number }[]): Cmd {
  const at = (a: AddrSpec): number => resolveAddr(a, vmas);
  switch (spec.op) {
    case 'mmap': {
      // Without an address, a length relative to a VMA means a few pages.
      const addr = spec.addr === null ? 0 : at(spec.addr);
      const len = spec.addr === null && spec.len.kind !== 'bytes' ? (2 + spec.len.pages) * P : resolveLen(spec.len, addr, vmas, 0);
      return { ...spec, addr, len };
    }
    case 'munmap':
    case 'mprotect':
    case 'madvise': {
      const addr = at(spec.addr);
      return { ...spec, addr, len: resolveLen(spec.len, addr, vmas, 0) };
    }
    case 'mremap': {
      const addr = at(spec.addr);
      const oldLen = resolveLen(spec.oldLen, addr, vmas, 0);
      return { ...spec, addr, oldLen, newLen: resolveLen(spec.newLen, addr, vmas, oldLen), newAddr: at(spec.newAddr) };
    }
    case 'brk':
      return spec;
    case 'fault':
      return { ...spec, addr: at(spec.addr) };
  }
}

const byteArb = fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: P - 1 }) });
const pageAddrArb: fc.Arbitrary<AddrSpec> = fc.record({ kind: fc.constant('page'), page: fc.integer({ min: 0, max: WINDOW_PAGES - 1 }), byte: byteArb });
const addrArb: fc.Arbitrary<AddrSpec> = fc.oneof(
  { weight: 2, arbitrary: pageAddrArb },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('vma'),
      index: fc.nat({ max: 40 }),
      edge: fc.constantFrom('start', 'end'),
      pages: fc.constantFrom(0, 0, 0, 0, -1, 1, -2, 2, -3, 3),
      byte: byteArb,
    }),
  },
);
/** 1-16 pages, sometimes to (around) the end of a VMA, an unaligned byte count, or zero. */
const lenArb: fc.Arbitrary<LenSpec> = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 1, max: 16 }).map((n) => ({ kind: 'bytes', bytes: n * P }) as const) },
  { weight: 6, arbitrary: fc.constantFrom(0, 0, 0, -1, 1, 2).map((pages) => ({ kind: 'toVmaEnd', pages }) as const) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 16 * P }).map((bytes) => ({ kind: 'bytes', bytes }) as const) },
  { weight: 1, arbitrary: fc.constant({ kind: 'bytes', bytes: 0 } as const) },
);
const protArb = fc.constantFrom(
  PROT_READ | PROT_WRITE,
  PROT_READ | PROT_WRITE,
  PROT_READ,
  PROT_READ,
  PROT_NONE,
  PROT_READ | PROT_EXEC,
  PROT_READ | PROT_WRITE | PROT_EXEC,
  PROT_WRITE,
);

/** Files by fd: two read-write, one read-only; fd 9 is not open. */
function makeFiles(): Map<number, MmFile> {
  return new Map([
    [3, new MmFile('/srv/model/a.dat', 1001, 8, 1)],
    [4, new MmFile('/srv/model/b.dat', 1002, 8, 1)],
    [5, new MmFile('/srv/model/ro.dat', 1003, 8, 1, true, false)],
  ]);
}

const mmapArb: fc.Arbitrary<CmdSpec> = fc
  .record({
    kind: fc.constantFrom('anon', 'anon', 'anon', 'shared', 'file', 'fileShared'),
    placement: fc.constantFrom('fixed', 'fixed', 'fixed', 'noreplace', 'hint', 'none', 'none'),
    addr: addrArb,
    len: fc.oneof({ weight: 30, arbitrary: lenArb }, { weight: 1, arbitrary: fc.constant({ kind: 'bytes', bytes: 512 * P } as const) }),
    prot: protArb,
    fd: fc.constantFrom(3, 3, 4, 5, 9),
    offset: fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 0, max: 8 }).map((n) => n * P) }, { weight: 1, arbitrary: fc.constant(0x123) }),
    extra: fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 0, MAP_GROWSDOWN, MAP_GROWSDOWN, MAP_NORESERVE, MAP_STACK),
  })
  .map((r) => {
    const anon = r.kind === 'anon' || r.kind === 'shared';
    const type = r.kind === 'anon' || r.kind === 'file' ? MAP_PRIVATE : MAP_SHARED;
    const where = r.placement === 'fixed' ? MAP_FIXED : r.placement === 'noreplace' ? MAP_FIXED_NOREPLACE : 0;
    return {
      op: 'mmap',
      addr: r.placement === 'none' ? null : r.addr,
      len: r.len,
      prot: r.prot,
      flags: type | (anon ? MAP_ANONYMOUS : 0) | where | r.extra,
      fd: anon ? -1 : r.fd,
      offset: anon ? 0 : r.offset,
    } as const;
  });

const cmdArb: fc.Arbitrary<CmdSpec> = fc.oneof(
  { weight: 26, arbitrary: mmapArb },
  { weight: 11, arbitrary: fc.record({ op: fc.constant('munmap'), addr: addrArb, len: lenArb }) },
  {
    weight: 15,
    arbitrary: fc.record({
      op: fc.constant('mprotect'),
      addr: addrArb,
      len: lenArb,
      prot: fc.tuple(protArb, fc.constantFrom(0, 0, 0, 0, 0, 0, 0, PROT_GROWSDOWN, PROT_GROWSDOWN, PROT_GROWSUP)).map(([p, g]) => p | g),
    }),
  },
  {
    weight: 15,
    arbitrary: fc.record({
      op: fc.constant('mremap'),
      addr: addrArb,
      oldLen: fc.oneof({ weight: 20, arbitrary: lenArb }, { weight: 1, arbitrary: fc.constant({ kind: 'bytes', bytes: 0 } as const) }),
      newLen: fc.oneof(
        { weight: 1, arbitrary: lenArb },
        { weight: 1, arbitrary: fc.integer({ min: -3, max: 4 }).map((pages) => ({ kind: 'delta', pages }) as const) },
      ),
      flags: fc.constantFrom(0, 0, MREMAP_MAYMOVE, MREMAP_MAYMOVE, MREMAP_MAYMOVE | MREMAP_FIXED, MREMAP_MAYMOVE | MREMAP_FIXED, MREMAP_FIXED),
      newAddr: addrArb,
    }),
  },
  {
    weight: 7,
    arbitrary: fc
      .tuple(fc.integer({ min: -2, max: 30 }), fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: P - 1 }) }))
      .map(([n, o]) => ({ op: 'brk', addr: START_BRK + n * P + o }) as const),
  },
  {
    weight: 10,
    arbitrary: fc.record({
      op: fc.constant('madvise'),
      addr: addrArb,
      len: lenArb,
      advice: fc.constantFrom(MADV_DONTNEED, MADV_DONTFORK, MADV_DOFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE),
    }),
  },
  { weight: 16, arbitrary: fc.record({ op: fc.constant('fault'), addr: addrArb, access: fc.constantFrom('read', 'write') }) },
);

/** A MAP_FIXED mapping of 2-16 pages of any kind, to fill the window at the start of a run. */
const fillArb: fc.Arbitrary<CmdSpec> = fc
  .record({
    kind: fc.constantFrom('anon', 'anon', 'shared', 'file', 'fileShared'),
    page: fc.integer({ min: 0, max: WINDOW_PAGES - 2 }),
    pages: fc.integer({ min: 2, max: 16 }),
    prot: protArb,
    fd: fc.constantFrom(3, 4, 5),
    filePage: fc.integer({ min: 0, max: 8 }),
  })
  .map((r) => {
    const anon = r.kind === 'anon' || r.kind === 'shared';
    const type = r.kind === 'anon' || r.kind === 'file' ? MAP_PRIVATE : MAP_SHARED;
    const prot = r.kind === 'fileShared' && r.fd === 5 ? r.prot & ~PROT_WRITE : r.prot;
    const flags = type | MAP_FIXED | (anon ? MAP_ANONYMOUS : 0);
    const addr = { kind: 'page', page: r.page, byte: 0 } as const;
    return { op: 'mmap', addr, len: { kind: 'bytes', bytes: r.pages * P }, prot, flags, fd: anon ? -1 : r.fd, offset: anon ? 0 : r.filePage * P } as const;
  });

const configArb: fc.Arbitrary<Config> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ maxMapCount: DEFAULT_MAX_MAP_COUNT }) },
  { weight: 1, arbitrary: fc.integer({ min: 4, max: 12 }).map((maxMapCount) => ({ maxMapCount })) },
);

// --- running a command on both sides ---

type Outcome = number | string;

function runOnModel(mm: MmStruct, cmd: Cmd): Outcome {
  switch (cmd.op) {
    case 'mmap':
      return runMmOp(mm, (t) => sysMmap(t, cmd.addr, cmd.len, cmd.prot, cmd.flags, cmd.fd, cmd.offset), 'mmap');
    case 'munmap':
      return runMmOp(mm, (t) => sysMunmap(t, cmd.addr, cmd.len), 'munmap');
    case 'mprotect':
      return runMmOp(mm, (t) => sysMprotect(t, cmd.addr, cmd.len, cmd.prot), 'mprotect');
    case 'mremap':
      return runMmOp(mm, (t) => sysMremap(t, cmd.addr, cmd.oldLen, cmd.newLen, cmd.flags, cmd.newAddr), 'mremap');
    case 'brk':
      return runMmOp(mm, (t) => sysBrk(t, cmd.addr), 'brk');
    case 'madvise':
      return runMmOp(mm, (t) => sysMadvise(t, cmd.addr, cmd.len, cmd.advice), 'madvise');
    case 'fault':
      return runMmOp(mm, (t) => handleMmFault(t, cmd.addr, cmd.access), 'fault');
  }
}

function runOnReference(ref: ReferenceMm, cmd: Cmd): Outcome {
  switch (cmd.op) {
    case 'mmap':
      return ref.sysMmap(cmd.addr, cmd.len, cmd.prot, cmd.flags, cmd.fd, cmd.offset);
    case 'munmap':
      return ref.sysMunmap(cmd.addr, cmd.len);
    case 'mprotect':
      return ref.sysMprotect(cmd.addr, cmd.len, cmd.prot);
    case 'mremap':
      return ref.sysMremap(cmd.addr, cmd.oldLen, cmd.newLen, cmd.flags, cmd.newAddr);
    case 'brk':
      return ref.sysBrk(cmd.addr);
    case 'madvise':
      return ref.sysMadvise(cmd.addr, cmd.len, cmd.advice);
    case 'fault':
      return ref.handleMmFault(cmd.addr, cmd.access);
  }
}

/** One step of a scenario as it ran, for the failure report. */
interface Step {
  readonly cmd: Cmd;
  readonly model: Outcome;
  readonly reference: Outcome;
}

class ModelMismatch extends Error {}

/** Run `specs` on a fresh simulated mm and a fresh reference; throw `ModelMismatch` at the first difference. */
function runScenario(policy: string, config: Config, specs: readonly CmdSpec[]): void {
  const layout = { mmapBase: MMAP_BASE, maxMapCount: config.maxMapCount, startBrk: START_BRK, startStack: START_STACK };
  const mm = new MmStruct(1, createPolicy(policy), layout);
  for (const [fd, file] of makeFiles()) mm.files.set(fd, file);
  const ref = new ReferenceMm(layout, makeFiles());
  const steps: Step[] = [];
  const fail = (what: string, detail: string): never => {
    const modelMaps = safely(() => renderMaps(mm));
    const referenceMaps = safely(() => ref.renderMaps());
    const last = steps[steps.length - 1]!;
    throw new ModelMismatch(
      [
        `${what} at step ${steps.length} of ${specs.length}: ${formatCmd(last.cmd)}`,
        detail,
        `steps (max_map_count ${config.maxMapCount}, W = 0x${W.toString(16)}, start_brk = W+8p, mmap_base = W+48p):`,
        ...steps.map(
          (s, j) =>
            `  ${String(j + 1).padStart(2)}. ${formatCmd(s.cmd)} = ${formatOutcome(s.model)}${s.model === s.reference ? '' : `  (reference: ${formatOutcome(s.reference)})`}`,
        ),
        'maps (model):',
        modelMaps,
        'maps (reference):',
        referenceMaps,
        `window    ${windowRuler()}`,
        `model     ${drawWindow(modelMaps)}`,
        `reference ${drawWindow(referenceMaps)}`,
      ].join('\n'),
    );
  };
  for (const spec of specs) {
    const cmd = resolve(spec, ref.vmas());
    let reference: Outcome;
    try {
      reference = runOnReference(ref, cmd);
    } catch (e) {
      steps.push({ cmd, model: 'not run', reference: 'threw' });
      return fail('the reference threw', `  ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
    let model: Outcome;
    try {
      model = runOnModel(mm, cmd);
    } catch (e) {
      steps.push({ cmd, model: 'threw', reference });
      return fail('the model threw', `  ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
    steps.push({ cmd, model, reference });
    try {
      checkMmInvariants(mm);
    } catch (e) {
      return fail('checkMmInvariants failed', `  ${e instanceof Error ? e.message : String(e)}`);
    }
    ref.checkInvariants();
    if (model !== reference) fail('results differ', `  model: ${formatOutcome(model)}   reference: ${formatOutcome(reference)}`);
    if (renderMaps(mm) !== ref.renderMaps()) fail('/proc/pid/maps differs', '');
    if (mm.brk !== ref.brk) fail('brk differs', `  model: 0x${mm.brk.toString(16)}   reference: 0x${ref.brk.toString(16)}`);
  }
}

function safely(f: () => string): string {
  try {
    return f();
  } catch (e) {
    return `(threw: ${e instanceof Error ? e.message : String(e)})`;
  }
}

// --- formatting ---

function formatAddr(a: number): string {
  const off = a - W;
  if (Math.abs(off) > 4096 * P) return `0x${a.toString(16)}`;
  const pages = Math.trunc(off / P);
  const rest = off - pages * P;
  return `W${pages < 0 || off < 0 ? '-' : '+'}${Math.abs(pages)}p${rest !== 0 ? `${rest < 0 ? '-' : '+'}0x${Math.abs(rest).toString(16)}` : ''}`;
}

function formatLen(n: number): string {
  return n % P === 0 ? `${n / P}p` : `0x${n.toString(16)}`;
}

function formatBits(value: number, names: Readonly<Record<string, number>>, zero: string): string {
  if (value === 0) return zero;
  const parts: string[] = [];
  let rest = value;
  for (const [name, bit] of Object.entries(names)) {
    if (bit !== 0 && (value & bit) === bit && (rest & bit) !== 0 && !name.endsWith('_VALIDATE') && name !== 'MAP_ANON') {
      parts.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0) parts.push(`0x${rest.toString(16)}`);
  return parts.join('|');
}

function formatCmd(c: Cmd): string {
  switch (c.op) {
    case 'mmap':
      return `mmap(${c.addr === 0 ? 'NULL' : formatAddr(c.addr)}, ${formatLen(c.len)}, ${formatBits(c.prot, protNames, 'PROT_NONE')}, ${formatBits(c.flags, mapFlagNames, '0')}, ${c.fd}, 0x${c.offset.toString(16)})`;
    case 'munmap':
      return `munmap(${formatAddr(c.addr)}, ${formatLen(c.len)})`;
    case 'mprotect':
      return `mprotect(${formatAddr(c.addr)}, ${formatLen(c.len)}, ${formatBits(c.prot, protNames, 'PROT_NONE')})`;
    case 'mremap':
      return `mremap(${formatAddr(c.addr)}, ${formatLen(c.oldLen)}, ${formatLen(c.newLen)}, ${formatBits(c.flags, mremapFlagNames, '0')}, ${formatAddr(c.newAddr)})`;
    case 'brk':
      return `brk(${formatAddr(c.addr)})`;
    case 'madvise':
      return `madvise(${formatAddr(c.addr)}, ${formatLen(c.len)}, ${Object.entries(madviseNames).find(([, v]) => v === c.advice)?.[0] ?? c.advice})`;
    case 'fault':
      return `${c.access} fault at ${formatAddr(c.addr)}`;
  }
}

function formatOutcome(o: Outcome): string {
  if (typeof o === 'string') return o;
  if (o < 0) return `-${errnoNames[-o] ?? -o}`;
  return o >= W - 4096 * P && o <= W + 4096 * P ? formatAddr(o) : `0x${o.toString(16)}`;
}

function windowRuler(): string {
  let s = '';
  for (let p = 0; p < WINDOW_PAGES; p++) s += (p % 10).toString();
  return s;
}

/** The window, a page a column: a letter per VMA (in maps order), '.' where nothing is mapped. */
function drawWindow(maps: string): string {
  const ranges = maps
    .split('\n')
    .filter((l) => l !== '')
    .map(
      (l) =>
        l
          .split(' ')[0]!
          .split('-')
          .map((h) => parseInt(h, 16)) as [number, number],
    );
  let s = '';
  for (let p = 0; p < WINDOW_PAGES; p++) {
    const a = W + p * P;
    const i = ranges.findIndex(([start, end]) => start <= a && a < end);
    s += i < 0 ? '.' : String.fromCharCode((i % 26) + 65);
  }
  return s;
}

// --- the property ---

function replayParameters(): fc.Parameters<[Config, CmdSpec[], CmdSpec[]]> {
  const seed = process.env.VMALOCK_MODEL_SEED;
  const path = process.env.VMALOCK_MODEL_PATH;
  return {
    numRuns: Number(process.env.VMALOCK_MODEL_RUNS ?? RUNS),
    ...(seed !== undefined ? { seed: Number(seed) } : {}),
    ...(path !== undefined ? { path } : {}),
  };
}

// Every policy runs the same scenarios (the same fast-check seed): one thread never contends, so
// each must give exactly the reference's results — global-rwsem's. VMALOCK_MODEL_POLICY=name
// runs one policy only.
const POLICY_FILTER = process.env.VMALOCK_MODEL_POLICY;
const UNDER_TEST = POLICIES.map((p) => p.name).filter((n) => POLICY_FILTER === undefined || n === POLICY_FILTER);

describe.each(UNDER_TEST)('ReferenceMm vs MmStruct under %s', (policy) => {
  describe('having random mm syscalls and faults on one thread', () => {
    it('should agree on every result and on /proc/pid/maps after every command', () => {
      const property = fc.property(
        configArb,
        fc.array(fillArb, { minLength: 1, maxLength: FILL_MAX, size: 'max' }),
        fc.array(cmdArb, { minLength: 1, maxLength: COMMANDS_MAX - FILL_MAX, size: 'max' }),
        (config, fill, cmds) => runScenario(policy, config, [...fill, ...cmds]),
      );
      const out = fc.check(property, replayParameters());
      if (!out.failed) return;
      const error = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
      throw new Error(
        [
          `seed=${out.seed} path="${out.counterexamplePath}" (after ${out.numRuns} runs, ${out.numShrinks} shrinks)`,
          `replay: VMALOCK_MODEL_POLICY=${policy} VMALOCK_MODEL_SEED=${out.seed} VMALOCK_MODEL_PATH="${out.counterexamplePath}" npx vitest run --project policies src/mm/model`,
          error,
        ].join('\n'),
      );
    });
  });
});
