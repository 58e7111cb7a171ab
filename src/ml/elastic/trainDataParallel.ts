/**
 * The entry `train()` takes for data-parallel options: `workers` (a local job), `join` (one
 * worker of a running job), or `shards` alone (the single-process reference).
 */
import { blasInfo, setBlasThreads } from '../internal/blas.js';
import { TrainingError } from '../training/errors.js';
import { resolveTrainingConfig, type TrainingConfig } from '../training/TrainingConfig.js';
import type { TrainingResult } from '../training/train.js';
import { loadTrainingData } from '../training/trainingData.js';
import { DEFAULT_SHARDS, MAX_SHARDS, MAX_WORKERS } from './jobSpec.js';
import { type ElasticOptions, joinJob, launchJob } from './launch.js';
import { referenceSpecOf, runShardedReference } from './reference.js';

function integerField(field: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw new TrainingError(
      'invalid_config',
      `${field} = ${JSON.stringify(value)}: expected an integer from ${min} to ${max}`,
    );
  return value;
}

/** The data-parallel options, checked field by field. */
export function elasticOptionsOf(config: TrainingConfig): ElasticOptions {
  const shards = integerField('shards', config.shards, 1, MAX_SHARDS);
  const workers = integerField('workers', config.workers, 1, MAX_WORKERS);
  const blasThreads = integerField('blasThreads', config.blasThreads, 1, 256);
  const initialWorkers = integerField('initialWorkers', config.initialWorkers, 1, MAX_WORKERS);
  if (
    config.join !== undefined &&
    (typeof config.join !== 'string' || !/^nats:\/\/[^\s/]+$/.test(config.join))
  )
    throw new TrainingError(
      'invalid_config',
      `join = ${JSON.stringify(config.join)}: expected nats://HOST:PORT`,
    );
  if (config.join !== undefined && workers !== undefined)
    throw new TrainingError(
      'invalid_config',
      'join and workers together: start a job (workers) or join one (join), not both',
    );
  if (config.join !== undefined && config.name === undefined)
    throw new TrainingError('invalid_config', 'join needs name (the worker name, e.g. w3)');
  if (
    config.cluster !== undefined &&
    (typeof config.cluster !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(config.cluster))
  )
    throw new TrainingError(
      'invalid_config',
      `cluster = ${JSON.stringify(config.cluster)}: expected 1 to 64 letters, digits, '-' or '_'`,
    );
  return {
    shards: shards ?? DEFAULT_SHARDS,
    workers,
    join: config.join,
    name: config.name,
    cluster: config.cluster,
    blasThreads,
    initialWorkers,
    onWorkerStarted: config.onWorkerStarted,
    onJobEvent: config.onJobEvent,
    jobSilenceTimeoutMs: integerField('jobSilenceTimeoutMs', config.jobSilenceTimeoutMs, 100, 86_400_000),
    orphanSilenceMs: integerField('orphanSilenceMs', config.orphanSilenceMs, 100, 86_400_000),
  };
}

export async function trainDataParallel(config: TrainingConfig): Promise<TrainingResult> {
  const options = elasticOptionsOf(config);
  if (options.join !== undefined) {
    // the job's spec comes from its bucket: only the connection options matter here
    return joinJob(resolveTrainingConfig({ model: 'mlp', progress: config.progress }), options);
  }
  const resolved = resolveTrainingConfig(config);
  if (options.workers !== undefined) return launchJob(resolved, options);
  if (resolved.checkpointDir !== undefined)
    throw new TrainingError(
      'invalid_config',
      'checkpointDir with shards alone: the single-process reference keeps no checkpoints (add workers)',
    );
  const started = performance.now();
  const data = await loadTrainingData(resolved.data);
  const spec = referenceSpecOf(resolved, options.shards!, data.train.length);
  // The BLAS thread count is part of the math (see JobSpec.blasThreads): the workers' default is 1.
  const previousThreads = blasInfo().threads;
  setBlasThreads(options.blasThreads ?? 1);
  let run: ReturnType<typeof runShardedReference>;
  try {
    run = runShardedReference(spec, data, {
      evaluateEachEpoch: resolved.evaluateEachEpoch,
      onStep: resolved.onStep,
    });
  } finally {
    setBlasThreads(previousThreads);
  }
  for (const epoch of run.epochs) resolved.onEpoch?.(epoch);
  const { evaluateAccuracy } = await import('../train.js');
  const audit = run.replica.audit();
  return {
    model: run.replica.module,
    finalTestAccuracy: evaluateAccuracy(run.replica.module, data.test),
    loss: run.loss,
    elapsedMs: performance.now() - started,
    steps: run.steps,
    stepsPerSec: run.stepsPerSec,
    recoveries: [],
    lostSteps: audit.lostSteps,
    weightsSha256: run.replica.weightsSha256(),
    epochs: run.epochs,
    resumedFromStep: 0,
    devicesUsed: ['cpu:0'],
    tensorBackend: 'cpu',
    finalMicroBatchSize: resolved.batchSize,
    dataset: data.name ?? 'in-memory',
    faultsInjected: {},
    snapshotIntervalSteps: 0,
    interrupted: false,
  };
}
