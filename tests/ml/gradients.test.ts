/**
 * Every differentiable op's gradient against central finite differences, on random shapes
 * (fast-check properties with a fixed seed, so runs are deterministic).
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import * as ml from '../../src/ml/index.js';
import { awayFromZero, distinctArray, gradCheck, uniformArray } from './helpers.js';

const RUNS = { numRuns: 12, seed: 20251121 };
const dimension = fc.integer({ min: 1, max: 4 });
const shapeArbitrary = fc.array(dimension, { minLength: 1, maxLength: 3 });
const seedArbitrary = fc.integer({ min: 0, max: 1_000_000 });
const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** A shape that broadcasts against `shape`: some dimensions set to 1, maybe fewer leading ones. */
function broadcastPartner(shape: number[], random: Random): number[] {
  const drop = random.nextInt(shape.length);
  return shape.slice(drop).map((n) => (random.next() < 0.4 ? 1 : n));
}

describe('element-wise gradients', () => {
  const unary: Array<[string, (x: ml.Tensor) => ml.Tensor, (r: Random, n: number) => Float32Array]> = [
    ['neg', ml.neg, (r, n) => uniformArray(r, n)],
    ['exp', ml.exp, (r, n) => uniformArray(r, n)],
    ['log', ml.log, (r, n) => uniformArray(r, n, 0.5, 2)],
    ['sqrt', ml.sqrt, (r, n) => uniformArray(r, n, 0.5, 2)],
    ['relu', ml.relu, (r, n) => awayFromZero(r, n)],
    ['gelu', ml.gelu, (r, n) => uniformArray(r, n, -2, 2)],
    ['sigmoid', ml.sigmoid, (r, n) => uniformArray(r, n, -2, 2)],
    ['tanh', ml.tanh, (r, n) => uniformArray(r, n, -2, 2)],
  ];
  for (const [name, op, values] of unary) {
    it(`${name} matches finite differences`, () => {
      fc.assert(
        fc.property(shapeArbitrary, seedArbitrary, (shape, seed) => {
          gradCheck(([x]) => op(x), [values(new Random(seed), size(shape))], [shape]);
        }),
        RUNS,
      );
    });
  }

  const binary: Array<[string, (a: ml.Tensor, b: ml.Tensor) => ml.Tensor, boolean]> = [
    ['add', ml.add, false],
    ['sub', ml.sub, false],
    ['mul', ml.mul, false],
    ['div', ml.div, true],
    ['pow', ml.pow, true],
  ];
  for (const [name, op, positive] of binary) {
    it(`${name} with broadcasting matches finite differences`, () => {
      fc.assert(
        fc.property(shapeArbitrary, seedArbitrary, (shape, seed) => {
          const random = new Random(seed);
          const other = broadcastPartner(shape, random);
          const [first, second] = random.next() < 0.5 ? [shape, other] : [other, shape];
          const make = (n: number): Float32Array =>
            positive ? uniformArray(random, n, 0.5, 2) : uniformArray(random, n);
          gradCheck(([a, b]) => op(a, b), [make(size(first)), make(size(second))], [first, second]);
        }),
        RUNS,
      );
    });
  }
});

describe('reduction gradients', () => {
  const axesOf = (rank: number, random: Random): number[] =>
    [...Array(rank).keys()].filter(() => random.next() < 0.5);
  for (const [name, op] of [
    ['sum', ml.sum],
    ['mean', ml.mean],
    ['max', ml.max],
  ] as const) {
    it(`${name} over random axes matches finite differences`, () => {
      fc.assert(
        fc.property(shapeArbitrary, seedArbitrary, fc.boolean(), (shape, seed, keepDims) => {
          const random = new Random(seed);
          const axes = axesOf(shape.length, random);
          const values = distinctArray(random, size(shape));
          gradCheck(([x]) => op(x, axes.length === 0 ? undefined : axes, { keepDims }), [values], [shape]);
        }),
        RUNS,
      );
    });
  }

  it('softmax and logSoftmax along any axis match finite differences', () => {
    fc.assert(
      fc.property(shapeArbitrary, seedArbitrary, (shape, seed) => {
        const random = new Random(seed);
        const axis = random.nextInt(shape.length);
        const values = uniformArray(random, size(shape), -2, 2);
        gradCheck(([x]) => ml.softmax(x, axis), [values], [shape]);
        gradCheck(([x]) => ml.logSoftmax(x, axis), [values], [shape]);
      }),
      RUNS,
    );
  });
});

