// Proves the plan loader's errors: each kind of bad input (bad YAML or JSON syntax, a wrong type, a
// missing field, an unknown field, an unknown policy, workload or process, duplicate names, a bad
// gate, a subsystem file that throws) is one line `file:line:col: field: what was expected (got
// ...)` pointing at the very node the user wrote, several errors come in file order, and a valid
// plan comes back with its defaults. Plans are written inline; the line:col of each is counted by
// hand from the text.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PlanError, loadPlan, loadResolvedPlan, parsePlan } from './load.js';

const lines = (...ls: string[]): string => `${ls.join('\n')}\n`;

/** A small valid plan; tests replace one line of it. */
const VALID = [
  'name: small', //                                         1
  'processes:', //                                          2
  '  - name: web', //                                       3
  '    workload: { name: ebizzy }', //                      4
  '    threads: 2', //                                      5
  '    cpus: 2', //                                         6
  '    subsystems: [pagecache, gem]', //                    7
  'phases:', //                                             8
  '  - name: base', //                                      9
  '    policy: global-rwsem', //                            10
  '  - name: next', //                                      11
  '    policy: vma-range', //                               12
  '    converted: [fs]', //                                 13
  '    gates:', //                                          14
  '      - { kind: no-findings, schedules: 5 }', //         15
];

/** VALID with line `n` (1-based) replaced by `text` (or removed when null). */
function withLine(n: number, text: string | null): string {
  const ls = [...VALID];
  if (text === null) ls.splice(n - 1, 1);
  else ls[n - 1] = text;
  return lines(...ls);
}

/** The error lines `parsePlan` throws for `text`. */
function errorsOf(text: string, file = 'plan.yaml'): string[] {
  try {
    parsePlan(text, file);
  } catch (e) {
    if (e instanceof PlanError) return e.message.split('\n');
    throw e;
  }
  throw new Error('expected a PlanError, the plan was accepted');
}

