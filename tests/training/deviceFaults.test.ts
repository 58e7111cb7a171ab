/**
 * Faults that come from the device. On a GPU-layer device (the cpu reference backend here, the
 * same path WebGPU and CUDA take) the seeded fault plan arms the device's fault hook, and one
 * launch of the step fails the way a real one does: the backend raises `DeviceError`,
 * `OutOfDeviceMemory` or, for a hung kernel, the watchdog's `KernelTimeout`. Training receives
 * that typed error and recovers; each test asserts where the error came from (the device, the
 * kernel, the error's class) from the recovery it logged. A real out-of-memory (the device
 * pool's limit, `deviceMemoryLimitBytes`) halves the micro-batch.
 *
 * Tolerance of losses against a fault-free run: 1e-4 relative (device kernels sum in their own
 * order, micro-batches in another; replayed steps are bit-identical).
 */
import { describe, expect, it } from 'vitest';
import { type Recovery, type TrainingConfig, train } from '../../src/ml/training/index.js';
import { smallRun } from './helpers.js';

const LOSS_RTOL = 1e-4;

async function run(
  overrides: Partial<TrainingConfig>,
): Promise<{ losses: number[]; recoveries: Recovery[]; result: Awaited<ReturnType<typeof train>> }> {
  const losses: number[] = [];
  const result = await train(
    await smallRun({
      epochs: 1,
      maxSteps: 6,
      cpuDevice: 'reference',
      onStep: (step) => losses.push(step.loss),
      ...overrides,
    }),
  );
  return { losses, recoveries: [...result.recoveries], result };
}

function expectClose(actual: readonly number[], expected: readonly number[]): void {
  expect(actual.length).toBe(expected.length);
  for (let index = 0; index < expected.length; index++)
    expect(Math.abs(actual[index] - expected[index])).toBeLessThanOrEqual(
      LOSS_RTOL * Math.abs(expected[index]),
    );
}

describe('faults from the device, recovered from', () => {
  // Seeds whose plan strikes the fused optimizer launch (adamStep), the last launches of a step.
  const ON_THE_OPTIMIZER_STEP = [
    [
      'DeviceError',
      'gpuErrorRate=0.3,seed=11',
      /^cpu:0 failed \(DeviceError: cpu:0 adamStep: injected device error\)/,
    ],
    [
      'OutOfDeviceMemory',
      'oomRate=0.3,seed=43',
      /after OutOfDeviceMemory: cpu:0 adamStep: out of device memory: .*\(injected\)$/,
    ],
    [
      'KernelTimeout',
      'kernelTimeoutRate=0.3,seed=1',
      /^cpu:0 failed \(KernelTimeout: cpu:0 adamStep: kernel did not finish within its 50 ms deadline\)/,
    ],
  ] as const;
  for (const [kind, faults, detail] of ON_THE_OPTIMIZER_STEP) {
    it(`a ${kind} from the fused adamStep launch is recovered from: the losses of the clean run`, async () => {
      const clean = await run({ deviceWatchdogMs: 50 });
      const faulty = await run({ faults, deviceWatchdogMs: 50 });
      const struck = faulty.recoveries.filter((recovery) => /adamStep/.test(recovery.detail));
      expect(struck.length, faulty.recoveries.map((recovery) => recovery.detail).join('; ')).toBeGreaterThan(
        0,
      );
      for (const recovery of struck) expect(recovery.detail).toMatch(detail);
      expect(faulty.result.lostSteps).toBe(0);
      expectClose(faulty.losses, clean.losses);
      if (kind !== 'OutOfDeviceMemory') expect(faulty.result.weightsSha256).toBe(clean.result.weightsSha256);
    });
  }

  it('a launch that fails with DeviceError: the device is reopened and the step replays from the snapshot', async () => {
    const clean = await run({});
    const faulty = await run({ faults: 'gpuErrorRate=0.3,seed=3' });
    const errors = faulty.recoveries.filter((recovery) => recovery.cause === 'device_error');
    expect(errors.length).toBeGreaterThan(0);
    for (const error of errors)
      expect(error.detail).toMatch(
        /^cpu:0 failed \(DeviceError: cpu:0 [\w.]+: injected device error\); moved to cpu:0$/,
      );
    expect(faulty.result.tensorBackend).toBe('cpu-reference');
    expect(faulty.result.lostSteps).toBe(0);
    expectClose(faulty.losses, clean.losses);
    expect(faulty.result.weightsSha256).toBe(clean.result.weightsSha256);
  });

  it('an allocation that throws OutOfDeviceMemory halves the micro-batch', async () => {
    const clean = await run({});
    const faulty = await run({ faults: 'oomRate=0.3,seed=4' });
    const outOfMemory = faulty.recoveries.filter((recovery) => recovery.cause === 'out_of_memory');
    expect(outOfMemory.length).toBeGreaterThan(0);
    for (const recovery of outOfMemory)
      expect(recovery.detail).toMatch(
        /^micro-batch \d+ x \d+ accumulated \(batch 16\) after OutOfDeviceMemory: cpu:0 [\w.]+: out of device memory: .*\(injected\)$/,
      );
    expect(faulty.result.lostSteps).toBe(0);
    expectClose(faulty.losses, clean.losses);
  });

  it('a kernel that runs past the watchdog is a KernelTimeout at the read-back', async () => {
    const clean = await run({});
    const faulty = await run({ faults: 'kernelTimeoutRate=0.3,seed=5', deviceWatchdogMs: 50 });
    const timeouts = faulty.recoveries.filter((recovery) => recovery.cause === 'device_error');
    expect(timeouts.length).toBeGreaterThan(0);
    for (const recovery of timeouts)
      expect(recovery.detail).toMatch(
        /^cpu:0 failed \(KernelTimeout: cpu:0 [\w.]+: kernel did not finish within its 50 ms deadline\); moved to cpu:0$/,
      );
    expect(faulty.result.lostSteps).toBe(0);
    expectClose(faulty.losses, clean.losses);
  });

  it('a real OutOfDeviceMemory under a small --device-memory-limit halves the micro-batch', async () => {
    // The CNN at batch 32 needs more than 24 MiB of device memory at once, at 16 less.
    const config = { model: 'cnn' as const, optimizer: 'sgd' as const, batchSize: 32, maxSteps: 2 };
    const host = await run({ ...config, cpuDevice: 'host' });
    const limited = await run({
      ...config,
      deviceMemoryLimitBytes: 24 * 2 ** 20,
      microBatchRegrowSteps: 1000,
    });
    expect(limited.recoveries[0]?.cause).toBe('out_of_memory');
    // A real one: the pool's allocation failed, not an injected launch.
    expect(limited.recoveries[0].detail).toMatch(
      /^micro-batch 16 x 2 accumulated \(batch 32\) after OutOfDeviceMemory: cpu:0 allocate: out of device memory: requested \d+ bytes, \d+ available \(memory limit\)$/,
    );
    expect(limited.result.finalMicroBatchSize).toBe(16);
    expect(limited.result.lostSteps).toBe(0);
    expectClose(limited.losses, host.losses);
  }, 60_000);
});
