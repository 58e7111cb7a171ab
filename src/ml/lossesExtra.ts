/**
 * Element-wise losses with PyTorch's definitions and `reduction: 'none' | 'mean' | 'sum'`
 * (default 'mean'), on the CPU. d = prediction - target, g the output's gradient:
 *   binaryCrossEntropy(p, t):  -(t log p + (1 - t) log(1 - p)), logs clamped at -100
 *       gp = g (p - t) / max(p (1 - p), 1e-12)     gt = g (log(1 - p) - log p)
 *   binaryCrossEntropyWithLogits(x, t, posWeight pw):  (1 - t) x + L softplus(-x), L = 1 + (pw - 1) t
 *       gx = g ((1 - t) - L sigmoid(-x))           gt = g (-x + (pw - 1) softplus(-x))
 *   l1Loss: |d|                                       gp = g sign(d)
 *   smoothL1Loss(beta): |d| < beta ? d^2 / (2 beta) : |d| - beta / 2
 *   huberLoss(delta):   |d| < delta ? d^2 / 2 : delta (|d| - delta / 2)
 *   klDiv(input = log q, target p): p (log p - input), 0 where p = 0   gi = -g p
 *       gp = g (log p + 1 - input); with logTarget: exp(t) (t - input), 'batchmean': sum / N
 * Each loss is one fused element-wise op (value and both slopes in one pass, one rule
 * [g * slopeP, g * slopeT]); the optional `weight` multiplies it and the reduction is `sum` or
 * `mean`, both with their own rules.
 */

import { unavailableOnDevice } from './deviceOps.js';
import { check } from './errors.js';
import { pool } from './internal/pool.js';
import { mul } from './ops/elementwise.js';
import { mean, sum } from './ops/reduce.js';
import { contiguousData, hostTensor, record, releaseTemporary, sameShape, type Tensor } from './Tensor.js';

export type ElementwiseReduction = 'none' | 'mean' | 'sum';

export interface ElementwiseLossOptions {
  /** 'mean' (default), 'sum', or 'none' (the element-wise losses, the inputs' shape). */
  readonly reduction?: ElementwiseReduction;
}

export interface WeightedLossOptions extends ElementwiseLossOptions {
  /** Multiplies each element's loss (broadcast to the input's shape). */
  readonly weight?: Tensor;
}

/** One element: its loss and the slopes with respect to the prediction and the target. */
type PairLoss = (p: number, t: number, index: number, out: { value: number; dp: number; dt: number }) => void;

function checkPair(context: string, prediction: Tensor, target: Tensor): void {
  if (prediction.device !== 'cpu' || target.device !== 'cpu')
    unavailableOnDevice(context, [prediction, target]);
  check(sameShape(prediction.shape, target.shape), 'shape_mismatch', () => {
    return `${context}: input [${prediction.shape.join(', ')}] and target [${target.shape.join(', ')}] must have the same shape`;
  });
}

function fusedPair(context: string, prediction: Tensor, target: Tensor, f: PairLoss): Tensor {
  const p = contiguousData(prediction);
  const t = contiguousData(target);
  const value = pool.take(prediction.size);
  const slopeP = pool.take(prediction.size);
  const slopeT = pool.take(prediction.size);
  const point = { value: 0, dp: 0, dt: 0 };
  for (let i = 0; i < value.length; i++) {
    f(p[i], t[i], i, point);
    value[i] = point.value;
    slopeP[i] = point.dp;
    slopeT[i] = point.dt;
  }
  releaseTemporary(prediction, p);
  releaseTemporary(target, t);
  const out = hostTensor(value, prediction.shape);
  const sp = hostTensor(slopeP, prediction.shape);
  const st = hostTensor(slopeT, prediction.shape);
  const rule = (g: Tensor): (Tensor | null)[] => [
    prediction.requiresGrad ? mul(g, sp) : null,
    target.requiresGrad ? mul(g, st) : null,
  ];
  return record(out, context, [prediction, target], rule, [sp, st]);
}

function reductionOf(
  options: ElementwiseLossOptions,
  context: string,
  extra: readonly string[] = [],
): string {
  const reduction = (options as { reduction?: string }).reduction ?? 'mean';
  const allowed = ['none', 'mean', 'sum', ...extra];
  check(allowed.includes(reduction), 'invalid_argument', () => {
    return `${context}: reduction must be ${allowed.map((r) => `'${r}'`).join(', ')}, got ${String(reduction)}`;
  });
  return reduction;
}

function reduced(elements: Tensor, reduction: string, weight: Tensor | undefined): Tensor {
  const weighted = weight === undefined ? elements : mul(elements, weight);
  switch (reduction) {
    case 'none':
      return weighted;
    case 'sum':
      return sum(weighted);
    case 'batchmean':
      return mul(sum(weighted), 1 / Math.max(1, weighted.rank === 0 ? 1 : weighted.shape[0]));
    default:
      return mean(weighted);
  }
}

/** Binary cross-entropy of probabilities `input` in [0, 1] against `target` (same shape). */
export function binaryCrossEntropy(input: Tensor, target: Tensor, options: WeightedLossOptions = {}): Tensor {
  const context = 'binaryCrossEntropy';
  checkPair(context, input, target);
  const reduction = reductionOf(options, context);
  const values = contiguousData(input);
  for (let i = 0; i < values.length; i++) {
    const p = values[i];
    check(p >= 0 && p <= 1, 'invalid_argument', () => {
      return `${context}: every input must be a probability in [0, 1], got ${p} at ${i} (use binaryCrossEntropyWithLogits for logits)`;
    });
  }
  releaseTemporary(input, values);
  const elements = fusedPair(context, input, target, (p, t, _i, o) => {
    const logP = Math.max(Math.log(p), -100);
    const log1P = Math.max(Math.log1p(-p), -100);
    o.value = -(t * logP + (1 - t) * log1P);
    o.dp = (p - t) / Math.max(p * (1 - p), 1e-12);
    o.dt = Math.log1p(-p) - Math.log(p);
  });
  return reduced(elements, reduction, options.weight);
}

