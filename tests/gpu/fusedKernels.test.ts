/**
 * The fused optimizer step and the transposed matmul of the GPU layer, on the cpu reference
 * backend (against references written independently of src/gpu) and on WebGPU (SwiftShader
 * here, against the cpu reference). CUDA runs the same cases in cuda.test.ts where a device is
 * present. Also: the new launch gets the seeded device faults every launch gets (a device
 * error, an out-of-memory, a hung kernel the watchdog reports), and the launch statistics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import { Random } from '../../src/actor/Random.js';
import {
  type Device,
  DeviceError,
  type FaultDecision,
  firstMismatch,
  isDeviceError,
  isKernelTimeout,
  isOutOfDeviceMemory,
  openDevice,
  TOLERANCES,
  type Tolerance,
} from '../../src/gpu/index.js';
import { naiveMatmul } from './naive.js';
import {
  ADAGRAD_VARIANTS,
  ADAM_VARIANTS,
  type AdamVariant,
  adagradRate,
  adamScalars,
  expectSameSteps,
  RMSPROP_VARIANTS,
  runAdagradSteps,
  runAdamSteps,
  runCase,
  runRmspropSteps,
  runSgdSteps,
  SGD_VARIANTS,
  transposedMatmulCase,
  transposedMatmulCases,
  uniform,
} from './opCases.js';
import { probeWebGpu } from './support.js';

/**
 * The fused step against the reference: the cpu kernel evaluates in f64 and rounds each stored
 * value to f32; a GPU evaluates in f32 throughout (sqrt and division within 1-3 ulp). Over five
 * steps the parameters, moments and second moments agree to this.
 */
const ADAM_TOLERANCE: Tolerance = { rtol: 1e-5, atol: 1e-7 };
/**
 * The momentum buffer sums gradients of up to 2 in size over five steps (values up to about 8),
 * so where the sum cancels to near 0 the f32 rounding of its terms (about 5e-7) is all that is
 * left: an absolute tolerance at that scale, not Adam's (whose steps are normalised).
 */
const SGD_TOLERANCE = { rtol: 1e-5, atol: 2e-6 };
/** Adagrad's and RMSprop's f32 steps against the float64 definition. */
const ADAGRAD_TOLERANCE = { rtol: 1e-5, atol: 1e-6 };

/** Adam's update written out from its definition (PyTorch's formulation), in f64, rounding each stored value. */
function naiveAdam(p0: Float32Array, gradients: readonly Float32Array[], variant: AdamVariant): Float32Array {
  const count = p0.length;
  const p = Float32Array.from(p0);
  const m = new Float32Array(count);
  const v = new Float32Array(count);
  const vMax = new Float32Array(count);
  const [beta1, beta2, epsilon] = [0.9, variant.beta2 ?? 0.999, 1e-8];
  gradients.forEach((gradient, index) => {
    const t = index + 1;
    for (let i = 0; i < count; i++) {
      if (variant.decoupled) p[i] = p[i] * (1 - variant.learningRate * variant.weightDecay);
      const g = gradient[i] + (variant.decoupled ? 0 : variant.weightDecay * p[i]);
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      vMax[i] = Math.max(vMax[i], v[i]);
      const mHat = m[i] / (1 - beta1 ** t);
      const vHat = (variant.amsgrad ? vMax[i] : v[i]) / (1 - beta2 ** t);
      p[i] -= (variant.learningRate * mHat) / (Math.sqrt(vHat) + epsilon);
    }
  });
  const out = new Float32Array((variant.amsgrad ? 4 : 3) * count);
  out.set(p);
  out.set(m, count);
  out.set(v, 2 * count);
  if (variant.amsgrad) out.set(vMax, 3 * count);
  return out;
}

function transpose(values: Float32Array, rows: number, columns: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < columns; c++) out[c * rows + r] = values[r * columns + c];
  return out;
}

