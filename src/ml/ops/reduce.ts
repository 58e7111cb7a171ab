/**
 * Reductions over axes: sum, mean, max (values, gradient to the first maximum) and argmax.
 *
 *   sum:  gx = expand(g with the reduced axes kept, x.shape)
 *   mean: gx = expand(g with the reduced axes kept, x.shape) / count
 *   max:  gx[argmax(o)] += g[o]   (CPU only: a device refuses max while recording)
 *
 * Sums and means accumulate in float64 and round once (internal/accumulate.ts), so a float32
 * result stays within 1e-6 relative of the exact value up to 1e8 elements and beyond. When the
 * reduced axes are adjacent (all of them, the last ones, the first ones...), the input is read as
 * (outer, count, inner) blocks with no index map; other axis sets go through an index map.
 */
import {
  anyOnDevice,
  deviceBinary,
  deviceReduce,
  noGradientOnDevice,
  unavailableOnDevice,
} from '../deviceOps.js';
import { check } from '../errors.js';
import { float64Accumulator, sumStrided } from '../internal/accumulate.js';
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
  type Tensor,
} from '../Tensor.js';
import { expand } from './broadcast.js';
import { mul } from './elementwise.js';
import { reshape } from './shape.js';

export interface ReduceOptions {
  /** Keep reduced axes as dimensions of size 1. */
  readonly keepDims?: boolean;
}

export interface ReductionPlan {
  readonly shape: number[];
  /** The output's shape with the reduced axes kept as 1 (to expand a gradient back). */
  readonly keptShape: number[];
  readonly outputSize: number;
  readonly count: number;
  /** The input's strides into the output (0 on a reduced axis), for the index map. */
  readonly outStrides: number[];
  /** When the reduced axes are adjacent (axes of size 1 aside): the input is (outer, count, inner). */
  readonly blocks: { readonly outer: number; readonly inner: number } | null;
}

/** Which axes reduce, the output's shape and strides, and the block layout when the axes are adjacent. */
export function planReduction(
  shape: readonly number[],
  axes: number | readonly number[] | undefined,
  keepDims: boolean,
  context: string,
): ReductionPlan {
  const rank = shape.length;
  const list = axes === undefined ? shape.map((_, d) => d) : typeof axes === 'number' ? [axes] : axes;
  const reduced = new Array<boolean>(rank).fill(false);
  for (const axis of list) {
    const d = normalizeAxis(axis, rank, context);
    check(!reduced[d], 'invalid_axis', () => `${context}: axis ${axis} is given twice`);
    reduced[d] = true;
  }
  const outStrides = new Array<number>(rank).fill(0);
  let stride = 1;
  let count = 1;
  for (let d = rank - 1; d >= 0; d--) {
    if (reduced[d]) count *= shape[d];
    else {
      outStrides[d] = stride;
      stride *= shape[d];
    }
  }
  const keptShape = shape.map((n, d) => (reduced[d] ? 1 : n));
  const outShape = keepDims ? keptShape : shape.filter((_, d) => !reduced[d]);
  return {
    shape: outShape,
    keptShape,
    outputSize: stride,
    count,
    outStrides,
    blocks: adjacentBlocks(shape, reduced),
  };
}

/** (outer, inner) around the reduced axes when they form one run, axes of size 1 ignored. */
function adjacentBlocks(
  shape: readonly number[],
  reduced: readonly boolean[],
): { outer: number; inner: number } | null {
  let outer = 1;
  let inner = 1;
  // 0: before the reduced run, 1: inside it, 2: after it.
  let phase = 0;
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    if (reduced[d]) {
      if (phase === 2) return null;
      phase = 1;
    } else if (phase === 0) outer *= shape[d];
    else {
      phase = 2;
      inner *= shape[d];
    }
  }
  return { outer, inner };
}

/** For each input position (row-major), the output position it reduces into. */
function reductionMap(input: Tensor, plan: ReductionPlan): Int32Array {
  return stridedIndexMap(input.shape, plan.outStrides);
}

/** out[o] = sum over the block of o, in float64, times `scale` (rounded once to float32). */
function sumBlocks(
  x: Float32Array,
  count: number,
  outer: number,
  inner: number,
  scale: number,
  out: Float32Array,
): void {
  if (inner === 1) {
    for (let o = 0; o < outer; o++) out[o] = sumStrided(x, o * count, count, 1) / scale;
    return;
  }
  const totals = float64Accumulator(inner);
  for (let o = 0; o < outer; o++) {
    totals.fill(0);
    for (let r = 0; r < count; r++) {
      const base = (o * count + r) * inner;
      for (let j = 0; j < inner; j++) totals[j] += x[base + j];
    }
    for (let j = 0; j < inner; j++) out[o * inner + j] = totals[j] / scale;
  }
}

/** The same through the index map (any axis set). */
function sumMapped(x: Float32Array, map: Int32Array, scale: number, out: Float32Array): void {
  const totals = float64Accumulator(out.length);
  for (let i = 0; i < map.length; i++) totals[map[i]] += x[i];
  for (let o = 0; o < out.length; o++) out[o] = totals[o] / scale;
}

