/**
 * Comparisons and selections, broadcasting (NumPy rules; a number is a scalar tensor).
 *
 *   eq ne lt le gt ge: 1 where the comparison holds, else 0 (f32 tensors; no gradient). NaN
 *                      compares unequal to everything, as in IEEE 754 and PyTorch.
 *   where(c, a, b):    a where c != 0, else b;  ga = sumTo(where(c, g, 0)), gb = sumTo(where(c, 0, g))
 *   maskedFill(x, m, v) = where(m, v, x), with the output in x's shape
 *   maximum(a, b):     NaN if either is NaN, else the larger;  ga = g*[a>b] + g/2*[a=b], gb likewise
 *   minimum(a, b):     the same with the smaller (PyTorch's rules: ties split the gradient)
 *   clamp(x, lo, hi):  NaN stays NaN;  gx = g*[lo <= x <= hi] (inclusive, as PyTorch)
 *
 * Masks and conditions are f32 tensors of 0/1 (any nonzero is true): zbmd has no bool or integer
 * dtype yet. CPU only: on a device these ops refuse (`unavailableOnDevice`).
 */
import { anyOnDevice, unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { broadcastIndexMap, broadcastShapes } from '../internal/broadcast.js';
import { pool } from '../internal/pool.js';
import {
  contiguousData,
  dispose,
  hostTensor,
  record,
  releaseTemporary,
  sameShape,
  scalar,
  sizeOf,
  type Tensor,
} from '../Tensor.js';
import { sumTo } from './broadcast.js';
import { mul, type Operand } from './elementwise.js';

function asTensor(value: Operand): Tensor {
  return typeof value === 'number' ? scalar(value) : value;
}

function refuseDevice(op: string, operands: readonly Operand[]): void {
  const tensors = operands.filter((o): o is Tensor => typeof o !== 'number');
  if (anyOnDevice(tensors)) unavailableOnDevice(op, tensors);
}

/** f(a[i], b[i]) over the broadcast shape, on the host, recording nothing. */
function mapBinary(op: string, left: Operand, right: Operand, f: (x: number, y: number) => number): Tensor {
  refuseDevice(op, [left, right]);
  const a = asTensor(left);
  const b = asTensor(right);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const av = contiguousData(a);
  const bv = contiguousData(b);
  const am = broadcastIndexMap(a.shape, shape);
  const bm = broadcastIndexMap(b.shape, shape);
  const out = pool.take(sizeOf(shape));
  for (let i = 0; i < out.length; i++) out[i] = f(av[am ? am[i] : i], bv[bm ? bm[i] : i]);
  releaseTemporary(a, av);
  releaseTemporary(b, bv);
  return hostTensor(out, shape);
}

/** a == b as 0/1 (no gradient). */
export const eq = (a: Operand, b: Operand): Tensor => mapBinary('eq', a, b, (x, y) => (x === y ? 1 : 0));
/** a != b as 0/1 (no gradient); NaN != NaN. */
export const ne = (a: Operand, b: Operand): Tensor => mapBinary('ne', a, b, (x, y) => (x !== y ? 1 : 0));
/** a < b as 0/1 (no gradient). */
export const lt = (a: Operand, b: Operand): Tensor => mapBinary('lt', a, b, (x, y) => (x < y ? 1 : 0));
/** a <= b as 0/1 (no gradient). */
export const le = (a: Operand, b: Operand): Tensor => mapBinary('le', a, b, (x, y) => (x <= y ? 1 : 0));
/** a > b as 0/1 (no gradient). */
export const gt = (a: Operand, b: Operand): Tensor => mapBinary('gt', a, b, (x, y) => (x > y ? 1 : 0));
/** a >= b as 0/1 (no gradient). */
export const ge = (a: Operand, b: Operand): Tensor => mapBinary('ge', a, b, (x, y) => (x >= y ? 1 : 0));

function wants(operand: Operand): operand is Tensor {
  return typeof operand !== 'number' && operand.requiresGrad;
}

/** `gradient` summed to `operand`'s shape (null for a number or a tensor needing none). */
function reduced(gradient: Tensor, operand: Operand): Tensor | null {
  if (!wants(operand)) {
    dispose(gradient);
    return null;
  }
  const out = sumTo(gradient, operand.shape);
  if (out !== gradient) dispose(gradient);
  return out;
}

/** `a` where `condition` is nonzero, else `b` (all three broadcast together). */
export function where(condition: Tensor, a: Operand, b: Operand): Tensor {
  refuseDevice('where', [condition, a, b]);
  const ta = asTensor(a);
  const tb = asTensor(b);
  const shape = broadcastShapes(broadcastShapes(condition.shape, ta.shape, 'where'), tb.shape, 'where');
  const cv = contiguousData(condition);
  const av = contiguousData(ta);
  const bv = contiguousData(tb);
  const cm = broadcastIndexMap(condition.shape, shape);
  const am = broadcastIndexMap(ta.shape, shape);
  const bm = broadcastIndexMap(tb.shape, shape);
  const out = pool.take(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    out[i] = cv[cm ? cm[i] : i] !== 0 ? av[am ? am[i] : i] : bv[bm ? bm[i] : i];
  }
  releaseTemporary(condition, cv);
  releaseTemporary(ta, av);
  releaseTemporary(tb, bv);
  return record(hostTensor(out, shape), 'where', [condition, ta, tb], (g) => [
    null,
    wants(a) ? reduced(where(condition, g, 0), a) : null,
    wants(b) ? reduced(where(condition, 0, g), b) : null,
  ]);
}

/** `x` with `value` where `mask` (broadcastable to x's shape) is nonzero. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  check(sameShape(broadcastShapes(x.shape, mask.shape, 'maskedFill'), x.shape), 'shape_mismatch', () => {
    return `maskedFill: mask [${mask.shape.join(', ')}] does not broadcast to the input's [${x.shape.join(', ')}]`;
  });
  return where(mask, value, x);
}

/**
 * maximum / minimum: `pick` chooses the value; `share(x, y)` is the left operand's share of the
 * gradient (the right one's is share(y, x)): 1 when x wins, 1/2 on a tie, 0 when it loses.
 */
function extremum(op: 'maximum' | 'minimum', a: Operand, b: Operand): Tensor {
  const larger = op === 'maximum';
  const pick = larger
    ? (x: number, y: number) => (Number.isNaN(x) || Number.isNaN(y) ? Number.NaN : Math.max(x, y))
    : (x: number, y: number) => (Number.isNaN(x) || Number.isNaN(y) ? Number.NaN : Math.min(x, y));
  const share = larger
    ? (x: number, y: number) => (x < y ? 0 : x === y ? 0.5 : 1)
    : (x: number, y: number) => (x > y ? 0 : x === y ? 0.5 : 1);
  const out = mapBinary(op, a, b, pick);
  return record(out, op, [asTensor(a), asTensor(b)], (g) => {
    const left = wants(a) ? mapBinary(op, a, b, share) : null;
    const right = wants(b) ? mapBinary(op, b, a, share) : null;
    const ga = left === null ? null : reduced(mul(g, left), a);
    const gb = right === null ? null : reduced(mul(g, right), b);
    if (left !== null) dispose(left);
    if (right !== null) dispose(right);
    return [ga, gb];
  });
}

/** The element-wise larger of a and b (broadcasting); NaN wins, as in PyTorch. */
export const maximum = (a: Operand, b: Operand): Tensor => extremum('maximum', a, b);
/** The element-wise smaller of a and b (broadcasting); NaN wins, as in PyTorch. */
export const minimum = (a: Operand, b: Operand): Tensor => extremum('minimum', a, b);

export interface ClampBounds {
  readonly min?: number;
  readonly max?: number;
}

/** `x` limited to [min, max] (either bound may be left out); NaN stays NaN. */
export function clamp(x: Tensor, bounds: ClampBounds): Tensor {
  refuseDevice('clamp', [x]);
  const low = bounds.min ?? Number.NEGATIVE_INFINITY;
  const high = bounds.max ?? Number.POSITIVE_INFINITY;
  check(bounds.min !== undefined || bounds.max !== undefined, 'invalid_argument', () => {
    return 'clamp: give at least one of min and max';
  });
  check(!Number.isNaN(low) && !Number.isNaN(high), 'invalid_argument', () => 'clamp: a bound is NaN');
  const values = contiguousData(x);
  const out = pool.take(x.size);
  for (let i = 0; i < out.length; i++) {
    const v = values[i];
    // PyTorch: min(max(x, lo), hi), so hi wins when lo > hi
    out[i] = Number.isNaN(v) ? v : Math.min(Math.max(v, low), high);
  }
  releaseTemporary(x, values);
  return record(hostTensor(out, x.shape), 'clamp', [x], (g) => {
    const inside = mapBinary('clamp', x, 0, (v) => (v >= low && v <= high ? 1 : 0));
    const gx = mul(g, inside);
    dispose(inside);
    return [gx];
  });
}
