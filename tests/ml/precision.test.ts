/**
 * Reductions keep float32 results within 1e-6 relative of the exact value (issue 16): sums,
 * means, bias gradients and broadcast-gradient reductions, up to 1e8 elements. The inputs are
 * chosen so the exact value is known: ones, and multiples of 1/1024 (exact in float32, and their
 * sums exact in float64 up to 2^53 / 1024).
 */
import { describe, expect, it } from 'vitest';
import * as ml from '../../src/ml/index.js';

const BOUND = 1e-6;

/** `length` values k/1024, k a seeded 10-bit integer (xorshift32), and their exact sum. */
function sixteenthsOf(length: number, seed: number): { values: Float32Array; exactSum: number } {
  const values = new Float32Array(length);
  let state = seed >>> 0 || 1;
  let integerSum = 0;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const k = (state >>> 0) >>> 22;
    integerSum += k;
    values[i] = k / 1024;
  }
  return { values, exactSum: integerSum / 1024 };
}

function relativeError(actual: number, exact: number): number {
  return Math.abs(actual - exact) / Math.abs(exact);
}

function gradOf(parameter: ml.Tensor): Float32Array {
  const grad = parameter.grad;
  if (grad === null) throw new Error('no gradient');
  return grad;
}

/**
 * `length` values: a seeded tile of 2^20 values k/1024 repeated (copyWithin, so 1e8 elements
 * take a fraction of a second to make), and their exact sum.
 */
function tiledSixteenths(length: number, seed: number): { values: Float32Array; exactSum: number } {
  const tileLength = 1 << 20;
  const tile = sixteenthsOf(tileLength, seed).values;
  const values = new Float32Array(length);
  values.set(tile.subarray(0, Math.min(tileLength, length)));
  for (let filled = tileLength; filled < length; filled *= 2)
    values.copyWithin(filled, 0, Math.min(filled, length - filled));
  let tileSum = 0;
  let partialSum = 0;
  const partial = length % tileLength;
  for (let i = 0; i < tileLength; i++) {
    tileSum += tile[i];
    if (i < partial) partialSum += tile[i];
  }
  return { values, exactSum: Math.floor(length / tileLength) * tileSum + partialSum };
}

describe('reductions within 1e-6 relative of the exact value', () => {
  it('sum and mean of 1e8 ones and of 1e8 seeded values (400 MB each, one at a time)', () => {
    const length = 100_000_000;
    let ones: Float32Array | null = new Float32Array(length).fill(1);
    const onesTensor = ml.fromData(ones, [length]);
    expect(ml.item(ml.sum(onesTensor))).toBe(length);
    expect(ml.item(ml.mean(onesTensor))).toBe(1);
    ones = null;
    const { values, exactSum } = tiledSixteenths(length, 16);
    const tensor = ml.fromData(values, [length]);
    expect(relativeError(ml.item(ml.sum(tensor)), exactSum)).toBeLessThan(BOUND);
    expect(relativeError(ml.item(ml.mean(tensor)), exactSum / length)).toBeLessThan(BOUND);
  });

  it('the issue cases: the mean of 2e7 ones is 1, a 1e6-element sum is exact to 1e-6', () => {
    expect(ml.item(ml.mean(ml.ones([20_000_000])))).toBe(1);
    const { values, exactSum } = sixteenthsOf(1_000_000, 3);
    expect(relativeError(ml.item(ml.sum(ml.fromData(values, [values.length]))), exactSum)).toBeLessThan(
      BOUND,
    );
  });

  it('sums over leading, trailing and non-adjacent axes', () => {
    const rows = 1_000_000;
    const columns = 4;
    const { values } = sixteenthsOf(rows * columns, 5);
    const exactColumns = new Float64Array(columns);
    const exactRows = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < columns; c++) {
        exactColumns[c] += values[r * columns + c];
        exactRows[r] += values[r * columns + c];
      }
    }
    const matrix = ml.fromData(values, [rows, columns]);
    const byColumn = ml.toArray(ml.sum(matrix, 0));
    for (let c = 0; c < columns; c++) expect(relativeError(byColumn[c], exactColumns[c])).toBeLessThan(BOUND);
    const byRow = ml.toArray(ml.mean(matrix, 1));
    for (let r = 0; r < rows; r += 9973) expect(byRow[r]).toBe(Math.fround(exactRows[r] / columns));
    // (1000, 4, 1000) over axes 0 and 2: not adjacent, the index-map path.
    const cube = ml.fromData(values, [1000, columns, 1000]);
    const middle = ml.toArray(ml.sum(cube, [0, 2]));
    for (let c = 0; c < columns; c++) {
      let exact = 0;
      for (let a = 0; a < 1000; a++)
        for (let b = 0; b < 1000; b++) exact += values[(a * columns + c) * 1000 + b];
      expect(relativeError(middle[c], exact)).toBeLessThan(BOUND);
    }
  });

  it('bias and broadcast gradients of a mean over 3M rows sum to 1', () => {
    // Not a power of two: each row's gradient 1/rows is inexact, and a float32 running sum drifts.
    const rows = 3_000_000;
    const x = ml.fromData(new Float32Array(rows).fill(0.5), [rows, 1]);
    const weight = ml.fromData(Float32Array.of(2), [1, 1], { requiresGrad: true });
    const bias = ml.fromData(Float32Array.of(0), [1], { requiresGrad: true });
    ml.backward(ml.mean(ml.linear(x, weight, bias)));
    expect(relativeError(gradOf(bias)[0], 1)).toBeLessThan(BOUND);
    const offset = ml.fromData(Float32Array.of(0), [1], { requiresGrad: true });
    ml.backward(ml.mean(ml.add(x, offset)));
    expect(relativeError(gradOf(offset)[0], 1)).toBeLessThan(BOUND);
  });

  it('layer norm gamma and beta gradients over 1M rows', () => {
    const rows = 1_000_000;
    const channels = 4;
    const { values } = sixteenthsOf(rows * channels, 9);
    const x = ml.fromData(values, [rows, channels]);
    const gamma = ml.fromData(new Float32Array(channels).fill(1), [channels], { requiresGrad: true });
    const beta = ml.fromData(new Float32Array(channels), [channels], { requiresGrad: true });
    ml.backward(ml.mean(ml.layerNorm(x, gamma, beta)));
    // d mean / d beta[c] = rows / (rows * channels), exactly.
    for (const value of gradOf(beta)) expect(relativeError(value, 1 / channels)).toBeLessThan(BOUND);
  });
});
