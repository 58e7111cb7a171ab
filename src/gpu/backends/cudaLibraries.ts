/**
 * koffi bindings of the three NVIDIA libraries the CUDA backend uses, declared from their
 * documented C signatures (cuda.h of CUDA 13, nvrtc.h, cublas_api.h):
 *
 * - the driver API, libcuda.so.1 (installed with the NVIDIA driver, not the toolkit);
 * - NVRTC, libnvrtc.so.{13,12}, to compile generated CUDA C to PTX at run time;
 * - cuBLAS, libcublas.so.{13,12}, for matmul (cublasSgemm_v2 and cublasGemmEx; batched products
 *   with cublasGemmStridedBatchedEx).
 *
 * Where a header `#define`s a versioned name (cuMemAlloc -> cuMemAlloc_v2), the versioned
 * symbol is bound. Opaque handles (CUcontext, CUstream, CUmodule, CUfunction, nvrtcProgram,
 * cublasHandle_t) are `void *`; CUdeviceptr is `uint64_t`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';

type NativeFunction = (...args: any[]) => any;

export interface DriverApi {
  cuInit(flags: number): number;
  cuDriverGetVersion(version: [number | null]): number;
  cuDeviceGetCount(count: [number | null]): number;
  cuDeviceGet(device: [number | null], ordinal: number): number;
  cuDeviceGetName(name: Buffer, length: number, device: number): number;
  cuDeviceGetAttribute(value: [number | null], attribute: number, device: number): number;
  cuDeviceTotalMem_v2(bytes: [number | null], device: number): number;
  cuDevicePrimaryCtxRetain(context: [unknown], device: number): number;
  cuDevicePrimaryCtxRelease_v2(device: number): number;
  cuCtxSetCurrent(context: unknown): number;
  cuMemGetInfo_v2(free: [number | null], total: [number | null]): number;
  cuMemAlloc_v2(pointer: [bigint | number | null], bytes: number): number;
  cuMemFree_v2(pointer: bigint): number;
  cuMemcpyHtoDAsync_v2(target: bigint, source: Uint8Array, bytes: number, stream: unknown): number;
  cuMemcpyDtoHAsync_v2(target: Uint8Array, source: bigint, bytes: number, stream: unknown): number;
  cuMemcpyDtoDAsync_v2(target: bigint, source: bigint, bytes: number, stream: unknown): number;
  cuStreamCreate(stream: [unknown], flags: number): number;
  cuStreamQuery(stream: unknown): number;
  cuStreamSynchronize(stream: unknown): number;
  cuStreamDestroy_v2(stream: unknown): number;
  cuModuleLoadData(module: [unknown], image: Buffer): number;
  cuModuleGetFunction(function_: [unknown], module: unknown, name: string): number;
  cuModuleUnload(module: unknown): number;
  cuLaunchKernel(...args: unknown[]): number;
  cuGetErrorName(code: number, name: [string | null]): number;
}

export interface NvrtcApi {
  nvrtcVersion(major: [number | null], minor: [number | null]): number;
  nvrtcCreateProgram(
    program: [unknown],
    source: string,
    name: string,
    headers: number,
    sources: null,
    names: null,
  ): number;
  nvrtcCompileProgram(program: unknown, count: number, options: string[]): number;
  nvrtcGetProgramLogSize(program: unknown, size: [number | null]): number;
  nvrtcGetProgramLog(program: unknown, log: Buffer): number;
  nvrtcGetPTXSize(program: unknown, size: [number | null]): number;
  nvrtcGetPTX(program: unknown, ptx: Buffer): number;
  nvrtcDestroyProgram(program: [unknown]): number;
  nvrtcGetErrorString(code: number): string;
}

export interface CublasApi {
  cublasCreate_v2(handle: [unknown]): number;
  cublasDestroy_v2(handle: unknown): number;
  cublasSetStream_v2(handle: unknown, stream: unknown): number;
  cublasSgemm_v2(...args: unknown[]): number;
  cublasGemmEx(...args: unknown[]): number;
  cublasGemmStridedBatchedEx(...args: unknown[]): number;
}

export const DRIVER_SIGNATURES = [
  'int cuInit(unsigned int flags)',
  'int cuDriverGetVersion(_Out_ int *version)',
  'int cuDeviceGetCount(_Out_ int *count)',
  'int cuDeviceGet(_Out_ int *device, int ordinal)',
  'int cuDeviceGetName(uint8_t *name, int length, int device)',
  'int cuDeviceGetAttribute(_Out_ int *value, int attribute, int device)',
  'int cuDeviceTotalMem_v2(_Out_ size_t *bytes, int device)',
  'int cuDevicePrimaryCtxRetain(_Out_ void **context, int device)',
  'int cuDevicePrimaryCtxRelease_v2(int device)',
  'int cuCtxSetCurrent(void *context)',
  'int cuMemGetInfo_v2(_Out_ size_t *free, _Out_ size_t *total)',
  'int cuMemAlloc_v2(_Out_ uint64_t *pointer, size_t bytes)',
  'int cuMemFree_v2(uint64_t pointer)',
  'int cuMemcpyHtoDAsync_v2(uint64_t target, const void *source, size_t bytes, void *stream)',
  'int cuMemcpyDtoHAsync_v2(void *target, uint64_t source, size_t bytes, void *stream)',
  'int cuMemcpyDtoDAsync_v2(uint64_t target, uint64_t source, size_t bytes, void *stream)',
  'int cuStreamCreate(_Out_ void **stream, unsigned int flags)',
  'int cuStreamQuery(void *stream)',
  'int cuStreamSynchronize(void *stream)',
  'int cuStreamDestroy_v2(void *stream)',
  'int cuModuleLoadData(_Out_ void **module, const void *image)',
  'int cuModuleGetFunction(_Out_ void **function, void *module, const char *name)',
  'int cuModuleUnload(void *module)',
  'int cuLaunchKernel(void *function, unsigned int gridX, unsigned int gridY, unsigned int gridZ, unsigned int blockX, unsigned int blockY, unsigned int blockZ, unsigned int sharedBytes, void *stream, void *parameters, void *extra)',
  'int cuGetErrorName(int code, _Out_ const char **name)',
];

export const NVRTC_SIGNATURES = [
  'int nvrtcVersion(_Out_ int *major, _Out_ int *minor)',
  'int nvrtcCreateProgram(_Out_ void **program, const char *source, const char *name, int headers, const char **sources, const char **names)',
  'int nvrtcCompileProgram(void *program, int count, const char **options)',
  'int nvrtcGetProgramLogSize(void *program, _Out_ size_t *size)',
  'int nvrtcGetProgramLog(void *program, uint8_t *log)',
  'int nvrtcGetPTXSize(void *program, _Out_ size_t *size)',
  'int nvrtcGetPTX(void *program, uint8_t *ptx)',
  'int nvrtcDestroyProgram(_Inout_ void **program)',
  'const char *nvrtcGetErrorString(int code)',
];

export const CUBLAS_SIGNATURES = [
  'int cublasCreate_v2(_Out_ void **handle)',
  'int cublasDestroy_v2(void *handle)',
  'int cublasSetStream_v2(void *handle, void *stream)',
  'int cublasSgemm_v2(void *handle, int transa, int transb, int m, int n, int k, const float *alpha, uint64_t a, int lda, uint64_t b, int ldb, const float *beta, uint64_t c, int ldc)',
  'int cublasGemmEx(void *handle, int transa, int transb, int m, int n, int k, const void *alpha, uint64_t a, int aType, int lda, uint64_t b, int bType, int ldb, const void *beta, uint64_t c, int cType, int ldc, int computeType, int algorithm)',
  'int cublasGemmStridedBatchedEx(void *handle, int transa, int transb, int m, int n, int k, const void *alpha, uint64_t a, int aType, int lda, int64_t strideA, uint64_t b, int bType, int ldb, int64_t strideB, const void *beta, uint64_t c, int cType, int ldc, int64_t strideC, int batchCount, int computeType, int algorithm)',
];

function bind<T>(library: koffi.IKoffiLib, signatures: readonly string[]): T {
  const api: Record<string, NativeFunction> = {};
  for (const signature of signatures) {
    const declared = library.func(signature);
    api[/([A-Za-z0-9_]+)\(/.exec(signature)![1]] = declared as NativeFunction;
  }
  return api as T;
}

/** Directories that may hold the toolkit's libraries: the user's, CUDA_HOME, /usr/local/cuda*, pip wheels. */
export function toolkitDirectories(): string[] {
  const directories = (process.env.ZBMD_CUDA_LIBRARY_PATH ?? '').split(':').filter((entry) => entry !== '');
  for (const home of [process.env.CUDA_HOME, process.env.CUDA_PATH])
    if (home) directories.push(join(home, 'lib64'));
  for (const root of ['/usr/local']) {
    if (!existsSync(root)) continue;
    for (const entry of readdirSync(root)) {
      if (entry.startsWith('cuda'))
        directories.push(join(root, entry, 'lib64'), join(root, entry, 'targets/x86_64-linux/lib'));
    }
  }
  const venv = '/opt/torch/.venv/lib';
  if (existsSync(venv)) {
    for (const python of readdirSync(venv)) {
      for (const wheel of ['nvidia/cu13/lib', 'nvidia/cuda_nvrtc/lib', 'nvidia/cublas/lib'])
        directories.push(join(venv, python, 'site-packages', wheel));
    }
  }
  return directories.filter((directory) => existsSync(directory));
}

