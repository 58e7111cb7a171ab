/**
 * Matrix products through `gemm` (OpenBLAS or the TypeScript fallback).
 *
 * matmul: a (..., M, K) @ b (..., K, N) -> (..., M, N), batch dimensions broadcast. An operand
 * that is a transposed view of a contiguous tensor goes to gemm with its transpose flag, so
 * `matmul(q, transpose(k))` copies nothing (the gradient rules rely on it).
 *   ga = sumTo(g @ b^T, a.shape)      gb = sumTo(a^T @ g, b.shape)   (b (K, N): rows of a and g merged)
 *
 * linear: x (..., in) @ weight (out, in)^T + bias (out), PyTorch's layout, fused:
 *   gx = g @ weight   gweight = g^T @ x   gbias = sum over rows of g
 */
import { anyOnDevice, deviceLinear, deviceMatmul } from '../deviceOps.js';
import { check } from '../errors.js';
import { matrixProduct } from '../internal/blas.js';
import { broadcastIndexMap, broadcastShapes } from '../internal/broadcast.js';
import { matrixOperand, product } from '../internal/matrixOperands.js';
import { pool } from '../internal/pool.js';
import {
  contiguousData,
  dispose,
  type Gradient,
  hostTensor,
  productGradient,
  record,
  releaseTemporary,
  sizeOf,
  type Tensor,
} from '../Tensor.js';
import { sumTo } from './broadcast.js';
import { reshape, transpose } from './shape.js';

function checkMatmul(a: Tensor, b: Tensor): void {
  check(a.rank >= 2 && b.rank >= 2, 'invalid_shape', () => {
    return `matmul: operands need rank >= 2, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`;
  });
  check(b.shape[b.rank - 2] === a.shape[a.rank - 1], 'shape_mismatch', () => {
    return `matmul: inner dimensions differ: [${a.shape.join(', ')}] @ [${b.shape.join(', ')}]`;
  });
}

/**
 * matmul's rule: the gradients of a (..., M, K) and b (..., K, N) for the output's gradient g.
 * With b (K, N) both are single products over all rows, which the engine accumulates in place.
 */
function matmulRule(a: Tensor, b: Tensor, g: Tensor): Gradient[] {
  const [inner, columns] = [b.shape[b.rank - 2], b.shape[b.rank - 1]];
  if (b.rank === 2) {
    const rowsOfG = reshape(g, [-1, columns]);
    // ga = g @ bᵀ, gb = aᵀ @ g: transposed operands are flags, not copies
    const ga: Gradient = a.requiresGrad ? productGradient(rowsOfG, b, [rowsOfG], { right: true }) : null;
    let gb: Gradient = null;
    if (b.requiresGrad) {
      const rowsOfA = reshape(a, [-1, inner]);
      gb = productGradient(rowsOfA, rowsOfG, [rowsOfA, rowsOfG], { left: true });
    }
    if (ga === null && gb === null) dispose(rowsOfG);
    return [ga, gb];
  }
  let ga: Tensor | null = null;
  let gb: Tensor | null = null;
  if (a.requiresGrad) {
    const bT = transpose(b);
    const product = matmul(g, bT);
    ga = sumTo(product, a.shape);
    if (ga !== product) dispose(product);
    dispose(bT);
  }
  if (b.requiresGrad) {
    const aT = transpose(a);
    const product = matmul(aT, g);
    gb = sumTo(product, b.shape);
    if (gb !== product) dispose(product);
    dispose(aT);
  }
  return [ga, gb];
}

/**
 * Batched, broadcasting matrix product, with PyTorch's 1-D cases: a vector on the left is a row
 * (its dimension dropped from the result), on the right a column; two vectors give their dot
 * product (a scalar).
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 1 || b.rank === 1) return matmulWithVector(a, b);
  checkMatmul(a, b);
  const out = anyOnDevice([a, b]) ? deviceMatmul(a, b) : matmulOnHost(a, b);
  return record(out, 'matmul', [a, b], (g) => matmulRule(a, b, g));
}

/** The 1-D cases through reshapes around the matrix product (their gradients are reshapes too). */
function matmulWithVector(a: Tensor, b: Tensor): Tensor {
  check(a.rank >= 1 && b.rank >= 1, 'invalid_shape', () => {
    return `matmul: operands need rank >= 1, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`;
  });
  const left = a.rank === 1 ? reshape(a, [1, a.shape[0]]) : a;
  const right = b.rank === 1 ? reshape(b, [b.shape[0], 1]) : b;
  const product = matmul(left, right);
  const shape = [...product.shape];
  if (b.rank === 1) shape.pop();
  if (a.rank === 1) shape.splice(shape.length - (b.rank === 1 ? 1 : 2), 1);
  return reshape(product, shape);
}

/** The dot product of two vectors of one length (a scalar tensor). */
export function dot(a: Tensor, b: Tensor): Tensor {
  check(a.rank === 1 && b.rank === 1 && a.shape[0] === b.shape[0], 'shape_mismatch', () => {
    return `dot: needs two 1-D tensors of one length, got [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`;
  });
  return matmul(a, b);
}

function matmulOnHost(a: Tensor, b: Tensor): Tensor {
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
  for (const buffer of scratch) pool.release(buffer);
  return hostTensor(out, [...batchShape, m, n]);
}

/**
 * linear's rule for x (rows, in), weight (out, in), bias (out) and g (rows, out), as products the
 * engine accumulates in place: gx = g @ weight, gweight = g^T @ x; gbias = g summed over rows.
 */
function linearRule(x: Tensor, weight: Tensor, bias: Tensor | null, g: Tensor): Gradient[] {
  const [outFeatures, inFeatures] = weight.shape;
  const rows = g.size / Math.max(1, outFeatures);
  const g2 = reshape(g, [rows, outFeatures]);
  const gx = x.requiresGrad ? productGradient(g2, weight, [g2]) : null;
  let gw: Gradient = null;
  if (weight.requiresGrad) {
    // gweight = gᵀ @ x, g read transposed (a view on the host, a flag of the device's matmul)
    const x2 = reshape(x, [rows, inFeatures]);
    gw = productGradient(g2, x2, [x2, g2], { left: true });
  }
  // The bias's sum over rows: in float64 on the host, compensated on a device (deviceReduce); a
  // float32 product with a row of ones drifts (off by 2.5e-3 over 2^18 rows on WebGPU).
  const gb: Gradient = bias?.requiresGrad ? sumTo(g2, [outFeatures]) : null;
  if (gx === null && gw === null) dispose(g2);
  return [gx, gw, gb];
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
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  const out = anyOnDevice(inputs) ? deviceLinear(x, weight, bias) : linearOnHost(x, weight, bias);
  return record(out, 'linear', inputs, (g) => linearRule(x, weight, bias, g));
}

function linearOnHost(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  const [outFeatures, inFeatures] = weight.shape;
  const rows = x.size / Math.max(1, inFeatures);
  const xv = contiguousData(x);
  const wv = contiguousData(weight);
  const out = pool.take(rows * outFeatures);
  if (bias !== null) {
    const bv = contiguousData(bias);
    for (let r = 0; r < rows; r++) out.set(bv, r * outFeatures);
  }
  // out (rows, out) = x (rows, in) @ weight^T (in, out) [+ bias rows]
  matrixProduct(false, true, rows, outFeatures, inFeatures, xv, wv, out, bias !== null);
  releaseTemporary(x, xv);
  releaseTemporary(weight, wv);
  return hostTensor(out, [...x.shape.slice(0, -1), outFeatures]);
}
