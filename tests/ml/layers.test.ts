/**
 * Activations, norms and losses against PyTorch's values (tests/ml/fixtures/layers_goldens.json,
 * made by make_layers_goldens.py with Debian's python3-torch): outputs and the gradients of
 * sum(out * w) for a seeded w. Tolerance: 1e-5 absolute + 1e-4 relative (float32 on both sides).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { openDevice } from '../../src/gpu/index.js';
import {
  Adam,
  BatchNorm1d,
  BatchNorm2d,
  backward,
  binaryCrossEntropy,
  binaryCrossEntropyWithLogits,
  type CrossEntropyOptions,
  composedActivation,
  crossEntropy,
  Embedding,
  elu,
  GELU,
  GroupNorm,
  gelu,
  geluTanh,
  huberLoss,
  klDiv,
  l1Loss,
  leakyRelu,
  Module,
  mul,
  Parameter,
  RMSNorm,
  silu,
  smoothL1Loss,
  softplus,
  sum,
  type Tensor,
  tensor,
  toArray,
} from '../../src/ml/index.js';

interface Values {
  readonly shape: number[];
  readonly data: number[];
}

interface Case {
  readonly inputs: Record<string, Values>;
  readonly w: Values;
  readonly out: Values;
  readonly grads: Record<string, Values>;
  readonly [key: string]: unknown;
}

const golden = JSON.parse(
  readFileSync(new URL('./fixtures/layers_goldens.json', import.meta.url), 'utf8'),
) as {
  cases: Record<string, Case>;
};

function goldenCase(name: string): Case {
  const found = golden.cases[name];
  if (found === undefined) throw new Error(`no golden case ${name}`);
  return found;
}

function leaf(values: Values, requiresGrad = true): Tensor {
  return tensor(values.data, values.shape, { requiresGrad });
}

function expectClose(actual: ArrayLike<number>, expected: Values | number[], label: string): void {
  const want = Array.isArray(expected) ? expected : expected.data;
  expect(actual.length, `${label}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const tolerance = 1e-5 + 1e-4 * Math.abs(want[i]);
    const difference = Math.abs(actual[i] - want[i]);
    if (!(difference <= tolerance)) {
      throw new Error(`${label}[${i}]: got ${actual[i]}, PyTorch ${want[i]} (tolerance ${tolerance})`);
    }
  }
}

/** Runs f on the case's inputs, checks the output and each listed input's gradient. */
function checkCase(
  name: string,
  f: (inputs: Record<string, Tensor>) => Tensor,
  gradientsOf?: readonly string[],
): void {
  const c = goldenCase(name);
  const inputs: Record<string, Tensor> = {};
  for (const [key, values] of Object.entries(c.inputs)) inputs[key] = leaf(values, key in c.grads);
  const out = f(inputs);
  expect(out.shape).toEqual(c.out.shape);
  expectClose(toArray(out), c.out, `${name} output`);
  backward(sum(mul(out, tensor(c.w.data, c.w.shape))));
  for (const [key, values] of Object.entries(c.grads)) {
    if (gradientsOf !== undefined && !gradientsOf.includes(key)) continue;
    expectClose(inputs[key].grad ?? [], values, `${name} gradient of ${key}`);
  }
}

