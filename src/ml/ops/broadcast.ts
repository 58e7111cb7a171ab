/**
 * Broadcasting and its dual, each the other's gradient:
 *   expand(x, shape): x repeated to `shape` (NumPy broadcasting);  gx = sumTo(g, x.shape)
 *   sumTo(x, shape):  x summed over the dimensions `shape` broadcasts;  gx = expand(g, x.shape)
 * The binary ops' rules use `sumTo` to bring a gradient back to a broadcast operand's shape.
 */
import { anyOnDevice, deviceExpand, deviceSumTo } from '../deviceOps.js';
import { check } from '../errors.js';
import { float64Accumulator } from '../internal/accumulate.js';
import { broadcastShapes } from '../internal/broadcast.js';
import { pool } from '../internal/pool.js';
import {
  broadcastStrides,
  contiguousStrides,
  forEachRun,
  gatherStrided,
  type MergedLayout,
  mergeLayout,
} from '../internal/strided.js';
import {
  contiguousData,
  hostTensor,
  record,
  releaseTemporary,
  sameShape,
  sizeOf,
  type Tensor,
} from '../Tensor.js';

/**
 * `x` repeated to `shape` (x broadcastable to it; -1 keeps x's size there, as PyTorch's expand);
 * `x` itself when the shapes are equal.
 */
export function expand(x: Tensor, wanted: readonly number[]): Tensor {
  const lead = wanted.length - x.rank;
  const shape = wanted.map((n, d) => (n === -1 && d >= lead ? x.shape[d - lead] : n));
  check(
    shape.every((n) => Number.isInteger(n) && n >= 0),
    'invalid_shape',
    () =>
      `expand: [${wanted.join(', ')}] for [${x.shape.join(', ')}]: sizes must be integers >= 0, -1 only over x's own dimensions`,
  );
  check(sameShape(broadcastShapes(x.shape, shape, 'expand'), shape), 'shape_mismatch', () => {
    return `expand: [${x.shape.join(', ')}] does not broadcast to [${shape.join(', ')}]`;
  });
  if (sameShape(x.shape, shape)) return x;
  let out: Tensor;
  if (anyOnDevice([x])) out = deviceExpand(x, shape);
  else {
    const values = contiguousData(x);
    const data = pool.take(sizeOf(shape));
    gatherStrided(values, 0, shape, broadcastStrides(x.shape, shape), data);
    releaseTemporary(x, values);
    out = hostTensor(data, shape);
  }
  return record(out, 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

/** Whether a merged sumTo layout is (rows, columns) summed over its rows: a bias's gradient. */
function isRowSum(layout: MergedLayout): boolean {
  const [from, to] = layout.strides;
  return (
    layout.sizes.length === 2 && from[1] === 1 && from[0] === layout.sizes[1] && to[0] === 0 && to[1] === 1
  );
}

/** sums[c] += values[r * columns + c] for every row r: the common sumTo, in one tight loop. */
function sumRows(values: Float32Array, rows: number, columns: number, sums: Float64Array): void {
  for (let r = 0, base = 0; r < rows; r++, base += columns)
    for (let c = 0; c < columns; c++) sums[c] += values[base + c];
}

/** `x` summed down to `shape` (which broadcasts to x's shape); `x` itself when the shapes are equal. */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  check(sameShape(broadcastShapes(shape, x.shape, 'sumTo'), x.shape), 'shape_mismatch', () => {
    return `sumTo: [${shape.join(', ')}] does not broadcast to [${x.shape.join(', ')}]`;
  });
  if (sameShape(x.shape, shape)) return x;
  let out: Tensor;
  if (anyOnDevice([x])) out = deviceSumTo(x, shape);
  else {
    const values = contiguousData(x);
    const data = pool.take(sizeOf(shape));
    // many values add into each element: in float64, rounded once (internal/accumulate.ts)
    const sums = float64Accumulator(data.length);
    const layout = mergeLayout(x.shape, [contiguousStrides(x.shape), broadcastStrides(shape, x.shape)]);
    const last = layout.sizes.length - 1;
    const step = layout.strides[1][last];
    if (isRowSum(layout)) sumRows(values, layout.sizes[0], layout.sizes[1], sums);
    else
      forEachRun(layout, [0, 0], ([from, to], n) => {
        if (step === 0) {
          let sum = sums[to];
          for (let j = from; j < from + n; j++) sum += values[j];
          sums[to] = sum;
        } else for (let j = 0; j < n; j++) sums[to + j * step] += values[from + j];
      });
    for (let o = 0; o < data.length; o++) data[o] = sums[o];
    releaseTemporary(x, values);
    out = hostTensor(data, shape);
  }
  return record(out, 'sumTo', [x], (g) => [expand(g, x.shape)]);
}
