/**
 * Autograd on GPU-layer devices: for every op with a device gradient, the gradients that
 * `backward` leaves in `deviceGrad` equal the CPU autograd's `grad` on the same fresh random
 * inputs (within the GPU layer's tolerances), on the `cpu` reference device and on real WebGPU
 * (SwiftShader here). Then whole training steps: a model moved with `module.to(device)` and
 * trained with SGD (momentum, Nesterov, weight decay), Adam/AdamW, RMSprop or Adagrad ends with
 * the parameters the CPU run ends with, also when the move comes mid-run (Module.to moves
 * parameters in place and the optimizer carries its state); the device memory of a step is
 * given back; optimizer and module state read back from the device and load into it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import {
  firstMismatch,
  type Device as GpuDevice,
  openDevice,
  TOLERANCES,
  type Tolerance,
} from '../../src/gpu/index.js';
import {
  Adagrad,
  Adam,
  AdamW,
  add,
  avgPool2d,
  backward,
  causalSoftmax,
  conv2d,
  crossEntropy,
  detach,
  disposeGraph,
  div,
  dropout,
  embedding,
  exp,
  flatten,
  GELU,
  gelu,
  geluTanh,
  isTensorError,
  Linear,
  layerNorm,
  linear,
  log,
  logSoftmax,
  matmul,
  max,
  maxPool2d,
  mean,
  mseLoss,
  mul,
  neg,
  noGrad,
  type Optimizer,
  permute,
  pow,
  ReLU,
  RMSprop,
  relu,
  reshape,
  Sequential,
  SGD,
  sigmoid,
  softmax,
  sqrt,
  sub,
  sum,
  Tanh,
  type Tensor,
  tanh,
  tensor,
  to,
  toArray,
  transpose,
} from '../../src/ml/index.js';
import { probeWebGpu } from '../gpu/support.js';
import { type Input, inputMaker, uniformArray } from './helpers.js';

interface GradCase {
  readonly name: string;
  readonly inputs: readonly Input[];
  run(inputs: readonly Tensor[]): Tensor;
}

/** Gradients pass through several kernels: compared with the matmul tolerance. */
const GRADIENT: Tolerance = TOLERANCES.f32.matmul;

