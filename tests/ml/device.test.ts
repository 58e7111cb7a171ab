/**
 * Tensors on GPU-layer devices: every op that dispatches to a device kernel gives the CPU op's
 * values on fresh seeded random inputs, within the GPU layer's tolerances, on the `cpu`
 * reference device and on real WebGPU (SwiftShader here; skipped, saying why, without an
 * adapter). Also `to` round trips, buffer lifetimes, and the errors for mixed devices,
 * unsupported ops, `.data` on a device tensor and autograd on one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import { Random } from '../../src/actor/Random.js';
import {
  type FaultDecision,
  firstMismatch,
  type Device as GpuDevice,
  isDeviceError,
  KernelTimeout,
  openDevice,
  TOLERANCES,
  type Tolerance,
} from '../../src/gpu/index.js';
import {
  add,
  argmax,
  avgPool2d,
  causalSoftmax,
  conv2d,
  crossEntropy,
  DEVICE_OP_NAMES,
  type DeviceOpName,
  dispose,
  div,
  dropout,
  embedding,
  exp,
  flatten,
  gelu,
  isTensorError,
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
  permute,
  pow,
  relu,
  reshape,
  sigmoid,
  slice,
  softmax,
  sqrt,
  sub,
  sum,
  type Tensor,
  tanh,
  tensor,
  to,
  toArray,
  transpose,
  unsqueeze,
} from '../../src/ml/index.js';
import { probeCuda, probeWebGpu } from '../gpu/support.js';
import { type Input, inputMaker, uniformArray } from './helpers.js';

interface DeviceCase {
  readonly name: string;
  /** The device ops it exercises (checked to cover `DEVICE_OP_NAMES`). */
  readonly ops: readonly DeviceOpName[];
  readonly tolerance: Tolerance;
  readonly inputs: readonly Input[];
  run(inputs: readonly Tensor[]): Tensor;
}

const { elementwise, reduction, matmul: product } = TOLERANCES.f32;

