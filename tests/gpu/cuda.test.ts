/**
 * The CUDA backend. Without the NVIDIA driver (this machine, CI) it must say so in one line
 * and crash nothing; with a device (a lent GPU), every op is compared with the cpu reference,
 * and matmul runs in f32, tf32 and bf16 through cuBLAS.
 */
import { existsSync, readFileSync } from 'node:fs';
import koffi from 'koffi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import { cublasOperands } from '../../src/gpu/backends/CudaBackend.js';
import {
  CUBLAS_SIGNATURES,
  DRIVER_SIGNATURES,
  NVRTC_SIGNATURES,
} from '../../src/gpu/backends/cudaLibraries.js';
import {
  BackendUnavailable,
  type Device,
  detectDevices,
  firstMismatch,
  isOutOfDeviceMemory,
  migrate,
  openDevice,
  TOLERANCES,
} from '../../src/gpu/index.js';
import { naiveMatmul } from './naive.js';
import {
  ADAGRAD_VARIANTS,
  ADAM_VARIANTS,
  allCases,
  expectSameSteps,
  RMSPROP_VARIANTS,
  runAdagradSteps,
  runAdamSteps,
  runCase,
  runRmspropSteps,
  runSgdSteps,
  SGD_VARIANTS,
  uniform,
} from './opCases.js';
import { probeCuda } from './support.js';

const cuda = probeCuda();

describe('cuda bindings', () => {
  it('every declared driver, NVRTC and cuBLAS prototype parses, with the documented arity', () => {
    // Argument counts from cuda.h (CUDA 13), nvrtc.h and cublas_api.h.
    const arity: Record<string, number> = {
      cuLaunchKernel: 11,
      cublasGemmEx: 19,
      cublasSgemm_v2: 14,
      nvrtcCreateProgram: 6,
      cuMemcpyHtoDAsync_v2: 4,
    };
    for (const signature of [...DRIVER_SIGNATURES, ...NVRTC_SIGNATURES, ...CUBLAS_SIGNATURES]) {
      expect(() => koffi.proto(signature), signature).not.toThrow();
      const name = /([A-Za-z0-9_]+)\(/.exec(signature)![1];
      const count = signature.slice(signature.indexOf('(') + 1, -1).split(',').length;
      if (arity[name] !== undefined) expect(count, name).toBe(arity[name]);
    }
  });
});

/**
 * cublasSgemm as its documentation defines it (column-major, no GPU): C (m x n) = op(A) op(B),
 * op(A) m x k, op(B) k x n; element (i, j) of a matrix X with leading dimension ld is X[i + j ld];
 * operation 1 (CUBLAS_OP_T) reads X transposed.
 */
function columnMajorSgemm(
  operationA: number,
  operationB: number,
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  ldc: number,
): Float32Array {
  const c = new Float32Array(ldc * n);
  const at = (x: Float32Array, ld: number, transposed: boolean, i: number, j: number) =>
    transposed ? x[j + i * ld] : x[i + j * ld];
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++)
        sum += at(a, lda, operationA === 1, i, p) * at(b, ldb, operationB === 1, p, j);
      c[i + j * ldc] = sum;
    }
  return c;
}

describe('the cuBLAS arguments of a row-major matmul', () => {
  it('with every transpose flag, column-major sgemm on them gives the row-major product', () => {
    const random = new Random(12);
    const [m, n, k] = [4, 5, 3];
    for (const transposeA of [false, true])
      for (const transposeB of [false, true]) {
        const a = uniform(random, m * k, -1, 1); // (m, k), or (k, m) stored when transposeA
        const b = uniform(random, k * n, -1, 1); // (k, n), or (n, k) stored when transposeB
        const plainA = transposeA ? transposed(a, k, m) : a;
        const plainB = transposeB ? transposed(b, n, k) : b;
        const { operationA, operationB, leadingA, leadingB } = cublasOperands({
          m,
          n,
          k,
          transposeA,
          transposeB,
        });
        // CudaBackend.matmul's call: (opB, opA, n, m, k, b, ldb, a, lda, c, n)
        const c = columnMajorSgemm(operationB, operationA, n, m, k, b, leadingB, a, leadingA, n);
        expect(
          firstMismatch(c, naiveMatmul(plainA, plainB, m, n, k), TOLERANCES.f32.matmul),
          `transposeA ${transposeA}, transposeB ${transposeB}`,
        ).toBeUndefined();
      }
  });
});

