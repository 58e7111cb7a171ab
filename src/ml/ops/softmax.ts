/**
 * softmax and logSoftmax along an axis (numerically stable: the maximum is subtracted first).
 *   softmax:    gx = y * (g - sum(g * y))     (sums along the axis, kept)
 *   logSoftmax: gx = g - exp(y) * sum(g)
 * On a device the axis must be the last one.
 */
import {
  anyOnDevice,
  deviceLogSoftmax,
  deviceSoftmax,
  isLastAxis,
  unavailableOnDevice,
} from '../deviceOps.js';
import { pool } from '../internal/pool.js';
import {
  contiguousData,
  dispose,
  hostTensor,
  normalizeAxis,
  record,
  releaseTemporary,
  sizeOf,
  type Tensor,
} from '../Tensor.js';
import { exp, mul, sub } from './elementwise.js';
import { sum } from './reduce.js';

interface AxisLayout {
  readonly outer: number;
  readonly length: number;
  readonly inner: number;
}

function layout(input: Tensor, axis: number, context: string): AxisLayout {
  const d = normalizeAxis(axis, input.rank, context);
  return {
    outer: sizeOf(input.shape.slice(0, d)),
    length: input.shape[d],
    inner: sizeOf(input.shape.slice(d + 1)),
  };
}

function softmaxForward(
  x: Float32Array,
  y: Float32Array,
  { outer, length, inner }: AxisLayout,
  logarithm: boolean,
): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const base = o * length * inner + j;
      let maximum = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < length; i++) maximum = Math.max(maximum, x[base + i * inner]);
      let total = 0;
      for (let i = 0; i < length; i++) total += Math.exp(x[base + i * inner] - maximum);
      const logTotal = Math.log(total);
      for (let i = 0; i < length; i++) {
        const shifted = x[base + i * inner] - maximum;
        y[base + i * inner] = logarithm ? shifted - logTotal : Math.exp(shifted - logTotal);
      }
    }
  }
}

/** The rule of softmax (y its output) or logSoftmax (y its log-probabilities) along `axis`. */
function softmaxRule(y: Tensor, g: Tensor, axis: number, logarithm: boolean): Tensor {
  if (logarithm) {
    const probabilities = exp(y);
    const total = sum(g, axis, { keepDims: true });
    const spread = mul(probabilities, total);
    const out = sub(g, spread);
    for (const tensor of [probabilities, total, spread]) dispose(tensor);
    return out;
  }
  const product = mul(g, y);
  const total = sum(product, axis, { keepDims: true });
  const centred = sub(g, total);
  const out = mul(y, centred);
  for (const tensor of [product, total, centred]) dispose(tensor);
  return out;
}

function softmaxOp(input: Tensor, axis: number, logarithm: boolean): Tensor {
  const op = logarithm ? 'logSoftmax' : 'softmax';
  let out: Tensor;
  if (anyOnDevice([input])) {
    if (!isLastAxis(axis, input.rank, op)) unavailableOnDevice(`${op} over axis ${axis}`, [input]);
    out = logarithm ? deviceLogSoftmax(input) : deviceSoftmax(input);
  } else {
    const plan = layout(input, axis, op);
    const x = contiguousData(input);
    const y = pool.take(input.size);
    softmaxForward(x, y, plan, logarithm);
    releaseTemporary(input, x);
    out = hostTensor(y, input.shape);
  }
  return record(out, op, [input], (g) => [softmaxRule(out, g, axis, logarithm)]);
}

/** exp(x) / sum(exp(x)) along `axis` (default the last). */
export function softmax(input: Tensor, axis = -1): Tensor {
  return softmaxOp(input, axis, false);
}

/** x - log(sum(exp(x))) along `axis` (default the last). */
export function logSoftmax(input: Tensor, axis = -1): Tensor {
  return softmaxOp(input, axis, true);
}
