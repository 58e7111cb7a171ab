/**
 * The one description of every elementwise and reduction op. Backends generate their kernels
 * from these tables (`wgsl.ts`, `cuda.ts`, `cpu.ts`); adding an op here adds it everywhere.
 */
import {
  add,
  call,
  divide,
  type Expression,
  ifPositive,
  multiply,
  negate,
  subtract,
  x,
  y,
} from './Expression.js';

export type UnaryOpName = 'neg' | 'exp' | 'log' | 'sqrt' | 'relu' | 'gelu' | 'sigmoid' | 'tanh';
/**
 * Binary ops: arithmetic; `left`, x itself (the strided copy `Device.gather` runs); and the
 * backward of the unary ops that autograd on devices needs, each `(x, y)` = (the forward input,
 * or output where noted; the output's gradient).
 */
export type BinaryOpName =
  | 'add'
  | 'sub'
  | 'mul'
  | 'div'
  | 'pow'
  | 'left'
  | 'reluBackward'
  | 'sigmoidBackward'
  | 'tanhBackward'
  | 'geluBackward';
export type ReduceOpName = 'sum' | 'max';

/**
 * GELU in its exact form, 0.5 x (1 + erf(x / sqrt 2)), with erf from Abramowitz and Stegun
 * 7.1.26 (absolute error below 1.5e-7): the same formula as the ML layer's CPU op, so a tensor
 * gives the same GELU on every device. With t = 1 / (1 + p |x| / sqrt 2) and P(t) the
 * polynomial, x erf(x / sqrt 2) = |x| (1 - P(t) exp(-x^2 / 2)), hence
 *   gelu(x) = 0.5 (x + |x| (1 - P(t) exp(-x^2 / 2))).
 */
const ERF_P = 0.3275911;
const ERF_COEFFICIENTS = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429] as const;
const MAGNITUDE = call('sqrt', multiply(x, x));
const ERF_T = divide(1, add(1, multiply(ERF_P * Math.SQRT1_2, MAGNITUDE)));
const ERF_POLYNOMIAL = ERF_COEFFICIENTS.reduceRight<Expression>(
  (inner, coefficient) => multiply(ERF_T, add(coefficient, inner)),
  { kind: 'constant', value: 0 } as Expression,
);
/** exp(-x^2 / 2), shared by GELU and its derivative. */
const GAUSSIAN = call('exp', multiply(-0.5, multiply(x, x)));
/** |erf(x / sqrt 2)| = 1 - P(t) exp(-x^2 / 2); the sign is x's. */
const ERF_MAGNITUDE = subtract(1, multiply(ERF_POLYNOMIAL, GAUSSIAN));
/** d gelu / dx = Phi(x) + x phi(x), Phi(x) = 0.5 (1 + erf(x / sqrt 2)), phi the normal density. */
const GELU_DERIVATIVE = add(
  multiply(0.5, add(1, ifPositive(x, ERF_MAGNITUDE, negate(ERF_MAGNITUDE)))),
  multiply(x, multiply(1 / Math.sqrt(2 * Math.PI), GAUSSIAN)),
);
const GELU = multiply(0.5, add(x, multiply(MAGNITUDE, ERF_MAGNITUDE)));

export const UNARY_OPS: Readonly<Record<UnaryOpName, Expression>> = {
  neg: negate(x),
  exp: call('exp', x),
  log: call('log', x),
  sqrt: call('sqrt', x),
  relu: call('max', x, 0),
  gelu: GELU,
  sigmoid: divide(1, add(1, call('exp', negate(x)))),
  tanh: call('tanh', x),
};

export const BINARY_OPS: Readonly<Record<BinaryOpName, Expression>> = {
  add: add(x, y),
  sub: subtract(x, y),
  mul: multiply(x, y),
  div: divide(x, y),
  pow: call('pow', x, y),
  /** x, y unread: with its strides, a gather or broadcast copy of x. */
  left: x,
  /** x: relu's input; the gradient passes where x > 0. */
  reluBackward: ifPositive(x, y, 0),
  /** x: sigmoid's output s; g s (1 - s). */
  sigmoidBackward: multiply(y, multiply(x, subtract(1, x))),
  /** x: tanh's output t; g (1 - t^2). */
  tanhBackward: multiply(y, subtract(1, multiply(x, x))),
  /** x: gelu's input. */
  geluBackward: multiply(y, GELU_DERIVATIVE),
};

/**
 * A reduction: `combine(x, y)` folds one element into the accumulator, starting at `identity`.
 * max starts at -FLT_MAX (WGSL has no infinity literal), so a row of -Infinity reduces to
 * -3.4028234663852886e38 on every backend alike.
 */
export interface ReduceDescription {
  readonly identity: number;
  readonly combine: Expression;
}

export const FLOAT32_MAX = 3.4028234663852886e38;

export const REDUCE_OPS: Readonly<Record<ReduceOpName, ReduceDescription>> = {
  sum: { identity: 0, combine: add(x, y) },
  max: { identity: -FLOAT32_MAX, combine: call('max', x, y) },
};

export const UNARY_OP_NAMES = Object.keys(UNARY_OPS) as UnaryOpName[];
export const BINARY_OP_NAMES = Object.keys(BINARY_OPS) as BinaryOpName[];
export const REDUCE_OP_NAMES = Object.keys(REDUCE_OPS) as ReduceOpName[];

