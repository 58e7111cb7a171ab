/**
 * Tensors: storage, views, moves between devices, and the one node shape autograd records.
 *
 * A tensor is a shape, strides and an offset over a flat storage. Storage is row-major; views
 * (reshape of a contiguous tensor, transpose, permute) share it with different strides. Every op
 * computes in f32; f16, bf16 and i8 are storage types (`toDtype`).
 *
 * An op that produces a tensor from inputs that require gradients records a `GradNode`: its
 * inputs, the tensors its backward reads, and its gradient rule, written once beside its forward
 * in the op's file. A rule takes the output's gradient as a tensor and returns the inputs'
 * gradients as tensors, computed with ops, so it runs on whatever device the tensors live on.
 * The engine (`autograd.ts`: `backward`, `disposeGraph`) accumulates them into `tensor.grad`
 * (CPU: a contiguous Float32Array in logical order) or `tensor.deviceGrad` (a device tensor).
 *
 * A tensor lives on a device: `'cpu'` (a Float32Array) or a GPU-layer `Device`
 * (`openDevice('webgpu')`), where it holds a `DeviceBuffer`. `to(t, device)` moves it; each op
 * dispatches its forward to the device's kernels (`deviceOps.ts`) when its inputs live there.
 *
 * Imports go one way: this file knows no op; `deviceOps.ts` (device kernels) imports this file;
 * `ops/*` import both; `autograd.ts` (the engine) imports all of them.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { backward, mul, sum, tensor } from 'zbmd/ml';
 *
 * const w = tensor([1, 2, 3], [3], { requiresGrad: true });
 * const loss = sum(mul(w, w));
 * backward(loss);
 * assert.deepEqual(Array.from(w.grad ?? []), [2, 4, 6]);
 * ```
 */
import type { Random } from '../actor/Random.js';
import { Device as GpuDevice } from '../gpu/Device.js';
import type { DeviceBuffer } from '../gpu/DeviceBuffer.js';
import { migrate } from '../gpu/migrate.js';
import { type Dtype, decodeStorage, encodeStorage, type Storage } from './dtype.js';
import { check, TensorError } from './errors.js';
import { pool } from './internal/pool.js';
import { contiguousStrides, gatherStrided } from './internal/strided.js';

/**
 * An op's gradient rule: the output's gradient (a tensor on the output's device, the output's
 * shape) to one gradient per input (`null` for an input that needs none). The engine owns what
 * the rule returns; a rule may return `gradOutput` itself (the engine then copies or shares).
 * A host rule (`makeResult`) accumulates into `gradBuffer(input)` itself and returns nothing.
 */
export type GradientRule = (gradOutput: Tensor) => readonly Gradient[] | undefined;

/**
 * A gradient given as the matrix product `op(left) @ op(right)` (2-D operands, the input's
 * element count; op transposes where the flag says so), so the engine can accumulate it in
 * place (gemm with beta = 1 into an existing host gradient) instead of adding a product it
 * allocated, and a device reads the transposed operand in the matmul launch instead of copying
 * it. `temporaries` are disposed afterwards.
 */
export interface ProductGradient {
  readonly kind: 'product';
  readonly left: Tensor;
  readonly right: Tensor;
  readonly transposeLeft: boolean;
  readonly transposeRight: boolean;
  readonly temporaries: readonly Tensor[];
}

/** What a rule gives for one input: a tensor, a product to accumulate, or null for none. */
export type Gradient = Tensor | ProductGradient | null;

export function productGradient(
  left: Tensor,
  right: Tensor,
  temporaries: readonly Tensor[] = [],
  transposed: { readonly left?: boolean; readonly right?: boolean } = {},
): ProductGradient {
  return {
    kind: 'product',
    left,
    right,
    transposeLeft: transposed.left ?? false,
    transposeRight: transposed.right ?? false,
    temporaries,
  };
}

/** One recorded op: its inputs, what its rule reads, and the rule. The only node shape. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Null once run: a graph is used by one `backward` only. */
  backward: GradientRule | null;
  /** Tensors only the rule reads (saved activations, host or device); disposed once it ran. */
  readonly saved: Tensor[];
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

/** Where device tensors created now are listed (`collectDeviceTensors`); none by default. */
let deviceTensorsCreated: Tensor[] | undefined;