describe('the cpu reference backend', () => {
  let device: Device;
  beforeAll(async () => {
    device = await openDevice('cpu');
  });
  afterAll(() => device?.destroy());

  for (const variant of ADAM_VARIANTS) {
    it(`adamStep is Adam's definition: ${variant.name}, five steps`, async () => {
      const count = 257;
      const actual = await runAdamSteps(device, 11, count, 5, variant);
      // The same seeded draws as runAdamSteps: the parameters, then one gradient per step.
      const random = new Random(11);
      const p0 = uniform(random, count, -1, 1);
      const gradients = Array.from({ length: 5 }, () => uniform(random, count, -2, 2));
      const expected = naiveAdam(p0, gradients, variant);
      expect(firstMismatch(actual, expected, ADAM_TOLERANCE)).toBeUndefined();
      // The step moved every parameter (a kernel that wrote nothing would fail here).
      for (let i = 0; i < count; i++) expect(actual[i]).not.toBe(p0[i]);
    });
  }

  for (const variant of SGD_VARIANTS) {
    it(`sgdStep is PyTorch's SGD: ${variant.name}, five steps`, async () => {
      const count = 257;
      const actual = await runSgdSteps(device, 12, count, 5, variant);
      // The same seeded draws as runSgdSteps: the parameters, the stale buffer, the gradients.
      const random = new Random(12);
      const p = Float64Array.from(uniform(random, count, -1, 1));
      uniform(random, count, -1, 1);
      const b = new Float64Array(count);
      for (let t = 1; t <= 5; t++) {
        const gradient = uniform(random, count, -2, 2);
        for (let i = 0; i < count; i++) {
          const g = gradient[i] + variant.weightDecay * p[i];
          b[i] = t === 1 ? g : variant.momentum * b[i] + (1 - variant.dampening) * g;
          p[i] -= variant.learningRate * (variant.nesterov ? g + variant.momentum * b[i] : b[i]);
        }
      }
      const expected = new Float32Array(2 * count);
      expected.set(p);
      expected.set(b, count);
      expect(firstMismatch(actual, expected, SGD_TOLERANCE)).toBeUndefined();
    });
  }

  for (const variant of ADAGRAD_VARIANTS) {
    it(`adagradStep is PyTorch's Adagrad: ${variant.name}, five steps`, async () => {
      const count = 257;
      const actual = await runAdagradSteps(device, 13, count, 5, variant);
      // The same seeded draws as runAdagradSteps: the parameters, then the gradients.
      const random = new Random(13);
      const p = Float64Array.from(uniform(random, count, -1, 1));
      const s = new Float64Array(count).fill(variant.initialAccumulator);
      for (let t = 1; t <= 5; t++) {
        const gradient = uniform(random, count, -2, 2);
        for (let i = 0; i < count; i++) {
          const g = gradient[i] + variant.weightDecay * p[i];
          s[i] += g * g;
          p[i] -= (adagradRate(variant, t) * g) / (Math.sqrt(s[i]) + 1e-10);
        }
      }
      const expected = new Float32Array(2 * count);
      expected.set(p);
      expected.set(s, count);
      expect(firstMismatch(actual, expected, ADAGRAD_TOLERANCE)).toBeUndefined();
    });
  }

  for (const variant of RMSPROP_VARIANTS) {
    it(`rmspropStep is PyTorch's plain RMSprop: ${variant.name}, five steps`, async () => {
      const count = 257;
      const actual = await runRmspropSteps(device, 14, count, 5, variant);
      const random = new Random(14);
      const p = Float64Array.from(uniform(random, count, -1, 1));
      const v = new Float64Array(count);
      for (let t = 1; t <= 5; t++) {
        const gradient = uniform(random, count, -2, 2);
        for (let i = 0; i < count; i++) {
          const g = gradient[i] + variant.weightDecay * p[i];
          v[i] = variant.alpha * v[i] + (1 - variant.alpha) * g * g;
          p[i] -= (variant.learningRate * g) / (Math.sqrt(v[i]) + variant.epsilon);
        }
      }
      const expected = new Float32Array(2 * count);
      expected.set(p);
      expected.set(v, count);
      expect(firstMismatch(actual, expected, ADAGRAD_TOLERANCE)).toBeUndefined();
    });
  }

  it('rmspropStep checks its buffers and scalars, and is one launch', () => {
    const buffers = [1, 2, 3].map(() => device.upload(new Float32Array(8)));
    const [p, g, v] = buffers;
    const step = RMSPROP_VARIANTS[0];
    expect(() => device.rmspropStep(p, p, v, step)).toThrow(
      /cpu:0 rmspropStep: parameter and gradient are the same buffer/,
    );
    expect(() => device.rmspropStep(p, g, v, { ...step, alpha: Number.NaN })).toThrow(
      /alpha must be a finite number, got NaN/,
    );
    device.resetLaunchStats();
    device.rmspropStep(p, g, v, step);
    expect(device.launchStats()).toEqual({ launches: 1, byKernel: { rmspropStep: 1 } });
    for (const buffer of buffers) buffer.release();
  });

  it('adagradStep checks its buffers and scalars, and is one launch', () => {
    const buffers = [1, 2, 3].map(() => device.upload(new Float32Array(8)));
    const [p, g, s] = buffers;
    const step = { rate: 0.1, weightDecay: 0, epsilon: 1e-10 };
    expect(() => device.adagradStep(p, g, g, step)).toThrow(
      /cpu:0 adagradStep: gradient and sumOfSquares are the same buffer/,
    );
    const short = device.upload(new Float32Array(4));
    expect(() => device.adagradStep(p, g, short, step)).toThrow(/sumOfSquares holds 4 elements, needs 8/);
    expect(() => device.adagradStep(p, g, s, { ...step, rate: Number.POSITIVE_INFINITY })).toThrow(
      /rate must be a finite number, got Infinity/,
    );
    device.resetLaunchStats();
    device.adagradStep(p, g, s, step);
    expect(device.launchStats()).toEqual({ launches: 1, byKernel: { adagradStep: 1 } });
    for (const buffer of [...buffers, short]) buffer.release();
  });

  it('sgdStep checks its buffers and options, naming what is wrong', () => {
    const buffers = [1, 2, 3].map(() => device.upload(new Float32Array(8)));
    const [p, g, b] = buffers;
    const step = { ...SGD_VARIANTS[0], first: true };
    expect(() => device.sgdStep(p, g, g, step)).toThrow(
      /cpu:0 sgdStep: gradient and momentumBuffer are the same buffer/,
    );
    const short = device.upload(new Float32Array(4));
    expect(() => device.sgdStep(p, g, short, step)).toThrow(/momentumBuffer holds 4 elements, needs 8/);
    expect(() => device.sgdStep(p, g, b, { ...step, momentum: 0 })).toThrow(/momentum must be > 0/);
    expect(() => device.sgdStep(p, g, b, { ...step, learningRate: Number.NaN })).toThrow(
      /learningRate must be a finite number/,
    );
    device.resetLaunchStats();
    device.sgdStep(p, g, b, step);
    expect(device.launchStats()).toEqual({ launches: 1, byKernel: { sgdStep: 1 } });
    for (const buffer of [...buffers, short]) buffer.release();
  });

  it('adamStep checks its buffers and scalars, naming what is wrong', () => {
    const buffers = [1, 2, 3, 4].map(() => device.upload(new Float32Array(8)));
    const [p, g, m, v] = buffers;
    const step = adamScalars(1, { learningRate: 1e-3, weightDecay: 0, decoupled: false });
    expect(() => device.adamStep(p, g, m, m, step)).toThrow(
      /cpu:0 adamStep: firstMoment and secondMoment are the same buffer/,
    );
    expect(() => device.adamStep(p, p, m, v, step)).toThrow(/parameter and gradient are the same buffer/);
    const short = device.upload(new Float32Array(4));
    expect(() => device.adamStep(p, g, short, v, step)).toThrow(/firstMoment holds 4 elements, needs 8/);
    expect(() => device.adamStep(p, g, m, v, { ...step, beta1: 1 })).toThrow(/beta1 must be in \[0, 1\)/);
    expect(() => device.adamStep(p, g, m, v, { ...step, epsilon: 0 })).toThrow(/epsilon must be > 0/);
    expect(() => device.adamStep(p, g, m, v, { ...step, stepSize: Number.NaN })).toThrow(
      /stepSize must be a finite number/,
    );
    expect(() => device.adamStep(p, g, m, v, step, { count: 0 })).toThrow(DeviceError);
    for (const buffer of [...buffers, short]) buffer.release();
  });

  it('matmul reads either operand transposed, as BLAS does', async () => {
    const random = new Random(3);
    const [m, n, k] = [5, 7, 3];
    for (const transposeA of [false, true])
      for (const transposeB of [false, true]) {
        const opCase = transposedMatmulCase(random, m, n, k, transposeA, transposeB);
        const [a, b] = opCase.inputs;
        // Stored transposed: a is (k, m), b is (n, k); undo that for the plain product.
        const plainA = transposeA ? transpose(a, k, m) : a;
        const plainB = transposeB ? transpose(b, n, k) : b;
        const expected = naiveMatmul(plainA, plainB, m, n, k);
        expect(
          firstMismatch(await runCase(device, opCase), expected, TOLERANCES.f32.matmul),
          opCase.name,
        ).toBeUndefined();
      }
    expect(() =>
      device.matmul(device.allocate(4), device.allocate(4), device.allocate(4), 1, 1, 1, {
        transposeA: 'yes' as unknown as boolean,
      }),
    ).toThrow(/transposeA must be a boolean, got yes/);
  });

  it('launchStats counts the launches by kernel name; reset starts again', () => {
    device.resetLaunchStats();
    const [p, g, m, v] = [1, 2, 3, 4].map(() => device.upload(new Float32Array(4)));
    const step = adamScalars(1, { learningRate: 1e-3, weightDecay: 0, decoupled: false });
    device.adamStep(p, g, m, v, step);
    device.adamStep(p, g, m, v, step);
    device.matmul(p, g, m, 2, 2, 1, { transposeB: true });
    expect(device.launchStats()).toEqual({ launches: 3, byKernel: { adamStep: 2, matmul: 1 } });
    device.resetLaunchStats();
    expect(device.launchStats()).toEqual({ launches: 0, byKernel: {} });
    for (const buffer of [p, g, m, v]) buffer.release();
  });
});

