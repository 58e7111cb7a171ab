/**
 * Element-wise ops. Binary ops broadcast (NumPy rules); a number operand is a scalar tensor.
 * Each backward reduces the gradient back to its input's shape (sum over broadcast dimensions),
 * accumulating that sum in float64 (internal/accumulate.ts) before adding it to the gradient.
 *
 * Gradient table, g the output gradient, y the output:
 *   add: ga += g,        gb += g
 *   sub: ga += g,        gb -= g
 *   mul: ga += g*b,      gb += g*a
 *   div: ga += g/b,      gb -= g*a/b^2
 *   pow: ga += g*b*a^(b-1), gb += g*y*ln(a)
 *   neg: -g   exp: g*y   log: g/x   sqrt: g/(2y)   relu: g*[x>0]
 *   sigmoid: g*y*(1-y)   tanh: g*(1-y^2)   gelu: g*(Phi(x) + x*phi(x))
 */
import { runOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { addAccumulated, float64Accumulator } from '../internal/accumulate.js';
import { broadcastIndexMap, broadcastShapes } from '../internal/broadcast.js';
import { pool } from '../internal/pool.js';
import { reluBackwardKernel, reluKernel } from '../internal/reluKernel.js';
import { contiguousData, gradBuffer, makeResult, scalar, type Tensor } from '../Tensor.js';

type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow';
export type Operand = Tensor | number;

function asTensor(value: Operand): Tensor {
  return typeof value === 'number' ? scalar(value) : value;
}

/** The saved inputs of a binary op: logical-order values, kept until its backward ran. */
function savedValues(source: Tensor, scratch: Float32Array[]): Float32Array {
  const values = contiguousData(source);
  if (values.buffer !== source.storage.buffer) scratch.push(values);
  return values;
}

function binaryForward(
  op: BinaryOp,
  a: Float32Array,
  am: Int32Array | null,
  b: Float32Array,
  bm: Int32Array | null,
  out: Float32Array,
): void {
  const n = out.length;
  switch (op) {
    case 'add':
      for (let i = 0; i < n; i++) out[i] = a[am ? am[i] : i] + b[bm ? bm[i] : i];
      return;
    case 'sub':
      for (let i = 0; i < n; i++) out[i] = a[am ? am[i] : i] - b[bm ? bm[i] : i];
      return;
    case 'mul':
      for (let i = 0; i < n; i++) out[i] = a[am ? am[i] : i] * b[bm ? bm[i] : i];
      return;
    case 'div':
      for (let i = 0; i < n; i++) out[i] = a[am ? am[i] : i] / b[bm ? bm[i] : i];
      return;
    case 'pow':
      for (let i = 0; i < n; i++) out[i] = a[am ? am[i] : i] ** b[bm ? bm[i] : i];
      return;
  }
}

/** Accumulates the gradient of the first (`wantFirst`) or second operand. */
function binaryBackward(
  op: BinaryOp,
  wantFirst: boolean,
  g: Float32Array,
  a: Float32Array,
  am: Int32Array | null,
  b: Float32Array,
  bm: Int32Array | null,
  y: Float32Array,
  target: Float32Array,
): void {
  const n = g.length;
  const tm = wantFirst ? am : bm;
  // A broadcast operand sums many output gradients into each of its elements: in float64.
  const sums = tm === null ? null : float64Accumulator(target.length);
  for (let i = 0; i < n; i++) {
    const x = a[am ? am[i] : i];
    const z = b[bm ? bm[i] : i];
    let d: number;
    if (op === 'add') d = g[i];
    else if (op === 'sub') d = wantFirst ? g[i] : -g[i];
    else if (op === 'mul') d = g[i] * (wantFirst ? z : x);
    else if (op === 'div') d = wantFirst ? g[i] / z : (-g[i] * x) / (z * z);
    else d = wantFirst ? g[i] * z * x ** (z - 1) : g[i] * y[i] * Math.log(x);
    if (sums === null) target[i] += d;
    else sums[(tm as Int32Array)[i]] += d;
  }
  if (sums !== null) addAccumulated(target, sums);
}

function binary(op: BinaryOp, left: Operand, right: Operand): Tensor {
  const a = asTensor(left);
  const b = asTensor(right);
  if (a.device !== 'cpu' || b.device !== 'cpu') return runOnDevice(op, left, right);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const scratch: Float32Array[] = [];
  const av = savedValues(a, scratch);
  const bv = savedValues(b, scratch);
  const am = broadcastIndexMap(a.shape, shape);
  const bm = broadcastIndexMap(b.shape, shape);
  const out = pool.take(am === null ? a.size : bm === null ? b.size : sizeFromShape(shape));
  binaryForward(op, av, am, bv, bm, out);
  return makeResult(
    out,
    shape,
    op,
    [a, b],
    (g) => {
      if (a.requiresGrad) binaryBackward(op, true, g, av, am, bv, bm, out, gradBuffer(a));
      if (b.requiresGrad) binaryBackward(op, false, g, av, am, bv, bm, out, gradBuffer(b));
    },
    scratch,
  );
}

function sizeFromShape(shape: readonly number[]): number {
  let size = 1;
  for (const dimension of shape) size *= dimension;
  return size;
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

function unaryBackward(
  op: UnaryOp,
  g: Float32Array,
  x: Float32Array,
  y: Float32Array,
  gx: Float32Array,
): void {
  const n = g.length;
  switch (op) {
    case 'neg':
      for (let i = 0; i < n; i++) gx[i] -= g[i];
      return;
    case 'exp':
      for (let i = 0; i < n; i++) gx[i] += g[i] * y[i];
      return;
    case 'log':
      for (let i = 0; i < n; i++) gx[i] += g[i] / x[i];
      return;
    case 'sqrt':
      for (let i = 0; i < n; i++) gx[i] += (0.5 * g[i]) / y[i];
      return;
    case 'relu':
      if (reluBackwardKernel(x, g, gx)) return;
      for (let i = 0; i < n; i++) if (x[i] > 0) gx[i] += g[i];
      return;
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const cdf = 0.5 * (1 + erf(x[i] * INVERSE_SQRT_2));
        const density = INVERSE_SQRT_2PI * Math.exp(-0.5 * x[i] * x[i]);
        gx[i] += g[i] * (cdf + x[i] * density);
      }
      return;
    case 'sigmoid':
      for (let i = 0; i < n; i++) gx[i] += g[i] * y[i] * (1 - y[i]);
      return;
    case 'tanh':
      for (let i = 0; i < n; i++) gx[i] += g[i] * (1 - y[i] * y[i]);
      return;
  }
}

function unary(op: UnaryOp, input: Tensor): Tensor {
  if (input.device !== 'cpu') return runOnDevice(op, input);
  check(input.dtype === 'f32', 'invalid_dtype', () => `${op}: ops compute in f32, got ${input.dtype}`);
  const scratch: Float32Array[] = [];
  const x = savedValues(input, scratch);
  const y = pool.take(input.size);
  unaryForward(op, x, y);
  return makeResult(
    y,
    [...input.shape],
    op,
    [input],
    (g) => unaryBackward(op, g, x, y, gradBuffer(input)),
    scratch,
  );
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