/**
 * Runs `body` (synchronous), listing in `into` every device tensor created meanwhile: a device
 * training step disposes the ones still alive afterwards, also those of a step a device error
 * ended half-way (its partial graph is unreachable) and the views of inputs that record no node.
 */
export function collectDeviceTensors<T>(into: Tensor[], body: () => T): T {
  const previous = deviceTensorsCreated;
  deviceTensorsCreated = into;
  try {
    return body();
  } finally {
    deviceTensorsCreated = previous;
  }
}

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
    if (placement !== undefined) {
      deviceMemory.register(this, placement.buffer, this);
      deviceTensorsCreated?.push(this);
    }
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

  /** True when the tensor lives on a GPU-layer device (its storage is a `DeviceBuffer`). */
  get onDevice(): boolean {
    return this.deviceBuffer !== null;
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

export { contiguousStrides };

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
  const out = pool.take(tensor.size);
  gatherStrided(data, tensor.offset, tensor.shape, tensor.strides, out);
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

/** Whether an op on `inputs` records a node now. */
export function isRecording(inputs: readonly Tensor[]): boolean {
  if (!gradEnabled) return false;
  for (const input of inputs) if (input.requiresGrad) return true;
  return false;
}

/**
 * Records `rule` on `out` when gradients are on and an input needs one; `saved` (tensors only
 * the rule reads) are kept in the node, or disposed at once when nothing is recorded.
 */
export function record(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
  rule: GradientRule,
  saved: Tensor[] = [],
): Tensor {
  if (isRecording(inputs)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward: rule, saved };
  } else {
    for (const tensor of saved) dispose(tensor);
  }
  return out;
}

/** A CPU tensor of `shape` owning `data` (a buffer from the pool, exactly prod(shape) long). */
export function hostTensor(data: Float32Array, shape: readonly number[]): Tensor {
  return new Tensor(data, [...shape]);
}

/** A host buffer (from the pool) as a tensor that owns it, for a node's `saved`. */
export function hostSaved(buffer: Float32Array): Tensor {
  return new Tensor(buffer, [buffer.length]);
}

/**
 * Wraps a CPU op's output with a host rule: `backward` reads the output's gradient as a
 * contiguous Float32Array and accumulates into `gradBuffer(input)` itself (for ops that run on
 * the CPU only). `scratch` buffers are kept until the rule ran, then go back to the pool.
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
  if (isRecording(inputs)) {
    out.requiresGrad = true;
    const rule: GradientRule = (g) => {
      backward(g.data);
      return undefined;
    };
    out.node = { op, inputs, backward: rule, saved: scratch.map(hostSaved) };
  } else {
    for (const buffer of scratch) pool.release(buffer);
  }
  return out;
}

/** Wraps a CPU view sharing `source`'s storage, with its gradient rule. */
export function makeView(
  source: Tensor,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
  op: string,
  rule: GradientRule,
): Tensor {
  const out = new Tensor(source.storage, shape, source.dtype, strides, offset, false);
  return record(out, op, [source], rule);
}

/** The tensor's gradient buffer, created zeroed on first use; host rules accumulate into it. */
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

/** Gives back what a node holds (its saved tensors) and marks it run. */
export function releaseNode(node: GradNode): void {
  node.backward = null;
  for (const tensor of node.saved) dispose(tensor);
  node.saved.length = 0;
}

/** Gives back a tensor's gradient (host buffer or device tensor). */
export function releaseGradient(tensor: Tensor): void {
  if (tensor.grad !== null) pool.release(tensor.grad);
  tensor.grad = null;
  if (tensor.deviceGrad !== null) dispose(tensor.deviceGrad);
  tensor.deviceGrad = null;
}

/**
 * Returns one tensor's storage to the pool (when it owns it) and marks it disposed; for
 * results computed under `noGrad` that are no longer needed (inference loops, benchmarks).
 * A device tensor gives back its reference to its `DeviceBuffer` at once, without waiting for
 * the garbage collector.
 */
