import { describe, expect, it } from 'vitest';
import * as ml from '../../src/ml/index.js';
import { expectClose } from './helpers.js';

function parameter(values: number[], grad: number[]): ml.Parameter {
  const p = new ml.Parameter(Float32Array.from(values), [values.length]);
  p.grad = Float32Array.from(grad);
  return p;
}

describe('SGD', () => {
  it('plain step with weight decay: p -= lr (g + wd p)', () => {
    const p = parameter([1, -2], [0.5, 0.25]);
    new ml.SGD([p], { learningRate: 0.1, weightDecay: 0.01 }).step();
    expectClose(Array.from(p.data), [1 - 0.1 * (0.5 + 0.01), -2 - 0.1 * (0.25 - 0.02)], 1e-7);
  });

  it('momentum: buffer = g first, then mu buf + g', () => {
    const p = parameter([1], [1]);
    const sgd = new ml.SGD([p], { learningRate: 0.1, momentum: 0.9 });
    sgd.step(); // buf 1, p = 0.9
    sgd.step(); // buf 1.9, p = 0.71
    sgd.step(); // buf 2.71, p = 0.439
    expectClose(Array.from(p.data), [0.439], 1e-6);
  });

  it('Nesterov: p -= lr (g + mu buf)', () => {
    const p = parameter([1], [1]);
    const sgd = new ml.SGD([p], { learningRate: 0.1, momentum: 0.9, nesterov: true });
    sgd.step(); // buf 1, step 1.9, p = 0.81
    sgd.step(); // buf 1.9, step 2.71, p = 0.539
    expectClose(Array.from(p.data), [0.539], 1e-6);
    expect(() => new ml.SGD([p], { learningRate: 0.1, nesterov: true })).toThrow(/Nesterov/);
  });
});

describe('Adam and AdamW', () => {
  for (const simd of [true, false]) {
    it(`Adam matches hand-computed steps (${simd ? 'SIMD kernel' : 'JS loop'})`, () => {
      // Step 1: m = 0.1 g, v = 0.001 g^2, corrected m/sqrt(v) = sign(g): p -= lr * g / (|g| + eps).
      const p = parameter([1, 2, 3, 4, 5], [0.5, -1, 2, 0, -3]);
      const adam = new ml.Adam([p], { learningRate: 0.01, simd });
      adam.step();
      expectClose(Array.from(p.data), [0.99, 2.01, 2.99, 4, 5.01], 1e-6);
      // Step 2 with g = 1 for the first element (m1 = 0.05, v1 = 0.00025):
      p.grad!.set([1, 0, 0, 0, 0]);
      adam.step();
      const m = 0.9 * 0.05 + 0.1 * 1;
      const v = 0.999 * 0.00025 + 0.001 * 1;
      const update = ((0.01 / (1 - 0.9 ** 2)) * m) / (Math.sqrt(v) / Math.sqrt(1 - 0.999 ** 2) + 1e-8);
      expectClose([p.data[0]], [0.99 - update], 1e-6);
    });
  }

  it('AdamW decays weights decoupled from the gradient; Adam adds it to the gradient', () => {
    const p = parameter([2], [0]);
    new ml.AdamW([p], { learningRate: 0.1, weightDecay: 0.5 }).step();
    // g = 0: the Adam part is 0, p *= 1 - lr wd.
    expectClose(Array.from(p.data), [2 * (1 - 0.05)], 1e-6);
    const q = parameter([2], [0]);
    new ml.Adam([q], { learningRate: 0.1, weightDecay: 0.5 }).step();
    // g = wd p = 1: the normalised step is lr * sign.
    expectClose(Array.from(q.data), [1.9], 1e-6);
  });

  it('the SIMD kernel and the JS loop agree over many steps on odd sizes', () => {
    const make = (): ml.Parameter[] => [
      parameter(
        Array.from({ length: 7 }, (_, i) => Math.sin(i)),
        Array(7).fill(0),
      ),
      parameter([1, 2, 3], [0, 0, 0]),
    ];
    const fast = make();
    const slow = make();
    const a = new ml.AdamW(fast, { learningRate: 0.05 });
    const b = new ml.AdamW(slow, { learningRate: 0.05, simd: false });
    for (let step = 0; step < 20; step++) {
      for (const list of [fast, slow]) {
        for (const [k, p] of list.entries())
          for (let i = 0; i < p.size; i++) p.grad![i] = Math.cos(step * 3 + i + k);
      }
      a.step();
      b.step();
    }
    for (const [k, p] of fast.entries()) expectClose(Array.from(p.data), Array.from(slow[k].data), 1e-5);
  });
});

describe('schedules and clipping', () => {
  it('step, cosine and warm-up schedules', () => {
    const step = ml.stepSchedule({ learningRate: 1, stepSize: 10, gamma: 0.5 });
    expect([step(0), step(9), step(10), step(25)]).toEqual([1, 1, 0.5, 0.25]);
    const cosine = ml.cosineSchedule({ learningRate: 1, totalSteps: 100, minimum: 0.1 });
    expectClose([cosine(0), cosine(50), cosine(100), cosine(150)], [1, 0.55, 0.1, 0.1], 1e-9);
    const warm = ml.warmupSchedule({ warmupSteps: 4, after: ml.constantSchedule(0.8) });
    expectClose([warm(0), warm(3), warm(4), warm(100)], [0.2, 0.8, 0.8, 0.8], 1e-9);
    const p = parameter([0], [1]);
    const sgd = new ml.SGD([p], { learningRate: 1 });
    expect(ml.applySchedule(sgd, step)).toBe(1);
  });

  it('clipGradNorm scales to the maximum norm and returns the original norm', () => {
    const a = parameter([0, 0], [3, 0]);
    const b = parameter([0], [4]);
    expect(ml.clipGradNorm([a, b], 1)).toBeCloseTo(5, 6);
    expectClose([...a.grad!, ...b.grad!], [0.6, 0, 0.8], 1e-6);
    expect(ml.clipGradNorm([a, b], 10)).toBeCloseTo(1, 5);
    expectClose([...a.grad!, ...b.grad!], [0.6, 0, 0.8], 1e-6);
    ml.clipGradValue([a, b], 0.7);
    expectClose([...a.grad!, ...b.grad!], [0.6, 0, 0.7], 1e-6);
  });
});

