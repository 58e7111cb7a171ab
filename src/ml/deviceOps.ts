/**
 * Tensors on GPU-layer devices: moving them (`to`), running ops on them, and their gradients.
 *
 * Every CPU op in `ops/` has one early branch: when an input is not on the CPU it hands its
 * arguments to `runOnDevice`, which looks the op up in `DEVICE_KERNELS` below and enqueues the
 * device's kernels; an op without an entry there throws `unavailableOnDevice`. Launches are
 * asynchronous and nothing waits for them: `await to(t, 'cpu')` is the synchronization point,
 * and it reports a kernel that failed meanwhile (a `DeviceError` from the GPU layer).
 *
 * Autograd: an op on device tensors that need gradients records a backward, written beside its
 * forward below, that computes the input gradients with device kernels. `backward(loss)` then
 * runs on the device and leaves each leaf's gradient in `t.deviceGrad`, a tensor on the same
 * device (the engine is `backwardOnDevice` at the end of this file). Parameters come to a
 * device with `module.to(device)`; the optimizers update them there.
 *
 * Rules on a device:
 * - All tensor inputs of an op live on the same device (numbers are fine); mixing is a
 *   `TensorError` naming both devices.
 * - Tensors are contiguous f32 and hold one reference to their `DeviceBuffer`, given back by
 *   `dispose(t)` or `disposeGraph(loss)` or, failing those, when the tensor is garbage
 *   collected. Empty tensors stay on the CPU (a device buffer has at least one element).
 * - `to(t, device)` of a tensor that requires a gradient is an error (the graph cannot cross
 *   devices): move `detach(t)`, or a module's parameters with `module.to(device)`.
 * - Views (transpose, permute) are copies on a device, made by one strided gather kernel.
 *
 * | op                                         | device kernels                   | gradient on the device |
 * | ------------------------------------------ | -------------------------------- | ---------------------- |
 * | add, sub, mul, div                         | binary, broadcasting up to rank 4 | yes (sum to shape)     |
 * | pow                                        | binary (base > 0: WGSL's pow)    | no                     |
 * | neg, exp, log, sqrt, relu, sigmoid, tanh, gelu | unary (gelu: the exact erf form) | yes                 |
 * | sum, mean                                  | reduce per row (+ gather)        | yes                    |
 * | max                                        | reduce per row (+ gather)        | no                     |
 * | softmax, logSoftmax                        | softmax / reduce + binary        | yes (last axis)        |
 * | layerNorm                                  | layernorm (per row)              | no                     |
 * | matmul                                     | matmul: a (..., M, K) @ b (K, N) | yes                    |
 * | linear                                     | gather + matmul + binary         | yes                    |
 * | conv2d                                     | im2col + matmul                  | no                     |
 * | reshape, flatten, unsqueeze                | none: the same buffer            | yes                    |
 * | transpose, permute                         | gather (rank <= 4 after merging) | yes                    |
 * | crossEntropy, mseLoss                      | composed of the ops above        | yes                    |
 *
 * An op without a gradient here, called on a tensor that needs one while gradients are on, is
 * a `TensorError` (`unavailable_on_device`) at the forward, not a wrong gradient later.
 *
 * @example
 * ```ts
 * const gpu = await openDevice('webgpu');
 * const x = await to(tensor([[-1, 2], [3, -4]]), gpu);
 * const y = relu(matmul(x, x)); // enqueued on webgpu:0
 * toArray(await y.to('cpu')); // [7, 0, 0, 22]
 * ```
 */
import { Device as GpuDevice } from '../gpu/Device.js';
import type { DeviceBuffer } from '../gpu/DeviceBuffer.js';
import type { BinaryOpName, UnaryOpName } from '../gpu/kernels/ops.js';
import { MAX_BROADCAST_RANK } from '../gpu/kernels/ops.js';
import { migrate } from '../gpu/migrate.js';
import { check, TensorError } from './errors.js';
import { broadcastShapes } from './internal/broadcast.js';
import type { LossOptions } from './losses.js';
import type { Conv2dOptions } from './ops/conv.js';
import type { Operand } from './ops/elementwise.js';
import type { ReduceOptions } from './ops/reduce.js';
import {
  contiguousData,
  contiguousStrides,
  type Device,
  dispose,
  type GradNode,
  isGradEnabled,
  noGrad,
  normalizeAxis,
  releaseTemporary,
  sameShape,
  sizeOf,
  Tensor,
  topologicalOrder,
} from './Tensor.js';

