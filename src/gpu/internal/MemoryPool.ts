/**
 * A caching allocator per device. Requests up to 1 MiB round up to a power-of-two size class
 * (256 B to 1 MiB); larger ones round up to a multiple of 1 MiB (the large path), so a
 * training loop that frees and re-allocates the same shapes reuses buffers instead of calling
 * the native allocator. Freed buffers wait in per-capacity free lists, at most
 * `poolLimitBytes` of them; beyond that they go straight back to the backend.
 *
 * At the memory limit (configured, or the native allocator failing) the pool empties its free
 * lists and tries once more before reporting `OutOfDeviceMemory`.
 */
import type { NativeBuffer } from '../Backend.js';
import { NativeOutOfMemory, OutOfDeviceMemory } from '../errors.js';

export const SMALL_CLASS_MIN_BYTES = 256;
export const SMALL_CLASS_MAX_BYTES = 1 << 20;
export const LARGE_GRANULE_BYTES = 1 << 20;
export const DEFAULT_POOL_LIMIT_BYTES = 256 * (1 << 20);

export interface MemoryStats {
  /** Bytes held by live buffers (their rounded capacities). */
  readonly inUseBytes: number;
  /** Bytes the live buffers asked for. */
  readonly requestedBytes: number;
  /** Highest `inUseBytes` seen since the device opened. */
  readonly peakInUseBytes: number;
  /** Bytes waiting in the free lists. */
  readonly pooledBytes: number;
  /** In use plus pooled: what the device holds from the backend. */
  readonly reservedBytes: number;
  readonly liveBuffers: number;
  /** Every successful `allocate`. */
  readonly allocations: number;
  /** Allocations served from the free lists. */
  readonly poolHits: number;
  /** Calls to the backend's allocator. */
  readonly nativeAllocations: number;
  /** The configured limit, or the device's memory. */
  readonly limitBytes: number;
}

export interface PoolBackend {
  allocate(byteLength: number): NativeBuffer;
  free(buffer: NativeBuffer): void;
}

/** The capacity a request of `byteLength` bytes is served with. */
export function capacityFor(byteLength: number): number {
  if (byteLength <= SMALL_CLASS_MIN_BYTES) return SMALL_CLASS_MIN_BYTES;
  if (byteLength <= SMALL_CLASS_MAX_BYTES) return 2 ** Math.ceil(Math.log2(byteLength));
  return Math.ceil(byteLength / LARGE_GRANULE_BYTES) * LARGE_GRANULE_BYTES;
}

export class MemoryPool {
  private readonly free = new Map<number, NativeBuffer[]>();
  private inUseBytes = 0;
  private requestedBytes = 0;
  private peakInUseBytes = 0;
  private pooledBytes = 0;
  private liveBuffers = 0;
  private allocations = 0;
  private poolHits = 0;
  private nativeAllocations = 0;

  constructor(
    private readonly deviceId: string,
    private readonly backend: PoolBackend,
    private readonly limitBytes: number,
    private readonly poolLimitBytes: number,
  ) {}

  /** A buffer of at least `byteLength` bytes; throws `OutOfDeviceMemory` at the limit. */
  acquire(byteLength: number): { native: NativeBuffer; capacityBytes: number } {
    const capacityBytes = capacityFor(byteLength);
    const cached = this.free.get(capacityBytes)?.pop();
    let native = cached;
    if (cached !== undefined) {
      this.pooledBytes -= capacityBytes;
      this.poolHits++;
    } else {
      native = this.allocateNative(byteLength, capacityBytes);
    }
    this.inUseBytes += capacityBytes;
    this.requestedBytes += byteLength;
    this.peakInUseBytes = Math.max(this.peakInUseBytes, this.inUseBytes);
    this.liveBuffers++;
    this.allocations++;
    return { native: native!, capacityBytes };
  }

  /** Takes a buffer back: into its free list, or to the backend when the pool is full. */
  release(native: NativeBuffer, byteLength: number, capacityBytes: number): void {
    this.inUseBytes -= capacityBytes;
    this.requestedBytes -= byteLength;
    this.liveBuffers--;
    if (this.pooledBytes + capacityBytes > this.poolLimitBytes) {
      this.backend.free(native);
      return;
    }
    let list = this.free.get(capacityBytes);
    if (list === undefined) {
      list = [];
      this.free.set(capacityBytes, list);
    }
    list.push(native);
    this.pooledBytes += capacityBytes;
  }

  /** Returns every pooled buffer to the backend; the bytes released. */
  trim(): number {
    const released = this.pooledBytes;
    for (const list of this.free.values()) for (const native of list) this.backend.free(native);
    this.free.clear();
    this.pooledBytes = 0;
    return released;
  }

  stats(): MemoryStats {
    return {
      inUseBytes: this.inUseBytes,
      requestedBytes: this.requestedBytes,
      peakInUseBytes: this.peakInUseBytes,
      pooledBytes: this.pooledBytes,
      reservedBytes: this.inUseBytes + this.pooledBytes,
      liveBuffers: this.liveBuffers,
      allocations: this.allocations,
      poolHits: this.poolHits,
      nativeAllocations: this.nativeAllocations,
      limitBytes: this.limitBytes,
    };
  }

  private allocateNative(byteLength: number, capacityBytes: number): NativeBuffer {
    if (this.inUseBytes + this.pooledBytes + capacityBytes > this.limitBytes) this.trim();
    const availableBytes = this.limitBytes - this.inUseBytes - this.pooledBytes;
    if (capacityBytes > availableBytes) {
      throw new OutOfDeviceMemory(
        this.deviceId,
        'allocate',
        byteLength,
        Math.max(0, availableBytes),
        'memory limit',
      );
    }
    try {
      return this.callNative(capacityBytes);
    } catch (error) {
      if (!(error instanceof NativeOutOfMemory)) throw error;
      // The native heap is full: give back what the pool caches and try once more.
      if (this.trim() === 0) throw this.nativeOom(byteLength, error);
      try {
        return this.callNative(capacityBytes);
      } catch (retryError) {
        if (retryError instanceof NativeOutOfMemory) throw this.nativeOom(byteLength, retryError);
        throw retryError;
      }
    }
  }

  private callNative(capacityBytes: number): NativeBuffer {
    const native = this.backend.allocate(capacityBytes);
    this.nativeAllocations++;
    return native;
  }

  private nativeOom(byteLength: number, error: NativeOutOfMemory): OutOfDeviceMemory {
    return new OutOfDeviceMemory(
      this.deviceId,
      'allocate',
      byteLength,
      error.availableBytes,
      'device allocator',
    );
  }
}
