/**
 * Reductions over axes: sum, mean, max (values, gradient to the first maximum) and argmax.
 *
 *   sum:  gx = expand(g with the reduced axes kept, x.shape)
 *   mean: gx = expand(g with the reduced axes kept, x.shape) / count
 *   max:  gx[argmax(o)] += g[o]   (CPU only: a device refuses max while recording)
 */
import {
  anyOnDevice,
  deviceBinary,
  deviceReduce,
  noGradientOnDevice,
  unavailableOnDevice,
} from '../deviceOps.js';
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
  type Tensor,
} from '../Tensor.js';
import { expand } from './broadcast.js';
import { mul } from './elementwise.js';
import { reshape } from './shape.js';

export interface ReduceOptions {
  /** Keep reduced axes as dimensions of size 1. */
  readonly keepDims?: boolean;
}

interface ReductionPlan {
  readonly shape: number[];
  /** For each input position (row-major), the output position it reduces into. */
  readonly map: Int32Array;
  readonly outputSize: number;
  readonly count: number;
}

function planReduction(
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
  const map = stridedIndexMap(shape, outStrides);
  const outShape = keepDims ? shape.map((n, d) => (reduced[d] ? 1 : n)) : shape.filter((_, d) => !reduced[d]);
  return { shape: outShape, map, outputSize: stride, count };
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
  const keptShape = planReduction(input.shape, axes, true, op).shape;
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
  const out = pool.takeZeroed(plan.outputSize);
  const map = plan.map;
  for (let i = 0; i < map.length; i++) out[map[i]] += x[i];
  if (mean) for (let o = 0; o < out.length; o++) out[o] *= scale;
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
function argmaxPositions(x: Float32Array, plan: ReductionPlan): Int32Array {
  const best = new Int32Array(plan.outputSize).fill(-1);
  const map = plan.map;
  for (let i = 0; i < map.length; i++) {
    const o = map[i];
    // NaN wins, as in PyTorch, so a NaN is never hidden.
    if (best[o] < 0 || x[i] > x[best[o]] || (Number.isNaN(x[i]) && !Number.isNaN(x[best[o]]))) best[o] = i;
  }
  return best;
}

/** Maximum over `axes` (all when omitted); the gradient goes to the first maximum. */
export function max(input: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  check(input.size > 0, 'invalid_shape', () => 'max: the tensor is empty');
  const plan = planReduction(input.shape, axes, options.keepDims ?? false, 'max');
  if (anyOnDevice([input])) {
    noGradientOnDevice('max', [input]);
    const marked = input.shape.map((_, d) => isReduced(axes, d, input.rank));
    return deviceReduce('max', input, marked, plan.shape);
  }
  const x = contiguousData(input);
  const best = argmaxPositions(x, plan);
  const out = pool.take(plan.outputSize);
  for (let o = 0; o < out.length; o++) out[o] = x[best[o]];
  releaseTemporary(input, x);
  return makeResult(out, plan.shape, 'max', [input], (g) => {
    const gx = gradBuffer(input);
    for (let o = 0; o < best.length; o++) gx[best[o]] += g[o];
  });
}

/** Index (along `axis`) of the first maximum; a tensor of integer values, no gradient. */
export function argmax(input: Tensor, axis: number, options: ReduceOptions = {}): Tensor {
  if (input.device !== 'cpu') unavailableOnDevice('argmax', [input]);
  const d = normalizeAxis(axis, input.rank, 'argmax');
  check(input.shape[d] > 0, 'invalid_shape', () => 'argmax: the axis is empty');
  const plan = planReduction(input.shape, d, options.keepDims ?? false, 'argmax');
  const x = contiguousData(input);
  const best = argmaxPositions(x, plan);
  let inner = 1;
  for (let k = d + 1; k < input.rank; k++) inner *= input.shape[k];
  const out = new Float32Array(plan.outputSize);
  for (let o = 0; o < out.length; o++) out[o] = Math.floor(best[o] / inner) % input.shape[d];
  releaseTemporary(input, x);
  return makeResult(out, plan.shape, 'argmax', [], () => {});
}
