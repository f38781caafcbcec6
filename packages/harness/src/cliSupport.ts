import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { Presets, SingleBar } from 'cli-progress';

/** Exit codes of every vmalock command. */
export const ExitCode = { ok: 0, gateFailed: 1, badInput: 2, internal: 3 } as const;

/** Where a command writes; tests pass their own. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** A bad argument or input: one clear line, exit 2. */
export class UsageError extends Error {}

/** Write `text` to `file` whole or not at all (a temporary file renamed into place). */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

export function positiveInt(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`--${name} must be an integer in 1..${max}, got '${String(value)}'`);
  return n;
}

export function seedOf(value: unknown): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--seed must be a non-negative integer, got '${String(value)}'`);
  return n;
}

/** Render rows as an aligned text table. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return `${[line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`;
}

/** A progress bar on stderr (cli-progress), for long work; a no-op unless stderr is a terminal. */
export interface Progress {
  /** `done` of `total` done; `what` is being done now. */
  update(done: number, total: number, what: string): void;
  stop(): void;
}

/** The progress bar of `label`: drawn on stderr when it is a terminal and not `quiet`, else nothing. */
export function progressBar(label: string, quiet = false): Progress {
  if (quiet || process.stderr.isTTY !== true) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar(
    { format: `${label} [{bar}] {value}/{total} {what}`, stream: process.stderr, clearOnComplete: true, hideCursor: true, barsize: 24 },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, what) {
      if (!started) {
        bar.start(total, done, { what });
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(done, { what });
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
