/**
 * Indexing and rearranging, PyTorch's semantics. Each op computes, on the host, the input
 * position of every output element and takes through that map (`takeAt`), so every gradient is
 * one rule: the output's gradient added back at those positions (`addAt`).
 *
 *   squeeze(x, axis?)          drops dimensions of size 1 (reshape)
 *   stack(xs, axis)            joins equal shapes along a new axis (unsqueeze, concat)
 *   split(x, size | sizes, axis), chunk(x, chunks, axis)   slices along an axis
 *   repeat(x, counts)          tiles x (torch.Tensor.repeat)
 *   flip(x, axes)              reverses the order along axes
 *   pad(x, pads, value)        constant padding, pads as F.pad: (left, right) of the last axis first
 *   gather(x, axis, index)     out[..i..] = x[..index[..i..]..]   (index no larger than x off the axis)
 *   scatter(x, axis, index, src)  x with src written at index (no accumulation, as torch.scatter;
 *                              with repeated indices the last write wins)
 *   indexSelect(x, axis, index)   the entries `index` (1-D) along axis
 *   topk(x, k, options), sort(x, options)   values and indices along an axis; NaN sorts as the
 *                              largest value, as PyTorch; ties keep their order (stable)
 *
 * Indices are f32 tensors holding integers (zbmd has no integer dtype yet); each is checked to be
 * an integer in [0, size of the axis). CPU only: on a device these ops refuse.
 */
import { anyOnDevice, unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { pool } from '../internal/pool.js';
import {
  contiguousData,
  contiguousStrides,
  hostTensor,
  indexValues,
  normalizeAxis,
  releaseTemporary,
  sameShape,
  sizeOf,
  type Tensor,
} from '../Tensor.js';
import { add } from './elementwise.js';
import { concat, reshape, slice, unsqueeze } from './shape.js';
import { takeAt } from './take.js';

function refuseDevice(op: string, inputs: readonly Tensor[]): void {
  if (anyOnDevice(inputs)) unavailableOnDevice(op, inputs);
}

/** Calls `visit(flat, index)` for every position of `shape` in row-major order (`index` is reused). */
function forEachIndex(
  shape: readonly number[],
  visit: (flat: number, index: readonly number[]) => void,
): void {
  const size = sizeOf(shape);
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < size; flat++) {
    visit(flat, index);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

/** The values of an index tensor, checked to be integers in [0, limit). */
function indicesOf(index: Tensor, limit: number, op: string): Float32Array {
  const values =
    index.dtype === 'i32'
      ? Float32Array.from(indexValues(index, op))
      : Float32Array.from(contiguousData(index));
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    check(Number.isInteger(v) && v >= 0 && v < limit, 'invalid_argument', () => {
      return `${op}: index ${v} (element ${i}) is not an integer in [0, ${limit})`;
    });
  }
  return values;
}

/** Drops `axis` (which must have size 1), or every dimension of size 1 when omitted. */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined)
    return reshape(
      x,
      x.shape.filter((n) => n !== 1),
    );
  const d = normalizeAxis(axis, x.rank, 'squeeze');
  // as PyTorch: squeezing an axis whose size is not 1 leaves the tensor as it is
  if (x.shape[d] !== 1) return x;
  return reshape(x, [...x.shape.slice(0, d), ...x.shape.slice(d + 1)]);
}

/** Joins tensors of one shape along a new axis `axis`. */
export function stack(inputs: readonly Tensor[], axis = 0): Tensor {
  check(inputs.length > 0, 'invalid_argument', () => 'stack: no tensors given');
  const first = inputs[0];
  for (const input of inputs) {
    check(sameShape(input.shape, first.shape), 'shape_mismatch', () => {
      return `stack: [${input.shape.join(', ')}] differs from [${first.shape.join(', ')}]; stack needs equal shapes`;
    });
  }
  const d = normalizeAxis(axis, first.rank + 1, 'stack');
  return concat(
    inputs.map((input) => unsqueeze(input, d)),
    d,
  );
}

