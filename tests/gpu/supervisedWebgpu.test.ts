/**
 * Kernel actors on the real WebGPU device (SwiftShader in CI) next to the cpu backend: results
 * within the stated tolerances of the cpu reference, and moves in both directions with the
 * resident arrays uploaded again. Skips only when Dawn finds no adapter, printing why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorSystem, type ExitReason } from '../../src/actor/index.js';
import {
  type Device,
  type FaultDecision,
  firstMismatch,
  type GpuEvent,
  GpuSupervisor,
  type KernelRequest,
  openDevice,
  TOLERANCES,
} from '../../src/gpu/index.js';
import { naiveMatmul } from './naive.js';
import { migrations, randomArray } from './supervised.js';
import { probeWebGpu } from './support.js';

const webgpu = await probeWebGpu();

/** A fault hook switched on and off by the test. */
function switchableHook(): { failing: boolean; beforeLaunch(): FaultDecision } {
  return {
    failing: false,
    beforeLaunch() {
      return this.failing ? 'error' : 'ok';
    },
  };
}

describe.skipIf(!webgpu.available)(`kernel actors on webgpu (${webgpu.reason})`, () => {
  const crashes: ExitReason[] = [];
  const system = new ActorSystem({ onCrash: (_pid, reason) => crashes.push(reason) });
  const gpuHook = switchableHook();
  const events: GpuEvent[] = [];
  let gpuDevice: Device;
  let cpuDevice: Device;
  let gpu: GpuSupervisor;

  const M = 16;
  const N = 8;
  const K = 32;
  const weight = randomArray(11, K * N);
  const input = randomArray(12, M * K);
  const product: KernelRequest = { kind: 'matmul', a: input, b: { resident: 'weight' }, m: M, n: N, k: K };
  const expectedProduct = naiveMatmul(input, weight, M, N, K);

  beforeAll(async () => {
    gpuDevice = await openDevice('webgpu', { faultHook: gpuHook, clock: system.clock });
    cpuDevice = await openDevice('cpu', { clock: system.clock });
    gpu = await GpuSupervisor.start(system, {
      devices: [gpuDevice, cpuDevice],
      name: 'webgpu-test',
      onEvent: (event) => events.push(event),
    });
  });

  afterAll(async () => {
    await gpu?.stop();
    gpuDevice?.destroy();
    cpuDevice?.destroy();
  });

  it('runs launches on webgpu within the tolerances of the cpu reference', async () => {
    await gpu.startKernel({ id: 'w', device: 'webgpu:0', resident: { weight } });
    const result = await gpu.launch('w', product);
    expect(result).toMatchObject({ deviceId: 'webgpu:0', attempts: 1 });
    expect(firstMismatch(result.output, expectedProduct, TOLERANCES.f32.matmul)).toBeUndefined();
    const logits = randomArray(13, 4 * 10, -3, 3);
    const softmax: KernelRequest = { kind: 'softmax', input: logits, rows: 4, columns: 10 };
    const onGpu = await gpu.launch('w', softmax);
    const reference = cpuDevice.upload(logits);
    const referenceOutput = cpuDevice.allocate(logits.byteLength);
    cpuDevice.softmax(reference, referenceOutput, 4, 10);
    const expected = await cpuDevice.readFloat32(referenceOutput);
    expect(firstMismatch(onGpu.output, expected, TOLERANCES.f32.reduction)).toBeUndefined();
    reference.release();
    referenceOutput.release();
  });

  it('moves from webgpu to cpu after its retries, and from cpu to webgpu when cpu turns critical', async () => {
    gpuHook.failing = true;
    const moved = await gpu.launch('w', product);
    gpuHook.failing = false;
    expect(moved).toMatchObject({ deviceId: 'cpu:0', attempts: 5, migrations: 1 });
    expect(firstMismatch(moved.output, expectedProduct, TOLERANCES.f32.matmul)).toBeUndefined();

    await gpu.startKernel({ id: 'c', device: 'cpu:0', resident: { weight } });
    for (let i = 0; i < 11; i++) await gpu.reportDeviceError('cpu:0', 'test error');
    const back = await gpu.launch('c', product);
    expect(back).toMatchObject({ deviceId: 'webgpu:0', attempts: 1 });
    expect(firstMismatch(back.output, expectedProduct, TOLERANCES.f32.matmul)).toBeUndefined();
    expect(migrations(events)).toEqual([
      ['w', 'webgpu:0', 'cpu:0', 'retries_exhausted'],
      ['w', 'cpu:0', 'webgpu:0', 'device_critical'],
      ['c', 'cpu:0', 'webgpu:0', 'device_critical'],
    ]);
    expect(crashes).toEqual([]);
  });
});
