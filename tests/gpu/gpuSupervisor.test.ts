/**
 * GpuSupervisor: health levels at their exact thresholds over a sliding window, kernel actors
 * moved off a critical device, transient restarts, seeded faults that replay, fault hooks.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FaultInjector } from '../../src/fault/index.js';
import {
  CpuBackend,
  Device,
  DeviceHealthTracker,
  firstMismatch,
  formatGpuEvent,
  type GpuEvent,
  GpuSupervisor,
  gpuFaultHook,
  healthLevel,
  InvalidGpuSupervisorOptions,
  InvalidKernelSpec,
  MAX_ERRORS_KEPT_PER_DEVICE,
  TOLERANCES,
} from '../../src/gpu/index.js';
import {
  onSupervisionEvent,
  type SupervisionEvent,
  startSupervisor,
  stopSupervisor,
} from '../../src/supervision/index.js';
import { testSystem } from '../actor/helpers.js';
import { naiveMatmul } from './naive.js';
import { migrations, randomArray, type SupervisedSetup, supervisedCpus } from './supervised.js';

let setup: SupervisedSetup | undefined;

afterEach(() => {
  if (setup === undefined) return;
  setup.system.shutdown();
  for (const device of setup.devices) device.destroy();
  setup = undefined;
});

async function reportErrors(gpu: GpuSupervisor, deviceId: string, count: number): Promise<string> {
  let level = '';
  for (let i = 0; i < count; i++) level = await gpu.reportDeviceError(deviceId, 'test error');
  return level;
}

describe('device health', () => {
  it('levels change exactly at the thresholds: 5 errors warning, 6 degraded, 10 degraded, 11 critical', async () => {
    setup = await supervisedCpus();
    const { gpu, events } = setup;
    expect((await gpu.health())[0]).toMatchObject({
      level: 'healthy',
      errorCount: 0,
      lastErrorMs: undefined,
    });
    expect(await reportErrors(gpu, 'cpu:0', 1)).toBe('warning');
    expect(await reportErrors(gpu, 'cpu:0', 4)).toBe('warning'); // 5
    expect(await reportErrors(gpu, 'cpu:0', 1)).toBe('degraded'); // 6
    expect(await reportErrors(gpu, 'cpu:0', 4)).toBe('degraded'); // 10
    expect(await reportErrors(gpu, 'cpu:0', 1)).toBe('critical'); // 11
    expect(await reportErrors(gpu, 'cpu:0', 1)).toBe('critical'); // 12
    expect(events.map((event) => [event.kind, 'errorCount' in event ? event.errorCount : -1])).toEqual([
      ['device_warning', 1],
      ['device_degraded', 6],
      ['device_critical', 11],
    ]);
    expect(formatGpuEvent(events[2])).toBe('[0.0 ms] device_critical cpu:0 after 11 errors (test error)');
    expect((await gpu.health())[1]).toMatchObject({ deviceId: 'cpu:1', level: 'healthy' });
    expect([0, 1, 5, 6, 10, 11].map(healthLevel)).toEqual([
      'healthy',
      'warning',
      'warning',
      'degraded',
      'degraded',
      'critical',
    ]);
  });

  it('counts errors over a sliding window on the injected clock', async () => {
    setup = await supervisedCpus([{}, {}], { healthWindowMs: 1000 });
    const { gpu, system } = setup;
    await reportErrors(gpu, 'cpu:0', 6);
    await system.advance(600);
    await reportErrors(gpu, 'cpu:0', 5);
    expect((await gpu.health())[0]).toMatchObject({ level: 'critical', errorCount: 11, lastErrorMs: 600 });
    await system.advance(400); // the first 6 are now 1000 ms old: out of the window
    expect((await gpu.health())[0]).toMatchObject({ level: 'warning', errorCount: 5 });
    await system.advance(600);
    expect((await gpu.health())[0]).toMatchObject({ level: 'healthy', errorCount: 0 });
  });

  it('the tracker prefers the healthiest device, keeps a bounded history and rejects unknown devices', () => {
    const tracker = new DeviceHealthTracker(['a', 'b', 'c'], 10_000);
    tracker.record('a', 0);
    tracker.record('b', 0);
    tracker.record('b', 0);
    expect(tracker.healthiest(0, new Set())).toBe('c');
    expect(tracker.healthiest(0, new Set(['c']))).toBe('a');
    for (let i = 0; i < 11; i++) tracker.record('c', 1);
    expect(tracker.healthiest(1, new Set(['a', 'b']))).toBeUndefined();
    expect(tracker.healthiest(1, new Set(['a', 'b']), true)).toBe('c');
    for (let i = 0; i < MAX_ERRORS_KEPT_PER_DEVICE + 5; i++) tracker.record('a', 2);
    expect(tracker.report('a', 2).errorCount).toBe(MAX_ERRORS_KEPT_PER_DEVICE);
    expect(() => tracker.record('z', 0)).toThrow(/unknown device 'z'/);
    expect(() => new DeviceHealthTracker(['a'], 0)).toThrow(RangeError);
  });
});

describe('GpuSupervisor', () => {
  const M = 2;
  const N = 2;
  const K = 3;
  const weight = randomArray(7, K * N);
  const input = randomArray(8, M * K);
  const request = { kind: 'matmul', a: input, b: { resident: 'weight' }, m: M, n: N, k: K } as const;

  it('moves every kernel actor off a device that becomes critical', async () => {
    setup = await supervisedCpus([{}, {}, {}]);
    const { gpu, events, system } = setup;
    for (const id of ['a', 'b', 'c']) await gpu.startKernel({ id, device: 'cpu:0', resident: { weight } });
    await gpu.startKernel({ id: 'd', device: 'cpu:2' });
    await reportErrors(gpu, 'cpu:2', 1); // cpu:1 is now the healthiest other device
    await reportErrors(gpu, 'cpu:0', 11);
    await system.settle();
    expect(migrations(events)).toEqual([
      ['a', 'cpu:0', 'cpu:1', 'device_critical'],
      ['b', 'cpu:0', 'cpu:1', 'device_critical'],
      ['c', 'cpu:0', 'cpu:1', 'device_critical'],
    ]);
    expect(await gpu.placement()).toEqual({ a: 'cpu:1', b: 'cpu:1', c: 'cpu:1', d: 'cpu:2' });
    const move = events.find((event) => event.kind === 'kernel_migrated');
    expect(move && formatGpuEvent(move)).toBe('[0.0 ms] kernel_migrated a cpu:0 -> cpu:1 (device_critical)');
    for (const id of ['a', 'b', 'c']) {
      expect(await gpu.kernelStatus(id)).toMatchObject({ deviceId: 'cpu:1', migrations: 1 });
      const result = await gpu.launch(id, request);
      expect(result).toMatchObject({ deviceId: 'cpu:1', attempts: 1 });
      expect(
        firstMismatch(result.output, naiveMatmul(input, weight, M, N, K), TOLERANCES.f32.matmul),
      ).toBeUndefined();
    }
    // the resident weights were uploaded to cpu:1 when the kernels moved, before any launch
    expect(setup.devices[1].memoryStats().inUseBytes).toBeGreaterThanOrEqual(3 * weight.byteLength);
  });

  it('a launch in flight on a device that turns critical continues on the new device', async () => {
    const hook = { beforeLaunch: () => 'error' as const };
    setup = await supervisedCpus([{ faultHook: hook }, {}]);
    const { gpu, events } = setup;
    for (const id of ['a', 'b', 'c']) await gpu.startKernel({ id, device: 'cpu:0', maxRetriesPerDevice: 10 });
    const results = await Promise.all(
      ['a', 'b', 'c'].map((id) => gpu.launch(id, { kind: 'unary', op: 'neg', input })),
    );
    expect(results.every((result) => result.deviceId === 'cpu:1')).toBe(true);
    expect(events.find((event) => event.kind === 'device_critical')).toMatchObject({
      deviceId: 'cpu:0',
      errorCount: 11,
    });
    expect(migrations(events).map(([, from, to, reason]) => [from, to, reason])).toEqual([
      ['cpu:0', 'cpu:1', 'device_critical'],
      ['cpu:0', 'cpu:1', 'device_critical'],
      ['cpu:0', 'cpu:1', 'device_critical'],
    ]);
  });

  it('restarts kernel actors transient-style: a normal exit stays down, a crash is restarted', async () => {
    setup = await supervisedCpus();
    const { gpu, system, crashes } = setup;
    const supervision: SupervisionEvent[] = [];
    onSupervisionEvent(system, (event) => supervision.push(event));
    await gpu.startKernel({ id: 'finished' });
    const first = await gpu.startKernel({ id: 'crashing', device: 'cpu:1', resident: { weight } });
    expect(await gpu.stopKernel('finished')).toBe(true);
    await system.settle();
    expect(system.whereis(gpu.kernelName('finished'))).toBeUndefined();
    expect(supervision.filter((event) => event.kind === 'child_restarted')).toEqual([]);
    expect(await gpu.placement()).toEqual({ crashing: 'cpu:1' });

    system.exit(first, new Error('kernel bug'));
    await system.settle();
    const second = system.whereis(gpu.kernelName('crashing'));
    expect(second).toBeDefined();
    expect(second?.equals(first)).toBe(false);
    expect(
      supervision.filter((event) => event.kind === 'child_restarted').map((event) => event.childId),
    ).toEqual(['crashing']);
    expect(await gpu.placement()).toEqual({ crashing: 'cpu:1' });
    const result = await gpu.launch('crashing', request);
    expect(result.deviceId).toBe('cpu:1');
    const children = await gpu.kernels();
    expect(children.map((child) => [child.id, child.pid === undefined, child.restart])).toEqual([
      ['finished', true, 'transient'],
      ['crashing', false, 'transient'],
    ]);
    expect(await gpu.stopKernel('finished')).toBe(false);
    await gpu.startKernel({ id: 'finished' }); // a finished kernel's id can be used again
    expect(crashes).toEqual([]);
  });

  it('a restarted kernel keeps the device it was moved to', async () => {
    setup = await supervisedCpus();
    const { gpu, system } = setup;
    const first = await gpu.startKernel({ id: 'k', device: 'cpu:0' });
    await reportErrors(gpu, 'cpu:0', 11);
    system.exit(first, 'boom');
    await system.settle();
    expect(await gpu.kernelStatus('k')).toMatchObject({ deviceId: 'cpu:1', migrations: 0 });
  });

  it('places a new kernel away from a critical preferred device', async () => {
    setup = await supervisedCpus();
    const { gpu, events } = setup;
    await reportErrors(gpu, 'cpu:0', 11);
    await gpu.startKernel({ id: 'k', device: 'cpu:0' });
    expect(await gpu.placement()).toEqual({ k: 'cpu:1' });
    expect(events.filter((event) => event.kind === 'kernel_migrated')).toEqual([]);
  });

  it('replays seeded faults: the same seed gives the same moves', async () => {
    interface Run {
      moves: GpuEvent[];
      fingerprint: string;
      counts: Record<string, number>;
      outputs: number[];
    }
    async function run(seed: number): Promise<Run> {
      const injector = new FaultInjector({
        gpuErrorRate: 0.5,
        oomRate: 0.05,
        kernelTimeoutRate: 0.05,
        seed,
      });
      const hook = gpuFaultHook(injector, { deviceIds: ['cpu:0'] });
      const local = await supervisedCpus([{ faultHook: hook }, {}], { healthWindowMs: 5000 });
      const outputs: number[] = [];
      for (const id of ['a', 'b', 'c', 'd'])
        await local.gpu.startKernel({ id, device: 'cpu:0', deadlineMs: 50 });
      for (let round = 0; round < 6; round++) {
        for (const id of ['a', 'b', 'c', 'd']) {
          const pending = local.gpu.launch(id, {
            kind: 'unary',
            op: 'neg',
            input: new Float32Array([round]),
          });
          await local.system.advance(500); // lets hung kernels reach their deadline
          const result = await pending;
          outputs.push(result.output[0]);
        }
      }
      local.system.shutdown();
      for (const device of local.devices) device.destroy();
      const moves = local.events.filter((event) => event.kind !== 'device_warning');
      return { moves, fingerprint: injector.fingerprint(), counts: { ...injector.counts() }, outputs };
    }
    const first = await run(42);
    const second = await run(42);
    // seed 42 exercises both kinds of move, an injected OOM and a hung kernel
    expect(new Set(migrations(first.moves).map(([, , , reason]) => reason))).toEqual(
      new Set(['retries_exhausted', 'device_critical']),
    );
    expect(first.counts).toMatchObject({ oom: 1, kernel_timeout: 2 });
    expect(second).toEqual(first);
    expect(first.outputs).toEqual([0, 1, 2, 3, 4, 5].flatMap((round) => [0, 0, 0, 0].map(() => -round)));
    const other = await run(43);
    expect(other.fingerprint).not.toBe(first.fingerprint);
    expect(migrations(other.moves)).not.toEqual(migrations(first.moves));
  });

  it('does not restart its own parts: a crashed health server stops it and escalates', async () => {
    setup = await supervisedCpus();
    const { gpu, system } = setup;
    await gpu.startKernel({ id: 'k' });
    const exited = system.whenExited(gpu.pid);
    system.exit(system.whereis(gpu.names.health)!, new Error('health bug'));
    await system.settle();
    expect(await exited).toBe('shutdown');
    expect(system.whereis(gpu.kernelName('k'))).toBeUndefined();
  });

  it('runs inside a supervision tree of yours, which restarts it after it escalates', async () => {
    const { system, clock } = testSystem();
    const devices = [new Device(new CpuBackend(0), { clock }), new Device(new CpuBackend(1), { clock })];
    const root = await startSupervisor(system, {
      intensity: 1,
      children: [GpuSupervisor.childSpec('gpu', { devices, name: 'tree-gpu' })],
    });
    const gpu = await GpuSupervisor.lookup(system, 'tree-gpu');
    await gpu.startKernel({ id: 'k' });
    expect(
      (await gpu.launch('k', { kind: 'unary', op: 'neg', input: new Float32Array([2]) })).output[0],
    ).toBe(-2);
    system.exit(system.whereis(gpu.names.health)!, new Error('health bug'));
    await system.settle();
    const restarted = await GpuSupervisor.lookup(system, 'tree-gpu');
    expect(restarted.pid.equals(gpu.pid)).toBe(false);
    expect(await restarted.placement()).toEqual({});
    expect((await restarted.health()).map((report) => report.level)).toEqual(['healthy', 'healthy']);
    await expect(GpuSupervisor.lookup(system, 'nothing')).rejects.toThrow(RangeError);
    expect(() => GpuSupervisor.childSpec('bad', { devices: [] })).toThrow(InvalidGpuSupervisorOptions);
    await stopSupervisor(system, root);
    for (const device of devices) device.destroy();
  });

  it('validates its options and kernel specs at the edge', async () => {
    const { system } = testSystem();
    await expect(GpuSupervisor.start(system, { devices: [] })).rejects.toBeInstanceOf(
      InvalidGpuSupervisorOptions,
    );
    const cpu = new Device(new CpuBackend(0));
    await expect(GpuSupervisor.start(system, { devices: [cpu, cpu] })).rejects.toThrow(/distinct ids/);
    await expect(GpuSupervisor.start(system, { devices: [cpu], name: 'bad name' })).rejects.toThrow(
      /invalid_name/,
    );
    const gpu = await GpuSupervisor.start(system, { devices: [cpu], name: 'edge' });
    await expect(gpu.startKernel({ id: 'k', device: 'cuda:0' })).rejects.toBeInstanceOf(InvalidKernelSpec);
    await expect(gpu.startKernel({ id: 'k', maxRetriesPerDevice: -1 })).rejects.toThrow(
      /invalid_max_retries/,
    );
    await expect(gpu.startKernel({ id: '' })).rejects.toThrow(/invalid_kernel_id/);
    await expect(gpu.reportDeviceError('cuda:0', 'x')).rejects.toThrow(/unknown device/);
    await gpu.stop();
    expect(system.whereis('edge')).toBeUndefined();
    cpu.destroy();
  });
});

describe('gpuFaultHook', () => {
  it('turns the injector decisions into device faults, error before oom before timeout', () => {
    const decide = (config: ConstructorParameters<typeof FaultInjector>[0]) =>
      gpuFaultHook(new FaultInjector(config)).beforeLaunch?.('cpu:0', 'unary.neg');
    expect(decide({})).toBe('ok');
    expect(decide({ gpuErrorRate: 1, oomRate: 1, kernelTimeoutRate: 1 })).toBe('error');
    expect(decide({ oomRate: 1, kernelTimeoutRate: 1 })).toBe('oom');
    expect(decide({ kernelTimeoutRate: 1 })).toBe('timeout');
    const injector = new FaultInjector({ gpuErrorRate: 1, oomRate: 1, kernelTimeoutRate: 1 });
    const hook = gpuFaultHook(injector, { deviceIds: ['cpu:1'] });
    expect(hook.beforeLaunch?.('cpu:0', 'unary.neg')).toBe('ok');
    expect(injector.total).toBe(0);
    expect(hook.beforeLaunch?.('cpu:1', 'unary.neg')).toBe('error');
    expect(injector.counts()).toMatchObject({ gpu_error: 1, oom: 1, kernel_timeout: 1 });
  });

  it('reaches a device: injected errors and OOM are typed, a hung kernel ends at the watchdog deadline', async () => {
    const { clock } = testSystem();
    const device = new Device(new CpuBackend(0), {
      clock,
      faultHook: gpuFaultHook(new FaultInjector({ kernelTimeoutRate: 1 })),
    });
    const x = device.upload(new Float32Array([1]));
    const y = device.allocate(4);
    device.unary('neg', x, y, { deadlineMs: 200 });
    const read = device.readFloat32(y).catch((error: unknown) => error);
    clock.advance(200);
    expect(await read).toMatchObject({ name: 'KernelTimeout', deadlineMs: 200 });
    const failing = new Device(new CpuBackend(1), {
      faultHook: gpuFaultHook(new FaultInjector({ oomRate: 1 })),
    });
    const z = failing.upload(new Float32Array([1]));
    expect(() => failing.unary('neg', z, failing.allocate(4))).toThrow(/out of device memory/);
    device.destroy();
    failing.destroy();
  });
});