/** Pieces of `size` along `axis` (the last may be smaller), or pieces of the given `sizes`. */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const d = normalizeAxis(axis, x.rank, 'split');
  const length = x.shape[d];
  let list: number[];
  if (typeof sizes === 'number') {
    check(Number.isInteger(sizes) && sizes > 0, 'invalid_argument', () => {
      return `split: the piece size must be a positive integer, got ${sizes}`;
    });
    list = [];
    for (let start = 0; start < length; start += sizes) list.push(Math.min(sizes, length - start));
  } else {
    list = [...sizes];
    const total = list.reduce((a, b) => a + b, 0);
    check(list.every((n) => Number.isInteger(n) && n >= 0) && total === length, 'invalid_argument', () => {
      return `split: sizes [${list.join(', ')}] must be integers >= 0 adding up to ${length} (axis ${axis})`;
    });
  }
  const pieces: Tensor[] = [];
  let start = 0;
  for (const n of list) {
    pieces.push(slice(x, d, start, start + n));
    start += n;
  }
  return pieces;
}

/** At most `chunks` pieces along `axis`, each ceil(size / chunks) long but the last (torch.chunk). */
export function chunk(x: Tensor, chunks: number, axis = 0): Tensor[] {
  check(Number.isInteger(chunks) && chunks > 0, 'invalid_argument', () => {
    return `chunk: the number of chunks must be a positive integer, got ${chunks}`;
  });
  const d = normalizeAxis(axis, x.rank, 'chunk');
  return split(x, Math.max(1, Math.ceil(x.shape[d] / chunks)), d);
}

/** x tiled `counts[d]` times along each dimension (counts may be longer than x's rank). */
export function repeat(x: Tensor, counts: readonly number[]): Tensor {
  refuseDevice('repeat', [x]);
  check(counts.length >= x.rank, 'invalid_argument', () => {
    return `repeat: ${counts.length} counts for a tensor of rank ${x.rank}; give at least one per dimension`;
  });
  check(
    counts.every((n) => Number.isInteger(n) && n >= 0),
    'invalid_argument',
    () => `repeat: counts [${counts.join(', ')}] must be integers >= 0`,
  );
  const lead = counts.length - x.rank;
  const inShape = [...new Array<number>(lead).fill(1), ...x.shape];
  const shape = inShape.map((n, d) => n * counts[d]);
  const strides = contiguousStrides(inShape);
  const map = new Int32Array(sizeOf(shape));
  forEachIndex(shape, (flat, index) => {
    let at = 0;
    for (let d = 0; d < shape.length; d++) at += (index[d] % inShape[d]) * strides[d];
    map[flat] = at;
  });
  return takeAt(x, map, shape, 0, 'repeat');
}

/** x reversed along `axes`. */
export function flip(x: Tensor, axes: number | readonly number[]): Tensor {
  refuseDevice('flip', [x]);
  const list = (typeof axes === 'number' ? [axes] : axes).map((a) => normalizeAxis(a, x.rank, 'flip'));
  const flipped = x.shape.map((_, d) => list.includes(d));
  const strides = contiguousStrides(x.shape);
  const map = new Int32Array(x.size);
  forEachIndex(x.shape, (flat, index) => {
    let at = 0;
    for (let d = 0; d < x.rank; d++) at += (flipped[d] ? x.shape[d] - 1 - index[d] : index[d]) * strides[d];
    map[flat] = at;
  });
  return takeAt(x, map, x.shape, 0, 'flip');
}

