/**
 * One replica of a data-parallel run: the model, the optimizer, the data in the run's order, the
 * committed step count and the lineage of every step applied. Every worker holds one; so does
 * the single-process reference. A step is `computeShard` for shards (on any replica), the tree
 * sum of their gradients (`reduceTree`), and `apply` of that sum on every replica: identical
 * inputs and identical code, so the replicas stay bit-identical.
 *
 * `apply` is idempotent by step number: it applies step s only to a replica at step s (a commit
 * heard twice is ignored, one for a later step is refused), and counts how often each step was
 * applied, so the audit can prove that no step was applied twice or skipped.
 */
import { Random, type RandomState } from '../../actor/Random.js';
import { backward, disposeGraph } from '../autograd.js';
import { type Batch, DataLoader, type LoaderState } from '../data/DataLoader.js';
import { crossEntropy } from '../losses.js';
import type { Module, Parameter } from '../nn/Module.js';
import { mul } from '../ops/elementwise.js';
import { fromData } from '../Tensor.js';
import type { RunIdentity } from '../training/checkpointFiles.js';
import { loaderPositionAfter } from '../training/checkpointManifest.js';
import { TrainingError } from '../training/errors.js';
import type { ModelFactory, ModelShape, OptimizerName, TrainingData } from '../training/TrainingConfig.js';
import { findRandoms, type SnapshotCopy } from '../training/TrainingSnapshot.js';
import { createOptimizer, type SlotAccess } from '../training/trainingOptimizers.js';
import { weightsSha256 } from '../training/weightsHash.js';
import { nodeKey, reduceNumbersRange, reduceRange, shardRows, type TreeNode } from './shardMath.js';

/** What a replica is built from (the same on every worker of a run). */
export interface ReplicaSpec {
  readonly model: 'mlp' | 'cnn' | ModelFactory;
  readonly factory: ModelFactory;
  readonly optimizer: OptimizerName;
  readonly learningRate: number;
  readonly batchSize: number;
  readonly shards: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly plannedSteps: number;
}

/** The state a joining worker receives: enough to continue bit for bit. */
export interface ReplicaState {
  readonly step: number;
  readonly weights: Float32Array[];
  readonly slots: Record<string, Float32Array[]>;
  readonly optimizerStepCount: number;
  readonly learningRate: number;
  readonly loader: LoaderState;
  readonly randoms: Record<string, RandomState>;
  /** Per step: epoch, first sample position, batch size, times applied; loss per step. */
  readonly lineage: { epochs: Int32Array; starts: Int32Array; sizes: Int32Array; applied: Int32Array };
  readonly losses: Float64Array;
}

export interface ShardResult {
  readonly gradient: Float32Array;
  /** The shard's summed loss over 1/B: shard losses add up to the batch's mean loss. */
  readonly loss: number;
}

export class ShardedReplica {
  readonly module: Module;
  readonly parameters: readonly Parameter[];
  readonly optimizer: SlotAccess;
  readonly shape: ModelShape;
  readonly parameterNames: string[];
  readonly parameterShapes: number[][];
  /** Floats in one gradient (all parameters, concatenated in parameter order). */
  readonly gradientLength: number;
  readonly stepsPerEpoch: number;
  #step = 0;
  readonly #loader: DataLoader;
  readonly #randoms: Map<string, Random>;
  #batch: { step: number; batch: Batch } | undefined;
  readonly #epochs: Int32Array;
  readonly #starts: Int32Array;
  readonly #sizes: Int32Array;
  readonly #applied: Int32Array;
  readonly #losses: Float64Array;

