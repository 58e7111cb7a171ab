/**
 * Turns a checked `KernelLaunch` into what a WebGPU dispatch needs: the generated kernel, the
 * buffers in binding order, the uniform words, and the workgroup grid (split over x and y so
 * no dimension exceeds 65535 workgroups).
 */
import type { KernelLaunch, NativeBuffer } from '../Backend.js';
import { type BackendKernelKind, dispatchKernel, type KernelTable } from '../kernels/catalog.js';
import {
  ADAGRAD_STEP_SCALARS,
  ADAM_STEP_SCALARS,
  type Conv2dGeometry,
  conv2dGeometryValues,
  type Pool2dGeometry,
  RMSPROP_STEP_SCALARS,
  SGD_STEP_SCALARS,
} from '../kernels/ops.js';
import {
  CONV_UNIFORM_FIELDS,
  WGSL_MATMUL_TILE,
  WGSL_WORKGROUP_SIZE,
  type WgslKernel,
  wgslAdagradStep,
  wgslAdamStep,
  wgslBinary,
  wgslCol2im,
  wgslConvOutput,
  wgslIm2col,
  wgslIndexRows,
  wgslIndexRowsBackward,
  wgslLayernorm,
  wgslMatmul,
  wgslMatmulName,
  wgslPool,
  wgslPoolBackward,
  wgslReduce,
  wgslRmspropStep,
  wgslSgdStep,
  wgslSoftmax,
  wgslUnary,
  wgslVectorized,
} from '../kernels/wgsl.js';

export const MAX_WORKGROUPS_PER_DIMENSION = 65535;

export interface BoundLaunch {
  readonly kernel: WgslKernel;
  readonly buffers: readonly NativeBuffer[];
  readonly uniform: Uint32Array;
  /** Workgroups along x and y (and z: the products of a batched matmul; 1 when absent). */
  readonly groups: readonly [number, number] | readonly [number, number, number];
}

const kernels = new Map<string, WgslKernel>();

function cached(key: string, build: () => WgslKernel): WgslKernel {
  let kernel = kernels.get(key);
  if (kernel === undefined) {
    kernel = build();
    kernels.set(key, kernel);
  }
  return kernel;
}

/** Workgroups for `total` groups: x up to `limit` (65535 in WebGPU), the rest in y. */
export function splitGroups(total: number, limit = MAX_WORKGROUPS_PER_DIMENSION): [number, number] {
  const x = Math.min(total, limit);
  const y = Math.ceil(total / x);
  if (y > limit) throw new RangeError(`${total} workgroups exceed ${limit} x ${limit}`);
  return [x, y];
}

/** Words of every kernel's uniform block: the largest kernel's fields, in 16-byte units. */
export const UNIFORM_WORDS =
  Math.ceil(Math.max(CONV_UNIFORM_FIELDS.length, 1 + ADAM_STEP_SCALARS.length) / 4) * 4;

function words(values: readonly number[]): Uint32Array {
  const uniform = new Uint32Array(UNIFORM_WORDS);
  uniform.set(values);
  return uniform;
}

/** The conv kernels' uniform: CONV_UNIFORM_FIELDS in order. */
function convWords(g: Conv2dGeometry, count: number, hasBias: boolean): Uint32Array {
  return words([...conv2dGeometryValues(g), count, hasBias ? 1 : 0]);
}

function poolWords(g: Pool2dGeometry, count: number): Uint32Array {
  return words([g.planes, g.height, g.width, g.kernelSize, g.stride, g.outHeight, g.outWidth, count]);
}

type Launch<K extends BackendKernelKind> = KernelLaunch<K>;

/** An optimizer step's uniform block: count (u32), then its scalars as f32. */
function stepWords(count: number, scalars: readonly number[]): Uint32Array {
  const uniform = words([count]);
  new Float32Array(uniform.buffer).set(scalars, 1);
  return uniform;
}

function adamWords(l: Launch<'adamStep'> | Launch<'amsgradStep'>): Uint32Array {
  return stepWords(
    l.count,
    ADAM_STEP_SCALARS.map((name) => l[name]),
  );
}

function elementGroups(count: number, limit: number): [number, number] {
  return splitGroups(Math.ceil(count / WGSL_WORKGROUP_SIZE), limit);
}