describe('the seeded device faults reach the fused step as every launch', () => {
  const hookFor = (decision: FaultDecision) => ({
    beforeLaunch: (_deviceId: string, kernel: string): FaultDecision =>
      kernel === 'adamStep' ? decision : 'ok',
  });

  async function withBuffers(
    decision: FaultDecision,
    body: (device: Device, buffers: ReturnType<Device['upload']>[], clock: SimulatedClock) => Promise<void>,
  ): Promise<void> {
    const clock = new SimulatedClock();
    const device = await openDevice('cpu', { faultHook: hookFor(decision), clock });
    const buffers = [0.5, 0.1, 0, 0].map((value) => device.upload(new Float32Array(4).fill(value)));
    try {
      await body(device, buffers, clock);
    } finally {
      device.destroy();
    }
  }

  const step = adamScalars(1, { learningRate: 0.1, weightDecay: 0, decoupled: false });

  it('a device error: the launch throws DeviceError naming adamStep, and nothing was written', async () => {
    await withBuffers('error', async (device, [p, g, m, v]) => {
      let caught: unknown;
      try {
        device.adamStep(p, g, m, v, step);
      } catch (error) {
        caught = error;
      }
      expect(isDeviceError(caught) && caught.message).toBe('cpu:0 adamStep: injected device error');
      expect(Array.from(await device.readFloat32(p))).toEqual([0.5, 0.5, 0.5, 0.5]);
    });
  });

  it('an out-of-memory: OutOfDeviceMemory naming adamStep', async () => {
    await withBuffers('oom', async (device, [p, g, m, v]) => {
      expect(() => device.adamStep(p, g, m, v, step)).toThrow(/cpu:0 adamStep: out of device memory/);
      try {
        device.adamStep(p, g, m, v, step);
      } catch (error) {
        expect(isOutOfDeviceMemory(error)).toBe(true);
      }
    });
  });

  it('a hung step: the watchdog reports KernelTimeout for adamStep at the read-back', async () => {
    await withBuffers('timeout', async (device, [p, g, m, v], clock) => {
      device.adamStep(p, g, m, v, step);
      const read = device.readFloat32(p, { deadlineMs: 100 });
      clock.advance(100);
      const error = await read.catch((caught: unknown) => caught);
      expect(isKernelTimeout(error) && error.message).toMatch(
        /^cpu:0 adamStep: kernel did not finish within/,
      );
    });
  });
});

