/**
 * Element-wise ops. Binary ops broadcast (NumPy rules); a number operand is a scalar tensor.
 * Each backward reduces the gradient back to its input's shape (sum over broadcast dimensions,
 * `sumTo`, which accumulates in float64 like every sum).
 *
 * Each op dispatches its forward (CPU loops here, device kernels in `deviceOps.ts`) and records
 * one gradient rule, written with ops so it runs where the tensors live (`RULES` below).
 *
 * Gradient table, g the output gradient, y the output, each summed to its input's shape:
 *   add: ga = g,        gb = g
 *   sub: ga = g,        gb = -g
 *   mul: ga = g*b,      gb = g*a
 *   div: ga = g/b,      gb = -g*y/b
 *   pow: ga = g*b*a^(b-1), gb = g*y*ln(a)
 *   neg: -g   exp: g*y   log: g/x   sqrt: g*0.5/y   relu: g*[x>0]
 *   sigmoid: g*y*(1-y)   tanh: g*(1-y^2)   gelu: g*(Phi(x) + x*phi(x))
 */
import { anyOnDevice, deviceBinary, deviceOf, deviceUnary } from '../deviceOps.js';
import { check } from '../errors.js';
import { broadcastIndexMap, broadcastShapes } from '../internal/broadcast.js';
import { pool } from '../internal/pool.js';
import { reluBackwardKernel, reluKernel } from '../internal/reluKernel.js';
import { broadcastStrides, contiguousStrides, forEachRun, mergeLayout } from '../internal/strided.js';
import {
  contiguousData,
  dispose,
  hostTensor,
  isContiguous,
  record,
  releaseTemporary,
  scalar,
  sizeOf,
  type Tensor,
} from '../Tensor.js';
import { sumTo } from './broadcast.js';

type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow';
export type Operand = Tensor | number;

function asTensor(value: Operand): Tensor {
  return typeof value === 'number' ? scalar(value) : value;
}

/** out[o + j] = a[pa + j*sa] op b[pb + j*sb] for j < n: one run of a broadcast binary op. */
function binaryRun(
  op: BinaryOp,
  a: Float32Array,
  pa: number,
  sa: number,
  b: Float32Array,
  pb: number,
  sb: number,
  out: Float32Array,
  o: number,
  n: number,
): void {
  const end = o + n;
  switch (op) {
    case 'add':
      for (let i = o; i < end; i++, pa += sa, pb += sb) out[i] = a[pa] + b[pb];
      return;
    case 'sub':
      for (let i = o; i < end; i++, pa += sa, pb += sb) out[i] = a[pa] - b[pb];
      return;
    case 'mul':
      for (let i = o; i < end; i++, pa += sa, pb += sb) out[i] = a[pa] * b[pb];
      return;
    case 'div':
      for (let i = o; i < end; i++, pa += sa, pb += sb) out[i] = a[pa] / b[pb];
      return;
    case 'pow':
      for (let i = o; i < end; i++, pa += sa, pb += sb) out[i] = a[pa] ** b[pb];
      return;
  }
}

/** out (contiguous, `shape`) = a op b, a and b contiguous and broadcast to `shape`: run by run. */
function binaryForward(
  op: BinaryOp,
  a: Float32Array,
  aShape: readonly number[],
  b: Float32Array,
  bShape: readonly number[],
  shape: readonly number[],
  out: Float32Array,
): void {
  const layout = mergeLayout(shape, [
    contiguousStrides(shape),
    broadcastStrides(aShape, shape),
    broadcastStrides(bShape, shape),
  ]);
  const last = layout.sizes.length - 1;
  const sa = layout.strides[1][last];
  const sb = layout.strides[2][last];
  forEachRun(layout, [0, 0, 0], (at, n) => binaryRun(op, a, at[1], sa, b, at[2], sb, out, at[0], n));
}

/** `gradient` summed down to `shape`, giving up `gradient` (unless it is `g`) when a new tensor results. */
function reducedTo(gradient: Tensor, shape: readonly number[], g: Tensor): Tensor {
  const out = sumTo(gradient, shape);
  if (out !== gradient && gradient !== g) dispose(gradient);
  return out;
}

function wants(operand: Operand): operand is Tensor {
  return typeof operand !== 'number' && operand.requiresGrad;
}

/** The binary ops' rule: the gradients of `left` and `right` for output `y` and its gradient `g`. */
function binaryRule(op: BinaryOp, left: Operand, right: Operand, y: Tensor, g: Tensor): (Tensor | null)[] {
  const ga = wants(left) ? leftGradient(op, left, right, y, g) : null;
  const gb = wants(right) ? rightGradient(op, left, right, y, g) : null;
  return [
    ga === null ? null : reducedTo(ga, (left as Tensor).shape, g),
    gb === null ? null : reducedTo(gb, (right as Tensor).shape, g),
  ];
}

