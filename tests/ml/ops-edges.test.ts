/**
 * Edge cases a PyTorch user trips on, with the values PyTorch 1.13 gives (checked by hand with
 * Debian's python3-torch), plus properties (fast-check) and the refusals on a device.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Device as GpuDevice, openDevice } from '../../src/gpu/index.js';
import * as ml from '../../src/ml/index.js';
import { gradCheck } from './helpers.js';

const nan = Number.NaN;

describe('ties and nan, as PyTorch', () => {
  it('min and argmin pick the first minimum; min over one axis gives it the gradient, over all axes ties share it', () => {
    const x = ml.tensor([1, 0, 0, 0, 2, 0], [2, 3], { requiresGrad: true });
    expect(ml.toArray(ml.argmin(x, 1))).toEqual([1, 0]);
    expect(ml.toArray(ml.argmin(x, 0))).toEqual([1, 0, 0]);
    const m = ml.min(x, 1);
    expect(ml.toArray(m)).toEqual([0, 0]);
    ml.backward(ml.sum(m));
    expect(Array.from(x.grad!)).toEqual([0, 1, 0, 1, 0, 0]);
    const y = ml.tensor([1, 0, 0, 0, 2, 0], [2, 3], { requiresGrad: true });
    ml.backward(ml.min(y));
    // over all axes the tied minima share the gradient evenly, as PyTorch's torch.min()
    expect(Array.from(y.grad!)).toEqual([0, 0.25, 0.25, 0.25, 0, 0.25]);
  });

  it('NaN wins in maximum, minimum, min and argmin; clamp keeps NaN and gives it no gradient', () => {
    expect(ml.toArray(ml.maximum(ml.tensor([nan, 1]), ml.tensor([0, nan])))).toEqual([nan, nan]);
    expect(ml.toArray(ml.minimum(ml.tensor([nan, 1, 2]), ml.tensor([0, nan, 3])))).toEqual([nan, nan, 2]);
    expect(ml.toArray(ml.maximum(ml.tensor([nan]), Number.POSITIVE_INFINITY))).toEqual([nan]);
    expect(ml.toArray(ml.min(ml.tensor([1, nan, -1])))).toEqual([nan]);
    expect(ml.toArray(ml.argmin(ml.tensor([1, nan, -1]), 0))).toEqual([1]);
    const x = ml.tensor([nan, 2, 3], [3], { requiresGrad: true });
    const y = ml.clamp(x, { min: 0, max: 2.5 });
    expect(ml.toArray(y)).toEqual([nan, 2, 2.5]);
    ml.backward(ml.sum(y));
    expect(Array.from(x.grad!)).toEqual([0, 1, 0]);
    // a value on a bound keeps its gradient (PyTorch: min <= x <= max, inclusive)
    const onBounds = ml.tensor([0, 1, 2], [3], { requiresGrad: true });
    ml.backward(ml.sum(ml.clamp(onBounds, { min: 0, max: 1 })));
    expect(Array.from(onBounds.grad!)).toEqual([1, 1, 0]);
  });

  it('maximum splits the gradient of a tie in halves', () => {
    const a = ml.tensor([1, 2], [2], { requiresGrad: true });
    const b = ml.tensor([1, 3], [2], { requiresGrad: true });
    ml.backward(ml.sum(ml.maximum(a, b)));
    expect(Array.from(a.grad!)).toEqual([0.5, 0]);
    expect(Array.from(b.grad!)).toEqual([0.5, 1]);
  });

  it('sort puts NaN last ascending and first descending; topk takes NaN as the largest', () => {
    const x = ml.tensor([1, nan, -1, 2]);
    const up = ml.sort(x);
    expect(ml.toArray(up.values)).toEqual([-1, 1, 2, nan]);
    expect(ml.toArray(up.indices)).toEqual([2, 0, 3, 1]);
    const down = ml.sort(x, { descending: true });
    expect(ml.toArray(down.values)).toEqual([nan, 2, 1, -1]);
    expect(ml.toArray(down.indices)).toEqual([1, 3, 0, 2]);
    const top = ml.topk(x, 2);
    expect(ml.toArray(top.values)).toEqual([nan, 2]);
    expect(ml.toArray(top.indices)).toEqual([1, 3]);
  });

  it('logSumExp stays finite for large inputs and gives -inf / inf as PyTorch at the extremes', () => {
    expect(ml.toArray(ml.logSumExp(ml.tensor([1000, 1000])))[0]).toBeCloseTo(1000 + Math.LN2, 3);
    expect(ml.toArray(ml.logSumExp(ml.tensor([-Infinity, -Infinity])))).toEqual([-Infinity]);
    expect(ml.toArray(ml.logSumExp(ml.tensor([Infinity, 1])))).toEqual([Infinity]);
  });

  it('the 2-norm has gradient 0 at zero, and prod is exact with zeros (no division)', () => {
    const zero = ml.zeros([3], { requiresGrad: true });
    ml.backward(ml.norm(zero));
    expect(Array.from(zero.grad!)).toEqual([0, 0, 0]);
    const one = ml.tensor([0, 2, 3], [3], { requiresGrad: true });
    ml.backward(ml.prod(one));
    expect(Array.from(one.grad!)).toEqual([6, 0, 0]);
    const two = ml.tensor([0, 2, 0], [3], { requiresGrad: true });
    ml.backward(ml.prod(two));
    expect(Array.from(two.grad!)).toEqual([0, 0, 0]);
  });

  it('variance with N - correction <= 0 gives Infinity / NaN as PyTorch (division by 0)', () => {
    expect(ml.toArray(ml.variance(ml.tensor([3])))).toEqual([nan]);
    expect(ml.toArray(ml.variance(ml.tensor([3]), undefined, { correction: 0 }))).toEqual([0]);
  });
});

describe('shapes, indices and bad input', () => {
  it('squeeze, unsqueeze, chunk and split follow PyTorch', () => {
    const x = ml.zeros([1, 3, 1]);
    expect(ml.squeeze(x).shape).toEqual([3]);
    expect(ml.squeeze(x, 0).shape).toEqual([3, 1]);
    expect(ml.squeeze(x, 1).shape).toEqual([1, 3, 1]); // a size other than 1 stays, as PyTorch
    expect(ml.unsqueeze(ml.zeros([3]), -1).shape).toEqual([3, 1]);
    expect(ml.chunk(ml.zeros([5]), 3).map((t) => t.shape[0])).toEqual([2, 2, 1]);
    expect(ml.chunk(ml.zeros([4]), 3).map((t) => t.shape[0])).toEqual([2, 2]);
    expect(ml.split(ml.zeros([5]), 2).map((t) => t.shape[0])).toEqual([2, 2, 1]);
    expect(() => ml.split(ml.zeros([5]), [2, 2])).toThrow(/adding up to 5/);
    // expand: -1 keeps the size, as PyTorch's x.expand(-1, 4); a new leading axis cannot be -1
    expect(ml.toArray(ml.expand(ml.tensor([1, 2], [2, 1]), [-1, 3]))).toEqual([1, 1, 1, 2, 2, 2]);
    expect(ml.expand(ml.zeros([2, 1]), [4, -1, 3]).shape).toEqual([4, 2, 3]);
    expect(() => ml.expand(ml.zeros([2, 1]), [-1, -1, 3])).toThrow(/-1 only over x's own dimensions/);
  });

  it('refuses bad indices, pads and axes with a reason', () => {
    const x = ml.zeros([2, 3]);
    expect(() => ml.gather(x, 1, ml.tensor([[3]]))).toThrow(/index 3 .* not an integer in \[0, 3\)/);
    expect(() => ml.gather(x, 1, ml.tensor([[0.5]]))).toThrow(/not an integer/);
    expect(() => ml.gather(x, 1, ml.tensor([0]))).toThrow(/rank of the input/);
    expect(() => ml.indexSelect(x, 0, ml.tensor([-1]))).toThrow(/not an integer in \[0, 2\)/);
    expect(() => ml.pad(x, [-1, 0])).toThrow(/cropping/);
    expect(() => ml.pad(x, [1])).toThrow(/even count/);
    expect(() => ml.topk(x, 4)).toThrow(/k = 4/);
    expect(() => ml.norm(x, undefined, { p: 3 })).toThrow(/p must be 2, 1 or Infinity/);
    expect(() => ml.clamp(x, {})).toThrow(/at least one/);
    expect(() => ml.stack([x, ml.zeros([3, 2])])).toThrow(/equal shapes/);
    expect(() => ml.dot(ml.zeros([2]), ml.zeros([3]))).toThrow(/one length/);
    expect(() => ml.maskedFill(ml.zeros([3]), ml.zeros([2, 3]), 1)).toThrow(/does not broadcast/);
  });

  it('einsum renames letters and refuses other forms with the list of supported ones', () => {
    const a = ml.tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
    expect(ml.toArray(ml.einsum('nab,nbc->nac', a, a))).toEqual(ml.toArray(ml.matmul(a, a)));
    expect(ml.toArray(ml.einsum('i,j->ij', ml.tensor([1, 2]), ml.tensor([3, 4])))).toEqual([3, 4, 6, 8]);
    expect(() => ml.einsum('ii->', ml.zeros([2, 2]))).toThrow(/'ii->' is not a supported form.*'ij,jk->ik'/);
    expect(() => ml.einsum('ij,jk->ik', ml.zeros([2, 2]))).toThrow(/takes 2 operand/);
    expect(() => ml.einsum('ij,jk->ik', ml.zeros([2]), ml.zeros([2, 2]))).toThrow(/needs rank 2/);
  });

  it('scatter writes without accumulating and routes gradients (finite differences)', () => {
    const out = ml.scatter(ml.zeros([3]), 0, ml.tensor([1, 1]), ml.tensor([5, 7]));
    expect(ml.toArray(out)).toEqual([0, 7, 0]); // the last write wins, nothing added
    expect(ml.toArray(ml.scatter(ml.ones([2, 2]), 1, ml.tensor([[1], [0]]), 9))).toEqual([1, 9, 9, 1]);
    const index = ml.tensor([[2, 0]]);
    gradCheck(
      ([x, src]) => ml.scatter(x, 1, index, src),
      [Float32Array.of(0.3, -0.2, 0.5, 1, 2, 3), Float32Array.of(0.7, -0.4)],
      [
        [2, 3],
        [1, 2],
      ],
    );
  });
});

describe('properties', () => {
  const matrix = fc
    .tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }))
    .chain(([rows, columns]) =>
      fc
        .array(fc.float({ min: -100, max: 100, noNaN: true, noDefaultInfinity: true }), {
          minLength: rows * columns,
          maxLength: rows * columns,
        })
        .map((values) => ml.tensor(values, [rows, columns])),
    );

  it('sort gives ordered values that gather(x, indices) reproduces', () => {
    fc.assert(
      fc.property(matrix, fc.boolean(), (x, descending) => {
        const { values, indices } = ml.sort(x, { axis: 1, descending });
        const v = ml.toArray(values);
        const columns = x.shape[1];
        for (let i = 0; i < v.length; i++) {
          if (i % columns === 0) continue;
          if (descending ? v[i] > v[i - 1] : v[i] < v[i - 1]) return false;
        }
        expect(ml.toArray(ml.gather(x, 1, indices))).toEqual(v);
        return true;
      }),
      { numRuns: 50, seed: 17 },
    );
  });

  it('flip twice is the identity; cumsum last equals sum; min <= every element', () => {
    fc.assert(
      fc.property(matrix, (x) => {
        expect(ml.toArray(ml.flip(ml.flip(x, [0, 1]), [0, 1]))).toEqual(ml.toArray(x));
        const running = ml.toArray(ml.cumsum(x, 1));
        const totals = ml.toArray(ml.sum(x, 1));
        const columns = x.shape[1];
        totals.forEach((total, r) => {
          expect(running[(r + 1) * columns - 1]).toBeCloseTo(total, 3);
        });
        const smallest = ml.toArray(ml.min(x))[0];
        return ml.toArray(x).every((v) => v >= smallest);
      }),
      { numRuns: 50, seed: 17 },
    );
  });
});

describe('on a device', () => {
  let device: GpuDevice;

  beforeAll(async () => {
    device = await openDevice('cpu');
  });

  afterAll(() => device?.destroy());

  it('the new ops refuse clearly (no device kernels yet) instead of reading device memory', async () => {
    const x = await ml.to(ml.tensor([1, 2, 3, 4], [2, 2]), device);
    const refusals: Array<() => unknown> = [
      () => ml.abs(x),
      () => ml.clamp(x, { min: 0 }),
      () => ml.maximum(x, 0),
      () => ml.where(x, x, 0),
      () => ml.eq(x, 1),
      () => ml.min(x),
      () => ml.logSumExp(x),
      () => ml.cumsum(x, 0),
      () => ml.flip(x, 0),
      () => ml.sort(x),
      () => ml.gather(x, 0, ml.tensor([[0, 1]])),
    ];
    for (const refusal of refusals) {
      expect(refusal).toThrow(expect.objectContaining({ reason: 'unavailable_on_device' }));
    }
  });
});