describe('activations match PyTorch', () => {
  it('leakyRelu, silu, elu, softplus, gelu (exact and tanh)', () => {
    checkCase('leakyRelu', ({ x }) => leakyRelu(x, 0.2));
    checkCase('silu', ({ x }) => silu(x));
    checkCase('elu', ({ x }) => elu(x, 0.7));
    checkCase('softplus', ({ x }) => softplus(x, 2, 3));
    checkCase('geluTanh', ({ x }) => geluTanh(x));
    checkCase('gelu', ({ x }) => gelu(x));
    checkCase('geluTanh', ({ x }) => new GELU('tanh').forward(x));
  });

  it('the composed forms (the device path) agree with the fused ones, values and gradients', () => {
    checkCase('leakyRelu', ({ x }) => composedActivation('leakyRelu', x, { negativeSlope: 0.2 }));
    checkCase('silu', ({ x }) => composedActivation('silu', x));
    checkCase('elu', ({ x }) => composedActivation('elu', x, { alpha: 0.7 }));
    checkCase('geluTanh', ({ x }) => composedActivation('geluTanh', x));
    // softplus's composition has no threshold: compare away from it (beta x <= threshold)
    const x = tensor([-30, -3, -0.5, 0, 0.5, 4], [6], { requiresGrad: true });
    const fusedOut = toArray(softplus(x, 2, 20));
    expectClose(toArray(composedActivation('softplus', x, { beta: 2 })), fusedOut, 'softplus composed');
  });

  it('softplus is linear above its threshold and never overflows', () => {
    const x = tensor([100, 1000, -1000], [3], { requiresGrad: true });
    expect(toArray(softplus(x))).toEqual([100, 1000, 0]);
  });

  it('refuses bad parameters with a clear error', () => {
    const x = tensor([1], [1]);
    expect(() => softplus(x, 0)).toThrow(/beta must be a positive number/);
    expect(() => leakyRelu(x, Number.NaN)).toThrow(/negativeSlope/);
    expect(() => new GELU('fast' as 'tanh')).toThrow(/approximate must be/);
  });
});

function setParameter(target: Tensor | null, values: Values): void {
  expect(target).not.toBeNull();
  target!.data.set(values.data);
}

describe('norms match PyTorch', () => {
  it('GroupNorm(2, 4) on (2, 4, 3), values and gradients of input, weight and bias', () => {
    const c = goldenCase('groupNorm');
    const norm = new GroupNorm(2, 4);
    setParameter(norm.weight, c.inputs.weight);
    setParameter(norm.bias, c.inputs.bias);
    checkCase('groupNorm', ({ x }) => norm.forward(x), ['x']);
    expectClose(norm.weight!.grad!, c.grads.weight, 'groupNorm weight gradient');
    expectClose(norm.bias!.grad!, c.grads.bias, 'groupNorm bias gradient');
  });

  it('RMSNorm(5) as PyTorch 2.4 defines it', () => {
    const c = goldenCase('rmsNorm');
    const norm = new RMSNorm(5, { epsilon: 1e-6 });
    setParameter(norm.weight, c.inputs.weight);
    checkCase('rmsNorm', ({ x }) => norm.forward(x), ['x']);
    expectClose(norm.weight!.grad!, c.grads.weight, 'rmsNorm weight gradient');
  });

  for (const [name, make] of [
    ['batchNorm1d', () => new BatchNorm1d(3)],
    ['batchNorm1dSequence', () => new BatchNorm1d(3)],
    ['batchNorm2d', () => new BatchNorm2d(2)],
  ] as const) {
    it(`${name}: training output and gradient, running stats after two steps, eval output`, () => {
      const c = goldenCase(name) as unknown as Record<string, Values>;
      const norm = make();
      setParameter(norm.weight, c.weight);
      setParameter(norm.bias, c.bias);
      const w = tensor(c.w.data, c.w.shape);
      const x1 = leaf(c.x1);
      const out1 = norm.forward(x1);
      expectClose(toArray(out1), c.out1, `${name} training output`);
      backward(sum(mul(out1, w)));
      expectClose(x1.grad!, c.gradX1, `${name} training input gradient`);
      norm.forward(leaf(c.x2, false));
      expectClose(norm.runningMean!.data, c.runningMean, `${name} running mean`);
      expectClose(norm.runningVar!.data, c.runningVar, `${name} running var (unbiased)`);
      expect(norm.numBatchesTracked!.data[0]).toBe(2);
      norm.eval();
      norm.weight!.grad = null;
      const xe = leaf(c.xEval);
      const outEval = norm.forward(xe);
      expectClose(toArray(outEval), c.outEval, `${name} eval output`);
      backward(sum(mul(outEval, w)));
      expectClose(xe.grad!, c.gradXEval, `${name} eval input gradient`);
      expectClose(norm.weight!.grad!, c.gradWeightEval, `${name} eval weight gradient`);
      // eval mode leaves the running statistics alone
      expectClose(norm.runningMean!.data, c.runningMean, `${name} running mean after eval`);
    });
  }

  it('buffers ride in state dicts, never in parameters (optimizers never see them)', () => {
    const norm = new BatchNorm1d(3);
    expect(norm.namedParameters().map(([n]) => n)).toEqual(['weight', 'bias']);
    expect(norm.namedBuffers().map(([n]) => n)).toEqual(['runningMean', 'runningVar', 'numBatchesTracked']);
    norm.forward(tensor([1, 2, 3, 4, 5, 7], [2, 3]));
    const state = norm.stateDict();
    expect(Object.keys(state)).toEqual(['weight', 'bias', 'runningMean', 'runningVar', 'numBatchesTracked']);
    const copy = new BatchNorm1d(3);
    copy.loadStateDict(state);
    expect(Array.from(copy.runningMean!.data)).toEqual(Array.from(norm.runningMean!.data));
    expect(copy.numBatchesTracked!.data[0]).toBe(1);
    const { runningVar: _dropped, ...missing } = state;
    expect(() => new BatchNorm1d(3).loadStateDict(missing)).toThrow(/missing parameter 'runningVar'/);
    const optimizer = new Adam(norm.parameters(), { learningRate: 0.1 });
    expect(norm.parameters()).toHaveLength(2);
    expect(optimizer).toBeDefined();
  });

  it('momentum null keeps a cumulative average; batch of one value per channel is refused', () => {
    const norm = new BatchNorm1d(1, { momentum: null });
    norm.forward(tensor([0, 2], [2, 1]));
    norm.forward(tensor([4, 8], [2, 1]));
    // factor 1 / step: means 1 and 6 -> 3.5; unbiased variances 2 and 8 -> 5 (the initial 0 and 1 drop out)
    expect(norm.runningMean!.data[0]).toBeCloseTo(3.5, 6);
    expect(norm.runningVar!.data[0]).toBeCloseTo(5, 6);
    expect(() => norm.forward(tensor([1], [1, 1]))).toThrow(/more than 1 value per channel/);
    expect(() => new GroupNorm(3, 4)).toThrow(/divisible/);
  });

  it('Embedding paddingIdx: the row starts at zero and gets no gradient', () => {
    const table = new Embedding(4, 2, { paddingIdx: -1 });
    expect(table.paddingIdx).toBe(3);
    expect(Array.from(table.weight.data.subarray(6, 8))).toEqual([0, 0]);
    const out = table.forward(tensor([3, 1, 3, 0], [4]));
    backward(sum(out));
    expect(Array.from(table.weight.grad!)).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
    expect(() => new Embedding(4, 2, { paddingIdx: 4 })).toThrow(/paddingIdx/);
  });
});

