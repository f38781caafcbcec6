// Proves the PRNG gives usable, independent streams from neighbouring seeds: the first draws of
// seeds 0..1999 are balanced (small seeds once started with correlated outputs), and the
// program stream differs from the scheduler stream of the same seed.
import { describe, expect, it } from 'vitest';
import { Prng, PrngStream } from './prng.js';

describe('Prng', () => {
  describe('having neighbouring small seeds', () => {
    it('should give balanced first and second draws', () => {
      let ones = 0;
      let equalPairs = 0;
      const seeds = 2000;
      for (let seed = 0; seed < seeds; seed++) {
        const p = new Prng(seed);
        const a = p.index(2);
        const b = p.index(2);
        ones += a;
        if (a === b) equalPairs++;
      }
      // Binomial(2000, 1/2): 4 standard deviations is ±89.
      expect(Math.abs(ones - seeds / 2)).toBeLessThan(90);
      expect(Math.abs(equalPairs - seeds / 2)).toBeLessThan(90);
    });
  });

  describe('having one seed', () => {
    it('should derive different streams and repeat each exactly', () => {
      const draw = (stream: number) => {
        const p = new Prng(123, stream);
        return Array.from({ length: 16 }, () => p.int(0, 1_000_000));
      };
      expect(draw(PrngStream.scheduler)).toEqual(draw(PrngStream.scheduler));
      expect(draw(PrngStream.program)).not.toEqual(draw(PrngStream.scheduler));
    });
  });
});