function gradCases(seed: number): GradCase[] {
  const random = new Random(seed);
  const { values, nonzero } = inputMaker(random);
  const binary = (
    [
      ['add', add],
      ['sub', sub],
      ['mul', mul],
      ['div', div],
    ] as const
  ).flatMap(([op, apply]): GradCase[] => [
    { name: `${op} same shape`, inputs: [values([3, 4]), nonzero([3, 4])], run: ([a, b]) => apply(a, b) },
    {
      name: `${op} broadcast [2, 3, 4] with [3, 1] (the gradient sums to [3, 1])`,
      inputs: [values([2, 3, 4]), nonzero([3, 1])],
      run: ([a, b]) => apply(a, b),
    },
    {
      name: `${op} broadcast [4] with [2, 1, 3, 4] and numbers`,
      inputs: [nonzero([4]), nonzero([2, 1, 3, 4])],
      run: ([a, b]) => apply(apply(apply(a, b), 1.5), apply(0.5, b)),
    },
  ]);
  const unary = (
    [
      ['neg', neg, values([3, 5])],
      ['exp', exp, values([3, 5], -3, 3)],
      ['log', log, values([3, 5], 0.1, 4)],
      ['sqrt', sqrt, values([3, 5], 0.1, 4)],
      ['relu', relu, nonzero([3, 5])],
      ['gelu', gelu, values([4, 6], -4, 4)],
      ['sigmoid', sigmoid, values([3, 5], -5, 5)],
      ['tanh', tanh, values([3, 5], -3, 3)],
    ] as const
  ).map(([op, apply, input]): GradCase => ({ name: op, inputs: [input], run: ([x]) => apply(x) }));
  return [
    ...binary,
    ...unary,
    {
      name: 'sum and mean over all, the last axis, and leading axes kept',
      inputs: [values([2, 3, 4])],
      run: ([x]) => add(add(sum(x, [0, 2], { keepDims: true }), mean(x, -1, { keepDims: true })), mean(x)),
    },
    {
      name: 'pow of positive bases, both operands need gradients (the same rule as on the CPU)',
      inputs: [values([3, 4], 0.5, 2), values([3, 4], -1.5, 1.5)],
      run: ([a, b]) => add(pow(a, b), pow(a, 3)),
    },
    { name: 'softmax', inputs: [values([3, 7], -3, 3)], run: ([x]) => softmax(x) },
    {
      name: 'layerNorm of (2, 3, 5) rows with gamma and beta (one rule, on the CPU and the device)',
      inputs: [values([2, 3, 5]), values([5], 0.5, 1.5), values([5])],
      run: ([x, gamma, beta]) => mul(layerNorm(x, gamma, beta), x),
    },
    { name: 'logSoftmax', inputs: [values([2, 3, 6], -3, 3)], run: ([x]) => logSoftmax(x) },
    {
      name: 'matmul with a batched left operand; both operands need gradients',
      inputs: [values([2, 3, 5]), values([5, 4])],
      run: ([a, b]) => matmul(a, b),
    },
    {
      name: 'matmul of batched operands, (2, 3, 4, 5) @ (2, 3, 5, 6): one batched launch',
      inputs: [values([2, 3, 4, 5]), values([2, 3, 5, 6])],
      run: ([a, b]) => matmul(a, b),
    },
    {
      name: 'matmul broadcasting the batch: (3, 4, 5) @ (2, 1, 5, 6) and (4, 5) @ (2, 5, 6)',
      inputs: [values([3, 4, 5]), values([2, 1, 5, 6]), values([4, 5]), values([2, 5, 6])],
      run: ([a, b, c, d]) => add(sum(matmul(a, b)), sum(matmul(c, d))),
    },
    {
      name: 'attention: causal softmax of q kᵀ, times v (the GPT block)',
      inputs: [values([2, 2, 5, 3]), values([2, 2, 5, 3]), values([2, 2, 5, 3])],
      run: ([q, k, v]) => matmul(causalSoftmax(matmul(q, transpose(k, -2, -1)), 0.5), v),
    },
    {
      name: 'embedding of repeated indices (gradients add up) and geluTanh',
      inputs: [values([6, 4])],
      run: ([weight]) => geluTanh(embedding(weight, Int32Array.of(3, 0, 3, 5, 3, 1), [2, 3])),
    },
    {
      name: 'dropout: the same seeded mask as on the CPU, and its gradient',
      inputs: [values([4, 6])],
      run: ([x]) => dropout(x, 0.3, new Random(4)),
    },
    {
      name: 'embedding with paddingIdx: the padding row comes through without a gradient',
      inputs: [values([5, 3])],
      run: ([weight]) => embedding(weight, Int32Array.of(2, 4, 2, 0), [4], { paddingIdx: 2 }),
    },
    {
      name: 'linear with bias',
      inputs: [values([4, 6]), values([3, 6]), values([3])],
      run: ([x, weight, bias]) => linear(x, weight, bias),
    },
    {
      name: 'reshape, flatten, transpose and permute',
      inputs: [values([2, 3, 4])],
      run: ([x]) => add(transpose(flatten(permute(x, [2, 0, 1]))), reshape(x, [6, 4])),
    },
    {
      name: 'crossEntropy (mean) of a small network',
      inputs: [values([5, 4]), values([3, 4]), values([3])],
      run: ([x, weight, bias]) => crossEntropy(tanh(linear(x, weight, bias)), Int32Array.of(0, 2, 1, 1, 0)),
    },
    {
      name: 'mseLoss (sum), both sides need gradients',
      inputs: [values([3, 4]), values([3, 4])],
      run: ([p, t]) => mseLoss(p, t, { reduction: 'sum' }),
    },
    {
      name: 'a tensor used twice accumulates both gradients',
      inputs: [values([3, 3])],
      run: ([x]) => add(mul(x, x), matmul(x, x)),
    },
    {
      name: 'conv2d with bias, padding 1 (x, weight and bias gradients)',
      inputs: [values([2, 3, 6, 5]), values([4, 3, 3, 3]), values([4])],
      run: ([x, weight, bias]) => conv2d(x, weight, bias, { padding: 1 }),
    },
    {
      name: 'conv2d without bias, stride 2, padding 1',
      inputs: [values([1, 2, 7, 7]), values([3, 2, 3, 2])],
      run: ([x, weight]) => conv2d(x, weight, null, { stride: 2, padding: 1 }),
    },
    {
      name: 'conv2d with dilation [2, 1], stride [1, 2], padding [2, 1] (rectangular)',
      inputs: [values([2, 2, 7, 8]), values([3, 2, 3, 2]), values([3])],
      run: ([x, weight, bias]) =>
        conv2d(x, weight, bias, { stride: [1, 2], padding: [2, 1], dilation: [2, 1] }),
    },
    {
      name: 'maxPool2d 2x2 and 3x3 stride 2 (overlapping windows)',
      inputs: [values([2, 3, 8, 7])],
      run: ([x]) => add(sum(maxPool2d(x, 2)), sum(maxPool2d(x, 3, { stride: 2 }))),
    },
    {
      name: 'avgPool2d 2x2 and 3x3 stride 2',
      inputs: [values([2, 3, 8, 7])],
      run: ([x]) => add(sum(avgPool2d(x, 2)), sum(avgPool2d(x, 3, { stride: 2 }))),
    },
    {
      name: 'conv2d, relu, maxPool2d: the bench CNN block',
      inputs: [values([2, 1, 8, 8]), values([4, 1, 3, 3]), values([4])],
      run: ([x, weight, bias]) => maxPool2d(relu(conv2d(x, weight, bias, { padding: 1 })), 2),
    },
  ];
}

