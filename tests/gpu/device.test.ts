import { describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import {
  capacityFor,
  DeviceError,
  type FaultDecision,
  isKernelTimeout,
  isOutOfDeviceMemory,
  KernelTimeout,
  migrate,
  OutOfDeviceMemory,
  openDevice,
} from '../../src/gpu/index.js';

describe('the documented example', () => {
  it('runs as written in DeviceCore.ts', async () => {
    const device = await openDevice('cpu');
    const x = device.upload(new Float32Array([-1, 2]));
    const y = device.allocate(8);
    device.unary('relu', x, y);
    expect(Array.from(await device.copyOut(y))).toEqual([0, 2]);
    device.destroy();
  });
});

describe('Device argument checks', () => {
  it('rejects bad sizes, dtypes and alignment with the device and operation named', async () => {
    const device = await openDevice('cpu');
    expect(() => device.allocate(0)).toThrow(
      /cpu:0 allocate: byteLength must be a positive multiple of 4 for f32, got 0/,
    );
    expect(() => device.allocate(6)).toThrow(DeviceError);
    expect(() => device.allocate(6, 'bf16')).not.toThrow();
    expect(() => device.allocate(4, 'f64' as 'f32')).toThrow(/unknown dtype 'f64'/);
    const buffer = device.allocate(16);
    expect(() => device.copyIn(buffer, new Float32Array(5))).toThrow(/overrun the 16-byte buffer/);
    expect(() => device.copyIn(buffer, new Float32Array(2), -4)).toThrow(DeviceError);
    const small = device.allocate(8);
    expect(() => device.unary('relu', buffer, small)).not.toThrow();
    expect(() => device.unary('relu', small, buffer)).toThrow(/input holds 2 elements, needs 4/);
    expect(() => device.unary('relu', buffer, buffer)).toThrow(/must not also be an input/);
    expect(() => device.unary('nope' as 'relu', buffer, small)).toThrow(/unknown unary op 'nope'/);
    expect(() => device.matmul(buffer, buffer, small, 2, 2, 2, { precision: 'bf16' })).toThrow(
      /precision 'bf16' is not supported here/,
    );
    expect(() => device.reduce('sum', buffer, small, 0, 4)).toThrow(/rows must be an integer/);
    const bytes = device.allocate(16, 'u8');
    expect(() => device.unary('exp', bytes, small, { count: 2 })).toThrow(/input must be f32, got u8/);
    device.destroy();
    expect(() => device.allocate(4)).toThrow(/the device was destroyed/);
  });

  it('refuses a buffer of another device and a buffer used after free', async () => {
    const first = await openDevice('cpu');
    const second = await openDevice('cpu');
    const buffer = first.upload(new Float32Array([1, 2]));
    const other = second.allocate(8);
    expect(() => second.unary('neg', buffer, other)).toThrow(/belongs to cpu:0, not cpu:0; migrate it first/);
    first.free(buffer);
    expect(buffer.released).toBe(true);
    await expect(first.copyOut(buffer)).rejects.toThrow(/used after it was freed/);
    expect(() => buffer.release()).toThrow(DeviceError);
    first.destroy();
    second.destroy();
  });

  it('broadcasting checks shapes', async () => {
    const device = await openDevice('cpu');
    const a = device.upload(new Float32Array(6));
    const b = device.upload(new Float32Array(4));
    const out = device.allocate(24);
    expect(() => device.binary('add', a, b, out, { shapeA: [2, 3], shapeB: [4] })).toThrow(
      /do not broadcast/,
    );
    expect(() => device.binary('add', a, b, out, { shapeA: [1, 1, 1, 2, 3], shapeB: [1] })).toThrow(
      /at most 4 positive integers/,
    );
    device.destroy();
  });

  it('gather copies through strides, and checks that every index lies inside the input', async () => {
    const device = await openDevice('cpu');
    const input = device.upload(Float32Array.of(1, 2, 3, 4, 5, 6, -0));
    const out = device.allocate(4 * 6);
    device.gather(input, out, [3, 2], [1, 3]);
    expect(Array.from(await device.readFloat32(out))).toEqual([1, 4, 2, 5, 3, 6]);
    device.gather(input, out, [2, 3], [0, 1]);
    expect(Array.from(await device.readFloat32(out))).toEqual([1, 2, 3, 1, 2, 3]);
    device.gather(input, out, [2], [6]);
    const [first, last] = await device.readFloat32(out);
    expect([first, Object.is(last, -0)]).toEqual([1, true]); // a copy, -0 included
    expect(() => device.gather(input, out, [2, 4], [4, 1])).toThrow(
      /cpu:0 gather: input holds 7 elements, needs 8/,
    );
    expect(() => device.gather(input, out, [2, 3], [1])).toThrow(/strides must be 2 integers >= 0/);
    expect(() => device.gather(input, out, [2, 3], [-1, 1])).toThrow(/strides must be 2 integers >= 0/);
    expect(() => device.gather(input, out, [5, 5], [0, 0])).toThrow(/output holds 6 elements, needs 25/);
    expect(() => device.gather(input, input, [2], [1])).toThrow(/must not also be an input/);
    device.destroy();
  });
});

describe('memory pool', () => {
  it('rounds small requests to power-of-two classes and large ones to MiB', () => {
    expect(capacityFor(1)).toBe(256);
    expect(capacityFor(257)).toBe(512);
    expect(capacityFor(1 << 20)).toBe(1 << 20);
    expect(capacityFor((1 << 20) + 1)).toBe(2 << 20);
    expect(capacityFor(5 * (1 << 20) - 3)).toBe(5 << 20);
  });

  it('reuses freed buffers and keeps statistics', async () => {
    const device = await openDevice('cpu');
    const a = device.allocate(1000);
    const b = device.allocate(3 << 20);
    expect(device.memoryStats()).toMatchObject({
      inUseBytes: 1024 + (3 << 20),
      requestedBytes: 1000 + (3 << 20),
      liveBuffers: 2,
      nativeAllocations: 2,
    });
    a.release();
    b.release();
    expect(device.memoryStats()).toMatchObject({
      inUseBytes: 0,
      pooledBytes: 1024 + (3 << 20),
      peakInUseBytes: 1024 + (3 << 20),
    });
    const c = device.allocate(600);
    expect(c.capacityBytes).toBe(1024);
    expect(device.memoryStats()).toMatchObject({ poolHits: 1, nativeAllocations: 2, allocations: 3 });
    expect(device.trimPool()).toBe(3 << 20);
    expect(device.memoryStats().pooledBytes).toBe(0);
    device.destroy();
  });

  it('counts references: the last release returns the memory', async () => {
    const device = await openDevice('cpu');
    const buffer = device.allocate(64);
    buffer.retain();
    expect(buffer.referenceCount).toBe(2);
    buffer.release();
    expect(device.memoryStats().liveBuffers).toBe(1);
    buffer.release();
    expect(device.memoryStats().liveBuffers).toBe(0);
    device.destroy();
  });

  it('reports OutOfDeviceMemory at the configured limit, after emptying the pool', async () => {
    const device = await openDevice('cpu', { memoryLimitBytes: 4096 });
    const kept = device.allocate(2048);
    const pooled = device.allocate(1024);
    pooled.release();
    let caught: unknown;
    try {
      device.allocate(4000);
    } catch (error) {
      caught = error;
    }
    expect(isOutOfDeviceMemory(caught)).toBe(true);
    expect(caught).toMatchObject({
      requestedBytes: 4000,
      availableBytes: 2048,
      deviceId: 'cpu:0',
      operation: 'allocate',
    });
    expect(device.memoryStats().pooledBytes).toBe(0);
    expect(() => device.allocate(2048)).not.toThrow();
    kept.release();
    device.destroy();
  });

  it('keeps at most poolLimitBytes of freed buffers', async () => {
    const device = await openDevice('cpu', { poolLimitBytes: 1024 });
    const buffers = [device.allocate(1024), device.allocate(1024)];
    for (const buffer of buffers) buffer.release();
    expect(device.memoryStats().pooledBytes).toBe(1024);
    device.destroy();
  });
});

describe('fault hooks and the watchdog', () => {
  function hooked(decisions: FaultDecision[]) {
    const seen: string[] = [];
    const hook = {
      beforeLaunch(deviceId: string, kernelName: string): FaultDecision {
        seen.push(`${deviceId} ${kernelName}`);
        return decisions.shift() ?? 'ok';
      },
    };
    return { hook, seen };
  }

  it('turns error and oom decisions into typed errors, naming the kernel', async () => {
    const { hook, seen } = hooked(['error', 'oom', 'ok']);
    const device = await openDevice('cpu', { faultHook: hook });
    const x = device.upload(new Float32Array([1, -1]));
    const y = device.allocate(8);
    expect(() => device.unary('relu', x, y)).toThrow(/cpu:0 unary.relu: injected device error/);
    expect(() => device.unary('relu', x, y)).toThrow(OutOfDeviceMemory);
    device.unary('relu', x, y);
    expect(Array.from(await device.readFloat32(y))).toEqual([1, 0]);
    expect(seen).toEqual(['cpu:0 unary.relu', 'cpu:0 unary.relu', 'cpu:0 unary.relu']);
    device.destroy();
  });

  it('a hung kernel with a deadline becomes KernelTimeout at the next synchronization point', async () => {
    const clock = new SimulatedClock();
    const { hook } = hooked(['timeout']);
    const device = await openDevice('cpu', { faultHook: hook, clock });
    const x = device.upload(new Float32Array([1, 2]));
    const y = device.allocate(8);
    device.unary('exp', x, y, { deadlineMs: 100 });
    clock.advance(99);
    const sync = device.synchronize({ deadlineMs: 1000 });
    clock.advance(1);
    const error = await sync.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(KernelTimeout);
    expect(error).toMatchObject({ kernelName: 'unary.exp', deadlineMs: 100, deviceId: 'cpu:0' });
    // Reported once; the device goes on.
    device.unary('exp', x, y);
    await device.synchronize();
    expect((await device.readFloat32(y))[0]).toBeCloseTo(Math.E, 5);
    device.destroy();
  });

  it('the synchronize watchdog catches a hung kernel launched without a deadline', async () => {
    const clock = new SimulatedClock();
    const { hook } = hooked(['timeout']);
    const device = await openDevice('cpu', { faultHook: hook, clock });
    const x = device.upload(new Float32Array([1]));
    const y = device.allocate(4);
    device.unary('neg', x, y);
    let settled = false;
    const sync = device.synchronize({ deadlineMs: 50 }).finally(() => {
      settled = true;
    });
    clock.advance(49);
    await Promise.resolve();
    expect(settled).toBe(false);
    clock.advance(1);
    const error = await sync.catch((caught: unknown) => caught);
    expect(isKernelTimeout(error)).toBe(true);
    expect(error).toMatchObject({ kernelName: 'unary.neg', deadlineMs: 50 });
    device.destroy();
  });

  it('a kernel that finishes in time cancels its watchdog', async () => {
    const clock = new SimulatedClock();
    const device = await openDevice('cpu', { clock });
    const x = device.upload(new Float32Array([4]));
    const y = device.allocate(4);
    device.unary('sqrt', x, y, { deadlineMs: 10 });
    await device.synchronize();
    clock.advance(100);
    await device.synchronize();
    expect(Array.from(await device.readFloat32(y))).toEqual([2]);
    expect(() => device.unary('sqrt', x, y, { deadlineMs: -1 })).toThrow(
      /deadlineMs must be a finite number > 0/,
    );
    device.destroy();
  });
});

describe('launch requests', () => {
  it("Device.launch runs an op described as a value, with the op method's checks", async () => {
    const device = await openDevice('cpu');
    const a = device.upload(new Float32Array([1, 2, 3, 4]));
    const b = device.upload(new Float32Array([10, 20]));
    const out = device.allocate(16);
    device.launch({ kind: 'binary', op: 'add', a, b, output: out, shapeA: [2, 2], shapeB: [2] });
    expect(Array.from(await device.readFloat32(out))).toEqual([11, 22, 13, 24]);
    device.launch({ kind: 'matmul', a, b: a, output: out, m: 2, n: 2, k: 2 });
    expect(Array.from(await device.readFloat32(out))).toEqual([7, 10, 15, 22]);
    device.launch({ kind: 'softmax', input: a, output: out, rows: 1, columns: 4 });
    expect((await device.readFloat32(out)).reduce((x, y) => x + y, 0)).toBeCloseTo(1, 6);
    expect(() => device.launch({ kind: 'unary', op: 'exp', input: a, output: a })).toThrow(
      /must not also be an input/,
    );
    expect(() => device.launch({ kind: 'fft' } as never)).toThrow(/unknown launch kind 'fft'/);
    device.destroy();
  });
});

describe('streams and migration', () => {
  it('single-queue backends hand out their one queue', async () => {
    const device = await openDevice('cpu');
    const stream = device.acquireStream();
    expect(stream).toEqual({ deviceId: 'cpu:0', index: 0 });
    const x = device.upload(new Float32Array([1]), 'f32');
    const y = device.allocate(4);
    device.unary('neg', x, y, { stream });
    await device.synchronize({ stream });
    device.releaseStream(stream);
    expect(() => device.unary('neg', x, y, { stream: { deviceId: 'cuda:0', index: 0 } })).toThrow(
      /does not belong to this device/,
    );
    device.destroy();
  });

  it('migrate copies through the host and keeps the source', async () => {
    const from = await openDevice('cpu');
    const to = await openDevice('cpu');
    const buffer = from.upload(new Float32Array([1, 2, 3]));
    const moved = await migrate(buffer, to);
    expect(moved.owner).toBe(to);
    expect(Array.from(await to.readFloat32(moved))).toEqual([1, 2, 3]);
    expect(buffer.released).toBe(false);
    expect(await migrate(buffer, from)).toBe(buffer);
    expect(buffer.referenceCount).toBe(2);
    from.destroy();
    to.destroy();
  });
});
