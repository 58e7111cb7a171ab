/**
 * The core of a `Device` (see Device.ts for the kernels): one backend behind argument checks,
 * a memory pool, streams, fault hooks and a watchdog. Backends only fill hooks (`Backend.ts`).
 *
 * Launches are asynchronous. Each op method checks its arguments at once (throwing a
 * `DeviceError`), asks the fault hook, and enqueues the kernel; failures that happen on the
 * device later (a kernel past its `deadlineMs`, a lost device) are kept and reported by the
 * next synchronization point: `synchronize()` or `copyOut()`. Like CUDA's sticky errors, the
 * first one wins and is reported once.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { openDevice } from 'zbmd/gpu';
 *
 * const device = await openDevice('cpu');
 * const x = device.upload(new Float32Array([-1, 2]));
 * const y = device.allocate(8);
 * device.unary('relu', x, y);
 * assert.deepEqual(Array.from(await device.copyOut(y)), [0, 2]);
 * device.destroy();
 * ```
 */
import { totalmem } from 'node:os';
import { type Clock, RealClock, type TimerHandle } from '../actor/Clock.js';
import { type Backend, type KernelLaunch, kernelName } from './Backend.js';
import { type BufferOwner, DeviceBuffer } from './DeviceBuffer.js';
import { DeviceError, KernelTimeout, NativeOutOfMemory, OutOfDeviceMemory } from './errors.js';
import { DEFAULT_POOL_LIMIT_BYTES, MemoryPool, type MemoryStats } from './internal/MemoryPool.js';
import {
  type DeviceInfo,
  DTYPE_BYTES,
  type DType,
  type FaultHook,
  isDType,
  type LaunchOptions,
  type Stream,
} from './types.js';

/** Streams a device hands out at most (CUDA); single-queue backends alias them all to one. */
export const MAX_STREAMS_PER_DEVICE = 16;
/** How long a synchronization point waits by default before reporting `KernelTimeout`. */
export const DEFAULT_WATCHDOG_DEADLINE_MS = 60_000;

export interface DeviceOptions {
  /** Time source of the watchdog; a `SimulatedClock` in tests. Real time by default. */
  readonly clock?: Clock;
  /** Asked before every kernel launch; the seeded FaultInjector plugs in here. */
  readonly faultHook?: FaultHook;
  /** Bytes this device may hold (in use plus pooled); the device's memory (else the host's) by default. */
  readonly memoryLimitBytes?: number;
  /** Bytes of freed buffers kept for reuse; 256 MiB by default. */
  readonly poolLimitBytes?: number;
  /** Deadline of `synchronize` and `copyOut` when the call names none; 60 s by default. */
  readonly watchdogDeadlineMs?: number;
}

/** What `launchStats` reports. */
export interface LaunchStats {
  readonly launches: number;
  readonly byKernel: Readonly<Record<string, number>>;
}

const NEVER = new Promise<void>(() => {});

export class DeviceCore implements BufferOwner {
  readonly id: string;
  private readonly information: DeviceInfo;
  private readonly clock: Clock;
  private readonly faultHook: FaultHook | undefined;
  private readonly pool: MemoryPool;
  private readonly watchdogDeadlineMs: number;
  private readonly streamCount: number;
  private readonly freeStreams: number[] = [];
  private createdStreams = 1;
  /** Per stream, the kernel an injected fault left hanging (it never completes). */
  private readonly hungKernels = new Map<number, string>();
  private pendingError: DeviceError | undefined;
  /** Kernels enqueued since the device opened (or `resetLaunchStats`), by kernel name. */
  private readonly launchCounts = new Map<string, number>();
  /** Synchronization points waiting now; a failure recorded meanwhile ends their wait. */
  private readonly failureWaiters = new Set<(error: DeviceError) => void>();
  private destroyed = false;

