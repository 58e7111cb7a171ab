/**
 * Autograd on GPU-layer devices: for every op with a device gradient, the gradients that
 * `backward` leaves in `deviceGrad` equal the CPU autograd's `grad` on the same fresh random
 * inputs (within the GPU layer's tolerances), on the `cpu` reference device and on real WebGPU
 * (SwiftShader here). Then whole training steps: a model moved with `module.to(device)` and
 * trained with SGD (momentum, Nesterov, weight decay) or Adam/AdamW ends with the parameters the
 * CPU run ends with; the device memory of a step is given back; optimizer and module state read
 * back from the device and load into it.
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
  conv2d,
  crossEntropy,
  detach,
  disposeGraph,
  div,
  exp,
  flatten,
  GELU,
  gelu,
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

/** `steps` training steps of `model` on fixed batches; the final parameters. */
async function train(
  model: Sequential,
  optimizer: Optimizer,
  device: GpuDevice | 'cpu',
  steps: number,
): Promise<Float32Array[]> {
  const random = new Random(99);
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
      for (let i = 0; i < expected.length; i++)
        expect(
          firstMismatch(Array.from(actual[i]), Array.from(expected[i]), GRADIENT),
          `parameter ${i}`,
        ).toBeUndefined();
    });
  }
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

  it('an optimizer made before Module.to refuses to step the replaced parameters, naming the move', async () => {
    const makers: Array<(model: Sequential) => Optimizer> = [
      (model) => new SGD(model.parameters(), { learningRate: 0.1 }),
      (model) => new Adam(model.parameters()),
      (model) => new Adam(model.parameters(), { simd: false }),
      (model) => new RMSprop(model.parameters()),
      (model) => new Adagrad(model.parameters()),
    ];
    for (const make of makers) {
      const model = mlp(4);
      const optimizer = make(model);
      const before = model.parameters()[0];
      await model.to(device);
      const message = /parameter 0 was moved to cpu:0 by Module\.to after this optimizer was made/;
      expect(() => optimizer.step()).toThrow(message);
      expect(() => optimizer.stepAndZeroGrad()).toThrow(message);
      expect(optimizer.stepCount).toBe(0);
      // The module's parameters are new ones; an optimizer made after the move steps them.
      expect(model.parameters()[0]).not.toBe(before);
      expect(() => make(model).step()).not.toThrow();
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