describe('parsePlan', () => {
  describe('having a valid plan', () => {
    it('should apply the defaults: seed 1, no gates, nothing converted, blocking gates', () => {
      const plan = parsePlan(lines(...VALID), 'plan.yaml');
      expect(plan.seed).toBe(1);
      expect(plan.phases[0]).toMatchObject({ name: 'base', converted: [], gates: [] });
      expect(plan.phases[1]!.gates[0]).toEqual({ kind: 'no-findings', schedules: 5, blocking: true });
    });

    it('should read the same plan written as JSON', () => {
      const json = JSON.stringify(parsePlan(lines(...VALID), 'plan.yaml'), null, 2);
      expect(parsePlan(json, 'plan.json')).toEqual(parsePlan(lines(...VALID), 'plan.yaml'));
    });
  });

  describe('having bad syntax', () => {
    it('should name the line and column of a YAML syntax error', () => {
      expect(errorsOf(withLine(5, '    threads: [2'))).toEqual([
        'plan.yaml:6:5: bad YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
      ]);
      expect(errorsOf(lines(...VALID, '---', 'name: second'))).toEqual(["plan.yaml:16:1: bad YAML: a plan is one YAML document (remove the '---')"]);
    });

    it('should name the line and column of a JSON syntax error, and refuse what only YAML allows', () => {
      expect(errorsOf('{\n  "name": "x",\n  "seed": 1,\n}\n', 'plan.json')).toEqual(['plan.json:4:1: bad JSON: Expected double-quoted property name']);
      expect(errorsOf('{\n  "name": "x"\n  "seed": 1\n}\n', 'plan.json')).toEqual(['plan.json:3:3: bad JSON: Missing , between flow map items']);
    });

    it('should refuse a key given twice', () => {
      expect(errorsOf(withLine(6, '    threads: 3'))).toEqual(['plan.yaml:6:5: bad YAML: Map keys must be unique']);
    });
  });

  describe('having a field of the wrong type or value', () => {
    it('should point at the value and say what was expected', () => {
      expect(errorsOf(withLine(5, '    threads: four'))).toEqual(['plan.yaml:5:14: processes[0].threads: expected an integer (got "four")']);
      expect(errorsOf(withLine(6, '    cpus: 0'))).toEqual(['plan.yaml:6:11: processes[0].cpus: expected an integer >= 1 (got 0)']);
      expect(errorsOf(withLine(1, 'name: [a, b]'))).toEqual(['plan.yaml:1:7: name: expected a string (got a list)']);
    });

    it('should name the known policies for an unknown one', () => {
      expect(errorsOf(withLine(12, '    policy: vma-rnage'))).toEqual([
        'plan.yaml:12:13: phases[1].policy: expected one of global-rwsem, hybrid, vma-range, per-vma, spf, range-lock (got "vma-rnage")',
      ]);
    });

    it('should refuse an unknown workload and an unknown subsystem', () => {
      expect(errorsOf(withLine(4, '    workload: { name: ebizy }'))).toEqual([
        expect.stringMatching(/^plan\.yaml:4:23: processes\[0\]\.workload\.name: expected one of pft, /),
      ]);
      expect(errorsOf(withLine(7, '    subsystems: [pagecache, gme]'))).toEqual([
        expect.stringMatching(
          /^plan\.yaml:7:29: processes\[0\]\.subsystems\[1\]: expected a built-in subsystem \(pkeys, .*\) or a path to a \.js file \(got "gme"\)$/,
        ),
      ]);
    });

    it('should check a policy option against the options of the policy', () => {
      const text = withLine(12, '    policy: range-lock\n    policyOptions: { ranges: fin, lockNewVma: true }');
      expect(errorsOf(text)).toEqual([
        'plan.yaml:13:30: phases[1].policyOptions.ranges: expected one of full, fine (got "fin")',
        "plan.yaml:13:47: phases[1].policyOptions.lockNewVma: policy 'range-lock' has no option 'lockNewVma' (known: ranges)",
      ]);
    });
  });

  describe('having a missing or unknown field', () => {
    it('should point a missing field at the object that lacks it', () => {
      expect(errorsOf(withLine(6, null))).toEqual(['plan.yaml:3:5: processes[0].cpus: expected an integer (missing)']);
    });

    it('should point an unknown field at its key and suggest the right spelling', () => {
      expect(errorsOf(withLine(13, '    optin: [web]'))).toEqual(["plan.yaml:13:5: phases[1].optin: unknown field (did you mean 'optIn'?)"]);
      expect(errorsOf(withLine(1, 'name: small\ncolour: blue'))).toEqual([
        'plan.yaml:2:1: colour: unknown field (expected one of $schema, name, seed, processes, phases, baseline)',
      ]);
    });
  });

  describe('having names that do not match', () => {
    it('should refuse an opt-in of a process the plan does not have', () => {
      expect(errorsOf(withLine(13, '    optIn: [web, wbe]'))).toEqual([
        "plan.yaml:13:18: phases[1].optIn[1]: expected a process name (got 'wbe'; processes: web)",
      ]);
    });

    it('should refuse an opt-in in the first phase: there is nothing before it to stay on', () => {
      expect(errorsOf(withLine(10, '    policy: global-rwsem\n    optIn: [web]'))).toEqual([
        'plan.yaml:11:12: phases[0].optIn: the first phase cannot have optIn: there is no previous phase for the other processes to stay on',
      ]);
    });

    it('should refuse duplicate process and phase names, naming the first', () => {
      const text = withLine(11, '  - name: base');
      expect(errorsOf(text)).toEqual(["plan.yaml:11:11: phases[1].name: duplicate phase name 'base' (also at phases[0])"]);
      const twoWebs = withLine(8, lines('  - name: web', '    workload: { name: pft }', '    threads: 1', '    cpus: 1', 'phases:').trimEnd());
      expect(errorsOf(twoWebs)).toEqual(["plan.yaml:8:11: processes[1].name: duplicate process name 'web' (also at processes[0])"]);
    });

    it('should refuse converting a subsystem no process attaches, or a word that is no group', () => {
      expect(errorsOf(withLine(13, '    converted: [hmm, drivers]'))).toEqual([
        "plan.yaml:13:17: phases[1].converted[0]: subsystem 'hmm' is not attached to any process (attached: pagecache, gem)",
        "plan.yaml:13:22: phases[1].converted[1]: expected an attached subsystem or one of arch, fs, driver, hugepage, all (got 'drivers'; attached: pagecache, gem)",
      ]);
    });

    it('should refuse a baseline that is no phase', () => {
      expect(errorsOf(lines(...VALID, 'baseline: bsae'))).toEqual(["plan.yaml:16:11: baseline: expected a phase name (got 'bsae'; phases: base, next)"]);
    });
  });

  describe('having a bad gate', () => {
    it('should name the gate kinds for an unknown kind', () => {
      expect(errorsOf(withLine(15, '      - { kind: no-finding, schedules: 5 }'))).toEqual([
        'plan.yaml:15:17: phases[1].gates[0].kind: expected one of no-findings, throughput (got "no-finding")',
      ]);
    });

    it('should refuse a field of the other gate kind, a bad percentage and an unknown finding kind', () => {
      expect(errorsOf(withLine(15, '      - { kind: no-findings, schedules: 5, process: web }'))).toEqual([
        'plan.yaml:15:44: phases[1].gates[0].process: unknown field (expected one of kind, name, findingKinds, schedules, blocking)',
      ]);
      expect(errorsOf(withLine(15, '      - { kind: throughput, process: web, atLeastPercentOfBaseline: 0 }'))).toEqual([
        'plan.yaml:15:69: phases[1].gates[0].atLeastPercentOfBaseline: expected a number > 0 (got 0)',
      ]);
      expect(errorsOf(withLine(15, '      - { kind: no-findings, schedules: 5, findingKinds: [races] }'))).toEqual([
        expect.stringMatching(/^plan\.yaml:15:59: phases\[1\]\.gates\[0\]\.findingKinds\[0\]: expected one of invariant, .*lock-order, error \(got "races"\)$/),
      ]);
    });

    it('should refuse a throughput gate on an unknown process, or one that cannot run after the baseline', () => {
      expect(errorsOf(withLine(15, '      - { kind: throughput, process: wbe, atLeastPercentOfBaseline: 90 }'))).toEqual([
        "plan.yaml:15:38: phases[1].gates[0].process: expected a process name (got 'wbe'; processes: web)",
      ]);
      expect(
        errorsOf(lines(...withLine(15, '      - { kind: throughput, process: web, atLeastPercentOfBaseline: 90 }').split('\n'), 'baseline: next')),
      ).toEqual(["plan.yaml:15:9: phases[1].gates[0]: a throughput gate compares to the baseline phase 'next', which must run before this phase"]);
    });

    it('should refuse two gates with one name', () => {
      expect(errorsOf(lines(...VALID, '      - { kind: no-findings, schedules: 9 }'))).toEqual([
        "plan.yaml:16:9: phases[1].gates[1]: duplicate gate name 'no-findings' (also at gates[0]; give one a name)",
      ]);
    });
  });

  describe('having several errors', () => {
    it('should list every one, one a line, in file order', () => {
      const text = withLine(12, '    policy: nope').replace('threads: 2', 'threads: -1');
      const errors = errorsOf(text);
      expect(errors).toEqual([
        'plan.yaml:5:14: processes[0].threads: expected an integer >= 1 (got -1)',
        expect.stringMatching(/^plan\.yaml:12:13: phases\[1\]\.policy: expected one of .* \(got "nope"\)$/),
      ]);
      try {
        parsePlan(text, 'plan.yaml');
      } catch (e) {
        expect((e as PlanError).firstLine).toBe(errors[0]);
      }
    });
  });
});

