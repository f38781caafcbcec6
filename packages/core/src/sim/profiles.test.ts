// Machine profiles (issue 8): default is the engine's cost model unchanged; every profile gives
// every parameter with a unit and a justification; an unknown name is a clear error.
import { describe, expect, it } from 'vitest';
import { defaultCostModel } from './costModel.js';
import { profileByName, profileNames } from './profiles.js';

const parameters = Object.keys(defaultCostModel).sort();

describe('machine profiles', () => {
  it('names the four machines of issue 8, default first', () => {
    expect(profileNames()).toEqual(['default', 'xeon-e5-2690v3', 'ivybridge-2s-40c', 'icelake-2s-64t']);
  });

  it('default is the engine default cost model itself', () => {
    const p = profileByName('default');
    expect(p.costs).toBe(defaultCostModel);
    expect(p.costs).toEqual({ ...defaultCostModel });
  });

  it.each(profileNames())(
    '%s has every parameter, each a finite ns figure (positive, but for the absent memory bus of the default) with a unit and a note',
    (name) => {
      const p = profileByName(name);
      expect(Object.keys(p.costs).sort()).toEqual(parameters);
      expect(Object.keys(p.notes).sort()).toEqual(parameters);
      for (const key of parameters) {
        const v = (p.costs as unknown as Record<string, number>)[key]!;
        // The memory bus may be absent (0: unlimited) — in the default profile only.
        const absent = key === 'memoryBusNsPerPage' && name === 'default';
        expect(Number.isFinite(v) && (absent ? v === 0 : v > 0), `${name}.${key} = ${v}`).toBe(true);
        expect((p.notes as Record<string, string>)[key], `${name}.${key}`).toMatch(/^ns( per 4 KiB page)?; .{20,}/);
      }
      expect(Number.isInteger(p.cpus) && p.cpus >= 1).toBe(true);
      expect(p.sockets).toBeGreaterThanOrEqual(1);
    },
  );

  it('sizes the named machines by their hardware threads and sockets', () => {
    const sizes = ['xeon-e5-2690v3', 'ivybridge-2s-40c', 'icelake-2s-64t'].map((n) => [profileByName(n).cpus, profileByName(n).sockets]);
    expect(sizes).toEqual([
      [48, 2],
      [40, 2],
      [64, 2],
    ]);
  });

  it('an unknown name is a RangeError listing the known ones', () => {
    expect(() => profileByName('skylake')).toThrow(RangeError);
    expect(() => profileByName('skylake')).toThrow("unknown machine profile 'skylake' (known: default, xeon-e5-2690v3, ivybridge-2s-40c, icelake-2s-64t)");
  });
});