/** Binary broadcasting is expressed on at most this many dimensions (leading ones padded). */
export const MAX_BROADCAST_RANK = 4;

/**
 * How a binary op reads its inputs: `same` (both contiguous, same length as the output) or a
 * strided broadcast over a padded 4-d output shape (stride 0 on a broadcast dimension).
 */
export type BinaryLayout =
  | { readonly kind: 'same' }
  | {
      readonly kind: 'broadcast';
      readonly shape: readonly number[];
      readonly stridesA: readonly number[];
      readonly stridesB: readonly number[];
    };

/**
 * The geometry of a 2-d convolution, named once for every layer and backend: input (N, C, H, W),
 * weight (O, C / groups, KH, KW), output (N, O, OH, OW). zbmd/ml's conv2d, pooling and
 * transposed convolution, the `Device` checks, the CPU kernels, the WGSL uniform struct and the
 * CUDA kernel parameters are all written from this list, in this order.
 */
export const CONV2D_GEOMETRY_FIELDS = [
  'batch',
  'inChannels',
  'height',
  'width',
  'outChannels',
  'kernelHeight',
  'kernelWidth',
  'strideHeight',
  'strideWidth',
  'paddingHeight',
  'paddingWidth',
  'dilationHeight',
  'dilationWidth',
  'groups',
  'outHeight',
  'outWidth',
] as const;

export type Conv2dGeometryField = (typeof CONV2D_GEOMETRY_FIELDS)[number];

/** One number per field of CONV2D_GEOMETRY_FIELDS. */
export type Conv2dGeometry = { readonly [Field in Conv2dGeometryField]: number };

/**
 * PyTorch's output size of a convolution or pooling along one dimension:
 * floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1 (below 1: the kernel does not fit).
 */
export function convOutputSize(
  size: number,
  kernel: number,
  stride: number,
  padding: number,
  dilation = 1,
): number {
  return Math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** The geometry's values in CONV2D_GEOMETRY_FIELDS order (how kernels receive them). */
export function conv2dGeometryValues(g: Conv2dGeometry): number[] {
  return CONV2D_GEOMETRY_FIELDS.map((field) => g[field]);
}

/**
 * The f32 scalars of one Adam/AdamW step (catalog `adamStep`), in the order the WGSL uniform
 * block (after count) and the CUDA kernel's arguments (after its buffers and count) take them.
 */
export const ADAM_STEP_SCALARS = [
  'beta1',
  'oneMinusBeta1',
  'beta2',
  'oneMinusBeta2',
  'epsilon',
  'stepSize',
  'inverseCorrection2',
  'coupledDecay',
  'shrink',
] as const;

/** The scalars of one Adam step as the backends receive them. */
export type AdamStepScalars = { readonly [Name in (typeof ADAM_STEP_SCALARS)[number]]: number };

/**
 * The f32 scalars of one SGD step with momentum (catalog `sgdStep`), in the order of the WGSL
 * uniform block (after count) and the CUDA kernel's arguments (after its buffers and count);
 * `first` and `nesterov` are 1 or 0.
 */
export const SGD_STEP_SCALARS = [
  'learningRate',
  'weightDecay',
  'momentum',
  'oneMinusDampening',
  'first',
  'nesterov',
] as const;

/** The scalars of one SGD step as the backends receive them. */
export type SgdStepScalars = { readonly [Name in (typeof SGD_STEP_SCALARS)[number]]: number };

/**
 * The f32 scalars of one Adagrad step (catalog `adagradStep`), in the order of the WGSL uniform
 * block (after count) and the CUDA kernel's arguments (after its buffers and count): `rate` is
 * the step's decayed learning rate, lr / (1 + (t - 1) lrDecay).
 */
export const ADAGRAD_STEP_SCALARS = ['rate', 'weightDecay', 'epsilon'] as const;

/**
 * The f32 scalars of one plain RMSprop step (catalog `rmspropStep`: no momentum, not
 * centered), in the order of the WGSL uniform block (after count) and the CUDA kernel's
 * arguments (after its buffers and count).
 */
export const RMSPROP_STEP_SCALARS = [
  'learningRate',
  'alpha',
  'oneMinusAlpha',
  'weightDecay',
  'epsilon',
] as const;

/** The scalars of one plain RMSprop step as the backends receive them. */
export type RmspropStepScalars = { readonly [Name in (typeof RMSPROP_STEP_SCALARS)[number]]: number };

/** The scalars of one Adagrad step as the backends receive them (and `Device.adagradStep` takes). */
export type AdagradStepScalars = { readonly [Name in (typeof ADAGRAD_STEP_SCALARS)[number]]: number };

/** 2-d pooling over square windows: `max` (the first maximum of each window) or `avg`. */
export type PoolOpName = 'max' | 'avg';
export const POOL_OP_NAMES: readonly PoolOpName[] = ['max', 'avg'];

/** Geometry of a 2-d pooling: input (planes = N * C, H, W) -> output (planes, OH, OW), no padding. */
export interface Pool2dGeometry {
  readonly planes: number;
  readonly height: number;
  readonly width: number;
  readonly kernelSize: number;
  readonly stride: number;
  readonly outHeight: number;
  readonly outWidth: number;
}
