/**
 * Losses, each reduced to a scalar (mean over the batch by default, as PyTorch).
 *   crossEntropy(logits (N, C), labels (N)): fused log-softmax + NLL; gx = (softmax - onehot) * g / N
 *   nllLoss(logProbabilities (N, C), labels (N)): gx[n, label] -= g / N
 *   mseLoss(prediction, target): mean((p - t)^2); gp = 2 (p - t) g / size
 */
import { runOnDevice } from './deviceOps.js';
import { check } from './errors.js';
import { pool } from './internal/pool.js';
import {
  contiguousData,
  gradBuffer,
  makeResult,
  releaseTemporary,
  sameShape,
  type Tensor,
} from './Tensor.js';

export type Reduction = 'mean' | 'sum';

export interface LossOptions {
  readonly reduction?: Reduction;
}

/** Class labels as integers, validated against the number of classes. */
export function labelsOf(
  labels: Int32Array | Tensor,
  count: number,
  classes: number,
  context: string,
): Int32Array {
  let values: Int32Array;
  if (labels instanceof Int32Array) values = labels;
  else {
    check(labels.device === 'cpu', 'invalid_argument', () => {
      return `${context}: labels must be on the CPU (an Int32Array or a CPU tensor); the logits may live on a device`;
    });
    const raw = contiguousData(labels);
    values = Int32Array.from(raw);
    releaseTemporary(labels, raw);
  }
  check(
    values.length === count,
    'shape_mismatch',
    () => `${context}: ${values.length} labels for ${count} rows`,
  );
  for (let i = 0; i < values.length; i++) {
    const label = values[i];
    check(
      label >= 0 && label < classes,
      'invalid_argument',
      () => `${context}: label ${label} at ${i} is not in [0, ${classes})`,
    );
  }
  return values;
}

function rowsAndClasses(input: Tensor, context: string): [number, number] {
  check(
    input.rank === 2,
    'invalid_shape',
    () => `${context}: expected (N, C), got [${input.shape.join(', ')}]`,
  );
  return [input.shape[0], input.shape[1]];
}

/** Cross-entropy of integer `labels` under `logits` (N, C), in one pass. */
export function crossEntropy(logits: Tensor, labels: Int32Array | Tensor, options: LossOptions = {}): Tensor {
  const [rows, classes] = rowsAndClasses(logits, 'crossEntropy');
  const targets = labelsOf(labels, rows, classes, 'crossEntropy');
  if (logits.device !== 'cpu') return runOnDevice('crossEntropy', logits, targets, options);
  const x = contiguousData(logits);
  const probabilities = pool.take(rows * classes);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const row = r * classes;
    let maximum = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < classes; c++) maximum = Math.max(maximum, x[row + c]);
    let sumExp = 0;
    for (let c = 0; c < classes; c++) {
      const e = Math.exp(x[row + c] - maximum);
      probabilities[row + c] = e;
      sumExp += e;
    }
    for (let c = 0; c < classes; c++) probabilities[row + c] /= sumExp;
    total += Math.log(sumExp) + maximum - x[row + targets[r]];
  }
  releaseTemporary(logits, x);
  const scale = options.reduction === 'sum' ? 1 : 1 / Math.max(1, rows);
  const out = pool.take(1);
  out[0] = total * scale;
  const backward = (g: Float32Array): void => {
    const gx = gradBuffer(logits);
    const factor = g[0] * scale;
    for (let r = 0; r < rows; r++) {
      const row = r * classes;
      for (let c = 0; c < classes; c++) gx[row + c] += factor * probabilities[row + c];
      gx[row + targets[r]] -= factor;
    }
  };
  return makeResult(out, [], 'crossEntropy', [logits], backward, [probabilities]);
}

/** Negative log-likelihood of integer `labels` under log-probabilities (N, C). */
export function nllLoss(
  logProbabilities: Tensor,
  labels: Int32Array | Tensor,
  options: LossOptions = {},
): Tensor {
  const [rows, classes] = rowsAndClasses(logProbabilities, 'nllLoss');
  const targets = labelsOf(labels, rows, classes, 'nllLoss');
  const x = contiguousData(logProbabilities);
  let total = 0;
  for (let r = 0; r < rows; r++) total -= x[r * classes + targets[r]];
  releaseTemporary(logProbabilities, x);
  const scale = options.reduction === 'sum' ? 1 : 1 / Math.max(1, rows);
  const out = pool.take(1);
  out[0] = total * scale;
  return makeResult(out, [], 'nllLoss', [logProbabilities], (g) => {
    const gx = gradBuffer(logProbabilities);
    for (let r = 0; r < rows; r++) gx[r * classes + targets[r]] -= g[0] * scale;
  });
}

/** Mean (or summed) squared error; shapes must match exactly. */
export function mseLoss(prediction: Tensor, target: Tensor, options: LossOptions = {}): Tensor {
  check(sameShape(prediction.shape, target.shape), 'shape_mismatch', () => {
    return `mseLoss: prediction [${prediction.shape.join(', ')}] and target [${target.shape.join(', ')}] differ`;
  });
  if (prediction.device !== 'cpu' || target.device !== 'cpu')
    return runOnDevice('mseLoss', prediction, target, options);
  const p = contiguousData(prediction);
  const t = contiguousData(target);
  const difference = pool.take(prediction.size);
  let total = 0;
  for (let i = 0; i < difference.length; i++) {
    difference[i] = p[i] - t[i];
    total += difference[i] * difference[i];
  }
  releaseTemporary(prediction, p);
  releaseTemporary(target, t);
  const scale = options.reduction === 'sum' ? 1 : 1 / Math.max(1, prediction.size);
  const out = pool.take(1);
  out[0] = total * scale;
  const backward = (g: Float32Array): void => {
    const factor = 2 * g[0] * scale;
    if (prediction.requiresGrad) {
      const gp = gradBuffer(prediction);
      for (let i = 0; i < difference.length; i++) gp[i] += factor * difference[i];
    }
    if (target.requiresGrad) {
      const gt = gradBuffer(target);
      for (let i = 0; i < difference.length; i++) gt[i] -= factor * difference[i];
    }
  };
  return makeResult(out, [], 'mseLoss', [prediction, target], backward, [difference]);
}

/** Fraction of rows of `logits` (N, C) whose largest value is at the label. */
export function accuracy(logits: Tensor, labels: Int32Array | Tensor): number {
  const [rows, classes] = rowsAndClasses(logits, 'accuracy');
  const targets = labelsOf(labels, rows, classes, 'accuracy');
  const x = contiguousData(logits);
  let correct = 0;
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (x[r * classes + c] > x[r * classes + best]) best = c;
    if (best === targets[r]) correct++;
  }
  releaseTemporary(logits, x);
  return rows === 0 ? 0 : correct / rows;
}
