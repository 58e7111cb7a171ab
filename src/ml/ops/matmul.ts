/**
 * Matrix products through `gemm` (OpenBLAS or the TypeScript fallback).
 *
 * matmul: a (..., M, K) @ b (..., K, N) -> (..., M, N), batch dimensions broadcast. An operand
 * that is a transposed view of a contiguous tensor goes to gemm with its transpose flag, so
 * `matmul(q, transpose(k))` copies nothing.
 *   ga += g @ b^T      gb += a^T @ g      (gemm with beta = 1 accumulates in place)
 *
 * linear: x (..., in) @ weight (out, in)^T + bias (out), PyTorch's layout, fused:
 *   gx += g @ weight   gweight += g^T @ x   gbias += sum over rows of g
 */
import { runOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { addAccumulated, float64Accumulator } from '../internal/accumulate.js';
import { gemm, matrixProduct } from '../internal/blas.js';
import { broadcastIndexMap, broadcastShapes } from '../internal/broadcast.js';
import { pool } from '../internal/pool.js';
import { contiguousData, gradBuffer, makeResult, sizeOf, type Tensor } from '../Tensor.js';

/** How an operand's matrices sit in memory, as gemm wants them. */
interface MatrixOperand {
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

function matrixOperand(source: Tensor, scratch: Float32Array[]): MatrixOperand {
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
function product(
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

function flipped(operand: MatrixOperand): MatrixOperand {
  return { ...operand, transposed: !operand.transposed };
}

function checkMatmul(a: Tensor, b: Tensor): void {
  check(a.rank >= 2 && b.rank >= 2, 'invalid_shape', () => {
    return `matmul: operands need rank >= 2, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`;
  });
  check(b.shape[b.rank - 2] === a.shape[a.rank - 1], 'shape_mismatch', () => {
    return `matmul: inner dimensions differ: [${a.shape.join(', ')}] @ [${b.shape.join(', ')}]`;
  });
}

/** Batched, broadcasting matrix product; both operands of rank >= 2. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkMatmul(a, b);
  if (a.device !== 'cpu' || b.device !== 'cpu') return runOnDevice('matmul', a, b);
  const m = a.shape[a.rank - 2];
  const k = a.shape[a.rank - 1];
  const n = b.shape[b.rank - 1];
  const scratch: Float32Array[] = [];
  const left = matrixOperand(a, scratch);
  const right = matrixOperand(b, scratch);
  const batchShape = broadcastShapes(left.batchShape, right.batchShape, 'matmul');
  const batches = sizeOf(batchShape);
  const leftMap = broadcastIndexMap(left.batchShape, batchShape);
  const rightMap = broadcastIndexMap(right.batchShape, batchShape);
  const aIndex = (i: number): number => (leftMap ? leftMap[i] : i);
  const bIndex = (i: number): number => (rightMap ? rightMap[i] : i);
  const out = pool.take(batches * m * n);
  for (let i = 0; i < batches; i++) {
    product(
      m,
      n,
      k,
      left,
      left.offset + aIndex(i) * m * k,
      right,
      right.offset + bIndex(i) * k * n,
      out,
      i * m * n,
      false,
    );
  }
  const backward = (g: Float32Array): void => {
    const gradient: MatrixOperand = {
      data: g,
      offset: 0,
      transposed: false,
      leadingDimension: n,
      batchShape,
    };
    const ga = a.requiresGrad ? gradBuffer(a) : null;
    const gb = b.requiresGrad ? gradBuffer(b) : null;
    for (let i = 0; i < batches; i++) {
      const aOffset = left.offset + aIndex(i) * m * k;
      const bOffset = right.offset + bIndex(i) * k * n;
      // ga (M, K) += g (M, N) @ op(b)^T;  gb (K, N) += op(a)^T @ g (M, N)
      if (ga) product(m, k, n, gradient, i * m * n, flipped(right), bOffset, ga, aIndex(i) * m * k, true);
      if (gb) product(k, n, m, flipped(left), aOffset, gradient, i * m * n, gb, bIndex(i) * k * n, true);
    }
  };
  return makeResult(out, [...batchShape, m, n], 'matmul', [a, b], backward, scratch);
}

/** x (..., in) @ weight (out, in)^T + bias (out): a dense layer in one gemm. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  check(
    weight.rank === 2,
    'invalid_shape',
    () => `linear: weight must be (out, in), got [${weight.shape.join(', ')}]`,
  );
  const [outFeatures, inFeatures] = weight.shape;
  check(x.rank >= 1 && x.shape[x.rank - 1] === inFeatures, 'shape_mismatch', () => {
    return `linear: input [${x.shape.join(', ')}] does not end in ${inFeatures} features (weight [${weight.shape.join(', ')}])`;
  });
  check(bias === null || (bias.rank === 1 && bias.shape[0] === outFeatures), 'shape_mismatch', () => {
    return `linear: bias must be (${outFeatures}), got [${bias?.shape.join(', ')}]`;
  });
  if (x.device !== 'cpu' || weight.device !== 'cpu' || (bias !== null && bias.device !== 'cpu'))
    return runOnDevice('linear', x, weight, bias);
  const rows = x.size / Math.max(1, inFeatures);
  const scratch: Float32Array[] = [];
  const xv = contiguousData(x);
  if (xv.buffer !== x.storage.buffer) scratch.push(xv);
  const wv = contiguousData(weight);
  if (wv.buffer !== weight.storage.buffer) scratch.push(wv);
  const out = pool.take(rows * outFeatures);
  if (bias !== null) {
    const bv = contiguousData(bias);
    for (let r = 0; r < rows; r++) out.set(bv, r * outFeatures);
  }
  // out (rows, out) = x (rows, in) @ weight^T (in, out) [+ bias rows]
  matrixProduct(false, true, rows, outFeatures, inFeatures, xv, wv, out, bias !== null);
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  const backward = (g: Float32Array): void => {
    // gx (rows, in) += g (rows, out) @ weight (out, in)
    if (x.requiresGrad)
      matrixProduct(false, false, rows, inFeatures, outFeatures, g, wv, gradBuffer(x), true);
    // gweight (out, in) += g^T (out, rows) @ x (rows, in)
    if (weight.requiresGrad)
      matrixProduct(true, false, outFeatures, inFeatures, rows, g, xv, gradBuffer(weight), true);
    if (bias?.requiresGrad) {
      // The sum over rows in float64, added once (internal/accumulate.ts).
      const sums = float64Accumulator(outFeatures);
      for (let r = 0; r < rows; r++) {
        const row = r * outFeatures;
        for (let o = 0; o < outFeatures; o++) sums[o] += g[row + o];
      }
      addAccumulated(gradBuffer(bias), sums);
    }
  };
  return makeResult(out, [...x.shape.slice(0, -1), outFeatures], 'linear', inputs, backward, scratch);
}
