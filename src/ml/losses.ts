/**
 * Losses, each reduced to a scalar (mean over the batch by default, as PyTorch).
 *   crossEntropy(logits (N, C), labels (N)): fused log-softmax + NLL; gx = (softmax - onehot) * g / N
 *     with labelSmoothing, ignoreIndex, class weights, reduction 'none' or (N, C, d...) logits:
 *     sum(logSoftmax(logits, 1) * coefficients) / (weight total of the labels kept), composed
 *     from ops (CPU only)
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
  unavailableOnDevice,
} from './deviceOps.js';
import { check } from './errors.js';
import { pool } from './internal/pool.js';
import { mul, neg } from './ops/elementwise.js';
import { sum } from './ops/reduce.js';
import { logSoftmax } from './ops/softmax.js';
import {
  contiguousData,
  dispose,
  gradBuffer,
  hostTensor,
  indexValues,
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

/** A CPU label tensor's integers: an i32 tensor exactly, an f32 one truncated as before. */
function labelValues(labels: Tensor, context: string): Int32Array {
  if (labels.dtype === 'i32') return indexValues(labels, context);
  const raw = contiguousData(labels);
  const values = Int32Array.from(raw);
  releaseTemporary(labels, raw);
  return values;
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
    values = labelValues(labels, context);
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

export interface CrossEntropyOptions {
  /** 'mean' (default: over the labels not ignored, weighted by their class weight), 'sum' or 'none'. */
  readonly reduction?: 'none' | 'mean' | 'sum';
  /** Mixes the one-hot target with the uniform distribution: (1 - s) onehot + s / C (0). */
  readonly labelSmoothing?: number;
  /** Labels equal to this contribute nothing (-100, as PyTorch). */
  readonly ignoreIndex?: number;
  /** A weight per class (C values), as PyTorch's `weight`. */
  readonly weight?: Tensor | Float32Array | readonly number[];
}

/**
 * Cross-entropy of integer `labels` under `logits`: (N, C) with labels (N), or (N, C, d...)
 * with labels (N, d...), as PyTorch's `cross_entropy` with class indices. Plain (N, C) means
 * and sums run in one fused pass; the options go through `crossEntropyGeneral`.
 */
export function crossEntropy(
  logits: Tensor,
  labels: Int32Array | Tensor,
  options: CrossEntropyOptions = {},
): Tensor {
  const ignoreIndex = options.ignoreIndex ?? -100;
  const plain =
    logits.rank === 2 &&
    options.reduction !== 'none' &&
    (options.labelSmoothing ?? 0) === 0 &&
    options.weight === undefined &&
    !hasLabel(labels, ignoreIndex);
  if (!plain) return crossEntropyGeneral(logits, labels, options);
  return crossEntropyPlain(logits, labels, options as LossOptions);
}

function hasLabel(labels: Int32Array | Tensor, value: number): boolean {
  if (labels instanceof Int32Array) return labels.includes(value);
  if (labels.device !== 'cpu') return false; // labelsOf refuses it with its message
  if (labels.dtype === 'i32') return indexValues(labels, 'crossEntropy').includes(value);
  const raw = contiguousData(labels);
  const found = raw.includes(value);
  releaseTemporary(labels, raw);
  return found;
}

function crossEntropyGeneral(
  logits: Tensor,
  labels: Int32Array | Tensor,
  options: CrossEntropyOptions,
): Tensor {
  const context = 'crossEntropy';
  check(logits.rank >= 2, 'invalid_shape', () => {
    return `${context}: expected (N, C) or (N, C, d...), got [${logits.shape.join(', ')}]`;
  });
  if (logits.device !== 'cpu') unavailableOnDevice(`${context} with these options`, [logits]);
  const reduction = options.reduction ?? 'mean';
  check(['none', 'mean', 'sum'].includes(reduction), 'invalid_argument', () => {
    return `${context}: reduction must be 'none', 'mean' or 'sum', got ${String(reduction)}`;
  });
  const smoothing = options.labelSmoothing ?? 0;
  check(smoothing >= 0 && smoothing <= 1, 'invalid_argument', () => {
    return `${context}: labelSmoothing must be in [0, 1], got ${smoothing}`;
  });
  const ignoreIndex = options.ignoreIndex ?? -100;
  const [batch, classes] = logits.shape;
  const spatial = logits.size / Math.max(1, batch * classes);
  const positions = batch * spatial;
  let targets: Int32Array;
  if (labels instanceof Int32Array) targets = labels;
  else {
    check(labels.device === 'cpu', 'invalid_argument', () => `${context}: labels must be on the CPU`);
    const labelShape = [logits.shape[0], ...logits.shape.slice(2)];
    check(sameShape(labels.shape, labelShape), 'shape_mismatch', () => {
      return `${context}: labels of shape [${labels.shape.join(', ')}] for logits [${logits.shape.join(', ')}]; expected [${labelShape.join(', ')}]`;
    });
    targets = labelValues(labels, context);
  }
  check(targets.length === positions, 'shape_mismatch', () => {
    return `${context}: ${targets.length} labels for ${positions} positions of logits [${logits.shape.join(', ')}]`;
  });
  for (let i = 0; i < targets.length; i++) {
    const label = targets[i];
    check(label === ignoreIndex || (label >= 0 && label < classes), 'invalid_argument', () => {
      return `${context}: label ${label} at ${i} is not in [0, ${classes}) nor the ignoreIndex ${ignoreIndex}`;
    });
  }
  const classWeights = classWeightsOf(options.weight, classes, context);
  // loss = sum over (n, c, s) of logSoftmax(logits, 1) * coefficient, divided by the weight
  // total of the labels kept for 'mean' (PyTorch's weighted mean, smoothing term included).
  const coefficients = new Float32Array(logits.size);
  let denominator = 0;
  for (let n = 0; n < batch; n++) {
    for (let s = 0; s < spatial; s++) {
      const label = targets[n * spatial + s];
      if (label === ignoreIndex) continue;
      const labelWeight = classWeights === null ? 1 : classWeights[label];
      denominator += labelWeight;
      for (let c = 0; c < classes; c++) {
        const classWeight = classWeights === null ? 1 : classWeights[c];
        const smooth = (smoothing / classes) * classWeight;
        const hit = c === label ? (1 - smoothing) * labelWeight : 0;
        coefficients[(n * classes + c) * spatial + s] = -(hit + smooth);
      }
    }
  }
  const logProbabilities = logSoftmax(logits, 1);
  const terms = mul(logProbabilities, hostTensor(coefficients, logits.shape));
  if (reduction === 'none') return sum(terms, 1);
  const total = sum(terms);
  return reduction === 'sum' ? total : mul(total, 1 / denominator);
}

function classWeightsOf(
  weight: CrossEntropyOptions['weight'],
  classes: number,
  context: string,
): Float32Array | null {
  if (weight === undefined) return null;
  let values: Float32Array;
  if (weight instanceof Float32Array) values = weight;
  else if (Array.isArray(weight)) values = Float32Array.from(weight as readonly number[]);
  else {
    const tensorWeight = weight as Tensor;
    check(tensorWeight.device === 'cpu', 'invalid_argument', () => `${context}: weight must be on the CPU`);
    values = Float32Array.from(contiguousData(tensorWeight));
  }
  check(values.length === classes, 'shape_mismatch', () => {
    return `${context}: weight has ${values.length} values for ${classes} classes`;
  });
  return values;
}

/** The fused (N, C) cross-entropy, mean or sum, every label a class. */
function crossEntropyPlain(logits: Tensor, labels: Int32Array | Tensor, options: LossOptions): Tensor {
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