/** Gradients of sum(out * weights) with respect to every input, on the CPU and on `device`. */
async function expectSameGradients(device: GpuDevice, testCase: GradCase, random: Random): Promise<void> {
  const hosts = testCase.inputs.map(({ values, shape }) => tensor(values, shape, { requiresGrad: true }));
  const hostOut = testCase.run(hosts);
  const weights = uniformArray(random, hostOut.size, -1, 1);
  backward(sum(mul(hostOut, tensor(weights, hostOut.shape))));
  const onDevice = await Promise.all(
    testCase.inputs.map(async ({ values, shape }) => {
      const moved = await to(tensor(values, shape), device);
      moved.requiresGrad = true;
      return moved;
    }),
  );
  const out = testCase.run(onDevice);
  expect(out.device, testCase.name).toBe(device);
  const loss = sum(mul(out, await to(tensor(weights, out.shape), device)));
  backward(loss);
  for (let i = 0; i < hosts.length; i++) {
    const gradient = onDevice[i].deviceGrad;
    expect(gradient, `${testCase.name}: input ${i} has a gradient`).not.toBeNull();
    expect(gradient!.shape, testCase.name).toEqual(hosts[i].shape);
    const actual = toArray(await to(gradient!, 'cpu'));
    const mismatch = firstMismatch(actual, Array.from(hosts[i].grad!), GRADIENT);
    expect(mismatch, `${testCase.name}: input ${i}`).toBeUndefined();
  }
  disposeGraph(loss);
}

function mlp(seed: number): Sequential {
  const random = new Random(seed);
  return new Sequential(
    new Linear(6, 8, { random }),
    new ReLU(),
    new Linear(8, 8, { random }),
    new GELU(),
    new Linear(8, 4, { random }),
    new Tanh(),
  );
}

/**
 * `steps` training steps of `model` on batches drawn from `random` (the same ones for the same
 * seed, whatever device a step runs on); the final parameters.
 */
async function train(
  model: Sequential,
  optimizer: Optimizer,
  device: GpuDevice | 'cpu',
  steps: number,
  random = new Random(99),
): Promise<Float32Array[]> {
  for (let step = 0; step < steps; step++) {
    const batch = tensor(uniformArray(random, 5 * 6, -1, 1), [5, 6]);
    const labels = Int32Array.from({ length: 5 }, () => Math.floor(random.next() * 4));
    const input = device === 'cpu' ? batch : await to(batch, device);
    optimizer.zeroGrad();
    const loss = crossEntropy(model.forward(input), labels);
    backward(loss);
    optimizer.step();
    disposeGraph(loss);
  }
  const state = await model.readStateDict();
  return Object.values(state).map((entry) => entry.data);
}

