/**
 * What an elastic job computes, as plain JSON: the launcher writes it into the job's KV bucket
 * (`zbmd_<cluster>_dpjob`, key `spec`) and every worker, those that join later included, reads
 * it from there, so a joining process needs only the server's address and its own name.
 */
import { TrainingError } from '../training/errors.js';
import { modelFactoryOf } from '../training/models.js';
import type { OptimizerName, ResolvedTrainingConfig } from '../training/TrainingConfig.js';
import type { ReplicaSpec } from './ShardedReplica.js';

/** Default shards per global batch: fixed, not derived from the worker count. */
export const DEFAULT_SHARDS = 8;
/** At most this many shards (and workers) per job. */
export const MAX_SHARDS = 1024;
export const MAX_WORKERS = 64;

export interface JobSpec {
  readonly version: 1;
  readonly model: 'mlp' | 'cnn';
  readonly optimizer: OptimizerName;
  readonly learningRate: number;
  /** A data directory (the same path must hold the same data on every machine), or the default. */
  readonly data: string | undefined;
  readonly batchSize: number;
  readonly epochs: number;
  readonly maxSteps: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly shards: number;
  readonly checkpointDir: string | undefined;
  readonly checkpointIntervalSteps: number;
  readonly evaluate: boolean;
  /**
   * BLAS threads on every replica. OpenBLAS's sgemm does not give the same bits for every thread
   * count, so the count is part of the math: every worker (and the reference) uses this one.
   */
  readonly blasThreads: number;
  /** Leader lease (ms) of the job's cluster. */
  readonly leaseMs: number;
  /** A step whose parts have not all come after this long is redone by the leader itself. */
  readonly stepTimeoutMs: number;
}

export function jobSpecOf(
  config: ResolvedTrainingConfig,
  shards: number,
  leaseMs: number,
  blasThreads: number,
): JobSpec {
  if (typeof config.model !== 'string')
    throw new TrainingError(
      'invalid_config',
      "model = a factory: workers build their models by name ('mlp' or 'cnn')",
    );
  if (config.data !== undefined && typeof config.data !== 'string')
    throw new TrainingError(
      'invalid_config',
      'data = loaded splits: workers load their data from a directory',
    );
  if (config.model === 'gpt')
    throw new TrainingError(
      'invalid_config',
      "model 'gpt' trains in one process; data-parallel workers and shards take 'mlp' or 'cnn'",
    );
  return {
    version: 1,
    model: config.model,
    optimizer: config.optimizer,
    learningRate: config.learningRate,
    data: config.data,
    batchSize: config.batchSize,
    epochs: config.epochs,
    maxSteps: config.maxSteps,
    seed: config.seed,
    shuffle: config.shuffle,
    shards,
    checkpointDir: config.checkpointDir,
    checkpointIntervalSteps: config.checkpointIntervalSteps,
    evaluate: true,
    blasThreads,
    leaseMs,
    stepTimeoutMs: 10_000,
  };
}

/** Checks a spec read from the bucket, field by field. */
export function checkJobSpec(value: unknown): JobSpec {
  const fail = (field: string, allowed: string): never => {
    throw new TrainingError('invalid_config', `the job's spec: ${field} must be ${allowed}`);
  };
  if (typeof value !== 'object' || value === null) fail('spec', 'an object');
  const spec = value as Record<string, unknown>;
  const integer = (field: string, min: number, max: number) => {
    const field_ = spec[field];
    if (typeof field_ !== 'number' || !Number.isInteger(field_) || field_ < min || field_ > max)
      fail(field, `an integer from ${min} to ${max}`);
  };
  if (spec.version !== 1) fail('version', '1');
  if (spec.model !== 'mlp' && spec.model !== 'cnn') fail('model', "'mlp' or 'cnn'");
  if (!['sgd', 'adam', 'adamw'].includes(spec.optimizer as string))
    fail('optimizer', "'sgd', 'adam' or 'adamw'");
  if (typeof spec.learningRate !== 'number' || !(spec.learningRate > 0 && spec.learningRate <= 10))
    fail('learningRate', 'a number in (0, 10]');
  if (spec.data !== undefined && spec.data !== null && typeof spec.data !== 'string') fail('data', 'a path');
  integer('batchSize', 1, 65_536);
  integer('epochs', 1, 10_000);
  integer('maxSteps', 1, Number.MAX_SAFE_INTEGER);
  integer('seed', 0, Number.MAX_SAFE_INTEGER);
  if (typeof spec.shuffle !== 'boolean') fail('shuffle', 'a boolean');
  integer('shards', 1, MAX_SHARDS);
  if (
    spec.checkpointDir !== undefined &&
    spec.checkpointDir !== null &&
    typeof spec.checkpointDir !== 'string'
  )
    fail('checkpointDir', 'a path');
  integer('checkpointIntervalSteps', 1, 1_000_000);
  if (typeof spec.evaluate !== 'boolean') fail('evaluate', 'a boolean');
  integer('blasThreads', 1, 256);
  integer('leaseMs', 100, 600_000);
  integer('stepTimeoutMs', 100, 3_600_000);
  return {
    ...(spec as unknown as JobSpec),
    data: (spec.data as string | null) ?? undefined,
    checkpointDir: (spec.checkpointDir as string | null) ?? undefined,
  };
}

/** The replica a spec builds, for a data set of `datasetLength` training samples. */
export function replicaSpecOf(spec: JobSpec, datasetLength: number): ReplicaSpec {
  const stepsPerEpoch = Math.ceil(datasetLength / spec.batchSize);
  return {
    model: spec.model,
    factory: modelFactoryOf(spec.model),
    optimizer: spec.optimizer,
    learningRate: spec.learningRate,
    batchSize: spec.batchSize,
    shards: spec.shards,
    seed: spec.seed,
    shuffle: spec.shuffle,
    plannedSteps: Math.min(spec.maxSteps, spec.epochs * stepsPerEpoch),
  };
}
