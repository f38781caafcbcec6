// Proves `vmalock plan init|validate|schema` in process: init writes the commented built-in plan
// that validate then accepts (YAML and JSON), init never overwrites a file and leaves it as it was,
// validate prints one error line with file:line:col and exits 2 (--all: every error), --json
// prints the resolved plan, and schema prints the committed JSON Schema.
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode, runCli } from '../cliApp.js';
import { DEFAULT_PLAN_YAML } from './defaultPlan.js';
import { planJsonSchemaText } from './jsonSchema.js';
import type { ResolvedPlan } from './resolve.js';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'vmalock-plan-cli-'));

describe('vmalock plan', () => {
  describe('init then validate', () => {
    it('should write the commented default plan, which validates', async () => {
      const file = join(tempDir(), 'my-plan.yaml');
      const init = await cli('plan', 'init', file);
      expect(init.code, init.err).toBe(ExitCode.ok);
      expect(readFileSync(file, 'utf8')).toBe(DEFAULT_PLAN_YAML);
      const validate = await cli('plan', 'validate', file);
      expect(validate).toEqual({ code: ExitCode.ok, out: `${file}: ok — 8 phases, 3 processes\n`, err: '' });
    });

    it('should write the same plan as JSON for a .json name', async () => {
      const file = join(tempDir(), 'plan.json');
      expect((await cli('plan', 'init', file)).code).toBe(ExitCode.ok);
      const fromJson = JSON.parse((await cli('plan', 'validate', file, '--json')).out) as { plan: ResolvedPlan };
      const yamlFile = join(tempDir(), 'plan.yaml');
      await cli('plan', 'init', yamlFile);
      const fromYaml = JSON.parse((await cli('plan', 'validate', yamlFile, '--json')).out) as { plan: ResolvedPlan };
      expect(fromJson.plan).toEqual(fromYaml.plan);
      expect(fromJson.plan.phases[2]!.processes.map((p) => p.policy)).toEqual(['vma-range', 'hybrid', 'hybrid']);
    });

    it("should print the plan for '-', writing nothing", async () => {
      expect(await cli('plan', 'init', '-')).toEqual({ code: ExitCode.ok, out: DEFAULT_PLAN_YAML, err: '' });
      expect(existsSync('-')).toBe(false);
    });

    it('should refuse to overwrite a file, and leave it as it was', async () => {
      const dir = tempDir();
      const file = join(dir, 'plan.yaml');
      writeFileSync(file, 'mine\n');
      const r = await cli('plan', 'init', file);
      expect(r.code).toBe(ExitCode.badInput);
      expect(r.err).toBe(`vmalock: ${file} exists: not overwriting it (remove it or name another file)\n`);
      expect(readFileSync(file, 'utf8')).toBe('mine\n');
      expect(readdirSync(dir)).toEqual(['plan.yaml']);
    });

    it('should refuse a name that is no plan file, and a folder that does not exist, writing nothing', async () => {
      const dir = tempDir();
      expect((await cli('plan', 'init', join(dir, 'plan.txt'))).err).toBe(`vmalock: ${join(dir, 'plan.txt')}: a plan is a .yaml, .yml or .json file\n`);
      const r = await cli('plan', 'init', join(dir, 'no', 'plan.yaml'));
      expect(r).toMatchObject({ code: ExitCode.badInput, err: `vmalock: ${join(dir, 'no', 'plan.yaml')}: cannot write: ENOENT\n` });
      expect(readdirSync(dir)).toEqual([]);
    });
  });

  describe('validate', () => {
    const lineOf = (text: string): number => DEFAULT_PLAN_YAML.split('\n').findIndex((l) => l.includes(text)) + 1;

    it('should print the error as one line with file:line:col and exit 2', async () => {
      const file = join(tempDir(), 'bad.yaml');
      writeFileSync(file, DEFAULT_PLAN_YAML.replace('policy: hybrid', 'policy: hybird'));
      const r = await cli('plan', 'validate', file);
      expect(r).toEqual({
        code: ExitCode.badInput,
        out: '',
        err: `vmalock: ${file}:${lineOf('policy: hybrid')}:13: phases[1].policy: expected one of global-rwsem, hybrid, vma-range, per-vma, spf, range-lock (got "hybird")\n`,
      });
    });

    it('should print the first of several errors and how many more; --all prints each, in file order', async () => {
      const file = join(tempDir(), 'bad.yaml');
      writeFileSync(
        file,
        DEFAULT_PLAN_YAML.replace('threads: 4', 'threads: 4\n    cpu: 4').replace('atLeastPercentOfBaseline: 50', 'atLeastPercentOfBaseline: 0'),
      );
      const unknownField = `${file}:${lineOf('threads: 4') + 1}:5: processes[0].cpu: unknown field (did you mean 'cpus'?)`;
      const badPercent = `${file}:${lineOf('process: web, atLeastPercentOfBaseline: 50') + 1}:69: phases[1].gates[1].atLeastPercentOfBaseline: expected a number > 0 (got 0)`;
      expect(await cli('plan', 'validate', file)).toEqual({
        code: ExitCode.badInput,
        out: '',
        err: `vmalock: ${unknownField} (and 1 more: --all lists them)\n`,
      });
      expect(await cli('plan', 'validate', file, '--all')).toEqual({ code: ExitCode.badInput, out: '', err: `${unknownField}\n${badPercent}\n` });
    });

    it('should say so for a file that does not exist', async () => {
      const file = join(tempDir(), 'none.yaml');
      expect(await cli('plan', 'validate', file)).toEqual({ code: ExitCode.badInput, out: '', err: `vmalock: ${file}: cannot read the plan: ENOENT\n` });
      expect(existsSync(file)).toBe(false);
    });
  });

  describe('schema', () => {
    it('should print the JSON Schema of docs/plan.schema.json', async () => {
      const r = await cli('plan', 'schema');
      expect(r.code).toBe(ExitCode.ok);
      expect(r.out).toBe(planJsonSchemaText());
    });
  });
});
