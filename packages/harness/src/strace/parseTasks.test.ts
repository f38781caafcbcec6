// Proves parseTasks reads every task tree of shared/traces/tasks: row counts, kinds, parents, exec
// chains and renames equal the values read off the files, and every non-root task is a thread of
// the root's mm. (That the trees fit their strace logs is checked in parseStrace.test.ts, which has
// the logs parsed.) Bad rows must throw `file:line: column '...'` naming the column.
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type TaskRecord, parseTasks } from './parseTasks.js';

const tracesDir = new URL('../../../../../shared/traces/', import.meta.url);
const taskFiles = readdirSync(new URL('tasks/', tracesDir)).filter((f) => f.endsWith('.tasks.tsv'));

function readTasks(file: string): TaskRecord[] {
  return parseTasks(readFileSync(new URL(`tasks/${file}`, tracesDir), 'utf8'), file);
}

const header = 'tid\ttgid\tparent_tid\tkind\tclone_flags\tstart\texit\tcomm_at_exit\texec\trenamed_to';
const root = '13710\t13710\t-\troot\t-\t00:20:21.900766\t00:20:30.321419\tjava\t/usr/bin/java\tjava';
const thread = '13712\t13710\t13711\tthread\t3d0f00\t00:20:21.920127\t00:20:30.321380\tGC Thread#0\t-\tGC Thread#0';

function errorOf(...rows: string[]): string {
  try {
    parseTasks(['# comment', header, ...rows, ''].join('\n'), 'bad.tsv');
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

describe('parseTasks', () => {
  describe('having the real task trees of shared/traces/tasks', () => {
    it('should parse all five with one root each and threads of its mm', () => {
      const counts: Record<string, number> = {};
      for (const file of taskFiles) {
        const tasks = readTasks(file);
        counts[file] = tasks.length;
        const [first, ...rest] = tasks;
        expect(first?.kind).toBe('root');
        for (const t of rest) expect(t).toMatchObject({ kind: 'thread', tgid: first?.tid, cloneFlags: 0x3d0f00 });
      }
      expect(counts).toEqual({
        'edge_python_segv.tasks.tsv': 4,
        'java_allocstress.tasks.tsv': 40,
        'node_workers.tasks.tsv': 11,
        'python_threads.tasks.tsv': 6,
        'sort_parallel.tasks.tsv': 4,
      });
    });

    it('should read the exec chain, renames with spaces and non-root parents', () => {
      const [edgeRoot] = readTasks('edge_python_segv.tasks.tsv');
      expect(edgeRoot).toEqual({
        tid: 14319,
        tgid: 14319,
        parentTid: null,
        kind: 'root',
        cloneFlags: null,
        startUs: (21 * 60 + 56) * 1_000_000 + 804_850,
        exitUs: (21 * 60 + 57) * 1_000_000 + 78_004,
        comm: 'python3.11',
        exec: ['/usr/bin/sh', '/root/.pyenv/versions/3.11.7/bin/python3.11'],
        renamedTo: ['sh', 'python3.11'],
      });
      const java = readTasks('java_allocstress.tasks.tsv');
      expect(java.find((t) => t.tid === 13712)).toMatchObject({ parentTid: 13711, comm: 'GC Thread#0', exec: [], renamedTo: ['GC Thread#0'] });
      expect(java.find((t) => t.tid === 13729)?.parentTid).toBe(13713);
    });
  });

  describe('having bad input', () => {
    it('should name the header', () => {
      expect(() => parseTasks('tid\ttgid\n', 'bad.tsv')).toThrow("bad.tsv:1: header 'tid\ttgid' is not ");
      expect(() => parseTasks('# only a comment\n', 'bad.tsv')).toThrow('bad.tsv: no header row');
    });

    it('should name the line and column of a bad row', () => {
      expect(errorOf(root, '13712\t13710\t13711\tthread')).toBe('bad.tsv:4: 4 columns, expected 10');
      expect(errorOf(root.replace('13710\t13710', '13710\t1371O'))).toBe("bad.tsv:3: column 'tgid' '1371O' is not a tid");
      expect(errorOf(root, thread.replace('thread', 'fiber'))).toBe("bad.tsv:4: column 'kind' 'fiber' is not one of root, process, thread");
      expect(errorOf(root, thread.replace('00:20:21.920127', '00:20:21'))).toBe("bad.tsv:4: column 'start' '00:20:21' is not HH:MM:SS.micro");
      expect(errorOf(root, thread.replace('3d0f00', '0x3d0f00'))).toBe("bad.tsv:4: column 'clone_flags' '0x3d0f00' is not '-' or hex flags");
    });

    it('should refuse rows whose kind the ids and flags contradict', () => {
      expect(errorOf(root, thread.replace('13712\t13710', '13712\t13712'))).toBe("bad.tsv:4: column 'tgid' 13712 equals tid 13712 for a thread");
      expect(errorOf(root, thread.replace('3d0f00', '11'))).toBe("bad.tsv:4: column 'clone_flags' 11 lack CLONE_VM|CLONE_THREAD for a thread");
      expect(errorOf(root.replace('\t-\troot', '\t1\troot'))).toBe("bad.tsv:3: column 'parent_tid' is 1 for the root, expected '-'");
      expect(errorOf(root, thread, thread)).toBe("bad.tsv:5: column 'tid' 13712 repeats line 4");
    });
  });
});
