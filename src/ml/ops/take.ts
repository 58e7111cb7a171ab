/**
 * The two index-map primitives the indexing ops are built from, each the other's gradient:
 *   takeAt(x, map, shape, fill): out[i] = x[map[i]] (fill where map[i] < 0);  gx = addAt(g, map, x.shape)
 *   addAt(g, map, shape):        out[map[i]] += g[i] (map[i] < 0 skipped);   gg = takeAt(gout, map, g.shape)
 * `map` holds positions in logical (row-major) order. min, flip, repeat, pad, gather, scatter,
 * indexSelect, topk and sort compute a map on the host and take through it, so their gradients
 * are these rules. CPU only: a device refuses them (`unavailableOnDevice`).
 */
import { anyOnDevice, unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { float64Accumulator } from '../internal/accumulate.js';
import { pool } from '../internal/pool.js';
import { contiguousData, hostTensor, record, releaseTemporary, sizeOf, type Tensor } from '../Tensor.js';

/** out[i] = x[map[i]], or `fill` where map[i] < 0; `op` names the op in errors and the graph. */
export function takeAt(
  x: Tensor,
  map: Int32Array,
  shape: readonly number[],
  fill = 0,
  op = 'takeAt',
): Tensor {
  if (anyOnDevice([x])) unavailableOnDevice(op, [x]);
  check(map.length === sizeOf(shape), 'shape_mismatch', () => {
    return `${op}: ${map.length} positions do not fill shape [${shape.join(', ')}]`;
  });
  const values = contiguousData(x);
  const out = pool.take(map.length);
  for (let i = 0; i < map.length; i++) {
    const j = map[i];
    out[i] = j < 0 ? fill : values[j];
  }
  releaseTemporary(x, values);
  return record(hostTensor(out, shape), op, [x], (g) => [addAt(g, map, x.shape)]);
}

/** A tensor of `shape` holding, at each position p, the sum of g[i] over the i with map[i] = p. */
export function addAt(g: Tensor, map: Int32Array, shape: readonly number[]): Tensor {
  if (anyOnDevice([g])) unavailableOnDevice('addAt', [g]);
  const values = contiguousData(g);
  const size = sizeOf(shape);
  // several positions may add into one element: in float64, rounded once, like every sum
  const totals = float64Accumulator(size);
  for (let i = 0; i < map.length; i++) if (map[i] >= 0) totals[map[i]] += values[i];
  const out = pool.take(size);
  for (let p = 0; p < size; p++) out[p] = totals[p];
  releaseTemporary(g, values);
  return record(hostTensor(out, shape), 'addAt', [g], (gg) => [takeAt(gg, map, g.shape)]);
}
