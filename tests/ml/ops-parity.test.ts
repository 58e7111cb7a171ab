/**
 * Tensor ops against PyTorch (issue 17): values and gradients from tests/ml/fixtures/ops_goldens.json,
 * made by tests/ml/fixtures/make_ops_goldens.py with Debian's python3-torch. Each case's loss is
 * sum_k sum(out_k * w_k) with PyTorch's seeded w_k. Tolerances: rtol 1e-5, atol 1e-6 (f32,
 * element-wise and index ops); reductions that sum or multiply several f32 values in an order
 * PyTorch does not share get rtol 1e-5, atol 1e-5 (TOLERANCES below).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as ml from '../../src/ml/index.js';

interface GoldenTensor {
  readonly shape: number[];
  readonly values: number[];
  readonly weights?: number[];
  readonly requiresGrad?: boolean;
}

interface GoldenCase {
  readonly name: string;
  readonly args: Record<string, unknown>;
  readonly inputs: GoldenTensor[];
  readonly outputs: GoldenTensor[];
  readonly grads: (number[] | null)[];
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/ops_goldens.json', import.meta.url), 'utf8')) as {
  torch: string;
  cases: GoldenCase[];
};

type Args = Record<string, any>;
type Build = (x: ml.Tensor[], args: Args) => ml.Tensor[];

const pair = (r: ml.ValuesAndIndices): ml.Tensor[] => [r.values, r.indices];

const OPS: Record<string, Build> = {
  abs: ([x]) => [ml.abs(x)],
  clamp: ([x], a) => [ml.clamp(x, { min: a.min, max: a.max })],
  clamp_min: ([x], a) => [ml.clamp(x, { min: a.min })],
  maximum: ([a, b]) => [ml.maximum(a, b)],
  minimum: ([a, b]) => [ml.minimum(a, b)],
  maximum_ties: ([a, b]) => [ml.maximum(a, b)],
  where: ([c, a, b]) => [ml.where(c, a, b)],
  maskedFill: ([x, m], a) => [ml.maskedFill(x, m, a.value)],
  sin: ([x]) => [ml.sin(x)],
  cos: ([x]) => [ml.cos(x)],
  rsqrt: ([x]) => [ml.rsqrt(x)],
  comparisons: ([a, b]) => [ml.eq(a, b), ml.ne(a, b), ml.lt(a, b), ml.le(a, b), ml.gt(a, b), ml.ge(a, b)],
  min_axis: ([x], a) => [ml.min(x, a.axis)],
  min_all: ([x]) => [ml.min(x)],
  argmin: ([x], a) => [ml.argmin(x, a.axis)],
  logSumExp: ([x], a) => [ml.logSumExp(x, a.axis)],
  logSumExp_all: ([x]) => [ml.logSumExp(x)],
  variance: ([x], a) => [ml.variance(x, a.axis, { correction: a.correction })],
  variance_population: ([x], a) => [ml.variance(x, undefined, { correction: a.correction })],
  std: ([x], a) => [ml.std(x, a.axis, { correction: a.correction, keepDims: a.keepDims })],
  norm2: ([x], a) => [ml.norm(x, a.axis, { p: a.p })],
  norm1: ([x], a) => [ml.norm(x, undefined, { p: a.p })],
  normInf: ([x], a) => [ml.norm(x, a.axis, { p: Number.POSITIVE_INFINITY })],
  cumsum: ([x], a) => [ml.cumsum(x, a.axis)],
  cumsum0: ([x], a) => [ml.cumsum(x, a.axis)],
  prod_axis: ([x], a) => [ml.prod(x, a.axis)],
  prod_all: ([x]) => [ml.prod(x)],
  stack: (xs, a) => [ml.stack(xs, a.axis)],
  repeat: ([x], a) => [ml.repeat(x, a.counts)],
  split: ([x], a) => ml.split(x, a.sizes, a.axis),
  chunk: ([x], a) => ml.chunk(x, a.chunks, a.axis),
  flip: ([x], a) => [ml.flip(x, a.axes)],
  pad: ([x], a) => [ml.pad(x, a.pads, a.value)],
  gather: ([x, i], a) => [ml.gather(x, a.axis, i)],
  scatter: ([x, i, s], a) => [ml.scatter(x, a.axis, i, s)],
  indexSelect: ([x, i], a) => [ml.indexSelect(x, a.axis, i)],
  topk: ([x], a) => pair(ml.topk(x, a.k)),
  topk_smallest: ([x], a) => pair(ml.topk(x, a.k, { axis: a.axis, largest: a.largest })),
  sort: ([x], a) => pair(ml.sort(x, { axis: a.axis, descending: a.descending })),
  vector_matrix: ([a, b]) => [ml.matmul(a, b)],
  matrix_vector: ([a, b]) => [ml.matmul(a, b)],
  batch_vector: ([a, b]) => [ml.matmul(a, b)],
  dot: ([a, b]) => [ml.dot(a, b)],
  einsum_ij_jk: (xs, a) => [ml.einsum(a.spec, ...xs)],
  einsum_bij_bjk: (xs, a) => [ml.einsum(a.spec, ...xs)],
  einsum_i_i: (xs, a) => [ml.einsum(a.spec, ...xs)],
  einsum_ij_ji: (xs, a) => [ml.einsum(a.spec, ...xs)],
  einsum_bhqd_bhkd: (xs, a) => [ml.einsum(a.spec, ...xs)],
};

const LOOSER = { relative: 1e-5, absolute: 1e-5 };
const TOLERANCES: Record<string, { relative: number; absolute: number }> = {
  logSumExp: LOOSER,
  logSumExp_all: LOOSER,
  variance: LOOSER,
  variance_population: LOOSER,
  std: LOOSER,
  norm2: LOOSER,
  prod_all: LOOSER,
};

function expectWithin(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  name: string,
  what: string,
): void {
  const { relative, absolute } = TOLERANCES[name] ?? { relative: 1e-5, absolute: 1e-6 };
  expect(actual.length, `${name} ${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const ok = Math.abs(actual[i] - expected[i]) <= absolute + relative * Math.abs(expected[i]);
    if (!ok) expect.fail(`${name} ${what}[${i}]: zbmd ${actual[i]}, PyTorch ${expected[i]}`);
  }
}

describe(`tensor ops against PyTorch ${fixture.torch} (golden fixture)`, () => {
  it('covers every case of the fixture', () => {
    expect(fixture.cases.map((c) => c.name).sort()).toEqual(Object.keys(OPS).sort());
  });

  for (const golden of fixture.cases) {
    it(`${golden.name}: values and gradients`, () => {
      const inputs = golden.inputs.map((input) =>
        ml.tensor(input.values, input.shape, { requiresGrad: input.requiresGrad === true }),
      );
      const outputs = OPS[golden.name](inputs, golden.args);
      expect(outputs.length).toBe(golden.outputs.length);
      let loss: ml.Tensor | null = null;
      golden.outputs.forEach((expected, k) => {
        expect(outputs[k].shape, `${golden.name} output ${k} shape`).toEqual(expected.shape);
        expectWithin(ml.toArray(outputs[k]), expected.values, golden.name, `output ${k}`);
        if (expected.weights === undefined) return;
        const term = ml.sum(ml.mul(outputs[k], ml.tensor(expected.weights, expected.shape)));
        loss = loss === null ? term : ml.add(loss, term);
      });
      if (loss !== null) ml.backward(loss);
      golden.grads.forEach((expected, i) => {
        if (expected === null) return;
        const actual = inputs[i].grad ?? new Float32Array(inputs[i].size);
        expectWithin(actual, expected, golden.name, `gradient of input ${i}`);
      });
    });
  }
});