describe('losses match PyTorch', () => {
  const reductions = ['none', 'mean', 'sum'] as const;

  it('binaryCrossEntropy, plain and weighted', () => {
    for (const reduction of reductions)
      checkCase(`bce_${reduction}`, ({ p, t }) => binaryCrossEntropy(p, t, { reduction }));
    checkCase('bce_weight', ({ p, t, weight }) => binaryCrossEntropy(p, t, { weight }));
    expect(() => binaryCrossEntropy(tensor([1.5], [1]), tensor([1], [1]))).toThrow(/probability in \[0, 1\]/);
  });

  it('binaryCrossEntropyWithLogits, plain, weighted and with posWeight; stable for large logits', () => {
    for (const reduction of reductions)
      checkCase(`bceLogits_${reduction}`, ({ x, t }) => binaryCrossEntropyWithLogits(x, t, { reduction }));
    checkCase('bceLogits_weights', ({ x, t, weight, posWeight }) =>
      binaryCrossEntropyWithLogits(x, t, { weight, posWeight }),
    );
    const huge = binaryCrossEntropyWithLogits(tensor([200, -200], [2]), tensor([0, 1], [2]), {
      reduction: 'none',
    });
    expect(toArray(huge)).toEqual([200, 200]);
  });

  it('l1Loss, smoothL1Loss(beta) and huberLoss(delta)', () => {
    for (const reduction of reductions) {
      checkCase(`l1_${reduction}`, ({ p, t }) => l1Loss(p, t, { reduction }));
      checkCase(`smoothL1_${reduction}`, ({ p, t }) => smoothL1Loss(p, t, { reduction, beta: 0.8 }));
      checkCase(`huber_${reduction}`, ({ p, t }) => huberLoss(p, t, { reduction, delta: 1.3 }));
    }
    expect(() => l1Loss(tensor([1, 2], [2]), tensor([1], [1]))).toThrow(/same shape/);
    expect(() => l1Loss(tensor([1], [1]), tensor([1], [1]), { reduction: 'avg' as 'sum' })).toThrow(
      /reduction must be/,
    );
  });

  it('klDiv with every reduction, a zero target and log targets', () => {
    for (const reduction of [...reductions, 'batchmean'] as const)
      checkCase(`klDiv_${reduction}`, ({ input, target }) => klDiv(input, target, { reduction }));
    checkCase('klDiv_zeroTarget', ({ input, target }) => klDiv(input, target, { reduction: 'sum' }), [
      'input',
    ]);
    checkCase('klDiv_logTarget', ({ input, target }) =>
      klDiv(input, target, { reduction: 'batchmean', logTarget: true }),
    );
  });

  it('crossEntropy with label smoothing, ignoreIndex, class weights, reductions and (N, C, d...) inputs', () => {
    for (const name of [
      'plain',
      'sum',
      'none',
      'smoothing',
      'weights',
      'ignore',
      'all',
      'allSum',
      'allNone',
      'spatial',
      'spatialAll',
    ]) {
      const c = goldenCase(`ce_${name}`);
      const raw = c.options as Record<string, unknown>;
      const options: CrossEntropyOptions = {
        reduction: raw.reduction as CrossEntropyOptions['reduction'],
        labelSmoothing: raw.label_smoothing as number | undefined,
        ignoreIndex: raw.ignore_index as number | undefined,
        weight: raw.weight as number[] | undefined,
      };
      const labels = Int32Array.from(c.labels as number[]);
      const labelTensor =
        c.labelShape === undefined ? labels : tensor(Array.from(labels), c.labelShape as number[]);
      checkCase(`ce_${name}`, ({ x }) => crossEntropy(x, labelTensor, options));
    }
  });

  it('crossEntropy ignores label -100 by default, as PyTorch, and keeps the fused path otherwise', () => {
    const logits = tensor([1, 2, 3, 0, 0, 5], [2, 3]);
    const withIgnored = crossEntropy(logits, Int32Array.of(2, -100));
    const alone = crossEntropy(tensor([1, 2, 3], [1, 3]), Int32Array.of(2));
    expect(toArray(withIgnored)[0]).toBeCloseTo(toArray(alone)[0], 6);
    expect(() => crossEntropy(logits, Int32Array.of(2, -1))).toThrow(/not in \[0, 3\)/);
    expect(() => crossEntropy(logits, Int32Array.of(2, 1), { weight: [1, 2] })).toThrow(
      /2 values for 3 classes/,
    );
  });
});

