/**
 * Loops over strided layouts run by run instead of through a per-element index map.
 *
 * A layout is a shape and, for each operand, a stride per dimension (0 on a dimension the
 * operand is broadcast over, or one it is summed over). Adjacent dimensions merge where every
 * operand steps through them as through one (stride[d] = stride[d+1] * size[d+1], which holds
 * for 0 too), and dimensions of size 1 drop out. What is left is walked by an odometer over
 * the outer merged dimensions, and each innermost run is one tight loop with a constant stride
 * per operand (1, 0 or a view's step). A bias over [B, T, D] is B*T runs of D; a transpose's
 * copy is runs along its last dimension; a sum over the leading axes is runs that add into
 * one row.
 */

/** A layout after merging: `sizes` outermost first (at least one entry), `strides[k]` per operand. */
export interface MergedLayout {
  readonly sizes: number[];
  readonly strides: number[][];
}

/**
 * Merges `shape`'s dimensions for operands with the given `strides` (one array per operand,
 * each as long as shape): size-1 dimensions are dropped and mergeable neighbours joined.
 */
export function mergeLayout(shape: readonly number[], strides: readonly (readonly number[])[]): MergedLayout {
  const sizes: number[] = [];
  const merged: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    const size = shape[d];
    if (size === 1) continue;
    const last = sizes.length - 1;
    const joins = last >= 0 && strides.every((operand, k) => merged[k][last] === operand[d] * size);
    if (joins) {
      sizes[last] *= size;
      for (let k = 0; k < strides.length; k++) merged[k][last] = strides[k][d];
    } else {
      sizes.push(size);
      for (let k = 0; k < strides.length; k++) merged[k].push(strides[k][d]);
    }
  }
  if (sizes.length === 0) {
    sizes.push(1);
    for (const operand of merged) operand.push(0);
  }
  return { sizes, strides: merged };
}

/** Row-major strides of a contiguous tensor of `shape`. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = stride;
    stride *= shape[d];
  }
  return strides;
}

/**
 * The strides, over `outShape`'s dimensions, with which a contiguous tensor of `inShape` (which
 * broadcasts to outShape, aligned on the right) is read: 0 where it is stretched or absent.
 */
export function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const rank = outShape.length;
  const strides = new Array<number>(rank).fill(0);
  let stride = 1;
  for (let d = inShape.length - 1; d >= 0; d--) {
    strides[rank - inShape.length + d] = inShape[d] === 1 ? 0 : stride;
    stride *= inShape[d];
  }
  return strides;
}

/**
 * Walks the merged layout's runs: for each run, `visit(offsets, length)` with the operands'
 * start offsets (the `bases` plus the run's position) and the innermost size. `offsets` is one
 * array reused for every run.
 */
export function forEachRun(
  layout: MergedLayout,
  bases: readonly number[],
  visit: (offsets: number[], length: number) => void,
): void {
  const { sizes, strides } = layout;
  const outer = sizes.length - 1;
  const length = sizes[outer];
  const operands = strides.length;
  const offsets = bases.slice();
  if (outer === 0) {
    visit(offsets, length);
    return;
  }
  if (outer === 1) {
    // one outer dimension (a bias over rows, a sum over the leading axes): no odometer
    const size = sizes[0];
    for (let run = 0; run < size; run++) {
      visit(offsets, length);
      for (let k = 0; k < operands; k++) offsets[k] += strides[k][0];
    }
    return;
  }
  const counter = new Array<number>(outer).fill(0);
  let runs = 1;
  for (let d = 0; d < outer; d++) runs *= sizes[d];
  for (let run = 0; run < runs; run++) {
    visit(offsets, length);
    for (let d = outer - 1; d >= 0; d--) {
      counter[d]++;
      for (let k = 0; k < operands; k++) offsets[k] += strides[k][d];
      if (counter[d] < sizes[d]) break;
      for (let k = 0; k < operands; k++) offsets[k] -= strides[k][d] * sizes[d];
      counter[d] = 0;
    }
  }
}

/**
 * Copies the elements of a strided view (`source` from `offset`, `shape`, `strides`) into
 * `out` in row-major order. Works for any typed array (f32 data, f16/bf16/i8 storage).
 */
export function gatherStrided<T extends { [index: number]: number }>(
  source: T,
  offset: number,
  shape: readonly number[],
  strides: readonly number[],
  out: T,
): void {
  const layout = mergeLayout(shape, [contiguousStrides(shape), strides]);
  const step = layout.strides[1][layout.sizes.length - 1];
  forEachRun(layout, [0, offset], (at, length) => {
    const to = at[0];
    let from = at[1];
    if (step === 1) for (let j = 0; j < length; j++) out[to + j] = source[from + j];
    else if (step === 0) {
      const value = source[from];
      for (let j = 0; j < length; j++) out[to + j] = value;
    } else for (let j = 0; j < length; j++, from += step) out[to + j] = source[from];
  });
}
