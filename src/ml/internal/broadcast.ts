/** Broadcasting (NumPy rules): shapes align on the right; a dimension of 1 stretches. */
import { TensorError } from '../errors.js';
import { broadcastStrides } from './strided.js';

export function broadcastShapes(a: readonly number[], b: readonly number[], context: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new TensorError(
        'shape_mismatch',
        `${context}: shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast (dimension ${i}: ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/**
 * For each position of `outShape` (row-major), the index into a contiguous tensor of `inShape`
 * that broadcasts to it; null when the shapes are equal (the identity).
 */
export function broadcastIndexMap(
  inShape: readonly number[],
  outShape: readonly number[],
): Int32Array | null {
  const rank = outShape.length;
  let equal = inShape.length === rank;
  for (let d = 0; equal && d < rank; d++) equal = inShape[d] === outShape[d];
  if (equal) return null;
  return stridedIndexMap(outShape, broadcastStrides(inShape, outShape));
}

/**
 * For each position of `shape` (row-major), the offset `sum(index[d] * strides[d])`: walks the
 * shape with an odometer instead of dividing each flat index. Broadcasting (stride 0 on a
 * stretched axis) and reductions (stride 0 on a reduced axis) both use it.
 */
export function stridedIndexMap(shape: readonly number[], strides: readonly number[]): Int32Array {
  const rank = shape.length;
  let size = 1;
  for (const dimension of shape) size *= dimension;
  const map = new Int32Array(size);
  const counter = new Array<number>(rank).fill(0);
  let position = 0;
  for (let i = 0; i < size; i++) {
    map[i] = position;
    for (let d = rank - 1; d >= 0; d--) {
      counter[d]++;
      position += strides[d];
      if (counter[d] < shape[d]) break;
      position -= strides[d] * shape[d];
      counter[d] = 0;
    }
  }
  return map;
}
