/**
 * Reductions over axes: sum, mean, max (values, gradient to the first maximum) and argmax.
 *
 *   sum:  gx[i] += g[out(i)]
 *   mean: gx[i] += g[out(i)] / count
 *   max:  gx[argmax(o)] += g[o]
 *
 * Sums and means accumulate in float64 and round once (internal/accumulate.ts), so a float32
 * result stays within 1e-6 relative of the exact value up to 1e8 elements and beyond. When the
 * reduced axes are adjacent (all of them, the last ones, the first ones...), the input is read as
 * (outer, count, inner) blocks with no index map; other axis sets go through an index map.
 */
import { runOnDevice, unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { float64Accumulator, sumStrided } from '../internal/accumulate.js';
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
  readonly outputSize: number;
  readonly count: number;
  /** The input's strides into the output (0 on a reduced axis), for the index map. */
  readonly outStrides: number[];
  /** When the reduced axes are adjacent (axes of size 1 aside): the input is (outer, count, inner). */
  readonly blocks: { readonly outer: number; readonly inner: number } | null;
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
  const outShape = keepDims ? shape.map((n, d) => (reduced[d] ? 1 : n)) : shape.filter((_, d) => !reduced[d]);
  return { shape: outShape, outputSize: stride, count, outStrides, blocks: adjacentBlocks(shape, reduced) };
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
  if (input.device !== 'cpu') return runOnDevice(mean ? 'mean' : 'sum', input, axes, options);
  const op = mean ? 'mean' : 'sum';
  const plan = planReduction(input.shape, axes, options.keepDims ?? false, op);
  const x = contiguousData(input);
  const out = pool.take(plan.outputSize);
  // Divided by `divisor` (not multiplied by its inverse), so the mean of equal values is exact.
  const divisor = mean ? plan.count : 1;
  const blocks = plan.blocks;
  const map = blocks === null ? reductionMap(input, plan) : null;
  if (blocks !== null) sumBlocks(x, plan.count, blocks.outer, blocks.inner, divisor, out);
  else sumMapped(x, map as Int32Array, divisor, out);
  releaseTemporary(input, x);
  const scale = 1 / divisor;
  return makeResult(out, plan.shape, op, [input], (g) => {
    const gx = gradBuffer(input);
    if (map !== null) {
      for (let i = 0; i < map.length; i++) gx[i] += g[map[i]] * scale;
      return;
    }
    const { outer, inner } = blocks as { outer: number; inner: number };
    for (let o = 0; o < outer; o++) {
      for (let r = 0; r < plan.count; r++) {
        const base = (o * plan.count + r) * inner;
        for (let j = 0; j < inner; j++) gx[base + j] += g[o * inner + j] * scale;
      }
    }
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

/** Maximum over `axes` (all when omitted); the gradient goes to the first maximum. */
export function max(input: Tensor, axes?: number | readonly number[], options: ReduceOptions = {}): Tensor {
  if (input.device !== 'cpu') return runOnDevice('max', input, axes, options);
  check(input.size > 0, 'invalid_shape', () => 'max: the tensor is empty');
  const plan = planReduction(input.shape, axes, options.keepDims ?? false, 'max');
  const x = contiguousData(input);
  const best = argmaxPositions(input, x, plan);
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
  const best = argmaxPositions(input, x, plan);
  let inner = 1;
  for (let k = d + 1; k < input.rank; k++) inner *= input.shape[k];
  const out = new Float32Array(plan.outputSize);
  for (let o = 0; o < out.length; o++) out[o] = Math.floor(best[o] / inner) % input.shape[d];
  releaseTemporary(input, x);
  return makeResult(out, plan.shape, 'argmax', [], () => {});
}
