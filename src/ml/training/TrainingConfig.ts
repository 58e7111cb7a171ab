/**
 * What a training run is: `TrainingConfig` as users write it (a plain object, every field but
 * `model` optional, defaults documented), validated once at the edge by `resolveTrainingConfig`,
 * field by field, each failure a `TrainingError` `invalid_config` naming the field.
 */
import type { ActorSystem } from '../../actor/ActorSystem.js';
import type { Pid } from '../../actor/Pid.js';
import type { Random } from '../../actor/Random.js';
import type { FaultConfig, FaultSettings } from '../../fault/FaultConfig.js';
import { faultConfig, NO_FAULTS, parseFaultConfig } from '../../fault/FaultConfig.js';
import type { DeviceHealthReport } from '../../gpu/DeviceHealth.js';
import type { DeviceInfo } from '../../gpu/types.js';
import type { SupervisionEvent } from '../../supervision/SupervisionEvent.js';
import type { Dataset } from '../data/Dataset.js';
import { checkGptConfig, isGptConfigError } from '../nn/gpt.js';
import type { Module } from '../nn/Module.js';
import { TrainingError } from './errors.js';
import { trainingFaultProblem } from './FaultPlan.js';

/** The shape of the data a model is built for. */
export interface ModelShape {
  readonly featureShape: readonly number[];
  readonly numClasses: number;
}

/** Builds a fresh model; draw every initial weight from `random` so runs replay. */
export type ModelFactory = (shape: ModelShape, random: Random) => Module;

export type OptimizerName = 'sgd' | 'adam' | 'adamw';

/** Train and test splits, already loaded. */
export interface TrainingData {
  readonly train: Dataset;
  readonly test: Dataset;
  /** Where they came from, for reports (default 'in-memory'). */
  readonly name?: string;
  /** A character-level corpus's vocabulary (token i is its i-th character); kept in checkpoints. */
  readonly vocabulary?: string;
}

/** The shape of the `gpt` model (its vocabulary comes from the corpus). */
export interface GptTrainingOptions {
  /** Context length, 1 to 4096; default 64. */
  readonly blockSize?: number;
  /** Blocks, 1 to 64; default 2. */
  readonly layers?: number;
  /** Attention heads, 1 to 64; default 4. */
  readonly heads?: number;
  /** Embedding width, a multiple of heads, 1 to 8192; default 64. */
  readonly dimension?: number;
  /** Dropout while training, in [0, 1); default 0. */
  readonly dropout?: number;
}

/** The `gpt` model's shape with every default filled in. */
export type ResolvedGptOptions = Required<GptTrainingOptions>;

export const GPT_TRAINING_DEFAULTS: ResolvedGptOptions = {
  blockSize: 64,
  layers: 2,
  heads: 4,
  dimension: 64,
  dropout: 0,
};

/** One line of the live view (epoch, step, loss, steps/s, ETA, recoveries). */
export type ProgressWriter = (line: string) => void;

