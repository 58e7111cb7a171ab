/**
 * Ops specific to neural networks: embedding lookup, layer normalisation, seeded dropout and
 * scaled dot-product attention.
 *
 * embedding: weight (V, D), indices (...) -> (..., D);  gweight[index] += g row (on a device:
 *   the indexRows kernels, the lookups grouped by row for the gradient)
 * layerNorm: x (..., C), gamma (C), beta (C);  with xhat = (x - mean) * rstd:
 *   gbeta = rows of g summed;  ggamma = rows of g * xhat summed;
 *   gx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = g * gamma
 *   (llm.c's layernorm_backward, written with ops so it runs on devices too)
 * dropout: y = x * mask / (1 - p);  gx += g * mask / (1 - p) (on a device: the host's mask uploaded)
 */

import type { Random } from '../../actor/Random.js';
import {
  anyOnDevice,
  deviceIndexRows,
  deviceIndexRowsBackward,
  deviceLayerNorm,
  deviceUpload,
  unavailableOnDevice,
} from '../deviceOps.js';
import { check } from '../errors.js';
import { pool } from '../internal/pool.js';
import {
  contiguousData,
  dispose,
  full,
  gradBuffer,
  hostTensor,
  indexValues,
  makeResult,
  noGrad,
  record,
  releaseTemporary,
  sameShape,
  type Tensor,
} from '../Tensor.js';
import { sumTo } from './broadcast.js';
import { add, div, mul, sqrt, sub } from './elementwise.js';
import { matmul } from './matmul.js';
import { mean } from './reduce.js';
import { reshape, transpose } from './shape.js';
import { softmax } from './softmax.js';

/**
 * Rows of `weight` (V, D) selected by integer `indices`; output shape (...indexShape, D).
 * `paddingIdx`: the row at that index gets no gradient (PyTorch's `padding_idx`).
 */
export function embedding(
  weight: Tensor,
  indices: Int32Array | Tensor,
  indexShape?: readonly number[],
  options: { readonly paddingIdx?: number } = {},
): Tensor {
  if (!(indices instanceof Int32Array) && indices.device !== 'cpu')
    unavailableOnDevice('embedding with indices on a device', [indices]);
  check(
    weight.rank === 2,
    'invalid_shape',
    () => `embedding: weight must be (V, D), got [${weight.shape.join(', ')}]`,
  );
  const [vocabulary, dimension] = weight.shape;
  const ids =
    indices instanceof Int32Array
      ? indices
      : indices.dtype === 'i32'
        ? indexValues(indices, 'embedding')
        : Int32Array.from(contiguousData(indices));
  const shape = indexShape ?? (indices instanceof Int32Array ? [indices.length] : [...indices.shape]);
  check(shape.reduce((a, b) => a * b, 1) === ids.length, 'shape_mismatch', () => {
    return `embedding: index shape [${shape.join(', ')}] does not hold ${ids.length} indices`;
  });
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    check(
      Number.isInteger(id) && id >= 0 && id < vocabulary,
      'invalid_argument',
      () => `embedding: index ${id} at ${i} is not in [0, ${vocabulary})`,
    );
  }
  if (weight.device !== 'cpu') return embeddingOnDevice(weight, ids, shape, options.paddingIdx);
  const w = contiguousData(weight);
  const out = pool.take(ids.length * dimension);
  for (let i = 0; i < ids.length; i++)
    out.set(w.subarray(ids[i] * dimension, (ids[i] + 1) * dimension), i * dimension);
  releaseTemporary(weight, w);
  return makeResult(out, [...shape, dimension], 'embedding', [weight], (g) => {
    const gw = gradBuffer(weight);
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === options.paddingIdx) continue;
      const row = ids[i] * dimension;
      for (let d = 0; d < dimension; d++) gw[row + d] += g[i * dimension + d];
    }
  });
}

/**
 * embedding on a device: one `indexRows` launch with the ids uploaded (as f32: row numbers are
 * exact up to 2^24). Its rule is one `indexRowsBackward` launch: the lookups grouped by row on
 * the host (a counting sort of the ids, leaving out `paddingIdx`), so that each gradient element
 * is one thread's sum, in the order the host adds them.
 */