function leftGradient(op: BinaryOp, _a: Operand, b: Operand, _y: Tensor, g: Tensor): Tensor {
  switch (op) {
    case 'add':
    case 'sub':
      return g;
    case 'mul':
      return mul(g, b);
    case 'div':
      return div(g, b);
    case 'pow': {
      // g * b * a^(b-1)
      const exponent = typeof b === 'number' ? b - 1 : sub(b, 1);
      const power = pow(_a, exponent);
      const scaled = mul(power, b);
      const out = mul(g, scaled);
      for (const t of [power, scaled]) dispose(t);
      if (typeof exponent !== 'number') dispose(exponent);
      // As PyTorch: 0 where the exponent is 0 (0 * 0^-1 would be NaN at a = 0). Host only.
      if (typeof b === 'number') return b === 0 ? maskedOnHost(out, null) : out;
      return maskedOnHost(out, b, (_x, exponentValue) => exponentValue === 0);
    }
  }
}

function rightGradient(op: BinaryOp, a: Operand, b: Operand, y: Tensor, g: Tensor): Tensor {
  switch (op) {
    case 'add':
      return g;
    case 'sub':
      return neg(g);
    case 'mul':
      return mul(g, a);
    case 'div': {
      // -g * y / b
      const ratio = div(y, b);
      const scaled = mul(g, ratio);
      const out = neg(scaled);
      for (const t of [ratio, scaled]) dispose(t);
      return out;
    }
    case 'pow': {
      // g * y * ln(a)
      const logarithm = typeof a === 'number' ? Math.log(a) : log(a);
      const scaled = mul(y, logarithm);
      const out = mul(g, scaled);
      dispose(scaled);
      if (typeof logarithm !== 'number') dispose(logarithm);
      // As PyTorch: 0 where a = 0 and b >= 0 (0 * ln 0 would be NaN or -inf). Host only.
      if (typeof a === 'number') return a === 0 ? maskedOnHost(out, b, (_x, e) => e >= 0) : out;
      return maskedOnHost(out, a, (base, e) => base === 0 && e >= 0, b);
    }
  }
}

/**
 * `gradient` (a fresh host tensor of the broadcast shape) set to 0 where `zeroAt(first, second)`
 * holds, `first` and `second` broadcast to its shape; `first` null: everywhere. On a device the
 * gradient is returned as computed (the masks are host-side).
 */
function maskedOnHost(
  gradient: Tensor,
  first: Operand | null,
  zeroAt: (first: number, second: number) => boolean = () => true,
  second: Operand = first ?? 0,
): Tensor {
  if (gradient.device !== 'cpu' || !isContiguous(gradient)) return gradient;
  const operands = [first ?? 0, second].map((operand) => (typeof operand === 'number' ? null : operand));
  if (operands.some((operand) => operand !== null && operand.device !== 'cpu')) return gradient;
  const values = operands.map((operand) => (operand === null ? null : contiguousData(operand)));
  const maps = operands.map((operand) =>
    operand === null ? null : broadcastIndexMap(operand.shape, gradient.shape),
  );
  const constant = (operand: Operand | null): number => (typeof operand === 'number' ? operand : 0);
  const data = gradient.data;
  for (let i = 0; i < data.length; i++) {
    const x = values[0] === null ? constant(first) : values[0][maps[0] ? maps[0][i] : i];
    const y = values[1] === null ? constant(second) : values[1][maps[1] ? maps[1][i] : i];
    if (first === null || zeroAt(x, y)) data[i] = 0;
  }
  operands.forEach((operand, k) => {
    if (operand !== null) releaseTemporary(operand, values[k]!);
  });
  return gradient;
}

function binary(op: BinaryOp, left: Operand, right: Operand): Tensor {
  const out = anyOnDevice([left, right]) ? deviceBinary(op, left, right) : binaryOnHost(op, left, right);
  const inputs = [asTensor(left), asTensor(right)];
  return record(out, op, inputs, (g) => binaryRule(op, left, right, out, g));
}

function binaryOnHost(op: BinaryOp, left: Operand, right: Operand): Tensor {
  const a = asTensor(left);
  const b = asTensor(right);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const av = contiguousData(a);
  const bv = contiguousData(b);
  const out = pool.take(sizeOf(shape));
  binaryForward(op, av, a.shape, bv, b.shape, shape, out);
  releaseTemporary(a, av);
  releaseTemporary(b, bv);
  return hostTensor(out, shape);
}

/** a + b (broadcasting). */
export function add(a: Operand, b: Operand): Tensor {
  return binary('add', a, b);
}

/** a - b (broadcasting). */
export function sub(a: Operand, b: Operand): Tensor {
  return binary('sub', a, b);
}

/** a * b (broadcasting). */
export function mul(a: Operand, b: Operand): Tensor {
  return binary('mul', a, b);
}

/** a / b (broadcasting). */
export function div(a: Operand, b: Operand): Tensor {
  return binary('div', a, b);
}

/** a ** b (broadcasting); the gradient for b needs a > 0. */
export function pow(a: Operand, b: Operand): Tensor {
  return binary('pow', a, b);
}

// ---------------------------------------------------------------------------------------------
// Unary

