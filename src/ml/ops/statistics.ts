/**
 * Reductions beyond sum/mean/max (reduce.ts), PyTorch's semantics:
 *   min / argmin:   the first minimum (NaN wins, as max does); min's gradient goes to it (takeAt)
 *   logSumExp:      m + log(sum(exp(x - m))), m the maximum (stable);  gx = g * exp(x - y)
 *   variance / std: sum((x - mean)^2) / max(0, N - correction) (PyTorch's `correction`, 1 by
 *                   default: unbiased); std = sqrt(variance). Compositions of ops.
 *   norm:           p = 2 (default): sqrt(sum(x^2)), gx = x * g / y (0 where y = 0, as PyTorch);
 *                   p = 1: sum(|x|); p = Infinity: max(|x|) (tied maxima share the gradient unless one axis is given)
 *   cumsum:         running sums along an axis (float64);  gx = flip(cumsum(flip(g)))
 *   prod:           product over all elements or one axis;  gx = g * (product of the others),
 *                   exact with zeros in the input (prefix and suffix products, no division)
 * CPU only: on a device they refuse (`unavailableOnDevice`).
 * `variance` is PyTorch's `var` (a reserved word in JavaScript).
 */
import { anyOnDevice, unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { stridedIndexMap } from '../internal/broadcast.js';
import { pool } from '../internal/pool.js';
import {
  contiguousData,
  dispose,
  gradBuffer,
  hostTensor,
  makeResult,
  normalizeAxis,
  record,
  releaseTemporary,
  sizeOf,
  type Tensor,
} from '../Tensor.js';
import { expand } from './broadcast.js';
import { eq, maskedFill } from './compare.js';
import { div, exp, mul, sqrt, sub } from './elementwise.js';
import { flip } from './indexing.js';
import { abs } from './math.js';
import { max, mean, planReduction, type ReduceOptions, sum, tieShares } from './reduce.js';
import { reshape } from './shape.js';
import { takeAt } from './take.js';

type Axes = number | readonly number[] | undefined;

interface Grouping {
  /** The output's shape (reduced axes dropped, or kept as 1). */
  readonly shape: number[];
  /** The output's shape with the reduced axes kept as 1 (to expand a gradient back). */
  readonly keptShape: number[];
  readonly outputSize: number;
  /** Elements per output. */
  readonly count: number;
  /** For each input position (row-major), the output position it reduces into. */
  readonly map: Int32Array;
}

function groupBy(shape: readonly number[], axes: Axes, keepDims: boolean, context: string): Grouping {
  const plan = planReduction(shape, axes, keepDims, context);
  return {
    shape: plan.shape,
    keptShape: plan.keptShape,
    outputSize: plan.outputSize,
    count: plan.count,
    map: stridedIndexMap(shape, plan.outStrides),
  };
}

function refuseDevice(op: string, x: Tensor): void {
  if (anyOnDevice([x])) unavailableOnDevice(op, [x]);
}

/** For each output position, the input position of the first minimum (NaN wins). */
function argminPositions(x: Float32Array, grouping: Grouping): Int32Array {
  const best = new Int32Array(grouping.outputSize).fill(-1);
  const map = grouping.map;
  for (let i = 0; i < map.length; i++) {
    const o = map[i];
    const b = best[o];
    if (b < 0 || x[i] < x[b] || (Number.isNaN(x[i]) && !Number.isNaN(x[b]))) best[o] = i;
  }
  return best;
}

/**
 * Minimum over `axes` (all when omitted). Over one axis given as a number the gradient goes to the
 * first minimum (torch.min(x, dim)); over all axes or a list of axes ties share it evenly
 * (torch.min(x), torch.amin(x, dims)).
 */
export function min(input: Tensor, axes?: Axes, options: ReduceOptions = {}): Tensor {
  refuseDevice('min', input);
  check(input.size > 0, 'invalid_shape', () => 'min: the tensor is empty');
  const grouping = groupBy(input.shape, axes, options.keepDims ?? false, 'min');
  const x = contiguousData(input);
  const best = argminPositions(x, grouping);
  const out = pool.take(grouping.outputSize);
  for (let o = 0; o < out.length; o++) out[o] = x[best[o]];
  const shares = typeof axes === 'number' ? null : tieShares(x, out, grouping.map, best);
  releaseTemporary(input, x);
  if (shares === null) {
    pool.release(out);
    return takeAt(input, best, grouping.shape, 0, 'min');
  }
  return makeResult(out, grouping.shape, 'min', [input], (g) => {
    const gx = gradBuffer(input);
    for (let i = 0; i < shares.weights.length; i++) gx[i] += g[shares.map[i]] * shares.weights[i];
  });
}

/** Index (along `axis`) of the first minimum; a tensor of integer values, no gradient. */
export function argmin(input: Tensor, axis: number, options: ReduceOptions = {}): Tensor {
  refuseDevice('argmin', input);
  const d = normalizeAxis(axis, input.rank, 'argmin');
  check(input.shape[d] > 0, 'invalid_shape', () => 'argmin: the axis is empty');
  const grouping = groupBy(input.shape, d, options.keepDims ?? false, 'argmin');
  const x = contiguousData(input);
  const best = argminPositions(x, grouping);
  releaseTemporary(input, x);
  const inner = sizeOf(input.shape.slice(d + 1));
  const out = pool.take(grouping.outputSize);
  for (let o = 0; o < out.length; o++) out[o] = Math.floor(best[o] / inner) % input.shape[d];
  return hostTensor(out, grouping.shape);
}

/** log(sum(exp(x))) over `axes` (all when omitted), shifted by the maximum so it cannot overflow. */
export function logSumExp(input: Tensor, axes?: Axes, options: ReduceOptions = {}): Tensor {
  refuseDevice('logSumExp', input);
  const grouping = groupBy(input.shape, axes, options.keepDims ?? false, 'logSumExp');
  const x = contiguousData(input);
  const map = grouping.map;
  const peak = new Float64Array(grouping.outputSize).fill(Number.NEGATIVE_INFINITY);
  for (let i = 0; i < map.length; i++) if (!(x[i] <= peak[map[i]])) peak[map[i]] = x[i];
  // an infinite (or NaN) peak is not a usable shift: the plain formula gives PyTorch's answer
  const shift = peak.map((m) => (Number.isFinite(m) ? m : 0));
  const totals = new Float64Array(grouping.outputSize);
  for (let i = 0; i < map.length; i++) totals[map[i]] += Math.exp(x[i] - shift[map[i]]);
  releaseTemporary(input, x);
  const out = pool.take(grouping.outputSize);
  for (let o = 0; o < out.length; o++) out[o] = shift[o] + Math.log(totals[o]);
  const y = hostTensor(out, grouping.shape);
  return record(y, 'logSumExp', [input], (g) => {
    const gKept = reshape(g, grouping.keptShape);
    const yKept = reshape(y, grouping.keptShape);
    const yWide = expand(yKept, input.shape);
    const shifted = sub(input, yWide);
    const softmax = exp(shifted);
    const gWide = expand(gKept, input.shape);
    const gx = mul(gWide, softmax);
    for (const t of [shifted, softmax]) dispose(t);
    return [gx];
  });
}

export interface VarianceOptions extends ReduceOptions {
  /** Subtracted from the element count in the divisor: 1 (default) unbiased, 0 the population's. */
  readonly correction?: number;
}

/** Variance over `axes` (all when omitted), dividing by max(0, N - correction) as PyTorch. */
export function variance(input: Tensor, axes?: Axes, options: VarianceOptions = {}): Tensor {
  refuseDevice('variance', input);
  const correction = options.correction ?? 1;
  check(Number.isFinite(correction), 'invalid_argument', () => {
    return `variance: correction must be a finite number, got ${correction}`;
  });
  const grouping = groupBy(input.shape, axes, options.keepDims ?? false, 'variance');
  const centre = mean(input, axes, { keepDims: true });
  const deviation = sub(input, centre);
  const squares = mul(deviation, deviation);
  const total = sum(squares, axes, { keepDims: options.keepDims ?? false });
  return div(total, Math.max(0, grouping.count - correction));
}

/** Standard deviation: sqrt(variance(input, axes, options)). */
export function std(input: Tensor, axes?: Axes, options: VarianceOptions = {}): Tensor {
  return sqrt(variance(input, axes, options));
}

export interface NormOptions extends ReduceOptions {
  /** 2 (default), 1 or Infinity. */
  readonly p?: number;
}

/** The vector p-norm over `axes` (all when omitted): p = 2 (default), 1 or Infinity. */
export function norm(input: Tensor, axes?: Axes, options: NormOptions = {}): Tensor {
  refuseDevice('norm', input);
  const p = options.p ?? 2;
  const keepDims = options.keepDims ?? false;
  if (p === 1) return sum(abs(input), axes, { keepDims });
  if (p === Number.POSITIVE_INFINITY) return max(abs(input), axes, { keepDims });
  check(p === 2, 'invalid_argument', () => `norm: p must be 2, 1 or Infinity, got ${p}`);
  const grouping = groupBy(input.shape, axes, keepDims, 'norm');
  const x = contiguousData(input);
  const totals = new Float64Array(grouping.outputSize);
  for (let i = 0; i < grouping.map.length; i++) totals[grouping.map[i]] += x[i] * x[i];
  releaseTemporary(input, x);
  const out = pool.take(grouping.outputSize);
  for (let o = 0; o < out.length; o++) out[o] = Math.sqrt(totals[o]);
  const y = hostTensor(out, grouping.shape);
  return record(y, 'norm', [input], (g) => {
    const ratio = div(g, y);
    const zero = eq(y, 0);
    const safe = maskedFill(ratio, zero, 0);
    const kept = reshape(safe, grouping.keptShape);
    const wide = expand(kept, input.shape);
    const gx = mul(input, wide);
    for (const t of [ratio, zero, safe]) dispose(t);
    if (wide !== kept) dispose(wide);
    return [gx];
  });
}

/** Running sums along `axis` (accumulated in float64). */
export function cumsum(input: Tensor, axis: number): Tensor {
  refuseDevice('cumsum', input);
  const d = normalizeAxis(axis, input.rank, 'cumsum');
  const length = input.shape[d];
  const inner = sizeOf(input.shape.slice(d + 1));
  const outer = sizeOf(input.shape.slice(0, d));
  const x = contiguousData(input);
  const out = pool.take(input.size);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let total = 0;
      for (let k = 0; k < length; k++) {
        const at = (o * length + k) * inner + j;
        total += x[at];
        out[at] = total;
      }
    }
  }
  releaseTemporary(input, x);
  return record(hostTensor(out, input.shape), 'cumsum', [input], (g) => {
    const reversed = flip(g, [d]);
    const sums = cumsum(reversed, d);
    const gx = flip(sums, [d]);
    dispose(reversed);
    dispose(sums);
    return [gx];
  });
}