describe('optimizer state dicts', () => {
  for (const [name, make] of [
    ['sgd', (ps: ml.Parameter[]) => new ml.SGD(ps, { learningRate: 0.1, momentum: 0.9 })],
    ['adam', (ps: ml.Parameter[]) => new ml.Adam(ps, { learningRate: 0.1 })],
  ] as const) {
    it(`${name}: a restored optimizer continues exactly like the original`, () => {
      const original = [parameter([1, 2, 3], [0.1, -0.2, 0.3])];
      const optimizer = make(original);
      optimizer.step();
      optimizer.step();
      const saved = optimizer.stateDict();
      const copy = [parameter(Array.from(original[0].data), [0.1, -0.2, 0.3])];
      const restored = make(copy);
      restored.loadStateDict(saved);
      expect(restored.stepCount).toBe(2);
      optimizer.step();
      restored.step();
      expect(Array.from(copy[0].data)).toEqual(Array.from(original[0].data));
      expect(() => new ml.AdamW(copy).loadStateDict(saved)).toThrow(/state is for/);
    });
  }
});

describe('Adam kernel memory', () => {
  it('moves parameters and gradients into kernel memory and re-adopts replaced ones', () => {
    const p = parameter([1, 2, 3], [0.5, 0.5, 0.5]);
    const original = p.data;
    const adam = new ml.Adam([p], { learningRate: 0.1 });
    expect(p.data).not.toBe(original);
    expect(Array.from(p.data)).toEqual([1, 2, 3]);
    adam.step();
    expectClose(Array.from(p.data), [0.9, 1.9, 2.9], 1e-6);
    // A second optimizer takes the parameter over; the first copies it back before its step.
    const other = new ml.Adam([p], { learningRate: 0.1, simd: true });
    other.step();
    adam.step();
    expectClose(Array.from(p.data), [0.7, 1.7, 2.7], 1e-5);
    // A gradient replaced by assignment is used, and a missing one skips the parameter.
    p.grad = Float32Array.from([0, 0, 0]);
    p.grad = null;
    const before = Array.from(p.data);
    adam.step();
    expect(Array.from(p.data)).toEqual(before);
  });

  it('stepAndZeroGrad leaves what step then zeroGrad leaves, bit for bit (kernel, loop, SGD)', () => {
    const make = (): ml.Parameter[] => [
      parameter(
        Array.from({ length: 9 }, (_, i) => Math.sin(i)),
        Array(9).fill(0),
      ),
      parameter([1, 2, 3], [0, 0, 0]),
      parameter([4, 5], [0, 0]),
    ];
    const kinds: Array<(ps: ml.Parameter[]) => ml.Optimizer> = [
      (ps) => new ml.Adam(ps, { learningRate: 0.05, weightDecay: 0.1 }),
      (ps) => new ml.AdamW(ps, { learningRate: 0.05, simd: false }),
      (ps) => new ml.SGD(ps, { learningRate: 0.05, momentum: 0.9 }),
    ];
    for (const kind of kinds) {
      const fused = make();
      const plain = make();
      const [a, b] = [kind(fused), kind(plain)];
      for (let step = 0; step < 6; step++) {
        for (const list of [fused, plain]) {
          for (const [k, p] of list.entries()) {
            // the last parameter has no gradient on odd steps (it is skipped then)
            if (k === 2 && step % 2 === 1) p.grad = null;
            else
              for (let i = 0; i < p.size; i++)
                (p.grad ??= new Float32Array(p.size))[i] = Math.cos(step * 3 + i + k);
          }
        }
        a.stepAndZeroGrad();
        b.step();
        b.zeroGrad();
        for (const [k, p] of fused.entries()) {
          expect(Array.from(p.data)).toEqual(Array.from(plain[k].data));
          expect(Array.from(p.grad ?? [])).toEqual(Array.from(plain[k].grad ?? []));
          expect(p.grad === null || p.grad.every((x) => x === 0)).toBe(true);
        }
      }
      expect(JSON.stringify(a.stateDict())).toBe(JSON.stringify(b.stateDict()));
    }
  });

  it('trains a model exactly like the JS loop within f32 rounding', () => {
    const run = (simd: boolean): number[] => {
      ml.manualSeed(21);
      const model = new ml.Sequential(new ml.Linear(3, 5), new ml.ReLU(), new ml.Linear(5, 2));
      const optimizer = new ml.Adam(model.parameters(), { learningRate: 0.01, simd });
      const batch = {
        inputs: Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)),
        labels: new Int32Array([0, 1, 1, 0]),
        size: 4,
        featureShape: [3],
      };
      for (let i = 0; i < 10; i++) ml.trainStep(model, optimizer, batch);
      return model.parameters().flatMap((q) => Array.from(q.data));
    };
    expectClose(run(true), run(false), 1e-5);
  });
});