const FLOAT32_BYTES = 4;
const NO_HOST_STORAGE = new Float32Array(0);

// ---------------------------------------------------------------------------------------------
// Moving tensors

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

export function deviceTensor(device: GpuDevice, buffer: DeviceBuffer, shape: readonly number[]): Tensor {
  return new Tensor(NO_HOST_STORAGE, [...shape], 'f32', undefined, 0, true, {}, { device, buffer });
}

export function bufferOf(tensor: Tensor): DeviceBuffer {
  const buffer = tensor.deviceBuffer;
  if (buffer === null)
    throw new TypeError(`bufferOf: a tensor on ${deviceName(tensor.device)} has no buffer`);
  return buffer;
}

function deviceName(device: Device): string {
  return device === 'cpu' ? 'cpu' : device.id;
}

/** `source` without its graph: the same buffer, one more reference, no gradient. */
export function detachOnDevice(source: Tensor): Tensor {
  check(!source.disposed, 'disposed', () => 'detach: the tensor was disposed');
  return share(source);
}

/** The same buffer under another shape: one more reference, no launch. */
function share(source: Tensor, shape: readonly number[] = source.shape): Tensor {
  return deviceTensor(source.device as GpuDevice, bufferOf(source).retain(), shape);
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/** The device all `inputs` live on; throws a `TensorError` when they are mixed or disposed. */
function deviceOf(op: string, inputs: readonly Tensor[]): GpuDevice {
  let device: Device | undefined;
  for (const input of inputs) {
    check(!input.disposed, 'disposed', () => `${op}: an input was disposed`);
    if (device === undefined) device = input.device;
    else if (input.device !== device) {
      const first = deviceName(device);
      const second = deviceName(input.device);
      const detail = first === second ? ' (the same device opened twice)' : '';
      throw new TensorError(
        'device_mismatch',
        `${op}: inputs live on different devices, ${first} and ${second}${detail}; move them to one with \`await to(t, device)\``,
      );
    }
  }
  if (device === undefined || device === 'cpu') throw new TypeError(`${op}: no input lives on a device`);
  return device;
}

/** Whether an op on `inputs` records a backward now. */
function recording(inputs: readonly Tensor[]): boolean {
  return isGradEnabled() && inputs.some((input) => input.requiresGrad);
}

/** The error for an op with a forward but no gradient on devices, raised at the forward. */
function noGradient(op: string, inputs: readonly Tensor[]): void {
  if (!recording(inputs)) return;
  const where = deviceName(inputs.find((input) => input.device !== 'cpu')?.device ?? 'cpu');
  throw new TensorError(
    'unavailable_on_device',
    `${op} has no gradient on ${where} yet; run it under noGrad, on detach(t), or on the CPU`,
  );
}

/**
 * Records `backward` on `out` when gradients are on and an input needs one. Its node's
 * `deviceScratch` starts empty; `handOver` puts there what only the backward reads.
 */
function record(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
  backward: (gradOutput: Tensor) => void,
): Tensor {
  if (recording(inputs)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward: null, scratch: [], deviceBackward: backward, deviceScratch: [] };
  }
  return out;
}

/**
 * Hands an intermediate of a composed op to its consumer: the graph owns one with a node; one
 * without is kept in the consumer's node when the consumer's backward may read it, else freed.
 */
function handOver(intermediate: Tensor, consumer: Tensor): void {
  if (intermediate.node !== null) return;
  if (consumer.node?.deviceScratch !== undefined) consumer.node.deviceScratch.push(intermediate);
  else dispose(intermediate);
}

/** `source`'s buffer under another shape, giving up `source` (a reshape that takes ownership). */
function reshaped(source: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(source.shape, shape)) return source;
  const out = share(source, shape);
  dispose(source);
  return out;
}

