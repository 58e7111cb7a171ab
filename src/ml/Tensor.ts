/**
 * Tensors and the reverse-mode autograd engine.
 *
 * A tensor is a shape, strides and an offset over a flat storage. Storage is row-major; views
 * (reshape of a contiguous tensor, transpose, permute) share it with different strides. Every op
 * computes in f32; f16, bf16 and i8 are storage types (`toDtype`).
 *
 * An op that produces a tensor from inputs that require gradients records a `GradNode` holding
 * its backward function (written beside its forward, in the op's file). `backward(loss)` walks
 * the graph in reverse topological order and accumulates gradients into `tensor.grad`, a
 * contiguous Float32Array in the tensor's logical (row-major) order. Gradients of intermediate
 * tensors are returned to the buffer pool once used; `disposeGraph` returns the activations too,
 * so a training loop whose shapes repeat allocates nothing after its first step.
 *
 * A tensor lives on a device: `'cpu'` (a Float32Array, everything above) or a GPU-layer `Device`
 * (`openDevice('webgpu')`), where it holds a `DeviceBuffer`. `to(t, device)` moves it, and the
 * ops listed in `deviceOps.ts` run there, with autograd: a device graph's gradients are device
 * tensors (`deviceGrad`) computed by device kernels.
 *
 * @example
 * ```ts
 * const w = tensor([1, 2, 3], [3], { requiresGrad: true });
 * const loss = sum(mul(w, w));
 * backward(loss);
 * w.grad; // Float32Array [2, 4, 6]
 * ```
 */
import type { Random } from '../actor/Random.js';
import type { Device as GpuDevice } from '../gpu/Device.js';
import type { DeviceBuffer } from '../gpu/DeviceBuffer.js';
import { backwardOnDevice, detachOnDevice, disposeDeviceNode, to } from './deviceOps.js';
import { type Dtype, decodeStorage, encodeStorage, type Storage } from './dtype.js';
import { check, TensorError } from './errors.js';
import { pool } from './internal/pool.js';

/** One recorded op: its inputs and how to push the output's gradient into theirs. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Null once run: a graph is used by one `backward` only. Null for device ops from the start. */
  backward: ((gradOutput: Float32Array) => void) | null;
  /** Buffers the backward needs (saved activations); returned to the pool after use. */
  readonly scratch: Float32Array[];
  /**
   * A device op's backward (`deviceOps.ts`): takes the output's gradient, a tensor on the same
   * device, and accumulates into the inputs' `deviceGrad`. Null once run.
   */
  deviceBackward?: ((gradOutput: Tensor) => void) | null;
  /** Device tensors only the backward needs; disposed once it ran (or by `disposeGraph`). */
  readonly deviceScratch?: Tensor[];
}

export interface TensorOptions {
  readonly requiresGrad?: boolean;
}

const EMPTY = new Float32Array(0);

/**
 * Where a tensor's storage lives: `'cpu'` (host memory, a Float32Array) or a device of the GPU
 * layer (`openDevice('webgpu')`, `defaultDevice()`), where it is a `DeviceBuffer`.
 */
export type Device = 'cpu' | GpuDevice;

/** A device tensor's memory: the device and one reference to a buffer of it, owned by the tensor. */
export interface DevicePlacement {
  readonly device: GpuDevice;
  readonly buffer: DeviceBuffer;
}

/**
 * Gives a device tensor's buffer reference back once the tensor is garbage collected (or at
 * `dispose`). Safe while kernels may still read it: a released buffer is reused only by work
 * enqueued later on the same device stream, which runs after those kernels.
 */
const deviceMemory = new FinalizationRegistry<DeviceBuffer>((buffer) => buffer.release());

