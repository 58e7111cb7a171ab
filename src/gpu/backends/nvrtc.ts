/** Compiles one generated CUDA C kernel to PTX with NVRTC, for the device's compute capability. */
import type { CudaKernel } from '../kernels/cuda.js';
import type { NvrtcApi } from './cudaLibraries.js';

function checkNvrtc(api: NvrtcApi, code: number, call: string): void {
  if (code !== 0) throw new Error(`${call} failed: ${api.nvrtcGetErrorString(code)} (${code})`);
}

function programLog(api: NvrtcApi, program: unknown): string {
  const size: [number | null] = [null];
  if (api.nvrtcGetProgramLogSize(program, size) !== 0 || !size[0]) return '';
  const log = Buffer.alloc(Number(size[0]));
  api.nvrtcGetProgramLog(program, log);
  return log.toString('utf8', 0, Math.max(0, log.length - 1)).trim();
}

/** The PTX text, NUL-terminated, ready for cuModuleLoadData. `computeCapability` is like `9.0`. */
export function compileToPtx(api: NvrtcApi, kernel: CudaKernel, computeCapability: string): Buffer {
  const program: [unknown] = [null];
  checkNvrtc(
    api,
    api.nvrtcCreateProgram(program, kernel.source, `${kernel.name}.cu`, 0, null, null),
    'nvrtcCreateProgram',
  );
  try {
    const architecture = `--gpu-architecture=compute_${computeCapability.replace('.', '')}`;
    const code = api.nvrtcCompileProgram(program[0], 1, [architecture]);
    if (code !== 0) {
      throw new Error(
        `NVRTC could not compile ${kernel.name} (${api.nvrtcGetErrorString(code)}): ${programLog(api, program[0])}`,
      );
    }
    const size: [number | null] = [null];
    checkNvrtc(api, api.nvrtcGetPTXSize(program[0], size), 'nvrtcGetPTXSize');
    const ptx = Buffer.alloc(Number(size[0]));
    checkNvrtc(api, api.nvrtcGetPTX(program[0], ptx), 'nvrtcGetPTX');
    return ptx;
  } finally {
    api.nvrtcDestroyProgram(program);
  }
}