const OPTIMIZERS: ReadonlyArray<[string, (model: Sequential) => Optimizer]> = [
  ['SGD', (model) => new SGD(model.parameters(), { learningRate: 0.1 })],
  [
    'SGD with Nesterov momentum and weight decay',
    (model) =>
      new SGD(model.parameters(), { learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 }),
  ],
  ['Adam', (model) => new Adam(model.parameters(), { learningRate: 1e-2, simd: false })],
  ['AdamW', (model) => new AdamW(model.parameters(), { learningRate: 1e-2, simd: false })],
  // (its host steps run in the SIMD kernel, which gives the parameters up once they move)
  ['Adam with the SIMD kernel', (model) => new Adam(model.parameters(), { learningRate: 1e-2 })],
  ['RMSprop', (model) => new RMSprop(model.parameters(), { learningRate: 1e-2 })],
  [
    'RMSprop, centered, with momentum and weight decay',
    (model) =>
      new RMSprop(model.parameters(), {
        learningRate: 1e-2,
        alpha: 0.9,
        centered: true,
        momentum: 0.8,
        weightDecay: 1e-2,
      }),
  ],
  [
    'Adagrad with rate decay, an initial accumulator and weight decay',
    (model) =>
      new Adagrad(model.parameters(), {
        learningRate: 5e-2,
        learningRateDecay: 0.1,
        initialAccumulator: 0.5,
        weightDecay: 1e-2,
      }),
  ],
];

function suite(open: () => Promise<GpuDevice>, seed: number): void {
  let device: GpuDevice;

  beforeAll(async () => {
    device = await open();
  });

  afterAll(() => device?.destroy());

  it('every op with a device gradient gives the CPU gradients', async () => {
    const random = new Random(seed + 1);
    for (const testCase of gradCases(seed)) await expectSameGradients(device, testCase, random);
  });

  for (const [name, makeOptimizer] of OPTIMIZERS) {
    it(`training a moved model with ${name} ends where the CPU run ends`, async () => {
      const cpuModel = mlp(7);
      const expected = await train(cpuModel, makeOptimizer(cpuModel), 'cpu', 6);
      const deviceModel = await mlp(7).to(device);
      expect(deviceModel.parameters().every((parameter) => parameter.device === device)).toBe(true);
      const actual = await train(deviceModel, makeOptimizer(deviceModel), device, 6);
      expectSameParameters(actual, expected);
    });

    it(`${name} made on the CPU carries its state when Module.to moves the model mid-run`, async () => {
      const cpuModel = mlp(8);
      const expected = await train(cpuModel, makeOptimizer(cpuModel), 'cpu', 6);
      const model = mlp(8);
      const optimizer = makeOptimizer(model);
      const held = [...optimizer.parameters];
      const random = new Random(99);
      await train(model, optimizer, 'cpu', 3, random);
      await model.to(device);
      // The same parameters, now on the device: the optimizer steps what the module trains.
      expect(model.parameters().every((parameter, i) => parameter === held[i])).toBe(true);
      expect(held.every((parameter) => parameter.device === device)).toBe(true);
      expectSameParameters(await train(model, optimizer, device, 3, random), expected);
      expect(optimizer.deviceSlotNames().length > 0).toBe(optimizer.slotNames().length > 0);
    });
  }
}

function expectSameParameters(actual: Float32Array[], expected: Float32Array[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++)
    expect(
      firstMismatch(Array.from(actual[i]), Array.from(expected[i]), GRADIENT),
      `parameter ${i}`,
    ).toBeUndefined();
}

