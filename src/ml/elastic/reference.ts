/**
 * The single-process reference of sharded data-parallel training: one replica computes every
 * shard of every step, in shard order, sums them by the same tree and applies the same update.
 * Its `weightsSha256` is what any number of workers, through any losses and joins, must give.
 */
import { evaluateAccuracy } from '../train.js';
import { TrainingError } from '../training/errors.js';
import { modelFactoryOf } from '../training/models.js';
import type { EpochReport, ResolvedTrainingConfig, TrainingData } from '../training/TrainingConfig.js';
import { type ReplicaSpec, ShardedReplica } from './ShardedReplica.js';
import { nodeKey, reduceNumbers, reduceTree } from './shardMath.js';

export interface ShardedRun {
  readonly replica: ShardedReplica;
  readonly steps: number;
  readonly loss: number;
  readonly stepsPerSec: number;
  readonly epochs: EpochReport[];
}

export function referenceSpecOf(
  config: ResolvedTrainingConfig,
  shards: number,
  datasetLength: number,
): ReplicaSpec {
  const stepsPerEpoch = Math.ceil(datasetLength / config.batchSize);
  if (config.model === 'gpt')
    throw new TrainingError(
      'invalid_config',
      "model 'gpt' trains in one process; data-parallel workers and shards take 'mlp' or 'cnn'",
    );
  return {
    model: config.model,
    factory: modelFactoryOf(config.model),
    optimizer: config.optimizer,
    learningRate: config.learningRate,
    batchSize: config.batchSize,
    shards,
    seed: config.seed,
    shuffle: config.shuffle,
    plannedSteps: Math.min(config.maxSteps, config.epochs * stepsPerEpoch),
  };
}

/** Runs one step on `replica` alone: every shard, the tree sum, the update. Returns the step's loss. */
export function referenceStep(replica: ShardedReplica): number {
  const step = replica.step;
  const shards = replica.spec.shards;
  const parts = new Map<string, Float32Array>();
  const losses = new Map<string, number>();
  for (let shard = 0; shard < shards; shard++) {
    const { gradient, loss } = replica.computeShard(step, shard);
    const key = nodeKey({ lo: shard, hi: shard + 1 });
    parts.set(key, gradient);
    losses.set(key, loss);
  }
  const sum = reduceTree(shards, parts)!;
  const loss = reduceNumbers(shards, losses);
  replica.apply(step, sum, loss);
  return loss;
}

/** Trains `spec` on `data` in this process, step after step, as the reference. */
export function runShardedReference(
  spec: ReplicaSpec,
  data: TrainingData,
  options: {
    evaluateEachEpoch?: boolean;
    onStep?: (info: { step: number; epoch: number; loss: number }) => void;
  } = {},
): ShardedRun {
  const replica = new ShardedReplica(spec, data);
  const epochs: EpochReport[] = [];
  let loss = Number.NaN;
  let epochLoss = 0;
  let epochSteps = 0;
  let epochStarted = performance.now();
  const started = performance.now();
  let evaluationMs = 0;
  while (replica.step < spec.plannedSteps) {
    const step = replica.step;
    loss = referenceStep(replica);
    epochLoss += loss;
    epochSteps++;
    const epoch = Math.floor(step / replica.stepsPerEpoch);
    options.onStep?.({ step: step + 1, epoch, loss });
    if ((step + 1) % replica.stepsPerEpoch === 0 || step + 1 === spec.plannedSteps) {
      const seconds = (performance.now() - epochStarted) / 1000;
      const evaluated = performance.now();
      const testAccuracy =
        options.evaluateEachEpoch === false ? undefined : evaluateAccuracy(replica.module, data.test);
      evaluationMs += performance.now() - evaluated;
      epochs.push({
        epoch,
        meanLoss: epochLoss / epochSteps,
        testAccuracy,
        stepsPerSec: seconds > 0 ? epochSteps / seconds : 0,
        steps: epochSteps,
        step: step + 1,
      });
      epochLoss = 0;
      epochSteps = 0;
      epochStarted = performance.now();
    }
  }
  const seconds = (performance.now() - started - evaluationMs) / 1000;
  return {
    replica,
    steps: replica.step,
    loss,
    stepsPerSec: seconds > 0 ? replica.step / seconds : 0,
    epochs,
  };
}
