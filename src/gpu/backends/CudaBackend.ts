/**
 * The CUDA backend, on the driver API through koffi: the device's primary context, a pool of
 * non-blocking streams, kernels generated as CUDA C (`kernels/cuda.ts`) and compiled at run
 * time by NVRTC to PTX for the device's compute capability, matmul by cuBLAS (f32 sgemm; tf32
 * and bf16 through cublasGemmEx with f32 accumulation).
 *
 * On a machine without the NVIDIA driver, opening it throws `BackendUnavailable` with one line
 * saying which library is missing; nothing is loaded until a CUDA device is asked for.
 */
import koffi from 'koffi';
import type { Backend, KernelLaunch, NativeBuffer } from '../Backend.js';
import { BackendUnavailable, NativeOutOfMemory } from '../errors.js';
import { CUDA_BLOCK_SIZE, type CudaKernel } from '../kernels/cuda.js';
import type { DeviceInfo, MatmulPrecision } from '../types.js';
import { bindCudaLaunch, type CudaBuffer } from './cudaLaunch.js';
import { type CublasApi, type DriverApi, loadCublas, loadDriver, loadNvrtc } from './cudaLibraries.js';
import { compileToPtx } from './nvrtc.js';

const CUDA_SUCCESS = 0;
const CUDA_ERROR_OUT_OF_MEMORY = 2;
const CUDA_ERROR_NOT_READY = 600;
const CU_STREAM_NON_BLOCKING = 1;
const ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
const ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
const ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
const CUBLAS_OP_N = 0;
const CUBLAS_OP_T = 1;
const CUDA_R_32F = 0;
const CUDA_R_16BF = 14;
const CUBLAS_COMPUTE_32F = 68;
const CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
const CUBLAS_GEMM_DEFAULT = -1;
/** Streams per CUDA device (stream 0 included); see MAX_STREAMS_PER_DEVICE in DeviceCore. */
const CUDA_STREAMS = 16;
/** Bytes for one launch's kernel parameters: up to 32 pointers to 8-byte value slots. */
const PARAMETER_BLOCK_BYTES = 512;
/** Polls of a busy stream before waiting 1 ms between polls instead of a macrotask. */
const FAST_POLLS = 1000;

/** Throws an Error naming the call and the CUDA error, or NativeOutOfMemory. */
export function checkCuda(api: DriverApi, code: number, call: string): void {
  if (code === CUDA_SUCCESS) return;
  if (code === CUDA_ERROR_OUT_OF_MEMORY) throw new NativeOutOfMemory(0, freeDeviceBytes(api));
  const name: [string | null] = [null];
  api.cuGetErrorName(code, name);
  throw new Error(`${call} failed: ${name[0] ?? 'unknown error'} (${code})`);
}

function freeDeviceBytes(api: DriverApi): number {
  const free: [number | null] = [null];
  const total: [number | null] = [null];
  return api.cuMemGetInfo_v2(free, total) === CUDA_SUCCESS ? Number(free[0]) : 0;
}

let initialized: DriverApi | string | undefined;

/** The initialized driver API; `BackendUnavailable` (one line) when there is no driver or device. */
export function cudaDriver(): DriverApi {
  if (initialized === undefined) {
    const loaded = loadDriver();
    if (typeof loaded === 'string') {
      initialized = loaded;
    } else {
      const code = loaded.api.cuInit(0);
      const name: [string | null] = [null];
      if (code !== CUDA_SUCCESS) loaded.api.cuGetErrorName(code, name);
      initialized =
        code === CUDA_SUCCESS ? loaded.api : `cuInit failed: ${name[0] ?? code} (driver at ${loaded.path})`;
    }
  }
  if (typeof initialized === 'string') throw new BackendUnavailable('cuda', initialized);
  return initialized;
}

function attribute(api: DriverApi, device: number, which: number): number {
  const value: [number | null] = [null];
  checkCuda(api, api.cuDeviceGetAttribute(value, which, device), 'cuDeviceGetAttribute');
  return Number(value[0]);
}

