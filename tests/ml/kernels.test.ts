/**
 * The CPU kernels against straightforward reference loops on the same inputs: the WebAssembly
 * 2x2 max pooling (values and winner indices, ties and NaN included) and the SIMD ReLU.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import * as ml from '../../src/ml/index.js';
import {
  convWorkspace,
  releaseConvBuffer,
  setConvWorkspaceEnabled,
  takeConvBuffer,
} from '../../src/ml/internal/convKernel.js';
import { expKernel, geluTanhKernel } from '../../src/ml/internal/expKernels.js';
import { maxPool2x2Kernel } from '../../src/ml/internal/maxPoolKernel.js';
import { reluBackwardKernel, reluKernel } from '../../src/ml/internal/reluKernel.js';

const RUNS = { numRuns: 40, seed: 20261201 };

/** First maximum (strict >, so a NaN wins only first) of each 2x2 window, and its index. */
function referenceMaxPool(x: Float32Array, planes: number, height: number, width: number) {
  const outHeight = Math.floor(height / 2);
  const outWidth = Math.floor(width / 2);
  const out = new Float32Array(planes * outHeight * outWidth);
  const winners = new Int32Array(out.length);
  let at = 0;
  for (let p = 0; p < planes; p++) {
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++, at++) {
        let best = (p * height + 2 * oh) * width + 2 * ow;
        for (const [dh, dw] of [
          [0, 1],
          [1, 0],
          [1, 1],
        ]) {
          const i = (p * height + 2 * oh + dh) * width + 2 * ow + dw;
          if (x[i] > x[best]) best = i;
        }
        out[at] = x[best];
        winners[at] = best;
      }
    }
  }
  return { out, winners };
}

describe('maxPool2x2Kernel (WebAssembly)', () => {
  it('matches the reference loop on random planes, with ties and NaN', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 2, max: 13 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (planes, halfHeight, width, seed) => {
          const height = 2 * halfHeight;
          const random = new Random(seed);
          // Few distinct values, so ties are common; now and then a NaN.
          const x = Float32Array.from({ length: planes * height * width }, () => {
            const u = random.next();
            return u < 0.05 ? Number.NaN : Math.floor(u * 6) - 3;
          });
          const expected = referenceMaxPool(x, planes, height, width);
          const out = new Float32Array(expected.out.length);
          const winners = new Int32Array(expected.out.length);
          expect(maxPool2x2Kernel(x, planes, height, width, out, winners)).toBe(true);
          expect(Array.from(winners)).toEqual(Array.from(expected.winners));
          expect(Array.from(out)).toEqual(Array.from(expected.out));
        },
      ),
      RUNS,
    );
  });

  it('declines an odd height (the caller runs its JavaScript loop)', () => {
    const out = new Float32Array(1);
    expect(maxPool2x2Kernel(new Float32Array(6), 1, 3, 2, out, new Int32Array(1))).toBe(false);
  });
});

describe('reluKernel and reluBackwardKernel (WebAssembly SIMD)', () => {
  it('match the JavaScript loops, NaN, infinities, -0 and odd lengths included', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 37 }), fc.integer({ min: 0, max: 1_000_000 }), (length, seed) => {
        const random = new Random(seed);
        const special = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0];
        const x = Float32Array.from({ length }, () =>
          random.next() < 0.2 ? special[random.nextInt(special.length)] : random.next() - 0.5,
        );
        const g = Float32Array.from({ length }, () =>
          random.next() < 0.1 ? Number.NaN : random.next() - 0.5,
        );
        const y = new Float32Array(length);
        expect(reluKernel(x, y)).toBe(true);
        expect(Array.from(y)).toEqual(Array.from(x, (v) => Math.max(v, 0)));
        const start = Float32Array.from({ length }, () => random.next());
        const gx = Float32Array.from(start);
        expect(reluBackwardKernel(x, g, gx)).toBe(true);
        expect(Array.from(gx)).toEqual(Array.from(start, (v, i) => Math.fround(x[i] > 0 ? v + g[i] : v)));
      }),
      RUNS,
    );
  });
});

describe('geluTanhKernel (WebAssembly SIMD)', () => {
  it('is the float64 formula within 2.5e-7 of max(1, |value|), its derivative too; NaN stays NaN', () => {
    const K = Math.sqrt(2 / Math.PI);
    const C = 0.044715;
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.float({ min: -12, max: 12, noNaN: true }),
            fc.float({ noNaN: true, noDefaultInfinity: true }),
          ),
          {
            minLength: 1,
            maxLength: 37,
          },
        ),
        (values) => {
          const x = Float32Array.from([...values, 0, -0, 1e-30, -3e-8, Number.NaN]);
          const y = new Float32Array(x.length);
          const slope = new Float32Array(x.length);
          expect(geluTanhKernel(x, y, slope)).toBe(true);
          for (let i = 0; i < x.length; i++) {
            const v = x[i];
            if (Number.isNaN(v)) {
              expect([y[i], slope[i]]).toEqual([Number.NaN, Number.NaN]);
              continue;
            }
            const t = Math.tanh(K * (v + C * v * v * v));
            const expectedY = 0.5 * v * (1 + t);
            const expectedSlope = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * K * (1 + 3 * C * v * v);
            expect(Math.abs(y[i] - expectedY), `y at ${v}`).toBeLessThanOrEqual(
              2.5e-7 * Math.max(1, Math.abs(expectedY)),
            );
            if (Math.abs(v) < 1e4)
              // (past that, v^3 overflows f32 in the kernel and f64 in the formula differently)
              expect(Math.abs(slope[i] - expectedSlope), `slope at ${v}`).toBeLessThanOrEqual(
                2.5e-7 * Math.max(1, Math.abs(expectedSlope)),
              );
          }
        },
      ),
      RUNS,
    );
  });
});

