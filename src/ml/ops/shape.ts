/**
 * Shape ops. reshape (of a contiguous tensor), permute and transpose are views over the same
 * storage on the CPU (copies on a device, by one gather kernel); slice and concat copy. Gradients:
 *   reshape / contiguous: gx = reshape(g, x.shape) (same logical order)
 *   permute: gx = permute(g, inverse order)
 *   slice:   gx[slice] += g;   concat: each input gets its block of g (CPU only)
 */
import { anyOnDevice, deviceOf, devicePermute, unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { pool } from '../internal/pool.js';
import {
  contiguousData,
  contiguousStrides,
  gradBuffer,
  isContiguous,
  makeResult,
  makeView,
  normalizeAxis,
  record,
  share,
  sizeOf,
  type Tensor,
  validateShape,
} from '../Tensor.js';

function addInto(target: Float32Array, g: Float32Array): void {
  for (let i = 0; i < g.length; i++) target[i] += g[i];
}

/** Resolves one -1 in `shape` from the element count. */
function resolveShape(shape: readonly number[], size: number, context: string): number[] {
  const inferred = shape.indexOf(-1);
  check(inferred === shape.lastIndexOf(-1), 'invalid_shape', () => `${context}: at most one -1 is allowed`);
  const resolved = [...shape];
  if (inferred >= 0) {
    const known = sizeOf(shape.filter((_, d) => d !== inferred));
    check(known > 0 && size % known === 0, 'shape_mismatch', () => {
      return `${context}: cannot infer -1 in [${shape.join(', ')}] for ${size} elements`;
    });
    resolved[inferred] = size / known;
  }
  validateShape(resolved, context);
  check(sizeOf(resolved) === size, 'shape_mismatch', () => {
    return `${context}: [${shape.join(', ')}] does not hold ${size} elements`;
  });
  return resolved;
}

/** A contiguous copy (or the tensor itself when already contiguous). */
export function contiguous(input: Tensor): Tensor {
  if (input.onDevice || isContiguous(input)) return input;
  const values = contiguousData(input);
  return makeResult(values, [...input.shape], 'contiguous', [input], (g) => addInto(gradBuffer(input), g));
}

/** The same elements in a new shape (one dimension may be -1). A view when contiguous. */
export function reshape(input: Tensor, shape: readonly number[]): Tensor {
  const resolved = resolveShape(shape, input.size, 'reshape');
  const rule = (g: Tensor): Tensor[] => [reshape(g, input.shape)];
  if (anyOnDevice([input])) {
    deviceOf('reshape', [input]);
    return record(share(input, resolved), 'reshape', [input], rule);
  }
  const source = contiguous(input);
  return makeView(source, resolved, contiguousStrides(resolved), source.offset, 'reshape', rule);
}

/** Collapses dimensions `startAxis..endAxis` into one (default: all but the first). */
export function flatten(input: Tensor, startAxis = 1, endAxis = -1): Tensor {
  const start = normalizeAxis(startAxis, input.rank, 'flatten');
  const end = normalizeAxis(endAxis, input.rank, 'flatten');
  check(start <= end, 'invalid_axis', () => `flatten: start axis ${startAxis} is after end axis ${endAxis}`);
  const middle = sizeOf(input.shape.slice(start, end + 1));
  return reshape(input, [...input.shape.slice(0, start), middle, ...input.shape.slice(end + 1)]);
}

/** Inserts a dimension of size 1 at `axis`. */
export function unsqueeze(input: Tensor, axis: number): Tensor {
  const d = normalizeAxis(axis, input.rank + 1, 'unsqueeze');
  return reshape(input, [...input.shape.slice(0, d), 1, ...input.shape.slice(d)]);
}

/** Reorders dimensions: output dimension d is input dimension `order[d]`. A view. */
export function permute(input: Tensor, order: readonly number[]): Tensor {
  const rank = input.rank;
  check(
    order.length === rank,
    'invalid_axis',
    () => `permute: order has ${order.length} axes, tensor has ${rank}`,
  );
  const axes = order.map((axis) => normalizeAxis(axis, rank, 'permute'));
  check(
    new Set(axes).size === rank,
    'invalid_axis',
    () => `permute: [${order.join(', ')}] is not a permutation`,
  );
  const inverse = new Array<number>(rank);
  axes.forEach((d, i) => {
    inverse[d] = i;
  });
  const rule = (g: Tensor): Tensor[] => [permute(g, inverse)];
  if (anyOnDevice([input])) return record(devicePermute(input, axes), 'permute', [input], rule);
  const shape = axes.map((d) => input.shape[d]);
  const strides = axes.map((d) => input.strides[d]);
  return makeView(input, shape, strides, input.offset, 'permute', rule);
}

/** Swaps two dimensions. A view. */
export function transpose(input: Tensor, axisA = -2, axisB = -1): Tensor {
  const a = normalizeAxis(axisA, input.rank, 'transpose');
  const b = normalizeAxis(axisB, input.rank, 'transpose');
  const order = input.shape.map((_, d) => d);
  order[a] = b;
  order[b] = a;
  return permute(input, order);
}

/** Outer size, axis size, inner size around `axis`, for copying blocks along it. */
function blocks(shape: readonly number[], axis: number): { outer: number; inner: number } {
  return { outer: sizeOf(shape.slice(0, axis)), inner: sizeOf(shape.slice(axis + 1)) };
}

/** Elements `start` (inclusive) to `end` (exclusive) along `axis`; negative bounds count from the end. */
export function slice(
  input: Tensor,
  axis: number,
  start: number,
  end = input.shape[normalizeAxis(axis, input.rank, 'slice')],
): Tensor {
  if (input.device !== 'cpu') unavailableOnDevice('slice', [input]);
  const d = normalizeAxis(axis, input.rank, 'slice');
  const length = input.shape[d];
  const from = start < 0 ? start + length : start;
  const to = end < 0 ? end + length : end;
  check(
    Number.isInteger(from) && Number.isInteger(to) && from >= 0 && to <= length && from <= to,
    'invalid_argument',
    () => {
      return `slice: [${start}, ${end}) is out of range for axis ${axis} of size ${length}`;
    },
  );
  const shape = [...input.shape];
  shape[d] = to - from;
  const { outer, inner } = blocks(input.shape, d);
  const x = contiguousData(input);
  const out = pool.take(sizeOf(shape));
  const block = (to - from) * inner;
  for (let o = 0; o < outer; o++)
    out.set(x.subarray(o * length * inner + from * inner, o * length * inner + to * inner), o * block);
  if (x.buffer !== input.storage.buffer) pool.release(x);
  return makeResult(out, shape, 'slice', [input], (g) => {
    const gx = gradBuffer(input);
    for (let o = 0; o < outer; o++) {
      const base = o * length * inner + from * inner;
      for (let i = 0; i < block; i++) gx[base + i] += g[o * block + i];
    }
  });
}

/** Joins tensors along `axis`; all other dimensions must agree. */
export function concat(inputs: readonly Tensor[], axis = 0): Tensor {
  check(inputs.length > 0, 'invalid_argument', () => 'concat: no tensors given');
  if (inputs.some((input) => input.device !== 'cpu')) unavailableOnDevice('concat', inputs);
  const first = inputs[0];
  const d = normalizeAxis(axis, first.rank, 'concat');
  for (const input of inputs) {
    const fits = input.rank === first.rank && input.shape.every((n, k) => k === d || n === first.shape[k]);
    check(fits, 'shape_mismatch', () => {
      return `concat: [${input.shape.join(', ')}] does not match [${first.shape.join(', ')}] outside axis ${axis}`;
    });
  }
  const shape = [...first.shape];
  shape[d] = inputs.reduce((total, input) => total + input.shape[d], 0);
  const { outer, inner } = blocks(shape, d);
  const rowLength = shape[d] * inner;
  const out = pool.take(sizeOf(shape));
  let column = 0;
  const columns: number[] = [];
  for (const input of inputs) {
    const x = contiguousData(input);
    const block = input.shape[d] * inner;
    for (let o = 0; o < outer; o++) out.set(x.subarray(o * block, (o + 1) * block), o * rowLength + column);
    if (x.buffer !== input.storage.buffer) pool.release(x);
    columns.push(column);
    column += block;
  }
  return makeResult(out, shape, 'concat', inputs, (g) => {
    inputs.forEach((input, index) => {
      if (!input.requiresGrad) return;
      const gx = gradBuffer(input);
      const block = input.shape[d] * inner;
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < block; i++) gx[o * block + i] += g[o * rowLength + columns[index] + i];
      }
    });
  });
}