/** Small shapes: SwiftShader runs every kernel on the CPU. */
function deviceCases(seed: number): DeviceCase[] {
  const random = new Random(seed);
  const { values, nonzero, distinct } = inputMaker(random);
  const binaryCases = (
    [
      ['add', add],
      ['sub', sub],
      ['mul', mul],
      ['div', div],
    ] as const
  ).flatMap(([op, apply]): DeviceCase[] => {
    const right = (shape: number[]): Input => (op === 'div' ? nonzero(shape) : values(shape));
    return [
      {
        name: `${op} same shape`,
        ops: [op],
        tolerance: elementwise,
        inputs: [values([3, 5]), right([3, 5])],
        run: ([a, b]) => apply(a, b),
      },
      {
        name: `${op} broadcast [2, 3, 4] with [3, 1]`,
        ops: [op],
        tolerance: elementwise,
        inputs: [values([2, 3, 4]), right([3, 1])],
        run: ([a, b]) => apply(a, b),
      },
      {
        name: `${op} broadcast [4] with [2, 1, 3, 4]`,
        ops: [op],
        tolerance: elementwise,
        inputs: [values([4]), right([2, 1, 3, 4])],
        run: ([a, b]) => apply(a, b),
      },
      {
        name: `${op} with numbers on either side (rank 5)`,
        ops: [op],
        tolerance: elementwise,
        inputs: [nonzero([2, 1, 2, 3, 2])],
        run: ([a]) => apply(apply(a, 1.5), apply(-0.75, a)),
      },
    ];
  });
  const unaryCases = (
    [
      ['neg', neg, values([4, 7])],
      ['exp', exp, values([4, 7], -4, 4)],
      ['log', log, values([4, 7], 0.05, 5)],
      ['sqrt', sqrt, values([4, 7], 0, 5)],
      ['relu', relu, nonzero([4, 7])],
      ['gelu', gelu, values([6, 9], -5, 5)],
      ['sigmoid', sigmoid, values([4, 7], -6, 6)],
      ['tanh', tanh, values([4, 7], -4, 4)],
    ] as const
  ).map(
    ([op, apply, input]): DeviceCase => ({
      name: op,
      ops: [op],
      tolerance: elementwise,
      inputs: [input],
      run: ([x]) => apply(x),
    }),
  );
  return [
    ...binaryCases,
    {
      name: 'pow tensor-tensor (positive bases) and tensor-number',
      ops: ['pow'],
      tolerance: elementwise,
      inputs: [values([3, 4], 0.1, 3), values([4], -2, 2)],
      run: ([a, b]) => add(pow(a, b), pow(a, 2.5)),
    },
    ...unaryCases,
    {
      name: 'sum over the last axis, kept, and over all axes',
      ops: ['sum'],
      tolerance: reduction,
      inputs: [values([2, 3, 17])],
      run: ([x]) => add(sum(x, -1, { keepDims: true }), sum(x)),
    },
    {
      name: 'max over the last axis ([2]) and over all axes, kept',
      ops: ['max'],
      tolerance: reduction,
      inputs: [distinct([3, 2, 9])],
      run: ([x]) => add(max(x, [2]), max(x, undefined, { keepDims: true })),
    },
    {
      name: 'softmax over the last axis',
      ops: ['softmax'],
      tolerance: reduction,
      inputs: [values([3, 2, 11], -4, 4)],
      run: ([x]) => softmax(x),
    },
    {
      name: 'layerNorm over the last axis',
      ops: ['layerNorm'],
      tolerance: reduction,
      inputs: [values([2, 3, 10]), values([10]), values([10])],
      run: ([x, gamma, beta]) => layerNorm(x, gamma, beta, 1e-4),
    },
    {
      name: 'matmul 2-d',
      ops: ['matmul'],
      tolerance: product,
      inputs: [values([5, 7]), values([7, 3])],
      run: ([a, b]) => matmul(a, b),
    },
    {
      name: 'matmul batched left operand (..., M, K) @ (K, N)',
      ops: ['matmul'],
      tolerance: product,
      inputs: [values([2, 3, 6]), values([6, 4])],
      run: ([a, b]) => matmul(a, b),
    },
    {
      name: 'matmul of batched operands, the batch broadcast: (2, 3, 4, 5) @ (3, 5, 2) and (4, 5) @ (2, 5, 3)',
      ops: ['matmul'],
      tolerance: product,
      inputs: [values([2, 3, 4, 5]), values([3, 5, 2]), values([4, 5]), values([2, 5, 3])],
      run: ([a, b, c, d]) => add(sum(matmul(a, b)), sum(matmul(c, d))),
    },
    {
      name: 'embedding of repeated indices',
      ops: ['embedding'],
      tolerance: product,
      inputs: [values([6, 4])],
      run: ([weight]) => embedding(weight, Int32Array.of(3, 0, 3, 5), [2, 2]),
    },
    {
      name: 'dropout with a seeded generator (the CPU draws the mask)',
      ops: ['dropout'],
      tolerance: elementwise,
      inputs: [values([3, 8])],
      run: ([x]) => dropout(x, 0.25, new Random(9)),
    },
    {
      name: 'causalSoftmax of (2, 4, 4) scores',
      ops: ['causalSoftmax'],
      tolerance: elementwise,
      inputs: [values([2, 4, 4], -3, 3)],
      run: ([scores]) => causalSoftmax(scores, 0.7),
    },
    {
      name: 'conv2d with bias, padding 1',
      ops: ['conv2d'],
      tolerance: product,
      inputs: [values([2, 3, 6, 5]), values([4, 3, 3, 3]), values([4])],
      run: ([x, weight, bias]) => conv2d(x, weight, bias, { padding: 1 }),
    },
    {
      name: 'conv2d without bias, stride 2',
      ops: ['conv2d'],
      tolerance: product,
      inputs: [values([1, 2, 7, 7]), values([3, 2, 3, 2])],
      run: ([x, weight]) => conv2d(x, weight, null, { stride: 2 }),
    },
    {
      name: 'maxPool2d 3x3 at stride 2 (overlapping windows)',
      ops: ['maxPool2d'],
      tolerance: elementwise,
      inputs: [values([2, 3, 8, 7])],
      run: ([x]) => maxPool2d(x, 3, { stride: 2 }),
    },
    {
      name: 'avgPool2d 2x2',
      ops: ['avgPool2d'],
      tolerance: elementwise,
      inputs: [values([2, 3, 8, 6])],
      run: ([x]) => avgPool2d(x, 2),
    },
    {
      name: 'reshape, flatten and unsqueeze are views',
      ops: ['reshape'],
      tolerance: elementwise,
      inputs: [values([2, 3, 4])],
      run: ([x]) => add(unsqueeze(flatten(x), 0), reshape(x, [1, 2, -1])),
    },
    {
      name: 'sum and mean over leading and middle axes (gathered), mean over all',
      ops: ['sum', 'mean'],
      tolerance: reduction,
      inputs: [values([3, 4, 5])],
      run: ([x]) => add(add(sum(x, [0, 2], { keepDims: true }), mean(x, 1, { keepDims: true })), mean(x)),
    },
    {
      name: 'max over the first axis',
      ops: ['max'],
      tolerance: reduction,
      inputs: [distinct([4, 3, 2])],
      run: ([x]) => max(x, 0),
    },
    {
      name: 'logSoftmax over the last axis',
      ops: ['logSoftmax'],
      tolerance: reduction,
      inputs: [values([3, 2, 11], -4, 4)],
      run: ([x]) => logSoftmax(x),
    },
    {
      name: 'linear with and without bias',
      ops: ['linear'],
      tolerance: product,
      inputs: [values([2, 3, 7]), values([5, 7]), values([5])],
      run: ([x, weight, bias]) => add(linear(x, weight, bias), linear(x, weight)),
    },
    {
      name: 'transpose and permute are gathered copies (rank 5 merges to 4)',
      ops: ['transpose', 'permute'],
      tolerance: elementwise,
      inputs: [values([2, 3, 4]), values([2, 2, 3, 2, 2])],
      run: ([x, y]) =>
        add(
          reshape(permute(x, [2, 0, 1]), [-1, 1]),
          reshape(transpose(permute(y, [0, 1, 4, 2, 3]), 0, 1), [-1, 2]),
        ),
    },
    {
      name: 'crossEntropy (mean and sum) and mseLoss',
      ops: ['crossEntropy', 'mseLoss'],
      tolerance: reduction,
      inputs: [values([6, 5], -3, 3), values([6, 5])],
      run: ([logits, target]) =>
        add(
          add(
            crossEntropy(logits, Int32Array.of(0, 4, 2, 2, 1, 3)),
            crossEntropy(logits, Int32Array.of(1, 1, 0, 4, 3, 2), { reduction: 'sum' }),
          ),
          mseLoss(logits, target),
        ),
    },
    {
      name: 'a small network: linear layer as matmul + bias, gelu, layerNorm, softmax',
      ops: ['matmul', 'add', 'gelu', 'layerNorm', 'softmax'],
      tolerance: product,
      inputs: [values([4, 8]), values([8, 6]), values([6]), values([6]), values([6])],
      run: ([x, weight, bias, gamma, beta]) =>
        softmax(layerNorm(gelu(add(matmul(x, weight), bias)), gamma, beta)),
    },
  ];
}

