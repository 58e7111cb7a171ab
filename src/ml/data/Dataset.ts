import { DatasetError } from './DatasetError.js';

/**
 * A labelled data set held in memory: `length` samples, each a row of `prod(featureShape)`
 * float32 features (row-major, sample after sample) and one class label in [0, numClasses).
 */
export interface Dataset {
  readonly length: number;
  readonly featureShape: readonly number[];
  readonly numClasses: number;
  /** length * prod(featureShape) values, row-major. */
  features: Float32Array;
  /** length labels, each in [0, numClasses); length * prod(labelShape) with a `labelShape`. */
  labels: Int32Array;
  /**
   * Labels per sample, for sequence data (a language model's next tokens: [T]); absent or []:
   * one label per sample. A model trained on it outputs (N, ...labelShape, numClasses).
   */
  readonly labelShape?: readonly number[];
}

/** Labels per sample: the product of `labelShape` (1 without one). */
export function labelSizeOf(dataset: { readonly labelShape?: readonly number[] }): number {
  return featureSizeOf(dataset.labelShape ?? []);
}

/** What `InMemoryDataset` is built from; `numClasses` defaults to the largest label + 1. */
export interface InMemoryDatasetInit {
  features: Float32Array;
  labels: Int32Array;
  featureShape: readonly number[];
  numClasses?: number;
}

/** Number of features per sample: the product of `featureShape` (1 for a scalar shape []). */
export function featureSizeOf(featureShape: readonly number[]): number {
  let size = 1;
  for (const dimension of featureShape) size *= dimension;
  return size;
}

/**
 * A `Dataset` over arrays the caller provides (kept, not copied). The constructor checks that
 * the shapes agree and every label is in range, and throws `DatasetError` `invalid_dataset`
 * saying what is wrong.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { InMemoryDataset } from 'zbmd/ml';
 *
 * const xor = new InMemoryDataset({
 *   features: new Float32Array([0, 0, 0, 1, 1, 0, 1, 1]),
 *   labels: new Int32Array([0, 1, 1, 0]),
 *   featureShape: [2],
 * });
 * assert.equal(xor.length, 4);
 * ```
 */
export class InMemoryDataset implements Dataset {
  readonly length: number;
  readonly featureShape: readonly number[];
  readonly numClasses: number;
  features: Float32Array;
  labels: Int32Array;

  constructor(init: InMemoryDatasetInit) {
    const { features, labels, featureShape } = init;
    if (!(features instanceof Float32Array) || !(labels instanceof Int32Array)) {
      throw new DatasetError('invalid_dataset', 'features must be a Float32Array and labels an Int32Array');
    }
    if (!Array.isArray(featureShape) || !featureShape.every((d) => Number.isSafeInteger(d) && d > 0)) {
      throw new DatasetError(
        'invalid_dataset',
        `featureShape must be an array of positive integers, got ${JSON.stringify(featureShape)}`,
      );
    }
    const size = featureSizeOf(featureShape);
    if (features.length !== labels.length * size) {
      throw new DatasetError(
        'invalid_dataset',
        `${labels.length} labels with feature shape ${JSON.stringify(featureShape)} need ${labels.length * size} features, got ${features.length}`,
      );
    }
    const numClasses = init.numClasses ?? maximumLabel(labels) + 1;
    if (!Number.isSafeInteger(numClasses) || numClasses < 1) {
      throw new DatasetError('invalid_dataset', `numClasses must be a positive integer, got ${numClasses}`);
    }
    checkLabels(labels, numClasses);
    this.length = labels.length;
    this.featureShape = Object.freeze([...featureShape]);
    this.numClasses = numClasses;
    this.features = features;
    this.labels = labels;
  }
}

function maximumLabel(labels: Int32Array): number {
  let maximum = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] > maximum) maximum = labels[i];
  return maximum;
}

function checkLabels(labels: Int32Array, numClasses: number): void {
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (label < 0 || label >= numClasses) {
      throw new DatasetError(
        'invalid_dataset',
        `label ${label} of sample ${i} is outside [0, ${numClasses})`,
      );
    }
  }
}

/**
 * Samples [start, end) of `dataset` as a new data set whose arrays are views of the original
 * (no copy), e.g. to hold out a validation split or to train on a quick subset.
 */
export function sliceDataset(dataset: Dataset, start: number, end = dataset.length): InMemoryDataset {
  if (
    !Number.isSafeInteger(start) ||
    !Number.isSafeInteger(end) ||
    start < 0 ||
    end > dataset.length ||
    start > end
  ) {
    throw new DatasetError(
      'invalid_dataset',
      `slice [${start}, ${end}) is not within [0, ${dataset.length}]`,
    );
  }
  const size = featureSizeOf(dataset.featureShape);
  return new InMemoryDataset({
    features: dataset.features.subarray(start * size, end * size),
    labels: dataset.labels.subarray(start, end),
    featureShape: dataset.featureShape,
    numClasses: dataset.numClasses,
  });
}
