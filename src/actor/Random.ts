/**
 * A small seeded pseudo-random generator (xoshiro128**), used wherever zbmd needs randomness
 * that must replay: fault injection, weight initialisation, dropout, data shuffling, jitter.
 *
 * Its whole state is four 32-bit words, so it can be saved in a checkpoint and restored
 * exactly (`getState` / `setState`).
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { Random } from 'zbmd';
 *
 * const a = new Random(42);
 * const b = new Random(42);
 * assert.equal(a.next(), b.next()); // same seed, same sequence
 * ```
 */
export class Random {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spareNormal: number | undefined;

  constructor(seed: number | bigint = 0) {
    this.reseed(seed);
  }

  /** Resets the generator to the sequence of `seed` (any integer; expanded with splitmix32). */
  reseed(seed: number | bigint): void {
    let x = Number(BigInt.asUintN(32, BigInt(seed))) >>> 0;
    const high = Number(BigInt.asUintN(32, BigInt(seed) >> 32n)) >>> 0;
    x = (x ^ Math.imul(high, 0x9e3779b9)) >>> 0;
    const splitmix = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = splitmix();
    this.s1 = splitmix();
    this.s2 = splitmix();
    this.s3 = splitmix();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
    this.spareNormal = undefined;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A float uniformly distributed in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer uniformly distributed in [0, bound), bound a positive integer <= 2^32. */
  nextInt(bound: number): number {
    if (!Number.isInteger(bound) || bound <= 0 || bound > 4294967296) {
      throw new RangeError(`Random.nextInt: bound must be an integer in [1, 2^32], got ${bound}`);
    }
    // Rejection sampling keeps the result unbiased.
    const limit = 4294967296 - (4294967296 % bound);
    for (;;) {
      const value = this.nextUint32();
      if (value < limit) return value % bound;
    }
  }

  /** A standard normal sample (Box-Muller; the second value of each pair is kept). */
  normal(mean = 0, stdDev = 1): number {
    if (this.spareNormal !== undefined) {
      const value = this.spareNormal;
      this.spareNormal = undefined;
      return mean + stdDev * value;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const radius = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = radius * Math.sin(2 * Math.PI * v);
    return mean + stdDev * radius * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles `array` in place (Fisher-Yates) and returns it. */
  shuffle<T extends { length: number; [index: number]: any }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return p > 0 && this.next() < p;
  }

  /** The full state, to be saved in a checkpoint. */
  getState(): RandomState {
    // Unsigned, as checkpoint manifests require (the words may be held signed; setState reads either).
    const words = [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
    return { words, spareNormal: this.spareNormal ?? null };
  }

  /** Restores a state from `getState`, so the sequence continues exactly. */
  setState(state: RandomState): void {
    const words = state?.words;
    if (!Array.isArray(words) || words.length !== 4 || words.some((w) => !Number.isInteger(w))) {
      throw new TypeError('Random.setState: expected { words: [four 32-bit integers], spareNormal }');
    }
    [this.s0, this.s1, this.s2, this.s3] = words.map((w) => w >>> 0);
    this.spareNormal = state.spareNormal ?? undefined;
  }
}

export interface RandomState {
  readonly words: readonly number[];
  readonly spareNormal: number | null;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
