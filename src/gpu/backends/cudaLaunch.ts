/**
 * Turns a checked `KernelLaunch` (all but matmul, which goes to cuBLAS) into a generated CUDA
 * kernel, its argument values in parameter order, and the number of 256-thread blocks.
 */
import type { KernelLaunch, NativeBuffer } from '../Backend.js';
import { type BackendKernelKind, dispatchKernel, type KernelTable } from '../kernels/catalog.js';
import {
  CUDA_BLOCK_SIZE,
  type CudaKernel,
  cudaAdagradStep,
  cudaAdamStep,
  cudaBinary,
  cudaCol2im,
  cudaConvOutput,
  cudaIm2col,
  cudaIndexRows,
  cudaIndexRowsBackward,
  cudaLayernorm,
  cudaPool,
  cudaPoolBackward,
  cudaReduce,
  cudaRmspropStep,
  cudaSgdStep,
  cudaSoftmax,
  cudaUnary,
} from '../kernels/cuda.js';
import {
  ADAGRAD_STEP_SCALARS,
  ADAM_STEP_SCALARS,
  type Conv2dGeometry,
  conv2dGeometryValues,
  type Pool2dGeometry,
  RMSPROP_STEP_SCALARS,
  SGD_STEP_SCALARS,
} from '../kernels/ops.js';

/** A device allocation: its CUdeviceptr. */
export interface CudaBuffer extends NativeBuffer {
  readonly pointer: bigint;
}

export interface CudaBoundLaunch {
  readonly kernel: CudaKernel;
  readonly values: readonly (bigint | number)[];
  readonly blocks: number;
}

const kernels = new Map<string, CudaKernel>();

function cached(key: string, build: () => CudaKernel): CudaKernel {
  let kernel = kernels.get(key);
  if (kernel === undefined) {
    kernel = build();
    kernels.set(key, kernel);
  }
  return kernel;
}

const pointer = (buffer: NativeBuffer): bigint => (buffer as CudaBuffer).pointer;
const blocksFor = (count: number): number => Math.ceil(count / CUDA_BLOCK_SIZE);

function geometryValues(g: Conv2dGeometry, count: number): number[] {
  return [...conv2dGeometryValues(g), count];
}

/** Backend kinds that run as generated kernels (matmul goes to cuBLAS). */
export type CudaKernelKind = Exclude<BackendKernelKind, 'matmul'>;