function embeddingOnDevice(
  weight: Tensor,
  ids: Int32Array,
  shape: readonly number[],
  paddingIdx: number | undefined,
): Tensor {
  const [rows, dimension] = weight.shape;
  check(ids.length > 0, 'invalid_shape', () => {
    return 'embedding: no indices to look up on a device (an empty tensor stays on the CPU)';
  });
  const out = deviceIndexRows(weight, Float32Array.from(ids), [...shape, dimension]);
  return record(out, 'embedding', [weight], (g) => {
    if (!weight.requiresGrad) return [null];
    const starts = new Float32Array(rows + 1);
    for (const id of ids) if (id !== paddingIdx) starts[id + 1]++;
    for (let r = 0; r < rows; r++) starts[r + 1] += starts[r];
    const next = starts.slice(0, rows);
    const positions = new Float32Array(ids.length);
    ids.forEach((id, position) => {
      if (id !== paddingIdx) positions[next[id]++] = position;
    });
    return [deviceIndexRowsBackward(g, positions, starts, weight.shape)];
  });
}

/** Normalises the last dimension to zero mean and unit variance, then scales and shifts. */
export function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor, epsilon = 1e-5): Tensor {
  const channels = x.shape[x.rank - 1];
  check(x.rank >= 1, 'invalid_shape', () => 'layerNorm: input must have rank >= 1');
  check(gamma.size === channels && beta.size === channels, 'shape_mismatch', () => {
    return `layerNorm: gamma and beta must have ${channels} elements, got ${gamma.size} and ${beta.size}`;
  });
  const inputs = [x, gamma, beta];
  const { out, normalized, inverseDeviation } =
    x.device !== 'cpu' || gamma.device !== 'cpu' || beta.device !== 'cpu'
      ? layerNormOnDevice(x, gamma, beta, epsilon)
      : layerNormOnHost(x, gamma, beta, epsilon);
  const rule = (g: Tensor): (Tensor | null)[] =>
    layerNormRule(x, gamma, beta, normalized, inverseDeviation, g);
  return record(out, 'layerNorm', inputs, rule, [normalized, inverseDeviation]);
}

interface LayerNormParts {
  readonly out: Tensor;
  /** xhat = (x - mean) * rstd, x's shape. */
  readonly normalized: Tensor;
  /** rstd per row, (..., 1). */
  readonly inverseDeviation: Tensor;
}

function layerNormOnHost(x: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): LayerNormParts {
  const channels = x.shape[x.rank - 1];
  const rows = x.size / Math.max(1, channels);
  const xv = contiguousData(x);
  const gv = contiguousData(gamma);
  const bv = contiguousData(beta);
  const normalized = pool.take(x.size);
  const inverseDeviation = pool.take(rows);
  const out = pool.take(x.size);
  for (let r = 0; r < rows; r++) {
    const base = r * channels;
    let total = 0;
    for (let c = 0; c < channels; c++) total += xv[base + c];
    const average = total / channels;
    let variance = 0;
    for (let c = 0; c < channels; c++) variance += (xv[base + c] - average) ** 2;
    const rstd = 1 / Math.sqrt(variance / channels + epsilon);
    inverseDeviation[r] = rstd;
    for (let c = 0; c < channels; c++) {
      const value = (xv[base + c] - average) * rstd;
      normalized[base + c] = value;
      out[base + c] = value * gv[c] + bv[c];
    }
  }
  releaseTemporary(x, xv);
  releaseTemporary(gamma, gv);
  releaseTemporary(beta, bv);
  return {
    out: hostTensor(out, x.shape),
    normalized: hostTensor(normalized, x.shape),
    inverseDeviation: hostTensor(inverseDeviation, [...x.shape.slice(0, -1), 1]),
  };
}