export class Tensor {
  readonly size: number;
  readonly device: Device;
  /** The device memory of a tensor on a GPU-layer device; null on the CPU. */
  readonly deviceBuffer: DeviceBuffer | null;
  requiresGrad: boolean;
  /** The accumulated gradient, contiguous in logical order; null until a backward reaches it. */
  grad: Float32Array | null = null;
  /**
   * The accumulated gradient of a tensor on a GPU-layer device: a tensor on the same device,
   * null until a backward reaches it. (`grad` stays null for device tensors.)
   */
  deviceGrad: Tensor | null = null;
  /** Keep this (non-leaf) tensor's gradient after backward, for inspection. */
  retainGrad = false;
  node: GradNode | null = null;
  disposed = false;

  constructor(
    public storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: Dtype = 'f32',
    readonly strides: readonly number[] = contiguousStrides(shape),
    readonly offset = 0,
    /** False for views: only the owner returns storage to the pool. */
    readonly ownsStorage = true,
    options: TensorOptions = {},
    /** For a tensor on a GPU-layer device (then `storage` is empty); absent on the CPU. */
    placement?: DevicePlacement,
  ) {
    this.size = sizeOf(shape);
    this.requiresGrad = options.requiresGrad ?? false;
    this.device = placement === undefined ? 'cpu' : placement.device;
    this.deviceBuffer = placement === undefined ? null : placement.buffer;
    if (placement !== undefined) deviceMemory.register(this, placement.buffer, this);
  }

  /** The f32 storage (throws for other dtypes, disposed tensors and tensors on a GPU device). */
  get data(): Float32Array {
    if (this.disposed) throw new TensorError('disposed', 'tensor was disposed by disposeGraph');
    if (this.device !== 'cpu') {
      throw new TensorError(
        'invalid_argument',
        `the tensor lives on ${this.device.id}, not in host memory; read it with \`await t.to('cpu')\``,
      );
    }
    if (this.dtype !== 'f32') {
      throw new TensorError(
        'invalid_dtype',
        `ops compute in f32, tensor is ${this.dtype}; convert with toDtype`,
      );
    }
    return this.storage as Float32Array;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** True when the leaf was created by the user (parameters, inputs), not by an op. */
  get isLeaf(): boolean {
    return this.node === null;
  }

  /**
   * This tensor on `device`: an upload from the CPU, a copy back to the CPU (`'cpu'`), or a
   * migration between devices. The tensor itself when it is already there.
   */
  to(device: Device): Promise<Tensor> {
    return to(this, device);
  }

  toString(): string {
    const where = this.device === 'cpu' ? '' : `, ${this.device.id}`;
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}]${where}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Shapes

export function sizeOf(shape: readonly number[]): number {
  let size = 1;
  for (const dimension of shape) size *= dimension;
  return size;
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = stride;
    stride *= shape[d];
  }
  return strides;
}

export function validateShape(shape: readonly number[], context: string): void {
  for (const dimension of shape) {
    check(Number.isInteger(dimension) && dimension >= 0, 'invalid_shape', () => {
      return `${context}: shape [${shape.join(', ')}] must hold integers >= 0`;
    });
  }
}

/** Resolves a possibly negative axis against `rank`. */
export function normalizeAxis(axis: number, rank: number, context: string): number {
  check(Number.isInteger(axis) && axis >= -rank && axis < rank, 'invalid_axis', () => {
    return `${context}: axis ${axis} is out of range for rank ${rank}`;
  });
  return axis < 0 ? axis + rank : axis;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isContiguous(tensor: Tensor): boolean {
  let expected = 1;
  for (let d = tensor.shape.length - 1; d >= 0; d--) {
    if (tensor.shape[d] !== 1 && tensor.strides[d] !== expected) return false;
    expected *= tensor.shape[d];
  }
  return true;
}

/** For each logical (row-major) position, the storage index of that element. */
export function stridedIndexMap(
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
): Int32Array {
  const size = sizeOf(shape);
  const map = new Int32Array(size);
  const rank = shape.length;
  const counter = new Array<number>(rank).fill(0);
  let position = offset;
  for (let i = 0; i < size; i++) {
    map[i] = position;
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]++;
      position += strides[d];
      if (counter[d] < shape[d]) break;
      position -= strides[d] * shape[d];
      counter[d] = 0;
    }
  }
  return map;
}