/**
 * Constant padding as F.pad: `pads` = [left, right] of the last axis, then of the one before...
 * (an even count, at most 2 * rank, each an integer >= 0: cropping is not supported).
 */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  refuseDevice('pad', [x]);
  check(pads.length % 2 === 0 && pads.length <= 2 * x.rank, 'invalid_argument', () => {
    return `pad: ${pads.length} pads for rank ${x.rank}; give an even count, at most ${2 * x.rank}`;
  });
  check(
    pads.every((n) => Number.isInteger(n) && n >= 0),
    'invalid_argument',
    () => `pad: pads [${pads.join(', ')}] must be integers >= 0 (negative pads, cropping, are not supported)`,
  );
  const before = new Array<number>(x.rank).fill(0);
  const shape = [...x.shape];
  for (let k = 0; k < pads.length / 2; k++) {
    const d = x.rank - 1 - k;
    before[d] = pads[2 * k];
    shape[d] += pads[2 * k] + pads[2 * k + 1];
  }
  const strides = contiguousStrides(x.shape);
  const map = new Int32Array(sizeOf(shape));
  forEachIndex(shape, (flat, index) => {
    let at = 0;
    for (let d = 0; d < x.rank; d++) {
      const source = index[d] - before[d];
      if (source < 0 || source >= x.shape[d]) {
        at = -1;
        break;
      }
      at += source * strides[d];
    }
    map[flat] = at;
  });
  return takeAt(x, map, shape, value, 'pad');
}

/** For gather and scatter: index's rank is x's, and off `axis` it is no larger than x. */
function checkAlongAxis(op: string, x: Tensor, index: Tensor, d: number): void {
  const fits = index.rank === x.rank && index.shape.every((n, k) => k === d || n <= x.shape[k]);
  check(fits, 'shape_mismatch', () => {
    return `${op}: index [${index.shape.join(', ')}] must have the rank of the input [${x.shape.join(', ')}] and be no larger off axis ${d}`;
  });
}

/** For each position of index, the position in x (contiguous) it names along axis d. */
function positionsAlongAxis(op: string, x: Tensor, index: Tensor, d: number): Int32Array {
  const indices = indicesOf(index, x.shape[d], op);
  const strides = contiguousStrides(x.shape);
  const map = new Int32Array(index.size);
  forEachIndex(index.shape, (flat, at) => {
    let position = 0;
    for (let k = 0; k < x.rank; k++) position += (k === d ? indices[flat] : at[k]) * strides[k];
    map[flat] = position;
  });
  return map;
}

/** out[i][j] = x[index[i][j]][j] (axis 0), x[i][index[i][j]] (axis 1)...: torch.gather. */
export function gather(x: Tensor, axis: number, index: Tensor): Tensor {
  refuseDevice('gather', [x, index]);
  const d = normalizeAxis(axis, x.rank, 'gather');
  checkAlongAxis('gather', x, index, d);
  return takeAt(x, positionsAlongAxis('gather', x, index, d), index.shape, 0, 'gather');
}

/**
 * x with `src` (a tensor at least index's shape, or a number) written where `index` points along
 * `axis`, as torch.scatter (no accumulation; with a repeated index the last write wins).
 * Gradients: x gets g where nothing was written, src gets g gathered at index.
 */
export function scatter(x: Tensor, axis: number, index: Tensor, src: Tensor | number): Tensor {
  refuseDevice('scatter', typeof src === 'number' ? [x, index] : [x, index, src]);
  const d = normalizeAxis(axis, x.rank, 'scatter');
  checkAlongAxis('scatter', x, index, d);
  const targets = positionsAlongAxis('scatter', x, index, d);
  const kept = new Int32Array(x.size);
  for (let i = 0; i < kept.length; i++) kept[i] = i;
  for (let i = 0; i < targets.length; i++) kept[targets[i]] = -1;
  if (typeof src === 'number') return takeAt(x, kept, x.shape, src, 'scatter');
  const fits = src.rank === index.rank && index.shape.every((n, k) => n <= src.shape[k]);
  check(fits, 'shape_mismatch', () => {
    return `scatter: src [${src.shape.join(', ')}] must have index's rank and be at least [${index.shape.join(', ')}]`;
  });
  // written[p]: the src position written at p (the last one), -1 where nothing was written
  const written = new Int32Array(x.size).fill(-1);
  const srcStrides = contiguousStrides(src.shape);
  forEachIndex(index.shape, (flat, at) => {
    let position = 0;
    for (let k = 0; k < src.rank; k++) position += at[k] * srcStrides[k];
    written[targets[flat]] = position;
  });
  return add(takeAt(x, kept, x.shape, 0, 'scatter'), takeAt(src, written, x.shape, 0, 'scatter'));
}