describe('loadPlan', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmalock-plan-'));

  it('should refuse a file that is not YAML or JSON by its name, and one it cannot read', () => {
    expect(() => loadPlan(join(dir, 'plan.txt'))).toThrow(
      new PlanError([{ file: join(dir, 'plan.txt'), line: 0, col: 0, path: '', message: 'a plan is a .yaml, .yml or .json file' }]),
    );
    expect(() => loadPlan(join(dir, 'none.yaml'))).toThrow(`${join(dir, 'none.yaml')}: cannot read the plan: ENOENT`);
  });

  it('should call an empty file what it is', () => {
    writeFileSync(join(dir, 'empty.yml'), '');
    expect(() => loadPlan(join(dir, 'empty.yml'))).toThrow(`${join(dir, 'empty.yml')}:1:1: plan: expected a mapping (got null)`);
  });
});

describe('loadResolvedPlan', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmalock-plan-files-'));
  /** A third-party subsystem file: the smallest object that passes the loader's interface check. */
  const subsystemFile = (name: string, kind: string, body = ''): string => `
export default function create(variant) {
  ${body}
  return {
    name: '${name}', kind: '${kind}', variant, summary: 'a test driver', hookCounts: {},
    attach() {}, *drive() {}, checkInvariants() {}, locations() { return []; },
  };
}
`;
  writeFileSync(join(dir, 'counter.js'), subsystemFile('counter', 'driver'));
  writeFileSync(join(dir, 'broken.js'), subsystemFile('broken', 'driver', "throw new Error('no device');"));
  writeFileSync(join(dir, 'gem.js'), subsystemFile('gem', 'driver'));
  const plan = (subsystems: string, converted: string): string =>
    lines(
      'name: files',
      'processes:',
      '  - name: app',
      '    workload: { name: pft }',
      '    threads: 1',
      '    cpus: 1',
      `    subsystems: ${subsystems}`,
      'phases:',
      '  - name: base',
      '    policy: global-rwsem',
      '  - name: conv',
      '    policy: vma-range',
      `    converted: ${converted}`,
    );
  const write = (name: string, text: string): string => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };

  it('should load subsystem files relative to the plan and convert them by name, path or group', async () => {
    for (const converted of ['[counter]', '[./counter.js]', '[driver]']) {
      const loaded = await loadResolvedPlan(write('ok.yaml', plan('[pagecache, ./counter.js]', converted)));
      expect(loaded.subsystemFiles.get('./counter.js')?.name).toBe('counter');
      expect(loaded.resolved.phases[1]!.processes[0]).toMatchObject({ converted: ['counter'], legacy: ['pagecache'] });
    }
  });

  it('should point at the attachment of a subsystem file that throws on load', async () => {
    const file = write('broken.yaml', plan('[pagecache, ./broken.js]', '[]'));
    await expect(loadResolvedPlan(file)).rejects.toThrow(
      new RegExp(
        `^${file.replace(/[.\\/]/g, '\\$&')}:7:29: processes\\[0\\]\\.subsystems\\[1\\]: \\./broken\\.js: creating the legacy variant threw: no device$`,
      ),
    );
  });

  it('should refuse a file subsystem named like a built-in one, and a converted name nothing attached', async () => {
    await expect(loadResolvedPlan(write('clash.yaml', plan('[./gem.js]', '[]')))).rejects.toThrow(
      "clash.yaml:7:18: processes[0].subsystems[0]: ./gem.js defines a subsystem named 'gem', like a built-in one: rename it",
    );
    await expect(loadResolvedPlan(write('conv.yaml', plan('[./counter.js]', '[countr]')))).rejects.toThrow(
      "conv.yaml:13:17: phases[1].converted[0]: expected an attached subsystem or one of arch, fs, driver, hugepage, all (got 'countr'; attached: counter (./counter.js))",
    );
  });
});