/**
 * The tensor's f32 values in logical order: the storage itself (or a subarray) when contiguous,
 * else a gathered copy from the pool, which the caller gives back with `releaseTemporary`.
 */
export function contiguousData(tensor: Tensor): Float32Array {
  const data = tensor.data;
  if (isContiguous(tensor)) {
    if (tensor.offset === 0 && data.length === tensor.size) return data;
    return data.subarray(tensor.offset, tensor.offset + tensor.size);
  }
  const map = stridedIndexMap(tensor.shape, tensor.strides, tensor.offset);
  const out = pool.take(tensor.size);
  for (let i = 0; i < map.length; i++) out[i] = data[map[i]];
  return out;
}

/** Gives back a buffer from `contiguousData` if it was a copy. */
export function releaseTemporary(tensor: Tensor, values: Float32Array): void {
  if (values.buffer !== tensor.storage.buffer) pool.release(values);
}

// ---------------------------------------------------------------------------------------------
// Autograd

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `body` without recording ops (inference, evaluation, optimizer updates). Synchronous
 * bodies only: the flag would otherwise leak into whatever else runs across an `await`.
 */
export function noGrad<T>(body: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return body();
  } finally {
    gradEnabled = previous;
  }
}

/**
 * Wraps an op's output. Records `backward` when gradients are on and an input needs one;
 * otherwise gives the scratch buffers back at once.
 */
export function makeResult(
  data: Float32Array,
  shape: readonly number[],
  op: string,
  inputs: readonly Tensor[],
  backward: (gradOutput: Float32Array) => void,
  scratch: Float32Array[] = [],
): Tensor {
  const out = new Tensor(data, shape);
  if (gradEnabled && inputs.some((input) => input.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward, scratch };
  } else {
    for (const buffer of scratch) pool.release(buffer);
  }
  return out;
}

/** Wraps a view sharing `source`'s storage, with its own backward. */
export function makeView(
  source: Tensor,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
  op: string,
  backward: (gradOutput: Float32Array) => void,
): Tensor {
  const out = new Tensor(source.storage, shape, source.dtype, strides, offset, false);
  if (gradEnabled && source.requiresGrad) {
    out.requiresGrad = true;
    out.node = { op, inputs: [source], backward, scratch: [] };
  }
  return out;
}

/** The tensor's gradient buffer, created zeroed on first use; ops accumulate into it. */
export function gradBuffer(tensor: Tensor): Float32Array {
  if (tensor.grad === null) tensor.grad = pool.takeZeroed(tensor.size);
  return tensor.grad;
}

/** Tensors reachable from `root` through recorded ops, inputs before the ops that use them. */
export function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: Array<{ tensor: Tensor; next: number }> = [{ tensor: root, next: 0 }];
  visited.add(root);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    const inputs = frame.tensor.node?.inputs ?? [];
    if (frame.next < inputs.length) {
      const input = inputs[frame.next++];
      if (input.requiresGrad && !visited.has(input)) {
        visited.add(input);
        stack.push({ tensor: input, next: 0 });
      }
    } else {
      order.push(frame.tensor);
      stack.pop();
    }
  }
  return order;
}

/**
 * Accumulates d(root)/d(leaf) into every leaf's `grad`. `gradient` seeds the root (required
 * unless the root has one element). Intermediate gradients are freed as soon as they are used.
 */