  /** @internal Use `openDevice` (detect.ts). */
  constructor(
    protected readonly backend: Backend,
    options: DeviceOptions = {},
  ) {
    this.information = backend.info();
    this.id = this.information.id;
    this.clock = options.clock ?? new RealClock();
    this.faultHook = options.faultHook;
    this.watchdogDeadlineMs = checkDeadline(
      this.id,
      'open',
      options.watchdogDeadlineMs ?? DEFAULT_WATCHDOG_DEADLINE_MS,
    );
    const limitBytes =
      options.memoryLimitBytes ??
      (this.information.memoryBytes > 0 ? this.information.memoryBytes : totalmem());
    const poolLimitBytes = options.poolLimitBytes ?? DEFAULT_POOL_LIMIT_BYTES;
    for (const [name, value] of [
      ['memoryLimitBytes', limitBytes],
      ['poolLimitBytes', poolLimitBytes],
    ] as const) {
      if (!Number.isFinite(value) || value < 0)
        throw new DeviceError(this.id, 'open', `${name} must be a number >= 0, got ${value}`);
    }
    this.pool = new MemoryPool(this.id, backend, limitBytes, poolLimitBytes);
    this.streamCount = Math.max(1, Math.min(backend.maxStreams, MAX_STREAMS_PER_DEVICE));
  }

  get backendKind(): DeviceInfo['backend'] {
    return this.information.backend;
  }

  info(): DeviceInfo {
    return this.information;
  }

  memoryStats(): MemoryStats {
    return this.pool.stats();
  }

  /**
   * Kernel statistics: the launches enqueued since the device opened or the last
   * `resetLaunchStats`, in all and by kernel name (`matmul`, `binary.add`, `adamStep`). A
   * launch an injected fault refused is not counted; one it left hanging is. Copies are not
   * launches. `Device.conv2d` counts as its three launches.
   */
  launchStats(): LaunchStats {
    let launches = 0;
    for (const count of this.launchCounts.values()) launches += count;
    return { launches, byKernel: Object.fromEntries(this.launchCounts) };
  }

  resetLaunchStats(): void {
    this.launchCounts.clear();
  }

  /** Returns every pooled (free) buffer to the backend; the bytes released. */
  trimPool(): number {
    this.checkOpen('trimPool');
    return this.pool.trim();
  }

  // ---- memory -------------------------------------------------------------------------------

  /** A buffer of `byteLength` bytes of `dtype` (contents undefined), with one reference. */
  allocate(byteLength: number, dtype: DType = 'f32'): DeviceBuffer {
    this.checkOpen('allocate');
    if (!isDType(dtype)) throw new DeviceError(this.id, 'allocate', `unknown dtype '${String(dtype)}'`);
    const elementBytes = DTYPE_BYTES[dtype];
    if (!Number.isInteger(byteLength) || byteLength <= 0 || byteLength % elementBytes !== 0) {
      throw new DeviceError(
        this.id,
        'allocate',
        `byteLength must be a positive multiple of ${elementBytes} for ${dtype}, got ${byteLength}`,
      );
    }
    if (byteLength > this.information.maxBufferBytes) {
      throw new OutOfDeviceMemory(
        this.id,
        'allocate',
        byteLength,
        this.information.maxBufferBytes,
        'larger than the largest buffer',
      );
    }
    const { native, capacityBytes } = this.guard('allocate', () => this.pool.acquire(byteLength));
    return new DeviceBuffer(this, native, byteLength, dtype, capacityBytes);
  }

  /** Allocates a buffer for `data` and copies it in. */
  upload(
    data: Float32Array | Uint8Array,
    dtype: DType = data instanceof Float32Array ? 'f32' : 'u8',
  ): DeviceBuffer {
    const buffer = this.allocate(data.byteLength, dtype);
    try {
      this.copyIn(buffer, data);
    } catch (error) {
      buffer.release();
      throw error;
    }
    return buffer;
  }

  /** Drops one reference to `buffer` (the last one returns it to the pool). */
  free(buffer: DeviceBuffer): void {
    this.checkBuffer('free', buffer, 'buffer');
    buffer.release();
  }

