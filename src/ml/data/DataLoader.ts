import { Random } from '../../actor/Random.js';
import { TaggedError } from '../../internal/errors.js';
import { type Dataset, featureSizeOf, labelSizeOf } from './Dataset.js';

/** The largest batch a loader makes: 1,048,576 samples. */
export const DATA_LOADER_MAX_BATCH_SIZE = 1 << 20;

/** Options of a `DataLoader`. */
export interface DataLoaderOptions {
  /** Samples per batch, 1 to `DATA_LOADER_MAX_BATCH_SIZE`. */
  batchSize: number;
  /** Visit samples in a new seeded random order each epoch (default false: dataset order). */
  shuffle?: boolean;
  /** Seed of the shuffles, an integer in [0, 2^53); default 0. */
  seed?: number;
  /** Skip the last, smaller batch of an epoch (default false). */
  dropLast?: boolean;
  /**
   * Gather the next batch in a `setImmediate` callback after each `next()`, so that the copy
   * overlaps whatever asynchronous work the caller awaits between batches (default false).
   * The batches are the same with or without it.
   */
  prefetch?: boolean;
}

/**
 * One batch. `inputs` holds `size * prod(featureShape)` features, row-major; `indices` (the
 * samples' rows in the data set) holds `size` values, `labels` `size * prod(labelShape)` (one
 * per sample without a `labelShape`).
 *
 * A batch is valid until the next call of `next()`, `reset()` or `restore()` on its loader:
 * the loader reuses its buffers, and without shuffling `inputs` and `labels` are views of the
 * data set itself. Copy what must outlive that (`batch.inputs.slice()`), and never write to it.
 */
export interface Batch {
  inputs: Float32Array;
  labels: Int32Array;
  indices: Int32Array;
  size: number;
  featureShape: readonly number[];
}

/**
 * A loader's position, plain JSON. The order of samples in an epoch is a function of `seed`,
 * `shuffle` and `epoch` alone (the permutation is regenerated from a generator seeded with
 * both), so `epoch` and `position` (samples of the epoch already handed out) pin down every
 * batch still to come. `batchSize` and `dropLast` record how the loader was set up.
 */
export interface LoaderState {
  version: 1;
  epoch: number;
  position: number;
  seed: number;
  shuffle: boolean;
  batchSize: number;
  dropLast: boolean;
  datasetLength: number;
}

/** Why a loader could not be built or restored. */
export type DataLoaderErrorCode = 'invalid_option' | 'invalid_state' | 'state_mismatch';