export function backward(root: Tensor, gradient?: Float32Array): void {
  check(root.requiresGrad, 'invalid_argument', () => 'backward: the tensor does not require a gradient');
  check(gradient !== undefined || root.size === 1, 'invalid_argument', () => {
    return `backward: a gradient is needed for a non-scalar root of shape [${root.shape.join(', ')}]`;
  });
  check(gradient === undefined || gradient.length === root.size, 'shape_mismatch', () => {
    return `backward: gradient has ${gradient?.length} elements, root has ${root.size}`;
  });
  if (root.device !== 'cpu') {
    backwardOnDevice(root, gradient);
    return;
  }
  const order = topologicalOrder(root);
  const seed = gradBuffer(root);
  if (gradient === undefined) seed[0] += 1;
  else for (let i = 0; i < seed.length; i++) seed[i] += gradient[i];
  for (let i = order.length - 1; i >= 0; i--) {
    const tensor = order[i];
    const node = tensor.node;
    if (node === null) continue;
    if (node.backward === null) {
      throw new TensorError('graph_consumed', `backward: the graph through '${node.op}' was already used`);
    }
    if (tensor.grad !== null) node.backward(tensor.grad);
    node.backward = null;
    for (const buffer of node.scratch) pool.release(buffer);
    node.scratch.length = 0;
    if (!tensor.retainGrad && tensor.grad !== null) {
      pool.release(tensor.grad);
      tensor.grad = null;
    }
  }
}

/**
 * Returns the storage of every intermediate tensor reachable from `root` to the buffer pool and
 * marks those tensors disposed (reading one afterwards throws). Leaves (parameters, inputs) are
 * untouched. Call it once a step's outputs have been read.
 */
export function disposeGraph(root: Tensor): void {
  const stack: Tensor[] = [root];
  const seen = new Set<Tensor>([root]);
  while (stack.length > 0) {
    const tensor = stack.pop()!;
    const node = tensor.node;
    if (node === null) continue;
    for (const input of node.inputs) {
      if (!seen.has(input)) {
        seen.add(input);
        stack.push(input);
      }
    }
    for (const buffer of node.scratch) pool.release(buffer);
    node.scratch.length = 0;
    node.backward = null;
    tensor.node = null;
    if (tensor.grad !== null) pool.release(tensor.grad);
    tensor.grad = null;
    if (tensor.deviceBuffer !== null) {
      disposeDeviceNode(node, tensor);
      dispose(tensor);
      continue;
    }
    if (tensor.ownsStorage && tensor.dtype === 'f32' && !tensor.disposed)
      pool.release(tensor.storage as Float32Array);
    tensor.storage = EMPTY;
    tensor.disposed = true;
  }
}

/**
 * Returns one tensor's storage to the pool (when it owns it) and marks it disposed; for
 * results computed under `noGrad` that are no longer needed (inference loops, benchmarks).
 * A device tensor gives back its reference to its `DeviceBuffer` at once, without waiting for
 * the garbage collector.
 */
export function dispose(tensor: Tensor): void {
  if (tensor.disposed) return;
  if (tensor.deviceBuffer !== null) {
    deviceMemory.unregister(tensor);
    tensor.deviceBuffer.release();
    tensor.disposed = true;
    if (tensor.node !== null) disposeDeviceNode(tensor.node, tensor);
    tensor.node = null;
    return;
  }
  if (tensor.node !== null) {
    for (const buffer of tensor.node.scratch) pool.release(buffer);
    tensor.node = null;
  }
  if (tensor.ownsStorage && tensor.dtype === 'f32') pool.release(tensor.storage as Float32Array);
  tensor.storage = EMPTY;
  tensor.disposed = true;
}

// ---------------------------------------------------------------------------------------------
// Creation and conversion

type NestedNumbers = number | readonly NestedNumbers[];

function inferShape(values: NestedNumbers): number[] {
  const shape: number[] = [];
  let level: NestedNumbers = values;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0] as NestedNumbers;
  }
  return shape;
}

function flattenNumbers(values: NestedNumbers, out: number[] = []): number[] {
  if (typeof values === 'number') out.push(values);
  else for (const value of values) flattenNumbers(value, out);
  return out;
}

