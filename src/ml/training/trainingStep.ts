/**
 * One optimizer step, optionally in micro-batches. With the whole batch at once it is exactly
 * `trainStep` of the plain loop (same code, same floating-point results). With micro-batches of
 * `microBatchSize` rows, each micro-batch's summed cross-entropy is scaled by 1 / batch size and
 * back-propagated, so the gradients add up to those of the mean loss over the whole batch: the
 * effective batch is unchanged (up to float rounding order), then the optimizer steps once.
 */

import { backward, disposeGraph } from '../autograd.js';
import type { Batch } from '../data/DataLoader.js';
import { crossEntropy } from '../losses.js';
import type { Module } from '../nn/Module.js';
import { mul } from '../ops/elementwise.js';
import type { Optimizer } from '../optim/Optimizer.js';
import { fromData } from '../Tensor.js';
import { classRows, trainStep } from '../train.js';

/**
 * Runs forward, backward and the update for `batch`; returns the batch's mean loss. With
 * `labelSize` labels per sample (sequence data), the model outputs (N, ...labelShape, C) and
 * the loss is the mean over every label.
 */
export function runTrainingStep(
  model: Module,
  optimizer: Optimizer,
  batch: Batch,
  microBatchSize: number,
  labelSize = 1,
): number {
  if (microBatchSize >= batch.size) return trainStep(model, optimizer, batch);
  const rowSize = batch.inputs.length / batch.size;
  const scale = 1 / (batch.size * labelSize);
  let total = 0;
  for (let start = 0; start < batch.size; start += microBatchSize) {
    const size = Math.min(microBatchSize, batch.size - start);
    // x: (size, ...featureShape)
    const input = fromData(batch.inputs.subarray(start * rowSize, (start + size) * rowSize), [
      size,
      ...batch.featureShape,
    ]);
    const output = model.forward(input);
    const labels = batch.labels.subarray(start * labelSize, (start + size) * labelSize);
    const summed = crossEntropy(classRows(output), labels, { reduction: 'sum' });
    const scaled = mul(summed, scale);
    total += scaled.data[0];
    backward(scaled);
    disposeGraph(scaled);
  }
  optimizer.stepAndZeroGrad();
  return total;
}
