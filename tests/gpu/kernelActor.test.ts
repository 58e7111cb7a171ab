/**
 * GpuKernelActor on cpu devices under a simulated clock: launches as calls, retries, moves to
 * another device after the retries are used up, typed OOM, hung kernels ended by the watchdog.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  DeviceError,
  firstMismatch,
  isInvalidKernelRequest,
  isKernelLaunchFailed,
  type KernelLaunchFailed,
  type KernelOutput,
  launchKernel,
  planKernelRequest,
  TOLERANCES,
} from '../../src/gpu/index.js';
import { naiveConv2d, naiveMatmul } from './naive.js';
import {
  alwaysHook,
  migrations,
  randomArray,
  type SupervisedSetup,
  scriptedHook,
  supervisedCpus,
} from './supervised.js';

let setup: SupervisedSetup | undefined;

afterEach(async () => {
  if (setup === undefined) return;
  setup.system.shutdown();
  for (const device of setup.devices) device.destroy();
  setup = undefined;
});

const M = 4;
const N = 3;
const K = 5;
const weight = randomArray(1, K * N);
const input = randomArray(2, M * K);
const expectedProduct = naiveMatmul(input, weight, M, N, K);

function matmulRequest() {
  return { kind: 'matmul', a: input, b: { resident: 'weight' }, m: M, n: N, k: K } as const;
}

describe('GpuKernelActor', () => {
  it('runs each kind of request and matches the reference', async () => {
    setup = await supervisedCpus();
    const { gpu } = setup;
    await gpu.startKernel({ id: 'ops', resident: { weight } });
    const product = await gpu.launch('ops', matmulRequest());
    expect(firstMismatch(product.output, expectedProduct, TOLERANCES.f32.matmul)).toBeUndefined();
    expect(product).toMatchObject({ deviceId: 'cpu:0', attempts: 1, migrations: 0 });

    const values = new Float32Array([-2, -0.5, 0, 3]);
    const relu = await gpu.launch('ops', { kind: 'unary', op: 'relu', input: values });
    expect([...relu.output]).toEqual([0, 0, 0, 3]);

    const sum = await gpu.launch('ops', { kind: 'reduce', op: 'sum', input: values, rows: 2, columns: 2 });
    expect([...sum.output]).toEqual([-2.5, 3]);

    const shifted = await gpu.launch('ops', {
      kind: 'binary',
      op: 'add',
      a: values,
      b: new Float32Array([10]),
      shapeA: [2, 2],
      shapeB: [1],
    });
    expect([...shifted.output]).toEqual([8, 9.5, 10, 13]);

    const shape = {
      batch: 1,
      inChannels: 2,
      height: 4,
      width: 4,
      outChannels: 3,
      kernelHeight: 3,
      kernelWidth: 3,
    };
    const image = randomArray(3, 32);
    const filters = randomArray(4, 54);
    const bias = randomArray(5, 3);
    const conv = await gpu.launch('ops', { kind: 'conv2d', input: image, weight: filters, bias, shape });
    const expectedConv = naiveConv2d(image, filters, bias, shape, [1, 1], [0, 0]);
    expect(firstMismatch(conv.output, expectedConv, TOLERANCES.f32.matmul)).toBeUndefined();
  });

  it('retries a failed attempt on the same device, then succeeds', async () => {
    setup = await supervisedCpus([{ faultHook: scriptedHook(['error', 'error']) }, {}]);
    const { gpu } = setup;
    await gpu.startKernel({ id: 'k', resident: { weight } });
    const result = await gpu.launch('k', matmulRequest());
    expect(result).toMatchObject({ deviceId: 'cpu:0', attempts: 3, migrations: 0 });
    expect(firstMismatch(result.output, expectedProduct, TOLERANCES.f32.matmul)).toBeUndefined();
    const [first] = await gpu.health();
    expect(first).toMatchObject({ deviceId: 'cpu:0', level: 'warning', errorCount: 2 });
    expect(first.lastError).toMatch(/DeviceError: cpu:0 matmul: injected device error/);
    expect(await gpu.kernelStatus('k')).toMatchObject({ deviceId: 'cpu:0', launches: 1, failedAttempts: 2 });
  });

  it('moves to another device when its retries are used up, and the same call returns the right result', async () => {
    setup = await supervisedCpus([{ faultHook: alwaysHook('error') }, {}]);
    const { gpu, events } = setup;
    await gpu.startKernel({ id: 'k', resident: { weight }, maxRetriesPerDevice: 3 });
    const result = await gpu.launch('k', matmulRequest());
    expect(result).toMatchObject({ deviceId: 'cpu:1', attempts: 5, migrations: 1 });
    // the resident weight was uploaded again on cpu:1 from the actor's host copy
    expect(firstMismatch(result.output, expectedProduct, TOLERANCES.f32.matmul)).toBeUndefined();
    expect(migrations(events)).toEqual([['k', 'cpu:0', 'cpu:1', 'retries_exhausted']]);
    expect(await gpu.placement()).toEqual({ k: 'cpu:1' });
    const [failing, healthy] = await gpu.health();
    expect(failing).toMatchObject({ level: 'warning', errorCount: 4 });
    expect(healthy).toMatchObject({ level: 'healthy', errorCount: 0 });
    // later launches go straight to cpu:1
    expect(await gpu.launch('k', matmulRequest())).toMatchObject({ deviceId: 'cpu:1', attempts: 1 });
  });

  it('fails with KernelLaunchFailed when no healthy device is left', async () => {
    setup = await supervisedCpus([{ faultHook: alwaysHook('error') }]);
    const { gpu, events } = setup;
    await gpu.startKernel({ id: 'k', maxRetriesPerDevice: 2 });
    const failure = await gpu
      .launch('k', { kind: 'unary', op: 'neg', input: new Float32Array([1]) })
      .catch((error: unknown) => error);
    expect(isKernelLaunchFailed(failure)).toBe(true);
    const failed = failure as KernelLaunchFailed;
    expect(failed).toMatchObject({
      kernelId: 'k',
      reason: 'no_healthy_device',
      attempts: 3,
      devicesTried: ['cpu:0'],
    });
    expect(failed.cause).toBeInstanceOf(DeviceError);
    expect(events.at(-1)).toMatchObject({ kind: 'no_healthy_device', kernelId: 'k', from: 'cpu:0' });
  });

  it('stops after maxMigrationsPerLaunch moves', async () => {
    setup = await supervisedCpus([
      { faultHook: alwaysHook('error') },
      { faultHook: alwaysHook('error') },
      {},
    ]);
    const { gpu } = setup;
    await gpu.startKernel({ id: 'k', maxRetriesPerDevice: 0, maxMigrationsPerLaunch: 1 });
    const failure = await gpu
      .launch('k', { kind: 'unary', op: 'neg', input: new Float32Array([1]) })
      .catch((error: unknown) => error);
    expect(failure).toMatchObject({
      reason: 'migrations_exhausted',
      attempts: 2,
      devicesTried: ['cpu:0', 'cpu:1'],
    });
  });

  it('types out-of-memory and handles it: injected OOM is retried, a real one moves the kernel', async () => {
    setup = await supervisedCpus([{ faultHook: scriptedHook(['oom']) }, {}]);
    await setup.gpu.startKernel({ id: 'k' });
    const retried = await setup.gpu.launch('k', {
      kind: 'unary',
      op: 'neg',
      input: new Float32Array([1, 2]),
    });
    expect(retried).toMatchObject({ deviceId: 'cpu:0', attempts: 2 });
    expect([...retried.output]).toEqual([-1, -2]);
    expect((await setup.gpu.health())[0].lastError).toMatch(/^OutOfDeviceMemory: /);
    setup.system.shutdown();

    // cpu:0 can hold 1 KiB: a 64 KiB input cannot be uploaded there
    setup = await supervisedCpus([{ memoryLimitBytes: 1024 }, {}]);
    await setup.gpu.startKernel({ id: 'big' });
    const values = randomArray(6, 16_384);
    const moved = await setup.gpu.launch('big', { kind: 'unary', op: 'neg', input: values });
    expect(moved).toMatchObject({ deviceId: 'cpu:1', attempts: 5, migrations: 1 });
    expect(moved.output[100]).toBe(-values[100]);
    expect((await setup.gpu.health())[0].lastError).toMatch(
      /^OutOfDeviceMemory: cpu:0 allocate: out of device memory/,
    );
  });

  it('a hung kernel fails by the watchdog deadline on the simulated clock, then the retry succeeds', async () => {
    setup = await supervisedCpus([{ faultHook: scriptedHook(['timeout']) }, {}]);
    const { gpu, system, clock } = setup;
    await gpu.startKernel({ id: 'k', deadlineMs: 1000 });
    let settled = false;
    const launch = gpu.launch('k', { kind: 'unary', op: 'neg', input: new Float32Array([4]) });
    launch.then(() => {
      settled = true;
    });
    await system.advance(999);
    expect(settled).toBe(false);
    await system.advance(1);
    const result = await launch;
    expect(clock.now()).toBe(1000);
    expect(result).toMatchObject({ deviceId: 'cpu:0', attempts: 2 });
    expect([...result.output]).toEqual([-4]);
    const [device] = await gpu.health();
    expect(device.lastError).toMatch(
      /^KernelTimeout: cpu:0 unary\.neg: kernel did not finish within its 1000 ms deadline/,
    );
  });

  it('reads device-buffer inputs back once and keeps the host copy for a move', async () => {
    setup = await supervisedCpus([{ faultHook: alwaysHook('error') }, {}, {}]);
    const { gpu, devices } = setup;
    const buffer = devices[2].upload(new Float32Array([1, -1, 2]));
    await gpu.startKernel({ id: 'k', device: 'cpu:0', maxRetriesPerDevice: 1 });
    const result = await gpu.launch('k', { kind: 'unary', op: 'relu', input: buffer });
    expect(result).toMatchObject({ deviceId: 'cpu:1', attempts: 3 });
    expect([...result.output]).toEqual([1, 0, 2]);
    buffer.release();
  });

  it('answers a bad request with InvalidKernelRequest, without touching any device', async () => {
    setup = await supervisedCpus();
    const { gpu } = setup;
    await gpu.startKernel({ id: 'k', resident: { weight } });
    const bad = [
      { kind: 'matmul', a: input, b: { resident: 'missing' }, m: M, n: N, k: K },
      { kind: 'matmul', a: input, b: { resident: 'weight' }, m: M, n: N + 1, k: K },
      { kind: 'unary', op: 'nope', input },
      { kind: 'binary', op: 'add', a: input, b: weight },
      { kind: 'layernorm', input, gamma: input, beta: input, rows: 1, columns: 4, epsilon: 0 },
    ] as const;
    for (const request of bad) {
      const failure = await gpu.launch('k', request as never).catch((error: unknown) => error);
      expect(isInvalidKernelRequest(failure), JSON.stringify(failure)).toBe(true);
    }
    expect((await gpu.health()).every((report) => report.errorCount === 0)).toBe(true);
    expect(() => planKernelRequest('k', { kind: 'softmax', input, rows: 0, columns: 2 }, new Map())).toThrow(
      /rows must be an integer/,
    );
  });

  it('is called from inside another actor with launchKernel(context, ...)', async () => {
    setup = await supervisedCpus();
    const { gpu, system } = setup;
    await gpu.startKernel({ id: 'k' });
    let answer: KernelOutput | undefined;
    system.spawn(async (context) => {
      answer = await launchKernel(context, gpu.kernelName('k'), {
        kind: 'unary',
        op: 'neg',
        input: new Float32Array([1]),
      });
    });
    await system.settle();
    expect(answer).toMatchObject({ deviceId: 'cpu:0', attempts: 1 });
    expect([...(answer?.output ?? [])]).toEqual([-1]);
  });
});