/** A tensor from numbers (flat with a shape, or nested arrays). The values are copied. */
export function tensor(
  values: NestedNumbers | Float32Array,
  shape?: readonly number[],
  options?: TensorOptions,
): Tensor {
  const flat =
    values instanceof Float32Array ? Float32Array.from(values) : Float32Array.from(flattenNumbers(values));
  const resolved = shape ?? (values instanceof Float32Array ? [flat.length] : inferShape(values));
  validateShape(resolved, 'tensor');
  check(sizeOf(resolved) === flat.length, 'shape_mismatch', () => {
    return `tensor: ${flat.length} values do not fill shape [${resolved.join(', ')}]`;
  });
  return new Tensor(flat, [...resolved], 'f32', undefined, 0, true, options);
}

/** Wraps `data` without copying (it must hold exactly prod(shape) values). */
export function fromData(data: Float32Array, shape: readonly number[], options?: TensorOptions): Tensor {
  validateShape(shape, 'fromData');
  check(sizeOf(shape) === data.length, 'shape_mismatch', () => {
    return `fromData: ${data.length} values do not fill shape [${shape.join(', ')}]`;
  });
  return new Tensor(data, [...shape], 'f32', undefined, 0, false, options);
}

export function full(shape: readonly number[], value: number, options?: TensorOptions): Tensor {
  validateShape(shape, 'full');
  return new Tensor(
    new Float32Array(sizeOf(shape)).fill(value),
    [...shape],
    'f32',
    undefined,
    0,
    true,
    options,
  );
}

export function zeros(shape: readonly number[], options?: TensorOptions): Tensor {
  return full(shape, 0, options);
}

export function ones(shape: readonly number[], options?: TensorOptions): Tensor {
  return full(shape, 1, options);
}

export function scalar(value: number): Tensor {
  return new Tensor(Float32Array.of(value), []);
}

/** Standard normal samples from `random` (seeded). */
export function randn(shape: readonly number[], random: Random, options?: TensorOptions): Tensor {
  const out = zeros(shape, options);
  for (let i = 0; i < out.size; i++) out.data[i] = random.normal();
  return out;
}

/** Uniform samples in [low, high) from `random`. */
export function rand(
  shape: readonly number[],
  random: Random,
  low = 0,
  high = 1,
  options?: TensorOptions,
): Tensor {
  const out = zeros(shape, options);
  for (let i = 0; i < out.size; i++) out.data[i] = low + (high - low) * random.next();
  return out;
}

/** The values in logical order, as plain numbers (works for every dtype). */
export function toArray(source: Tensor): number[] {
  const values =
    source.dtype === 'f32' ? contiguousData(source) : decodeStorage(contiguousStorage(source), source.dtype);
  const out = Array.from(values);
  if (source.dtype === 'f32') releaseTemporary(source, values);
  return out;
}

/** The single value of a one-element tensor. */
export function item(source: Tensor): number {
  check(source.size === 1, 'invalid_shape', () => `item: tensor has ${source.size} elements, expected 1`);
  return toArray(source)[0];
}

function contiguousStorage(source: Tensor): Storage {
  const map = stridedIndexMap(source.shape, source.strides, source.offset);
  const storage = source.storage;
  const out = new (storage.constructor as new (length: number) => Storage)(map.length);
  for (let i = 0; i < map.length; i++) out[i] = storage[map[i]];
  return out;
}

/** A copy in `dtype` storage (f32 <-> f16 / bf16 / i8; i8 rounds and saturates). No gradient. */
export function toDtype(source: Tensor, dtype: Dtype): Tensor {
  const values =
    source.dtype === 'f32'
      ? Float32Array.from(contiguousData(source))
      : decodeStorage(contiguousStorage(source), source.dtype);
  const storage = dtype === 'f32' ? values : encodeStorage(values, dtype);
  return new Tensor(storage, [...source.shape], dtype);
}

/**
 * Without the graph: on the CPU a contiguous f32 copy; on a device the same buffer under a new
 * tensor that needs no gradient (as PyTorch's detach, it sees later in-place updates).
 */
export function detach(source: Tensor): Tensor {
  if (source.device !== 'cpu') return detachOnDevice(source);
  return toDtype(source, 'f32');
}