export interface TrainingConfig {
  /**
   * 'mlp' (784-128-10 style), 'cnn' (two conv blocks), 'gpt' (a small character-level GPT
   * trained on a text file: `data` names it, default data/shakespeare.txt), or a factory.
   */
  readonly model: 'mlp' | 'cnn' | 'gpt' | ModelFactory;
  /** The shape of the 'gpt' model; refused with another model. */
  readonly gpt?: GptTrainingOptions;
  /** Default 'adam'. SGD uses momentum 0.9. */
  readonly optimizer?: OptimizerName;
  /** Default 1e-3 for adam and adamw, 0.01 for sgd. */
  readonly learningRate?: number;
  /** Loaded splits, or a directory (IDX files, or train.csv and test.csv); default: Fashion-MNIST if installed, else data/tiny. */
  readonly data?: TrainingData | string;
  /** Samples per optimizer step, 1 to 65,536; default 64. */
  readonly batchSize?: number;
  /** Default 1; at most 10,000. */
  readonly epochs?: number;
  /** Stop after this many steps in all (tests, benchmarks); default: every step of every epoch. */
  readonly maxSteps?: number;
  /**
   * Steps between in-memory snapshots, 1 to 64, or 'auto' (default): every step while its copy
   * costs under 1% of a step, else the fewest steps that keep it there (at most 8). See `SnapshotPolicy`.
   */
  readonly snapshotIntervalSteps?: number | 'auto';
  /** Persist the snapshot every this many steps (1 to 1,000,000); default 100. */
  readonly checkpointIntervalSteps?: number;
  /** Directory of the persisted checkpoints and the metrics file; none: nothing is written. */
  readonly checkpointDir?: string;
  /** Continue from the last checkpoint in `checkpointDir` (an error when there is none). */
  readonly resume?: boolean;
  /**
   * Start over in a `checkpointDir` that holds a run: its manifest, tensor files and metrics are
   * deleted first (other files are left alone). Without `fresh` or `resume`, such a directory is
   * refused (`run_exists`), so a run is never replaced by mistake. Default false.
   */
  readonly fresh?: boolean;
  /** Device id to start on ('cpu', 'cpu:0', 'webgpu:0'...); default: the first device. */
  readonly device?: string;
  /** Devices to train on; default: `detectDevices()`. */
  readonly devices?: readonly DeviceInfo[];
  /**
   * What `cpu:0` computes with: `'host'` (default), zbmd's CPU tensor ops (BLAS, WebAssembly);
   * `'reference'`, the GPU layer's cpu reference backend, through the same device path as
   * WebGPU and CUDA (parameters and optimizer state in device buffers, every op a kernel).
   */
  readonly cpuDevice?: 'host' | 'reference';
  /**
   * Bytes a training device may hold (its memory pool's limit, `DeviceOptions.memoryLimitBytes`);
   * default the device's memory. An allocation over it is an `OutOfDeviceMemory`, which halves
   * the micro-batch. Not used by host training.
   */
  readonly deviceMemoryLimitBytes?: number;
  /** Watchdog deadline of a training device's synchronization points in ms (1 to 3,600,000); default 60,000. */
  readonly deviceWatchdogMs?: number;
  /**
   * A planned device move: before step `atStep` (the steps committed, 1 or more), training moves
   * to `device` (one of `devices`), carrying the weights, the optimizer state, the loader position
   * and the generators. Default none.
   */
  readonly moveDevice?: { readonly atStep: number; readonly device: string };
  /**
   * Injected faults: a `FaultConfig` (partial, long or short keys) or the `ZBMD_FAULTS` text;
   * default none. Training acts on actor crashes, out-of-memory, device errors and kernel
   * timeouts (per step; on a GPU-layer device the device's own launch fails, see
   * `deviceFaults.ts`); a non-zero rate of another kind (message drops or delays) is refused
   * (`invalid_config`).
   */
  readonly faults?: FaultSettings | string;
  /** Seed of weight initialisation and shuffling; default 42. */
  readonly seed?: number;
  /** Shuffle the training set each epoch; default true. */
  readonly shuffle?: boolean;
  /** Evaluate test accuracy at the end of each epoch; default true (the final accuracy is always measured). */
  readonly evaluateEachEpoch?: boolean;
  /** JSON lines of metrics; default `<checkpointDir>/metrics.jsonl`, none without a directory. */
  readonly metricsPath?: string;
  /** Where the live progress line goes; default none. The CLI passes stderr when it is a TTY. */
  readonly progress?: ProgressWriter;
  /** Supervisor restart intensity: at most this many restarts in `restartPeriodMs`; default 1000. */
  readonly restartIntensity?: number;
  /** Default 60,000 ms. */
  readonly restartPeriodMs?: number;
  /** After an out-of-memory halving, steps without one before the micro-batch doubles again; default 20. */
  readonly microBatchRegrowSteps?: number;
  /** Called after every committed step (for tests and tools). */
  readonly onStep?: (info: StepReport) => void;
  /** Called after every recovery. */
  readonly onRecovery?: (recovery: Recovery) => void;
  /** Told about every action of the training supervisor (restarts...). */
  readonly onSupervisionEvent?: (event: SupervisionEvent) => void;
  /**
   * Stops the run when aborted (the CLI aborts it on SIGINT and SIGTERM): the step in flight
   * ends, the state is snapshotted and, with a `checkpointDir`, written as a checkpoint with
   * reason 'interrupted'; `train` then resolves with `interrupted: true` (no final evaluation).
   */
  readonly stopSignal?: AbortSignal;
  /** Called once the run is prepared, before its first step (the CLI prints it as a header). */
  readonly onStart?: (info: StartReport) => void;
  /** Called once the supervisor and its actors run (observers attach here: `zbmd train --view`). */
  readonly onStarted?: (run: TrainingStarted) => void;
  /** Called at the end of every epoch, after its evaluation, with the figures `TrainingResult.epochs` will hold. */
  readonly onEpoch?: (summary: EpochReport) => void;
  /**
   * Data-parallel training (src/ml/elastic): shards per global batch, 1 to 1,024 (default 8 with
   * `workers` or `join`). Alone, `shards` runs the single-process reference that sums the same
   * shards by the same tree (its weights_sha256 is what any number of workers gives).
   */
  readonly shards?: number;
  /** Start this many local worker processes on a local nats-server (1 to 64) and train data-parallel. */
  readonly workers?: number;
  /** Join a running data-parallel job on this NATS server as one worker (`name` required). */
  readonly join?: string;
  /** This worker's name with `join` (letters, digits, '-', '_'). */
  readonly name?: string;
  /** The data-parallel job's cluster name; default 'zbmd-dp'. */
  readonly cluster?: string;
  /** BLAS threads in each worker process; default 1. */
  readonly blasThreads?: number;
  /** With `join`: a fresh job's first leader waits for this many workers before its first step. */
  readonly initialWorkers?: number;
  /** With `workers`: told of each worker process started. */
  readonly onWorkerStarted?: (info: { name: string; pid: number; url: string; cluster: string }) => void;
  /** With `workers`: give up when nothing is heard from the job for this long (default 60,000 ms). */
  readonly jobSilenceTimeoutMs?: number;
  /**
   * With `workers`: once every worker process the launcher started has exited, give up when
   * nothing is heard from the job for this long (default 5,000 ms): workers that joined from
   * elsewhere keep the job alive only by being heard.
   */
  readonly orphanSilenceMs?: number;
  /** With `workers`: every event of the job (step, joined, left, recovery, checkpoint). */
  readonly onJobEvent?: (event: Record<string, unknown> & { readonly kind: string }) => void;
}