export interface LogitsLossOptions extends WeightedLossOptions {
  /** Weight of the positive term per class (the last dimension's size, or one value). */
  readonly posWeight?: Tensor;
}

/** softplus(-x) = log(1 + exp(-x)), stable for every x. */
function softplusOfNegative(x: number): number {
  return Math.max(-x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

/** Binary cross-entropy of `sigmoid(input)` against `target`, computed stably from the logits. */
export function binaryCrossEntropyWithLogits(
  input: Tensor,
  target: Tensor,
  options: LogitsLossOptions = {},
): Tensor {
  const context = 'binaryCrossEntropyWithLogits';
  checkPair(context, input, target);
  const reduction = reductionOf(options, context);
  let positive: Float32Array | null = null;
  const classes = input.rank === 0 ? 1 : input.shape[input.rank - 1];
  if (options.posWeight !== undefined) {
    const posWeight = options.posWeight;
    check(posWeight.device === 'cpu', 'invalid_argument', () => `${context}: posWeight must be on the CPU`);
    check(posWeight.size === classes || posWeight.size === 1, 'shape_mismatch', () => {
      return `${context}: posWeight must have ${classes} values (the last dimension) or 1, got ${posWeight.size}`;
    });
    positive = Float32Array.from(contiguousData(posWeight));
  }
  const elements = fusedPair(context, input, target, (x, t, i, o) => {
    const pw = positive === null ? 1 : positive.length === 1 ? positive[0] : positive[i % classes];
    const scale = 1 + (pw - 1) * t;
    const tail = softplusOfNegative(x);
    o.value = (1 - t) * x + scale * tail;
    o.dp = 1 - t - scale / (1 + Math.exp(x));
    o.dt = -x + (pw - 1) * tail;
  });
  return reduced(elements, reduction, options.weight);
}

/** Mean (or summed) absolute error. */
export function l1Loss(input: Tensor, target: Tensor, options: ElementwiseLossOptions = {}): Tensor {
  checkPair('l1Loss', input, target);
  const reduction = reductionOf(options, 'l1Loss');
  const elements = fusedPair('l1Loss', input, target, (p, t, _i, o) => {
    const d = p - t;
    o.value = Math.abs(d);
    o.dp = Math.sign(d);
    o.dt = -o.dp;
  });
  return reduced(elements, reduction, undefined);
}

/** Smooth L1: quadratic below `beta` (1), linear above; beta 0 is the L1 loss. */
export function smoothL1Loss(
  input: Tensor,
  target: Tensor,
  options: ElementwiseLossOptions & { readonly beta?: number } = {},
): Tensor {
  const beta = options.beta ?? 1;
  check(beta >= 0, 'invalid_argument', () => `smoothL1Loss: beta must be >= 0, got ${beta}`);
  checkPair('smoothL1Loss', input, target);
  const reduction = reductionOf(options, 'smoothL1Loss');
  const elements = fusedPair('smoothL1Loss', input, target, (p, t, _i, o) => {
    const d = p - t;
    const magnitude = Math.abs(d);
    if (magnitude < beta) {
      o.value = (0.5 * d * d) / beta;
      o.dp = d / beta;
    } else {
      o.value = magnitude - 0.5 * beta;
      o.dp = Math.sign(d);
    }
    o.dt = -o.dp;
  });
  return reduced(elements, reduction, undefined);
}

/** Huber: quadratic below `delta` (1), linear (slope delta) above. */
export function huberLoss(
  input: Tensor,
  target: Tensor,
  options: ElementwiseLossOptions & { readonly delta?: number } = {},
): Tensor {
  const delta = options.delta ?? 1;
  check(delta > 0, 'invalid_argument', () => `huberLoss: delta must be > 0, got ${delta}`);
  checkPair('huberLoss', input, target);
  const reduction = reductionOf(options, 'huberLoss');
  const elements = fusedPair('huberLoss', input, target, (p, t, _i, o) => {
    const d = p - t;
    const magnitude = Math.abs(d);
    if (magnitude < delta) {
      o.value = 0.5 * d * d;
      o.dp = d;
    } else {
      o.value = delta * (magnitude - 0.5 * delta);
      o.dp = delta * Math.sign(d);
    }
    o.dt = -o.dp;
  });
  return reduced(elements, reduction, undefined);
}

export interface KlDivOptions {
  /** 'mean' (PyTorch's default: over every element), 'batchmean' (sum / N), 'sum' or 'none'. */
  readonly reduction?: ElementwiseReduction | 'batchmean';
  /** The target holds log-probabilities (false). */
  readonly logTarget?: boolean;
}

/** KL divergence of `target` from `input` (log-probabilities), as PyTorch's `kl_div`. */
export function klDiv(input: Tensor, target: Tensor, options: KlDivOptions = {}): Tensor {
  checkPair('klDiv', input, target);
  const reduction = reductionOf(options as ElementwiseLossOptions, 'klDiv', ['batchmean']);
  const elements = options.logTarget
    ? fusedPair('klDiv', input, target, (x, t, _i, o) => {
        const p = Math.exp(t);
        o.value = p * (t - x);
        o.dp = -p;
        o.dt = p * (t - x + 1);
      })
    : fusedPair('klDiv', input, target, (x, p, _i, o) => {
        o.value = p === 0 ? 0 : p * (Math.log(p) - x);
        o.dp = -p;
        o.dt = Math.log(p) + 1 - x;
      });
  return reduced(elements, reduction, undefined);
}