describe('autograd on the cpu reference device', () => {
  suite(() => openDevice('cpu'), 20261121);

  let device: GpuDevice;
  beforeAll(async () => {
    device = await openDevice('cpu');
  });
  afterAll(() => device?.destroy());

  it.each([
    ['Adam', (model: Sequential) => new Adam(model.parameters(), { learningRate: 1e-3 })],
    [
      'RMSprop (centered, momentum)',
      (model: Sequential) =>
        new RMSprop(model.parameters(), { centered: true, momentum: 0.9, weightDecay: 0.1 }),
    ],
    ['Adagrad', (model: Sequential) => new Adagrad(model.parameters(), { weightDecay: 0.1 })],
  ])('a training step with %s gives back all its device memory: live buffers stay flat', async (_, make) => {
    const model = await mlp(3).to(device);
    const optimizer = make(model);
    const input = await to(tensor(uniformArray(new Random(1), 30), [5, 6]), device);
    const live: number[] = [];
    for (let step = 0; step < 5; step++) {
      optimizer.zeroGrad();
      const loss = crossEntropy(model.forward(input), Int32Array.of(0, 1, 2, 3, 0));
      backward(loss);
      optimizer.step();
      disposeGraph(loss);
      live.push(device.memoryStats().liveBuffers);
    }
    expect(new Set(live.slice(1)).size).toBe(1);
  });

  it('Module.to moves parameters in place: an optimizer made before the move trains the moved model', async () => {
    const makers: Array<(model: Sequential) => Optimizer> = [
      (model) => new SGD(model.parameters(), { learningRate: 0.1, momentum: 0.9 }),
      (model) => new Adam(model.parameters()),
      (model) => new Adam(model.parameters(), { simd: false }),
      (model) => new RMSprop(model.parameters()),
      (model) => new Adagrad(model.parameters(), { initialAccumulator: 0.1 }),
    ];
    for (const make of makers) {
      const reference = mlp(4);
      const expected = await train(reference, make(reference), 'cpu', 3);
      const model = mlp(4);
      const optimizer = make(model);
      const before = model.parameters();
      await model.to(device);
      expect(model.parameters()).toEqual(before);
      expect(model.parameters().every((parameter, i) => parameter === before[i])).toBe(true);
      expectSameParameters(await train(model, optimizer, device, 3), expected);
      expect(optimizer.stepCount).toBe(3);
    }
  });

  it('a move back from the device with state there stops the step, saying how to carry the state', async () => {
    const reference = mlp(6);
    const referenceOptimizer = new Adam(reference.parameters(), { learningRate: 1e-2 });
    const expected = await train(reference, referenceOptimizer, 'cpu', 6);
    const model = await mlp(6).to(device);
    const optimizer = new Adam(model.parameters(), { learningRate: 1e-2 });
    const random = new Random(99);
    await train(model, optimizer, device, 3, random);
    await model.to('cpu');
    expect(model.parameters().every((parameter) => parameter.device === 'cpu')).toBe(true);
    const refusal =
      /adam: parameter 0 moved from cpu:0 to cpu, and its state \(m, v\) is still on cpu:0; carry it with `optimizer\.loadStateDict\(await optimizer\.readStateDict\(\)\)` after the move/;
    expect(() => optimizer.step()).toThrow(refusal);
    expect(optimizer.stepCount).toBe(3);
    optimizer.loadStateDict(await optimizer.readStateDict());
    expect(optimizer.deviceSlotNames()).toEqual([]);
    expectSameParameters(await train(model, optimizer, 'cpu', 3, random), expected);
    // Plain SGD keeps no state: its parameters move either way without a word.
    const plain = mlp(6);
    const sgd = new SGD(plain.parameters(), { learningRate: 0.1 });
    await train(plain, sgd, 'cpu', 1);
    await plain.to(device);
    await train(plain, sgd, device, 1);
    await plain.to('cpu');
    await expect(train(plain, sgd, 'cpu', 1)).resolves.toHaveLength(6);
  });

  it('Module.to carries gradients, moves a shared parameter once, and is all or nothing', async () => {
    const model = mlp(2);
    const x = tensor(uniformArray(new Random(5), 12), [2, 6]);
    backward(sum(model.forward(x)));
    const grads = model.parameters().map((parameter) => Array.from(parameter.grad!));
    await model.to(device);
    for (const [i, parameter] of model.parameters().entries()) {
      expect(parameter.grad, `parameter ${i}`).toBeNull();
      expect(toArray(await to(parameter.deviceGrad!, 'cpu')), `parameter ${i}`).toEqual(grads[i]);
    }
    await model.to('cpu');
    expect(model.parameters().map((parameter) => Array.from(parameter.grad!))).toEqual(grads);
    expect(model.parameters().every((parameter) => parameter.deviceGrad === null)).toBe(true);

    const shared = new Linear(3, 3);
    const twice = new Sequential(shared, new ReLU(), shared);
    await twice.to(device);
    expect(twice.parameters().every((parameter) => parameter.device === device)).toBe(true);
    const out = await to(twice.forward(await to(tensor([1, 2, 3], [1, 3]), device)), 'cpu');
    expect(out.shape).toEqual([1, 3]);

    // 400 bytes of device memory hold the first layer (56 values) but not the whole model.
    const small = await openDevice('cpu', { memoryLimitBytes: 400 });
    try {
      const big = mlp(3);
      const values = big.parameters().map((parameter) => Array.from(parameter.data));
      await expect(big.to(small)).rejects.toThrow(/memory/i);
      expect(big.parameters().every((parameter) => parameter.device === 'cpu')).toBe(true);
      expect(big.parameters().map((parameter) => Array.from(parameter.data))).toEqual(values);
      expect(small.memoryStats().liveBuffers).toBe(0);
    } finally {
      small.destroy();
    }
  });

  it('gradients accumulate over backward calls until zeroGrad; retainGrad keeps an intermediate', async () => {
    const x = await to(tensor([1, -2, 3], [3]), device);
    x.requiresGrad = true;
    for (let i = 0; i < 2; i++) {
      const y = mul(x, 2);
      y.retainGrad = true;
      const loss = sum(y);
      backward(loss);
      expect(toArray(await to(y.deviceGrad!, 'cpu'))).toEqual([1, 1, 1]);
    }
    expect(toArray(await to(x.deviceGrad!, 'cpu'))).toEqual([4, 4, 4]);
    const model = new Sequential(new Linear(3, 1));
    await model.to(device);
    const loss = sum(model.forward(reshape(x, [1, 3])));
    backward(loss);
    model.zeroGrad();
    expect(model.parameters().map((parameter) => parameter.deviceGrad)).toEqual([null, null]);
  });

  it('a graph is used once; a non-scalar root needs a gradient of its size', async () => {
    const x = await to(tensor([1, 2], [2]), device);
    x.requiresGrad = true;
    const loss = sum(exp(x));
    backward(loss);
    expect(() => backward(loss)).toThrow(/the graph through 'sum' was already used/);
    const y = exp(x);
    expect(() => backward(y)).toThrow(/a gradient is needed for a non-scalar root of shape \[2\]/);
    expect(() => backward(y, Float32Array.of(1, 2, 3))).toThrow(/gradient has 3 elements, root has 2/);
    backward(y, Float32Array.of(1, 0));
    expect(toArray(await to(x.deviceGrad!, 'cpu'))[0]).toBeCloseTo(Math.E * 2, 4);
  });

  it('state: module and optimizer state read back from the device and load into it', async () => {
    const model = await mlp(5).to(device);
    const optimizer = new SGD(model.parameters(), { learningRate: 0.1, momentum: 0.9 });
    const input = await to(tensor(uniformArray(new Random(2), 30), [5, 6]), device);
    const step = async (): Promise<void> => {
      optimizer.zeroGrad();
      const loss = crossEntropy(model.forward(input), Int32Array.of(0, 1, 2, 3, 0));
      backward(loss);
      optimizer.step();
      disposeGraph(loss);
    };
    await step();
    expect(() => optimizer.stateDict()).toThrow(
      /its state lives on a device; read it with `await optimizer.readStateDict\(\)`/,
    );
    expect(() => model.stateDict()).toThrow(/lives on cpu:0, not in host memory/);
    const savedModel = await model.readStateDict();
    const savedOptimizer = await optimizer.readStateDict();
    expect(Object.keys(savedOptimizer.buffers)).toContain('0.momentum');
    await step();
    const after = await model.readStateDict();
    model.loadStateDict(savedModel);
    optimizer.loadStateDict(savedOptimizer);
    await step();
    const replayed = await model.readStateDict();
    for (const name of Object.keys(after))
      expect(Array.from(replayed[name].data), name).toEqual(Array.from(after[name].data));
    const back = await model.to('cpu');
    expect(back.parameters().every((parameter) => parameter.device === 'cpu')).toBe(true);
    expect(Array.from(back.stateDict()['layers.0.weight'].data)).toEqual(
      Array.from(after['layers.0.weight'].data),
    );
  });

  it('an op without a device gradient is refused at the forward, with the way out', async () => {
    const model = await new Sequential(new Linear(4, 4)).to(device);
    const x = await to(tensor([1, 2, 3, 4], [1, 4]), device);
    const refusal = (() => {
      try {
        return max(model.forward(x));
      } catch (caught) {
        return caught;
      }
    })();
    expect(isTensorError(refusal) && refusal.reason).toBe('unavailable_on_device');
    expect(String(refusal)).toMatch(
      new RegExp(
        `max has no gradient on ${device.id} yet; run it under noGrad, on detach\\(t\\), or on the CPU`,
      ),
    );
    const inference = noGrad(() => max(model.forward(x)));
    expect(inference.requiresGrad).toBe(false);
    const hidden = model.forward(x);
    const detached = detach(hidden);
    expect([detached.requiresGrad, detached.node, detached.device]).toEqual([false, null, device]);
    expect(toArray(await to(max(detached), 'cpu')).length).toBe(1);
    await expect(to(hidden, 'cpu')).resolves.toMatchObject({ shape: [1, 4] });
  });
});

const webgpu = await probeWebGpu();
describe.skipIf(!webgpu.available)(`autograd on webgpu (${webgpu.reason})`, () =>
  suite(() => openDevice('webgpu'), 20261124),
);
