/**
 * The last known good state of a run, taken after every committed step: the weights, the
 * optimizer's buffers and scalars, the data loader's position and the state of every random
 * generator inside the model (dropout). Buffers are allocated once and overwritten in place
 * (`Float32Array.set`, a memcpy), so a snapshot costs one copy of the state and no allocation.
 *
 * The snapshot belongs to the run, not to an actor: it is what a restarted actor reloads, the
 * way an OTP table survives its owner through an heir.
 */
import { Random, type RandomState } from '../../actor/Random.js';
import type { LoaderState } from '../data/DataLoader.js';
import { Module, type Parameter } from '../nn/Module.js';
import { TrainingError } from './errors.js';
import type { SlotAccess } from './trainingOptimizers.js';

/** What a snapshot copies from and restores into. */
export interface TrainingParts {
  readonly parameters: readonly Parameter[];
  readonly optimizer: SlotAccess;
  readonly loader: { state(): LoaderState; restore(state: LoaderState): void };
  readonly randoms: ReadonlyMap<string, Random>;
}

/** A self-contained copy of a snapshot (what the checkpoint actor persists). */
export interface SnapshotCopy {
  readonly step: number;
  readonly parameterNames: readonly string[];
  readonly parameterShapes: readonly (readonly number[])[];
  readonly weights: readonly Float32Array[];
  readonly optimizerKind: string;
  readonly optimizerStepCount: number;
  /** Each parameter's own step count (Adam's bias correction); absent in older checkpoints (all = optimizerStepCount). */
  readonly parameterSteps?: readonly number[];
  readonly learningRate: number;
  readonly slots: ReadonlyMap<string, readonly Float32Array[]>;
  readonly loader: LoaderState;
  readonly randoms: Readonly<Record<string, RandomState>>;
  readonly microBatchSize: number;
  readonly deviceId: string;
  /** The steps of the snapshot's epoch before it, and the sum of their losses (a resumed epoch reports them all). */
  readonly epochProgress: EpochProgress;
}

export interface EpochProgress {
  readonly steps: number;
  readonly lossSum: number;
}

export class TrainingSnapshot {
  /** Steps committed when the snapshot was taken. */
  step = 0;
  microBatchSize: number;
  /** Committed steps since the last out-of-memory (the micro-batch regrows after enough of them). */
  stepsSinceOutOfMemory = 0;
  deviceId: string;
  loader: LoaderState | undefined;
  optimizerStepCount = 0;
  parameterSteps: number[] | undefined;
  learningRate = 0;
  /** Set by the driver when a step is captured: see `SnapshotCopy.epochProgress`. */
  epochProgress: EpochProgress = { steps: 0, lossSum: 0 };
  private weights: Float32Array[] = [];
  private readonly slots = new Map<string, Float32Array[]>();
  private randoms: Record<string, RandomState> = {};
  private optimizerKind = '';

  constructor(
    readonly parameterNames: readonly string[],
    readonly parameterShapes: readonly (readonly number[])[],
    batchSize: number,
    deviceId: string,
  ) {
    this.microBatchSize = batchSize;
    this.deviceId = deviceId;
  }

  /** True once a state was captured or loaded (a fresh run restores nothing). */
  get taken(): boolean {
    return this.loader !== undefined;
  }

  /** Copies the live state in, reusing this snapshot's buffers. */
  capture(parts: TrainingParts, step: number): void {
    const { parameters, optimizer } = parts;
    if (this.weights.length !== parameters.length)
      this.weights = parameters.map((p) => new Float32Array(p.size));
    for (let index = 0; index < parameters.length; index++) this.weights[index].set(parameters[index].data);
    for (const name of optimizer.slotNames()) {
      const live = optimizer.slotBuffers(name);
      let saved = this.slots.get(name);
      if (saved === undefined) {
        saved = live.map((buffer) => new Float32Array(buffer.length));
        this.slots.set(name, saved);
      }
      for (let index = 0; index < live.length; index++) saved[index].set(live[index]);
    }
    this.optimizerKind = optimizer.optimizer.kind;
    this.optimizerStepCount = optimizer.optimizer.stepCount;
    this.parameterSteps = [...optimizer.optimizer.parameterSteps];
    this.learningRate = optimizer.optimizer.learningRate;
    this.loader = parts.loader.state();
    if (parts.randoms.size > 0) this.randoms = randomStates(parts.randoms);
    this.step = step;
  }

