/**
 * Device-side training efficiency: Adam and AdamW on a device run as one fused `adamStep`
 * launch per parameter (`amsgradStep` with amsgrad) and end where host Adam ends; device products read transposed operands
 * through the matmul launch's flags (no gather copies), so Linear's forward and backward
 * launch no gathers. On the cpu reference device and on WebGPU (SwiftShader here).
 *
 * Tolerances: with exact gradients (loss = sum(p * c), so dloss/dp = c on every device) the
 * only difference is f32 arithmetic in the kernel against the host loop's f64 (rtol 1e-5,
 * atol 1e-7 after eight steps); products compare with the GPU layer's matmul tolerance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import { firstMismatch, type Device as GpuDevice, openDevice, TOLERANCES } from '../../src/gpu/index.js';
import { deviceProduct } from '../../src/ml/deviceOps.js';
import {
  Adam,
  AdamW,
  backward,
  crossEntropy,
  disposeGraph,
  Flatten,
  Linear,
  matmul,
  mul,
  type Optimizer,
  ReLU,
  Sequential,
  SGD,
  sum,
  type Tensor,
  tensor,
  to,
  toArray,
  transpose,
} from '../../src/ml/index.js';
import { probeWebGpu } from '../gpu/support.js';
import { uniformArray } from './helpers.js';

const ADAM_TOLERANCE = { rtol: 1e-5, atol: 1e-7 };
const SHAPES = [[7, 5], [5], [3, 4, 2]] as const;
const STEPS = 8;

type Make = (parameters: Tensor[]) => Optimizer;

const VARIANTS: ReadonlyArray<[string, Make]> = [
  ['Adam', (p) => new Adam(p, { learningRate: 1e-2, simd: false })],
  [
    'Adam, coupled weight decay 0.1',
    (p) => new Adam(p, { learningRate: 1e-2, weightDecay: 0.1, simd: false }),
  ],
  [
    'Adam, betas (0.8, 0.99) and epsilon 1e-6',
    (p) => new Adam(p, { learningRate: 2e-2, beta1: 0.8, beta2: 0.99, epsilon: 1e-6, simd: false }),
  ],
  ['AdamW, default decoupled decay 0.01', (p) => new AdamW(p, { learningRate: 1e-2, simd: false })],
  ['AdamW, decoupled decay 0.5', (p) => new AdamW(p, { learningRate: 3e-2, weightDecay: 0.5, simd: false })],
  // beta2 0.5: v falls often within eight steps, so amsgrad's largest v parts from v
  ['Adam, amsgrad, beta2 0.5', (p) => new Adam(p, { learningRate: 1e-2, beta2: 0.5, amsgrad: true })],
  [
    'AdamW, amsgrad, beta2 0.5, decoupled decay 0.1',
    (p) => new AdamW(p, { learningRate: 1e-2, beta2: 0.5, weightDecay: 0.1, amsgrad: true }),
  ],
];

/** Eight steps with exact gradients c_t (fresh per step, the same on every device); the final parameters. */
async function stepWithExactGradients(device: GpuDevice | 'cpu', make: Make): Promise<Float32Array[]> {
  const random = new Random(31);
  const parameters: Tensor[] = [];
  for (const shape of SHAPES) {
    const size = shape.reduce((a: number, b: number) => a * b, 1);
    const host = tensor(uniformArray(random, size, -1, 1), [...shape]);
    const parameter = device === 'cpu' ? host : await to(host, device);
    parameter.requiresGrad = true;
    parameters.push(parameter);
  }
  const optimizer = make(parameters);
  for (let step = 0; step < STEPS; step++) {
    optimizer.zeroGrad();
    for (const parameter of parameters) {
      const host = tensor(uniformArray(random, parameter.size, -2, 2), [...parameter.shape]);
      const c = device === 'cpu' ? host : await to(host, device);
      const term = sum(mul(parameter, c));
      backward(term);
      disposeGraph(term);
    }
    optimizer.step();
  }
  return Promise.all(parameters.map(async (parameter) => (await to(parameter, 'cpu')).data.slice()));
}

function mlp(seed: number): Sequential {
  const random = new Random(seed);
  return new Sequential(
    new Flatten(),
    new Linear(12, 16, { random }),
    new ReLU(),
    new Linear(16, 4, { random }),
  );
}

/** One training step of `model` (batch 5 of 3x4 images); the loss. */
async function trainingStep(
  model: Sequential,
  optimizer: Optimizer,
  device: GpuDevice,
  random: Random,
): Promise<number> {
  const input = await to(tensor(uniformArray(random, 5 * 12, -1, 1), [5, 3, 4]), device);
  const labels = Int32Array.from({ length: 5 }, () => Math.floor(random.next() * 4));
  optimizer.zeroGrad();
  const loss = crossEntropy(model.forward(input), labels);
  backward(loss);
  optimizer.step();
  const value = toArray(await to(loss, 'cpu'))[0];
  disposeGraph(loss);
  return value;
}