/** What the driver says about device `index`. */
export function cudaDeviceInfo(
  api: DriverApi,
  index: number,
): DeviceInfo & { readonly handle: number; readonly multiprocessors: number } {
  const handle: [number | null] = [null];
  checkCuda(api, api.cuDeviceGet(handle, index), 'cuDeviceGet');
  const device = Number(handle[0]);
  const name = Buffer.alloc(256);
  checkCuda(api, api.cuDeviceGetName(name, name.length, device), 'cuDeviceGetName');
  const memory: [number | null] = [null];
  checkCuda(api, api.cuDeviceTotalMem_v2(memory, device), 'cuDeviceTotalMem');
  const major = attribute(api, device, ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  const minor = attribute(api, device, ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  return {
    id: `cuda:${index}`,
    backend: 'cuda',
    index,
    name: name.toString('utf8', 0, name.indexOf(0)),
    memoryBytes: Number(memory[0]),
    computeCapability: `${major}.${minor}`,
    software: false,
    copyAlignmentBytes: 1,
    maxBufferBytes: Number(memory[0]),
    handle: device,
    multiprocessors: attribute(api, device, ATTRIBUTE_MULTIPROCESSOR_COUNT),
  };
}

/** Every CUDA device the driver sees; `BackendUnavailable` without a driver. */
export function listCudaDevices(): DeviceInfo[] {
  const api = cudaDriver();
  const count: [number | null] = [null];
  checkCuda(api, api.cuDeviceGetCount(count), 'cuDeviceGetCount');
  return Array.from({ length: Number(count[0]) }, (_, index) => {
    const { handle: _handle, multiprocessors: _multiprocessors, ...info } = cudaDeviceInfo(api, index);
    return info;
  });
}

export class CudaBackend implements Backend {
  readonly maxStreams = CUDA_STREAMS;
  readonly matmulPrecisions: readonly MatmulPrecision[] = ['f32', 'tf32', 'bf16'];
  private readonly streams: unknown[] = [];
  private readonly functions = new Map<string, unknown>();
  private readonly modules: unknown[] = [];
  private readonly parameterBlock: unknown;
  private readonly parameterAddress: bigint;
  private cublasHandle: unknown;
  private destroyed = false;

  private constructor(
    private readonly api: DriverApi,
    private readonly information: DeviceInfo,
    private readonly device: number,
    private readonly context: unknown,
  ) {
    this.parameterBlock = koffi.alloc('uint8_t', PARAMETER_BLOCK_BYTES);
    this.parameterAddress = koffi.address(this.parameterBlock);
    this.createStream(0);
  }

  static open(index = 0): CudaBackend {
    const api = cudaDriver();
    const count: [number | null] = [null];
    checkCuda(api, api.cuDeviceGetCount(count), 'cuDeviceGetCount');
    if (!Number.isInteger(index) || index < 0 || index >= Number(count[0])) {
      throw new BackendUnavailable('cuda', `no device cuda:${index} (the driver sees ${count[0]})`);
    }
    const { handle, multiprocessors: _multiprocessors, ...info } = cudaDeviceInfo(api, index);
    const context: [unknown] = [null];
    checkCuda(api, api.cuDevicePrimaryCtxRetain(context, handle), 'cuDevicePrimaryCtxRetain');
    checkCuda(api, api.cuCtxSetCurrent(context[0]), 'cuCtxSetCurrent');
    return new CudaBackend(api, info, handle, context[0]);
  }

  info(): DeviceInfo {
    return this.information;
  }

  allocate(byteLength: number): NativeBuffer {
    this.makeCurrent();
    const pointer: [bigint | number | null] = [null];
    const code = this.api.cuMemAlloc_v2(pointer, byteLength);
    if (code === CUDA_ERROR_OUT_OF_MEMORY) throw new NativeOutOfMemory(byteLength, freeDeviceBytes(this.api));
    checkCuda(this.api, code, 'cuMemAlloc');
    const buffer: CudaBuffer = { byteLength, pointer: BigInt(pointer[0] as bigint | number) };
    return buffer;
  }

  free(buffer: NativeBuffer): void {
    this.makeCurrent();
    checkCuda(this.api, this.api.cuMemFree_v2((buffer as CudaBuffer).pointer), 'cuMemFree');
  }

  copyIn(buffer: NativeBuffer, bytes: Uint8Array, offsetBytes: number, stream: number): void {
    this.makeCurrent();
    // Pageable source: the driver stages it before returning, so the caller may reuse `bytes`.
    const target = (buffer as CudaBuffer).pointer + BigInt(offsetBytes);
    checkCuda(
      this.api,
      this.api.cuMemcpyHtoDAsync_v2(target, bytes, bytes.byteLength, this.streams[stream]),
      'cuMemcpyHtoDAsync',
    );
  }

  async copyOut(buffer: NativeBuffer, byteLength: number, stream: number): Promise<Uint8Array> {
    await this.completion(stream);
    this.makeCurrent();
    const bytes = new Uint8Array(byteLength);
    const source = (buffer as CudaBuffer).pointer;
    checkCuda(
      this.api,
      this.api.cuMemcpyDtoHAsync_v2(bytes, source, byteLength, this.streams[stream]),
      'cuMemcpyDtoHAsync',
    );
    checkCuda(this.api, this.api.cuStreamSynchronize(this.streams[stream]), 'cuStreamSynchronize');
    return bytes;
  }

  copy(source: NativeBuffer, target: NativeBuffer, byteLength: number, stream: number): void {
    this.makeCurrent();
    const call = this.api.cuMemcpyDtoDAsync_v2(
      (target as CudaBuffer).pointer,
      (source as CudaBuffer).pointer,
      byteLength,
      this.streams[stream],
    );
    checkCuda(this.api, call, 'cuMemcpyDtoDAsync');
  }

  run(launch: KernelLaunch, stream: number): void {
    this.makeCurrent();
    if (launch.kind === 'matmul') {
      this.matmul(launch, stream);
      return;
    }
    const bound = bindCudaLaunch(launch);
    const function_ = this.function(bound.kernel);
    this.packParameters(bound.kernel, bound.values);
    const code = this.api.cuLaunchKernel(
      function_,
      bound.blocks,
      1,
      1,
      CUDA_BLOCK_SIZE,
      1,
      1,
      0,
      this.streams[stream],
      this.parameterBlock,
      null,
    );
    checkCuda(this.api, code, `cuLaunchKernel(${bound.kernel.name})`);
  }

  /** Resolves once `stream` is idle, polling cuStreamQuery so the event loop keeps running. */
  async completion(stream: number): Promise<void> {
    for (let polls = 0; ; polls++) {
      if (this.destroyed) throw new Error('the CUDA device was destroyed while waiting');
      this.makeCurrent();
      const code = this.api.cuStreamQuery(this.streams[stream]);
      if (code !== CUDA_ERROR_NOT_READY) return checkCuda(this.api, code, 'cuStreamQuery');
      await new Promise<void>((resolve) =>
        polls < FAST_POLLS ? setImmediate(resolve) : setTimeout(resolve, 1),
      );
    }
  }

  createStream(index: number): void {
    this.makeCurrent();
    const stream: [unknown] = [null];
    checkCuda(this.api, this.api.cuStreamCreate(stream, CU_STREAM_NON_BLOCKING), 'cuStreamCreate');
    this.streams[index] = stream[0];
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.makeCurrent();
    if (this.cublasHandle !== undefined) {
      // A handle exists only if cuBLAS loaded, so this finds it cached.
      const cublas = loadCublas();
      if (typeof cublas !== 'string') cublas.api.cublasDestroy_v2(this.cublasHandle);
    }
    for (const stream of this.streams) this.api.cuStreamDestroy_v2(stream);
    for (const module of this.modules) this.api.cuModuleUnload(module);
    koffi.free(this.parameterBlock);
    this.api.cuDevicePrimaryCtxRelease_v2(this.device);
  }

  private makeCurrent(): void {
    // Several devices share the thread; each call names its context first (a cheap TLS store).
    checkCuda(this.api, this.api.cuCtxSetCurrent(this.context), 'cuCtxSetCurrent');
  }

  /** kernelParams: an array of pointers, each to its argument's 8-byte value slot after it. */
  private packParameters(kernel: CudaKernel, values: readonly (bigint | number)[]): void {
    const count = values.length;
    if (count !== kernel.parameters.length || count * 16 > PARAMETER_BLOCK_BYTES) {
      throw new Error(
        `${kernel.name}: ${count} arguments for ${kernel.parameters.length} parameters (at most ${PARAMETER_BLOCK_BYTES / 16})`,
      );
    }
    for (let index = 0; index < count; index++) {
      const slot = count * 8 + index * 8;
      koffi.encode(this.parameterBlock, index * 8, 'uint64_t', this.parameterAddress + BigInt(slot));
      const type = kernel.parameters[index];
      koffi.encode(
        this.parameterBlock,
        slot,
        type === 'pointer' ? 'uint64_t' : type === 'u32' ? 'uint32_t' : 'float',
        values[index],
      );
    }
  }

  private function(kernel: CudaKernel): unknown {
    const cached = this.functions.get(kernel.name);
    if (cached !== undefined) return cached;
    const nvrtc = loadNvrtc();
    if (typeof nvrtc === 'string') throw new Error(`cannot compile ${kernel.name}: ${nvrtc}`);
    const ptx = compileToPtx(nvrtc.api, kernel, this.information.computeCapability!);
    const module: [unknown] = [null];
    checkCuda(this.api, this.api.cuModuleLoadData(module, ptx), `cuModuleLoadData(${kernel.name})`);
    this.modules.push(module[0]);
    const function_: [unknown] = [null];
    checkCuda(
      this.api,
      this.api.cuModuleGetFunction(function_, module[0], kernel.name),
      `cuModuleGetFunction(${kernel.name})`,
    );
    this.functions.set(kernel.name, function_[0]);
    return function_[0];
  }

  private cublas(stream: number): { api: CublasApi; handle: unknown } {
    const cublas = loadCublas();
    if (typeof cublas === 'string') throw new Error(`matmul needs cuBLAS: ${cublas}`);
    if (this.cublasHandle === undefined) {
      const handle: [unknown] = [null];
      checkCublas(cublas.api.cublasCreate_v2(handle), 'cublasCreate');
      this.cublasHandle = handle[0];
    }
    checkCublas(cublas.api.cublasSetStream_v2(this.cublasHandle, this.streams[stream]), 'cublasSetStream');
    return { api: cublas.api, handle: this.cublasHandle };
  }

  /**
   * Row-major c (m, n) = op(a) (m, k) op(b) (k, n) is column-major c^T = op(b)^T op(a)^T: cuBLAS
   * gets b as its first operand, (n, m, k), with the operations and leading dimensions of
   * `cublasOperands`.
   */
  private matmul(launch: Extract<KernelLaunch, { kind: 'matmul' }>, stream: number): void {
    const { api, handle } = this.cublas(stream);
    const { m, n, k } = launch;
    const { operationB, operationA, leadingB, leadingA } = cublasOperands(launch);
    const a = (launch.a as CudaBuffer).pointer;
    const b = (launch.b as CudaBuffer).pointer;
    const c = (launch.output as CudaBuffer).pointer;
    const alpha = new Float32Array([1]);
    const beta = new Float32Array([0]);
    if (launch.precision === 'f32' && launch.batch === 1) {
      checkCublas(
        api.cublasSgemm_v2(
          handle,
          operationB,
          operationA,
          n,
          m,
          k,
          alpha,
          b,
          leadingB,
          a,
          leadingA,
          beta,
          c,
          n,
        ),
        'cublasSgemm',
      );
      return;
    }
    const inputType = launch.precision === 'bf16' ? CUDA_R_16BF : CUDA_R_32F;
    const outputType = launch.outputDType === 'bf16' ? CUDA_R_16BF : CUDA_R_32F;
    const compute = launch.precision === 'tf32' ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const algorithm = [compute, CUBLAS_GEMM_DEFAULT];
    if (launch.batch === 1) {
      const status = api.cublasGemmEx(
        ...[handle, operationB, operationA, n, m, k, alpha],
        ...[b, inputType, leadingB, a, inputType, leadingA, beta, c, outputType, n],
        ...algorithm,
      );
      checkCublas(status, 'cublasGemmEx');
      return;
    }
    // One call for every product; cuBLAS's first operand is b, so b's stride comes first.
    const status = api.cublasGemmStridedBatchedEx(
      ...[handle, operationB, operationA, n, m, k, alpha],
      ...[b, inputType, leadingB, launch.strideB, a, inputType, leadingA, launch.strideA],
      ...[beta, c, outputType, n, m * n, launch.batch],
      ...algorithm,
    );
    checkCublas(status, 'cublasGemmStridedBatchedEx');
  }
}

/**
 * cuBLAS's arguments for row-major c (m, n) = op(a) op(b), as column-major c^T = op(b)^T op(a)^T:
 * b goes first. A row-major (k, n) b reads as column-major (n, k) with leading dimension n, no
 * transpose; a row-major (n, k) b (transposeB) as column-major (k, n), leading dimension k,
 * which cuBLAS transposes. Likewise a: (m, k) has leading dimension k, (k, m) (transposeA) m.
 */
export function cublasOperands(launch: {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly transposeA: boolean;
  readonly transposeB: boolean;
}): { operationB: number; operationA: number; leadingB: number; leadingA: number } {
  return {
    operationB: launch.transposeB ? CUBLAS_OP_T : CUBLAS_OP_N,
    operationA: launch.transposeA ? CUBLAS_OP_T : CUBLAS_OP_N,
    leadingB: launch.transposeB ? launch.k : launch.n,
    leadingA: launch.transposeA ? launch.m : launch.k,
  };
}

const CUBLAS_STATUS_NAMES: Record<number, string> = {
  1: 'CUBLAS_STATUS_NOT_INITIALIZED',
  3: 'CUBLAS_STATUS_ALLOC_FAILED',
  7: 'CUBLAS_STATUS_INVALID_VALUE',
  8: 'CUBLAS_STATUS_ARCH_MISMATCH',
  11: 'CUBLAS_STATUS_MAPPING_ERROR',
  13: 'CUBLAS_STATUS_EXECUTION_FAILED',
  14: 'CUBLAS_STATUS_INTERNAL_ERROR',
  15: 'CUBLAS_STATUS_NOT_SUPPORTED',
  16: 'CUBLAS_STATUS_LICENSE_ERROR',
};

function checkCublas(status: number, call: string): void {
  if (status === 0) return;
  if (status === 3) throw new NativeOutOfMemory(0, 0);
  throw new Error(`${call} failed: ${CUBLAS_STATUS_NAMES[status] ?? 'unknown status'} (${status})`);
}