/** What `onStarted` gets: the running system, the training supervisor and the devices. */
export interface TrainingStarted {
  readonly system: ActorSystem;
  readonly supervisor: Pid;
  readonly devices: readonly DeviceInfo[];
  /** The device the step runs on now. */
  currentDevice(): string;
  /** Each device's health now. */
  deviceHealth(): DeviceHealthReport[];
}

export interface StartReport {
  readonly dataset: string;
  readonly plannedSteps: number;
  readonly stepsPerEpoch: number;
  /** Steps already committed (0, or the step a resumed run starts from). */
  readonly resumedFromStep: number;
  readonly deviceId: string;
}

/** One epoch's figures; `epoch` counts from 0 (reports print it from 1). */
export interface EpochReport {
  readonly epoch: number;
  /** Over all the epoch's steps, those run before a resume included. */
  readonly meanLoss: number;
  readonly testAccuracy: number | undefined;
  /** Steps per second of the steps this process ran. */
  readonly stepsPerSec: number;
  readonly steps: number;
  /** Steps committed at its end. */
  readonly step: number;
}

export interface StepReport {
  /** Steps committed so far (this step included). */
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
}

/** Why training had to recover. */
export type RecoveryCause =
  | 'model_crash'
  | 'optimizer_crash'
  | 'dataloader_crash'
  | 'checkpoint_crash'
  | 'metrics_crash'
  | 'out_of_memory'
  | 'device_error'
  | 'unexpected_crash'
  /** Data-parallel runs (`workers`): a worker process lost, gone, behind, a step timed out, the leader lost. */
  | 'worker_lost'
  | 'worker_left'
  | 'fell_behind'
  | 'step_timeout'
  | 'leader_lost';

