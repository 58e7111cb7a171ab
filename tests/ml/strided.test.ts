/**
 * The run-by-run strided loops (src/ml/internal/strided.ts) against the per-element index maps
 * they replaced: views gathered, binary ops broadcast, gradients summed back to a broadcast
 * shape, on random shapes, strides and broadcasts. Equal bit for bit: the same elements meet in
 * the same order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { add, div, expand, fromData, mul, permute, sub, sumTo, type Tensor } from '../../src/ml/index.js';
import { broadcastIndexMap, stridedIndexMap } from '../../src/ml/internal/broadcast.js';
import { gatherStrided, mergeLayout } from '../../src/ml/internal/strided.js';

const shapeArb = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 });

/** A shape and another that broadcasts to it (dimensions set to 1 or dropped on the left). */
const broadcastPairArb = shapeArb.chain((shape) =>
  fc
    .tuple(fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }), fc.nat(shape.length))
    .map(([ones, dropped]) => ({
      shape,
      small: shape.map((n, d) => (ones[d] ? 1 : n)).slice(dropped),
    })),
);

function values(size: number, seed: number): Float32Array {
  return Float32Array.from({ length: size }, (_, i) => Math.sin(seed + i * 1.7) * 3 + 0.25);
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function naiveBinary(
  f: (x: number, y: number) => number,
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
  shape: number[],
): Float32Array {
  const am = broadcastIndexMap(aShape, shape);
  const bm = broadcastIndexMap(bShape, shape);
  const out = new Float32Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = f(a[am ? am[i] : i], b[bm ? bm[i] : i]);
  return out;
}

describe('strided runs', () => {
  it('gathers any permuted view as the index map does', () => {
    fc.assert(
      fc.property(
        shapeArb.filter((s) => s.length > 0),
        fc.integer({ min: 0, max: 1000 }),
        (shape, seed) => {
          const order = shape.map((_, d) => d).sort((x, y) => Math.sin(seed + x) - Math.sin(seed + y));
          const x = fromData(values(sizeOf(shape), seed), shape);
          const view = permute(x, order);
          const expected = new Float32Array(view.size);
          const map = stridedIndexMap(view.shape, view.strides);
          for (let i = 0; i < map.length; i++) expected[i] = x.data[map[i] + view.offset];
          const out = new Float32Array(view.size);
          gatherStrided(x.data, view.offset, view.shape, view.strides, out);
          expect(out).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('broadcasts binary ops on either side as the index maps do', () => {
    const ops: [(a: Tensor, b: Tensor) => Tensor, (x: number, y: number) => number][] = [
      [add, (x, y) => x + y],
      [sub, (x, y) => x - y],
      [mul, (x, y) => x * y],
      [div, (x, y) => x / y],
    ];
    fc.assert(
      fc.property(
        broadcastPairArb,
        fc.nat(3),
        fc.boolean(),
        fc.nat(100),
        ({ shape, small }, k, flip, seed) => {
          const [op, f] = ops[k];
          const big = values(sizeOf(shape), seed);
          const little = values(sizeOf(small), seed + 50);
          const [a, aShape, b, bShape] = flip ? [little, small, big, shape] : [big, shape, little, small];
          const out = op(fromData(a, aShape), fromData(b, bShape));
          expect(out.shape).toEqual(shape);
          expect(out.data).toEqual(naiveBinary(f, a, aShape, b, bShape, shape));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('sums back to a broadcast shape in float64 in the same order, and expands back', () => {
    fc.assert(
      fc.property(broadcastPairArb, fc.nat(100), ({ shape, small }, seed) => {
        const big = values(sizeOf(shape), seed);
        const map = broadcastIndexMap(small, shape);
        const sums = new Float64Array(sizeOf(small));
        for (let i = 0; i < big.length; i++) sums[map ? map[i] : i] += big[i];
        expect(sumTo(fromData(big, shape), small).data).toEqual(Float32Array.from(sums));
        const little = values(sizeOf(small), seed);
        const expected = new Float32Array(sizeOf(shape));
        for (let i = 0; i < expected.length; i++) expected[i] = little[map ? map[i] : i];
        expect(expand(fromData(little, small), shape).data).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('merges a bias broadcast over [B, T, D] into B*T runs of D and drops size-1 dimensions', () => {
    const layout = mergeLayout(
      [4, 1, 3, 5],
      [
        [15, 15, 5, 1],
        [0, 0, 0, 1],
      ],
    );
    expect(layout).toEqual({
      sizes: [12, 5],
      strides: [
        [5, 1],
        [0, 1],
      ],
    });
    expect(mergeLayout([1, 1], [[1, 1]])).toEqual({ sizes: [1], strides: [[0]] });
  });
});