export function dispose(tensor: Tensor): void {
  if (tensor.disposed) return;
  if (tensor.node !== null) releaseNode(tensor.node);
  tensor.node = null;
  if (tensor.deviceBuffer !== null) {
    deviceMemory.unregister(tensor);
    tensor.deviceBuffer.release();
    tensor.disposed = true;
    return;
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

/**
 * An i32 tensor of integer indices or labels (copied; `values` must be integers that an int32
 * holds). Index-taking ops read it exactly; float ops refuse it (`invalid_dtype`).
 */
export function indexTensor(values: Int32Array | readonly number[], shape?: readonly number[]): Tensor {
  const resolved = shape ?? [values.length];
  validateShape(resolved, 'indexTensor');
  check(sizeOf(resolved) === values.length, 'shape_mismatch', () => {
    return `indexTensor: ${values.length} values do not fill shape [${resolved.join(', ')}]`;
  });
  const storage = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    check(Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31, 'invalid_argument', () => {
      return `indexTensor: element ${i} is ${value}, not an int32`;
    });
    storage[i] = value;
  }
  return new Tensor(storage, [...resolved], 'i32');
}

/**
 * The integers an index tensor holds, in logical order: an i32 tensor exactly; an f32 tensor's
 * values, each checked to be a whole number (as index tensors were before i32). Other dtypes
 * and device tensors are refused. The result may share the tensor's storage: do not write it.
 */
export function indexValues(source: Tensor, context: string): Int32Array {
  check(source.device === 'cpu', 'invalid_argument', () => `${context}: indices must be on the CPU`);
  if (source.dtype === 'i32') {
    if (isContiguous(source)) {
      const storage = source.storage as Int32Array;
      return storage.subarray(source.offset, source.offset + source.size);
    }
    return contiguousStorage(source) as Int32Array;
  }
  check(source.dtype === 'f32', 'invalid_dtype', () => {
    return `${context}: indices must be an i32 tensor or an f32 tensor of whole numbers, got ${source.dtype}`;
  });
  const values = contiguousData(source);
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    check(Number.isInteger(values[i]), 'invalid_argument', () => {
      return `${context}: index ${values[i]} at ${i} is not a whole number`;
    });
    out[i] = values[i];
  }
  releaseTemporary(source, values);
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
  const storage = source.storage;
  const out = new (storage.constructor as new (length: number) => Storage)(source.size);
  gatherStrided(storage, source.offset, source.shape, source.strides, out);
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
  if (source.device !== 'cpu') {
    check(!source.disposed, 'disposed', () => 'detach: the tensor was disposed');
    return share(source);
  }
  return toDtype(source, 'f32');
}

// ---------------------------------------------------------------------------------------------
// Device placement and moves

const FLOAT32_BYTES = 4;
const NO_HOST_STORAGE = new Float32Array(0);

/** A tensor on `device` owning one reference to `buffer` (contiguous f32). */
export function deviceTensor(device: GpuDevice, buffer: DeviceBuffer, shape: readonly number[]): Tensor {
  return new Tensor(NO_HOST_STORAGE, [...shape], 'f32', undefined, 0, true, {}, { device, buffer });
}

export function bufferOf(tensor: Tensor): DeviceBuffer {
  const buffer = tensor.deviceBuffer;
  if (buffer === null)
    throw new TypeError(`bufferOf: a tensor on ${deviceName(tensor.device)} has no buffer`);
  return buffer;
}

export function deviceName(device: Device): string {
  return device === 'cpu' ? 'cpu' : device.id;
}

/** The same device buffer under another shape: one more reference, no launch. */
export function share(source: Tensor, shape: readonly number[] = source.shape): Tensor {
  return deviceTensor(source.device as GpuDevice, bufferOf(source).retain(), shape);
}

/** A fresh device buffer of `count` f32 values, filled by `enqueue`; freed again if it throws. */
export function launchBuffer(
  device: GpuDevice,
  count: number,
  enqueue: (output: DeviceBuffer) => void,
): DeviceBuffer {
  const output = device.allocate(count * FLOAT32_BYTES);
  try {
    enqueue(output);
  } catch (error) {
    output.release();
    throw error;
  }
  return output;
}

/**
 * `source` on `target`: an upload from the CPU, a copy back to the CPU (`'cpu'`, which waits
 * for the kernels that produce it), or a migration between devices (through the host). The
 * tensor itself when it already lives on `target`. The source is left as it was.
 */