/** The CPU op's values and the device op's values (read back with `to`), on the same inputs. */
async function expectSameAsCpu(device: GpuDevice, testCase: DeviceCase): Promise<void> {
  const hostInputs = testCase.inputs.map(({ values, shape }) => tensor(values, shape));
  const expected = testCase.run(hostInputs);
  const deviceInputs = await Promise.all(hostInputs.map((input) => to(input, device)));
  const result = testCase.run(deviceInputs);
  expect(result.device, testCase.name).toBe(device);
  const actual = await to(result, 'cpu');
  expect(actual.shape, testCase.name).toEqual(expected.shape);
  const mismatch = firstMismatch(toArray(actual), toArray(expected), testCase.tolerance);
  expect(mismatch, testCase.name).toBeUndefined();
}

/** A fault hook that answers `decisions` in turn, then 'ok'. */
function scriptedFaults(decisions: FaultDecision[]) {
  return { beforeLaunch: (): FaultDecision => decisions.shift() ?? 'ok' };
}

async function caught(work: () => unknown): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

describe('the device op table', () => {
  it('every op in DEVICE_OP_NAMES is compared with the CPU by a case', () => {
    const covered = new Set(deviceCases(1).flatMap((testCase) => testCase.ops));
    expect(DEVICE_OP_NAMES.filter((op) => !covered.has(op))).toEqual([]);
  });
});