describe('expKernel (WebAssembly SIMD)', () => {
  it('is Math.exp within 2.5e-7 relative over f32, +inf past 88.7228, 0 below -86.6, NaN stays NaN', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ noNaN: true }), { minLength: 1, maxLength: 37 }), (values) => {
        const edges = [
          0,
          -0,
          88.72,
          88.7229,
          -86.99,
          -87.01,
          Number.POSITIVE_INFINITY,
          Number.NEGATIVE_INFINITY,
        ];
        const x = Float32Array.from([...values, ...edges, Number.NaN]);
        const y = Float32Array.from(x);
        expect(expKernel(y)).toBe(true);
        for (let i = 0; i < x.length; i++) {
          const expected = Math.fround(Math.exp(x[i]));
          if (Number.isNaN(x[i])) expect(y[i]).toBeNaN();
          else if (x[i] < -86.6) expect(y[i], `exp(${x[i]})`).toBe(0);
          else if (!Number.isFinite(expected)) expect(y[i], `exp(${x[i]})`).toBe(Number.POSITIVE_INFINITY);
          else expect(Math.abs(y[i] - expected), `exp(${x[i]})`).toBeLessThanOrEqual(2.5e-7 * expected);
        }
      }),
      RUNS,
    );
  });
});

/** x (n, c, h, w) with `padding` zeros around each plane. */
function padPlanes(
  x: Float32Array,
  planes: number,
  height: number,
  width: number,
  padding: number,
): Float32Array {
  const paddedWidth = width + 2 * padding;
  const out = new Float32Array(planes * (height + 2 * padding) * paddedWidth);
  for (let p = 0; p < planes; p++)
    for (let h = 0; h < height; h++)
      for (let w = 0; w < width; w++)
        out[(p * (height + 2 * padding) + h + padding) * paddedWidth + w + padding] =
          x[(p * height + h) * width + w];
  return out;
}

describe('conv2d, "same" width fast path (stride 1, output as wide as the input)', () => {
  it('equals the general path on a zero-padded input, values and gradients', () => {
    fc.assert(
      fc.property(
        fc.record({
          batch: fc.integer({ min: 1, max: 3 }),
          channels: fc.integer({ min: 1, max: 3 }),
          outChannels: fc.integer({ min: 1, max: 3 }),
          height: fc.integer({ min: 1, max: 7 }),
          width: fc.integer({ min: 1, max: 7 }),
          half: fc.integer({ min: 0, max: 2 }),
        }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (c, seed) => {
          const random = new Random(seed);
          const kernel = 2 * c.half + 1;
          const planes = c.batch * c.channels;
          const uniform = (n: number) => Float32Array.from({ length: n }, () => random.next() - 0.5);
          const xValues = uniform(planes * c.height * c.width);
          const wValues = uniform(c.outChannels * c.channels * kernel * kernel);
          const bValues = uniform(c.outChannels);
          const outputWeights = uniform(c.batch * c.outChannels * c.height * c.width);
          const run = (input: Float32Array, shape: number[], padding: number) => {
            const x = ml.fromData(Float32Array.from(input), shape, { requiresGrad: true });
            const w = ml.fromData(Float32Array.from(wValues), [c.outChannels, c.channels, kernel, kernel], {
              requiresGrad: true,
            });
            const b = ml.fromData(Float32Array.from(bValues), [c.outChannels], { requiresGrad: true });
            const y = ml.conv2d(x, w, b, { padding });
            const weights = outputWeights.subarray(0, y.size);
            ml.backward(ml.sum(ml.mul(y, ml.fromData(weights, [...y.shape]))));
            return { y: ml.toArray(y), x, w, b };
          };
          const fast = run(xValues, [c.batch, c.channels, c.height, c.width], c.half);
          const padded = padPlanes(xValues, planes, c.height, c.width, c.half);
          const general = run(padded, [c.batch, c.channels, c.height + 2 * c.half, c.width + 2 * c.half], 0);
          expectNear(fast.y, general.y);
          expectNear(fast.w.grad as Float32Array, general.w.grad as Float32Array);
          expectNear(fast.b.grad as Float32Array, general.b.grad as Float32Array);
          const interior = new Float32Array(xValues.length);
          const paddedGrad = general.x.grad as Float32Array;
          const paddedWidth = c.width + 2 * c.half;
          for (let p = 0; p < planes; p++)
            for (let h = 0; h < c.height; h++)
              for (let w = 0; w < c.width; w++)
                interior[(p * c.height + h) * c.width + w] =
                  paddedGrad[(p * (c.height + 2 * c.half) + h + c.half) * paddedWidth + w + c.half];
          expectNear(fast.x.grad as Float32Array, interior);
        },
      ),
      RUNS,
    );
  });
});

function expectNear(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) expect(Math.abs(actual[i] - expected[i])).toBeLessThan(1e-5);
}

