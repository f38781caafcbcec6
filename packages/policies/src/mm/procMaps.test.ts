// Proves the /proc/pid/maps model renders the kernel's exact text: every real maps file in
// shared/traces/maps loads into an mm (one VMA per line, files, [heap], [stack], [vdso]-like
// special mappings, the [vsyscall] gate VMA) and renders back byte for byte; and that a maps
// line of our own VMAs follows the kernel's layout (name at column 73, trailing space when
// nameless, anonymous offset 0).
import { readFileSync, readdirSync } from 'node:fs';
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  MapsParseError,
  MmFile,
  MmStruct,
  PROT_READ,
  PROT_WRITE,
  checkMmInvariants,
  loadMaps,
  renderMaps,
  runMmOp,
  sysMmap,
} from '@vmalock/core';
import { describe, expect, it } from 'vitest';
import { sharedTrace, sharedTracesDir } from '../../../../test-support/sharedTraces.js';
import { GlobalRwsemPolicy } from '../globalRwsem.js';

const mapsFiles = readdirSync(`${sharedTracesDir}maps`).filter((f) => f.endsWith('.maps'));

describe('loadMaps / renderMaps', () => {
  it('should find the real maps files', () => {
    expect(mapsFiles.length).toBeGreaterThanOrEqual(2);
  });

  it.each(mapsFiles)('should round-trip %s byte for byte', (name) => {
    const text = readFileSync(sharedTrace('maps', name), 'utf8');
    const mm = loadMaps(text, name, 1, new GlobalRwsemPolicy());
    checkMmInvariants(mm);
    expect(mm.mapCount).toBe(text.trimEnd().split('\n').length - (text.includes('[vsyscall]') ? 1 : 0));
    expect(renderMaps(mm)).toBe(text);
  });

  it('should name the file and line of a malformed maps line', () => {
    const bad = '00400000-00401000 r-xp 00000000 08:01 42  /bin/true\nnot a line\n';
    expect(() => loadMaps(bad, 'bad.maps', 1, new GlobalRwsemPolicy())).toThrow(MapsParseError);
    expect(() => loadMaps(bad, 'bad.maps', 1, new GlobalRwsemPolicy())).toThrow(/^bad\.maps:2: not a maps line/);
  });

  it('should reject overlapping lines naming the line', () => {
    const overlap = '00400000-00402000 rw-p 00000000 00:00 0 \n00401000-00403000 rw-p 00000000 00:00 0 \n';
    expect(() => loadMaps(overlap, 'overlap.maps', 1, new GlobalRwsemPolicy())).toThrow(/^overlap\.maps:2: /);
  });
});

describe('mapsLine', () => {
  it('should lay out anonymous and file mappings as the kernel does', () => {
    const mm = new MmStruct(7, new GlobalRwsemPolicy());
    mm.files.set(3, new MmFile('/usr/lib/libc.so.6', 1234, 0xfe, 0x01));
    const anon = runMmOp(mm, (t) => sysMmap(t, 0x20000000, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    const file = runMmOp(mm, (t) => sysMmap(t, 0x30000000, 0x1000, PROT_READ, MAP_SHARED, 3, 0x5000));
    expect([anon, file]).toEqual([0x20000000, 0x30000000]);
    expect(renderMaps(mm)).toBe(
      '20000000-20002000 rw-p 00000000 00:00 0 \n' + `30000000-30001000 r--s 00005000 fe:01 1234${' '.repeat(31)}/usr/lib/libc.so.6\n`,
    );
    expect(renderMaps(mm).split('\n')[1]!.indexOf('/usr')).toBe(73);
  });
});
