// bench:mm — the address-space model at scale: an mm holding one million VMAs.
//
//   npm run bench:mm            a table on stdout
//   npm run bench:mm -- --json  {"vmas", "findVmaPerSec", "getUnmappedAreaPerSec", "mmapMunmapPairsPerSec", "bytesPerVma"}
//
// find_vma and get_unmapped_area are timed on the tree as the kernel calls them (under the lock
// the caller already holds); mmap/munmap pairs run as syscalls on a simulated thread through
// the engine and the global-rwsem policy. Memory is the heap growth per VMA (Vma objects, the
// tree's typed arrays, the mm), measured after a full GC.
import { parseArgs } from 'node:util';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MmStruct,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  Prng,
  VM_READ,
  VM_WRITE,
  Vma,
  runMmOp,
  sysMmap,
  sysMunmap,
} from '@vmalock/core';
import { GlobalRwsemPolicy } from '@vmalock/policies';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, vmas: { type: 'string', default: '1000000' } }, strict: true });
const count = Number(values.vmas);
if (!Number.isInteger(count) || count < 1000) {
  process.stderr.write(`bench:mm: --vmas must be an integer >= 1000, got '${values.vmas}'\n`);
  process.exit(2);
}
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) process.stderr.write('bench:mm: run with node --expose-gc for a memory figure (npm run bench:mm does)\n');

/** JS heap plus ArrayBuffer memory (the tree keeps its nodes in typed arrays, outside the heap). */
function heapUsed(): number {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const rng = new Prng(42);
const base = 0x100000000;
const before = heapUsed();
const mm = new MmStruct(1, new GlobalRwsemPolicy(), { maxMapCount: count * 2 });
// One-page VMAs separated by one-page holes (so nothing merges), with a larger hole now and then.
let addr = base;
for (let i = 0; i < count; i++) {
  mm.insertVmaUnchecked(new Vma(addr, addr + PAGE_SIZE, VM_READ | VM_WRITE, addr / PAGE_SIZE, null, null, null));
  addr += 2 * PAGE_SIZE + (rng.chance(0.001) ? rng.int(1, 64) * PAGE_SIZE : 0);
}
const top = addr;
const bytesPerVma = (heapUsed() - before) / count;

/** Calls of `fn` per second: the median of 5 timed batches of n/5 after a warm-up (a noisy machine). */
function rate(n: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(n, 50_000); i++) fn(i);
  const batch = Math.ceil(n / 5);
  const rates: number[] = [];
  for (let b = 0; b < 5; b++) {
    const t0 = performance.now();
    for (let i = b * batch; i < (b + 1) * batch; i++) fn(i);
    rates.push(batch / ((performance.now() - t0) / 1000));
  }
  return rates.sort((x, y) => x - y)[2]!;
}

const span = (top - base) / PAGE_SIZE;
const probes = Array.from({ length: 1 << 16 }, () => base + rng.int(0, span - 1) * PAGE_SIZE);
let sink = 0;
// find_vma() at uniformly random addresses: the lookup as the kernel times it (it hands back
// the VMA; what the caller then reads of it is the caller's cost).
const findVmaPerSec = rate(2_000_000, (i) => {
  if (mm.findVma(probes[i & 0xffff]!) !== null) sink++;
});
// The same lookups walking the address space in order (the access pattern of a fault storm
// through one mapping): what the tree costs when its nodes are in cache, for comparison.
const findVmaSequentialPerSec = rate(2_000_000, (i) => {
  if (mm.findVma(base + ((i * 2) % (span - 1)) * PAGE_SIZE) !== null) sink++;
});
const lengths = Array.from({ length: 1 << 10 }, () => rng.int(1, 48) * PAGE_SIZE);
const getUnmappedAreaPerSec = rate(500_000, (i) => {
  sink += mm.getUnmappedArea(lengths[i & 0x3ff]!, 0, MAP_PRIVATE | MAP_ANONYMOUS, null, VM_READ | VM_WRITE);
});
const pairs = 20_000;
const mmapMunmapPairsPerSec = (() => {
  const run = () =>
    runMmOp(mm, function* (task) {
      for (let i = 0; i < pairs; i++) {
        const a = yield* sysMmap(task, 0, (1 + (i % 8)) * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (a < 0) throw new Error(`mmap failed: ${a}`);
        const r = yield* sysMunmap(task, a, (1 + (i % 8)) * PAGE_SIZE);
        if (r !== 0) throw new Error(`munmap failed: ${r}`);
      }
    });
  run();
  const t0 = performance.now();
  run();
  return pairs / ((performance.now() - t0) / 1000);
})();
if (sink === 0.5) process.stderr.write('unreachable\n');

const result = { vmas: mm.mapCount, findVmaPerSec, getUnmappedAreaPerSec, mmapMunmapPairsPerSec, bytesPerVma, findVmaSequentialPerSec };
if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  const rows: [string, string, string][] = [
    ['VMAs in the mm', String(result.vmas), ''],
    ['find_vma / s', `${(findVmaPerSec / 1e6).toFixed(2)}M`, 'target >= 2M (random addresses)'],
    ['find_vma / s, in order', `${(findVmaSequentialPerSec / 1e6).toFixed(2)}M`, '(nodes in cache)'],
    ['get_unmapped_area / s', `${(getUnmappedAreaPerSec / 1e3).toFixed(0)}k`, 'target >= 500k'],
    ['mmap+munmap pairs / s', `${(mmapMunmapPairsPerSec / 1e3).toFixed(0)}k`, ''],
    ['bytes per VMA', bytesPerVma.toFixed(0), 'target <= 400'],
  ];
  for (const [k, v, t] of rows) console.log(`${k.padEnd(24)} ${v.padStart(10)}  ${t}`);
  console.log(`node ${process.version}`);
}
