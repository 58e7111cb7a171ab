/**
 * Broadcasting and its dual, each the other's gradient:
 *   expand(x, shape): x repeated to `shape` (NumPy broadcasting);  gx = sumTo(g, x.shape)
 *   sumTo(x, shape):  x summed over the dimensions `shape` broadcasts;  gx = expand(g, x.shape)
 * The binary ops' rules use `sumTo` to bring a gradient back to a broadcast operand's shape.
 */
import { anyOnDevice, deviceExpand, deviceSumTo } from '../deviceOps.js';
import { check } from '../errors.js';
import { float64Accumulator } from '../internal/accumulate.js';
import { broadcastIndexMap, broadcastShapes } from '../internal/broadcast.js';
import { pool } from '../internal/pool.js';
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
    const map = broadcastIndexMap(x.shape, shape);
    const values = contiguousData(x);
    const data = pool.take(sizeOf(shape));
    if (map === null) data.set(values);
    else for (let i = 0; i < data.length; i++) data[i] = values[map[i]];
    releaseTemporary(x, values);
    out = hostTensor(data, shape);
  }
  return record(out, 'expand', [x], (g) => [sumTo(g, x.shape)]);
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
    const map = broadcastIndexMap(shape, x.shape);
    const values = contiguousData(x);
    const data = pool.take(sizeOf(shape));
    if (map === null) data.set(values);
    else {
      // many values add into each element: in float64, rounded once (internal/accumulate.ts)
      const sums = float64Accumulator(data.length);
      for (let i = 0; i < values.length; i++) sums[map[i]] += values[i];
      for (let o = 0; o < data.length; o++) data[o] = sums[o];
    }
    releaseTemporary(x, values);
    out = hostTensor(data, shape);
  }
  return record(out, 'sumTo', [x], (g) => [expand(g, x.shape)]);
}
