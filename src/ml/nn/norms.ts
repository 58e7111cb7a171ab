/**
 * Normalisation layers as PyTorch defines them, composed from ops (their rules give the
 * gradients), on the CPU:
 *   BatchNorm1d (N, C) or (N, C, L), BatchNorm2d (N, C, H, W): in training, normalise with the
 *     batch's mean and biased variance per channel and update the running statistics
 *     (running = (1 - momentum) running + momentum batch, the variance unbiased: n / (n - 1));
 *     in eval mode, normalise with the running statistics. `momentum: null` keeps a cumulative
 *     average (1 / numBatchesTracked), as PyTorch.
 *   GroupNorm(G, C): (N, C, ...) normalised over each group of C / G channels and all positions.
 *   RMSNorm(shape): x / sqrt(mean(x^2 over the last dims) + eps) * weight (PyTorch 2.4's, eps
 *     defaulting to float32's machine epsilon).
 * They run on the CPU (a device tensor is refused with `unavailable_on_device`).
 * Running statistics are `ModuleBuffer`s: in the state dict (`runningMean`, `runningVar`,
 * `numBatchesTracked`), never in `parameters()`.
 */
import { unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { add, div, mul, sqrt, sub } from '../ops/elementwise.js';
import { mean } from '../ops/reduce.js';
import { reshape } from '../ops/shape.js';
import { contiguousData, noGrad, releaseTemporary, type Tensor } from '../Tensor.js';
import { constantParameter } from './init.js';
import { Module, ModuleBuffer, type Parameter } from './Module.js';

const FLOAT32_EPSILON = 2 ** -23;

function positiveInteger(value: number, what: string, context: string): void {
  check(Number.isInteger(value) && value > 0, 'invalid_argument', () => {
    return `${context}: ${what} must be a positive integer, got ${value}`;
  });
}

/** Refuses tensors on a GPU-layer device, with the standard message (these layers run on the CPU). */
function onTheCpu(context: string, ...tensors: Array<Tensor | null>): void {
  const present = tensors.filter((t): t is Tensor => t !== null);
  if (present.some((t) => t.device !== 'cpu')) unavailableOnDevice(context, present);
}

/** `weight` (C) shaped to broadcast over channel axis 1 of a rank-`rank` input: [1, C, 1, ...]. */
function perChannel(values: Tensor, rank: number): Tensor {
  const shape = Array.from({ length: rank }, (_, axis) => (axis === 1 ? values.size : 1));
  return reshape(values, shape);
}

/** x * w + b with w, b per channel (either may be null). */
function affine(x: Tensor, weight: Tensor | null, bias: Tensor | null): Tensor {
  let out = x;
  if (weight !== null) out = mul(out, perChannel(weight, x.rank));
  if (bias !== null) out = add(out, perChannel(bias, x.rank));
  return out;
}

export interface BatchNormOptions {
  /** Added to the variance (1e-5). */
  readonly epsilon?: number;
  /** Weight of the new batch in the running statistics (0.1); null: a cumulative average. */
  readonly momentum?: number | null;
  /** Learnable per-channel weight and bias (true). */
  readonly affine?: boolean;
  /** Keep running statistics and use them in eval mode (true); false: batch statistics always. */
  readonly trackRunningStats?: boolean;
}

abstract class BatchNormBase extends Module {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly runningMean: ModuleBuffer | null;
  readonly runningVar: ModuleBuffer | null;
  readonly numBatchesTracked: ModuleBuffer | null;
  readonly epsilon: number;
  readonly momentum: number | null;

  constructor(
    readonly numFeatures: number,
    options: BatchNormOptions,
    private readonly context: string,
    private readonly ranks: readonly number[],
  ) {
    super();
    positiveInteger(numFeatures, 'numFeatures', context);
    this.epsilon = options.epsilon ?? 1e-5;
    check(
      this.epsilon >= 0,
      'invalid_argument',
      () => `${context}: epsilon must be >= 0, got ${this.epsilon}`,
    );
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    const momentum = this.momentum;
    check(momentum === null || (momentum >= 0 && momentum <= 1), 'invalid_argument', () => {
      return `${context}: momentum must be in [0, 1] or null, got ${momentum}`;
    });
    const affineOn = options.affine ?? true;
    this.weight = affineOn ? constantParameter([numFeatures], 1) : null;
    this.bias = affineOn ? constantParameter([numFeatures], 0) : null;
    const track = options.trackRunningStats ?? true;
    this.runningMean = track ? new ModuleBuffer(new Float32Array(numFeatures), [numFeatures]) : null;
    this.runningVar = track ? new ModuleBuffer(new Float32Array(numFeatures).fill(1), [numFeatures]) : null;
    this.numBatchesTracked = track ? new ModuleBuffer(new Float32Array(1), []) : null;
  }

  forward(input: Tensor): Tensor {
    const context = this.context;
    onTheCpu(context, input, this.weight, this.bias);
    check(this.ranks.includes(input.rank), 'invalid_shape', () => {
      return `${context}: expected an input of rank ${this.ranks.join(' or ')}, got [${input.shape.join(', ')}]`;
    });
    check(input.shape[1] === this.numFeatures, 'shape_mismatch', () => {
      return `${context}: expected ${this.numFeatures} channels on axis 1, got [${input.shape.join(', ')}]`;
    });
    const useBatch = this.training || this.runningMean === null;
    if (!useBatch) {
      const runningMean = perChannel(this.runningMean!, input.rank);
      const runningVar = perChannel(this.runningVar!, input.rank);
      const deviation = sqrt(add(runningVar, this.epsilon));
      return affine(div(sub(input, runningMean), deviation), this.weight, this.bias);
    }
    const axes = Array.from({ length: input.rank }, (_, axis) => axis).filter((axis) => axis !== 1);
    const count = input.size / this.numFeatures;
    check(count > 1, 'invalid_shape', () => {
      return `${context}: expected more than 1 value per channel when training, got [${input.shape.join(', ')}]`;
    });
    const average = mean(input, axes, { keepDims: true });
    const centred = sub(input, average);
    const variance = mean(mul(centred, centred), axes, { keepDims: true });
    const out = affine(div(centred, sqrt(add(variance, this.epsilon))), this.weight, this.bias);
    if (this.training && this.runningMean !== null) this.updateRunningStats(average, variance, count);
    return out;
  }

  private updateRunningStats(average: Tensor, variance: Tensor, count: number): void {
    noGrad(() => {
      const tracked = this.numBatchesTracked!.data;
      tracked[0] += 1;
      const factor = this.momentum ?? 1 / tracked[0];
      const batchMean = contiguousData(average);
      const batchVar = contiguousData(variance);
      const runningMean = this.runningMean!.data;
      const runningVar = this.runningVar!.data;
      const unbiased = count / (count - 1);
      for (let c = 0; c < this.numFeatures; c++) {
        runningMean[c] = (1 - factor) * runningMean[c] + factor * batchMean[c];
        runningVar[c] = (1 - factor) * runningVar[c] + factor * batchVar[c] * unbiased;
      }
      releaseTemporary(average, batchMean);
      releaseTemporary(variance, batchVar);
    });
  }
}

/** Batch normalisation of (N, C) or (N, C, L) inputs per channel C. */
export class BatchNorm1d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, options, 'BatchNorm1d', [2, 3]);
  }
}

