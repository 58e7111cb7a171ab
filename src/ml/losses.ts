/**
 * Losses, each reduced to a scalar (mean over the batch by default, as PyTorch).
 *   crossEntropy(logits (N, C), labels (N)): fused log-softmax + NLL; gx = (softmax - onehot) * g / N
 *   nllLoss(logProbabilities (N, C), labels (N)): gx[n, label] -= g / N   (CPU only)
 *   mseLoss(prediction, target): mean((p - t)^2); gp = 2 (p - t) g / size,  gt = -gp
 * Each forward runs on the CPU or on the device of its inputs; the rule is written with ops.
 */
import type { Device as GpuDevice } from '../gpu/Device.js';
import {
  anyOnDevice,
  deviceBinary,
  deviceLogSoftmax,
  deviceOf,
  deviceReduce,
  deviceUnary,
  deviceUpload,
} from './deviceOps.js';
import { check } from './errors.js';
import { pool } from './internal/pool.js';
import { mul, neg } from './ops/elementwise.js';
import {
  contiguousData,
  dispose,
  gradBuffer,
  hostTensor,
  makeResult,
  record,
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
  const scale = options.reduction === 'sum' ? 1 : 1 / Math.max(1, rows);
  // picked: -scale at each row's label, 0 elsewhere; loss = sum(logSoftmax(logits) * picked)
  const weights = pool.takeZeroed(rows * classes);
  for (let r = 0; r < rows; r++) weights[r * classes + targets[r]] = -scale;
  const { loss, slope } = anyOnDevice([logits])
    ? crossEntropyOnDevice(logits, weights, scale)
    : crossEntropyOnHost(logits, targets, scale, weights);
  // gx = slope * g, slope = d loss / d logits = softmax * scale + picked
  return record(loss, 'crossEntropy', [logits], (g) => [mul(slope, g)], [slope]);
}

interface CrossEntropyParts {
  readonly loss: Tensor;
  /** d loss / d logits: softmax(logits) * scale - scale at each row's label, (N, C). */
  readonly slope: Tensor;
}

function crossEntropyOnHost(
  logits: Tensor,
  targets: Int32Array,
  scale: number,
  weights: Float32Array,
): CrossEntropyParts {
  const [rows, classes] = logits.shape;
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
  for (let i = 0; i < probabilities.length; i++) probabilities[i] = probabilities[i] * scale + weights[i];
  pool.release(weights);
  const out = pool.take(1);
  out[0] = total * scale;
  return { loss: hostTensor(out, []), slope: hostTensor(probabilities, logits.shape) };
}

function crossEntropyOnDevice(logits: Tensor, weights: Float32Array, scale: number): CrossEntropyParts {
  const device: GpuDevice = deviceOf('crossEntropy', [logits]);
  const picked = deviceUpload(device, weights, logits.shape);
  pool.release(weights);
  const logProbabilities = deviceLogSoftmax(logits);
  const weighted = deviceBinary('mul', logProbabilities, picked);
  const loss = deviceReduce(
    'sum',
    weighted,
    logits.shape.map(() => true),
    [],
  );
  const probabilities = deviceUnary('exp', logProbabilities);
  const scaled = deviceBinary('mul', probabilities, scale);
  const slope = deviceBinary('add', scaled, picked);
  for (const tensor of [logProbabilities, weighted, probabilities, scaled, picked]) dispose(tensor);
  return { loss, slope };
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
  const scale = options.reduction === 'sum' ? 1 : 1 / Math.max(1, prediction.size);
  const { loss, difference } = anyOnDevice([prediction, target])
    ? mseOnDevice(prediction, target, scale)
    : mseOnHost(prediction, target, scale);
  // gp = 2 * scale * (p - t) * g, gt = -gp
  const rule = (g: Tensor): (Tensor | null)[] => {
    const scaled = mul(difference, 2 * scale);
    const gp = mul(scaled, g);
    dispose(scaled);
    const gt = target.requiresGrad ? neg(gp) : null;
    if (prediction.requiresGrad) return [gp, gt];
    dispose(gp);
    return [null, gt];
  };
  return record(loss, 'mseLoss', [prediction, target], rule, [difference]);
}

function mseOnHost(prediction: Tensor, target: Tensor, scale: number): { loss: Tensor; difference: Tensor } {
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
  const out = pool.take(1);
  out[0] = total * scale;
  return { loss: hostTensor(out, []), difference: hostTensor(difference, prediction.shape) };
}

function mseOnDevice(
  prediction: Tensor,
  target: Tensor,
  scale: number,
): { loss: Tensor; difference: Tensor } {
  const difference = deviceBinary('sub', prediction, target);
  const squared = deviceBinary('mul', difference, difference);
  const total = deviceReduce(
    'sum',
    squared,
    prediction.shape.map(() => true),
    [],
  );
  const loss = deviceBinary('mul', total, scale);
  dispose(squared);
  dispose(total);
  return { loss, difference };
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
