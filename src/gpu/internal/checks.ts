/** Argument checks shared by the public `Device` methods; each failure is a `DeviceError`. */
import type { DeviceBuffer } from '../DeviceBuffer.js';
import { DeviceError } from '../errors.js';
import {
  type BinaryLayout,
  type Conv2dGeometry,
  convOutputSize,
  MAX_BROADCAST_RANK,
  type Pool2dGeometry,
} from '../kernels/ops.js';
import type { DType } from '../types.js';

/** Kernels index elements with 32-bit unsigned integers. */
export const MAX_KERNEL_ELEMENTS = 2 ** 32 - 1;

export function checkCount(deviceId: string, operation: string, name: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0 || value > MAX_KERNEL_ELEMENTS) {
    throw new DeviceError(
      deviceId,
      operation,
      `${name} must be an integer in [1, 2^32 - 1], got ${String(value)}`,
    );
  }
}

export function checkElements(
  deviceId: string,
  operation: string,
  role: string,
  buffer: DeviceBuffer,
  elements: number,
  dtypes: readonly DType[] = ['f32'],
): void {
  if (!dtypes.includes(buffer.dtype)) {
    throw new DeviceError(deviceId, operation, `${role} must be ${dtypes.join(' or ')}, got ${buffer.dtype}`);
  }
  if (buffer.length < elements) {
    throw new DeviceError(deviceId, operation, `${role} holds ${buffer.length} elements, needs ${elements}`);
  }
}

export function checkNoAlias(
  deviceId: string,
  operation: string,
  output: DeviceBuffer,
  inputs: readonly DeviceBuffer[],
): void {
  if (inputs.includes(output)) {
    throw new DeviceError(
      deviceId,
      operation,
      'the output buffer must not also be an input (WebGPU forbids the aliasing)',
    );
  }
}

function checkShape(deviceId: string, operation: string, name: string, shape: readonly number[]): void {
  if (
    !Array.isArray(shape) ||
    shape.length > MAX_BROADCAST_RANK ||
    shape.some((d) => !Number.isInteger(d) || d < 1)
  ) {
    throw new DeviceError(
      deviceId,
      operation,
      `${name} must be at most ${MAX_BROADCAST_RANK} positive integers, got [${String(shape)}]`,
    );
  }
}

function padded(shape: readonly number[]): number[] {
  return [...new Array(MAX_BROADCAST_RANK - shape.length).fill(1), ...shape];
}

function broadcastStrides(shape: number[], output: number[]): number[] {
  const strides = new Array<number>(MAX_BROADCAST_RANK).fill(0);
  let stride = 1;
  for (let d = MAX_BROADCAST_RANK - 1; d >= 0; d--) {
    strides[d] = shape[d] === 1 && output[d] !== 1 ? 0 : stride;
    stride *= shape[d];
  }
  return strides;
}

/** NumPy broadcasting of two shapes (rank <= 4): the layout and the output's element count. */
export function broadcastLayout(
  deviceId: string,
  operation: string,
  shapeA: readonly number[],
  shapeB: readonly number[],
): { layout: BinaryLayout; count: number; shape: number[] } {
  checkShape(deviceId, operation, 'shapeA', shapeA);
  checkShape(deviceId, operation, 'shapeB', shapeB);
  const a = padded(shapeA);
  const b = padded(shapeB);
  const shape = a.map((size, d) => {
    if (size !== b[d] && size !== 1 && b[d] !== 1) {
      throw new DeviceError(
        deviceId,
        operation,
        `shapes [${shapeA}] and [${shapeB}] do not broadcast (dimension ${d})`,
      );
    }
    return Math.max(size, b[d]);
  });
  const count = shape.reduce((product, size) => product * size, 1);
  const layout: BinaryLayout = {
    kind: 'broadcast',
    shape,
    stridesA: broadcastStrides(a, shape),
    stridesB: broadcastStrides(b, shape),
  };
  return { layout, count, shape };
}

/** What a caller says about a convolution; the output size is derived. */
export interface Conv2dShape {
  readonly batch: number;
  readonly inChannels: number;
  readonly height: number;
  readonly width: number;
  readonly outChannels: number;
  readonly kernelHeight: number;
  readonly kernelWidth: number;
  /** A number for both dimensions or [height, width]; 1 by default. */
  readonly stride?: number | readonly [number, number];
  /** Zero padding on each side; a number or [height, width]; 0 by default. */
  readonly padding?: number | readonly [number, number];
  /** Spacing between kernel taps; a number or [height, width]; 1 by default. */
  readonly dilation?: number | readonly [number, number];
  /** Channel groups (weight (O, C / groups, KH, KW)); 1 by default. `Device.conv2d` takes 1 only. */
  readonly groups?: number;
}