/** The layernorm kernel's output, and xhat and rstd (for the rule) from ops on the device. */
function layerNormOnDevice(x: Tensor, gamma: Tensor, beta: Tensor, epsilon: number): LayerNormParts {
  const out = deviceLayerNorm(x, gamma, beta, epsilon);
  return noGrad(() => {
    const average = mean(x, -1, { keepDims: true });
    const centred = sub(x, average);
    const squares = mul(centred, centred);
    const variance = mean(squares, -1, { keepDims: true });
    const shifted = add(variance, epsilon);
    const deviation = sqrt(shifted);
    const inverseDeviation = div(1, deviation);
    const normalized = mul(centred, inverseDeviation);
    for (const tensor of [average, centred, squares, variance, shifted, deviation]) dispose(tensor);
    return { out, normalized, inverseDeviation };
  });
}

// g, xhat: (..., C); rstd: (..., 1); gamma, beta: C elements
function layerNormRule(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  xhat: Tensor,
  rstd: Tensor,
  g: Tensor,
): (Tensor | null)[] {
  const channels = x.shape[x.rank - 1];
  if (!anyOnDevice([g, gamma, xhat])) return layerNormRuleOnHost(x, gamma, beta, xhat, rstd, g);
  // On the device from here. values (..., C) summed over the rows, in the shape of `like`
  // (C elements); may be values itself. (A device reshape holds its own reference.)
  const summed = (values: Tensor, like: Tensor): Tensor => {
    const rowsSummed = sumTo(values, [channels]);
    if (sameShape(like.shape, rowsSummed.shape)) return rowsSummed;
    const out = reshape(rowsSummed, like.shape);
    if (rowsSummed !== values) dispose(rowsSummed);
    return out;
  };
  const gb = beta.requiresGrad ? summed(g, beta) : null;
  let gg: Tensor | null = null;
  if (gamma.requiresGrad) {
    const product = mul(g, xhat);
    gg = summed(product, gamma);
    if (gg !== product) dispose(product);
  }
  let gx: Tensor | null = null;
  if (x.requiresGrad) {
    const scale = reshape(gamma, [channels]);
    const dxhat = mul(g, scale);
    const meanDx = mean(dxhat, -1, { keepDims: true });
    const product = mul(dxhat, xhat);
    const meanDxX = mean(product, -1, { keepDims: true });
    const centred = sub(dxhat, meanDx);
    const projected = mul(xhat, meanDxX);
    const difference = sub(centred, projected);
    gx = mul(difference, rstd);
    for (const tensor of [scale, dxhat, meanDx, product, meanDxX, centred, projected, difference])
      dispose(tensor);
  }
  return [gx, gg, gb];
}

/**
 * layerNormRule's formula on the CPU in one pass per row (the composition of ops above makes
 * nine passes over (..., C) and their temporaries): the same gradients, the row sums of gbeta
 * and ggamma in float64. tests/ml/deviceGrad.test.ts compares the two.
 */
function layerNormRuleOnHost(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  xhat: Tensor,
  rstd: Tensor,
  g: Tensor,
): (Tensor | null)[] {
  const channels = x.shape[x.rank - 1];
  const rows = x.size / Math.max(1, channels);
  const gv = contiguousData(g);
  const xh = contiguousData(xhat);
  const rs = contiguousData(rstd);
  const scale = contiguousData(gamma);
  const betaSums = beta.requiresGrad ? new Float64Array(channels) : null;
  const gammaSums = gamma.requiresGrad ? new Float64Array(channels) : null;
  const gx = x.requiresGrad ? pool.take(x.size) : null;
  for (let r = 0; r < rows; r++) {
    const base = r * channels;
    let meanDx = 0;
    let meanDxX = 0;
    for (let c = 0; c < channels; c++) {
      const gc = gv[base + c];
      const xc = xh[base + c];
      if (betaSums !== null) betaSums[c] += gc;
      if (gammaSums !== null) gammaSums[c] += gc * xc;
      const dxhat = gc * scale[c];
      meanDx += dxhat;
      meanDxX += dxhat * xc;
    }
    if (gx === null) continue;
    meanDx /= channels;
    meanDxX /= channels;
    const inverse = rs[r];
    for (let c = 0; c < channels; c++) {
      const xc = xh[base + c];
      gx[base + c] = (gv[base + c] * scale[c] - meanDx - xc * meanDxX) * inverse;
    }
  }
  for (const [tensor, values] of [
    [g, gv],
    [xhat, xh],
    [rstd, rs],
    [gamma, scale],
  ] as const)
    releaseTemporary(tensor, values);
  const rowSums = (sums: Float64Array | null, like: Tensor): Tensor | null =>
    sums === null ? null : hostTensor(Float32Array.from(sums), like.shape);
  return [gx === null ? null : hostTensor(gx, x.shape), rowSums(gammaSums, gamma), rowSums(betaSums, beta)];
}