/** Batch normalisation of (N, C, H, W) inputs per channel C. */
export class BatchNorm2d extends BatchNormBase {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, options, 'BatchNorm2d', [4]);
  }
}

export interface GroupNormOptions {
  readonly epsilon?: number;
  readonly affine?: boolean;
}

/** Group normalisation of (N, C, ...): statistics per sample over each group of channels. */
export class GroupNorm extends Module {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly epsilon: number;

  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    options: GroupNormOptions = {},
  ) {
    super();
    positiveInteger(numGroups, 'numGroups', 'GroupNorm');
    positiveInteger(numChannels, 'numChannels', 'GroupNorm');
    check(numChannels % numGroups === 0, 'invalid_argument', () => {
      return `GroupNorm: numChannels (${numChannels}) must be divisible by numGroups (${numGroups})`;
    });
    this.epsilon = options.epsilon ?? 1e-5;
    const affineOn = options.affine ?? true;
    this.weight = affineOn ? constantParameter([numChannels], 1) : null;
    this.bias = affineOn ? constantParameter([numChannels], 0) : null;
  }

  forward(input: Tensor): Tensor {
    onTheCpu('GroupNorm', input, this.weight, this.bias);
    check(input.rank >= 2 && input.shape[1] === this.numChannels, 'shape_mismatch', () => {
      return `GroupNorm: expected (N, ${this.numChannels}, ...), got [${input.shape.join(', ')}]`;
    });
    const batch = input.shape[0];
    const grouped = reshape(input, [batch, this.numGroups, -1]);
    const average = mean(grouped, 2, { keepDims: true });
    const centred = sub(grouped, average);
    const variance = mean(mul(centred, centred), 2, { keepDims: true });
    const normalized = div(centred, sqrt(add(variance, this.epsilon)));
    return affine(reshape(normalized, input.shape), this.weight, this.bias);
  }
}

export interface RMSNormOptions {
  /** Added to the mean square (default: float32's machine epsilon, as PyTorch's `eps=None`). */
  readonly epsilon?: number;
  /** A learnable weight of the normalised shape (true). */
  readonly elementwiseAffine?: boolean;
}

/** Root-mean-square normalisation over the last dimensions (`normalizedShape`). */
export class RMSNorm extends Module {
  readonly weight: Parameter | null;
  readonly epsilon: number;
  readonly normalizedShape: readonly number[];

  constructor(normalizedShape: number | readonly number[], options: RMSNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    check(this.normalizedShape.length > 0, 'invalid_argument', () => 'RMSNorm: normalizedShape is empty');
    for (const n of this.normalizedShape) positiveInteger(n, 'every normalizedShape entry', 'RMSNorm');
    this.epsilon = options.epsilon ?? FLOAT32_EPSILON;
    this.weight = (options.elementwiseAffine ?? true) ? constantParameter(this.normalizedShape, 1) : null;
  }

  forward(input: Tensor): Tensor {
    onTheCpu('RMSNorm', input, this.weight, null);
    const k = this.normalizedShape.length;
    const tail = input.shape.slice(input.rank - k);
    check(input.rank >= k && tail.every((n, i) => n === this.normalizedShape[i]), 'shape_mismatch', () => {
      return `RMSNorm: the input [${input.shape.join(', ')}] does not end in [${this.normalizedShape.join(', ')}]`;
    });
    const axes = Array.from({ length: k }, (_, i) => input.rank - k + i);
    const meanSquare = mean(mul(input, input), axes, { keepDims: true });
    const normalized = div(input, sqrt(add(meanSquare, this.epsilon)));
    return this.weight === null ? normalized : mul(normalized, this.weight);
  }
}