describe('shape op gradients', () => {
  it('permute, transpose, reshape and contiguous match finite differences', () => {
    fc.assert(
      fc.property(fc.array(dimension, { minLength: 2, maxLength: 4 }), seedArbitrary, (shape, seed) => {
        const random = new Random(seed);
        const order = random.shuffle([...shape.keys()]);
        const values = uniformArray(random, size(shape));
        // Multiply after the view so the backward sees a non-trivial gradient layout.
        const weights = uniformArray(random, size(shape));
        const permutedShape = order.map((d) => shape[d]);
        gradCheck(([x, w]) => ml.mul(ml.permute(x, order), w), [values, weights], [shape, permutedShape]);
        gradCheck(([x]) => ml.reshape(ml.transpose(x, 0, -1), [-1]), [values], [shape]);
      }),
      RUNS,
    );
  });

  it('slice and concat match finite differences', () => {
    fc.assert(
      fc.property(fc.array(dimension, { minLength: 1, maxLength: 3 }), seedArbitrary, (shape, seed) => {
        const random = new Random(seed);
        const axis = random.nextInt(shape.length);
        const start = random.nextInt(shape[axis]);
        const end = start + 1 + random.nextInt(shape[axis] - start);
        const values = uniformArray(random, size(shape));
        gradCheck(([x]) => ml.slice(x, axis, start, end), [values], [shape]);
        const other = [...shape];
        other[axis] = 1 + random.nextInt(3);
        gradCheck(
          ([a, b]) => ml.concat([a, b, a], axis),
          [values, uniformArray(random, size(other))],
          [shape, other],
        );
      }),
      RUNS,
    );
  });
});

describe('matrix product gradients', () => {
  it('batched, broadcasting matmul matches finite differences', () => {
    fc.assert(
      fc.property(
        dimension,
        dimension,
        dimension,
        fc.integer({ min: 0, max: 3 }),
        seedArbitrary,
        (m, k, n, batch, seed) => {
          const random = new Random(seed);
          const aShape = batch > 0 ? [batch, m, k] : [m, k];
          const bShape = random.next() < 0.5 ? [k, n] : [...(batch > 0 ? [batch] : []), k, n];
          gradCheck(
            ([a, b]) => ml.matmul(a, b),
            [uniformArray(random, size(aShape)), uniformArray(random, size(bShape))],
            [aShape, bShape],
          );
        },
      ),
      RUNS,
    );
  });

  it('matmul of transposed views matches finite differences', () => {
    fc.assert(
      fc.property(dimension, dimension, dimension, seedArbitrary, (m, k, n, seed) => {
        const random = new Random(seed);
        gradCheck(
          ([a, b]) => ml.matmul(ml.transpose(a), ml.transpose(b)),
          [uniformArray(random, k * m), uniformArray(random, n * k)],
          [
            [k, m],
            [n, k],
          ],
        );
      }),
      RUNS,
    );
  });

  it('linear (with and without bias, batched rows) matches finite differences', () => {
    fc.assert(
      fc.property(
        fc.array(dimension, { minLength: 1, maxLength: 2 }),
        dimension,
        dimension,
        seedArbitrary,
        (lead, inputs, outputs, seed) => {
          const random = new Random(seed);
          const xShape = [...lead, inputs];
          const values = [
            uniformArray(random, size(xShape)),
            uniformArray(random, outputs * inputs),
            uniformArray(random, outputs),
          ];
          gradCheck(([x, w, b]) => ml.linear(x, w, b), values, [xShape, [outputs, inputs], [outputs]]);
          gradCheck(([x, w]) => ml.linear(x, w), values.slice(0, 2), [xShape, [outputs, inputs]]);
        },
      ),
      RUNS,
    );
  });
});

