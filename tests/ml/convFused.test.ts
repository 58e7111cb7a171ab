/**
 * Conv2d, MaxPool2d(2), ReLU as one fused op (ops/conv.ts `conv2dMaxPoolRelu`, which Sequential
 * runs for that run of layers): against PyTorch's conv2d + max_pool2d + relu
 * (tests/ml/fixtures/conv_pool_goldens.json, made by make_conv_pool_goldens.py with Debian's
 * python3-torch; 1e-5 absolute + 1e-4 relative), bit for bit against the three ops run one by
 * one, where it does not apply (the three ops run), and deterministic training.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import * as ml from '../../src/ml/index.js';
import { type Conv2dOptions, conv2dMaxPoolRelu } from '../../src/ml/ops/conv.js';

interface Values {
  readonly shape: number[];
  readonly data: number[];
}

interface Case {
  readonly options: Required<Conv2dOptions>;
  readonly order: 'pool_relu' | 'relu_pool';
  readonly x: Values;
  readonly weight: Values;
  readonly bias: Values | null;
  readonly w: Values;
  readonly out: Values;
  readonly gx: Values;
  readonly gweight: Values;
  readonly gbias: Values | null;
}

const golden = JSON.parse(
  readFileSync(new URL('./fixtures/conv_pool_goldens.json', import.meta.url), 'utf8'),
) as { cases: Record<string, Case> };

function expectClose(actual: ArrayLike<number>, expected: Values, label: string): void {
  expect(actual.length, `${label}: length`).toBe(expected.data.length);
  for (let i = 0; i < expected.data.length; i++) {
    const want = expected.data[i];
    const tolerance = 1e-5 + 1e-4 * Math.abs(want);
    if (!(Math.abs(actual[i] - want) <= tolerance))
      throw new Error(`${label}[${i}]: got ${actual[i]}, PyTorch ${want} (tolerance ${tolerance})`);
  }
}

/** A Sequential of Conv2d, then MaxPool2d(2) and ReLU in `order`, with the given weights. */
function block(c: Case): { model: ml.Sequential; conv: ml.Conv2d } {
  const [outChannels, groupChannels, kernel] = c.weight.shape;
  const { padding, groups } = c.options;
  const conv = new ml.Conv2d(groupChannels * groups, outChannels, kernel, {
    padding,
    groups,
    bias: c.bias !== null,
  });
  conv.weight.data.set(c.weight.data);
  if (c.bias !== null) conv.bias?.data.set(c.bias.data);
  const rest =
    c.order === 'pool_relu' ? [new ml.MaxPool2d(2), new ml.ReLU()] : [new ml.ReLU(), new ml.MaxPool2d(2)];
  return { model: new ml.Sequential(conv, ...rest), conv };
}

describe('Conv2d, MaxPool2d(2), ReLU fused, against PyTorch', () => {
  for (const [name, c] of Object.entries(golden.cases)) {
    it(name, () => {
      const { model, conv } = block(c);
      const x = ml.tensor(c.x.data, c.x.shape, { requiresGrad: true });
      const out = model.forward(x);
      expect(out.node?.op).toBe('conv2dMaxPoolRelu');
      expect(out.shape).toEqual(c.out.shape);
      expectClose(ml.toArray(out), c.out, `${name} out`);
      ml.backward(ml.sum(ml.mul(out, ml.tensor(c.w.data, c.w.shape))));
      expectClose(x.grad as Float32Array, c.gx, `${name} grad x`);
      expectClose(conv.weight.grad as Float32Array, c.gweight, `${name} grad weight`);
      if (c.gbias !== null) expectClose(conv.bias?.grad as Float32Array, c.gbias, `${name} grad bias`);
    });
  }
});

/** Values and gradients of the layers run through Sequential (fused) or one by one. */
function runBlock(
  shape: [number, number, number, number],
  outChannels: number,
  fused: boolean,
  options: {
    padding?: ml.Pair;
    stride?: number;
    kernel?: ml.Pair;
    bias?: boolean;
    reluFirst?: boolean;
    priorGrad?: boolean;
    background?: boolean;
  } = {},
): number[][] {
  ml.manualSeed(11);
  const conv = new ml.Conv2d(shape[1], outChannels, options.kernel ?? 3, {
    padding: options.padding ?? 1,
    stride: options.stride ?? 1,
    bias: options.bias ?? true,
  });
  const layers = options.reluFirst
    ? [conv, new ml.ReLU(), new ml.MaxPool2d(2)]
    : [conv, new ml.MaxPool2d(2), new ml.ReLU()];
  const random = new Random(5);
  const size = shape.reduce((a, b) => a * b, 1);
  // With `background`, mostly zeros: the windows there tie (the first maximum wins).
  const pixel = (): number => (options.background && random.next() < 0.8 ? 0 : random.next() - 0.5);
  const x = ml.fromData(Float32Array.from({ length: size }, pixel), shape, { requiresGrad: true });
  // A gradient already there is added to, not overwritten.
  if (options.priorGrad) x.grad = Float32Array.from({ length: size }, () => random.next());
  const out = fused
    ? new ml.Sequential(...layers).forward(x)
    : layers.reduce((t, layer) => layer.forward(t), x);
  const w = Float32Array.from({ length: out.size }, () => random.next() - 0.5);
  ml.backward(ml.sum(ml.mul(out, ml.fromData(w, out.shape))));
  const grads = [x.grad, conv.weight.grad, conv.bias?.grad ?? new Float32Array(0)];
  return [ml.toArray(out), ...grads].map((v) => Array.from(v as ArrayLike<number>));
}