describe('tensors on the cpu reference device', () => {
  let device: GpuDevice;

  beforeAll(async () => {
    device = await openDevice('cpu');
  });

  afterAll(() => device?.destroy());

  it('every dispatched op equals the CPU op on fresh random inputs', async () => {
    for (const testCase of deviceCases(20261121)) await expectSameAsCpu(device, testCase);
  });

  it('runs the example of deviceOps.ts', async () => {
    const x = await to(
      tensor([
        [-1, 2],
        [3, -4],
      ]),
      device,
    );
    const y = relu(matmul(x, x));
    expect(toArray(await y.to('cpu'))).toEqual([7, 0, 0, 22]);
  });

  it('to() uploads in logical order, copies back, and returns a tensor already there', async () => {
    const host = transpose(tensor([1, 2, 3, 4, 5, 6], [2, 3]));
    const onDevice = await host.to(device);
    expect(onDevice.device).toBe(device);
    expect(onDevice.deviceBuffer?.deviceId).toBe('cpu:0');
    expect(String(onDevice)).toBe('Tensor(f32, [3, 2], cpu:0)');
    expect(await to(onDevice, device)).toBe(onDevice);
    const back = await onDevice.to('cpu');
    expect(back.device).toBe('cpu');
    expect(back.shape).toEqual([3, 2]);
    expect(toArray(back)).toEqual([1, 4, 2, 5, 3, 6]);
    expect(await to(back, 'cpu')).toBe(back);
  });

  it('to() migrates between devices, leaving the source in place', async () => {
    const other = await openDevice('cpu');
    try {
      const source = await to(tensor([1, -2, 3], [3]), device);
      const moved = await to(source, other);
      expect(moved.device).toBe(other);
      expect(toArray(await to(relu(moved), 'cpu'))).toEqual([1, 0, 3]);
      expect(toArray(await to(source, 'cpu'))).toEqual([1, -2, 3]);
    } finally {
      other.destroy();
    }
  });

  it('reading .data of a device tensor says where it lives and how to read it', async () => {
    const x = await to(tensor([1, 2], [2]), device);
    const error = await caught(() => x.data);
    expect(isTensorError(error)).toBe(true);
    expect(String(error)).toMatch(/lives on cpu:0.*await t\.to\('cpu'\)/);
    expect(() => toArray(x)).toThrow(/lives on cpu:0/);
  });

  it('mixing devices is an error naming both', async () => {
    const other = await openDevice('cpu');
    try {
      const x = await to(tensor([1, 2], [2]), device);
      const y = await to(tensor([3, 4], [2]), other);
      expect(() => add(x, tensor([1, 1], [2]))).toThrow(
        /add: inputs live on different devices, cpu:0 and cpu/,
      );
      expect(() => matmul(tensor([[1, 2]]), reshape(x, [2, 1]))).toThrow(/matmul: .*cpu and cpu:0/);
      expect(() => mul(x, y)).toThrow(/cpu:0 and cpu:0 \(the same device opened twice\)/);
      const mismatch = await caught(() => mul(x, y));
      expect(isTensorError(mismatch) && mismatch.reason).toBe('device_mismatch');
    } finally {
      other.destroy();
    }
  });

  it('an op without a device kernel is an error telling to move the tensor to the CPU', async () => {
    const x = await to(tensor([1, 2, 3, 4, 5, 6], [2, 3]), device);
    const message = (op: string) =>
      new RegExp(`op ${op} is not available on cpu:0 yet; move the tensor to the CPU`);
    expect(() => argmax(x, 1)).toThrow(message('argmax'));
    expect(() => slice(x, 1, 0, 2)).toThrow(message('slice'));
    expect(() => logSoftmax(x, 0)).toThrow(message('logSoftmax over axis 0'));
    expect(() => softmax(x, 0)).toThrow(message('softmax over axis 0'));
    const error = await caught(() => argmax(x, 1));
    expect(isTensorError(error) && error.reason).toBe('unavailable_on_device');
    expect(() => embedding(x, x)).toThrow(message('embedding with indices on a device'));
    const table = await to(tensor(new Float32Array(5000), [5000, 1]), device);
    expect(() => embedding(table, new Int32Array(0))).toThrow(
      /embedding: no indices to look up on a device \(an empty tensor stays on the CPU\)/,
    );
    expect(() => embedding(table, Int32Array.of(5000))).toThrow(/index 5000 at 0 is not in \[0, 5000\)/);
  });

  it('a tensor that needs a gradient does not move; ops without a device gradient refuse at the forward', async () => {
    const parameter = tensor([1, 2], [2], { requiresGrad: true });
    await expect(to(parameter, device)).rejects.toThrow(/cannot move \(the graph would cross devices\)/);
    const x = await to(tensor([1, 2], [2]), device);
    x.requiresGrad = true;
    expect(() => max(x)).toThrow(/max has no gradient on cpu:0 yet/);
    expect(
      toArray(
        await to(
          noGrad(() => max(x)),
          'cpu',
        ),
      ),
    ).toEqual([2]);
  });

  it('dispose gives the buffer back; a reshape view keeps its own reference', async () => {
    const before = device.memoryStats().liveBuffers;
    const x = await to(tensor([1, -2, 3, -4], [4]), device);
    const view = reshape(x, [2, 2]);
    expect(view.deviceBuffer).toBe(x.deviceBuffer);
    dispose(x);
    expect(x.disposed).toBe(true);
    expect(() => relu(x)).toThrow(/relu: an input was disposed/);
    expect(x.deviceBuffer?.released).toBe(false);
    const y = relu(view);
    expect(toArray(await to(y, 'cpu'))).toEqual([1, 0, 3, 0]);
    dispose(view);
    dispose(y);
    expect(x.deviceBuffer?.released).toBe(true);
    expect(device.memoryStats().liveBuffers).toBe(before);
  });

  it('ops enqueue without waiting; a failed launch is reported by to("cpu")', async () => {
    const clock = new SimulatedClock();
    const hung = await openDevice('cpu', {
      clock,
      faultHook: scriptedFaults(['ok', 'timeout']),
      watchdogDeadlineMs: 50,
    });
    try {
      const x = await to(tensor([-1, 2], [2]), hung);
      const y = relu(exp(x)); // exp runs, relu hangs: the op still returns at once
      expect(y.device).toBe(hung);
      const reading = to(y, 'cpu');
      clock.advance(50);
      const error = await caught(() => reading);
      expect(error).toBeInstanceOf(KernelTimeout);
      expect(error).toMatchObject({ kernelName: 'unary.relu', deviceId: 'cpu:0' });
    } finally {
      hung.destroy();
    }
  });

  it('a launch the device refuses throws its DeviceError and frees the output', async () => {
    const faulty = await openDevice('cpu', { faultHook: scriptedFaults(['error']) });
    try {
      const x = await to(tensor([1, 2], [2]), faulty);
      const live = faulty.memoryStats().liveBuffers;
      const error = await caught(() => neg(x));
      expect(isDeviceError(error)).toBe(true);
      expect(String(error)).toMatch(/cpu:0 unary\.neg: injected device error/);
      expect(faulty.memoryStats().liveBuffers).toBe(live);
    } finally {
      faulty.destroy();
    }
  });

  it('rejects bad targets and empty tensors', async () => {
    await expect(to(tensor([1], [1]), 'webgpu' as never)).rejects.toThrow(/expected 'cpu' or a Device/);
    await expect(to(tensor([], [0, 3]), device)).rejects.toThrow(
      /empty tensor \(\[0, 3\]\) cannot live on cpu:0/,
    );
  });
});