describe('convolution and pooling gradients', () => {
  it('conv2d with stride and padding matches finite differences', () => {
    fc.assert(
      fc.property(
        fc.record({
          batch: fc.integer({ min: 1, max: 2 }),
          channels: fc.integer({ min: 1, max: 2 }),
          outChannels: fc.integer({ min: 1, max: 3 }),
          size: fc.integer({ min: 3, max: 5 }),
          kernel: fc.integer({ min: 1, max: 3 }),
          stride: fc.integer({ min: 1, max: 2 }),
          padding: fc.integer({ min: 0, max: 1 }),
        }),
        seedArbitrary,
        (c, seed) => {
          const random = new Random(seed);
          const xShape = [c.batch, c.channels, c.size, c.size];
          const wShape = [c.outChannels, c.channels, c.kernel, c.kernel];
          const values = [
            uniformArray(random, size(xShape)),
            uniformArray(random, size(wShape)),
            uniformArray(random, c.outChannels),
          ];
          gradCheck(([x, w, b]) => ml.conv2d(x, w, b, { stride: c.stride, padding: c.padding }), values, [
            xShape,
            wShape,
            [c.outChannels],
          ]);
        },
      ),
      { numRuns: 8, seed: 7 },
    );
  });

  it('max and average pooling match finite differences', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 2, max: 5 }),
        fc.integer({ min: 1, max: 2 }),
        seedArbitrary,
        (channels, side, kernel, seed) => {
          const random = new Random(seed);
          const shape = [2, channels, side, side];
          const values = distinctArray(random, size(shape));
          gradCheck(([x]) => ml.maxPool2d(x, kernel), [values], [shape]);
          gradCheck(([x]) => ml.avgPool2d(x, kernel, { stride: 1 }), [values], [shape]);
        },
      ),
      RUNS,
    );
  });
});

describe('neural network op gradients', () => {
  it('layerNorm matches finite differences', () => {
    fc.assert(
      fc.property(
        fc.array(dimension, { minLength: 1, maxLength: 2 }),
        fc.integer({ min: 2, max: 6 }),
        seedArbitrary,
        (lead, channels, seed) => {
          const random = new Random(seed);
          const shape = [...lead, channels];
          const values = [
            uniformArray(random, size(shape), -2, 2),
            uniformArray(random, channels),
            uniformArray(random, channels),
          ];
          gradCheck(([x, g, b]) => ml.layerNorm(x, g, b), values, [shape, [channels], [channels]], {
            absoluteTolerance: 1e-2,
          });
        },
      ),
      RUNS,
    );
  });

  it('embedding matches finite differences', () => {
    const random = new Random(5);
    const indices = new Int32Array([2, 0, 2, 1]);
    gradCheck(([w]) => ml.embedding(w, indices, [2, 2]), [uniformArray(random, 12)], [[3, 4]]);
  });

  it('dropout with a fixed seed matches finite differences', () => {
    const values = uniformArray(new Random(6), 20);
    // The same seed each evaluation, so the mask is the same for every perturbation.
    gradCheck(([x]) => ml.dropout(x, 0.3, new Random(1)), [values], [[4, 5]]);
  });

  it('losses match finite differences', () => {
    const random = new Random(8);
    const labels = new Int32Array([1, 0, 3]);
    gradCheck(([x]) => ml.crossEntropy(x, labels), [uniformArray(random, 12, -2, 2)], [[3, 4]]);
    gradCheck(([x]) => ml.nllLoss(ml.logSoftmax(x), labels), [uniformArray(random, 12, -2, 2)], [[3, 4]]);
    gradCheck(
      ([p, t]) => ml.mseLoss(p, t),
      [uniformArray(random, 6), uniformArray(random, 6)],
      [
        [2, 3],
        [2, 3],
      ],
    );
  });

  it('causal scaled dot-product attention matches finite differences', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        seedArbitrary,
        fc.boolean(),
        (length, depth, seed, causal) => {
          const random = new Random(seed);
          const shape = [2, length, depth];
          const values = [0, 1, 2].map(() => uniformArray(random, size(shape)));
          gradCheck(([q, k, v]) => ml.scaledDotProductAttention(q, k, v, { causal }), values, [
            shape,
            shape,
            shape,
          ]);
        },
      ),
      RUNS,
    );
  });
});