const webgpu = await probeWebGpu();

describe.skipIf(!webgpu.available)(`on webgpu (${webgpu.reason})`, () => {
  let gpu: Device;
  let cpu: Device;
  beforeAll(async () => {
    gpu = await openDevice('webgpu');
    cpu = await openDevice('cpu');
  });
  afterAll(() => {
    gpu?.destroy();
    cpu?.destroy();
  });

  it('adamStep matches the cpu reference in every weight-decay variant (vec4 and ragged counts)', async () => {
    await expectSameSteps(cpu, gpu, ADAM_VARIANTS, (d, n, v) => runAdamSteps(d, 5, n, 5, v), ADAM_TOLERANCE);
  });

  it('adagradStep matches the cpu reference in every variant (vec4 and ragged counts)', async () => {
    await expectSameSteps(
      cpu,
      gpu,
      ADAGRAD_VARIANTS,
      (d, n, v) => runAdagradSteps(d, 7, n, 5, v),
      ADAGRAD_TOLERANCE,
    );
  });

  it('rmspropStep matches the cpu reference in every variant (vec4 and ragged counts)', async () => {
    await expectSameSteps(
      cpu,
      gpu,
      RMSPROP_VARIANTS,
      (d, n, v) => runRmspropSteps(d, 8, n, 5, v),
      ADAGRAD_TOLERANCE,
    );
  });

  it('sgdStep matches the cpu reference in every momentum variant (vec4 and ragged counts)', async () => {
    await expectSameSteps(cpu, gpu, SGD_VARIANTS, (d, n, v) => runSgdSteps(d, 6, n, 5, v), SGD_TOLERANCE);
  });

  it('matmul with each transpose flag matches the cpu reference', async () => {
    for (const opCase of transposedMatmulCases(new Random(8))) {
      const expected = await runCase(cpu, opCase);
      expect(
        firstMismatch(await runCase(gpu, opCase), expected, opCase.tolerance),
        opCase.name,
      ).toBeUndefined();
    }
  });
});
