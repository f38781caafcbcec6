/**
 * Schedules: the thread id run at each step, as a compact string. Runs of one thread are
 * written `id*count`, steps are joined by `.`, ids in decimal: `0*5.1*3.0` runs T0 five steps,
 * T1 three, then T0 once.
 */

/** Records a schedule as it runs, run-length encoded. */
export class ScheduleRecorder {
  #ids = new Int32Array(1024);
  #counts = new Int32Array(1024);
  #runs = 0;
  #last = -1;

  /** Record that thread `id` ran the next step. Hot: no allocation but on growth. */
  push(id: number): void {
    if (id === this.#last) {
      this.#counts[this.#runs - 1]!++;
      return;
    }
    if (this.#runs === this.#ids.length) this.#grow();
    this.#ids[this.#runs] = id;
    this.#counts[this.#runs] = 1;
    this.#runs++;
    this.#last = id;
  }

  encode(): string {
    const parts: string[] = new Array<string>(this.#runs);
    for (let i = 0; i < this.#runs; i++) {
      const c = this.#counts[i]!;
      parts[i] = c === 1 ? `${this.#ids[i]}` : `${this.#ids[i]}*${c}`;
    }
    return parts.join('.');
  }

  #grow(): void {
    const ids = new Int32Array(this.#ids.length * 2);
    ids.set(this.#ids);
    this.#ids = ids;
    const counts = new Int32Array(this.#counts.length * 2);
    counts.set(this.#counts);
    this.#counts = counts;
  }
}

/** Encode a list of thread ids, one per step. */
export function encodeSchedule(ids: readonly number[]): string {
  const r = new ScheduleRecorder();
  for (const id of ids) r.push(id);
  return r.encode();
}

/** Decode a schedule string into one thread id per step; a malformed string is a clear error. */
export function decodeSchedule(text: string): number[] {
  const out: number[] = [];
  if (text.trim() === '') return out;
  const parts = text.trim().split('.');
  for (let i = 0; i < parts.length; i++) {
    const m = /^(\d+)(?:\*(\d+))?$/.exec(parts[i]!);
    if (m === null) throw new SyntaxError(`schedule: part ${i + 1} '${parts[i]}' is not 'id' or 'id*count'`);
    const id = Number(m[1]);
    const count = m[2] === undefined ? 1 : Number(m[2]);
    if (count < 1) throw new SyntaxError(`schedule: part ${i + 1} '${parts[i]}' has a count below 1`);
    for (let j = 0; j < count; j++) out.push(id);
  }
  return out;
}