/** (outer, length, inner) blocks around `axis`, or one line of all elements when it is undefined. */
function lines(
  shape: readonly number[],
  axis: number | undefined,
): { outer: number; length: number; inner: number } {
  if (axis === undefined) return { outer: 1, length: sizeOf(shape), inner: 1 };
  return { outer: sizeOf(shape.slice(0, axis)), length: shape[axis], inner: sizeOf(shape.slice(axis + 1)) };
}

/** For each element, the product of the other elements of its line (prefix times suffix). */
function productOfOthers(input: Tensor, axis: number | undefined): Tensor {
  const { outer, length, inner } = lines(input.shape, axis);
  const x = contiguousData(input);
  const out = pool.take(input.size);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let prefix = 1;
      for (let k = 0; k < length; k++) {
        const at = (o * length + k) * inner + j;
        out[at] = prefix;
        prefix *= x[at];
      }
      let suffix = 1;
      for (let k = length - 1; k >= 0; k--) {
        const at = (o * length + k) * inner + j;
        out[at] *= suffix;
        suffix *= x[at];
      }
    }
  }
  releaseTemporary(input, x);
  return hostTensor(out, input.shape);
}

/** Product over all elements, or along `axis` (PyTorch's torch.prod takes one dimension). */
export function prod(input: Tensor, axis?: number, options: ReduceOptions = {}): Tensor {
  refuseDevice('prod', input);
  const d = axis === undefined ? undefined : normalizeAxis(axis, input.rank, 'prod');
  const grouping = groupBy(input.shape, d, options.keepDims ?? false, 'prod');
  const { outer, length, inner } = lines(input.shape, d);
  const x = contiguousData(input);
  const out = pool.take(grouping.outputSize);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let product = 1;
      for (let k = 0; k < length; k++) product *= x[(o * length + k) * inner + j];
      out[o * inner + j] = product;
    }
  }
  releaseTemporary(input, x);
  return record(hostTensor(out, grouping.shape), 'prod', [input], (g) => {
    const kept = reshape(g, grouping.keptShape);
    const wide = expand(kept, input.shape);
    const others = productOfOthers(input, d);
    const gx = mul(wide, others);
    dispose(others);
    if (wide !== kept) dispose(wide);
    return [gx];
  });
}
