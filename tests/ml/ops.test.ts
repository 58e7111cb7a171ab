/** Forward values against straightforward reference loops (the trusted reference). */
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import * as ml from '../../src/ml/index.js';
import { expectClose, uniformArray } from './helpers.js';

describe('broadcasting', () => {
  it('follows NumPy rules against a hand reference', () => {
    const a = ml.tensor([1, 2, 3], [3, 1]);
    const b = ml.tensor([10, 20, 30, 40], [1, 4]);
    const sum = ml.add(a, b);
    expect(sum.shape).toEqual([3, 4]);
    expect(ml.toArray(sum)).toEqual([11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43]);
    const bias = ml.tensor([1, 2], [2]);
    expect(ml.toArray(ml.mul(ml.tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]), bias))).toEqual([
      1, 4, 3, 8, 5, 12, 7, 16,
    ]);
    expect(ml.toArray(ml.sub(5, ml.tensor([1, 2])))).toEqual([4, 3]);
    expect(ml.toArray(ml.div(ml.tensor([1, 2]), 2))).toEqual([0.5, 1]);
    expect(ml.add(ml.zeros([2, 1, 3]), ml.zeros([4, 1])).shape).toEqual([2, 4, 3]);
    expect(() => ml.add(ml.zeros([2, 3]), ml.zeros([3, 2]))).toThrow(/do not broadcast/);
  });

  it('reduces the gradient of a broadcast operand over the stretched dimensions', () => {
    const a = ml.tensor([1, 2, 3], [3, 1], { requiresGrad: true });
    const b = ml.tensor([1, 1, 1, 1], [1, 4], { requiresGrad: true });
    ml.backward(ml.sum(ml.mul(a, b)));
    expect(Array.from(a.grad!)).toEqual([4, 4, 4]);
    expect(Array.from(b.grad!)).toEqual([6, 6, 6, 6]);
  });
});

describe('element-wise and reductions', () => {
  it('computes unary functions', () => {
    const x = ml.tensor([-1, 0, 0.5, 2]);
    expectClose(ml.toArray(ml.relu(x)), [0, 0, 0.5, 2]);
    expectClose(
      ml.toArray(ml.sigmoid(x)),
      [-1, 0, 0.5, 2].map((v) => 1 / (1 + Math.exp(-v))),
    );
    // Exact GELU values (erf form) from the definition.
    expectClose(ml.toArray(ml.gelu(x)), [-0.15865525, 0, 0.34573123, 1.95449974], 1e-6);
    expectClose(ml.toArray(ml.pow(x, 2)), [1, 0, 0.25, 4]);
  });

  it('sums, averages, maximises and argmaxes over axes', () => {
    const x = ml.tensor([1, 5, 3, 4, 2, 6], [2, 3]);
    expect(ml.toArray(ml.sum(x))).toEqual([21]);
    expect(ml.toArray(ml.sum(x, 0))).toEqual([5, 7, 9]);
    expect(ml.sum(x, 1, { keepDims: true }).shape).toEqual([2, 1]);
    expect(ml.toArray(ml.mean(x, -1))).toEqual([3, 4]);
    expect(ml.toArray(ml.max(x, 1))).toEqual([5, 6]);
    expect(ml.toArray(ml.argmax(x, 1))).toEqual([1, 2]);
    expect(ml.toArray(ml.argmax(x, 0))).toEqual([1, 0, 1]);
  });

  it('softmax rows sum to one and logSoftmax is its logarithm, stable for large inputs', () => {
    const x = ml.tensor([1000, 1001, 1002, -5, 0, 5], [2, 3]);
    const p = ml.toArray(ml.softmax(x));
    expectClose([p[0] + p[1] + p[2], p[3] + p[4] + p[5]], [1, 1]);
    expectClose(ml.toArray(ml.logSoftmax(x)), p.map(Math.log), 1e-5);
  });
});

function referenceMatmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let total = 0;
      for (let p = 0; p < k; p++) total += a[i * k + p] * b[p * n + j];
      out.push(total);
    }
  return out;
}

describe('matrix products', () => {
  it('matmul broadcasts batches and accepts transposed views', () => {
    const random = new Random(1);
    const a = uniformArray(random, 2 * 3 * 4);
    const b = uniformArray(random, 4 * 5);
    const out = ml.matmul(ml.fromData(a, [2, 3, 4]), ml.fromData(b, [4, 5]));
    expect(out.shape).toEqual([2, 3, 5]);
    const expected = [
      ...referenceMatmul(a.subarray(0, 12), b, 3, 4, 5),
      ...referenceMatmul(a.subarray(12), b, 3, 4, 5),
    ];
    expectClose(ml.toArray(out), expected, 1e-5);
    const bt = ml.transpose(ml.contiguous(ml.transpose(ml.fromData(b, [4, 5]))));
    expectClose(ml.toArray(ml.matmul(ml.fromData(a, [2, 3, 4]), bt)), expected, 1e-5);
  });

  it('linear equals x W^T + b', () => {
    const random = new Random(2);
    const x = uniformArray(random, 6);
    const w = uniformArray(random, 8);
    const b = uniformArray(random, 4);
    const out = ml.toArray(ml.linear(ml.fromData(x, [3, 2]), ml.fromData(w, [4, 2]), ml.fromData(b, [4])));
    const expected: number[] = [];
    for (let r = 0; r < 3; r++)
      for (let o = 0; o < 4; o++) expected.push(x[r * 2] * w[o * 2] + x[r * 2 + 1] * w[o * 2 + 1] + b[o]);
    expectClose(out, expected, 1e-5);
  });
});