  /** Writes the snapshot back into the live parts (a fresh snapshot restores nothing). */
  restore(parts: TrainingParts): void {
    this.restoreWeights(parts.parameters, parts.randoms);
    this.restoreOptimizer(parts.optimizer);
    this.restoreLoader(parts.loader);
  }

  restoreWeights(parameters: readonly Parameter[], randoms: ReadonlyMap<string, Random>): void {
    if (this.loader === undefined) return;
    for (let index = 0; index < parameters.length; index++) parameters[index].data.set(this.weights[index]);
    for (const [path, random] of randoms) {
      const state = this.randoms[path];
      if (state !== undefined) random.setState(state);
    }
  }

  restoreOptimizer(optimizer: SlotAccess): void {
    if (this.loader === undefined) return;
    for (const name of optimizer.slotNames()) {
      if (!this.slots.has(name)) for (const buffer of optimizer.slotBuffers(name)) buffer.fill(0);
    }
    for (const [name, saved] of this.slots) {
      const live = optimizer.slotBuffers(name);
      for (let index = 0; index < live.length; index++) live[index].set(saved[index]);
    }
    optimizer.optimizer.stepCount = this.optimizerStepCount;
    const steps = optimizer.optimizer.parameterSteps;
    if (this.parameterSteps !== undefined && this.parameterSteps.length === steps.length)
      for (let index = 0; index < steps.length; index++) steps[index] = this.parameterSteps[index];
    optimizer.optimizer.learningRate = this.learningRate;
    optimizer.optimizer.zeroGrad();
  }

  restoreLoader(loader: TrainingParts['loader']): void {
    if (this.loader !== undefined) loader.restore(this.loader);
  }

  /** A deep copy, for the checkpoint actor to write while training goes on. */
  copy(): SnapshotCopy {
    if (this.loader === undefined) throw new TrainingError('no_checkpoint', 'no snapshot was taken yet');
    const slots = new Map<string, Float32Array[]>();
    for (const [name, buffers] of this.slots)
      slots.set(
        name,
        buffers.map((buffer) => buffer.slice()),
      );
    return {
      step: this.step,
      parameterNames: this.parameterNames,
      parameterShapes: this.parameterShapes,
      weights: this.weights.map((buffer) => buffer.slice()),
      optimizerKind: this.optimizerKind,
      optimizerStepCount: this.optimizerStepCount,
      ...(this.parameterSteps === undefined ? {} : { parameterSteps: [...this.parameterSteps] }),
      learningRate: this.learningRate,
      slots,
      loader: { ...this.loader },
      randoms: structuredClone(this.randoms),
      microBatchSize: this.microBatchSize,
      deviceId: this.deviceId,
      epochProgress: this.epochProgress,
    };
  }

  /** Loads a persisted copy (resume after the process was killed). */
  load(copy: SnapshotCopy): void {
    this.weights = copy.weights.map((buffer) => buffer.slice());
    this.slots.clear();
    for (const [name, buffers] of copy.slots)
      this.slots.set(
        name,
        buffers.map((buffer) => buffer.slice()),
      );
    this.optimizerKind = copy.optimizerKind;
    this.optimizerStepCount = copy.optimizerStepCount;
    this.parameterSteps = copy.parameterSteps === undefined ? undefined : [...copy.parameterSteps];
    this.learningRate = copy.learningRate;
    this.loader = { ...copy.loader };
    this.randoms = structuredClone(copy.randoms) as Record<string, RandomState>;
    this.microBatchSize = copy.microBatchSize;
    this.deviceId = copy.deviceId;
    this.epochProgress = copy.epochProgress;
    this.step = copy.step;
  }
}

function randomStates(randoms: ReadonlyMap<string, Random>): Record<string, RandomState> {
  const states: Record<string, RandomState> = {};
  for (const [path, random] of randoms) states[path] = random.getState();
  return states;
}

/** Every random generator held by a module or its sub-modules (dropout), by field path. */
export function findRandoms(module: Module, prefix = ''): Map<string, Random> {
  const found = new Map<string, Random>();
  for (const [key, value] of Object.entries(module)) {
    const items: Array<[string, unknown]> = Array.isArray(value)
      ? value.map((item, index) => [`${prefix}${key}.${index}`, item])
      : [[`${prefix}${key}`, value]];
    for (const [path, item] of items) {
      if (item instanceof Random) found.set(path, item);
      else if (item instanceof Module)
        for (const [inner, random] of findRandoms(item, `${path}.`)) found.set(inner, random);
    }
  }
  return found;
}