export interface Recovery {
  readonly cause: RecoveryCause;
  /** From the failure's detection until training is back at the failed step (replay included). */
  readonly recoveryMs: number;
  /** The step that failed (steps committed before it). */
  readonly step: number;
  /** Steps since the last snapshot, run again (bit for bit) to get back to the failed step. */
  readonly replayedSteps: number;
  /** What was done: the new micro-batch size, the device moved to, the crash reason. */
  readonly detail: string;
}

/** Upper bounds of the options (Tiger Style: a limit on everything). */
export const TRAINING_LIMITS = {
  maxBatchSize: 65_536,
  maxEpochs: 10_000,
  maxCheckpointIntervalSteps: 1_000_000,
  maxSnapshotIntervalSteps: 64,
  maxRestartIntensity: 1_000_000,
  /** Attempts of one step before training gives up (`step_failed_repeatedly`). */
  maxAttemptsPerStep: 32,
} as const;

export interface ResolvedTrainingConfig {
  readonly model: 'mlp' | 'cnn' | 'gpt' | ModelFactory;
  /** Set for the 'gpt' model only. */
  readonly gpt: ResolvedGptOptions | undefined;
  readonly optimizer: OptimizerName;
  readonly learningRate: number;
  readonly data: TrainingData | string | undefined;
  readonly batchSize: number;
  readonly epochs: number;
  readonly maxSteps: number;
  readonly checkpointIntervalSteps: number;
  readonly snapshotIntervalSteps: number | 'auto';
  readonly checkpointDir: string | undefined;
  readonly resume: boolean;
  readonly fresh: boolean;
  readonly device: string | undefined;
  readonly devices: readonly DeviceInfo[] | undefined;
  readonly cpuDevice: 'host' | 'reference';
  readonly deviceMemoryLimitBytes: number | undefined;
  readonly deviceWatchdogMs: number;
  readonly moveDevice: { readonly atStep: number; readonly device: string } | undefined;
  readonly faults: FaultConfig;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly evaluateEachEpoch: boolean;
  readonly metricsPath: string | undefined;
  readonly progress: ProgressWriter | undefined;
  readonly restartIntensity: number;
  readonly restartPeriodMs: number;
  readonly microBatchRegrowSteps: number;
  readonly onStep: ((info: StepReport) => void) | undefined;
  readonly onRecovery: ((recovery: Recovery) => void) | undefined;
  readonly onSupervisionEvent: ((event: SupervisionEvent) => void) | undefined;
  readonly stopSignal: AbortSignal | undefined;
  readonly onStart: ((info: StartReport) => void) | undefined;
  readonly onStarted: ((run: TrainingStarted) => void) | undefined;
  readonly onEpoch: ((summary: EpochReport) => void) | undefined;
}

function invalid(field: string, value: unknown, allowed: string): never {
  throw new TrainingError(
    'invalid_config',
    `${field} = ${JSON.stringify(value) ?? String(value)}: expected ${allowed}`,
  );
}