/** The entries `index` (a 1-D tensor of integers) of x along `axis`: torch.index_select. */
export function indexSelect(x: Tensor, axis: number, index: Tensor): Tensor {
  refuseDevice('indexSelect', [x, index]);
  const d = normalizeAxis(axis, x.rank, 'indexSelect');
  check(
    index.rank === 1,
    'invalid_shape',
    () => `indexSelect: index must be 1-D, got [${index.shape.join(', ')}]`,
  );
  const indices = indicesOf(index, x.shape[d], 'indexSelect');
  const shape = [...x.shape];
  shape[d] = indices.length;
  const strides = contiguousStrides(x.shape);
  const map = new Int32Array(sizeOf(shape));
  forEachIndex(shape, (flat, at) => {
    let position = 0;
    for (let k = 0; k < x.rank; k++) position += (k === d ? indices[at[k]] : at[k]) * strides[k];
    map[flat] = position;
  });
  return takeAt(x, map, shape, 0, 'indexSelect');
}

/** Values with their indices along the axis (indices: f32 integers, no gradient). */
export interface ValuesAndIndices {
  readonly values: Tensor;
  readonly indices: Tensor;
}

export interface TopkOptions {
  /** Default -1 (the last). */
  readonly axis?: number;
  /** The k largest (default) or the k smallest. */
  readonly largest?: boolean;
}

export interface SortOptions {
  /** Default -1 (the last). */
  readonly axis?: number;
  readonly descending?: boolean;
}

/** NaN is the largest value (PyTorch's order); equal values compare equal (the sort is stable). */
function ascending(a: number, b: number): number {
  const aNaN = Number.isNaN(a);
  const bNaN = Number.isNaN(b);
  if (aNaN || bNaN) return aNaN === bNaN ? 0 : aNaN ? 1 : -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The first `k` of each line along `d`, ordered; values taken through the map, indices alongside. */
function ordered(op: string, x: Tensor, d: number, k: number, descending: boolean): ValuesAndIndices {
  refuseDevice(op, [x]);
  const length = x.shape[d];
  const inner = sizeOf(x.shape.slice(d + 1));
  const outer = sizeOf(x.shape.slice(0, d));
  const values = contiguousData(x);
  const shape = [...x.shape];
  shape[d] = k;
  const map = new Int32Array(sizeOf(shape));
  const indices = pool.take(map.length);
  const line = new Array<number>(length);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const base = o * length * inner + j;
      for (let r = 0; r < length; r++) line[r] = r;
      line.sort((p, q) => {
        const order = ascending(values[base + p * inner], values[base + q * inner]);
        return descending ? -order : order;
      });
      for (let r = 0; r < k; r++) {
        const at = o * k * inner + r * inner + j;
        map[at] = base + line[r] * inner;
        indices[at] = line[r];
      }
    }
  }
  releaseTemporary(x, values);
  return { values: takeAt(x, map, shape, 0, op), indices: hostTensor(indices, shape) };
}

/** The k largest (or smallest) values along an axis, in order, with their indices. */
export function topk(x: Tensor, k: number, options: TopkOptions = {}): ValuesAndIndices {
  const d = normalizeAxis(options.axis ?? -1, x.rank, 'topk');
  check(Number.isInteger(k) && k >= 0 && k <= x.shape[d], 'invalid_argument', () => {
    return `topk: k = ${k} must be an integer in [0, ${x.shape[d]}] (the size of axis ${d})`;
  });
  return ordered('topk', x, d, k, options.largest ?? true);
}

/** The values along an axis in order (ascending by default, stable), with their indices. */
export function sort(x: Tensor, options: SortOptions = {}): ValuesAndIndices {
  const d = normalizeAxis(options.axis ?? -1, x.rank, 'sort');
  return ordered('sort', x, d, x.shape[d], options.descending ?? false);
}
