/**
 * The one description of every elementwise and reduction op. Backends generate their kernels
 * from these tables (`wgsl.ts`, `cuda.ts`, `cpu.ts`); adding an op here adds it everywhere.
 */
import { add, call, divide, type Expression, multiply, negate, subtract, x, y } from './Expression.js';

export type UnaryOpName = 'neg' | 'exp' | 'log' | 'sqrt' | 'relu' | 'gelu' | 'sigmoid' | 'tanh';
export type BinaryOpName = 'add' | 'sub' | 'mul' | 'div' | 'pow';
export type ReduceOpName = 'sum' | 'max';

/** sqrt(2 / pi), for the tanh form of GELU (Hendrycks and Gimpel). */
const GELU_SCALE = 0.7978845608028654;
const GELU_CUBIC = 0.044715;

export const UNARY_OPS: Readonly<Record<UnaryOpName, Expression>> = {
  neg: negate(x),
  exp: call('exp', x),
  log: call('log', x),
  sqrt: call('sqrt', x),
  relu: call('max', x, 0),
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  gelu: multiply(
    multiply(0.5, x),
    add(1, call('tanh', multiply(GELU_SCALE, add(x, multiply(GELU_CUBIC, multiply(x, multiply(x, x))))))),
  ),
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
