/**
 * Tensors on GPU-layer devices: moving them (`to`) and running ops on them.
 *
 * Every CPU op in `ops/` has one early branch: when an input is not on the CPU it hands its
 * arguments to `runOnDevice`, which looks the op up in `DEVICE_KERNELS` below and enqueues the
 * device's kernel; an op without an entry there throws `unavailableOnDevice`. Launches are
 * asynchronous and nothing waits for them: `await to(t, 'cpu')` is the synchronization point,
 * and it reports a kernel that failed meanwhile (a `DeviceError` from the GPU layer).
 *
 * Rules on a device:
 * - All tensor inputs of an op live on the same device (numbers are fine); mixing is a
 *   `TensorError` naming both devices.
 * - Tensors are contiguous f32 and hold one reference to their `DeviceBuffer`, given back by
 *   `dispose(t)` or, failing that, when the tensor is garbage collected. Empty tensors stay on
 *   the CPU (a device buffer has at least one element).
 * - No autograd: moving a tensor that requires a gradient, or an op on one, is a `TensorError`
 *   (move `detach(t)` instead); gradients are computed on the CPU.
 *
 * | op                                       | device kernel              | on a device                          |
 * | ---------------------------------------- | -------------------------- | ------------------------------------ |
 * | add, sub, mul, div, pow                  | binary                     | broadcasting up to rank 4; numbers   |
 * | neg, exp, log, sqrt, relu, sigmoid, tanh | unary                      | pow wants a base > 0 (WGSL's pow)    |
 * | gelu                                     | unary                      | the exact (erf) form, as on the CPU  |
 * | sum, max                                 | reduce (per row)           | over the last axis or over all axes  |
 * | softmax                                  | softmax (per row)          | over the last axis                   |
 * | layerNorm                                | layernorm (per row)        | over the last axis                   |
 * | matmul                                   | matmul                     | a (..., M, K) @ b (K, N)             |
 * | conv2d                                   | im2col + matmul            | stride and padding as on the CPU     |
 * | reshape (so flatten and unsqueeze)       | none: a view of the buffer |                                      |
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
import type { Conv2dOptions } from './ops/conv.js';
import type { Operand } from './ops/elementwise.js';
import type { ReduceOptions } from './ops/reduce.js';
import {
  contiguousData,
  type Device,
  normalizeAxis,
  releaseTemporary,
  sameShape,
  sizeOf,
  Tensor,
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
  checkNoGradient('to', source);
  if (source.device !== 'cpu')
    return deviceTensor(target, await migrate(bufferOf(source), target), source.shape);
  check(source.size > 0, 'invalid_shape', () => {
    return `to: an empty tensor ([${source.shape.join(', ')}]) cannot live on ${target.id}`;
  });
  const values = contiguousData(source);
  try {
    return deviceTensor(target, target.upload(values), source.shape);
  } finally {
    // The upload has copied the values (WebGPU's writeBuffer, CUDA's staged copy), so the
    // gathered copy of a view can go back to the pool now.
    releaseTemporary(source, values);
  }
}

function deviceTensor(device: GpuDevice, buffer: DeviceBuffer, shape: readonly number[]): Tensor {
  return new Tensor(NO_HOST_STORAGE, [...shape], 'f32', undefined, 0, true, {}, { device, buffer });
}

function bufferOf(tensor: Tensor): DeviceBuffer {
  const buffer = tensor.deviceBuffer;
  if (buffer === null)
    throw new TypeError(`bufferOf: a tensor on ${deviceName(tensor.device)} has no buffer`);
  return buffer;
}

function deviceName(device: Device): string {
  return device === 'cpu' ? 'cpu' : device.id;
}

function checkNoGradient(op: string, tensor: Tensor): void {
  check(!tensor.requiresGrad, 'invalid_argument', () => {
    return `${op}: autograd is not available on device tensors; use detach(t), a copy without the graph, and compute gradients on the CPU`;
  });
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/** The device all `inputs` live on; throws a `TensorError` when they are mixed, disposed or need gradients. */
function deviceOf(op: string, inputs: readonly Tensor[]): GpuDevice {
  let device: Device | undefined;
  for (const input of inputs) {
    check(!input.disposed, 'disposed', () => `${op}: an input was disposed`);
    checkNoGradient(op, input);
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

/** `a op b` into a fresh buffer of `count` values (the broadcast output's size). */
function binaryBuffer(
  device: GpuDevice,
  op: BinaryOpName,
  a: OperandBuffer,
  b: OperandBuffer,
  count: number,
): DeviceBuffer {
  try {
    const shapes = binaryShapes(op, a.shape, b.shape, count);
    return launchBuffer(device, count, (output) => device.binary(op, a.buffer, b.buffer, output, shapes));
  } finally {
    releaseUpload(a);
    releaseUpload(b);
  }
}

function binary(op: BinaryOpName, left: Operand, right: Operand): Tensor {
  const tensors = [left, right].filter((operand): operand is Tensor => typeof operand !== 'number');
  const device = deviceOf(op, tensors);
  const shape = broadcastShapes(
    typeof left === 'number' ? [] : left.shape,
    typeof right === 'number' ? [] : right.shape,
    op,
  );
  const a = operandBuffer(device, left);
  const b = operandBuffer(device, right);
  return deviceTensor(device, binaryBuffer(device, op, a, b, sizeOf(shape)), shape);
}

function unary(op: UnaryOpName, x: Tensor): Tensor {
  const device = deviceOf(op, [x]);
  return launch(device, x.shape, (output) => device.unary(op, bufferOf(x), output));
}

// ---------------------------------------------------------------------------------------------
// Rows: reductions, softmax, layer normalisation

/** Whether `axes` names only the last axis of a tensor of `rank` (an error for an axis out of range). */
function isLastAxis(axes: number | readonly number[], rank: number, op: string): boolean {
  const list = typeof axes === 'number' ? [axes] : axes;
  return list.length === 1 && normalizeAxis(list[0], rank, op) === rank - 1;
}

// x: (rows, columns) -> (rows), columns the last axis (or every element, for all axes)
function reduce(
  op: 'sum' | 'max',
  x: Tensor,
  axes?: number | readonly number[],
  options: ReduceOptions = {},
): Tensor {
  const device = deviceOf(op, [x]);
  const keepDims = options.keepDims ?? false;
  let columns: number;
  let shape: number[];
  if (axes === undefined) {
    columns = x.size;
    shape = keepDims ? x.shape.map(() => 1) : [];
  } else {
    if (!isLastAxis(axes, x.rank, op)) unavailableOnDevice(`${op} over axes [${String(axes)}]`, [x]);
    columns = x.shape[x.rank - 1];
    shape = keepDims ? [...x.shape.slice(0, -1), 1] : x.shape.slice(0, -1);
  }
  const rows = x.size / columns;
  return launch(device, shape, (output) => device.reduce(op, bufferOf(x), output, rows, columns));
}

// x, output: (rows, columns); softmax of each row
function softmax(x: Tensor, axis = -1): Tensor {
  const device = deviceOf('softmax', [x]);
  if (!isLastAxis(axis, x.rank, 'softmax')) unavailableOnDevice(`softmax over axis ${axis}`, [x]);
  const columns = x.shape[x.rank - 1];
  const rows = x.size / columns;
  return launch(device, x.shape, (output) => device.softmax(bufferOf(x), output, rows, columns));
}

// x: (rows, columns), gamma, beta: (columns); the CPU op has checked the sizes
function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, epsilon = 1e-5): Tensor {
  const device = deviceOf('layerNorm', [x, gamma, beta]);
  const columns = x.shape[x.rank - 1];
  const rows = x.size / columns;
  return launch(device, x.shape, (output) => {
    device.layernorm(bufferOf(x), bufferOf(gamma), bufferOf(beta), output, rows, columns, { epsilon });
  });
}

// ---------------------------------------------------------------------------------------------
// Products and views

// a: (..., M, K), b: (K, N) -> (..., M, N), as one (rows, K) @ (K, N); the CPU op has checked K
function matmul(a: Tensor, b: Tensor): Tensor {
  const device = deviceOf('matmul', [a, b]);
  if (b.rank !== 2) unavailableOnDevice(`matmul with a batched right operand [${b.shape.join(', ')}]`, [b]);
  const [inner, columns] = b.shape;
  const rows = a.size / inner;
  return launch(device, [...a.shape.slice(0, -1), columns], (output) => {
    device.matmul(bufferOf(a), bufferOf(b), output, rows, columns, inner);
  });
}

// x: (N, C, H, W), weight: (O, C, KH, KW), bias: (O) -> (N, O, OH, OW); the CPU op has checked the shapes
function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  const device = deviceOf('conv2d', bias === null ? [x, weight] : [x, weight, bias]);
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
  const device = deviceOf('reshape', [x]);
  return deviceTensor(device, bufferOf(x).retain(), shape);
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
    reduce('sum', x, axes, options),
  max: (x: Tensor, axes?: number | readonly number[], options?: ReduceOptions) =>
    reduce('max', x, axes, options),
  softmax,
  layerNorm,
  matmul,
  conv2d,
  reshape,
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
