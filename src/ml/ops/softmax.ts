/**
 * softmax and logSoftmax along an axis (numerically stable: the maximum is subtracted first).
 *   softmax:    gx = y * (g - sum(g * y))
 *   logSoftmax: gx = g - exp(y) * sum(g)
 */
import { runOnDevice } from '../deviceOps.js';
import { pool } from '../internal/pool.js';
import {
  contiguousData,
  gradBuffer,
  makeResult,
  normalizeAxis,
  releaseTemporary,
  sizeOf,
  type Tensor,
} from '../Tensor.js';

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

function softmaxBackward(
  g: Float32Array,
  y: Float32Array,
  gx: Float32Array,
  { outer, length, inner }: AxisLayout,
  logarithm: boolean,
): void {
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const base = o * length * inner + j;
      let total = 0;
      for (let i = 0; i < length; i++)
        total += logarithm ? g[base + i * inner] : g[base + i * inner] * y[base + i * inner];
      for (let i = 0; i < length; i++) {
        const at = base + i * inner;
        gx[at] += logarithm ? g[at] - Math.exp(y[at]) * total : y[at] * (g[at] - total);
      }
    }
  }
}

function softmaxOp(input: Tensor, axis: number, logarithm: boolean): Tensor {
  if (input.device !== 'cpu') return runOnDevice(logarithm ? 'logSoftmax' : 'softmax', input, axis);
  const op = logarithm ? 'logSoftmax' : 'softmax';
  const plan = layout(input, axis, op);
  const x = contiguousData(input);
  const y = pool.take(input.size);
  softmaxForward(x, y, plan, logarithm);
  releaseTemporary(input, x);
  return makeResult(y, [...input.shape], op, [input], (g) =>
    softmaxBackward(g, y, gradBuffer(input), plan, logarithm),
  );
}

/** exp(x) / sum(exp(x)) along `axis` (default the last). */
export function softmax(input: Tensor, axis = -1): Tensor {
  return softmaxOp(input, axis, false);
}

/** x - log(sum(exp(x))) along `axis` (default the last). */
export function logSoftmax(input: Tensor, axis = -1): Tensor {
  return softmaxOp(input, axis, true);
}
