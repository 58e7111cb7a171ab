/**
 * A pool of Float32Array buffers keyed by length, so that a training loop whose shapes repeat
 * step after step allocates nothing after its first step. Buffers come back through `release`
 * (the autograd engine does it for gradients it no longer needs and `disposeGraph` for
 * activations). Bounded: at most `buffersPerLengthMax` buffers per length and `bytesMax` bytes in
 * all; a buffer over either limit is simply dropped for the garbage collector.
 */
type PoolableArray = Float32Array | Int32Array;

export class BufferPool<T extends PoolableArray = Float32Array> {
  private readonly free = new Map<number, T[]>();
  private pooledBytes = 0;

  constructor(
    private readonly allocate: (length: number) => T,
    readonly buffersPerLengthMax = 32,
    readonly bytesMax = 512 * 1024 * 1024,
  ) {}

  /** A buffer of `length` elements with unspecified contents. */
  take(length: number): T {
    const list = this.free.get(length);
    const buffer = list?.pop();
    if (buffer === undefined) return this.allocate(length);
    this.pooledBytes -= buffer.byteLength;
    return buffer;
  }

  /** A buffer of `length` zeros. */
  takeZeroed(length: number): T {
    const list = this.free.get(length);
    const buffer = list?.pop();
    if (buffer === undefined) return this.allocate(length);
    this.pooledBytes -= buffer.byteLength;
    buffer.fill(0);
    return buffer;
  }

  /** Returns a buffer that nothing references any more. */
  release(buffer: T): void {
    // Only whole buffers are pooled: a subarray view would alias another buffer's memory.
    if (buffer.length === 0 || buffer.byteOffset !== 0 || buffer.byteLength !== buffer.buffer.byteLength)
      return;
    if (this.pooledBytes + buffer.byteLength > this.bytesMax) return;
    let list = this.free.get(buffer.length);
    if (list === undefined) {
      list = [];
      this.free.set(buffer.length, list);
    }
    if (list.length >= this.buffersPerLengthMax) return;
    list.push(buffer);
    this.pooledBytes += buffer.byteLength;
  }

  get bytes(): number {
    return this.pooledBytes;
  }

  clear(): void {
    this.free.clear();
    this.pooledBytes = 0;
  }
}

/** The pools the tensor ops draw from: values, and indices (max pooling's argmax). */
export const pool = new BufferPool<Float32Array>((length) => new Float32Array(length));
export const indexPool = new BufferPool<Int32Array>((length) => new Int32Array(length), 8);

/** Drops every pooled buffer (after training, to hand the memory back to the garbage collector). */
export function clearBufferPools(): void {
  pool.clear();
  indexPool.clear();
}
