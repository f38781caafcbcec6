import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

type Generator = ReturnType<typeof xoroshiro128plus>;

/**
 * The one seeded PRNG of a run. Independent streams (the scheduler's, the program's) are derived
 * from the same seed by jumping 2^64 steps, so a replayed schedule that draws no scheduler
 * numbers still hands the program the same numbers.
 */
export class Prng {
  readonly #gen: Generator;

  constructor(seed: number, stream = 0) {
    // xoroshiro128+ seeded with small neighbouring integers starts with correlated outputs:
    // scramble the seed (both 32-bit halves) first, and drop the first outputs.
    const gen = xoroshiro128plus(fmix32(fmix32(seed >>> 0) ^ Math.floor(seed / 0x100000000)) | 0);
    for (let i = 0; i < stream; i++) gen.jump();
    for (let i = 0; i < 16; i++) gen.next();
    this.#gen = gen;
  }

  /** A uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    return uniformInt(this.#gen, lo, hi);
  }

  /** A uniform index in [0, length). */
  index(length: number): number {
    return uniformInt(this.#gen, 0, length - 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return uniformInt(this.#gen, 0, 0x3fffffff) < p * 0x40000000;
  }
}

/** The streams derived from one seed. */
export const PrngStream = { scheduler: 0, program: 1 } as const;

/** MurmurHash3's 32-bit finaliser: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