/** Zeroes each element with probability `p` (from `random`) and scales the rest by 1/(1-p). */
export function dropout(x: Tensor, p: number, random: Random, training = true): Tensor {
  check(p >= 0 && p < 1, 'invalid_argument', () => `dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x;
  const scale = 1 / (1 - p);
  if (x.device !== 'cpu') {
    // The same draws as on the CPU, in the same order, made on the host and uploaded: x * mask,
    // whose gradient (g * mask) is mul's.
    const mask = new Float32Array(x.size);
    for (let i = 0; i < mask.length; i++) mask[i] = random.next() < p ? 0 : scale;
    return mul(x, deviceUpload(x.device, mask, x.shape));
  }
  const xv = contiguousData(x);
  const mask = pool.take(x.size);
  const out = pool.take(x.size);
  for (let i = 0; i < mask.length; i++) {
    mask[i] = random.next() < p ? 0 : scale;
    out[i] = xv[i] * mask[i];
  }
  releaseTemporary(x, xv);
  return makeResult(
    out,
    [...x.shape],
    'dropout',
    [x],
    (g) => {
      const gx = gradBuffer(x);
      for (let i = 0; i < g.length; i++) gx[i] += g[i] * mask[i];
    },
    [mask],
  );
}

const causalMasks = new Map<string, Tensor>();

/** (T, S) additive mask: 0 where key j <= query i + (S - T), -Infinity after. Cached by size. */
export function causalMask(queries: number, keys: number): Tensor {
  const key = `${queries}x${keys}`;
  let mask = causalMasks.get(key);
  if (mask === undefined) {
    mask = full([queries, keys], 0);
    const shift = keys - queries;
    for (let i = 0; i < queries; i++)
      for (let j = i + shift + 1; j < keys; j++) mask.data[i * keys + j] = Number.NEGATIVE_INFINITY;
    if (causalMasks.size < 64) causalMasks.set(key, mask);
  }
  return mask;
}

export interface AttentionOptions {
  /** Each query position sees only keys at or before it. */
  readonly causal?: boolean;
  /** An additive mask broadcastable to (..., T, S). */
  readonly mask?: Tensor;
}

/** softmax(q k^T / sqrt(D) + mask) v for q (..., T, D), k (..., S, D), v (..., S, Dv). */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions = {},
): Tensor {
  if (q.device !== 'cpu' || k.device !== 'cpu' || v.device !== 'cpu')
    unavailableOnDevice('scaledDotProductAttention', [q, k, v]);
  check(
    q.rank >= 2 && k.rank >= 2 && v.rank >= 2,
    'invalid_shape',
    () => 'attention: q, k and v need rank >= 2',
  );
  const depth = q.shape[q.rank - 1];
  check(
    k.shape[k.rank - 1] === depth,
    'shape_mismatch',
    () => `attention: q has depth ${depth}, k has ${k.shape[k.rank - 1]}`,
  );
  check(
    k.shape[k.rank - 2] === v.shape[v.rank - 2],
    'shape_mismatch',
    () => 'attention: k and v differ in sequence length',
  );
  let scores = mul(matmul(q, transpose(k, -2, -1)), 1 / Math.sqrt(depth));
  if (options.causal) scores = add(scores, causalMask(q.shape[q.rank - 2], k.shape[k.rank - 2]));
  if (options.mask) scores = add(scores, options.mask);
  return matmul(softmax(scores, -1), v);
}