/** Loads the first of `names` found (by the dynamic linker's search, then in `directories`). */
function loadFirst(
  names: readonly string[],
  directories: readonly string[],
): { library: koffi.IKoffiLib; path: string } | string {
  const present = directories.filter((directory) => existsSync(directory));
  const candidates = [
    ...names,
    ...present.flatMap((directory) => names.map((name) => join(directory, name))),
  ];
  let problem = '';
  for (const candidate of candidates) {
    if (candidate.includes('/') && !existsSync(candidate)) continue;
    try {
      return { library: koffi.load(candidate), path: candidate };
    } catch (error) {
      // "No such file" is the expected miss; anything else (a missing dependency) is the reason.
      const message = (error as Error).message;
      if (!/No such file or directory/.test(message)) problem = `; ${candidate}: ${message}`;
    }
  }
  const where = present.length > 0 ? `the library path or ${present.join(', ')}` : 'the library path';
  return `${names[0]} not found in ${where}${problem}`;
}

let driver: { api: DriverApi; path: string } | string | undefined;

/** The driver API, or a one-line reason it cannot be loaded. */
export function loadDriver(): { api: DriverApi; path: string } | string {
  if (driver !== undefined) return driver;
  const loaded = loadFirst(
    ['libcuda.so.1', 'libcuda.so'],
    ['/usr/local/nvidia/lib64', '/usr/lib/x86_64-linux-gnu', '/usr/lib64'],
  );
  if (typeof loaded === 'string') {
    driver = `no NVIDIA driver: ${loaded}`;
    return driver;
  }
  try {
    driver = { api: bind<DriverApi>(loaded.library, DRIVER_SIGNATURES), path: loaded.path };
  } catch (error) {
    driver = `${loaded.path} lacks a driver API symbol: ${(error as Error).message}`;
  }
  return driver;
}

let nvrtc: { api: NvrtcApi; path: string } | string | undefined;

export function loadNvrtc(): { api: NvrtcApi; path: string } | string {
  if (nvrtc !== undefined) return nvrtc;
  const loaded = loadFirst(['libnvrtc.so', 'libnvrtc.so.13', 'libnvrtc.so.12'], toolkitDirectories());
  nvrtc =
    typeof loaded === 'string'
      ? loaded
      : { api: bind<NvrtcApi>(loaded.library, NVRTC_SIGNATURES), path: loaded.path };
  return nvrtc;
}

let cublas: { api: CublasApi; path: string } | string | undefined;

export function loadCublas(): { api: CublasApi; path: string } | string {
  if (cublas !== undefined) return cublas;
  const loaded = loadFirst(['libcublas.so', 'libcublas.so.13', 'libcublas.so.12'], toolkitDirectories());
  cublas =
    typeof loaded === 'string'
      ? loaded
      : { api: bind<CublasApi>(loaded.library, CUBLAS_SIGNATURES), path: loaded.path };
  return cublas;
}
