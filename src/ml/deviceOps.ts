/**
 * Device kernels for tensors on GPU-layer devices: the forward of every op that runs there.
 *
 * This is dispatch, not a second engine: each op in `ops/*` (and `losses.ts`) branches here
 * when its inputs live on a device, then records its one gradient rule, which is written with
 * ops and so runs on the device too. Nothing here records a node or knows a gradient. Launches
 * are asynchronous and nothing waits for them: `await to(t, 'cpu')` is the synchronization
 * point, and it reports a kernel that failed meanwhile (a `DeviceError` from the GPU layer).
 *
 * Rules on a device:
 * - All tensor inputs of an op live on the same device (numbers are fine); mixing is a
 *   `TensorError` naming both devices.
 * - Tensors are contiguous f32 and hold one reference to their `DeviceBuffer`, given back by
 *   `dispose(t)` or `disposeGraph(loss)` or, failing those, when the tensor is garbage
 *   collected. Empty tensors stay on the CPU (a device buffer has at least one element).
 * - `to(t, device)` of a tensor that requires a gradient is an error (the graph cannot cross
 *   devices): move `detach(t)`, or a module's parameters with `module.to(device)`.
 * - Views (transpose, permute, expand) are copies on a device, made by one strided gather kernel.
 *
 * | op                                             | device kernels                    |
 * | ---------------------------------------------- | --------------------------------- |
 * | add, sub, mul, div, pow                        | binary, broadcasting up to rank 4 |
 * | neg, exp, log, sqrt, relu, sigmoid, tanh, gelu | unary (gelu: the exact erf form)  |
 * | sum, mean, max                                 | reduce per row (+ gather)         |
 * | softmax, logSoftmax                            | softmax / reduce + binary (last axis) |
 * | layerNorm                                      | layernorm (per row)               |
 * | matmul                                         | matmul: a (..., M, K) @ b (K, N); batched b: one batched launch |
 * | linear                                         | matmul (weight read transposed) + binary |
 * | conv2d                                         | im2col + matmul (backward: gather, matmul, col2im, reduce) |
 * | maxPool2d, avgPool2d                           | pool2d (backward: pool2dBackward) |
 * | reshape, flatten, unsqueeze                    | none: the same buffer             |
 * | transpose, permute, expand                     | gather (rank <= 4 after merging)  |
 * | crossEntropy, mseLoss                          | composed of the kernels above     |
 * | embedding                                      | indexRows (backward: indexRowsBackward) |
 * | causalSoftmax (nn/gpt.ts)                      | mul, binary add of an uploaded mask, softmax |
 * | dropout                                        | binary mul by the mask drawn on the host |
 *
 * Gradients come from the ops' rules; an op whose rule needs a kernel a device lacks (max's
 * rule runs on the CPU only) refuses at the forward, when it would record. conv2d and the pools
 * record device rules of their own (`ops/convDevice.ts`): their CPU rules are host loops.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { openDevice } from 'zbmd/gpu';
 * import { matmul, relu, tensor, to, toArray } from 'zbmd/ml';
 *
 * const device = await openDevice('cpu'); // or 'webgpu', 'cuda': the same code
 * const x = await to(tensor([[-1, 2], [3, -4]]), device);
 * const y = relu(matmul(x, x)); // enqueued on the device
 * assert.deepEqual(toArray(await y.to('cpu')), [7, 0, 0, 22]);
 * device.destroy();
 * ```
 */
import type { Device as GpuDevice } from '../gpu/Device.js';
import type { DeviceBuffer } from '../gpu/DeviceBuffer.js';
import { conv2dShape } from '../gpu/internal/checks.js';
import type { BinaryOpName, UnaryOpName } from '../gpu/kernels/ops.js';
import { type Conv2dGeometry, convOutputSize, MAX_BROADCAST_RANK } from '../gpu/kernels/ops.js';
import { check, TensorError } from './errors.js';
import { broadcastShapes } from './internal/broadcast.js';
import {
  bufferOf,
  contiguousStrides,
  type Device,
  deviceName,
  deviceTensor,
  dispose,
  isRecording,
  launchBuffer,
  normalizeAxis,
  sameShape,
  share,
  sizeOf,
  type Tensor,
} from './Tensor.js';