/** Same-length inputs with a count divisible by 4 take the vec4 kernels. */
function bindElementwise(launch: Launch<'unary'> | Launch<'binary'>, limit: number): BoundLaunch {
  const uniform = words([launch.count]);
  if (launch.kind === 'unary') {
    const buffers = [launch.input, launch.output];
    if (launch.count % 4 === 0) {
      const kernel = cached(`unary.${launch.op}.vec4`, () => wgslVectorized('unary', launch.op));
      return { kernel, buffers, uniform, groups: elementGroups(launch.count / 4, limit) };
    }
    const kernel = cached(`unary.${launch.op}`, () => wgslUnary(launch.op));
    return { kernel, buffers, uniform, groups: elementGroups(launch.count, limit) };
  }
  const buffers = [launch.a, launch.b, launch.output];
  const layout = launch.layout;
  if (layout.kind === 'same' && launch.count % 4 === 0) {
    const kernel = cached(`binary.${launch.op}.vec4`, () => wgslVectorized('binary', launch.op));
    return { kernel, buffers, uniform, groups: elementGroups(launch.count / 4, limit) };
  }
  const broadcast = layout.kind === 'broadcast';
  const strides =
    layout.kind === 'broadcast' ? [...layout.shape, ...layout.stridesA, ...layout.stridesB] : [];
  const kernel = cached(`binary.${launch.op}.${broadcast}`, () => wgslBinary(launch.op, broadcast));
  return {
    kernel,
    buffers,
    uniform: words([launch.count, 0, 0, 0, ...strides]),
    groups: elementGroups(launch.count, limit),
  };
}

/** One workgroup per row. */
function bindRows(
  launch: Launch<'reduce'> | Launch<'softmax'> | Launch<'layernorm'>,
  limit: number,
): BoundLaunch {
  const groups = splitGroups(launch.rows, limit);
  const uniform = words([launch.rows, launch.columns]);
  if (launch.kind === 'layernorm') {
    new Float32Array(uniform.buffer)[2] = launch.epsilon;
    const buffers = [launch.input, launch.gamma, launch.beta, launch.output];
    return { kernel: cached('layernorm', wgslLayernorm), buffers, uniform, groups };
  }
  const kernel =
    launch.kind === 'reduce'
      ? cached(`reduce.${launch.op}`, () => wgslReduce(launch.op))
      : cached('softmax', wgslSoftmax);
  return { kernel, buffers: [launch.input, launch.output], uniform, groups };
}

/**
 * A matmul's workgroups: column tiles in x (at most `limit`), and the row tiles of all its
 * products numbered together over y and z (at most limit x limit of them: wgslMatmul).
 */
function bindMatmul(launch: Launch<'matmul'>, limit: number): BoundLaunch {
  const tilesX = Math.ceil(launch.n / WGSL_MATMUL_TILE);
  const tilesY = Math.ceil(launch.m / WGSL_MATMUL_TILE);
  if (tilesX > limit) {
    throw new RangeError(
      `matmul ${launch.m}x${launch.n}: ${tilesX} column tiles of ${WGSL_MATMUL_TILE} exceed ${limit} (at most ${limit * WGSL_MATMUL_TILE} columns)`,
    );
  }
  const total = tilesY * launch.batch;
  if (total > limit * limit) {
    throw new RangeError(
      `matmul ${launch.m}x${launch.n} x ${launch.batch} products: ${total} row tiles of ${WGSL_MATMUL_TILE} exceed ${limit} x ${limit}`,
    );
  }
  const [y, z] = splitGroups(total, limit);
  const groups: [number, number, number] = [tilesX, y, z];
  const buffers = [launch.a, launch.b, launch.output];
  const { transposeA, transposeB } = launch;
  const name = wgslMatmulName(transposeA, transposeB);
  return {
    kernel: cached(name, () => wgslMatmul(transposeA, transposeB)),
    buffers,
    uniform: words([launch.m, launch.n, launch.k, launch.strideA, launch.strideB, tilesY, launch.batch]),
    groups,
  };
}

function bindConv(launch: Launch<'im2col'> | Launch<'convOutput'>, limit: number): BoundLaunch {
  const g = launch.geometry;
  if (launch.kind === 'im2col') {
    const count = g.inChannels * g.kernelHeight * g.kernelWidth * g.batch * g.outHeight * g.outWidth;
    const uniform = convWords(g, count, false);
    return {
      kernel: cached('im2col', wgslIm2col),
      buffers: [launch.input, launch.output],
      uniform,
      groups: elementGroups(count, limit),
    };
  }
  const count = g.batch * g.outChannels * g.outHeight * g.outWidth;
  // Without a bias the product is bound again in its slot (read-only aliasing is allowed).
  const buffers = [launch.product, launch.bias ?? launch.product, launch.output];
  const uniform = convWords(g, count, launch.bias !== undefined);
  return {
    kernel: cached('convOutput', wgslConvOutput),
    buffers,
    uniform,
    groups: elementGroups(count, limit),
  };
}

