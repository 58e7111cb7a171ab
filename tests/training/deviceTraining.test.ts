/**
 * `train()` on the device the config names: the cpu reference backend (`cpuDevice:
 * 'reference'`) and WebGPU (SwiftShader here and in CI) run the whole step on the device, and
 * their losses stay within a stated tolerance of host training for the same seed. Tolerance:
 * the kernels sum in other orders than the host's BLAS, so each step's loss may differ by float32
 * rounding that grows with the steps; over these few steps 1e-4 relative bounds it (seen: 2e-7).
 */
import { describe, expect, it } from 'vitest';
import { detectDevices } from '../../src/gpu/detect.js';
import type { DeviceInfo } from '../../src/gpu/types.js';
import { flatten, Linear, Module, max, sub, type Tensor } from '../../src/ml/index.js';
import type { TrainingConfig, TrainingResult } from '../../src/ml/training/index.js';
import { isTrainingError, train } from '../../src/ml/training/index.js';
import { smallRun } from './helpers.js';

/** Relative tolerance of a device run's per-step loss against host training. */
const DEVICE_LOSS_RTOL = 1e-4;

async function stepLosses(
  overrides: Partial<TrainingConfig>,
): Promise<{ losses: number[]; result: TrainingResult }> {
  const losses: number[] = [];
  const result = await train(
    await smallRun({ epochs: 1, maxSteps: 6, onStep: (step) => losses.push(step.loss), ...overrides }),
  );
  return { losses, result };
}

function expectClose(actual: readonly number[], expected: readonly number[], rtol: number): void {
  expect(actual.length).toBe(expected.length);
  for (let index = 0; index < expected.length; index++)
    expect(Math.abs(actual[index] - expected[index])).toBeLessThanOrEqual(rtol * Math.abs(expected[index]));
}

const detected = await detectDevices();
const webgpu: DeviceInfo | undefined = detected.devices.find((device) => device.backend === 'webgpu');

describe('train() on a device: the MLP', () => {
  it('runs on the cpu reference device with the host losses, and says where the math ran', async () => {
    const host = await stepLosses({});
    expect(host.result.tensorBackend).toBe('cpu');
    const reference = await stepLosses({ cpuDevice: 'reference' });
    expect(reference.result.tensorBackend).toBe('cpu-reference');
    expectClose(reference.losses, host.losses, DEVICE_LOSS_RTOL);
    // The snapshot copied the device buffers back: the final weights agree with the host's too.
    expect(reference.result.finalTestAccuracy).toBeCloseTo(host.result.finalTestAccuracy, 2);
    expect(reference.result.lostSteps).toBe(0);
  });

  it.skipIf(webgpu === undefined)(
    'runs on WebGPU with the host losses',
    async () => {
      const host = await stepLosses({ maxSteps: 3 });
      const gpu = await stepLosses({ maxSteps: 3, device: webgpu!.id, devices: detected.devices });
      expect(gpu.result.tensorBackend).toBe('webgpu');
      expect(gpu.result.devicesUsed).toEqual([webgpu!.id]);
      expectClose(gpu.losses, host.losses, DEVICE_LOSS_RTOL);
    },
    60_000,
  );
});

describe('train() on a device: the CNN (conv2d and max pooling, forward and backward, on the device)', () => {
  it('runs on the cpu reference device with the host losses', async () => {
    const run = { model: 'cnn' as const, batchSize: 8, maxSteps: 3 };
    const host = await stepLosses(run);
    const reference = await stepLosses({ ...run, cpuDevice: 'reference' });
    expect(reference.result.tensorBackend).toBe('cpu-reference');
    expectClose(reference.losses, host.losses, DEVICE_LOSS_RTOL);
  }, 60_000);

  it.skipIf(webgpu === undefined)(
    'runs on WebGPU with the host losses',
    async () => {
      const run = { model: 'cnn' as const, batchSize: 4, maxSteps: 2 };
      const host = await stepLosses(run);
      const gpu = await stepLosses({ ...run, device: webgpu!.id, devices: detected.devices });
      expect(gpu.result.tensorBackend).toBe('webgpu');
      expectClose(gpu.losses, host.losses, DEVICE_LOSS_RTOL);
    },
    120_000,
  );
});

/** Logits shifted by their largest value: `max` has no gradient on a device. */
class ShiftedLinear extends Module {
  readonly linear: Linear;
  constructor(inFeatures: number, classes: number) {
    super();
    this.linear = new Linear(inFeatures, classes);
  }
  forward(x: Tensor): Tensor {
    const logits = this.linear.forward(flatten(x));
    return sub(logits, max(logits));
  }
}

describe('train() on a device: a model with an op the device does not run', () => {
  it('fails at once with the reason and the way out, not after a restart per attempt', async () => {
    const recoveries: unknown[] = [];
    const model = () => new ShiftedLinear(28 * 28, 10);
    const host = await stepLosses({ model, maxSteps: 2 });
    expect(host.result.tensorBackend).toBe('cpu');
    const failure = await stepLosses({
      model,
      cpuDevice: 'reference',
      onRecovery: (recovery) => recoveries.push(recovery),
    }).catch((error: unknown) => error);
    expect(isTrainingError(failure, 'unavailable_on_device')).toBe(true);
    expect(String(failure)).toMatch(
      /the model uses an op its device does not run yet \(max has no gradient on cpu:0 yet.*\); train this model on the CPU/,
    );
    expect(recoveries).toEqual([]);
  });
});

describe('a device move', () => {
  it.skipIf(webgpu === undefined)(
    'carries weights, optimizer state and loader position from WebGPU to the host: the losses of a run without a move',
    async () => {
      const run = { maxSteps: 5 };
      const stay = await stepLosses(run);
      const moved = await stepLosses({
        ...run,
        device: webgpu!.id,
        devices: detected.devices,
        moveDevice: { atStep: 2, device: 'cpu:0' },
      });
      expect(moved.result.devicesUsed).toEqual([webgpu!.id, 'cpu:0']);
      expect(moved.result.tensorBackend).toBe('cpu');
      expect(moved.result.lostSteps).toBe(0);
      expect(moved.result.recoveries).toEqual([]);
      expectClose(moved.losses, stay.losses, DEVICE_LOSS_RTOL);
      expect(moved.result.finalTestAccuracy).toBeCloseTo(stay.result.finalTestAccuracy, 2);
    },
    60_000,
  );

  it('a move to a device not in the list is refused, naming the devices', async () => {
    await expect(stepLosses({ moveDevice: { atStep: 2, device: 'cuda:3' } })).rejects.toThrow(
      /moveDevice.device = cuda:3: not one of the devices \(cpu:0\)/,
    );
  });
});
