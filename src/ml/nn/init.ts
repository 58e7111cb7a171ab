/**
 * Seeded initialisation. Layers draw from the `random` they are given, or from a default
 * generator that `manualSeed` resets (like `torch.manual_seed`), so a model built after
 * `manualSeed(s)` is the same every run.
 */
import { Random } from '../../actor/Random.js';
import { Parameter } from './Module.js';

let defaultRandom = new Random(0);

export function manualSeed(seed: number): void {
  defaultRandom = new Random(seed);
}

export function initRandom(random?: Random): Random {
  return random ?? defaultRandom;
}

/** U(-bound, bound) values. */
export function uniformParameter(shape: readonly number[], bound: number, random: Random): Parameter {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = (2 * random.next() - 1) * bound;
  return new Parameter(data, shape);
}

/** N(0, std^2) values. */
export function normalParameter(
  shape: readonly number[],
  standardDeviation: number,
  random: Random,
): Parameter {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = random.normal(0, standardDeviation);
  return new Parameter(data, shape);
}

export function constantParameter(shape: readonly number[], value: number): Parameter {
  const size = shape.reduce((a, b) => a * b, 1);
  return new Parameter(new Float32Array(size).fill(value), shape);
}