export async function to(source: Tensor, target: Device): Promise<Tensor> {
  check(target === 'cpu' || target instanceof GpuDevice, 'invalid_argument', () => {
    return `to: expected 'cpu' or a Device from openDevice(), got ${String(target)}`;
  });
  check(!source.disposed, 'disposed', () => 'to: the tensor was disposed');
  if (source.device === target) return source;
  if (target === 'cpu') {
    // source.device is a GPU device here: equal devices returned above.
    const values = await (source.device as GpuDevice).readFloat32(bufferOf(source));
    return new Tensor(values, [...source.shape]);
  }
  check(!source.requiresGrad, 'invalid_argument', () => {
    return 'to: a tensor that requires a gradient cannot move (the graph would cross devices); move detach(t), or parameters with module.to(device)';
  });
  return deviceTensor(target, await uploadBuffer(source, target), source.shape);
}

/** A buffer on `target` holding `source`'s values in logical order (the source is left as it was). */
export async function uploadBuffer(source: Tensor, target: GpuDevice): Promise<DeviceBuffer> {
  if (source.device !== 'cpu') return migrate(bufferOf(source), target);
  check(source.size > 0, 'invalid_shape', () => {
    return `to: an empty tensor ([${source.shape.join(', ')}]) cannot live on ${target.id}`;
  });
  const values = contiguousData(source);
  try {
    return target.upload(values);
  } finally {
    // The upload has copied the values (WebGPU's writeBuffer, CUDA's staged copy), so the
    // gathered copy of a view can go back to the pool now.
    releaseTemporary(source, values);
  }
}

/** A move of one tensor's storage that is ready (`prepareMove`): commit it, or abort it. */
export interface PendingMove {
  /** Points the tensor (and its gradient) at the new storage and gives the old back. */
  commit(): void;
  /** Gives back what the move had taken on the target; the tensor stays as it was. */
  abort(): void;
}

/** The fields a move in place rewrites (readonly to everything else). */
type Movable = { -readonly [K in 'device' | 'deviceBuffer']: Tensor[K] };

/**
 * Prepares moving `tensor` to `target` in place, for `Module.to`: the values (and the gradient,
 * `grad` on the CPU or `deviceGrad` on a device) are copied to the target now, and `commit`
 * makes the tensor itself live there, so whoever holds it (an optimizer) holds the moved one, as
 * with PyTorch's `module.to`. Until `commit` nothing of the tensor changes, so a failure
 * (out of device memory half-way through a module) leaves every tensor where it was. Only a
 * leaf that owns its storage, contiguous, can move in place; views of it taken before keep the
 * old values.
 */
export async function prepareMove(tensor: Tensor, target: Device): Promise<PendingMove> {
  check(!tensor.disposed, 'disposed', () => 'to: the tensor was disposed');
  check(tensor.node === null && tensor.ownsStorage && isContiguous(tensor), 'invalid_argument', () => {
    return `to: only a contiguous leaf that owns its storage moves in place, got ${tensor}`;
  });
  if (tensor.device === target) return { commit: () => {}, abort: () => {} };
  let values: Float32Array | null = null;
  let buffer: DeviceBuffer | null = null;
  let grad: Float32Array | null = null;
  let deviceGrad: Tensor | null = null;
  try {
    if (target === 'cpu') {
      values = await (tensor.device as GpuDevice).readFloat32(bufferOf(tensor));
      if (tensor.deviceGrad !== null) grad = (await to(tensor.deviceGrad, 'cpu')).data;
    } else {
      buffer = await uploadBuffer(tensor, target);
      if (tensor.grad !== null) deviceGrad = deviceTensor(target, target.upload(tensor.grad), tensor.shape);
      else if (tensor.deviceGrad !== null) deviceGrad = await to(tensor.deviceGrad, target);
    }
  } catch (error) {
    buffer?.release();
    if (deviceGrad !== null) dispose(deviceGrad);
    throw error;
  }
  return {
    commit: () => {
      const movable = tensor as unknown as Movable;
      if (tensor.deviceBuffer !== null) {
        deviceMemory.unregister(tensor);
        tensor.deviceBuffer.release();
      }
      if (tensor.deviceGrad !== null) dispose(tensor.deviceGrad);
      if (buffer !== null) {
        movable.device = target;
        movable.deviceBuffer = buffer;
        tensor.storage = NO_HOST_STORAGE;
        deviceMemory.register(tensor, buffer, tensor);
      } else {
        movable.device = 'cpu';
        movable.deviceBuffer = null;
        tensor.storage = values!;
      }
      tensor.grad = grad;
      tensor.deviceGrad = deviceGrad;
    },
    abort: () => {
      buffer?.release();
      if (deviceGrad !== null) dispose(deviceGrad);
    },
  };
}