  /** @internal Called by `DeviceBuffer.release` on the last reference. */
  releaseBuffer(buffer: DeviceBuffer): void {
    if (this.destroyed) return;
    this.pool.release(buffer.native, buffer.byteLength, buffer.capacityBytes);
  }

  /** Writes `host` into `buffer` at `offsetBytes`, ordered after earlier work on the stream. */
  copyIn(buffer: DeviceBuffer, host: ArrayBufferView, offsetBytes = 0, options: LaunchOptions = {}): void {
    this.checkBuffer('copyIn', buffer, 'buffer');
    if (!ArrayBuffer.isView(host))
      throw new DeviceError(this.id, 'copyIn', 'host data must be a typed array or DataView');
    const bytes = new Uint8Array(host.buffer, host.byteOffset, host.byteLength);
    this.checkRange('copyIn', buffer, offsetBytes, bytes.byteLength);
    const stream = this.streamIndex('copyIn', options.stream);
    this.guard('copyIn', () => this.backend.copyIn(buffer.native, bytes, offsetBytes, stream));
  }

  /** Reads the whole buffer once the work before it has finished: a Float32Array for f32, bytes otherwise. */
  async copyOut(buffer: DeviceBuffer, options: LaunchOptions = {}): Promise<Float32Array | Uint8Array> {
    this.checkBuffer('copyOut', buffer, 'buffer');
    const stream = this.streamIndex('copyOut', options.stream);
    this.throwPendingError();
    const bytes = await this.watch(
      'copyOut',
      this.streamCompletion(stream).then(() =>
        this.backend.copyOut(buffer.native, buffer.byteLength, stream),
      ),
      options.deadlineMs ?? this.watchdogDeadlineMs,
      stream,
    );
    this.throwPendingError();
    if (buffer.dtype !== 'f32') return bytes;
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  }

  /** `copyOut` for an f32 buffer, typed. */
  async readFloat32(buffer: DeviceBuffer, options: LaunchOptions = {}): Promise<Float32Array> {
    if (buffer.dtype !== 'f32')
      throw new DeviceError(this.id, 'readFloat32', `buffer is ${buffer.dtype}, not f32`);
    return (await this.copyOut(buffer, options)) as Float32Array;
  }

  /** Copies all of `source` into `target` (at least as large) on the device. */
  copy(source: DeviceBuffer, target: DeviceBuffer, options: LaunchOptions = {}): void {
    this.checkBuffer('copy', source, 'source');
    this.checkBuffer('copy', target, 'target');
    this.checkRange('copy', target, 0, source.byteLength);
    const stream = this.streamIndex('copy', options.stream);
    this.guard('copy', () => this.backend.copy(source.native, target.native, source.byteLength, stream));
  }

  // ---- streams and synchronization ----------------------------------------------------------

  /**
   * A stream from the device's pool (CUDA: its own CUstream, up to 16 per device). WebGPU and
   * cpu have a single queue, so every stream they hand out is that queue.
   */
  acquireStream(): Stream {
    this.checkOpen('acquireStream');
    if (this.streamCount === 1) return { deviceId: this.id, index: 0 };
    const reused = this.freeStreams.pop();
    if (reused !== undefined) return { deviceId: this.id, index: reused };
    if (this.createdStreams >= this.streamCount) {
      throw new DeviceError(
        this.id,
        'acquireStream',
        `all ${this.streamCount - 1} extra streams are in use; release one first`,
      );
    }
    const index = this.createdStreams++;
    this.guard('acquireStream', () => this.backend.createStream(index));
    return { deviceId: this.id, index };
  }

  releaseStream(stream: Stream): void {
    const index = this.streamIndex('releaseStream', stream);
    if (index !== 0 && !this.freeStreams.includes(index)) this.freeStreams.push(index);
  }