const CUDA_KERNELS: KernelTable<NativeBuffer, CudaBoundLaunch, CudaKernelKind> = {
  unary: (launch) => ({
    kernel: cached(`unary.${launch.op}`, () => cudaUnary(launch.op)),
    values: [pointer(launch.input), pointer(launch.output), launch.count],
    blocks: blocksFor(launch.count),
  }),
  binary: (launch) => {
    const broadcast = launch.layout.kind === 'broadcast';
    const layout =
      launch.layout.kind === 'broadcast'
        ? [...launch.layout.shape, ...launch.layout.stridesA, ...launch.layout.stridesB]
        : [];
    const kernel = cached(`binary.${launch.op}.${broadcast}`, () => cudaBinary(launch.op, broadcast));
    return {
      kernel,
      values: [pointer(launch.a), pointer(launch.b), pointer(launch.output), launch.count, ...layout],
      blocks: blocksFor(launch.count),
    };
  },
  reduce: (launch) => ({
    kernel: cached(`reduce.${launch.op}`, () => cudaReduce(launch.op)),
    values: [pointer(launch.input), pointer(launch.output), launch.rows, launch.columns],
    blocks: launch.rows,
  }),
  softmax: (launch) => ({
    kernel: cached('softmax', cudaSoftmax),
    values: [pointer(launch.input), pointer(launch.output), launch.rows, launch.columns],
    blocks: launch.rows,
  }),
  layernorm: (launch) => {
    const values = [
      pointer(launch.input),
      pointer(launch.gamma),
      pointer(launch.beta),
      pointer(launch.output),
      launch.rows,
      launch.columns,
      launch.epsilon,
    ];
    return { kernel: cached('layernorm', cudaLayernorm), values, blocks: launch.rows };
  },
  im2col: (launch) => {
    const g = launch.geometry;
    const count = g.inChannels * g.kernelHeight * g.kernelWidth * g.batch * g.outHeight * g.outWidth;
    return {
      kernel: cached('im2col', cudaIm2col),
      values: [pointer(launch.input), pointer(launch.output), ...geometryValues(g, count)],
      blocks: blocksFor(count),
    };
  },
  col2im: (launch) => {
    const g = launch.geometry;
    const count = g.batch * g.inChannels * g.height * g.width;
    return {
      kernel: cached('col2im', cudaCol2im),
      values: [pointer(launch.columns), pointer(launch.output), ...geometryValues(g, count)],
      blocks: blocksFor(count),
    };
  },
  pool2d: (launch) => {
    const g = launch.geometry;
    const count = g.planes * g.outHeight * g.outWidth;
    return {
      kernel: cached(`pool2d.${launch.op}`, () => cudaPool(launch.op)),
      values: [pointer(launch.input), pointer(launch.output), ...poolValues(g, count)],
      blocks: blocksFor(count),
    };
  },
  indexRows: (launch) => {
    const count = launch.count * launch.dimension;
    return {
      kernel: cached('indexRows', cudaIndexRows),
      values: [
        ...[launch.table, launch.indices, launch.output].map(pointer),
        ...[count, launch.count, launch.dimension, launch.rows],
      ],
      blocks: blocksFor(count),
    };
  },
  indexRowsBackward: (launch) => {
    const count = launch.rows * launch.dimension;
    return {
      kernel: cached('indexRowsBackward', cudaIndexRowsBackward),
      values: [
        ...[launch.gradient, launch.positions, launch.starts, launch.output].map(pointer),
        ...[count, launch.count, launch.dimension, launch.rows],
      ],
      blocks: blocksFor(count),
    };
  },
  pool2dBackward: (launch) => {
    const g = launch.geometry;
    const count = g.planes * g.height * g.width;
    const buffers = [pointer(launch.input), pointer(launch.gradient), pointer(launch.output)];
    return {
      kernel: cached(`pool2dBackward.${launch.op}`, () => cudaPoolBackward(launch.op)),
      values: [...buffers, ...poolValues(g, count)],
      blocks: blocksFor(count),
    };
  },
  adamStep: (launch) => {
    const buffers = [launch.gradient, launch.firstMoment, launch.secondMoment, launch.output].map(pointer);
    return {
      kernel: cached('adamStep', () => cudaAdamStep(false)),
      values: [...buffers, launch.count, ...ADAM_STEP_SCALARS.map((name) => launch[name])],
      blocks: blocksFor(launch.count),
    };
  },
  amsgradStep: (launch) => {
    const moments = [launch.firstMoment, launch.secondMoment, launch.maxSecondMoment];
    const buffers = [launch.gradient, ...moments, launch.output].map(pointer);
    return {
      kernel: cached('amsgradStep', () => cudaAdamStep(true)),
      values: [...buffers, launch.count, ...ADAM_STEP_SCALARS.map((name) => launch[name])],
      blocks: blocksFor(launch.count),
    };
  },
  sgdStep: (launch) => ({
    kernel: cached('sgdStep', cudaSgdStep),
    values: [
      ...[launch.gradient, launch.momentumBuffer, launch.output].map(pointer),
      launch.count,
      ...SGD_STEP_SCALARS.map((name) => launch[name]),
    ],
    blocks: blocksFor(launch.count),
  }),
  rmspropStep: (launch) => ({
    kernel: cached('rmspropStep', cudaRmspropStep),
    values: [
      ...[launch.gradient, launch.squareAverage, launch.output].map(pointer),
      launch.count,
      ...RMSPROP_STEP_SCALARS.map((name) => launch[name]),
    ],
    blocks: blocksFor(launch.count),
  }),
  adagradStep: (launch) => ({
    kernel: cached('adagradStep', cudaAdagradStep),
    values: [
      ...[launch.gradient, launch.sumOfSquares, launch.output].map(pointer),
      launch.count,
      ...ADAGRAD_STEP_SCALARS.map((name) => launch[name]),
    ],
    blocks: blocksFor(launch.count),
  }),
  convOutput: (launch) => {
    const g = launch.geometry;
    const count = g.batch * g.outChannels * g.outHeight * g.outWidth;
    const bias = launch.bias === undefined ? pointer(launch.product) : pointer(launch.bias);
    const values = [
      pointer(launch.product),
      bias,
      pointer(launch.output),
      ...geometryValues(g, count),
      launch.bias === undefined ? 0 : 1,
    ];
    return { kernel: cached('convOutput', cudaConvOutput), values, blocks: blocksFor(count) };
  },
};

function poolValues(g: Pool2dGeometry, count: number): number[] {
  return [g.planes, g.height, g.width, g.kernelSize, g.stride, g.outHeight, g.outWidth, count];
}

export function bindCudaLaunch(launch: KernelLaunch<CudaKernelKind>): CudaBoundLaunch {
  return dispatchKernel(CUDA_KERNELS, launch);
}
