/**
 * conv2d with dilation and groups against PyTorch's F.conv2d (tests/ml/fixtures/conv_goldens.json,
 * made by make_conv_goldens.py with Debian's python3-torch): outputs and the gradients of
 * sum(out * w) for a seeded w, with respect to x, weight and bias. Tolerance: 1e-5 absolute +
 * 1e-4 relative (float32 on both sides). Also the Conv2d layer's options and the errors.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as ml from '../../src/ml/index.js';
import { CONV2D_GEOMETRY_FIELDS, type Conv2dOptions } from '../../src/ml/ops/conv.js';
import { convGeometry } from '../../src/ml/ops/convGeometry.js';

interface Values {
  readonly shape: number[];
  readonly data: number[];
}

interface Case {
  readonly options: Required<Conv2dOptions>;
  readonly x: Values;
  readonly weight: Values;
  readonly bias: Values | null;
  readonly w: Values;
  readonly out: Values;
  readonly gx: Values;
  readonly gweight: Values;
  readonly gbias: Values | null;
}

const golden = JSON.parse(readFileSync(new URL('./fixtures/conv_goldens.json', import.meta.url), 'utf8')) as {
  cases: Record<string, Case>;
};

function expectClose(actual: ArrayLike<number>, expected: Values, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.data.length);
  for (let i = 0; i < expected.data.length; i++) {
    const want = expected.data[i];
    const tolerance = 1e-5 + 1e-4 * Math.abs(want);
    if (!(Math.abs(actual[i] - want) <= tolerance))
      throw new Error(`${label}[${i}]: got ${actual[i]}, PyTorch ${want} (tolerance ${tolerance})`);
  }
}

const leaf = (values: Values) => ml.tensor(values.data, values.shape, { requiresGrad: true });

describe('conv2d against PyTorch (dilation, groups, stride, padding)', () => {
  for (const [name, c] of Object.entries(golden.cases)) {
    it(name, () => {
      const x = leaf(c.x);
      const weight = leaf(c.weight);
      const bias = c.bias === null ? null : leaf(c.bias);
      const out = ml.conv2d(x, weight, bias, c.options);
      expect(out.shape).toEqual(c.out.shape);
      expectClose(ml.toArray(out), c.out, `${name} out`);
      ml.backward(ml.sum(ml.mul(out, ml.tensor(c.w.data, c.w.shape))));
      expectClose(x.grad as Float32Array, c.gx, `${name} grad x`);
      expectClose(weight.grad as Float32Array, c.gweight, `${name} grad weight`);
      if (bias !== null && c.gbias !== null)
        expectClose(bias.grad as Float32Array, c.gbias, `${name} grad bias`);
    });
  }

  it('the Conv2d layer passes dilation and groups, with a (O, C / groups, k, k) weight', () => {
    const c = golden.cases.groups2_same;
    const layer = new ml.Conv2d(4, 6, 3, { padding: 1, groups: 2 });
    expect(layer.weight.shape).toEqual([6, 2, 3, 3]);
    layer.weight.data.set(c.weight.data);
    layer.bias?.data.set(c.bias?.data ?? []);
    expectClose(ml.toArray(layer.forward(ml.tensor(c.x.data, c.x.shape))), c.out, 'layer out');
    const dilated = new ml.Conv2d(3, 4, 3, { padding: 2, dilation: 2 });
    dilated.weight.data.set(golden.cases.dilation2_padding2.weight.data);
    dilated.bias?.data.set(golden.cases.dilation2_padding2.bias?.data ?? []);
    const d = golden.cases.dilation2_padding2;
    expectClose(ml.toArray(dilated.forward(ml.tensor(d.x.data, d.x.shape))), d.out, 'dilated layer out');
    // [height, width] pairs, as PyTorch's Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    const r = golden.cases.rect_stride2x1_padding1x2_dilation1x2;
    const rect = new ml.Conv2d(3, 4, [3, 2], { stride: [2, 1], padding: [1, 2], dilation: [1, 2] });
    expect(rect.weight.shape).toEqual([4, 3, 3, 2]);
    rect.weight.data.set(r.weight.data);
    rect.bias?.data.set(r.bias?.data ?? []);
    expectClose(ml.toArray(rect.forward(ml.tensor(r.x.data, r.x.shape))), r.out, 'rectangular layer out');
    expect(() => ml.conv2d(ml.zeros([1, 1, 4, 4]), ml.zeros([1, 1, 2, 2]), null, { stride: [1, 0] })).toThrow(
      /stride must be integers >= 1 \(\[height, width\]\), got \[1, 0\]/,
    );
  });

  it('rejects groups that do not divide the channels, a weight of the wrong depth, and bad dilation', () => {
    const x = ml.zeros([1, 4, 5, 5]);
    expect(() => ml.conv2d(x, ml.zeros([6, 2, 3, 3]), null, { groups: 3 })).toThrow(
      /groups \(3\) must divide the input channels \(4\) and the output channels \(6\)/,
    );
    expect(() => ml.conv2d(x, ml.zeros([6, 4, 3, 3]), null, { groups: 2 })).toThrow(
      /input has 4 channels \(2 groups of 2\), weight expects 4 per group/,
    );
    expect(() => ml.conv2d(x, ml.zeros([2, 4, 3, 3]), null, { dilation: 0 })).toThrow(
      /dilation must be an integer >= 1, got 0/,
    );
    expect(() => ml.conv2d(x, ml.zeros([2, 4, 3, 3]), null, { dilation: 3 })).toThrow(
      /kernel 3x3 \(dilation 3: spans 7x7\) does not fit input 5x5 with padding 0/,
    );
    expect(() => new ml.Conv2d(4, 6, 3, { groups: 4 })).toThrow(/groups/);
  });
});

describe('one conv-geometry field list', () => {
  it('convGeometry returns exactly the listed fields, for a convolution and for a pool', () => {
    const x = ml.zeros([2, 4, 9, 8]);
    const choice = {
      outChannels: 6,
      kernelHeight: 3,
      kernelWidth: 2,
      stride: 2,
      padding: 1,
      dilation: 2,
      groups: 2,
    };
    const g = convGeometry(x, choice, 'test');
    expect(Object.keys(g)).toEqual([...CONV2D_GEOMETRY_FIELDS]);
    // PyTorch: floor((9 + 2 - 2*2 - 1) / 2) + 1 = 4, floor((8 + 2 - 2*1 - 1) / 2) + 1 = 4
    expect([g.outHeight, g.outWidth]).toEqual([4, 4]);
    expect(ml.maxPool2d(ml.zeros([1, 2, 5, 7]), 2).shape).toEqual([1, 2, 2, 3]);
    expect(ml.avgPool2d(ml.zeros([1, 2, 5, 7]), 3, { stride: 2 }).shape).toEqual([1, 2, 2, 3]);
  });
});