function transposed(values: Float32Array, rows: number, columns: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < columns; c++) out[c * rows + r] = values[r * columns + c];
  return out;
}

/** The CUDA toolkit's driver API header, where one is installed (nvcc's toolkit here). */
const CUDA_HEADER = [
  '/usr/local/cuda/include/cuda.h',
  `${process.env.CUDA_HOME ?? '/nonexistent'}/include/cuda.h`,
].find((path) => existsSync(path));

describe.skipIf(CUDA_HEADER === undefined)(
  `cuda bindings against ${CUDA_HEADER ?? 'cuda.h (absent)'}`,
  () => {
    it('each bound driver symbol is the one cuda.h maps its name to, with the same parameter count', () => {
      const header = readFileSync(CUDA_HEADER!, 'utf8');
      for (const signature of DRIVER_SIGNATURES) {
        const bound = /([A-Za-z0-9_]+)\(/.exec(signature)![1];
        const name = bound.replace(/_v[0-9]+$/, '');
        // `#define cuMemAlloc cuMemAlloc_v2`, or `__CUDA_API_PTSZ(cuMemcpyHtoDAsync_v2)` (the default,
        // not per-thread, build maps that to its argument).
        const mapping = new RegExp(`#define ${name}\\s+(?:__CUDA_API_PT[SD][ZS]\\()?([A-Za-z0-9_]+)`).exec(
          header,
        );
        expect(bound, name).toBe(mapping?.[1] ?? name);
        const prototype = new RegExp(`CUresult CUDAAPI ${name}\\(([^;]*)\\);`).exec(header);
        expect(prototype, `${name} is declared`).not.toBeNull();
        const parameters = prototype![1].trim() === 'void' ? 0 : prototype![1].split(',').length;
        const ours = signature.slice(signature.indexOf('(') + 1, -1).split(',').length;
        expect(ours, `${bound}: parameters`).toBe(parameters);
      }
    });
  },
);

describe.skipIf(cuda.available)('cuda backend without a driver', () => {
  it('opening it is BackendUnavailable with a one-line reason', async () => {
    const error = await openDevice('cuda').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BackendUnavailable);
    const message = (error as Error).message;
    expect(message).toMatch(/^cuda backend unavailable: /);
    expect(message).not.toContain('\n');
  });

  it('detection lists it as unavailable and still finds the cpu', async () => {
    const detection = await detectDevices();
    expect(detection.devices.some((device) => device.backend === 'cpu')).toBe(true);
    expect(detection.unavailable.find((error) => error.backend === 'cuda')?.reason).toMatch(
      /libcuda|cuInit|no CUDA/,
    );
  });
});

/** bf16 is the upper 16 bits of an f32 (round to nearest even). */
function toBfloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  return bits.map((word) => (word + 0x7fff + ((word >>> 16) & 1)) >>> 16) as unknown as Uint16Array;
}

function fromBfloat16(values: Uint16Array): Float32Array {
  return new Float32Array(new Uint32Array(Array.from(values, (half) => half << 16)).buffer);
}