/** A fresh buffer of `count` f32 values that `enqueue` launches into; freed again if the launch fails. */
function launchBuffer(
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

function launch(
  device: GpuDevice,
  shape: readonly number[],
  enqueue: (output: DeviceBuffer) => void,
): Tensor {
  return deviceTensor(device, launchBuffer(device, sizeOf(shape), enqueue), shape);
}

/**
 * Throws the `TensorError` for an op that has no kernel on the device its inputs live on. The
 * CPU ops call it from their device branch.
 */
export function unavailableOnDevice(op: string, inputs: readonly Tensor[]): never {
  const onDevice = inputs.find((input) => input.device !== 'cpu');
  const where = onDevice === undefined ? 'a device' : deviceName(onDevice.device);
  throw new TensorError(
    'unavailable_on_device',
    `op ${op} is not available on ${where} yet; move the tensor to the CPU with \`await to(t, 'cpu')\``,
  );
}

// ---------------------------------------------------------------------------------------------
// Strided gathers: transposes, permutations, broadcasts

interface Dimension {
  readonly size: number;
  readonly stride: number;
}

/**
 * Drops size-1 dimensions and merges neighbours that read as one (outer stride = inner stride *
 * inner size, broadcasts included), so a gather fits the kernel's rank limit.
 */
function mergeDimensions(dimensions: readonly Dimension[]): Dimension[] {
  const merged: Dimension[] = [];
  for (const dimension of dimensions) {
    if (dimension.size === 1) continue;
    const last = merged[merged.length - 1];
    if (last !== undefined && last.stride === dimension.stride * dimension.size) {
      merged[merged.length - 1] = { size: last.size * dimension.size, stride: dimension.stride };
    } else merged.push(dimension);
  }
  return merged.length === 0 ? [{ size: 1, stride: 0 }] : merged;
}

/** A contiguous tensor of `shape` whose element i is source's element at `strides` . index(i). */
function gather(op: string, source: Tensor, shape: readonly number[], strides: readonly number[]): Tensor {
  const device = deviceOf(op, [source]);
  const dimensions = mergeDimensions(shape.map((size, d) => ({ size, stride: strides[d] })));
  if (dimensions.length > MAX_BROADCAST_RANK)
    unavailableOnDevice(
      `${op} of [${source.shape.join(', ')}] needing more than ${MAX_BROADCAST_RANK} strided dimensions`,
      [source],
    );
  return launch(device, shape, (output) => {
    device.gather(
      bufferOf(source),
      output,
      dimensions.map((dimension) => dimension.size),
      dimensions.map((dimension) => dimension.stride),
    );
  });
}

/** source with its dimensions in `order` (a permutation), as a contiguous copy. */
function permuted(source: Tensor, order: readonly number[]): Tensor {
  const strides = contiguousStrides(source.shape);
  return gather(
    'permute',
    source,
    order.map((d) => source.shape[d]),
    order.map((d) => strides[d]),
  );
}

function permute(source: Tensor, order: readonly number[]): Tensor {
  const out = permuted(source, order);
  const inverse = new Array<number>(order.length);
  order.forEach((d, i) => {
    inverse[d] = i;
  });
  return record(out, 'permute', [source], (g) => accumulate(source, permuted(g, inverse)));
}

function transpose(source: Tensor, axisA = -2, axisB = -1): Tensor {
  const a = normalizeAxis(axisA, source.rank, 'transpose');
  const b = normalizeAxis(axisB, source.rank, 'transpose');
  const order = source.shape.map((_, d) => d);
  order[a] = b;
  order[b] = a;
  return permute(source, order);
}

/** source (broadcastable to `shape`) repeated to `shape`. */
function expand(source: Tensor, shape: readonly number[]): Tensor {
  const padded = [...new Array<number>(shape.length - source.rank).fill(1), ...source.shape];
  const strides = contiguousStrides(padded).map((stride, d) => (padded[d] === 1 ? 0 : stride));
  return gather('expand', source, shape, strides);
}

// ---------------------------------------------------------------------------------------------
// Reductions over any axes

/**
 * op over the dimensions marked in `reduced`, as one row reduction: the kept dimensions are
 * gathered in front of the reduced ones when they are not already. The result is contiguous in
 * the kept dimensions' order.
 */
function reduceMarked(op: 'sum' | 'max', x: Tensor, reduced: readonly boolean[]): DeviceBuffer {
  const device = deviceOf(op, [x]);
  const strides = contiguousStrides(x.shape);
  let kept = 1;
  let columns = 1;
  let keptAfterReduced = false;
  for (let d = 0; d < x.rank; d++) {
    if (x.shape[d] === 1) continue;
    if (reduced[d]) columns *= x.shape[d];
    else {
      kept *= x.shape[d];
      if (columns > 1) keptAfterReduced = true;
    }
  }
  let source = x;
  if (keptAfterReduced) {
    const order = [...x.shape.keys()].sort((a, b) => Number(reduced[a]) - Number(reduced[b]));
    source = gather(
      op,
      x,
      order.map((d) => x.shape[d]),
      order.map((d) => strides[d]),
    );
  }
  try {
    return launchBuffer(device, kept, (output) => device.reduce(op, bufferOf(source), output, kept, columns));
  } finally {
    if (source !== x) dispose(source);
  }
}

/** Which axes `axes` names (all when undefined); an error for an axis out of range or named twice. */
function markedAxes(axes: number | readonly number[] | undefined, rank: number, op: string): boolean[] {
  const marked = new Array<boolean>(rank).fill(axes === undefined);
  if (axes === undefined) return marked;
  for (const axis of typeof axes === 'number' ? [axes] : axes) {
    const d = normalizeAxis(axis, rank, op);
    check(!marked[d], 'invalid_axis', () => `${op}: axis ${axis} is given twice`);
    marked[d] = true;
  }
  return marked;
}

function reducedShape(shape: readonly number[], marked: readonly boolean[], keepDims: boolean): number[] {
  return keepDims ? shape.map((n, d) => (marked[d] ? 1 : n)) : shape.filter((_, d) => !marked[d]);
}

/** `g` (broadcast output's shape) summed down to `shape`, the gradient of a broadcast input. */
function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return share(g);
  const padded = [...new Array<number>(g.rank - shape.length).fill(1), ...shape];
  const marked = g.shape.map((n, d) => padded[d] === 1 && n !== 1);
  return deviceTensor(g.device as GpuDevice, reduceMarked('sum', g, marked), shape);
}

