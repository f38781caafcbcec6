import { MmStruct } from './mmStruct.js';
import { PAGE_SIZE, VM_EXEC, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE } from './uapi.js';
import { MmFile, Vma } from './vma.js';
import type { LockPolicy } from './lockPolicy.js';

/** Where the name starts in a maps line (`seq_setwidth(m, 25 + sizeof(void *) * 6 - 1)`). */
const NAME_COLUMN = 73;

/** The name /proc/pid/maps shows for a VMA (`show_map_vma`), or '' for none. */
export function vmaDisplayName(mm: MmStruct, vma: Vma): string {
  if (vma.file !== null && !vma.file.anonShared) return vma.file.path;
  const special = vma.vmOps?.vmaName?.(vma) ?? null;
  if (special !== null) return special;
  if (vma.name !== null) return vma.name;
  // vma_is_initial_heap() / vma_is_initial_stack().
  if (vma.start < mm.brk && vma.end > mm.startBrk) return '[heap]';
  if (vma.start <= mm.startStack && vma.end >= mm.startStack) return '[stack]';
  return '';
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** One line of /proc/pid/maps for `vma`, in the kernel's exact format (no newline). */
export function mapsLine(mm: MmStruct, vma: Vma): string {
  const perms = `${vma.flags & VM_READ ? 'r' : '-'}${vma.flags & VM_WRITE ? 'w' : '-'}${vma.flags & VM_EXEC ? 'x' : '-'}${vma.flags & VM_MAYSHARE ? 's' : 'p'}`;
  const file = vma.file !== null && !vma.file.anonShared ? vma.file : null;
  const pgoff = file !== null ? vma.pgoff * PAGE_SIZE : 0;
  const dev = file !== null ? `${hex(file.devMajor, 2)}:${hex(file.devMinor, 2)}` : '00:00';
  const ino = file !== null ? file.ino : 0;
  const prefix = `${hex(vma.start, 8)}-${hex(vma.end, 8)} ${perms} ${hex(pgoff, 8)} ${dev} ${ino} `;
  const name = vmaDisplayName(mm, vma);
  if (name === '') return prefix;
  return `${prefix.padEnd(NAME_COLUMN - 1, ' ')}${prefix.length >= NAME_COLUMN - 1 ? '' : ' '}${name}`;
}

/**
 * `/proc/pid/maps` of `mm`: every visible VMA in address order, then the gate VMA
 * (`[vsyscall]`) when the mm has one. Context: the caller holds the policy's read lock on the
 * whole mm (or the mm is quiescent).
 */
export function renderMaps(mm: MmStruct): string {
  let out = '';
  for (const vma of mm.vmas()) out += `${mapsLine(mm, vma)}\n`;
  if (mm.gateVma !== null) out += `${mapsLine(mm, mm.gateVma)}\n`;
  return out;
}

/** vm_ops of a special mapping (`_install_special_mapping`): only a name. */
export function specialMapping(name: string): NonNullable<Vma['vmOps']> {
  return { name: `special ${name}`, vmaName: () => name };
}

const LINE = /^([0-9a-f]+)-([0-9a-f]+) ([r-])([w-])([x-])([sp]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+) ?(.*)$/;

/** A maps line that does not parse. */
export class MapsParseError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
  }
}

/**
 * Build an mm from a /proc/pid/maps text (as captured from a real process): one VMA per line,
 * inserted as is (no merging), files by (dev, inode, path), `[heap]` setting the break,
 * `[stack]` the stack start, `[vdso]`-like names as special mappings, `[vsyscall]` as the gate
 * VMA. `renderMaps` of the result gives the text back byte for byte.
 */
export function loadMaps(text: string, file: string, pid: number, policy: LockPolicy): MmStruct {
  const vmas: { vma: Vma; line: number }[] = [];
  const files = new Map<string, MmFile>();
  let heap: Vma | null = null;
  let stack: Vma | null = null;
  let gate: Vma | null = null;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, i) => {
    const m = LINE.exec(raw);
    if (m === null) throw new MapsParseError(file, i + 1, `not a maps line: '${raw.slice(0, 80)}'`);
    const [, s, e, r, w, x, sp, off, major, minor, inoText, rest] = m as unknown as string[];
    const start = parseInt(s!, 16);
    const end = parseInt(e!, 16);
    if (!(start < end) || start % PAGE_SIZE !== 0 || end % PAGE_SIZE !== 0)
      throw new MapsParseError(file, i + 1, `range '${s}-${e}' is empty or not page-aligned`);
    const name = rest!.trimStart();
    let flags = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
    if (r === 'r') flags |= VM_READ;
    if (w === 'w') flags |= VM_WRITE;
    if (x === 'x') flags |= VM_EXEC;
    if (sp === 's') flags |= VM_SHARED | VM_MAYSHARE;
    const ino = Number(inoText);
    const isFile = ino !== 0 || (name.startsWith('/') && (major !== '00' || minor !== '00'));
    let mmFile: MmFile | null = null;
    if (isFile) {
      const key = `${major}:${minor}:${ino}:${name}`;
      mmFile = files.get(key) ?? new MmFile(name, ino, parseInt(major!, 16), parseInt(minor!, 16));
      files.set(key, mmFile);
    }
    const pgoff = mmFile !== null ? parseInt(off!, 16) / PAGE_SIZE : start / PAGE_SIZE;
    if (mmFile === null && parseInt(off!, 16) !== 0) throw new MapsParseError(file, i + 1, `offset '${off}' on a mapping without a file`);
    const special = !isFile && name.startsWith('[') && name !== '[heap]' && name !== '[stack]' && !name.startsWith('[anon:');
    const vma = new Vma(start, end, flags, pgoff, mmFile, null, special ? specialMapping(name) : null);
    if (!isFile && name.startsWith('[anon:')) vma.name = name;
    if (!isFile && name !== '' && !name.startsWith('[')) vma.name = name;
    if (name === '[heap]') heap = vma;
    if (name === '[stack]') stack = vma;
    if (name === '[vsyscall]') gate = vma;
    else vmas.push({ vma, line: i + 1 });
  });
  const h = heap as Vma | null;
  const st = stack as Vma | null;
  const mm = new MmStruct(pid, policy, {
    ...(h !== null ? { startBrk: h.start } : { startBrk: 0 }),
    ...(st !== null ? { startStack: st.end - PAGE_SIZE } : { startStack: 0 }),
  });
  if (h !== null) mm.brk = h.end;
  for (const { vma, line } of vmas) {
    try {
      mm.insertVmaUnchecked(vma);
    } catch (e) {
      throw new MapsParseError(file, line, e instanceof Error ? e.message : String(e));
    }
  }
  mm.gateVma = gate;
  return mm;
}