describe.skipIf(!cuda.available)(`cuda backend (${cuda.reason})`, () => {
  let gpu: Device;
  let cpu: Device;

  beforeAll(async () => {
    gpu = await openDevice('cuda');
    cpu = await openDevice('cpu');
  });

  afterAll(() => {
    gpu?.destroy();
    cpu?.destroy();
  });

  it('every op matches the cpu reference on random inputs', async () => {
    for (const opCase of allCases(20261121)) {
      const expected = await runCase(cpu, opCase);
      expect(
        firstMismatch(await runCase(gpu, opCase), expected, opCase.tolerance),
        opCase.name,
      ).toBeUndefined();
    }
  });

  it('the fused adamStep matches the cpu reference in every weight-decay variant', async () => {
    // f32 throughout on the GPU, f64 rounded per stored value on the cpu (fusedKernels.test.ts)
    const tolerance = { rtol: 1e-5, atol: 1e-7 };
    await expectSameSteps(cpu, gpu, ADAM_VARIANTS, (d, n, v) => runAdamSteps(d, 5, n, 5, v), tolerance);
  });

  it('the fused sgdStep matches the cpu reference in every momentum variant', async () => {
    // (the momentum buffer's cancelled sums: the atol of fusedKernels.test.ts's SGD_TOLERANCE)
    const tolerance = { rtol: 1e-5, atol: 2e-6 };
    await expectSameSteps(cpu, gpu, SGD_VARIANTS, (d, n, v) => runSgdSteps(d, 6, n, 5, v), tolerance);
  });

  it('the fused adagradStep matches the cpu reference in every variant', async () => {
    const tolerance = { rtol: 1e-5, atol: 1e-6 };
    await expectSameSteps(cpu, gpu, ADAGRAD_VARIANTS, (d, n, v) => runAdagradSteps(d, 7, n, 5, v), tolerance);
  });

  it('the fused rmspropStep matches the cpu reference in every variant', async () => {
    const tolerance = { rtol: 1e-5, atol: 1e-6 };
    await expectSameSteps(cpu, gpu, RMSPROP_VARIANTS, (d, n, v) => runRmspropSteps(d, 8, n, 5, v), tolerance);
  });

  it('matmul in tf32 and bf16 through cuBLAS stays within their tolerances', async () => {
    const random = new Random(4);
    const [m, n, k] = [96, 80, 256];
    const a = uniform(random, m * k, -1, 1);
    const b = uniform(random, k * n, -1, 1);
    const expected = naiveMatmul(a, b, m, n, k);
    const output = gpu.allocate(m * n * 4);
    const a32 = gpu.upload(a);
    const b32 = gpu.upload(b);
    gpu.matmul(a32, b32, output, m, n, k, { precision: 'tf32' });
    expect(firstMismatch(await gpu.readFloat32(output), expected, TOLERANCES.tf32.matmul)).toBeUndefined();
    const a16 = toBfloat16(a);
    const b16 = toBfloat16(b);
    const aBf = gpu.allocate(a16.byteLength, 'bf16');
    const bBf = gpu.allocate(b16.byteLength, 'bf16');
    gpu.copyIn(aBf, a16);
    gpu.copyIn(bBf, b16);
    gpu.matmul(aBf, bBf, output, m, n, k, { precision: 'bf16' });
    const rounded = naiveMatmul(fromBfloat16(a16), fromBfloat16(b16), m, n, k);
    expect(firstMismatch(await gpu.readFloat32(output), rounded, TOLERANCES.bf16.matmul)).toBeUndefined();
    for (const buffer of [output, a32, b32, aBf, bBf]) buffer.release();
  });

  it('runs work on several streams and synchronizes each', async () => {
    const streams = [gpu.acquireStream(), gpu.acquireStream()];
    expect(new Set(streams.map((stream) => stream.index)).size).toBe(2);
    const x = gpu.upload(new Float32Array([1, 4, 9]));
    const outputs = streams.map(() => gpu.allocate(12));
    for (const [index, stream] of streams.entries()) gpu.unary('sqrt', x, outputs[index], { stream });
    for (const [index, stream] of streams.entries()) {
      await gpu.synchronize({ stream });
      expect(Array.from(await gpu.readFloat32(outputs[index], { stream }))).toEqual([1, 2, 3]);
      gpu.releaseStream(stream);
    }
  });

  it('reports OutOfDeviceMemory for more than the device holds, and migrates to the cpu', async () => {
    const caught = (() => {
      try {
        gpu.allocate(gpu.info().memoryBytes);
      } catch (error) {
        return error;
      }
    })();
    expect(isOutOfDeviceMemory(caught)).toBe(true);
    const buffer = gpu.upload(new Float32Array([5, 6]));
    const moved = await migrate(buffer, cpu);
    expect(Array.from(await cpu.readFloat32(moved))).toEqual([5, 6]);
  });
});
