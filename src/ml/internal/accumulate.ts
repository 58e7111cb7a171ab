/**
 * Float64 accumulation for float32 reductions. Adding float32 values one at a time into a
 * float32 total loses the low bits once the total is large (the mean of 2e7 ones comes out as
 * 0.84); a float64 total keeps the relative error of a sum of n float32 values near n * 1.1e-16,
 * about 1e-8 at n = 1e8, and rounding it once to float32 at the end costs at most 6e-8.
 *
 * `float64Accumulator` lends one reusable zeroed buffer, so reductions in a training step
 * allocate nothing after the first: the caller uses it and is done with it before the next call
 * (every op here is synchronous). It grows to the largest length asked for; a buffer above
 * `ACCUMULATOR_KEPT_MAX` elements is handed out once and not kept.
 */

/** The largest accumulator kept between calls, in elements (8 MiB of float64). */
export const ACCUMULATOR_KEPT_MAX = 1 << 20;

let kept = new Float64Array(1024);

/** A zeroed Float64Array of `length` elements, valid until the next call. */
export function float64Accumulator(length: number): Float64Array {
  if (length > ACCUMULATOR_KEPT_MAX) return new Float64Array(length);
  if (length > kept.length) kept = new Float64Array(Math.max(length, 2 * kept.length));
  const view = kept.subarray(0, length);
  view.fill(0);
  return view;
}

/** The float64 sum of x[start], x[start + stride], ... (`count` elements). */
export function sumStrided(x: Float32Array, start: number, count: number, stride: number): number {
  const end = start + count * stride;
  if (stride !== 1) {
    let total = 0;
    for (let i = start; i < end; i += stride) total += x[i];
    return total;
  }
  // Four independent totals: the additions overlap in the pipeline (about twice as fast).
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    a += x[i];
    b += x[i + 1];
    c += x[i + 2];
    d += x[i + 3];
  }
  for (; i < end; i++) a += x[i];
  return a + b + (c + d);
}

/** target[i] += accumulator[i], rounded once to float32. */
export function addAccumulated(target: Float32Array, accumulator: Float64Array): void {
  for (let i = 0; i < accumulator.length; i++) target[i] += accumulator[i];
}
