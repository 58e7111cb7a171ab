/**
 * The backend interface: a handful of hooks each backend fills (tinygrad's `Allocator` and
 * `Program` in one). The public `Device` class checks every argument, pools memory, runs the
 * fault hook and the watchdog, and adds context to errors; a backend only does the work.
 *
 * Launches are asynchronous: `run` enqueues and returns; `completion` resolves once everything
 * enqueued so far on a stream has finished; errors the device reports later surface there.
 */
import { type BackendKernelKind, type KernelKind, kernelName, type LaunchCall } from './kernels/catalog.js';
import type { DeviceInfo, MatmulPrecision } from './types.js';

/** A backend's own buffer (an ArrayBuffer, a GPUBuffer, a CUdeviceptr), as the device holds it. */
export interface NativeBuffer {
  readonly byteLength: number;
}

/**
 * One kernel launch, as the `Device` hands it to a backend once the arguments are checked: the
 * `launch` form of a backend kind in the catalog (`kernels/catalog.ts`), buffers native.
 */
export type KernelLaunch<K extends BackendKernelKind = BackendKernelKind> = LaunchCall<NativeBuffer, K>;

export type { KernelKind };
export { kernelName };

export interface Backend {
  /** What the device is; read once when the `Device` opens. */
  info(): DeviceInfo;
  /** Allocates `byteLength` bytes; throws `NativeOutOfMemory` when the device is full. */
  allocate(byteLength: number): NativeBuffer;
  free(buffer: NativeBuffer): void;
  /** Writes `bytes` at `offsetBytes`, ordered after earlier work on `stream`. */
  copyIn(buffer: NativeBuffer, bytes: Uint8Array, offsetBytes: number, stream: number): void;
  /** Reads the first `byteLength` bytes once earlier work on `stream` has finished. */
  copyOut(buffer: NativeBuffer, byteLength: number, stream: number): Promise<Uint8Array>;
  /** Copies `byteLength` bytes from `source` to `target` on the device. */
  copy(source: NativeBuffer, target: NativeBuffer, byteLength: number, stream: number): void;
  /** Enqueues one kernel on `stream`. */
  run(launch: KernelLaunch, stream: number): void;
  /** Resolves when all work enqueued so far on `stream` has finished; rejects on a device error. */
  completion(stream: number): Promise<void>;
  /** Creates stream number `index` (index 0, the default stream, exists from the start). */
  createStream(index: number): void;
  /** How many streams this backend can run at once (1 for a single queue). */
  readonly maxStreams: number;
  /** The matmul precisions this backend implements (every backend has f32). */
  readonly matmulPrecisions: readonly MatmulPrecision[];
  /** Releases every native resource; the backend is unusable afterwards. */
  destroy(): void;
}
