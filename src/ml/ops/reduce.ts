/**
 * Reductions over axes: sum, mean, max (values, gradient to the first maximum) and argmax.
 *
 *   sum:  gx[i] += g[out(i)]
 *   mean: gx[i] += g[out(i)] / count
 *   max:  gx[argmax(o)] += g[o]
 */
import { runOnDevice, unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { stridedIndexMap } from '../internal/broadcast.js';
import { pool } from '../internal/pool.js';
import {
  contiguousData,
  gradBuffer,
  makeResult,
  normalizeAxis,
  releaseTemporary,
  type Tensor,
} from '../Tensor.js';

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
  if (input.device !== 'cpu') return runOnDevice(mean ? 'mean' : 'sum', input, axes, options);
  const op = mean ? 'mean' : 'sum';
  const plan = planReduction(input.shape, axes, options.keepDims ?? false, op);
  const x = contiguousData(input);
  const out = pool.takeZeroed(plan.outputSize);
  const map = plan.map;
  for (let i = 0; i < map.length; i++) out[map[i]] += x[i];
  const scale = mean ? 1 / plan.count : 1;
  if (mean) for (let o = 0; o < out.length; o++) out[o] *= scale;
  releaseTemporary(input, x);
  return makeResult(out, plan.shape, op, [input], (g) => {
    const gx = gradBuffer(input);
    for (let i = 0; i < map.length; i++) gx[i] += g[map[i]] * scale;
  });
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
  if (input.device !== 'cpu') return runOnDevice('max', input, axes, options);
  check(input.size > 0, 'invalid_shape', () => 'max: the tensor is empty');
  const plan = planReduction(input.shape, axes, options.keepDims ?? false, 'max');
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
