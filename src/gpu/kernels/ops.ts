/**
 * The one description of every elementwise and reduction op. Backends generate their kernels
 * from these tables (`wgsl.ts`, `cuda.ts`, `cpu.ts`); adding an op here adds it everywhere.
 */
import { add, call, divide, type Expression, multiply, negate, subtract, x, y } from './Expression.js';

export type UnaryOpName = 'neg' | 'exp' | 'log' | 'sqrt' | 'relu' | 'gelu' | 'sigmoid' | 'tanh';
export type BinaryOpName = 'add' | 'sub' | 'mul' | 'div' | 'pow';
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
const GELU = multiply(
  0.5,
  add(
    x,
    multiply(MAGNITUDE, subtract(1, multiply(ERF_POLYNOMIAL, call('exp', multiply(-0.5, multiply(x, x)))))),
  ),
);

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

/** Geometry of a 2-d convolution; input (N, C, H, W), weight (O, C, KH, KW), output (N, O, OH, OW). */
export interface Conv2dGeometry {
  readonly batch: number;
  readonly inChannels: number;
  readonly height: number;
  readonly width: number;
  readonly outChannels: number;
  readonly kernelHeight: number;
  readonly kernelWidth: number;
  readonly strideHeight: number;
  readonly strideWidth: number;
  readonly paddingHeight: number;
  readonly paddingWidth: number;
  readonly outHeight: number;
  readonly outWidth: number;
}