/** A binary op's operand: a tensor or a number (a scalar). */
export type DeviceOperand = Tensor | number;

// ---------------------------------------------------------------------------------------------
// Dispatch

/** Whether any of `inputs` lives on a GPU-layer device (the ops' dispatch test). */
export function anyOnDevice(inputs: readonly (Tensor | number | null | undefined)[]): boolean {
  for (const input of inputs)
    if (typeof input === 'object' && input !== null && input.deviceBuffer !== null) return true;
  return false;
}

/** The device all `inputs` live on; throws a `TensorError` when they are mixed or disposed. */
export function deviceOf(op: string, inputs: readonly Tensor[]): GpuDevice {
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

/**
 * The error for an op whose gradient rule needs a kernel the device lacks, raised at the
 * forward when it would record (not a wrong gradient later).
 */
export function noGradientOnDevice(op: string, inputs: readonly Tensor[]): void {
  if (!isRecording(inputs)) return;
  const where = deviceName(inputs.find((input) => input.device !== 'cpu')?.device ?? 'cpu');
  throw new TensorError(
    'unavailable_on_device',
    `${op} has no gradient on ${where} yet; run it under noGrad, on detach(t), or on the CPU`,
  );
}

function launch(
  device: GpuDevice,
  shape: readonly number[],
  enqueue: (output: DeviceBuffer) => void,
): Tensor {
  return deviceTensor(device, launchBuffer(device, sizeOf(shape), enqueue), shape);
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
export function deviceGather(
  op: string,
  source: Tensor,
  shape: readonly number[],
  strides: readonly number[],
): Tensor {
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
export function devicePermute(source: Tensor, order: readonly number[]): Tensor {
  const strides = contiguousStrides(source.shape);
  return deviceGather(
    'permute',
    source,
    order.map((d) => source.shape[d]),
    order.map((d) => strides[d]),
  );
}

/** source (broadcastable to `shape`) repeated to `shape`. */
export function deviceExpand(source: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(source.shape, shape)) return share(source);
  const padded = [...new Array<number>(shape.length - source.rank).fill(1), ...source.shape];
  const strides = contiguousStrides(padded).map((stride, d) => (padded[d] === 1 ? 0 : stride));
  return deviceGather('expand', source, shape, strides);
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
    source = deviceGather(
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

/** op ('sum' or 'max') over the axes marked in `marked`, as a tensor of `shape` (its element count). */
export function deviceReduce(
  op: 'sum' | 'max',
  x: Tensor,
  marked: readonly boolean[],
  shape: readonly number[],
): Tensor {
  return deviceTensor(deviceOf(op, [x]), reduceMarked(op, x, marked), shape);
}

/** `g` (a broadcast output's shape) summed down to `shape`, the gradient of a broadcast input. */
export function deviceSumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return share(g);
  const padded = [...new Array<number>(g.rank - shape.length).fill(1), ...shape];
  const marked = g.shape.map((n, d) => padded[d] === 1 && n !== 1);
  return deviceReduce('sum', g, marked, shape);
}

// ---------------------------------------------------------------------------------------------
// Elementwise

/** An operand as the binary kernel reads it: a buffer and its shape; `temporary` for an uploaded number. */
interface OperandBuffer {
  readonly buffer: DeviceBuffer;
  readonly shape: readonly number[];
  readonly temporary: boolean;
}

function operandBuffer(device: GpuDevice, operand: DeviceOperand): OperandBuffer {
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

/** `left op right` with broadcasting. */
export function deviceBinary(op: BinaryOpName, left: DeviceOperand, right: DeviceOperand): Tensor {
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

export function deviceUnary(op: UnaryOpName, x: Tensor): Tensor {
  const device = deviceOf(op, [x]);
  return launch(device, x.shape, (output) => device.unary(op, bufferOf(x), output));
}

// ---------------------------------------------------------------------------------------------
// Rows: softmax, layer normalisation

/** Whether `axes` names only the last axis of a tensor of `rank` (an error for an axis out of range). */
export function isLastAxis(axes: number | readonly number[], rank: number, op: string): boolean {
  const list = typeof axes === 'number' ? [axes] : axes;
  return list.length === 1 && normalizeAxis(list[0], rank, op) === rank - 1;
}

// x, output: (rows, columns); softmax of each row
export function deviceSoftmax(x: Tensor): Tensor {
  const device = deviceOf('softmax', [x]);
  const columns = x.shape[x.rank - 1];
  const rows = x.size / columns;
  return launch(device, x.shape, (output) => device.softmax(bufferOf(x), output, rows, columns));
}

// x - log(sum(exp(x - max))) - max along the last axis
export function deviceLogSoftmax(x: Tensor): Tensor {
  const marked = x.shape.map((_, d) => d === x.rank - 1);
  const rowShape = [...x.shape.slice(0, -1), 1];
  const maxima = deviceReduce('max', x, marked, rowShape);
  const shifted = deviceBinary('sub', x, maxima);
  const exponentials = deviceUnary('exp', shifted);
  const totals = deviceReduce('sum', exponentials, marked, rowShape);
  const logTotals = deviceUnary('log', totals);
  const out = deviceBinary('sub', shifted, logTotals);
  for (const tensor of [maxima, shifted, exponentials, totals, logTotals]) dispose(tensor);
  return out;
}

// x: (rows, columns), gamma, beta: (columns); the CPU op has checked the sizes
export function deviceLayerNorm(x: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): Tensor {
  const device = deviceOf('layerNorm', [x, gamma, beta]);
  const columns = x.shape[x.rank - 1];
  const rows = x.size / columns;
  return launch(device, x.shape, (output) => {
    device.layernorm(bufferOf(x), bufferOf(gamma), bufferOf(beta), output, rows, columns, { epsilon });
  });
}

// ---------------------------------------------------------------------------------------------
// Products

/**
 * a: (..., M, K) @ b: (K, N) as one (rows, K) @ (K, N). A batched b, (..., K, N), makes one
 * launch of batched products over the broadcast batch dimensions: an operand with one matrix
 * is shared (stride 0), one with every batch is read in place, and one broadcast only along
 * some dimensions is expanded first (a gather).
 */
export function deviceMatmul(a: Tensor, b: Tensor): Tensor {
  const device = deviceOf('matmul', [a, b]);
  const [inner, columns] = b.shape.slice(-2);
  if (b.rank === 2) {
    const rows = a.size / inner;
    return launch(device, [...a.shape.slice(0, -1), columns], (output) => {
      device.matmul(bufferOf(a), bufferOf(b), output, rows, columns, inner);
    });
  }
  const rows = a.shape[a.rank - 2];
  const batchShape = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul');
  const count = sizeOf(batchShape);
  const left = batchOperand(a, batchShape);
  const right = batchOperand(b, batchShape);
  try {
    const batch = { count, strideA: left.stride, strideB: right.stride };
    return launch(device, [...batchShape, rows, columns], (output) => {
      device.matmul(bufferOf(left.tensor), bufferOf(right.tensor), output, rows, columns, inner, { batch });
    });
  } finally {
    if (left.tensor !== a) dispose(left.tensor);
    if (right.tensor !== b) dispose(right.tensor);
  }
}

/** A matmul operand over `batchShape`: itself (one matrix, or one per batch) or expanded to it. */
function batchOperand(x: Tensor, batchShape: readonly number[]): { tensor: Tensor; stride: number } {
  const matrix = x.shape.slice(-2);
  const size = matrix[0] * matrix[1];
  const batches = x.size / size;
  if (batches === 1) return { tensor: x, stride: 0 };
  if (batches === sizeOf(batchShape)) return { tensor: x, stride: size };
  return { tensor: deviceExpand(x, [...batchShape, ...matrix]), stride: size };
}

/**
 * op(a) @ op(b) for 2-D a and b, one matmul launch with the transpose flags (no copy): a is
 * (m, k), or (k, m) read transposed; b is (k, n), or (n, k) read transposed.
 */
export function deviceProduct(a: Tensor, b: Tensor, transposeA: boolean, transposeB: boolean): Tensor {
  const device = deviceOf('matmul', [a, b]);
  check(a.rank === 2 && b.rank === 2, 'invalid_shape', () => {
    return `matmul: a device product needs 2-D operands, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`;
  });
  const [m, k] = transposeA ? [a.shape[1], a.shape[0]] : a.shape;
  const [inner, n] = transposeB ? [b.shape[1], b.shape[0]] : b.shape;
  check(inner === k, 'shape_mismatch', () => {
    return `matmul: inner dimensions differ: ${k} and ${inner} (a [${a.shape.join(', ')}]${transposeA ? 'ᵀ' : ''}, b [${b.shape.join(', ')}]${transposeB ? 'ᵀ' : ''})`;
  });
  return launch(device, [m, n], (output) => {
    device.matmul(bufferOf(a), bufferOf(b), output, m, n, k, { transposeA, transposeB });
  });
}

// x: (..., in), weight: (out, in), bias: (out) -> (..., out); the CPU op has checked the shapes.
// One matmul reading weight transposed (x @ weightᵀ), then the bias add.
export function deviceLinear(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  const device = deviceOf('linear', bias === null ? [x, weight] : [x, weight, bias]);
  const [outFeatures, inFeatures] = weight.shape;
  const rows = x.size / inFeatures;
  const product = launch(device, [...x.shape.slice(0, -1), outFeatures], (output) => {
    device.matmul(bufferOf(x), bufferOf(weight), output, rows, outFeatures, inFeatures, {
      transposeB: true,
    });
  });
  if (bias === null) return product;
  const out = deviceBinary('add', product, bias);
  dispose(product);
  return out;
}

// x: (N, C, H, W), weight: (O, C, KH, KW), bias: (O) -> (N, O, OH, OW); the CPU op has checked the geometry
export function deviceConv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  geometry: Conv2dGeometry,
): Tensor {
  const device = deviceOf('conv2d', bias === null ? [x, weight] : [x, weight, bias]);
  const { batch, outChannels, outHeight, outWidth } = geometry;
  const biasBuffer = bias === null ? undefined : bufferOf(bias);
  return launch(device, [batch, outChannels, outHeight, outWidth], (output) => {
    device.conv2d(bufferOf(x), bufferOf(weight), biasBuffer, output, conv2dShape(geometry));
  });
}

// x: (N, C, H, W) -> columns (C * KH * KW, N * OH * OW), zero outside the padded input
export function deviceIm2col(x: Tensor, geometry: Conv2dGeometry): Tensor {
  const device = deviceOf('conv2d', [x]);
  const { inChannels, kernelHeight, kernelWidth, batch, outHeight, outWidth } = geometry;
  const shape = [inChannels * kernelHeight * kernelWidth, batch * outHeight * outWidth];
  return launch(device, shape, (output) => device.im2col(bufferOf(x), output, conv2dShape(geometry)));
}

// columns (C * KH * KW, N * OH * OW) -> (N, C, H, W): im2col's adjoint (conv2d's input gradient)
export function deviceCol2im(columns: Tensor, geometry: Conv2dGeometry): Tensor {
  const device = deviceOf('conv2d', [columns]);
  const { batch, inChannels, height, width } = geometry;
  return launch(device, [batch, inChannels, height, width], (output) =>
    device.col2im(bufferOf(columns), output, conv2dShape(geometry)),
  );
}

// x: (N, C, H, W) -> (N, C, OH, OW); max takes each window's first maximum
export function devicePool2d(op: 'max' | 'avg', x: Tensor, kernelSize: number, stride: number): Tensor {
  const device = deviceOf(`${op}Pool2d`, [x]);
  const [batch, channels, height, width] = x.shape;
  const outHeight = convOutputSize(height, kernelSize, stride, 0);
  const outWidth = convOutputSize(width, kernelSize, stride, 0);
  const shape = { batch, channels, height, width, kernelSize, stride };
  return launch(device, [batch, channels, outHeight, outWidth], (output) =>
    device.pool2d(op, bufferOf(x), output, shape),
  );
}

// (x (N, C, H, W), g (N, C, OH, OW)) -> the gradient with respect to x
export function devicePool2dBackward(
  op: 'max' | 'avg',
  x: Tensor,
  g: Tensor,
  kernelSize: number,
  stride: number,
): Tensor {
  const device = deviceOf(`${op}Pool2d`, [x, g]);
  const [batch, channels, height, width] = x.shape;
  const shape = { batch, channels, height, width, kernelSize, stride };
  return launch(device, x.shape, (output) =>
    device.pool2dBackward(op, bufferOf(x), bufferOf(g), output, shape),
  );
}

/** Rows of `table` (V, D) by the row numbers in `ids`, as a tensor of `shape` (..., D): one indexRows launch. */
export function deviceIndexRows(table: Tensor, ids: Float32Array, shape: readonly number[]): Tensor {
  const device = deviceOf('embedding', [table]);
  const [rows, dimension] = table.shape;
  const indices = device.upload(ids);
  try {
    return launch(device, shape, (output) => {
      device.indexRows(bufferOf(table), indices, output, { count: ids.length, dimension, rows });
    });
  } finally {
    indices.release();
  }
}

/**
 * The table gradient (V, D) of `deviceIndexRows` from the output's gradient `g` (N, D), with the
 * lookups grouped by row: `positions` (N) in row order, row r's from `starts[r]` to
 * `starts[r + 1]`. One indexRowsBackward launch.
 */
export function deviceIndexRowsBackward(
  g: Tensor,
  positions: Float32Array,
  starts: Float32Array,
  tableShape: readonly number[],
): Tensor {
  const device = deviceOf('embedding', [g]);
  const [rows, dimension] = tableShape;
  const uploaded = [device.upload(positions), device.upload(starts)];
  try {
    return launch(device, tableShape, (output) => {
      const shape = { count: positions.length, dimension, rows };
      device.indexRowsBackward(bufferOf(g), uploaded[0], uploaded[1], output, shape);
    });
  } finally {
    for (const buffer of uploaded) buffer.release();
  }
}

/** A tensor of `shape` on `device` holding `values` (uploaded). */
export function deviceUpload(device: GpuDevice, values: Float32Array, shape: readonly number[]): Tensor {
  return deviceTensor(device, device.upload(values), shape);
}

// ---------------------------------------------------------------------------------------------
// The list

/** The ops that run on a GPU-layer device; any other op on a device tensor is a `TensorError`. */
export const DEVICE_OP_NAMES = [
  'add',
  'sub',
  'mul',
  'div',
  'pow',
  'neg',
  'exp',
  'log',
  'sqrt',
  'relu',
  'gelu',
  'sigmoid',
  'tanh',
  'sum',
  'mean',
  'max',
  'softmax',
  'logSoftmax',
  'layerNorm',
  'matmul',
  'linear',
  'conv2d',
  'maxPool2d',
  'avgPool2d',
  'reshape',
  'permute',
  'transpose',
  'crossEntropy',
  'mseLoss',
  'embedding',
  'causalSoftmax',
  'dropout',
] as const;

export type DeviceOpName = (typeof DEVICE_OP_NAMES)[number];