function sumOrMean(
  input: Tensor,
  axes: number | readonly number[] | undefined,
  options: ReduceOptions,
  mean: boolean,
): Tensor {
  const op = mean ? 'mean' : 'sum';
  const plan = planReduction(input.shape, axes, options.keepDims ?? false, op);
  const scale = mean ? 1 / plan.count : 1;
  const keptShape = plan.keptShape;
  const rule = (g: Tensor): Tensor[] => {
    const kept = reshape(g, keptShape);
    const spread = expand(kept, input.shape);
    if (spread !== kept) dispose(kept);
    if (!mean) return [spread];
    const out = mul(spread, scale);
    dispose(spread);
    return [out];
  };
  if (anyOnDevice([input])) {
    const marked = input.shape.map((_, d) => isReduced(axes, d, input.rank));
    const total = deviceReduce('sum', input, marked, plan.shape);
    if (!mean) return record(total, op, [input], rule);
    const out = deviceBinary('mul', total, scale);
    dispose(total);
    return record(out, op, [input], rule);
  }
  const x = contiguousData(input);
  const out = pool.take(plan.outputSize);
  // Divided by `divisor` (not multiplied by its inverse), so the mean of equal values is exact.
  const divisor = mean ? plan.count : 1;
  const blocks = plan.blocks;
  if (blocks !== null) sumBlocks(x, plan.count, blocks.outer, blocks.inner, divisor, out);
  else sumMapped(x, reductionMap(input, plan), divisor, out);
  releaseTemporary(input, x);
  return record(hostTensor(out, plan.shape), op, [input], rule);
}

/** Whether axis `d` is among `axes` (all when undefined) for a tensor of `rank`. */
function isReduced(axes: number | readonly number[] | undefined, d: number, rank: number): boolean {
  if (axes === undefined) return true;
  const list = typeof axes === 'number' ? [axes] : axes;
  return list.some((axis) => (axis < 0 ? axis + rank : axis) === d);
}

/** Sum over `axes` (all when omitted). */
export function sum(input: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  return sumOrMean(input, axes, options, false);
}

/** Mean over `axes` (all when omitted). */
export function mean(input: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  return sumOrMean(input, axes, options, true);
}

/** For each output position, the input position of the first maximum. */
function argmaxPositions(input: Tensor, x: Float32Array, plan: ReductionPlan): Int32Array {
  const best = new Int32Array(plan.outputSize).fill(-1);
  const map = reductionMap(input, plan);
  for (let i = 0; i < map.length; i++) {
    const o = map[i];
    // NaN wins, as in PyTorch, so a NaN is never hidden.
    if (best[o] < 0 || x[i] > x[best[o]] || (Number.isNaN(x[i]) && !Number.isNaN(x[best[o]]))) best[o] = i;
  }
  return best;
}

/**
 * Maximum over `axes` (all when omitted). Over one axis given as a number, the gradient goes to
 * the first maximum (PyTorch's torch.max(x, dim)); over all axes or a list of axes, ties share it
 * evenly (torch.max(x), torch.amax(x, dims)).
 */
export function max(input: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  check(input.size > 0, 'invalid_shape', () => 'max: the tensor is empty');
  const plan = planReduction(input.shape, axes, options.keepDims ?? false, 'max');
  if (anyOnDevice([input])) {
    noGradientOnDevice('max', [input]);
    const marked = input.shape.map((_, d) => isReduced(axes, d, input.rank));
    return deviceReduce('max', input, marked, plan.shape);
  }
  const x = contiguousData(input);
  const best = argmaxPositions(input, x, plan);
  const out = pool.take(plan.outputSize);
  for (let o = 0; o < out.length; o++) out[o] = x[best[o]];
  const shares = typeof axes === 'number' ? null : tieShares(x, out, reductionMap(input, plan), best);
  releaseTemporary(input, x);
  return makeResult(out, plan.shape, 'max', [input], (g) => {
    const gx = gradBuffer(input);
    if (shares === null) for (let o = 0; o < best.length; o++) gx[best[o]] += g[o];
    else for (let i = 0; i < shares.weights.length; i++) gx[i] += g[shares.map[i]] * shares.weights[i];
  });
}

/**
 * For a reduction over all or a list of axes (PyTorch's torch.max() and amax, torch.min() and
 * amin): each input's share of its output's gradient, 1/count among the elements equal to the
 * extreme; null when there is no tie (the gradient then goes to the one extreme). A NaN extreme
 * keeps its gradient on the first NaN (the caller's positions), as there is nothing equal to it.
 */
export function tieShares(
  x: Float32Array,
  extremes: Float32Array,
  outputOf: Int32Array,
  first: Int32Array,
): { weights: Float32Array; map: Int32Array } | null {
  const counts = new Int32Array(extremes.length);
  for (let i = 0; i < x.length; i++) if (x[i] === extremes[outputOf[i]]) counts[outputOf[i]]++;
  if (!counts.some((count) => count > 1)) return null;
  const weights = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) if (x[i] === extremes[outputOf[i]]) weights[i] = 1 / counts[outputOf[i]];
  for (let o = 0; o < counts.length; o++) if (counts[o] === 0) weights[first[o]] = 1;
  return { weights, map: outputOf };
}

/** Index (along `axis`) of the first maximum; a tensor of integer values, no gradient. */
export function argmax(input: Tensor, axis: number, options: ReduceOptions = {}): Tensor {
  if (input.device !== 'cpu') unavailableOnDevice('argmax', [input]);
  const d = normalizeAxis(axis, input.rank, 'argmax');
  check(input.shape[d] > 0, 'invalid_shape', () => 'argmax: the axis is empty');
  const plan = planReduction(input.shape, d, options.keepDims ?? false, 'argmax');
  const x = contiguousData(input);
  const best = argmaxPositions(input, x, plan);
  let inner = 1;
  for (let k = d + 1; k < input.rank; k++) inner *= input.shape[k];
  const out = new Float32Array(plan.outputSize);
  for (let o = 0; o < out.length; o++) out[o] = Math.floor(best[o] / inner) % input.shape[d];
  releaseTemporary(input, x);
  return makeResult(out, plan.shape, 'argmax', [], () => {});
}
