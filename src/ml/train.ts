/**
 * A plain (unsupervised) training loop: for each batch, forward, loss, backward, optimizer
 * update, as PyTorch's loop does. The benchmarks use it; the supervised trainer wraps it.
 * Each step's graph is disposed once used, so the loop allocates nothing in steady state.
 */

import { backward, disposeGraph } from './autograd.js';
import { check } from './errors.js';
import { accuracy, crossEntropy } from './losses.js';
import type { Module } from './nn/Module.js';
import { reshape } from './ops/shape.js';
import { clipGradNorm } from './optim/clip.js';
import type { Optimizer } from './optim/Optimizer.js';
import { applySchedule, type LearningRateSchedule } from './optim/schedules.js';
import { dispose, fromData, noGrad, type Tensor } from './Tensor.js';

/** One batch: `size` rows of `featureShape` features, row-major, and their integer labels. */
export interface TrainBatch {
  readonly inputs: Float32Array;
  readonly labels: Int32Array;
  readonly size: number;
  readonly featureShape: readonly number[];
}

/** Anything that hands out batches until the epoch ends (the data layer's DataLoader fits). */
export interface BatchSource {
  next(): TrainBatch | undefined;
  reset(): void;
}

export type LossFunction = (output: Tensor, batch: TrainBatch) => Tensor;

export interface StepInfo {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
}

export interface TrainPlainOptions {
  readonly model: Module;
  readonly optimizer: Optimizer;
  /** Default: cross-entropy of the output against the batch's labels. */
  readonly loss?: LossFunction;
  /** Where batches come from: a loader, or a fixed list replayed every epoch. */
  readonly loader?: BatchSource;
  readonly batches?: readonly TrainBatch[];
  readonly epochs?: number;
  /** Stop after this many steps in all (default: no limit). */
  readonly maxSteps?: number;
  readonly schedule?: LearningRateSchedule;
  /** Clip the global gradient norm to this before each update. */
  readonly clipGradNorm?: number;
  /** Called after every step; returning false stops training. */
  readonly onStep?: (info: StepInfo) => unknown;
}

export interface TrainResult {
  readonly steps: number;
  readonly epochs: number;
  readonly lastLoss: number;
  /** Mean loss of each epoch run (a partial last epoch included). */
  readonly epochLosses: number[];
  readonly elapsedMs: number;
}

/**
 * Logits as rows of classes: (N, C) as they are; a sequence model's (N, T, ..., C), classes
 * last, as (N * T * ..., C), one row per label (a data set with a `labelShape`).
 */
export function classRows(output: Tensor): Tensor {
  return output.rank > 2 ? reshape(output, [-1, output.shape[output.rank - 1]]) : output;
}

/** Labels per sample that `output` holds predictions for (1, or T for (N, T, C)). */
function labelsPerSample(output: Tensor, samples: number): number {
  return output.rank > 2 ? output.size / (samples * output.shape[output.rank - 1]) : 1;
}

const defaultLoss: LossFunction = (output, batch) =>
  crossEntropy(classRows(output), batch.labels.subarray(0, batch.size * labelsPerSample(output, batch.size)));

/** One training step on `batch`; returns the loss value. */
export function trainStep(
  model: Module,
  optimizer: Optimizer,
  batch: TrainBatch,
  loss: LossFunction = defaultLoss,
  maxNorm?: number,
): number {
  const input = fromData(batch.inputs.subarray(0, batch.size * featureSize(batch)), [
    batch.size,
    ...batch.featureShape,
  ]);
  const output = model.forward(input);
  const lossTensor = loss(output, batch);
  check(
    lossTensor.size === 1,
    'invalid_shape',
    () => `trainStep: the loss must be a scalar, got [${lossTensor.shape.join(', ')}]`,
  );
  const value = lossTensor.data[0];
  backward(lossTensor);
  if (maxNorm !== undefined) clipGradNorm(optimizer.parameters, maxNorm);
  optimizer.stepAndZeroGrad();
  disposeGraph(lossTensor);
  return value;
}

function featureSize(batch: TrainBatch): number {
  let size = 1;
  for (const dimension of batch.featureShape) size *= dimension;
  return size;
}