  /**
   * Waits until the work enqueued on `stream` (all streams by default) has finished, then
   * reports the first failure since the last synchronization point. A kernel that does not
   * finish within `deadlineMs` (device default otherwise) becomes a `KernelTimeout`.
   */
  async synchronize(options: LaunchOptions = {}): Promise<void> {
    this.checkOpen('synchronize');
    const streams =
      options.stream === undefined ? this.allStreams() : [this.streamIndex('synchronize', options.stream)];
    this.throwPendingError();
    const done = Promise.all(streams.map((stream) => this.streamCompletion(stream))).then(() => undefined);
    await this.watch('synchronize', done, options.deadlineMs ?? this.watchdogDeadlineMs, ...streams);
    this.throwPendingError();
  }

  /** Releases every pooled buffer and native resource; the device is unusable afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.pool.trim();
    this.destroyed = true;
    this.backend.destroy();
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  // ---- internal: launches, watchdog, errors -------------------------------------------------

  /** @internal Checks the fault hook, enqueues `launch`, and arms its watchdog. */
  enqueue(launch: KernelLaunch, options: LaunchOptions): void {
    const name = kernelName(launch);
    const stream = this.streamIndex(name, options.stream);
    const deadlineMs =
      options.deadlineMs === undefined ? undefined : checkDeadline(this.id, name, options.deadlineMs);
    const decision = this.faultHook?.beforeLaunch?.(this.id, name) ?? 'ok';
    if (decision === 'error') throw new DeviceError(this.id, name, 'injected device error');
    if (decision === 'oom') {
      const stats = this.pool.stats();
      throw new OutOfDeviceMemory(
        this.id,
        name,
        0,
        Math.max(0, stats.limitBytes - stats.reservedBytes),
        'injected',
      );
    }
    this.launchCounts.set(name, (this.launchCounts.get(name) ?? 0) + 1);
    if (decision === 'timeout') {
      // The kernel hangs: its stream never completes, so the watchdog reports it.
      if (!this.hungKernels.has(stream)) this.hungKernels.set(stream, name);
    } else {
      this.guard(name, () => this.backend.run(launch, stream));
    }
    if (deadlineMs !== undefined) this.armWatchdog(name, stream, deadlineMs);
  }

  /** @internal Releases `buffers` once the work enqueued so far on `stream` has finished. */
  releaseAfter(stream: Stream | undefined, buffers: readonly DeviceBuffer[]): void {
    const index = this.streamIndex('release', stream);
    this.streamCompletion(index).then(
      () => {
        for (const buffer of buffers) if (!buffer.released) buffer.release();
      },
      () => {
        // The failure is reported by the stream's next synchronization point.
      },
    );
  }

  /** @internal Argument check: a live buffer of this device. */
  checkBuffer(operation: string, buffer: DeviceBuffer, role: string): void {
    this.checkOpen(operation);
    if (!(buffer instanceof DeviceBuffer))
      throw new DeviceError(this.id, operation, `${role} is not a DeviceBuffer`);
    if (buffer.owner !== this) {
      throw new DeviceError(
        this.id,
        operation,
        `${role} belongs to ${buffer.deviceId}, not ${this.id}; migrate it first`,
      );
    }
    buffer.assertLive(operation);
  }

  private checkOpen(operation: string): void {
    if (this.destroyed) throw new DeviceError(this.id, operation, 'the device was destroyed');
  }

  private checkRange(operation: string, buffer: DeviceBuffer, offsetBytes: number, byteLength: number): void {
    const alignment = this.information.copyAlignmentBytes;
    if (
      !Number.isInteger(offsetBytes) ||
      offsetBytes < 0 ||
      offsetBytes % alignment !== 0 ||
      byteLength % alignment !== 0
    ) {
      throw new DeviceError(
        this.id,
        operation,
        `offset ${offsetBytes} and length ${byteLength} must be multiples of ${alignment} bytes`,
      );
    }
    if (offsetBytes + byteLength > buffer.byteLength) {
      throw new DeviceError(
        this.id,
        operation,
        `${byteLength} bytes at offset ${offsetBytes} overrun the ${buffer.byteLength}-byte buffer`,
      );
    }
  }