function integerIn(field: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    invalid(field, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

function resolveFaults(value: unknown): FaultConfig {
  if (value === undefined) return NO_FAULTS;
  let config: FaultConfig;
  try {
    config = typeof value === 'string' ? parseFaultConfig(value) : faultConfig(value as FaultSettings);
  } catch (error) {
    throw new TrainingError('invalid_config', `faults: ${(error as Error).message}`, { cause: error });
  }
  const problem = trainingFaultProblem(config);
  if (problem !== undefined) throw new TrainingError('invalid_config', `faults: ${problem}`);
  return config;
}

function optionalFunction<T>(field: string, value: unknown): T | undefined {
  if (value !== undefined && typeof value !== 'function') invalid(field, value, 'a function');
  return value as T | undefined;
}

function optionalSignal(value: unknown): AbortSignal | undefined {
  if (value !== undefined && !(value instanceof AbortSignal)) invalid('stopSignal', value, 'an AbortSignal');
  return value as AbortSignal | undefined;
}

function optionalString(field: string, value: unknown): string | undefined {
  if (value !== undefined && (typeof value !== 'string' || value.length === 0))
    invalid(field, value, 'a non-empty string');
  return value as string | undefined;
}

function resolveGpt(model: unknown, value: unknown): ResolvedGptOptions | undefined {
  if (model !== 'gpt') {
    if (value !== undefined) invalid('gpt', value, "no gpt options unless model is 'gpt'");
    return undefined;
  }
  if (value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value)))
    invalid('gpt', value, 'an object');
  const options = { ...GPT_TRAINING_DEFAULTS, ...(value as GptTrainingOptions | undefined) };
  try {
    // The vocabulary comes from the corpus; a placeholder checks the other fields.
    const { blockSize, layers, heads, dimension, dropout } = checkGptConfig({ ...options, vocabSize: 1 });
    return { blockSize, layers, heads, dimension, dropout };
  } catch (error) {
    if (!isGptConfigError(error)) throw error;
    throw new TrainingError('invalid_config', `gpt.${error.field}: ${error.message}`, { cause: error });
  }
}

function resolveMove(value: unknown): { atStep: number; device: string } | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) invalid('moveDevice', value, '{ atStep, device }');
  const { atStep, device } = value as { atStep?: unknown; device?: unknown };
  return {
    atStep: integerIn('moveDevice.atStep', atStep, 1, 1, Number.MAX_SAFE_INTEGER),
    device:
      optionalString('moveDevice.device', device) ?? invalid('moveDevice.device', device, 'a device id'),
  };
}

function resolveCpuDevice(value: unknown): 'host' | 'reference' {
  if (value === undefined) return 'host';
  if (value !== 'host' && value !== 'reference') invalid('cpuDevice', value, "'host' or 'reference'");
  return value;
}

function resolveModelAndOptimizer(
  fields: TrainingConfig,
): Pick<ResolvedTrainingConfig, 'model' | 'gpt' | 'optimizer' | 'learningRate'> {
  const model = fields.model;
  if (model !== 'mlp' && model !== 'cnn' && model !== 'gpt' && typeof model !== 'function')
    invalid('model', model, "'mlp', 'cnn', 'gpt' or a factory");
  const gpt = resolveGpt(model, fields.gpt);
  const optimizer = fields.optimizer ?? 'adam';
  if (!['sgd', 'adam', 'adamw'].includes(optimizer))
    invalid('optimizer', optimizer, "'sgd', 'adam' or 'adamw'");
  const learningRate = fields.learningRate ?? (optimizer === 'sgd' ? 0.01 : 1e-3);
  if (typeof learningRate !== 'number' || !(learningRate > 0 && learningRate <= 10)) {
    invalid('learningRate', learningRate, 'a number in (0, 10]');
  }
  return { model, gpt, optimizer, learningRate };
}