/** Batches of one epoch; a loader that ended its epoch is reset once if it yields nothing. */
function* epochBatches(options: TrainPlainOptions): Generator<TrainBatch> {
  if (options.batches !== undefined) {
    yield* options.batches;
    return;
  }
  const loader = options.loader!;
  let batch = loader.next();
  if (batch === undefined) {
    loader.reset();
    batch = loader.next();
  }
  while (batch !== undefined) {
    yield batch;
    batch = loader.next();
  }
}

/** Trains `model` for `epochs` (default 1) over the loader or batches. */
export function trainPlain(options: TrainPlainOptions): TrainResult {
  check((options.loader === undefined) !== (options.batches === undefined), 'invalid_argument', () => {
    return 'trainPlain: give exactly one of loader and batches';
  });
  const epochs = options.epochs ?? 1;
  const maxSteps = options.maxSteps ?? Number.POSITIVE_INFINITY;
  check(
    Number.isInteger(epochs) && epochs >= 1,
    'invalid_argument',
    () => `trainPlain: epochs must be an integer >= 1, got ${epochs}`,
  );
  const { model, optimizer } = options;
  const started = performance.now();
  const epochLosses: number[] = [];
  let steps = 0;
  let lastLoss = Number.NaN;
  let stopped = false;
  model.train();
  optimizer.zeroGrad();
  for (let epoch = 0; epoch < epochs && !stopped && steps < maxSteps; epoch++) {
    let total = 0;
    let count = 0;
    for (const batch of epochBatches(options)) {
      if (options.schedule) applySchedule(optimizer, options.schedule);
      lastLoss = trainStep(model, optimizer, batch, options.loss, options.clipGradNorm);
      total += lastLoss;
      count++;
      steps++;
      if (options.onStep?.({ step: steps, epoch, loss: lastLoss }) === false) stopped = true;
      if (stopped || steps >= maxSteps) break;
    }
    epochLosses.push(count > 0 ? total / count : Number.NaN);
  }
  return { steps, epochs: epochLosses.length, lastLoss, epochLosses, elapsedMs: performance.now() - started };
}

/**
 * Test-set accuracy: `features` rows of `featureShape`, evaluated in eval mode without
 * gradients. With a `labelShape` (sequence data), the accuracy over every label of every
 * sample (a language model's next-token accuracy), `batchSize` labels at a time.
 */
export function evaluateAccuracy(
  model: Module,
  data: {
    readonly features: Float32Array;
    readonly labels: Int32Array;
    readonly featureShape: readonly number[];
    readonly labelShape?: readonly number[];
  },
  batchSize = 1000,
): number {
  const rowSize = data.featureShape.reduce((a, b) => a * b, 1);
  const labelSize = (data.labelShape ?? []).reduce((a, b) => a * b, 1);
  if (labelSize > 1) return sequenceAccuracy(model, data, rowSize, labelSize, batchSize);
  const rows = data.labels.length;
  let correct = 0;
  const wasTraining = model.training;
  model.eval();
  noGrad(() => {
    for (let start = 0; start < rows; start += batchSize) {
      const size = Math.min(batchSize, rows - start);
      const input = fromData(data.features.subarray(start * rowSize, (start + size) * rowSize), [
        size,
        ...data.featureShape,
      ]);
      const output = model.forward(input);
      correct += accuracy(output, data.labels.subarray(start, start + size)) * size;
      if (output !== input) dispose(output);
    }
  });
  model.train(wasTraining);
  return rows === 0 ? 0 : correct / rows;
}

function sequenceAccuracy(
  model: Module,
  data: {
    readonly features: Float32Array;
    readonly labels: Int32Array;
    readonly featureShape: readonly number[];
  },
  rowSize: number,
  labelSize: number,
  batchLabels: number,
): number {
  const samples = data.labels.length / labelSize;
  const batchSize = Math.max(1, Math.floor(batchLabels / labelSize));
  let correct = 0;
  const wasTraining = model.training;
  model.eval();
  noGrad(() => {
    for (let start = 0; start < samples; start += batchSize) {
      const size = Math.min(batchSize, samples - start);
      const input = fromData(data.features.subarray(start * rowSize, (start + size) * rowSize), [
        size,
        ...data.featureShape,
      ]);
      const output = model.forward(input);
      const labels = data.labels.subarray(start * labelSize, (start + size) * labelSize);
      correct += accuracy(classRows(output), labels) * labels.length;
      if (output !== input) dispose(output);
    }
  });
  model.train(wasTraining);
  return samples === 0 ? 0 : correct / data.labels.length;
}