function sumOrMean(
  op: 'sum' | 'mean',
  x: Tensor,
  axes?: number | readonly number[],
  options: ReduceOptions = {},
): Tensor {
  const device = deviceOf(op, [x]);
  const marked = markedAxes(axes, x.rank, op);
  const shape = reducedShape(x.shape, marked, options.keepDims ?? false);
  const count = x.size / sizeOf(shape);
  let out = deviceTensor(device, reduceMarked('sum', x, marked), shape);
  if (op === 'mean') {
    const total = out;
    out = rawBinary('mul', total, 1 / count);
    dispose(total);
  }
  const keptShape = reducedShape(x.shape, marked, true);
  return record(out, op, [x], (g) => {
    const scaled = reshaped(op === 'mean' ? rawBinary('mul', g, 1 / count) : share(g), keptShape);
    accumulate(x, expand(scaled, x.shape));
    dispose(scaled);
  });
}

function max(x: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  const device = deviceOf('max', [x]);
  noGradient('max', [x]);
  const marked = markedAxes(axes, x.rank, 'max');
  return deviceTensor(
    device,
    reduceMarked('max', x, marked),
    reducedShape(x.shape, marked, options.keepDims ?? false),
  );
}

// ---------------------------------------------------------------------------------------------
// Elementwise

/** An operand as the binary kernel reads it: a buffer and its shape; `temporary` for an uploaded number. */
interface OperandBuffer {
  readonly buffer: DeviceBuffer;
  readonly shape: readonly number[];
  readonly temporary: boolean;
}

function operandBuffer(device: GpuDevice, operand: Operand): OperandBuffer {
  if (typeof operand !== 'number')
    return { buffer: bufferOf(operand), shape: operand.shape, temporary: false };
  return { buffer: device.upload(Float32Array.of(operand)), shape: [], temporary: true };
}

/**
 * Releases a number's upload once its kernel is enqueued. Safe before the kernel has run: the
 * pool hands the buffer out again only to work enqueued later on the same stream.
 */
function releaseUpload(operand: OperandBuffer): void {
  if (operand.temporary) operand.buffer.release();
}

/** The broadcast shapes for the binary kernel: none when equal, flat when one side is a single value. */
function binaryShapes(
  op: string,
  a: readonly number[],
  b: readonly number[],
  count: number,
): { shapeA?: readonly number[]; shapeB?: readonly number[] } {
  if (sameShape(a, b)) return {};
  if (sizeOf(a) === 1) return { shapeA: [1], shapeB: [count] };
  if (sizeOf(b) === 1) return { shapeA: [count], shapeB: [1] };
  check(a.length <= MAX_BROADCAST_RANK && b.length <= MAX_BROADCAST_RANK, 'invalid_shape', () => {
    return `${op}: broadcasting [${a.join(', ')}] with [${b.join(', ')}] on a device is limited to rank ${MAX_BROADCAST_RANK}`;
  });
  return { shapeA: a, shapeB: b };
}