describe('conv2d workspace (WebAssembly SIMD add, in-place im2col)', () => {
  it('add matches a scalar loop on any length and offset, and does nothing for counts <= 0', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -3, max: 67 }),
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (count, shift, seed) => {
          const workspace = convWorkspace(256);
          expect(workspace).not.toBeNull();
          if (workspace === null) return;
          const random = new Random(seed);
          const view = workspace.view;
          for (let i = 0; i < 256; i++) view[i] = random.next() - 0.5;
          const before = Float32Array.from(view.subarray(0, 256));
          workspace.add(shift, 100 + shift, count);
          for (let i = 0; i < 256; i++) {
            const inside = i >= shift && i < shift + count;
            const want = inside ? Math.fround(before[i] + before[100 + i]) : before[i];
            expect(view[i]).toBe(want);
          }
        },
      ),
      RUNS,
    );
  });

  it('copyRows and addRows change exactly the rows of a block, whatever the width and strides', () => {
    fc.assert(
      fc.property(
        fc.record({
          images: fc.integer({ min: 0, max: 3 }),
          rows: fc.integer({ min: 0, max: 4 }),
          width: fc.integer({ min: 0, max: 11 }),
          rowGap: fc.integer({ min: 0, max: 3 }),
          imageGap: fc.integer({ min: 0, max: 5 }),
          dstAt: fc.integer({ min: 0, max: 7 }),
          srcAt: fc.integer({ min: 300, max: 307 }),
        }),
        fc.boolean(),
        fc.integer({ min: 0, max: 1_000_000 }),
        (b, add, seed) => {
          const size = 640;
          const workspace = takeConvBuffer(size);
          expect(workspace).not.toBeNull();
          if (workspace === null) return;
          const random = new Random(seed);
          const view = workspace.view;
          // some negative zeros among the values: a lane kept must keep its bits
          for (let i = 0; i < size; i++) view[i] = random.next() < 0.1 ? -0 : random.next() - 0.5;
          const before = Float32Array.from(view.subarray(0, size));
          const rowStride = b.width + b.rowGap;
          const imageStride = b.rows * rowStride + b.imageGap;
          const block = {
            dst: b.dstAt,
            dstRow: rowStride,
            dstImage: imageStride,
            src: b.srcAt,
            srcRow: b.width + 1,
            srcImage: b.rows * (b.width + 1) + 2,
            images: b.images,
            rows: b.rows,
            width: b.width,
          };
          const want = Float32Array.from(before);
          for (let n = 0; n < b.images; n++)
            for (let r = 0; r < b.rows; r++)
              for (let c = 0; c < b.width; c++) {
                const to = block.dst + n * block.dstImage + r * block.dstRow + c;
                const from = block.src + n * block.srcImage + r * block.srcRow + c;
                want[to] = add ? Math.fround(before[to] + before[from]) : before[from];
              }
          if (add) workspace.addRows(block);
          else workspace.copyRows(block);
          for (let i = 0; i < size; i++) expect(Object.is(view[i], want[i]), `element ${i}`).toBe(true);
          releaseConvBuffer(workspace);
        },
      ),
      RUNS,
    );
  });

  it('conv2d gives the same values and gradients with the workspace and with the JavaScript loops', () => {
    const random = new Random(5);
    const uniform = (n: number) => Float32Array.from({ length: n }, () => random.next() - 0.5);
    const xValues = uniform(3 * 4 * 6 * 5);
    const wValues = uniform(6 * 2 * 3 * 3);
    const bValues = uniform(6);
    const run = () => {
      const x = ml.fromData(Float32Array.from(xValues), [3, 4, 6, 5], { requiresGrad: true });
      const w = ml.fromData(Float32Array.from(wValues), [6, 2, 3, 3], { requiresGrad: true });
      const b = ml.fromData(Float32Array.from(bValues), [6], { requiresGrad: true });
      const y = ml.conv2d(x, w, b, { padding: 1, groups: 2 });
      ml.backward(ml.sum(ml.mul(y, y)));
      return [ml.toArray(y), x.grad, w.grad, b.grad].map((v) => Array.from(v as ArrayLike<number>));
    };
    const withWorkspace = run();
    setConvWorkspaceEnabled(false);
    try {
      const withLoops = run();
      for (let i = 0; i < withLoops.length; i++) expectNear(withWorkspace[i], withLoops[i]);
    } finally {
      setConvWorkspaceEnabled(true);
    }
  });
});
