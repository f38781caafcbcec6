// Proves the registry: exactly the twelve names plans validate against, each workload's params
// documented (a description on every field, a default on every field but the trace's path),
// defaults filled in by parseWorkloadParams, and bad input — an unknown workload, a field out of
// range or of the wrong type, an unknown key, a missing required field — refused with one line
// naming the workload, the field and what was expected.
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { WORKLOADS, parseWorkloadParams, workloadByName, workloadNames } from './registry.js';
import { WorkloadParamsError, workloadNameList } from './workload.js';

describe('workloadNames', () => {
  it('should list the twelve workloads plans name, in order', () => {
    expect(workloadNames()).toEqual([
      'pft',
      'page_fault1',
      'mmap1',
      'ebizzy',
      'jvm-gc',
      'malloc-arenas',
      'stack-growth',
      'mremap-growth',
      'fork-heavy',
      'proc-maps',
      'subsystem-driver',
      'strace-replay',
    ]);
    expect(workloadNames()).toEqual([...workloadNameList]);
  });
});

describe('workloadByName', () => {
  it('should find each workload by its name', () => {
    for (const name of workloadNames()) expect(workloadByName(name).name).toBe(name);
  });

  it('should refuse an unknown name, listing the known ones', () => {
    expect(() => workloadByName('pft2')).toThrow(WorkloadParamsError);
    expect(() => workloadByName('pft2')).toThrow(`unknown workload 'pft2' (known: ${workloadNames().join(', ')})`);
  });
});

describe.each(WORKLOADS.map((w) => [w.name, w] as const))('the params of %s', (name, w) => {
  const shape = w.params.shape as Record<string, z.ZodType>;

  it('should describe every field', () => {
    for (const [field, schema] of Object.entries(shape)) expect(schema.description, `${name}.${field}`).toMatch(/\w{3,}/);
  });

  it('should give every field a default, or make it optional (only the trace path is required)', () => {
    const json = z.toJSONSchema(w.params, { io: 'input' }) as { required?: string[]; properties: Record<string, { default?: unknown }> };
    expect(json.required ?? []).toEqual(name === 'strace-replay' ? ['path'] : []);
    const optional = name === 'strace-replay' ? ['path', 'tasks', 'tgid'] : [];
    for (const [field, f] of Object.entries(json.properties)) if (!optional.includes(field)) expect(f.default, `${name}.${field}`).toBeDefined();
  });

  it('should summarise what it models and what an op is', () => {
    expect(w.summary.length).toBeGreaterThan(20);
    expect(w.op.length).toBeGreaterThan(5);
  });
});

describe('parseWorkloadParams', () => {
  describe('having no params', () => {
    it('should fill in every default', () => {
      expect(parseWorkloadParams('pft', undefined)).toEqual({ pagesPerThread: 256, mapper: true, mapperPages: 16, mapperCyclesMax: 1024 });
      expect(parseWorkloadParams('proc-maps', {}).locking).toBe('auto');
    });
  });

  describe('having some params', () => {
    it('should keep them and default the rest', () => {
      const p = parseWorkloadParams('mmap1', { regionPages: 32768 });
      expect(p).toEqual({ regionPages: 32768, iterations: 32 });
    });
  });

  describe('having bad params', () => {
    it.each([
      ['pft', { pagesPerThread: 0 }, "workload 'pft': bad params: pagesPerThread: Too small: expected number to be >=1"],
      ['pft', { pagesPerThread: 1.5 }, "workload 'pft': bad params: pagesPerThread: Invalid input: expected int, received number"],
      ['pft', { mapper: 'yes' }, "workload 'pft': bad params: mapper: Invalid input: expected boolean, received string"],
      ['mmap1', { regionPage: 4 }, 'workload \'mmap1\': bad params: Unrecognized key: "regionPage"'],
      ['jvm-gc', { freeChance: 2 }, "workload 'jvm-gc': bad params: freeChance: Too big: expected number to be <=1"],
      ['malloc-arenas', { arenaPages: 48 }, "workload 'malloc-arenas': bad params: arenaPages: must be a power of two (an arena is aligned to its size)"],
      ['malloc-arenas', { shrink: 'munmap' }, 'workload \'malloc-arenas\': bad params: shrink: Invalid option: expected one of "madvise"|"prot-none"'],
      ['strace-replay', {}, "workload 'strace-replay': bad params: path: Invalid input: expected string, received undefined"],
      ['pft', 'big', "workload 'pft': bad params: Invalid input: expected object, received string"],
      ['mremap-growth', { startPages: 8, maxPages: 8 }, "workload 'mremap-growth': bad params: startPages (8) must be below maxPages (8)"],
      ['malloc-arenas', { arenaPages: 4, chunkPagesMax: 8 }, "workload 'malloc-arenas': bad params: chunkPagesMax (8) must not exceed arenaPages (4)"],
    ] as const)('%s %j should say: %s', (name, raw, message) => {
      expect(() => parseWorkloadParams(name, raw)).toThrow(WorkloadParamsError);
      expect(() => parseWorkloadParams(name, raw)).toThrow(message);
    });

    it('should name every bad field at once', () => {
      expect(() => parseWorkloadParams('ebizzy', { chunks: 0, iterations: -1 })).toThrow(/chunks: Too small.*; iterations: Too small/);
    });

    it('should name an unknown workload', () => {
      expect(() => parseWorkloadParams('nope', {})).toThrow("unknown workload 'nope' (known: pft, ");
    });
  });
});