/** Validates a configuration and fills in the defaults; throws `TrainingError` `invalid_config`. */
export function resolveTrainingConfig(config: TrainingConfig): ResolvedTrainingConfig {
  if (typeof config !== 'object' || config === null) invalid('config', config, 'an object');
  const fields = config;
  const checkpointDir = optionalString('checkpointDir', fields.checkpointDir);
  const resume = fields.resume ?? false;
  if (typeof resume !== 'boolean') invalid('resume', resume, 'a boolean');
  if (resume && checkpointDir === undefined) invalid('resume', resume, 'a checkpointDir to resume from');
  const fresh = fields.fresh ?? false;
  if (typeof fresh !== 'boolean') invalid('fresh', fresh, 'a boolean');
  if (fresh && resume)
    invalid('fresh', fresh, 'false when resume is set (resume a run or start over, not both)');
  if (fields.data !== undefined && typeof fields.data !== 'string' && typeof fields.data !== 'object') {
    invalid('data', fields.data, 'loaded splits or a directory');
  }
  return {
    ...resolveModelAndOptimizer(fields),
    data: fields.data,
    batchSize: integerIn('batchSize', fields.batchSize, 64, 1, TRAINING_LIMITS.maxBatchSize),
    epochs: integerIn('epochs', fields.epochs, 1, 1, TRAINING_LIMITS.maxEpochs),
    maxSteps: integerIn('maxSteps', fields.maxSteps, Number.MAX_SAFE_INTEGER, 1, Number.MAX_SAFE_INTEGER),
    checkpointIntervalSteps: integerIn(
      'checkpointIntervalSteps',
      fields.checkpointIntervalSteps,
      100,
      1,
      TRAINING_LIMITS.maxCheckpointIntervalSteps,
    ),
    snapshotIntervalSteps:
      fields.snapshotIntervalSteps === 'auto' || fields.snapshotIntervalSteps === undefined
        ? 'auto'
        : integerIn(
            'snapshotIntervalSteps',
            fields.snapshotIntervalSteps,
            1,
            1,
            TRAINING_LIMITS.maxSnapshotIntervalSteps,
          ),
    checkpointDir,
    resume,
    fresh,
    device: optionalString('device', fields.device),
    devices: fields.devices,
    cpuDevice: resolveCpuDevice(fields.cpuDevice),
    deviceMemoryLimitBytes:
      fields.deviceMemoryLimitBytes === undefined
        ? undefined
        : integerIn('deviceMemoryLimitBytes', fields.deviceMemoryLimitBytes, 0, 1, Number.MAX_SAFE_INTEGER),
    deviceWatchdogMs: integerIn('deviceWatchdogMs', fields.deviceWatchdogMs, 60_000, 1, 3_600_000),
    moveDevice: resolveMove(fields.moveDevice),
    faults: resolveFaults(fields.faults),
    seed: integerIn('seed', fields.seed, 42, 0, Number.MAX_SAFE_INTEGER),
    shuffle: fields.shuffle ?? true,
    evaluateEachEpoch: fields.evaluateEachEpoch ?? true,
    metricsPath:
      optionalString('metricsPath', fields.metricsPath) ??
      (checkpointDir === undefined ? undefined : `${checkpointDir}/metrics.jsonl`),
    progress: optionalFunction('progress', fields.progress),
    restartIntensity: integerIn(
      'restartIntensity',
      fields.restartIntensity,
      1000,
      0,
      TRAINING_LIMITS.maxRestartIntensity,
    ),
    restartPeriodMs: integerIn('restartPeriodMs', fields.restartPeriodMs, 60_000, 1, 86_400_000),
    microBatchRegrowSteps: integerIn('microBatchRegrowSteps', fields.microBatchRegrowSteps, 20, 1, 1_000_000),
    onStep: optionalFunction('onStep', fields.onStep),
    onRecovery: optionalFunction('onRecovery', fields.onRecovery),
    onSupervisionEvent: optionalFunction('onSupervisionEvent', fields.onSupervisionEvent),
    stopSignal: optionalSignal(fields.stopSignal),
    onStart: optionalFunction('onStart', fields.onStart),
    onStarted: optionalFunction('onStarted', fields.onStarted),
    onEpoch: optionalFunction('onEpoch', fields.onEpoch),
  };
}