function pair(value: number | readonly [number, number] | undefined, fallback: number): [number, number] {
  if (value === undefined) return [fallback, fallback];
  return typeof value === 'number' ? [value, value] : [value[0], value[1]];
}

export function convGeometry(deviceId: string, shape: Conv2dShape): Conv2dGeometry {
  const [strideHeight, strideWidth] = pair(shape.stride, 1);
  const [paddingHeight, paddingWidth] = pair(shape.padding, 0);
  const [dilationHeight, dilationWidth] = pair(shape.dilation, 1);
  const groups = shape.groups ?? 1;
  const { batch, inChannels, height, width, outChannels, kernelHeight, kernelWidth } = shape;
  const counted = { batch, inChannels, height, width, outChannels, kernelHeight, kernelWidth };
  const steps = { strideHeight, strideWidth, dilationHeight, dilationWidth, groups };
  for (const [name, value] of Object.entries({ ...counted, ...steps }))
    checkCount(deviceId, 'conv2d', name, value);
  for (const value of [paddingHeight, paddingWidth]) {
    if (!Number.isInteger(value) || value < 0)
      throw new DeviceError(deviceId, 'conv2d', `padding must be integers >= 0, got ${value}`);
  }
  if (inChannels % groups !== 0 || outChannels % groups !== 0) {
    throw new DeviceError(
      deviceId,
      'conv2d',
      `groups (${groups}) must divide inChannels (${inChannels}) and outChannels (${outChannels})`,
    );
  }
  const outHeight = convOutputSize(height, kernelHeight, strideHeight, paddingHeight, dilationHeight);
  const outWidth = convOutputSize(width, kernelWidth, strideWidth, paddingWidth, dilationWidth);
  if (outHeight < 1 || outWidth < 1) {
    throw new DeviceError(
      deviceId,
      'conv2d',
      `the ${kernelHeight}x${kernelWidth} kernel (dilation ${dilationHeight}x${dilationWidth}) does not fit the padded ${height}x${width} input`,
    );
  }
  const padding = { paddingHeight, paddingWidth };
  return {
    ...counted,
    strideHeight,
    strideWidth,
    ...padding,
    dilationHeight,
    dilationWidth,
    groups,
    outHeight,
    outWidth,
  };
}

/** The request that resolves to `g` again (so a checked geometry can be handed to `Device` methods). */
export function conv2dShape(g: Conv2dGeometry): Conv2dShape {
  const { batch, inChannels, height, width, outChannels, kernelHeight, kernelWidth, groups } = g;
  return {
    batch,
    inChannels,
    height,
    width,
    outChannels,
    kernelHeight,
    kernelWidth,
    stride: [g.strideHeight, g.strideWidth],
    padding: [g.paddingHeight, g.paddingWidth],
    dilation: [g.dilationHeight, g.dilationWidth],
    groups,
  };
}

/** What a caller says about a 2-d pooling; the output size is derived. */
export interface Pool2dShape {
  readonly batch: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  /** Square windows of kernelSize x kernelSize. */
  readonly kernelSize: number;
  /** kernelSize by default. */
  readonly stride?: number;
}

export function poolGeometry(deviceId: string, operation: string, shape: Pool2dShape): Pool2dGeometry {
  const stride = shape.stride ?? shape.kernelSize;
  for (const [name, value] of Object.entries({ ...shape, stride }))
    checkCount(deviceId, operation, name, value);
  if (shape.kernelSize > shape.height || shape.kernelSize > shape.width) {
    throw new DeviceError(
      deviceId,
      operation,
      `the ${shape.kernelSize}x${shape.kernelSize} window does not fit the ${shape.height}x${shape.width} input`,
    );
  }
  const planes = shape.batch * shape.channels;
  checkCount(deviceId, operation, 'batch * channels * height * width', planes * shape.height * shape.width);
  return {
    planes,
    height: shape.height,
    width: shape.width,
    kernelSize: shape.kernelSize,
    stride,
    outHeight: convOutputSize(shape.height, shape.kernelSize, stride, 0),
    outWidth: convOutputSize(shape.width, shape.kernelSize, stride, 0),
  };
}