describe('the fused op against the three ops one by one', () => {
  const shapes: Array<[string, [number, number, number, number], number]> = [
    ['the bench CNN first block', [5, 1, 28, 28], 16],
    ['the bench CNN second block', [3, 16, 14, 14], 32],
    ['a small odd batch', [1, 3, 4, 6], 2],
  ];
  for (const [name, shape, outChannels] of shapes) {
    it(`${name}: the same values and gradients, bit for bit`, () => {
      expect(runBlock(shape, outChannels, true)).toEqual(runBlock(shape, outChannels, false));
    });
  }

  it('ties on a zero background go to the same (first) maximum', () => {
    const options = { background: true };
    expect(runBlock([4, 1, 28, 28], 8, true, options)).toEqual(runBlock([4, 1, 28, 28], 8, false, options));
    expect(runBlock([2, 8, 14, 14], 6, true, options)).toEqual(runBlock([2, 8, 14, 14], 6, false, options));
  });

  it('a rectangular 3x5 kernel with padding [1, 2] (the same-size path with a padding per dimension)', () => {
    const options = { kernel: [3, 5] as const, padding: [1, 2] as const };
    expect(runBlock([2, 3, 6, 8], 4, true, options)).toEqual(runBlock([2, 3, 6, 8], 4, false, options));
  });

  it('ReLU before the pooling, no bias, and an input gradient already there', () => {
    const options = { reluFirst: true, bias: false, priorGrad: true };
    expect(runBlock([2, 3, 6, 6], 4, true, options)).toEqual(runBlock([2, 3, 6, 6], 4, false, options));
  });

  it('does not apply to an odd size or a strided convolution: the three ops run, with the same results', () => {
    const x = ml.zeros([1, 1, 7, 7]);
    const weight = ml.zeros([2, 1, 3, 3]);
    expect(conv2dMaxPoolRelu(x, weight, null, { padding: 1 })).toBeNull();
    expect(conv2dMaxPoolRelu(ml.zeros([1, 1, 8, 8]), weight, null, { padding: 1, stride: 2 })).toBeNull();
    expect(conv2dMaxPoolRelu(ml.zeros([1, 1, 8, 8]), weight, null, { padding: 0 })).toBeNull();
    expect(runBlock([2, 2, 7, 7], 3, true)).toEqual(runBlock([2, 2, 7, 7], 3, false));
    expect(runBlock([2, 2, 12, 12], 3, true, { stride: 2 })).toEqual(
      runBlock([2, 2, 12, 12], 3, false, { stride: 2 }),
    );
  });

  it('Sequential fuses only the library layers themselves, not subclasses', () => {
    class LoggingConv extends ml.Conv2d {
      calls = 0;
      override forward(input: ml.Tensor): ml.Tensor {
        this.calls++;
        return super.forward(input);
      }
    }
    const conv = new LoggingConv(1, 2, 3, { padding: 1 });
    const out = new ml.Sequential(conv, new ml.MaxPool2d(2), new ml.ReLU()).forward(ml.zeros([1, 1, 4, 4]));
    expect(conv.calls).toBe(1);
    expect(out.node?.op).toBe('relu');
    const plain = new ml.Sequential(
      new ml.Conv2d(1, 2, 3, { padding: 1 }),
      new ml.MaxPool2d(2),
      new ml.ReLU(),
    );
    const fused = plain.forward(
      ml.tensor(
        Array.from({ length: 16 }, (_, i) => i),
        [1, 1, 4, 4],
        { requiresGrad: true },
      ),
    );
    expect(fused.node?.op).toBe('conv2dMaxPoolRelu');
  });

  it('trains deterministically: two seeded runs give bit-equal parameters', () => {
    const train = (): number[] => {
      ml.manualSeed(3);
      const model = new ml.Sequential(
        new ml.Conv2d(1, 4, 3, { padding: 1 }),
        new ml.MaxPool2d(2),
        new ml.ReLU(),
        new ml.Flatten(),
        new ml.Linear(4 * 4 * 4, 3),
      );
      const optimizer = new ml.Adam(model.parameters(), { learningRate: 1e-2 });
      const random = new Random(9);
      const batches = Array.from({ length: 4 }, () => ({
        inputs: Float32Array.from({ length: 8 * 64 }, () => random.next() - 0.5),
        labels: Int32Array.from({ length: 8 }, () => Math.floor(random.next() * 3)),
        size: 8,
        featureShape: [1, 8, 8],
      }));
      ml.trainPlain({ model, optimizer, batches, epochs: 3 });
      return model.parameters().flatMap((p) => Array.from(p.data));
    };
    const first = train();
    expect(first.every(Number.isFinite)).toBe(true);
    expect(train()).toEqual(first);
  });
});