/** The op comparison and round trips on a real GPU backend, against the cpu device for migration. */
function gpuSuite(backend: 'webgpu' | 'cuda', seed: number): void {
  let device: GpuDevice;
  let reference: GpuDevice;

  beforeAll(async () => {
    device = await openDevice(backend);
    reference = await openDevice('cpu');
  });

  afterAll(() => {
    device?.destroy();
    reference?.destroy();
  });

  it('every dispatched op equals the CPU op on fresh random inputs', async () => {
    for (const testCase of deviceCases(seed)) await expectSameAsCpu(device, testCase);
  });

  it(`to() round trips and migrates between ${backend} and the cpu device`, async () => {
    const values = uniformArray(new Random(seed), 24);
    const host = tensor(values, [2, 3, 4]);
    const onGpu = await to(host, device);
    expect(onGpu.deviceBuffer?.deviceId).toBe(`${backend}:0`);
    expect(Array.from((await to(onGpu, 'cpu')).data)).toEqual(Array.from(values));
    const onReference = await to(onGpu, reference);
    const back = await to(onReference, device);
    expect(Array.from((await to(back, 'cpu')).data)).toEqual(Array.from(values));
    expect(() => add(onGpu, onReference)).toThrow(new RegExp(`${backend}:0 and cpu:0`));
  });
}

const webgpu = await probeWebGpu();
describe.skipIf(!webgpu.available)(`tensors on webgpu (${webgpu.reason})`, () =>
  gpuSuite('webgpu', 20261122),
);

const cuda = probeCuda();
describe.skipIf(!cuda.available)(`tensors on cuda (${cuda.reason})`, () => gpuSuite('cuda', 20261123));
