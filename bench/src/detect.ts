// bench:detect — how fast `vmalock flag` finds what breaks.
//
//   npm run bench:detect            a table on stdout
//   npm run bench:detect -- --json  {"subsystems": [...], "schedulesPerSec": N, "flagAllWallSec": N}
//   options: --policy P (default vma-range) --bases N (default 20) --cap N (default 1000)
//
// For every legacy subsystem under the policy: the number of schedules until its first finding
// under `random` and under `pct` (depth 3), from each of N base seeds (base b starts at seed
// b * 100000), and the median over the bases (null when more than half the bases found nothing
// within the cap). Then the schedules per second of the flag workload, and the wall time of a
// full `flag` of every subsystem, legacy and converted, at its default 200 schedules.
import { parseArgs } from 'node:util';
import { flag, schedulesToFirstFinding } from '@vmalock/harness';
import { policyNames } from '@vmalock/policies';
import { SUBSYSTEMS } from '@vmalock/subsystems';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    policy: { type: 'string', default: 'vma-range' },
    bases: { type: 'string', default: '20' },
    cap: { type: 'string', default: '1000' },
  },
  strict: true,
});
function fail(message: string): never {
  process.stderr.write(`bench:detect: ${message}\n`);
  process.exit(2);
}
if (!policyNames().includes(values.policy)) fail(`--policy: unknown policy '${values.policy}' (known: ${policyNames().join(', ')})`);
const bases = Number(values.bases);
const cap = Number(values.cap);
if (!Number.isInteger(bases) || bases < 1) fail(`--bases: expected an integer >= 1, got '${values.bases}'`);
if (!Number.isInteger(cap) || cap < 1) fail(`--cap: expected an integer >= 1, got '${values.cap}'`);

/** The median of the found counts, or null when more than half the bases found nothing. */
function median(counts: readonly (number | null)[]): number | null {
  const found = counts.filter((c): c is number => c !== null).sort((a, b) => a - b);
  if (found.length * 2 <= counts.length) return null;
  // Misses count as "more than cap", above every found count.
  const all = [...found, ...counts.filter((c) => c === null).map(() => Infinity)];
  return all[Math.floor((all.length - 1) / 2)]!;
}

const rows: Array<{ name: string; schedulesToFindRandomP50: number | null; schedulesToFindPctP50: number | null; missedRandom: number; missedPct: number }> =
  [];
let schedules = 0;
const t0 = performance.now();
for (const entry of SUBSYSTEMS) {
  const per: Record<'random' | 'pct', (number | null)[]> = { random: [], pct: [] };
  for (const strategy of ['random', 'pct'] as const) {
    for (let b = 0; b < bases; b++) {
      const n = schedulesToFirstFinding(entry, 'legacy', values.policy, strategy, b * 100_000, cap);
      schedules += n ?? cap;
      per[strategy].push(n);
    }
  }
  rows.push({
    name: entry.name,
    schedulesToFindRandomP50: median(per.random),
    schedulesToFindPctP50: median(per.pct),
    missedRandom: per.random.filter((c) => c === null).length,
    missedPct: per.pct.filter((c) => c === null).length,
  });
  if (process.stderr.isTTY && !values.json) process.stderr.write(`\r${entry.name} done`.padEnd(30));
}
const searchSec = (performance.now() - t0) / 1000;
const schedulesPerSec = Math.round(schedules / searchSec);
const f0 = performance.now();
flag({ policy: values.policy, subsystems: SUBSYSTEMS, schedules: 200, pctDepth: 3 });
const flagAllWallSec = Number(((performance.now() - f0) / 1000).toFixed(2));
if (process.stderr.isTTY && !values.json) process.stderr.write('\r'.padEnd(30) + '\r');

if (values.json) {
  process.stdout.write(`${JSON.stringify({ policy: values.policy, bases, cap, subsystems: rows, schedulesPerSec, flagAllWallSec })}\n`);
} else {
  console.log(`legacy subsystems under ${values.policy}: schedules until the first finding (median of ${bases} base seeds; cap ${cap})`);
  console.log(`${'subsystem'.padEnd(14)}${'random p50'.padStart(12)}${'pct p50'.padStart(10)}${'missed r/p'.padStart(13)}`);
  for (const r of rows)
    console.log(
      `${r.name.padEnd(14)}${String(r.schedulesToFindRandomP50 ?? `>${cap}`).padStart(12)}${String(r.schedulesToFindPctP50 ?? `>${cap}`).padStart(10)}${`${r.missedRandom}/${r.missedPct}`.padStart(13)}`,
    );
  console.log(
    `\n${schedulesPerSec} schedules/s; a full flag (all subsystems, both variants, 200 schedules each): ${flagAllWallSec} s (node ${process.version})`,
  );
}