function suite(open: () => Promise<GpuDevice>): void {
  let device: GpuDevice;
  beforeAll(async () => {
    device = await open();
  });
  afterAll(() => device?.destroy());

  for (const [name, make] of VARIANTS) {
    it(`${name} on the device ends where host Adam ends after ${STEPS} steps`, async () => {
      const expected = await stepWithExactGradients('cpu', make);
      device.resetLaunchStats();
      const actual = await stepWithExactGradients(device, make);
      const fused = name.includes('amsgrad') ? 'amsgradStep' : 'adamStep';
      expect(device.launchStats().byKernel[fused]).toBe(STEPS * SHAPES.length);
      for (let i = 0; i < expected.length; i++)
        expect(firstMismatch(actual[i], expected[i], ADAM_TOLERANCE), `parameter ${i}`).toBeUndefined();
    });
  }

  it('a product reads either operand transposed, equal to the host matmul of the transposes', async () => {
    const random = new Random(4);
    const [m, n, k] = [9, 6, 11];
    for (const transposeA of [false, true])
      for (const transposeB of [false, true]) {
        const a = tensor(uniformArray(random, m * k, -1, 1), transposeA ? [k, m] : [m, k]);
        const b = tensor(uniformArray(random, k * n, -1, 1), transposeB ? [n, k] : [k, n]);
        const expected = matmul(transposeA ? transpose(a) : a, transposeB ? transpose(b) : b);
        device.resetLaunchStats();
        const product = deviceProduct(await to(a, device), await to(b, device), transposeA, transposeB);
        expect(device.launchStats()).toEqual({ launches: 1, byKernel: { matmul: 1 } });
        expect(product.shape).toEqual([m, n]);
        const mismatch = firstMismatch(
          toArray(await to(product, 'cpu')),
          toArray(expected),
          TOLERANCES.f32.matmul,
        );
        expect(mismatch, `transposeA ${transposeA}, transposeB ${transposeB}`).toBeUndefined();
      }
  });

  it('an MLP step launches one adamStep per parameter, gathers only for the bias sums, and trains as on the host', async () => {
    const hostModel = mlp(5);
    const hostOptimizer = new Adam(hostModel.parameters(), { learningRate: 1e-2, simd: false });
    const model = await mlp(5).to(device);
    const optimizer = new Adam(model.parameters(), { learningRate: 1e-2 });
    const hostRandom = new Random(8);
    const random = new Random(8);
    const hostLosses: number[] = [];
    const losses: number[] = [];
    for (let step = 0; step < 3; step++) {
      const input = tensor(uniformArray(hostRandom, 5 * 12, -1, 1), [5, 3, 4]);
      const labels = Int32Array.from({ length: 5 }, () => Math.floor(hostRandom.next() * 4));
      hostOptimizer.zeroGrad();
      const loss = crossEntropy(hostModel.forward(input), labels);
      backward(loss);
      hostOptimizer.step();
      hostLosses.push(toArray(loss)[0]);
      disposeGraph(loss);
      if (step === 2) device.resetLaunchStats();
      losses.push(await trainingStep(model, optimizer, device, random));
    }
    const { launches, byKernel } = device.launchStats();
    // Before the fused step and the transpose flags this step launched 79 kernels: 13 per
    // parameter for Adam, and a gather (binary.left) per weight transpose. Each bias gradient
    // is a compensated sum over rows: a gather of g column-major, then a row reduction (it was
    // a float32 matmul with a row of ones, which drifts over many rows).
    expect(byKernel.adamStep).toBe(4);
    expect(byKernel['binary.left']).toBe(2);
    expect(byKernel['reduce.sum']).toBeGreaterThanOrEqual(2);
    expect(byKernel['unary.sqrt']).toBeUndefined();
    expect(byKernel.matmul).toBe(5);
    expect(launches).toBe(29);
    expect(firstMismatch(losses, hostLosses, { rtol: 1e-4, atol: 1e-6 })).toBeUndefined();
  });

  it('SGD with momentum is one sgdStep launch per parameter; without, no fused launch', async () => {
    const model = await mlp(6).to(device);
    const optimizer = new SGD(model.parameters(), { learningRate: 0.1, momentum: 0.9 });
    const random = new Random(2);
    await trainingStep(model, optimizer, device, random);
    device.resetLaunchStats();
    await trainingStep(model, optimizer, device, random);
    const { byKernel } = device.launchStats();
    expect(byKernel.sgdStep).toBe(4);
    expect(byKernel.adamStep).toBeUndefined();
    const plain = new SGD(model.parameters(), { learningRate: 0.1 });
    device.resetLaunchStats();
    await trainingStep(model, plain, device, random);
    expect(device.launchStats().byKernel.sgdStep).toBeUndefined();
  });
}

describe('device optimizer and products on the cpu reference device', () => {
  suite(() => openDevice('cpu'));
});

const webgpu = await probeWebGpu();

describe.skipIf(!webgpu.available)(`device optimizer and products on webgpu (${webgpu.reason})`, () => {
  suite(() => openDevice('webgpu'));
});