describe('convolution, pooling and the rest', () => {
  it('conv2d equals a direct loop with stride and padding', () => {
    const random = new Random(3);
    const [n, c, h, w, o, k, stride, padding] = [2, 3, 5, 6, 4, 3, 2, 1];
    const x = uniformArray(random, n * c * h * w);
    const weight = uniformArray(random, o * c * k * k);
    const bias = uniformArray(random, o);
    const out = ml.conv2d(
      ml.fromData(x, [n, c, h, w]),
      ml.fromData(weight, [o, c, k, k]),
      ml.fromData(bias, [o]),
      { stride, padding },
    );
    const oh = Math.floor((h + 2 * padding - k) / stride) + 1;
    const ow = Math.floor((w + 2 * padding - k) / stride) + 1;
    expect(out.shape).toEqual([n, o, oh, ow]);
    const expected: number[] = [];
    for (let b = 0; b < n; b++)
      for (let f = 0; f < o; f++)
        for (let i = 0; i < oh; i++)
          for (let j = 0; j < ow; j++) {
            let total = bias[f];
            for (let ch = 0; ch < c; ch++)
              for (let ki = 0; ki < k; ki++)
                for (let kj = 0; kj < k; kj++) {
                  const y = i * stride - padding + ki;
                  const z = j * stride - padding + kj;
                  if (y >= 0 && y < h && z >= 0 && z < w)
                    total += x[((b * c + ch) * h + y) * w + z] * weight[((f * c + ch) * k + ki) * k + kj];
                }
            expected.push(total);
          }
    expectClose(ml.toArray(out), expected, 1e-5);
  });

  it('pools windows', () => {
    const x = ml.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], [1, 1, 4, 4]);
    expect(ml.toArray(ml.maxPool2d(x, 2))).toEqual([6, 8, 14, 16]);
    expect(ml.toArray(ml.avgPool2d(x, 2))).toEqual([3.5, 5.5, 11.5, 13.5]);
    expect(ml.maxPool2d(x, 3, { stride: 1 }).shape).toEqual([1, 1, 2, 2]);
  });

  it('layerNorm normalises the last dimension', () => {
    const x = ml.tensor([1, 2, 3, 4, 10, 20, 30, 40], [2, 4]);
    const out = ml.toArray(ml.layerNorm(x, ml.ones([4]), ml.zeros([4])));
    const standard = Math.sqrt(1.25 + 1e-5);
    expectClose(
      out.slice(0, 4),
      [-1.5, -0.5, 0.5, 1.5].map((v) => v / standard),
      1e-5,
    );
    expectClose(
      out.slice(4),
      [-1.5, -0.5, 0.5, 1.5].map((v) => (10 * v) / Math.sqrt(125 + 1e-5)),
      1e-5,
    );
  });

  it('embedding gathers rows and rejects out-of-range ids', () => {
    const weight = ml.tensor([0, 1, 10, 11, 20, 21], [3, 2]);
    expect(ml.toArray(ml.embedding(weight, new Int32Array([2, 0])))).toEqual([20, 21, 0, 1]);
    expect(() => ml.embedding(weight, new Int32Array([3]))).toThrow(/not in \[0, 3\)/);
  });

  it('dropout is seeded, scales survivors and is the identity in eval mode', () => {
    const x = ml.ones([1000]);
    const first = ml.toArray(ml.dropout(x, 0.25, new Random(4)));
    const second = ml.toArray(ml.dropout(x, 0.25, new Random(4)));
    expect(first).toEqual(second);
    const kept = first.filter((v) => v !== 0);
    expect(kept.every((v) => Math.abs(v - 4 / 3) < 1e-6)).toBe(true);
    expect(kept.length).toBeGreaterThan(700);
    expect(kept.length).toBeLessThan(800);
    expect(ml.dropout(x, 0.25, new Random(4), false)).toBe(x);
  });

  it('causal attention ignores later positions', () => {
    const random = new Random(5);
    const shape = [1, 3, 2];
    const q = ml.fromData(uniformArray(random, 6), shape);
    const k = ml.fromData(uniformArray(random, 6), shape);
    const v = ml.fromData(uniformArray(random, 6), shape);
    const out = ml.toArray(ml.scaledDotProductAttention(q, k, v, { causal: true }));
    // Position 0 sees only itself: its output is v[0].
    expectClose(out.slice(0, 2), ml.toArray(v).slice(0, 2), 1e-6);
    // Changing the last key and value does not change positions 0 and 1.
    const k2 = ml.fromData(Float32Array.from([...k.data.subarray(0, 4), 9, 9]), shape);
    const v2 = ml.fromData(Float32Array.from([...v.data.subarray(0, 4), 9, 9]), shape);
    expectClose(
      ml.toArray(ml.scaledDotProductAttention(q, k2, v2, { causal: true })).slice(0, 4),
      out.slice(0, 4),
      1e-6,
    );
  });

  it('losses equal their definitions', () => {
    const logits = ml.tensor([1, 2, 3, 1, 1, 1], [2, 3]);
    const labels = new Int32Array([2, 0]);
    const expected = (-Math.log(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3))) + Math.log(3)) / 2;
    expectClose(ml.toArray(ml.crossEntropy(logits, labels)), [expected], 1e-6);
    expectClose(ml.toArray(ml.nllLoss(ml.logSoftmax(logits), labels)), [expected], 1e-6);
    expectClose(ml.toArray(ml.mseLoss(ml.tensor([1, 2]), ml.tensor([0, 4]))), [2.5]);
    expect(ml.accuracy(logits, new Int32Array([2, 1]))).toBe(0.5);
  });
});