/** One parameter as a module, so `to(device)` moves it. */
class Holder extends Module {
  constructor(readonly value: Parameter) {
    super();
  }

  forward(input: Tensor): Tensor {
    return input;
  }
}

describe('on the cpu reference device', () => {
  it('the activations compose device ops: PyTorch values and gradients there too', async () => {
    const device = await openDevice('cpu');
    try {
      const cases = [
        ['leakyRelu', (x: Tensor) => leakyRelu(x, 0.2)],
        ['silu', (x: Tensor) => silu(x)],
        ['elu', (x: Tensor) => elu(x, 0.7)],
        ['geluTanh', (x: Tensor) => geluTanh(x)],
      ] as const;
      for (const [name, f] of cases) {
        const c = goldenCase(name);
        const holder = await new Holder(
          new Parameter(Float32Array.from(c.inputs.x.data), c.inputs.x.shape),
        ).to(device);
        const x = holder.value;
        expect(x.device).toBe(device);
        const out = f(x);
        expect(out.device).toBe(device);
        expectClose(toArray(await out.to('cpu')), c.out, `${name} on the device`);
        const w = await tensor(c.w.data, c.w.shape).to(device);
        backward(sum(mul(out, w)));
        expectClose(toArray(await x.deviceGrad!.to('cpu')), c.grads.x, `${name} gradient on the device`);
      }
      const onDevice = await tensor([1, 2, 3, 4], [2, 2]).to(device);
      expect(() => new BatchNorm1d(2).forward(onDevice)).toThrow(/not available on/);
      expect(() => l1Loss(onDevice, onDevice)).toThrow(/not available on/);
    } finally {
      device.destroy();
    }
  });
});
