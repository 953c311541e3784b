// A small deterministic generator (xorshift32) for randomized tests: the same seed gives the same
// sequence, so a failing case can be replayed.

/** next(n) is a number in [0, n). */
export function seededRandom(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}
