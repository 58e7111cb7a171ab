/** Shared types of the GPU layer: dtypes, backend kinds, device information, fault hooks. */

/** Element types a device buffer can hold. Kernels compute in f32; bf16 feeds CUDA matmul. */
export type DType = 'f32' | 'bf16' | 'u8';

export const DTYPE_BYTES: Readonly<Record<DType, number>> = { f32: 4, bf16: 2, u8: 1 };

export function isDType(value: unknown): value is DType {
  return value === 'f32' || value === 'bf16' || value === 'u8';
}

export type BackendKind = 'cpu' | 'webgpu' | 'cuda';

export const BACKEND_KINDS: readonly BackendKind[] = ['cpu', 'webgpu', 'cuda'];

/** What `Device.info()` and `detectDevices()` tell about a device. */
export interface DeviceInfo {
  /** `backend:index`, the id used in errors, `ZBMD_DEVICE` and migration. */
  readonly id: string;
  readonly backend: BackendKind;
  readonly index: number;
  readonly name: string;
  /** Total device memory in bytes as the backend reports it (host memory for cpu; 0 = not reported, WebGPU). */
  readonly memoryBytes: number;
  /** CUDA compute capability such as `9.0`; absent elsewhere. */
  readonly computeCapability?: string;
  /** WebGPU adapter details (vendor, architecture, description); absent elsewhere. */
  readonly adapter?: string;
  /** True for a device that runs on the CPU (SwiftShader, the cpu backend). */
  readonly software: boolean;
  /** Bytes: copy offsets and lengths must be multiples of this. */
  readonly copyAlignmentBytes: number;
  /** Largest single buffer in bytes. */
  readonly maxBufferBytes: number;
}

/** What a fault hook decides for one launch (the seeded FaultInjector is wired to this). */
export type FaultDecision = 'ok' | 'error' | 'oom' | 'timeout';

export interface FaultHook {
  beforeLaunch?(deviceId: string, kernelName: string): FaultDecision;
}

/** Options every kernel launch takes. */
export interface LaunchOptions {
  /** Watchdog: the kernel must finish within this many ms (on the device's clock). */
  readonly deadlineMs?: number;
  /** Stream to launch on (from `Device.acquireStream`); the device's default stream otherwise. */
  readonly stream?: Stream;
}

/** An ordered queue of work on one device (a CUDA stream; the single WebGPU/cpu queue). */
export interface Stream {
  readonly deviceId: string;
  readonly index: number;
}

/** Matmul precision: f32 everywhere; tf32 and bf16 on CUDA (cuBLAS tensor cores). */
export type MatmulPrecision = 'f32' | 'tf32' | 'bf16';
