/**
 * How close a GPU result must be to the cpu reference, per dtype and kind of op. The cpu
 * kernels evaluate in f64 and round once; GPUs evaluate in f32 with their own exp/tanh and
 * summation order, so sums drift with their length. A value passes when
 * |actual - expected| <= atol + rtol * |expected| (NumPy's `allclose`).
 *
 * | dtype | elementwise          | reductions, softmax, layernorm | matmul, conv2d       |
 * | ----- | -------------------- | ------------------------------ | -------------------- |
 * | f32   | rtol 1e-4, atol 1e-5 | rtol 1e-4, atol 1e-4           | rtol 1e-3, atol 1e-4 |
 * | tf32  |                      |                                | rtol 5e-3, atol 5e-3 |
 * | bf16  |                      |                                | rtol 2e-2, atol 2e-2 |
 *
 * tf32 keeps 10 mantissa bits (relative 2^-11 per input), bf16 7 bits (2^-8); the bounds
 * hold for inputs in [-1, 1] and k up to a few thousand.
 */
export interface Tolerance {
  readonly rtol: number;
  readonly atol: number;
}

export type ToleranceKind = 'elementwise' | 'reduction' | 'matmul';

export const TOLERANCES = {
  f32: {
    elementwise: { rtol: 1e-4, atol: 1e-5 },
    reduction: { rtol: 1e-4, atol: 1e-4 },
    matmul: { rtol: 1e-3, atol: 1e-4 },
  },
  tf32: { matmul: { rtol: 5e-3, atol: 5e-3 } },
  bf16: { matmul: { rtol: 2e-2, atol: 2e-2 } },
} as const;

export interface Mismatch {
  readonly index: number;
  readonly actual: number;
  readonly expected: number;
}

/** The first element outside the tolerance, or undefined when all match (NaN equals NaN). */
export function firstMismatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: Tolerance,
): Mismatch | undefined {
  if (actual.length !== expected.length)
    return { index: -1, actual: actual.length, expected: expected.length };
  for (let index = 0; index < expected.length; index++) {
    const a = actual[index];
    const e = expected[index];
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (!(Math.abs(a - e) <= tolerance.atol + tolerance.rtol * Math.abs(e)))
      return { index, actual: a, expected: e };
  }
  return undefined;
}
