/**
 * The WebGPU backend on whatever adapter Dawn finds (SwiftShader in CI, with chromium
 * installed): every generated WGSL kernel runs and is compared with the cpu reference on
 * fresh seeded random inputs. Skips only when there is no adapter, printing why.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from '../../src/actor/Clock.js';
import { Random } from '../../src/actor/Random.js';
import {
  Device,
  DeviceError,
  firstMismatch,
  isKernelTimeout,
  isOutOfDeviceMemory,
  migrate,
  openDevice,
  requestWebGpuAdapters,
  TOLERANCES,
  WebGpuBackend,
} from '../../src/gpu/index.js';
import { allCases, type OpCase, rowCases, runCase, unaryCases, uniform } from './opCases.js';
import { probeWebGpu } from './support.js';

const webgpu = await probeWebGpu();

describe.skipIf(!webgpu.available)(`webgpu backend (${webgpu.reason})`, () => {
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

  async function compare(opCase: OpCase): Promise<void> {
    const expected = await runCase(cpu, opCase);
    const actual = await runCase(gpu, opCase);
    expect(firstMismatch(actual, expected, opCase.tolerance), opCase.name).toBeUndefined();
  }

  it('reports the adapter it runs on', () => {
    const info = gpu.info();
    expect(info.id).toBe('webgpu:0');
    expect(info.adapter).toBeTruthy();
    expect(info.copyAlignmentBytes).toBe(4);
  });

  it('every op matches the cpu reference on random inputs', async () => {
    for (const opCase of allCases(20261121)) await compare(opCase);
  });

  it('broadcast binary ops match for random shapes', async () => {
    const dimension = fc.integer({ min: 1, max: 5 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(dimension, { minLength: 1, maxLength: 4 }),
        fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        fc.integer(),
        async (shape, keep, seed) => {
          const random = new Random(seed);
          const shapeB = shape.map((size, d) => (keep[d] ? size : 1));
          const count = shape.reduce((a, b) => a * b, 1);
          const countB = shapeB.reduce((a, b) => a * b, 1);
          await compare({
            name: `mul [${shape}] x [${shapeB}]`,
            tolerance: TOLERANCES.f32.elementwise,
            inputs: [uniform(random, count, -2, 2), uniform(random, countB, -2, 2)],
            outputLength: count,
            run: (d, [a, b], o) => d.binary('mul', a, b, o, { shapeA: shape, shapeB }),
          });
        },
      ),
      { seed: 5, numRuns: 12 },
    );
  });

  it('matmul matches for random shapes that do not fill a tile', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 130 }),
        fc.integer({ min: 1, max: 130 }),
        fc.integer({ min: 1, max: 70 }),
        fc.integer(),
        async (m, n, k, seed) => {
          const random = new Random(seed);
          await compare({
            name: `matmul ${m}x${k}x${n}`,
            tolerance: TOLERANCES.f32.matmul,
            inputs: [uniform(random, m * k, -1, 1), uniform(random, k * n, -1, 1)],
            outputLength: m * n,
            run: (d, [a, b], o) => d.matmul(a, b, o, m, n, k),
          });
        },
      ),
      { seed: 9, numRuns: 8 },
    );
  });

  /**
   * Matmuls whose row tiles (of 64 rows), over all products of a batch, pass a limit of 3
   * workgroups a dimension: numbered over y and z, with workgroups past the last left idle.
   */
  function foldedMatmuls(random: Random): OpCase[] {
    const shapes = [
      { m: 200, n: 70, k: 5, count: 1 }, // 4 row tiles: 3 x 2, 2 idle
      { m: 65, n: 130, k: 9, count: 4 }, // 8 row tiles of 4 products: 3 x 3, 1 idle
      { m: 3, n: 5, k: 4, count: 9 }, // one row tile each: 3 x 3
    ];
    return shapes.map(({ m, n, k, count }) => ({
      name: `matmul ${m}x${k}x${n} x ${count}`,
      tolerance: TOLERANCES.f32.matmul,
      inputs: [uniform(random, count * m * k, -1, 1), uniform(random, count * k * n, -1, 1)],
      outputLength: count * m * n,
      run: (d, [a, b], o) =>
        d.matmul(a, b, o, m, n, k, count === 1 ? {} : { batch: { count, strideA: m * k, strideB: k * n } }),
    }));
  }

  it('spills launches past the per-dimension workgroup limit into y (matmul: y and z)', async () => {
    // The real limit is 65535 workgroups; SwiftShader takes about a millisecond per workgroup,
    // so a device opened with a limit of 3 exercises the same two-dimensional indexing.
    const split = new Device(await WebGpuBackend.open(0, { workgroupsPerDimension: 3 }));
    try {
      const random = new Random(1);
      for (const opCase of [
        ...unaryCases(random, 2000),
        ...rowCases(random, 8, 40),
        ...foldedMatmuls(random),
      ]) {
        const expected = await runCase(cpu, opCase);
        expect(
          firstMismatch(await runCase(split, opCase), expected, opCase.tolerance),
          opCase.name,
        ).toBeUndefined();
      }
      // Column tiles stay in x; the row tiles of all products, over y and z, at most 3 x 3.
      const buffer = split.upload(new Float32Array(64 * 256));
      const out = split.allocate(4 * 64 * 256);
      expect(() => split.matmul(buffer, buffer, out, 1, 256, 1)).toThrow(
        /matmul 1x256: 4 column tiles of 64 exceed 3 \(at most 192 columns\)/,
      );
      const batch = { count: 10, strideA: 0, strideB: 0 };
      expect(() => split.matmul(buffer, buffer, out, 1, 1, 1, { batch })).toThrow(
        /matmul 1x1 x 10 products: 10 row tiles of 64 exceed 3 x 3/,
      );
      buffer.release();
      out.release();
    } finally {
      split.destroy();
    }
  });

  it('copies on the device and migrates to and from the cpu', async () => {
    const values = uniform(new Random(2), 64, -1, 1);
    const source = cpu.upload(values);
    const onGpu = await migrate(source, gpu);
    const copy = gpu.allocate(values.byteLength);
    gpu.copy(onGpu, copy);
    const back = await migrate(copy, cpu);
    expect(Array.from(await cpu.readFloat32(back))).toEqual(Array.from(values));
    expect(() => gpu.copyIn(copy, new Uint8Array(3))).toThrow(/multiples of 4 bytes/);
    for (const buffer of [source, onGpu, copy, back]) buffer.release();
  });

  it('pools buffers and reports OutOfDeviceMemory at a configured limit', async () => {
    const limited = await openDevice('webgpu', { memoryLimitBytes: 1 << 20 });
    try {
      const buffer = limited.allocate(1000);
      buffer.release();
      limited.allocate(900).release();
      expect(limited.memoryStats()).toMatchObject({ poolHits: 1, nativeAllocations: 1 });
      let caught: unknown;
      try {
        limited.allocate(2 << 20);
      } catch (error) {
        caught = error;
      }
      expect(isOutOfDeviceMemory(caught)).toBe(true);
      expect(caught).toMatchObject({ deviceId: 'webgpu:0', requestedBytes: 2 << 20 });
      expect(() => limited.allocate(limited.info().maxBufferBytes * 2)).toThrow(
        /larger than the largest buffer/,
      );
    } finally {
      limited.destroy();
    }
  });

  it('injected faults and the watchdog produce typed errors on the GPU too', async () => {
    const clock = new SimulatedClock();
    const decisions = ['timeout', 'error'];
    const faulty = await openDevice('webgpu', {
      clock,
      faultHook: { beforeLaunch: () => (decisions.shift() as 'ok') ?? 'ok' },
    });
    try {
      const x = faulty.upload(new Float32Array([1, 2, 3, 4]));
      const y = faulty.allocate(16);
      faulty.unary('tanh', x, y, { deadlineMs: 250 });
      const sync = faulty.synchronize().catch((error: unknown) => error);
      clock.advance(250);
      const error = await sync;
      expect(isKernelTimeout(error)).toBe(true);
      expect(() => faulty.unary('tanh', x, y)).toThrow(DeviceError);
      faulty.unary('tanh', x, y);
      const result = await faulty.readFloat32(y);
      expect(result[3]).toBeCloseTo(Math.tanh(4), 5);
    } finally {
      faulty.destroy();
    }
  });
});

describe.skipIf(!webgpu.available)('webgpu adapters', () => {
  it('lists distinct adapters, best first, and opens each by index', async () => {
    const reports = await requestWebGpuAdapters();
    expect(new Set(reports.map((report) => `${report.description}|${report.software}`)).size).toBe(
      reports.length,
    );
    const last = await openDevice(`webgpu:${reports.length - 1}`);
    expect(last.info().adapter).toBe(reports.at(-1)!.description);
    last.destroy();
    await expect(openDevice(`webgpu:${reports.length}`)).rejects.toThrow(
      `no adapter webgpu:${reports.length}`,
    );
  });
});