/** `limit`: workgroups per dimension before a launch spills into y (the device's limit). */
export function bindLaunch(launch: KernelLaunch, limit = MAX_WORKGROUPS_PER_DIMENSION): BoundLaunch {
  const table: KernelTable<NativeBuffer, BoundLaunch> = {
    unary: (l) => bindElementwise(l, limit),
    binary: (l) => bindElementwise(l, limit),
    reduce: (l) => bindRows(l, limit),
    softmax: (l) => bindRows(l, limit),
    layernorm: (l) => bindRows(l, limit),
    matmul: (l) => bindMatmul(l, limit),
    im2col: (l) => bindConv(l, limit),
    convOutput: (l) => bindConv(l, limit),
    col2im: (l) => {
      const g = l.geometry;
      const count = g.batch * g.inChannels * g.height * g.width;
      return {
        kernel: cached('col2im', wgslCol2im),
        buffers: [l.columns, l.output],
        uniform: convWords(g, count, false),
        groups: elementGroups(count, limit),
      };
    },
    pool2d: (l) => {
      const g = l.geometry;
      const count = g.planes * g.outHeight * g.outWidth;
      return {
        kernel: cached(`pool2d.${l.op}`, () => wgslPool(l.op)),
        buffers: [l.input, l.output],
        uniform: poolWords(g, count),
        groups: elementGroups(count, limit),
      };
    },
    adamStep: (l) => ({
      kernel: cached('adamStep', () => wgslAdamStep(false)),
      buffers: [l.gradient, l.firstMoment, l.secondMoment, l.output],
      uniform: adamWords(l),
      groups: elementGroups(l.count, limit),
    }),
    sgdStep: (l) => ({
      kernel: cached('sgdStep', wgslSgdStep),
      buffers: [l.gradient, l.momentumBuffer, l.output],
      uniform: stepWords(
        l.count,
        SGD_STEP_SCALARS.map((name) => l[name]),
      ),
      groups: elementGroups(l.count, limit),
    }),
    rmspropStep: (l) => ({
      kernel: cached('rmspropStep', wgslRmspropStep),
      buffers: [l.gradient, l.squareAverage, l.output],
      uniform: stepWords(
        l.count,
        RMSPROP_STEP_SCALARS.map((name) => l[name]),
      ),
      groups: elementGroups(l.count, limit),
    }),
    adagradStep: (l) => ({
      kernel: cached('adagradStep', wgslAdagradStep),
      buffers: [l.gradient, l.sumOfSquares, l.output],
      uniform: stepWords(
        l.count,
        ADAGRAD_STEP_SCALARS.map((name) => l[name]),
      ),
      groups: elementGroups(l.count, limit),
    }),
    amsgradStep: (l) => ({
      kernel: cached('amsgradStep', () => wgslAdamStep(true)),
      buffers: [l.gradient, l.firstMoment, l.secondMoment, l.maxSecondMoment, l.output],
      uniform: adamWords(l),
      groups: elementGroups(l.count, limit),
    }),
    indexRows: (l) => ({
      kernel: cached('indexRows', wgslIndexRows),
      buffers: [l.table, l.indices, l.output],
      uniform: words([l.count * l.dimension, l.count, l.dimension, l.rows]),
      groups: elementGroups(l.count * l.dimension, limit),
    }),
    indexRowsBackward: (l) => ({
      kernel: cached('indexRowsBackward', wgslIndexRowsBackward),
      buffers: [l.gradient, l.positions, l.starts, l.output],
      uniform: words([l.rows * l.dimension, l.count, l.dimension, l.rows]),
      groups: elementGroups(l.rows * l.dimension, limit),
    }),
    pool2dBackward: (l) => {
      const g = l.geometry;
      const count = g.planes * g.height * g.width;
      return {
        kernel: cached(`pool2dBackward.${l.op}`, () => wgslPoolBackward(l.op)),
        buffers: [l.input, l.gradient, l.output],
        uniform: poolWords(g, count),
        groups: elementGroups(count, limit),
      };
    },
  };
  return dispatchKernel(table, launch);
}
