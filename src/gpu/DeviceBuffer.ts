/**
 * A buffer in a device's memory, reference counted: `allocate` hands it out with one
 * reference, `retain` adds one, `release` (or `Device.free`) drops one, and the last release
 * returns the memory to the device's pool. Using a buffer after its last release is a
 * `DeviceError`, never a silent read of recycled memory.
 */
import type { NativeBuffer } from './Backend.js';
import { DeviceError } from './errors.js';
import { DTYPE_BYTES, type DType } from './types.js';

/** What a buffer needs from its device; implemented by `Device`. */
export interface BufferOwner {
  readonly id: string;
  /** @internal Called on the last reference's release. */
  releaseBuffer(buffer: DeviceBuffer): void;
}

let nextBufferId = 1;

export class DeviceBuffer {
  /** Unique per process, for logs and statistics. */
  readonly id = nextBufferId++;
  private references = 1;

  /** @internal Use `Device.allocate`. */
  constructor(
    readonly owner: BufferOwner,
    /** @internal The backend's buffer. */
    readonly native: NativeBuffer,
    readonly byteLength: number,
    readonly dtype: DType,
    /** Bytes actually reserved (the pool's size class). */
    readonly capacityBytes: number,
  ) {}

  /** The device id (`webgpu:0`). */
  get deviceId(): string {
    return this.owner.id;
  }

  /** Elements of `dtype` the buffer holds. */
  get length(): number {
    return this.byteLength / DTYPE_BYTES[this.dtype];
  }

  get referenceCount(): number {
    return this.references;
  }

  get released(): boolean {
    return this.references === 0;
  }

  retain(): this {
    this.assertLive('retain');
    this.references++;
    return this;
  }

  /** Drops one reference; the last one returns the memory to the pool. */
  release(): void {
    this.assertLive('release');
    this.references--;
    if (this.references === 0) this.owner.releaseBuffer(this);
  }

  /** Throws a `DeviceError` when the buffer was released. */
  assertLive(operation: string): void {
    if (this.references === 0) {
      throw new DeviceError(
        this.owner.id,
        operation,
        `buffer #${this.id} (${this.byteLength} bytes) used after it was freed`,
      );
    }
  }
}
