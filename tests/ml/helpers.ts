/** Shared test helpers: seeded data and a finite-difference gradient check. */
import { expect } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import { backward, noGrad, type Tensor, tensor, toArray } from '../../src/ml/index.js';

export function uniformArray(random: Random, size: number, low = -1, high = 1): Float32Array {
  return Float32Array.from({ length: size }, () => low + (high - low) * random.next());
}

/** Values at least `margin` away from 0 (for relu's kink and for divisors). */
export function awayFromZero(random: Random, size: number, margin = 0.1, high = 1.5): Float32Array {
  return Float32Array.from(
    { length: size },
    () => (random.next() < 0.5 ? -1 : 1) * (margin + (high - margin) * random.next()),
  );
}

/** Distinct values spaced `spacing` apart, shuffled (so max/argmax never tie under a small nudge). */
export function distinctArray(random: Random, size: number, spacing = 0.05): Float32Array {
  const values = Float32Array.from({ length: size }, (_, i) => (i - size / 2) * spacing);
  return random.shuffle(values);
}

/** A test input: values and the shape they fill. */
export interface Input {
  readonly values: Float32Array;
  readonly shape: readonly number[];
}

/** Seeded inputs of a shape: uniform in [low, high), away from zero, or distinct. */
export function inputMaker(random: Random) {
  const count = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
  return {
    values: (shape: number[], low = -2, high = 2): Input => ({
      values: uniformArray(random, count(shape), low, high),
      shape,
    }),
    nonzero: (shape: number[]): Input => ({ values: awayFromZero(random, count(shape)), shape }),
    distinct: (shape: number[]): Input => ({ values: distinctArray(random, count(shape)), shape }),
  };
}

export interface GradCheckOptions {
  readonly epsilon?: number;
  readonly absoluteTolerance?: number;
  readonly relativeTolerance?: number;
  readonly seed?: number;
}

/**
 * Compares the autograd gradient of sum(w * f(inputs)) (random w) with central differences
 * computed in float64 from the f32 outputs.
 */
export function gradCheck(
  build: (inputs: Tensor[]) => Tensor,
  values: Float32Array[],
  shapes: number[][],
  options: GradCheckOptions = {},
): void {
  const epsilon = options.epsilon ?? 1e-2;
  const absoluteTolerance = options.absoluteTolerance ?? 5e-3;
  const relativeTolerance = options.relativeTolerance ?? 5e-3;
  const random = new Random(options.seed ?? 99);
  const inputs = values.map((data, i) => tensor(data, shapes[i], { requiresGrad: true }));
  const output = build(inputs);
  const weights = uniformArray(random, output.size);
  backward(output, weights);
  const analytic = inputs.map((input) => Float64Array.from(input.grad ?? new Float32Array(input.size)));
  const objective = (perturbed: Float32Array[]): number =>
    noGrad(() => {
      const out = toArray(build(perturbed.map((data, i) => tensor(data, shapes[i]))));
      let total = 0;
      for (let i = 0; i < out.length; i++) total += weights[i] * out[i];
      return total;
    });
  values.forEach((data, which) => {
    for (let j = 0; j < data.length; j++) {
      const plus = values.map((v) => Float32Array.from(v));
      const minus = values.map((v) => Float32Array.from(v));
      plus[which][j] += epsilon;
      minus[which][j] -= epsilon;
      const numeric = (objective(plus) - objective(minus)) / (2 * epsilon);
      const difference = Math.abs(analytic[which][j] - numeric);
      if (difference > absoluteTolerance + relativeTolerance * Math.abs(numeric)) {
        expect.fail(
          `input ${which} element ${j}: autograd ${analytic[which][j]}, finite difference ${numeric}`,
        );
      }
    }
  });
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tolerance * Math.max(1, Math.abs(expected[i])))) {
      expect.fail(`element ${i}: got ${actual[i]}, expected ${expected[i]} (tolerance ${tolerance})`);
    }
  }
}