  private streamIndex(operation: string, stream: Stream | undefined): number {
    if (stream === undefined) return 0;
    if (
      stream.deviceId !== this.id ||
      !Number.isInteger(stream.index) ||
      stream.index < 0 ||
      stream.index >= this.createdStreams
    ) {
      throw new DeviceError(
        this.id,
        operation,
        `stream ${stream.deviceId}#${stream.index} does not belong to this device`,
      );
    }
    return stream.index;
  }

  private allStreams(): number[] {
    return Array.from({ length: this.createdStreams }, (_, index) => index);
  }

  private streamCompletion(stream: number): Promise<void> {
    if (this.hungKernels.has(stream)) return NEVER;
    return this.backend.completion(stream);
  }

  private armWatchdog(name: string, stream: number, deadlineMs: number): void {
    let timer: TimerHandle | undefined;
    timer = this.clock.setTimer(deadlineMs, () => {
      timer = undefined;
      this.hungKernels.delete(stream);
      this.recordError(new KernelTimeout(this.id, name, deadlineMs));
    });
    this.streamCompletion(stream).then(
      () => {
        if (timer !== undefined) this.clock.cancelTimer(timer);
      },
      (error: unknown) => {
        if (timer !== undefined) this.clock.cancelTimer(timer);
        this.recordError(this.typed(name, error));
      },
    );
  }

  /**
   * Resolves with `work`; rejects with `KernelTimeout` once `deadlineMs` pass on the clock, or
   * with a failure recorded meanwhile (a launch's own watchdog firing), whichever comes first.
   */
  private watch<T>(
    operation: string,
    work: Promise<T>,
    deadlineMs: number,
    ...streams: number[]
  ): Promise<T> {
    checkDeadline(this.id, operation, deadlineMs);
    return new Promise<T>((resolve, reject) => {
      const settle = (error: DeviceError | undefined, value?: T) => {
        this.clock.cancelTimer(timer);
        this.failureWaiters.delete(onFailure);
        if (error === undefined) resolve(value as T);
        else reject(error);
      };
      const onFailure = (error: DeviceError) => settle(error);
      const timer = this.clock.setTimer(deadlineMs, () => {
        const hung = streams.map((stream) => this.hungKernels.get(stream)).find((name) => name !== undefined);
        for (const stream of streams) this.hungKernels.delete(stream);
        settle(new KernelTimeout(this.id, hung ?? operation, deadlineMs));
      });
      this.failureWaiters.add(onFailure);
      work.then(
        (value) => settle(undefined, value),
        (error: unknown) => settle(this.typed(operation, error)),
      );
    });
  }

  /** Keeps the first failure for the next synchronization point, or hands it to those waiting now. */
  private recordError(error: DeviceError): void {
    if (this.failureWaiters.size > 0) {
      for (const waiter of [...this.failureWaiters]) waiter(error);
      return;
    }
    this.pendingError ??= error;
  }

  private throwPendingError(): void {
    const error = this.pendingError;
    if (error === undefined) return;
    this.pendingError = undefined;
    throw error;
  }

  /** Runs a backend hook, turning whatever it throws into a typed error with context. */
  private guard<T>(operation: string, hook: () => T): T {
    try {
      return hook();
    } catch (error) {
      throw this.typed(operation, error);
    }
  }

  private typed(operation: string, error: unknown): DeviceError {
    if (error instanceof DeviceError) return error;
    if (error instanceof NativeOutOfMemory) {
      return new OutOfDeviceMemory(
        this.id,
        operation,
        error.requestedBytes,
        error.availableBytes,
        'device allocator',
      );
    }
    const message = error instanceof Error ? error.message : String(error);
    return new DeviceError(this.id, operation, message, { cause: error });
  }
}

function checkDeadline(deviceId: string, operation: string, deadlineMs: number): number {
  if (typeof deadlineMs !== 'number' || !(deadlineMs > 0) || !Number.isFinite(deadlineMs)) {
    throw new DeviceError(
      deviceId,
      operation,
      `deadlineMs must be a finite number > 0, got ${String(deadlineMs)}`,
    );
  }
  return deadlineMs;
}