/** `left op right` with broadcasting, recording nothing. */
function rawBinary(op: BinaryOpName, left: Operand, right: Operand): Tensor {
  const tensors = [left, right].filter((operand): operand is Tensor => typeof operand !== 'number');
  const device = deviceOf(op, tensors);
  const shape = broadcastShapes(
    typeof left === 'number' ? [] : left.shape,
    typeof right === 'number' ? [] : right.shape,
    op,
  );
  const count = sizeOf(shape);
  const a = operandBuffer(device, left);
  const b = operandBuffer(device, right);
  try {
    const shapes = binaryShapes(op, a.shape, b.shape, count);
    return launch(device, shape, (output) => device.binary(op, a.buffer, b.buffer, output, shapes));
  } finally {
    releaseUpload(a);
    releaseUpload(b);
  }
}

function rawUnary(op: UnaryOpName, x: Tensor): Tensor {
  const device = deviceOf(op, [x]);
  return launch(device, x.shape, (output) => device.unary(op, bufferOf(x), output));
}

/** Accumulates the gradient `g` of a binary op's output into `operand` (a number takes none). */
function accumulateOperand(operand: Operand, g: Tensor): void {
  if (typeof operand === 'number' || !operand.requiresGrad) {
    dispose(g);
    return;
  }
  const reduced = sumTo(g, operand.shape);
  dispose(g);
  accumulate(operand, reduced);
}

function wants(operand: Operand): operand is Tensor {
  return typeof operand !== 'number' && operand.requiresGrad;
}

function binary(op: BinaryOpName, left: Operand, right: Operand): Tensor {
  const tensors = [left, right].filter((operand): operand is Tensor => typeof operand !== 'number');
  if (op === 'pow') noGradient('pow', tensors);
  const out = rawBinary(op, left, right);
  return record(out, op, tensors, (g) => {
    switch (op) {
      case 'add':
        if (wants(left)) accumulateOperand(left, share(g));
        if (wants(right)) accumulateOperand(right, share(g));
        return;
      case 'sub':
        if (wants(left)) accumulateOperand(left, share(g));
        if (wants(right)) accumulateOperand(right, rawUnary('neg', g));
        return;
      case 'mul':
        if (wants(left)) accumulateOperand(left, rawBinary('mul', g, right));
        if (wants(right)) accumulateOperand(right, rawBinary('mul', g, left));
        return;
      case 'div': {
        // d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b
        if (wants(left)) accumulateOperand(left, rawBinary('div', g, right));
        if (wants(right)) {
          const ratio = rawBinary('div', out, right);
          const scaled = rawBinary('mul', g, ratio);
          dispose(ratio);
          accumulateOperand(right, rawUnary('neg', scaled));
          dispose(scaled);
        }
        return;
      }
      default:
        throw new TypeError(`binary: no device gradient for ${op}`);
    }
  });
}