type UnaryOp = 'neg' | 'exp' | 'log' | 'sqrt' | 'relu' | 'gelu' | 'sigmoid' | 'tanh';

const INVERSE_SQRT_2 = Math.SQRT1_2;
const INVERSE_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** erf(x), Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, under f32 precision). */
export function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const polynomial =
    t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign * (1 - polynomial * Math.exp(-x * x));
}

function unaryForward(op: UnaryOp, x: Float32Array, y: Float32Array): void {
  const n = y.length;
  switch (op) {
    case 'neg':
      for (let i = 0; i < n; i++) y[i] = -x[i];
      return;
    case 'exp':
      for (let i = 0; i < n; i++) y[i] = Math.exp(x[i]);
      return;
    case 'log':
      for (let i = 0; i < n; i++) y[i] = Math.log(x[i]);
      return;
    case 'sqrt':
      for (let i = 0; i < n; i++) y[i] = Math.sqrt(x[i]);
      return;
    case 'relu':
      // WebAssembly SIMD when it is there (no branch per element), else the loop.
      if (reluKernel(x, y)) return;
      for (let i = 0; i < n; i++) y[i] = Math.max(x[i], 0);
      return;
    case 'gelu':
      for (let i = 0; i < n; i++) y[i] = 0.5 * x[i] * (1 + erf(x[i] * INVERSE_SQRT_2));
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) y[i] = 1 / (1 + Math.exp(-x[i]));
      return;
    case 'tanh':
      for (let i = 0; i < n; i++) y[i] = Math.tanh(x[i]);
      return;
  }
}

/** The kernels of the unary rules that are not compositions: g * f'(v), v the input or output. */
type UnaryGradientOp = 'reluBackward' | 'geluBackward' | 'sigmoidBackward' | 'tanhBackward';

function unaryGradientOnHost(op: UnaryGradientOp, v: Float32Array, g: Float32Array, out: Float32Array): void {
  const n = out.length;
  switch (op) {
    case 'reluBackward':
      out.fill(0); // the kernel adds g where v > 0
      if (reluBackwardKernel(v, g, out)) return;
      for (let i = 0; i < n; i++) out[i] = v[i] > 0 ? g[i] : 0;
      return;
    case 'geluBackward':
      for (let i = 0; i < n; i++) {
        const cdf = 0.5 * (1 + erf(v[i] * INVERSE_SQRT_2));
        const density = INVERSE_SQRT_2PI * Math.exp(-0.5 * v[i] * v[i]);
        out[i] = g[i] * (cdf + v[i] * density);
      }
      return;
    case 'sigmoidBackward':
      for (let i = 0; i < n; i++) out[i] = g[i] * v[i] * (1 - v[i]);
      return;
    case 'tanhBackward':
      for (let i = 0; i < n; i++) out[i] = g[i] * (1 - v[i] * v[i]);
      return;
  }
}

/** g * f'(v) for the unary gradient kernels (no gradient of its own: no second derivatives). */
function unaryGradient(op: UnaryGradientOp, v: Tensor, g: Tensor): Tensor {
  if (anyOnDevice([v, g])) return deviceBinary(op, v, g);
  const values = contiguousData(v);
  const gradient = contiguousData(g);
  const out = pool.take(v.size);
  unaryGradientOnHost(op, values, gradient, out);
  releaseTemporary(v, values);
  releaseTemporary(g, gradient);
  return hostTensor(out, v.shape);
}

/** The unary ops' rule: x's gradient for input x, output y and the output's gradient g. */
function unaryRule(op: UnaryOp, x: Tensor, y: Tensor, g: Tensor): Tensor {
  switch (op) {
    case 'neg':
      return neg(g);
    case 'exp':
      return mul(g, y);
    case 'log':
      return div(g, x);
    case 'sqrt': {
      const ratio = div(g, y);
      const out = mul(ratio, 0.5);
      dispose(ratio);
      return out;
    }
    case 'relu':
      return unaryGradient('reluBackward', x, g);
    case 'gelu':
      return unaryGradient('geluBackward', x, g);
    case 'sigmoid':
      return unaryGradient('sigmoidBackward', y, g);
    case 'tanh':
      return unaryGradient('tanhBackward', y, g);
  }
}

function unary(op: UnaryOp, input: Tensor): Tensor {
  let out: Tensor;
  if (anyOnDevice([input])) {
    deviceOf(op, [input]);
    out = deviceUnary(op, input);
  } else {
    check(
      input.dtype === 'f32',
      'invalid_dtype',
      () => `${op}: ops compute in f32, got ${input.dtype}; convert with toDtype(x, 'f32')`,
    );
    const x = contiguousData(input);
    const y = pool.take(input.size);
    unaryForward(op, x, y);
    releaseTemporary(input, x);
    out = hostTensor(y, input.shape);
  }
  return record(out, op, [input], (g) => [unaryRule(op, input, out, g)]);
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
/** GELU with the exact (erf) form, as PyTorch's default. */
export const gelu = (x: Tensor): Tensor => unary('gelu', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);
