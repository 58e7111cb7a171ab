/**
 * How a tensor's matrices sit in memory as gemm wants them (a transposed view of a contiguous
 * tensor is gemm's transpose flag, not a copy), and the products over them: matmul's forward
 * and the engine's in-place accumulation of a product gradient.
 */

import { contiguousData, type Tensor } from '../Tensor.js';
import { gemm } from './blas.js';
import { pool } from './pool.js';

/** How an operand's matrices sit in memory, as gemm wants them. */
export interface MatrixOperand {
  readonly data: Float32Array;
  readonly offset: number;
  readonly transposed: boolean;
  readonly leadingDimension: number;
  readonly batchShape: readonly number[];
}

function batchDimensionsStandard(source: Tensor, matrixSize: number): boolean {
  let expected = matrixSize;
  for (let d = source.rank - 3; d >= 0; d--) {
    if (source.shape[d] !== 1 && source.strides[d] !== expected) return false;
    expected *= source.shape[d];
  }
  return true;
}

export function matrixOperand(source: Tensor, scratch: Float32Array[]): MatrixOperand {
  const rows = source.shape[source.rank - 2];
  const columns = source.shape[source.rank - 1];
  const rowStride = source.strides[source.rank - 2];
  const columnStride = source.strides[source.rank - 1];
  const batchShape = source.shape.slice(0, -2);
  const standard = batchDimensionsStandard(source, rows * columns);
  const data = source.data;
  if (standard && (columnStride === 1 || columns === 1) && (rowStride === columns || rows === 1)) {
    return {
      data,
      offset: source.offset,
      transposed: false,
      leadingDimension: Math.max(1, columns),
      batchShape,
    };
  }
  if (standard && (rowStride === 1 || rows === 1) && (columnStride === rows || columns === 1)) {
    return { data, offset: source.offset, transposed: true, leadingDimension: Math.max(1, rows), batchShape };
  }
  const copy = contiguousData(source);
  scratch.push(copy);
  return { data: copy, offset: 0, transposed: false, leadingDimension: Math.max(1, columns), batchShape };
}

/** c[cOffset..] (m, n) (+)= op(a) (m, k) @ op(b) (k, n), operands at the given offsets. */
export function product(
  m: number,
  n: number,
  k: number,
  a: MatrixOperand,
  aOffset: number,
  b: MatrixOperand,
  bOffset: number,
  c: Float32Array,
  cOffset: number,
  accumulate: boolean,
): void {
  const beta = accumulate ? 1 : 0;
  gemm(
    a.transposed,
    b.transposed,
    m,
    n,
    k,
    1,
    a.data,
    aOffset,
    a.leadingDimension,
    b.data,
    bOffset,
    b.leadingDimension,
    beta,
    c,
    cOffset,
    n,
  );
}

export function flipped(operand: MatrixOperand): MatrixOperand {
  return { ...operand, transposed: !operand.transposed };
}

/**
 * target (M, N) += left (M, K) @ right (K, N), host tensors of rank 2 (views with gemm's layout
 * are read in place): the engine's accumulation of a `ProductGradient` into an existing gradient.
 */
export function accumulateProduct(target: Float32Array, left: Tensor, right: Tensor): void {
  const scratch: Float32Array[] = [];
  const a = matrixOperand(left, scratch);
  const b = matrixOperand(right, scratch);
  const [m, k] = left.shape;
  const n = right.shape[1];
  product(m, n, k, a, a.offset, b, b.offset, target, 0, true);
  for (const buffer of scratch) pool.release(buffer);
}