function unary(op: UnaryOpName, x: Tensor): Tensor {
  const out = rawUnary(op, x);
  return record(out, op, [x], (g) => {
    switch (op) {
      case 'neg':
        return accumulate(x, rawUnary('neg', g));
      case 'exp':
        return accumulate(x, rawBinary('mul', g, out));
      case 'log':
        return accumulate(x, rawBinary('div', g, x));
      case 'sqrt': {
        // g / (2 sqrt x)
        const half = rawBinary('div', g, out);
        accumulate(x, rawBinary('mul', half, 0.5));
        return dispose(half);
      }
      case 'relu':
        return accumulate(x, rawBinary('reluBackward', x, g));
      case 'gelu':
        return accumulate(x, rawBinary('geluBackward', x, g));
      case 'sigmoid':
        return accumulate(x, rawBinary('sigmoidBackward', out, g));
      case 'tanh':
        return accumulate(x, rawBinary('tanhBackward', out, g));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Rows: softmax, layer normalisation

/** Whether `axes` names only the last axis of a tensor of `rank` (an error for an axis out of range). */
function isLastAxis(axes: number | readonly number[], rank: number, op: string): boolean {
  const list = typeof axes === 'number' ? [axes] : axes;
  return list.length === 1 && normalizeAxis(list[0], rank, op) === rank - 1;
}

function rawSoftmax(x: Tensor): Tensor {
  const device = deviceOf('softmax', [x]);
  const columns = x.shape[x.rank - 1];
  const rows = x.size / columns;
  return launch(device, x.shape, (output) => device.softmax(bufferOf(x), output, rows, columns));
}

/** sum of each last-axis row, kept as (..., 1). */
function rowSums(x: Tensor): Tensor {
  const marked = x.shape.map((_, d) => d === x.rank - 1);
  return deviceTensor(x.device as GpuDevice, reduceMarked('sum', x, marked), [...x.shape.slice(0, -1), 1]);
}

// x, output: (rows, columns); softmax of each row
function softmax(x: Tensor, axis = -1): Tensor {
  if (!isLastAxis(axis, x.rank, 'softmax')) unavailableOnDevice(`softmax over axis ${axis}`, [x]);
  const out = rawSoftmax(x);
  return record(out, 'softmax', [x], (g) => {
    // gx = s * (g - sum(g * s))
    const product = rawBinary('mul', g, out);
    const total = rowSums(product);
    const centred = rawBinary('sub', g, total);
    accumulate(x, rawBinary('mul', out, centred));
    for (const tensor of [product, total, centred]) dispose(tensor);
  });
}

// x - log(sum(exp(x - max))) - max along the last axis
function logSoftmax(x: Tensor, axis = -1): Tensor {
  if (!isLastAxis(axis, x.rank, 'logSoftmax')) unavailableOnDevice(`logSoftmax over axis ${axis}`, [x]);
  const marked = x.shape.map((_, d) => d === x.rank - 1);
  const device = deviceOf('logSoftmax', [x]);
  const rowShape = [...x.shape.slice(0, -1), 1];
  const maxima = deviceTensor(device, reduceMarked('max', x, marked), rowShape);
  const shifted = rawBinary('sub', x, maxima);
  const exponentials = rawUnary('exp', shifted);
  const totals = rowSums(exponentials);
  const logTotals = rawUnary('log', totals);
  const out = rawBinary('sub', shifted, logTotals);
  for (const tensor of [maxima, shifted, exponentials, totals, logTotals]) dispose(tensor);
  return record(out, 'logSoftmax', [x], (g) => {
    // gx = g - softmax * sum(g)
    const probabilities = rawUnary('exp', out);
    const total = rowSums(g);
    const spread = rawBinary('mul', probabilities, total);
    accumulate(x, rawBinary('sub', g, spread));
    for (const tensor of [probabilities, total, spread]) dispose(tensor);
  });
}

// x: (rows, columns), gamma, beta: (columns); the CPU op has checked the sizes
function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, epsilon = 1e-5): Tensor {
  const device = deviceOf('layerNorm', [x, gamma, beta]);
  noGradient('layerNorm', [x, gamma, beta]);
  const columns = x.shape[x.rank - 1];
  const rows = x.size / columns;
  return launch(device, x.shape, (output) => {
    device.layernorm(bufferOf(x), bufferOf(gamma), bufferOf(beta), output, rows, columns, { epsilon });
  });
}

// ---------------------------------------------------------------------------------------------
// Products and views

/** a: (..., M, K) @ b: (K, N) as one (rows, K) @ (K, N), recording nothing. */
function rawMatmul(a: Tensor, b: Tensor): Tensor {
  const device = deviceOf('matmul', [a, b]);
  const [inner, columns] = b.shape;
  const rows = a.size / inner;
  return launch(device, [...a.shape.slice(0, -1), columns], (output) => {
    device.matmul(bufferOf(a), bufferOf(b), output, rows, columns, inner);
  });
}

// a: (..., M, K), b: (K, N) -> (..., M, N); the CPU op has checked K
function matmul(a: Tensor, b: Tensor): Tensor {
  if (b.rank !== 2) unavailableOnDevice(`matmul with a batched right operand [${b.shape.join(', ')}]`, [b]);
  const out = rawMatmul(a, b);
  return record(out, 'matmul', [a, b], (g) => {
    const [inner, columns] = b.shape;
    if (a.requiresGrad) {
      // ga = g @ b^T
      const bT = permuted(b, [1, 0]);
      accumulate(a, rawMatmul(g, bT));
      dispose(bT);
    }
    if (b.requiresGrad) {
      // gb = a^T @ g, a and g seen as (rows, K) and (rows, N)
      const rows = a.size / inner;
      const a2 = share(a, [rows, inner]);
      const aT = permuted(a2, [1, 0]);
      const g2 = share(g, [rows, columns]);
      accumulate(b, rawMatmul(aT, g2));
      for (const tensor of [a2, aT, g2]) dispose(tensor);
    }
  });
}

// x: (..., in), weight: (out, in), bias: (out) -> (..., out); the CPU op has checked the shapes
function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  deviceOf('linear', bias === null ? [x, weight] : [x, weight, bias]);
  const weightT = transpose(weight);
  const product = matmul(x, weightT);
  handOver(weightT, product);
  if (bias === null) return product;
  const out = binary('add', product, bias);
  handOver(product, out);
  return out;
}

// x: (N, C, H, W), weight: (O, C, KH, KW), bias: (O) -> (N, O, OH, OW); the CPU op has checked the shapes
function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  const device = deviceOf('conv2d', inputs);
  noGradient('conv2d', inputs);
  const [batch, inChannels, height, width] = x.shape;
  const [outChannels, , kernelHeight, kernelWidth] = weight.shape;
  const stride = options.stride ?? 1;
  const padding = options.padding ?? 0;
  const outHeight = Math.floor((height + 2 * padding - kernelHeight) / stride) + 1;
  const outWidth = Math.floor((width + 2 * padding - kernelWidth) / stride) + 1;
  const geometry = {
    batch,
    inChannels,
    height,
    width,
    outChannels,
    kernelHeight,
    kernelWidth,
    stride,
    padding,
  };
  const biasBuffer = bias === null ? undefined : bufferOf(bias);
  return launch(device, [batch, outChannels, outHeight, outWidth], (output) => {
    device.conv2d(bufferOf(x), bufferOf(weight), biasBuffer, output, geometry);
  });
}

/** The same buffer in a new shape (the CPU op has resolved and checked it); no launch. */
function reshape(x: Tensor, shape: readonly number[]): Tensor {
  deviceOf('reshape', [x]);
  return record(share(x, shape), 'reshape', [x], (g) => accumulate(x, share(g, x.shape)));
}

// ---------------------------------------------------------------------------------------------
// Losses, composed of the ops above

// logits: (N, C), targets: validated labels (N) -> scalar
function crossEntropy(logits: Tensor, targets: Int32Array, options: LossOptions = {}): Tensor {
  const device = deviceOf('crossEntropy', [logits]);
  const [rows, classes] = logits.shape;
  const scale = options.reduction === 'sum' ? 1 : 1 / Math.max(1, rows);
  // loss = sum(logSoftmax(logits) * w), w = -scale at each row's label, 0 elsewhere
  const weights = new Float32Array(rows * classes);
  for (let r = 0; r < rows; r++) weights[r * classes + targets[r]] = -scale;
  const picked = deviceTensor(device, device.upload(weights), [rows, classes]);
  const logProbabilities = logSoftmax(logits);
  const weighted = binary('mul', logProbabilities, picked);
  handOver(picked, weighted);
  handOver(logProbabilities, weighted);
  const loss = sumOrMean('sum', weighted);
  handOver(weighted, loss);
  return loss;
}

// prediction, target: the same shape -> scalar
function mseLoss(prediction: Tensor, target: Tensor, options: LossOptions = {}): Tensor {
  deviceOf('mseLoss', [prediction, target]);
  const difference = binary('sub', prediction, target);
  const squared = binary('mul', difference, difference);
  handOver(difference, squared);
  const loss = sumOrMean(options.reduction === 'sum' ? 'sum' : 'mean', squared);
  handOver(squared, loss);
  return loss;
}

// ---------------------------------------------------------------------------------------------
// The table

/** Every op a device runs, with the CPU op's arguments. */
const DEVICE_KERNELS = {
  add: (a: Operand, b: Operand) => binary('add', a, b),
  sub: (a: Operand, b: Operand) => binary('sub', a, b),
  mul: (a: Operand, b: Operand) => binary('mul', a, b),
  div: (a: Operand, b: Operand) => binary('div', a, b),
  pow: (a: Operand, b: Operand) => binary('pow', a, b),
  neg: (x: Tensor) => unary('neg', x),
  exp: (x: Tensor) => unary('exp', x),
  log: (x: Tensor) => unary('log', x),
  sqrt: (x: Tensor) => unary('sqrt', x),
  relu: (x: Tensor) => unary('relu', x),
  gelu: (x: Tensor) => unary('gelu', x),
  sigmoid: (x: Tensor) => unary('sigmoid', x),
  tanh: (x: Tensor) => unary('tanh', x),
  sum: (x: Tensor, axes?: number | readonly number[], options?: ReduceOptions) =>
    sumOrMean('sum', x, axes, options),
  mean: (x: Tensor, axes?: number | readonly number[], options?: ReduceOptions) =>
    sumOrMean('mean', x, axes, options),
  max,
  softmax,
  logSoftmax,
  layerNorm,
  matmul,
  linear,
  conv2d,
  reshape,
  permute,
  transpose,
  crossEntropy,
  mseLoss,
} as const;

export type DeviceOpName = keyof typeof DEVICE_KERNELS;

/** The ops that run on a GPU-layer device; any other op on a device tensor is a `TensorError`. */
export const DEVICE_OP_NAMES = Object.keys(DEVICE_KERNELS) as readonly DeviceOpName[];

/** Runs `op` on the device its inputs live on (the CPU ops' device branch). */
export function runOnDevice<Name extends DeviceOpName>(
  op: Name,
  ...args: Parameters<(typeof DEVICE_KERNELS)[Name]>
): Tensor {
  return (DEVICE_KERNELS[op] as (...values: typeof args) => Tensor)(...args);
}

// ---------------------------------------------------------------------------------------------
// The backward pass on a device

/** Adds `g` (owned by the caller until now, `input`'s shape) into `input.deviceGrad`. */
function accumulate(input: Tensor, g: Tensor): void {
  if (!input.requiresGrad) {
    dispose(g);
    return;
  }
  const shaped = reshaped(g, input.shape);
  if (input.deviceGrad === null) {
    input.deviceGrad = shaped;
    return;
  }
  const total = rawBinary('add', input.deviceGrad, shaped);
  dispose(input.deviceGrad);
  dispose(shaped);
  input.deviceGrad = total;
}

/** Gives back what a device node holds: its saved tensors and, for an intermediate, its gradient. */
export function disposeDeviceNode(node: GradNode, tensor: Tensor): void {
  node.deviceBackward = null;
  for (const saved of node.deviceScratch ?? []) dispose(saved);
  node.deviceScratch?.splice(0);
  if (tensor.deviceGrad !== null) {
    dispose(tensor.deviceGrad);
    tensor.deviceGrad = null;
  }
}

/**
 * `backward(root)` for a root on a device (which has checked the root and `gradient`): seeds the root's gradient (ones for a single value,
 * else `gradient`, uploaded) and runs each recorded device backward in reverse topological
 * order. Leaves keep (and accumulate) `deviceGrad`; intermediate gradients are given back once
 * used unless `retainGrad`. Nothing waits: reading a gradient (`await g.to('cpu')`) does.
 */
export function backwardOnDevice(root: Tensor, gradient?: Float32Array): void {
  const device = root.device as GpuDevice;
  const order = topologicalOrder(root);
  for (let i = order.length - 1; i >= 0; i--) {
    const tensor = order[i];
    if (tensor.node !== null && tensor.node.deviceBackward === null) {
      throw new TensorError(
        'graph_consumed',
        `backward: the graph through '${tensor.node.op}' was already used`,
      );
    }
  }
  const seed = gradient ?? Float32Array.of(1);
  accumulate(root, deviceTensor(device, device.upload(seed), root.shape));
  noGrad(() => {
    for (let i = order.length - 1; i >= 0; i--) {
      const tensor = order[i];
      const node = tensor.node;
      if (node === null) continue;
      const run = node.deviceBackward;
      const g = tensor.deviceGrad;
      if (run && g !== null) run(g);
      node.deviceBackward = null;
      for (const saved of node.deviceScratch ?? []) dispose(saved);
      if (!tensor.retainGrad && g !== null) {
        dispose(g);
        tensor.deviceGrad = null;
      }
    }
  });
}