  constructor(
    readonly spec: ReplicaSpec,
    readonly data: TrainingData,
  ) {
    this.shape = { featureShape: data.train.featureShape, numClasses: data.train.numClasses };
    this.module = spec.factory(this.shape, new Random(spec.seed));
    const named = this.module.namedParameters();
    this.parameterNames = named.map(([name]) => name);
    this.parameterShapes = named.map(([, parameter]) => [...parameter.shape]);
    this.parameters = named.map(([, parameter]) => parameter);
    this.gradientLength = this.parameters.reduce((total, parameter) => total + parameter.size, 0);
    this.optimizer = createOptimizer(spec.optimizer, this.parameters, spec.learningRate);
    this.#loader = new DataLoader(data.train, {
      batchSize: spec.batchSize,
      shuffle: spec.shuffle,
      seed: spec.seed,
    });
    this.#randoms = findRandoms(this.module);
    this.stepsPerEpoch = Math.ceil(data.train.length / spec.batchSize);
    const planned = spec.plannedSteps;
    this.#epochs = new Int32Array(planned).fill(-1);
    this.#starts = new Int32Array(planned);
    this.#sizes = new Int32Array(planned);
    this.#applied = new Int32Array(planned);
    this.#losses = new Float64Array(planned).fill(Number.NaN);
  }

  /** Steps applied (the next step to run). */
  get step(): number {
    return this.#step;
  }

  /** The identity a checkpoint of this run carries (the training checkpoint format's). */
  identity(): RunIdentity {
    const { model, optimizer, batchSize, seed, shuffle } = this.spec;
    return {
      model: typeof model === 'string' ? model : `factory:${model.name || 'anonymous'}`,
      optimizer,
      batchSize,
      seed,
      shuffle,
      datasetLength: this.data.train.length,
      parameterNames: this.parameterNames,
    };
  }

  /** The global batch of `step` (the loader's order: epoch and position follow from the step). */
  batchOf(step: number): Batch {
    if (this.#batch?.step === step) return this.#batch.batch;
    const epoch = Math.floor(step / this.stepsPerEpoch);
    const position = (step % this.stepsPerEpoch) * this.spec.batchSize;
    const loader = this.#loader;
    if (loader.epoch !== epoch || loader.position !== position) {
      loader.restore(this.#loaderAt(epoch, position));
    }
    const batch = loader.next();
    if (batch === undefined) throw new TrainingError('lineage_broken', `step ${step} has no batch`);
    this.#batch = { step, batch };
    return batch;
  }

  /** The gradient of shard `shard` of `step`'s batch at the current weights (see shardMath.ts). */
  computeShard(step: number, shard: number): ShardResult {
    if (step !== this.#step) {
      throw new TrainingError(
        'lineage_broken',
        `shard ${shard} of step ${step} asked of a replica at step ${this.#step}`,
      );
    }
    const batch = this.batchOf(step);
    const { start, end } = shardRows(batch.size, this.spec.shards, shard);
    const gradient = new Float32Array(this.gradientLength);
    if (end === start) return { gradient, loss: 0 };
    // Every shard starts from allocated, zeroed gradients, so every replica runs the same kernels.
    for (const parameter of this.parameters) {
      if (parameter.grad === null) parameter.grad = new Float32Array(parameter.size);
      else parameter.grad.fill(0);
    }
    const rowSize = batch.inputs.length / batch.size;
    // x: (rows, ...featureShape)
    const input = fromData(batch.inputs.slice(start * rowSize, end * rowSize), [
      end - start,
      ...batch.featureShape,
    ]);
    const output = this.module.forward(input);
    const summed = crossEntropy(output, batch.labels.slice(start, end), { reduction: 'sum' });
    const scaled = mul(summed, 1 / batch.size);
    const loss = scaled.data[0];
    backward(scaled);
    disposeGraph(scaled);
    let offset = 0;
    for (const parameter of this.parameters) {
      gradient.set(parameter.grad!, offset);
      offset += parameter.size;
    }
    return { gradient, loss };
  }

  /**
   * The sum of a subtree's shard gradients (and losses) at the current weights, by the tree: the
   * part a worker holding shards [node.lo, node.hi) sends (see shardMath.ts).
   */
  computeNode(step: number, node: TreeNode): ShardResult {
    const leaves = new Map<string, Float32Array>();
    const losses = new Map<string, number>();
    for (let shard = node.lo; shard < node.hi; shard++) {
      const { gradient, loss } = this.computeShard(step, shard);
      const key = nodeKey({ lo: shard, hi: shard + 1 });
      leaves.set(key, gradient);
      losses.set(key, loss);
    }
    return {
      gradient: reduceRange(node.lo, node.hi, leaves)!,
      loss: reduceNumbersRange(node.lo, node.hi, losses),
    };
  }

  /**
   * Applies step `step` with the tree-summed gradient: the optimizer's one update. Returns false
   * (and changes nothing) when the replica is past `step` already; throws when it is behind.
   */
  apply(step: number, gradient: Float32Array, loss: number): boolean {
    if (step < this.#step) return false;
    if (step > this.#step)
      throw new TrainingError('lineage_broken', `step ${step} applied to a replica at step ${this.#step}`);
    if (gradient.length !== this.gradientLength)
      throw new TrainingError(
        'lineage_broken',
        `a gradient of ${gradient.length} floats, not ${this.gradientLength}`,
      );
    const batch = this.batchOf(step);
    let offset = 0;
    for (const parameter of this.parameters) {
      if (parameter.grad === null) parameter.grad = new Float32Array(parameter.size);
      parameter.grad.set(gradient.subarray(offset, offset + parameter.size));
      offset += parameter.size;
    }
    this.optimizer.optimizer.step();
    this.optimizer.optimizer.zeroGrad();
    const epoch = Math.floor(step / this.stepsPerEpoch);
    this.#epochs[step] = epoch;
    this.#starts[step] = (step % this.stepsPerEpoch) * this.spec.batchSize;
    this.#sizes[step] = batch.size;
    this.#applied[step]++;
    this.#losses[step] = loss;
    this.#step = step + 1;
    return true;
  }

  /** Loss of each applied step (NaN for steps not applied). */
  get losses(): Float64Array {
    return this.#losses;
  }

  /**
   * The lineage audit over every planned step up to `lastStep`: lost steps (never applied, or a
   * break in the tiling of an epoch's samples: a gap or an overlap) and repeated steps (applied
   * more than once).
   */
  audit(lastStep = this.spec.plannedSteps): {
    lostSteps: number;
    repeatedSteps: number;
    appliedSteps: number;
  } {
    let lostSteps = 0;
    let repeatedSteps = 0;
    let appliedSteps = 0;
    let expectedEpoch = 0;
    let expectedStart = 0;
    const length = this.data.train.length;
    for (let step = 0; step < Math.min(lastStep, this.spec.plannedSteps); step++) {
      if (this.#applied[step] === 0) {
        lostSteps++;
        continue;
      }
      appliedSteps++;
      if (this.#applied[step] > 1) repeatedSteps++;
      if (expectedStart >= length) {
        expectedEpoch++;
        expectedStart = 0;
      }
      if (this.#epochs[step] !== expectedEpoch || this.#starts[step] !== expectedStart) lostSteps++;
      expectedEpoch = this.#epochs[step];
      expectedStart = this.#starts[step] + this.#sizes[step];
    }
    return { lostSteps, repeatedSteps, appliedSteps };
  }

  weightsSha256(): string {
    return weightsSha256(this.module);
  }

  /** A deep copy of everything a joining worker needs. */
  exportState(): ReplicaState {
    const slots: Record<string, Float32Array[]> = {};
    for (const name of this.optimizer.slotNames())
      slots[name] = this.optimizer.slotBuffers(name).map((buffer) => buffer.slice());
    const randoms: Record<string, RandomState> = {};
    for (const [path, random] of this.#randoms) randoms[path] = random.getState();
    return {
      step: this.#step,
      weights: this.parameters.map((parameter) => parameter.data.slice()),
      slots,
      optimizerStepCount: this.optimizer.optimizer.stepCount,
      learningRate: this.optimizer.optimizer.learningRate,
      loader: this.loaderState(),
      randoms,
      lineage: {
        epochs: this.#epochs.slice(),
        starts: this.#starts.slice(),
        sizes: this.#sizes.slice(),
        applied: this.#applied.slice(),
      },
      losses: this.#losses.slice(),
    };
  }

  /** Replaces this replica's state by `state` (checked against the run's shapes first). */
  importState(state: ReplicaState): void {
    const fail = (what: string): never => {
      throw new TrainingError('lineage_broken', `the state received does not fit this run: ${what}`);
    };
    if (state.weights.length !== this.parameters.length) fail('parameter count');
    state.weights.forEach((weights, index) => {
      if (weights.length !== this.parameters[index].size) fail(`parameter ${this.parameterNames[index]}`);
    });
    if (state.lineage.applied.length !== this.spec.plannedSteps) fail('planned steps');
    this.parameters.forEach((parameter, index) => {
      parameter.data.set(state.weights[index]);
    });
    for (const name of this.optimizer.slotNames())
      if (state.slots[name] === undefined)
        for (const buffer of this.optimizer.slotBuffers(name)) buffer.fill(0);
    for (const [name, buffers] of Object.entries(state.slots)) {
      const live = this.optimizer.slotBuffers(name);
      buffers.forEach((buffer, index) => {
        live[index].set(buffer);
      });
    }
    this.optimizer.optimizer.stepCount = state.optimizerStepCount;
    this.optimizer.optimizer.learningRate = state.learningRate;
    this.optimizer.optimizer.zeroGrad();
    for (const [path, random] of this.#randoms) {
      const saved = state.randoms[path];
      if (saved !== undefined) random.setState(saved);
    }
    this.#epochs.set(state.lineage.epochs);
    this.#starts.set(state.lineage.starts);
    this.#sizes.set(state.lineage.sizes);
    this.#applied.set(state.lineage.applied);
    this.#losses.set(state.losses);
    this.#step = state.step;
    this.#batch = undefined;
  }

  /** The loader's position after the steps applied (the checkpoint format's `loader`). */
  loaderState(): LoaderState {
    const { epoch, position } = loaderPositionAfter(this.#step, this.spec.batchSize, this.data.train.length);
    return this.#loaderAt(epoch, position);
  }

  /** This replica's loader state at `epoch` and `position`. */
  #loaderAt(epoch: number, position: number): LoaderState {
    return {
      version: 1,
      epoch,
      position,
      seed: this.spec.seed,
      shuffle: this.spec.shuffle,
      batchSize: this.spec.batchSize,
      dropLast: false,
      datasetLength: this.data.train.length,
    };
  }

  /** The state as the training checkpoint format holds it. */
  snapshotCopy(): SnapshotCopy {
    const state = this.exportState();
    const inEpoch = this.#step % this.stepsPerEpoch;
    let lossSum = 0;
    for (let step = this.#step - inEpoch; step < this.#step; step++) lossSum += this.#losses[step];
    return {
      step: state.step,
      parameterNames: this.parameterNames,
      parameterShapes: this.parameterShapes,
      weights: state.weights,
      optimizerKind: this.optimizer.optimizer.kind,
      optimizerStepCount: state.optimizerStepCount,
      learningRate: state.learningRate,
      slots: new Map(Object.entries(state.slots)),
      loader: state.loader,
      randoms: state.randoms,
      microBatchSize: this.spec.batchSize,
      deviceId: 'cpu:0',
      epochProgress: { steps: inEpoch, lossSum: Math.max(0, lossSum) },
    };
  }

  /**
   * Loads a persisted checkpoint (`readCheckpoint`'s copy). The steps before it count as applied
   * once, on the samples the run's order gives them (the checkpoint format keeps no per-step
   * lineage; its manifest's loader position is checked against the step when it is read).
   */
  loadCopy(copy: SnapshotCopy): void {
    const lineage = {
      epochs: new Int32Array(this.spec.plannedSteps).fill(-1),
      starts: new Int32Array(this.spec.plannedSteps),
      sizes: new Int32Array(this.spec.plannedSteps),
      applied: new Int32Array(this.spec.plannedSteps),
    };
    const length = this.data.train.length;
    for (let step = 0; step < copy.step; step++) {
      const start = (step % this.stepsPerEpoch) * this.spec.batchSize;
      lineage.epochs[step] = Math.floor(step / this.stepsPerEpoch);
      lineage.starts[step] = start;
      lineage.sizes[step] = Math.min(this.spec.batchSize, length - start);
      lineage.applied[step] = 1;
    }
    // Per-step losses before the checkpoint are not kept: its epoch's loss sum stands on its last step.
    const losses = new Float64Array(this.spec.plannedSteps).fill(Number.NaN);
    const epochStart = copy.step - copy.epochProgress.steps;
    for (let step = epochStart; step < copy.step; step++) losses[step] = 0;
    if (copy.step > epochStart) losses[copy.step - 1] = copy.epochProgress.lossSum;
    this.importState({
      step: copy.step,
      weights: [...copy.weights],
      slots: Object.fromEntries([...copy.slots].map(([name, buffers]) => [name, [...buffers]])),
      optimizerStepCount: copy.optimizerStepCount,
      learningRate: copy.learningRate,
      loader: copy.loader,
      randoms: { ...copy.randoms },
      lineage,
      losses,
    });
  }
}