/** A loader option or saved state that cannot be used; `code` says which. */
export class DataLoaderError extends TaggedError('DataLoaderError') {
  constructor(
    readonly code: DataLoaderErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** True when `error` is a `DataLoaderError` (optionally with the given code). */
export function isDataLoaderError(error: unknown, code?: DataLoaderErrorCode): error is DataLoaderError {
  return error instanceof DataLoaderError && (code === undefined || error.code === code);
}

interface BatchBuffer {
  readonly inputs: Float32Array;
  readonly labels: Int32Array;
  readonly indices: Int32Array;
}

interface Prefetched {
  readonly epoch: number;
  readonly position: number;
  readonly batch: Batch;
}

/**
 * Hands out a data set in batches, epoch after epoch, with optional seeded shuffling, and a
 * position that can be saved (`state()`) and restored (`restore()`) exactly.
 *
 * `next()` returns the batches of the current epoch, then `undefined` once, at which point the
 * loader has moved to the start of the next epoch. Iterating (`for (const batch of loader)`)
 * yields the rest of the current epoch; a loop over epochs is therefore a loop around it.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { DataLoader, InMemoryDataset } from 'zbmd/ml';
 *
 * const train = new InMemoryDataset({
 *   features: new Float32Array(100 * 2).map((_, i) => i),
 *   labels: new Int32Array(100).map((_, i) => i % 2),
 *   featureShape: [2],
 * });
 * const loader = new DataLoader(train, { batchSize: 32, shuffle: true, seed: 1 });
 * let rows = 0;
 * for (const batch of loader) rows += batch.size; // one epoch: 32 + 32 + 32 + 4
 * assert.equal(rows, 100);
 * const saved = JSON.stringify(loader.state()); // later: loader.restore(JSON.parse(saved))
 * loader.restore(JSON.parse(saved));
 * ```
 */
export class DataLoader {
  readonly #dataset: Dataset;
  readonly #batchSize: number;
  readonly #dropLast: boolean;
  readonly #prefetch: boolean;
  readonly #featureSize: number;
  readonly #labelSize: number;
  readonly #buffers: BatchBuffer[];
  #shuffle: boolean;
  #seed: number;
  #epoch = 0;
  #position = 0;
  #order: Int32Array | undefined;
  #orderEpoch = -1;
  #nextBuffer = 0;
  #prefetched: Prefetched | undefined;
  #prefetchHandle: NodeJS.Immediate | undefined;

  constructor(dataset: Dataset, options: DataLoaderOptions) {
    checkOptions(dataset, options);
    this.#dataset = dataset;
    this.#batchSize = options.batchSize;
    this.#shuffle = options.shuffle ?? false;
    this.#seed = options.seed ?? 0;
    this.#dropLast = options.dropLast ?? false;
    this.#prefetch = options.prefetch ?? false;
    this.#featureSize = featureSizeOf(dataset.featureShape);
    this.#labelSize = labelSizeOf(dataset);
    const bufferCount = this.#prefetch ? 2 : 1;
    const rows = Math.min(this.#batchSize, dataset.length);
    this.#buffers = Array.from({ length: bufferCount }, () => ({
      inputs: new Float32Array(rows * this.#featureSize),
      labels: new Int32Array(rows * this.#labelSize),
      indices: new Int32Array(rows),
    }));
  }

  /** The current epoch, counted from 0. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Samples of the current epoch already handed out. */
  get position(): number {
    return this.#position;
  }

  /** Batches in one epoch. */
  get batchesPerEpoch(): number {
    return Math.ceil(this.#epochEnd() / this.#batchSize);
  }

  /** The next batch of the current epoch, or `undefined` at its end (then the next epoch begins). */
  next(): Batch | undefined {
    const end = this.#epochEnd();
    if (this.#position >= end) {
      this.#cancelPrefetch();
      this.#epoch++;
      this.#position = 0;
      return undefined;
    }
    const size = Math.min(this.#batchSize, end - this.#position);
    const prefetched = this.#prefetched;
    let batch: Batch;
    if (
      prefetched !== undefined &&
      prefetched.epoch === this.#epoch &&
      prefetched.position === this.#position
    ) {
      batch = prefetched.batch;
      this.#prefetched = undefined;
    } else {
      this.#cancelPrefetch();
      batch = this.#gather(this.#epoch, this.#position, size);
    }
    this.#position += size;
    if (this.#prefetch && this.#position < end) this.#schedulePrefetch(end);
    return batch;
  }

  /** Rewinds to the start of the current epoch (same order); the epoch number is kept. */
  reset(): void {
    this.#cancelPrefetch();
    this.#position = 0;
  }

  /** The position, as a plain JSON-serialisable object (see `LoaderState`). */
  state(): LoaderState {
    return {
      version: 1,
      epoch: this.#epoch,
      position: this.#position,
      seed: this.#seed,
      shuffle: this.#shuffle,
      batchSize: this.#batchSize,
      dropLast: this.#dropLast,
      datasetLength: this.#dataset.length,
    };
  }

  /**
   * Continues from a saved state: the same epoch, position, seed and shuffling, so the batches
   * that follow are those the saved loader would have made (bit for bit with the same batch
   * size; a loader with another batch size or dropLast regroups the same remaining samples).
   * Throws `invalid_state` for a malformed state and `state_mismatch` when it was saved for a
   * data set of another length.
   */
  restore(state: LoaderState): void {
    checkState(state);
    if (state.datasetLength !== this.#dataset.length) {
      throw new DataLoaderError(
        'state_mismatch',
        `the state was saved for a data set of ${state.datasetLength} samples; this one has ${this.#dataset.length}`,
      );
    }
    this.#cancelPrefetch();
    this.#epoch = state.epoch;
    this.#position = state.position;
    this.#seed = state.seed;
    this.#shuffle = state.shuffle;
    this.#orderEpoch = -1;
  }

  /** Yields the remaining batches of the current epoch. */
  *[Symbol.iterator](): Iterator<Batch> {
    for (;;) {
      const batch = this.next();
      if (batch === undefined) return;
      yield batch;
    }
  }

  #epochEnd(): number {
    const length = this.#dataset.length;
    return this.#dropLast ? length - (length % this.#batchSize) : length;
  }

  /** The order of samples in `epoch`: a seeded permutation when shuffling. */
  #orderOf(epoch: number): Int32Array | undefined {
    if (!this.#shuffle) return undefined;
    if (this.#orderEpoch !== epoch || this.#order === undefined) {
      const order = this.#order ?? new Int32Array(this.#dataset.length);
      for (let i = 0; i < order.length; i++) order[i] = i;
      new Random(permutationSeed(this.#seed, epoch)).shuffle(order);
      this.#order = order;
      this.#orderEpoch = epoch;
    }
    return this.#order;
  }

  #gather(epoch: number, position: number, size: number): Batch {
    const featureSize = this.#featureSize;
    const labelSize = this.#labelSize;
    const { features, labels, featureShape } = this.#dataset;
    const order = this.#orderOf(epoch);
    const buffer = this.#buffers[this.#nextBuffer];
    this.#nextBuffer = (this.#nextBuffer + 1) % this.#buffers.length;
    const indices = buffer.indices.subarray(0, size);
    if (order === undefined) {
      for (let i = 0; i < size; i++) indices[i] = position + i;
      return {
        inputs: features.subarray(position * featureSize, (position + size) * featureSize),
        labels: labels.subarray(position * labelSize, (position + size) * labelSize),
        indices,
        size,
        featureShape,
      };
    }
    const inputs = buffer.inputs.subarray(0, size * featureSize);
    const batchLabels = buffer.labels.subarray(0, size * labelSize);
    for (let i = 0; i < size; i++) {
      const row = order[position + i];
      indices[i] = row;
      if (labelSize === 1) batchLabels[i] = labels[row];
      else batchLabels.set(labels.subarray(row * labelSize, (row + 1) * labelSize), i * labelSize);
      inputs.set(features.subarray(row * featureSize, (row + 1) * featureSize), i * featureSize);
    }
    return { inputs, labels: batchLabels, indices, size, featureShape };
  }

  #schedulePrefetch(end: number): void {
    const epoch = this.#epoch;
    const position = this.#position;
    const size = Math.min(this.#batchSize, end - position);
    this.#prefetchHandle = setImmediate(() => {
      this.#prefetchHandle = undefined;
      this.#prefetched = { epoch, position, batch: this.#gather(epoch, position, size) };
    });
    // A pending prefetch must not keep the process alive.
    this.#prefetchHandle.unref();
  }

  #cancelPrefetch(): void {
    if (this.#prefetchHandle !== undefined) clearImmediate(this.#prefetchHandle);
    this.#prefetchHandle = undefined;
    this.#prefetched = undefined;
  }
}

/**
 * The generator seed of `epoch`'s permutation: a 64-bit mix of the loader's seed and the epoch,
 * so each epoch has its own order and any epoch's order can be rebuilt without the others.
 */
function permutationSeed(seed: number, epoch: number): bigint {
  return BigInt.asUintN(64, BigInt(seed) * 0x9e3779b97f4a7c15n + BigInt(epoch) * 0xbf58476d1ce4e5b9n + 1n);
}

function checkOptions(dataset: Dataset, options: DataLoaderOptions): void {
  const fail = (message: string) => {
    throw new DataLoaderError('invalid_option', message);
  };
  if (dataset === null || typeof dataset !== 'object' || !Number.isSafeInteger(dataset.length)) {
    fail('dataset must be a Dataset (length, featureShape, features, labels)');
  }
  if (dataset.length < 1) fail('the data set is empty; a loader needs at least one sample');
  const { batchSize, seed, dropLast } = options ?? ({} as DataLoaderOptions);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > DATA_LOADER_MAX_BATCH_SIZE) {
    fail(`batchSize must be an integer from 1 to ${DATA_LOADER_MAX_BATCH_SIZE}, got ${batchSize}`);
  }
  if (seed !== undefined && (!Number.isSafeInteger(seed) || seed < 0)) {
    fail(`seed must be an integer in [0, 2^53), got ${seed}`);
  }
  if (dropLast && batchSize > dataset.length) {
    fail(
      `batchSize ${batchSize} exceeds the ${dataset.length} samples and dropLast is set: no batch would ever come`,
    );
  }
}

function checkState(state: LoaderState): void {
  const isCount = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;
  const problems: string[] = [];
  if (state === null || typeof state !== 'object') problems.push('not an object');
  else {
    if (state.version !== 1) problems.push(`version ${JSON.stringify(state.version)} (expected 1)`);
    if (!isCount(state.epoch)) problems.push('epoch');
    if (!isCount(state.datasetLength)) problems.push('datasetLength');
    if (!isCount(state.position) || state.position > state.datasetLength) problems.push('position');
    if (!isCount(state.seed)) problems.push('seed');
    if (typeof state.shuffle !== 'boolean') problems.push('shuffle');
  }
  if (problems.length > 0) {
    throw new DataLoaderError(
      'invalid_state',
      `not a loader state from DataLoader.state(): bad ${problems.join(', ')}`,
    );
  }
}
