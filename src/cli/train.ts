/**
 * `zbmd train`: fault-tolerant training from the command line.
 *
 *   zbmd train                                  MLP, 1 epoch, Fashion-MNIST if installed, else data/tiny
 *   zbmd train --model cnn --epochs 5 --json
 *   zbmd train --faults                         with the default faults (actor crashes, ~19 per epoch)
 *   zbmd train --faults crash=0.01,oom=0.001,device=0.001,seed=7 --checkpoint-dir ckpt
 *   zbmd train --checkpoint-dir ckpt --resume   continue a killed run
 *   zbmd train --checkpoint-dir ckpt --fresh    start over (a directory holding a run is refused otherwise)
 *   zbmd train --model gpt --data FILE.txt --checkpoint-dir ckpt    a character-level GPT (then zbmd sample ckpt)
 *
 * `--faults` takes short keys (crash, oom, device, seed) or the `ZBMD_FAULTS` syntax (full keys
 * such as actorCrashRate, or JSON). Bad options exit with code 2 and say what is wrong; a run
 * that cannot start (bad data, no checkpoint to resume) exits with code 1.
 */

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { faultKeyOf, parseFaultConfig } from '../fault/FaultConfig.js';
import { trainingFaultProblem } from '../ml/training/FaultPlan.js';
import type { EpochReport, Recovery, StartReport, TrainingResult } from '../ml/training/index.js';
import {
  GPT_TRAINING_DEFAULTS,
  type GptTrainingOptions,
  TRAINING_LIMITS,
} from '../ml/training/TrainingConfig.js';
import { addObserveOptions, type ObserveCliOptions, observeTraining } from './observe.js';
import { integerOption, numberOption, pathOption, UsageError } from './options.js';

/** The faults of a bare `--faults`: actor crashes at 2% of steps (about 19 per Fashion-MNIST epoch at batch 64). */
export const DEFAULT_TRAINING_FAULTS = 'actorCrashRate=0.02,seed=7';

export interface TrainCommandOptions extends ObserveCliOptions {
  readonly data?: string;
  readonly model: 'mlp' | 'cnn' | 'gpt';
  /** The gpt model's shape (--model gpt only). */
  readonly blockSize?: number;
  readonly layers?: number;
  readonly heads?: number;
  readonly dim?: number;
  readonly optimizer: 'sgd' | 'adam' | 'adamw';
  readonly epochs: number;
  readonly batchSize: number;
  readonly lr?: number;
  readonly device?: string;
  /** What cpu:0 computes with: host (zbmd's CPU ops, default) or the GPU layer's reference backend. */
  readonly cpuDevice?: 'host' | 'reference';
  /** Bytes a training device may hold (its memory pool's limit). */
  readonly deviceMemoryLimit?: number;
  /** A planned device move, `<device>@<step>`. */
  readonly moveDevice?: { readonly atStep: number; readonly device: string };
  /** A fault spec, or true for the default faults. */
  readonly faults?: string | true;
  readonly seed: number;
  readonly maxSteps?: number;
  readonly checkpointDir?: string;
  readonly checkpointInterval: number;
  /** Steps between in-memory snapshots, or 'auto' (default). */
  readonly snapshotInterval?: number | 'auto';
  readonly resume: boolean;
  /** Start over in a --checkpoint-dir that holds a run (its checkpoints and metrics are deleted). */
  readonly fresh?: boolean;
  readonly json: boolean;
  /** Data-parallel (src/ml/elastic): local worker processes, or join a job as one worker. */
  readonly workers?: number;
  readonly join?: string;
  readonly name?: string;
  readonly shards?: number;
  readonly cluster?: string;
  readonly initialWorkers?: number;
  readonly blasThreads?: number;
}

/**
 * Reads `--faults` or `ZBMD_FAULTS`: short keys (crash, oom, device, seed) or long ones, as
 * pairs or JSON. Throws on a bad value, or a kind that training does not act on.
 */
export function parseTrainingFaults(text: string): string {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    checkTrainingFaults(trimmed);
    return trimmed;
  }
  const expanded = trimmed
    .split(',')
    .filter((pair) => pair.trim() !== '')
    .map((pair) => {
      const [key, ...rest] = pair.split('=');
      const name = faultKeyOf(key.trim()) ?? key.trim();
      return rest.length === 0 ? name : `${name}=${rest.join('=')}`;
    })
    .join(',');
  checkTrainingFaults(expanded);
  return expanded;
}

function checkTrainingFaults(text: string): void {
  const problem = trainingFaultProblem(parseFaultConfig(text));
  if (problem !== undefined) throw new Error(problem);
}

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const round = (value: number, digits = 3): number => Number(value.toFixed(digits));

/** The `--json` object. */
export function trainingReport(result: TrainingResult): Record<string, unknown> {
  const elastic = (result as TrainingResult & { elastic?: Record<string, unknown> }).elastic;
  return {
    ...(elastic === undefined ? {} : elasticReport(elastic, result)),
    final_test_accuracy: round(result.finalTestAccuracy, 4),
    loss: round(result.loss, 5),
    steps: result.steps,
    steps_per_sec: round(result.stepsPerSec, 1),
    elapsed_ms: round(result.elapsedMs, 0),
    recoveries: result.recoveries.length,
    recovery_ms: result.recoveries.map((recovery) => round(recovery.recoveryMs)),
    recovery_causes: countCauses(result.recoveries),
    median_recovery_ms: round(median(result.recoveries.map((recovery) => recovery.recoveryMs))),
    lost_steps: result.lostSteps,
    weights_sha256: result.weightsSha256,
    resumed_from_step: result.resumedFromStep,
    devices_used: result.devicesUsed,
    tensor_backend: result.tensorBackend,
    final_micro_batch_size: result.finalMicroBatchSize,
    dataset: result.dataset,
    interrupted: result.interrupted,
    epochs: result.epochs.map((epoch) => ({
      epoch: epoch.epoch + 1,
      mean_loss: round(epoch.meanLoss, 5),
      test_accuracy: epoch.testAccuracy === undefined ? null : round(epoch.testAccuracy, 4),
      steps_per_sec: round(epoch.stepsPerSec, 1),
      steps: epoch.steps,
    })),
  };
}

/** The data-parallel fields of `--json` (workers, joins, losses, recoveries with cause and duration). */
function elasticReport(elastic: Record<string, unknown>, result: TrainingResult): Record<string, unknown> {
  const recoveries = elastic.recoveries as {
    cause: string;
    worker: string;
    step: number;
    recoveryMs: number;
    reassignedShards: number;
  }[];
  return {
    workers: elastic.workers,
    shards: elastic.shards,
    blas_threads_per_worker: elastic.blasThreadsPerWorker,
    repeated_steps: elastic.repeatedSteps,
    lost_steps: result.lostSteps,
    workers_joined: elastic.joined,
    workers_left: elastic.left,
    leaders: elastic.leaders,
    elastic_recoveries: recoveries.map((recovery) => ({
      cause: recovery.cause,
      worker: recovery.worker,
      step: recovery.step,
      recovery_ms: round(recovery.recoveryMs, 1),
      reassigned_shards: recovery.reassignedShards,
    })),
    gradient_bytes: elastic.gradientBytes,
    median_step_ms: round(elastic.medianStepMs as number, 2),
  };
}

function countCauses(recoveries: readonly Recovery[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { cause } of recoveries) counts[cause] = (counts[cause] ?? 0) + 1;
  return counts;
}

function writeSummary(result: TrainingResult, write: (line: string) => void): void {
  write(
    `dataset ${result.dataset}, devices ${result.devicesUsed.join(' -> ')} (tensor math on the ${result.tensorBackend} backend)`,
  );
  const causes = Object.entries(countCauses(result.recoveries)).map(([cause, count]) => `${cause} ${count}`);
  const medianMs = median(result.recoveries.map((recovery) => recovery.recoveryMs));
  write(
    `recoveries ${result.recoveries.length}${causes.length > 0 ? ` (${causes.join(', ')}), median ${medianMs.toFixed(2)} ms` : ''}`,
  );
  const accuracy = result.interrupted ? '' : `, final test accuracy ${result.finalTestAccuracy.toFixed(4)}`;
  write(
    `steps ${result.steps}, ${result.stepsPerSec.toFixed(1)} steps/s, lost steps ${result.lostSteps}${accuracy}`,
  );
  write(`weights sha256 ${result.weightsSha256}`);
}

function epochLine(epoch: EpochReport): string {
  const accuracy = epoch.testAccuracy === undefined ? '' : ` test accuracy ${epoch.testAccuracy.toFixed(4)}`;
  return `epoch ${epoch.epoch + 1}: mean loss ${epoch.meanLoss.toFixed(4)}${accuracy} ${epoch.stepsPerSec.toFixed(1)} steps/s (${epoch.steps} steps)`;
}

/** The gpt options of `zbmd train --model gpt`, defaults filled in by the trainer. */
function gptOptions(options: TrainCommandOptions): GptTrainingOptions | undefined {
  if (options.model !== 'gpt') return undefined;
  const { blockSize, layers, heads, dim } = options;
  return {
    ...(blockSize === undefined ? {} : { blockSize }),
    ...(layers === undefined ? {} : { layers }),
    ...(heads === undefined ? {} : { heads }),
    ...(dim === undefined ? {} : { dimension: dim }),
  };
}

function modelWords(options: TrainCommandOptions): string {
  if (options.model !== 'gpt') return options.model;
  const gpt = { ...GPT_TRAINING_DEFAULTS, ...gptOptions(options) };
  return `gpt (${gpt.layers} layers, ${gpt.heads} heads, width ${gpt.dimension}, block ${gpt.blockSize})`;
}

function headerLine(options: TrainCommandOptions, start: StartReport): string {
  const resumed = start.resumedFromStep > 0 ? `, resumed from step ${start.resumedFromStep}` : '';
  return (
    `training ${modelWords(options)} with ${options.optimizer} on ${start.dataset}: ${start.plannedSteps} steps ` +
    `(${start.stepsPerEpoch} per epoch), device ${start.deviceId}${resumed}`
  );
}

/** Quotes a word for a POSIX shell when it holds anything but safe characters. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** The command that resumes this run: the same arguments, without --fresh, with --resume. */
export function resumeCommand(argv: readonly string[]): string {
  const words = argv.filter((word) => word !== '--fresh');
  if (!words.includes('--resume')) words.push('--resume');
  return ['zbmd', ...words].map(shellWord).join(' ');
}

/** Runs `zbmd train` with parsed options; `write` gets the report lines (stdout), as they come. */
export async function trainCommand(
  options: TrainCommandOptions,
  write: (line: string) => void,
  stopSignal?: AbortSignal,
): Promise<TrainingResult> {
  const faults =
    options.faults === true ? DEFAULT_TRAINING_FAULTS : options.faults && parseTrainingFaults(options.faults);
  const stderr = process.stderr;
  const live = stderr.isTTY === true;
  // Loaded on use, so that `zbmd --help` and the other commands do not load the ML stack.
  const { train } = await import('../ml/training/index.js');
  const text = !options.json;
  const observation = await observeTraining(options, (line) => stderr.write(`${line}\n`));
  const result = await train({
    ...observation.hooks,
    model: options.model,
    gpt: gptOptions(options),
    optimizer: options.optimizer,
    learningRate: options.lr,
    data: options.data,
    batchSize: options.batchSize,
    epochs: options.epochs,
    maxSteps: options.maxSteps,
    device: options.device,
    cpuDevice: options.cpuDevice,
    deviceMemoryLimitBytes: options.deviceMemoryLimit,
    moveDevice: options.moveDevice,
    faults,
    seed: options.seed,
    checkpointDir: options.checkpointDir,
    checkpointIntervalSteps: options.checkpointInterval,
    snapshotIntervalSteps: options.snapshotInterval,
    resume: options.resume,
    fresh: options.fresh,
    workers: options.workers,
    join: options.join,
    name: options.name,
    shards: options.shards,
    cluster: options.cluster,
    initialWorkers: options.initialWorkers,
    blasThreads: options.blasThreads,
    onJobEvent:
      options.workers === undefined || options.json
        ? undefined
        : (event) => {
            if (event.kind === 'joined' || event.kind === 'left')
              write(
                `worker ${event.worker} ${event.kind} at step ${event.step}${event.cause === undefined ? '' : ` (${event.cause})`}`,
              );
            else if (event.kind === 'recovery')
              write(
                `recovered from ${event.cause} (${event.worker}) at step ${event.step} in ${(event.recoveryMs as number).toFixed(0)} ms`,
              );
          },
    stopSignal,
    progress: live ? (line) => stderr.write(`\r\x1b[K${line}`) : undefined,
    onStart: text ? (start) => write(headerLine(options, start)) : undefined,
    onEpoch: (epoch) => {
      observation.hooks.onEpoch?.(epoch);
      if (text) write(epochLine(epoch));
    },
  }).finally(() => observation.finish());
  if (live) stderr.write('\n');
  if (options.join !== undefined) {
    // one worker of a job: its view of the end (the launcher reports the whole job)
    const line = {
      worker: options.name,
      steps: result.steps,
      weights_sha256: result.weightsSha256,
      lost_steps: result.lostSteps,
    };
    write(
      options.json
        ? JSON.stringify(line)
        : `worker ${options.name}: job done at step ${result.steps}, weights sha256 ${result.weightsSha256}`,
    );
    return result;
  }
  if (options.json) write(JSON.stringify(trainingReport(result)));
  else writeSummary(result, write);
  return result;
}

/** Exit codes of a run stopped by a signal: 128 + the signal's number, as shells report it. */
const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
type StopSignal = keyof typeof SIGNAL_EXIT_CODES;

/**
 * The `zbmd train` action: runs the command, and on SIGINT or SIGTERM stops after the step in
 * flight, writes a checkpoint, says where it is and how to resume, and exits 130 / 143. A
 * second signal exits at once (the last checkpoint written stays valid).
 */
async function runTrainAction(options: TrainCommandOptions, argv: readonly string[]): Promise<void> {
  const stop = new AbortController();
  let received: StopSignal | undefined;
  const onSignal = (signal: StopSignal): void => {
    if (received !== undefined) process.exit(SIGNAL_EXIT_CODES[signal]);
    received = signal;
    stop.abort(signal);
    process.stderr.write(
      `zbmd train: ${signal}: finishing the step in flight and writing a checkpoint (send it again to quit at once)\n`,
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let result: TrainingResult;
  try {
    result = await trainCommand(options, (line) => console.log(line), stop.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (!result.interrupted || received === undefined) return;
  const lines =
    options.checkpointDir === undefined
      ? [
          `interrupted by ${received} at step ${result.steps}; nothing was saved (no --checkpoint-dir to resume from)`,
        ]
      : [
          `interrupted by ${received} at step ${result.steps}; checkpoint ${join(options.checkpointDir, 'latest.json')} (step ${result.steps})`,
          `resume with: ${resumeCommand(argv)}`,
        ];
  for (const line of lines) (options.json ? console.error : console.log)(line);
  process.exitCode = SIGNAL_EXIT_CODES[received];
}

function parseSnapshotInterval(value: string): number | 'auto' {
  if (value === 'auto') return value;
  try {
    return integerOption(1, TRAINING_LIMITS.maxSnapshotIntervalSteps)(value);
  } catch {
    throw new InvalidArgumentError(
      `expected 'auto' or an integer from 1 to ${TRAINING_LIMITS.maxSnapshotIntervalSteps}, got '${value}'`,
    );
  }
}

function parseDevice(value: string): string {
  if (!/^(cpu|webgpu|cuda)(:(0|[1-9][0-9]{0,3}))?$/.test(value))
    throw new InvalidArgumentError(
      `expected cpu, webgpu or cuda, optionally :<index> (cuda:0), got '${value}'`,
    );
  return value;
}

function parseMove(value: string): { atStep: number; device: string } {
  const at = value.lastIndexOf('@');
  const step = Number(value.slice(at + 1));
  if (at <= 0 || !Number.isSafeInteger(step) || step < 1)
    throw new InvalidArgumentError(`expected <device>@<step> with a step >= 1 (webgpu:0@50), got '${value}'`);
  return { device: parseDevice(value.slice(0, at)), atStep: step };
}

function parseCpuDevice(value: string): 'host' | 'reference' {
  if (value !== 'host' && value !== 'reference')
    throw new InvalidArgumentError(`expected 'host' or 'reference', got '${value}'`);
  return value;
}

const BYTE_SUFFIXES: Readonly<Record<string, number>> = { '': 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 };

function parseByteCount(value: string): number {
  const match = /^([1-9][0-9]{0,15})(KiB|MiB|GiB)?$/.exec(value);
  const bytes = match === null ? Number.NaN : Number(match[1]) * BYTE_SUFFIXES[match[2] ?? ''];
  if (!Number.isSafeInteger(bytes))
    throw new InvalidArgumentError(
      `expected a positive number of bytes, optionally with KiB, MiB or GiB, got '${value}'`,
    );
  return bytes;
}

function parseFaultsOption(value: string): string {
  try {
    return parseTrainingFaults(value);
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message} (short keys: crash, oom, device, seed)`);
  }
}

/**
 * `--device`, else `ZBMD_DEVICE`, else the first device detected. A `ZBMD_DEVICE` that is no
 * device spec, or names a device not present (cuda:7), is a bad invocation, reported as such.
 */
async function deviceFromEnvironment(options: TrainCommandOptions): Promise<TrainCommandOptions> {
  const variable = process.env.ZBMD_DEVICE?.trim();
  if (options.device !== undefined || variable === undefined || variable === '') return options;
  const { detectDevices, parseDeviceSpec, InvalidDeviceSpec } = await import('../gpu/detect.js');
  let id: string;
  try {
    const spec = parseDeviceSpec(variable);
    id = `${spec.backend}:${spec.index}`;
  } catch (error) {
    if (!(error instanceof InvalidDeviceSpec)) throw error;
    throw new UsageError(`ZBMD_DEVICE: ${error.message}`);
  }
  const { devices } = await detectDevices();
  if (!devices.some((device) => device.id === id)) {
    throw new UsageError(
      `ZBMD_DEVICE=${variable} names ${id}, which is not present; devices here: ${devices.map((device) => device.id).join(', ')} (unset it or pick one of these)`,
    );
  }
  return { ...options, device: id };
}

/** `--faults`, else `ZBMD_FAULTS` (checked as `--faults` is), else none. */
function faultsFromEnvironment(options: TrainCommandOptions): TrainCommandOptions {
  const variable = process.env.ZBMD_FAULTS;
  if (options.faults !== undefined || variable === undefined || variable.trim() === '') return options;
  try {
    return { ...options, faults: parseTrainingFaults(variable) };
  } catch (error) {
    throw new UsageError(`ZBMD_FAULTS: ${(error as Error).message} (short keys: crash, oom, device, seed)`);
  }
}

/** --block-size, --layers, --heads and --dim shape the gpt model and go with --model gpt only. */
function checkGptFlags(options: TrainCommandOptions): void {
  const given = (
    [
      ['--block-size', options.blockSize],
      ['--layers', options.layers],
      ['--heads', options.heads],
      ['--dim', options.dim],
    ] as const
  ).filter(([, value]) => value !== undefined);
  if (options.model !== 'gpt' && given.length > 0)
    throw new UsageError(`${given.map(([flag]) => flag).join(', ')} shape the gpt model: add --model gpt`);
  if (options.model !== 'gpt') return;
  const heads = options.heads ?? GPT_TRAINING_DEFAULTS.heads;
  const dimension = options.dim ?? GPT_TRAINING_DEFAULTS.dimension;
  if (dimension % heads !== 0)
    throw new UsageError(
      `--dim ${dimension} is not a multiple of --heads ${heads} (each head gets dim / heads)`,
    );
}

/** Adds `zbmd train` to the program (src/cli/main.ts calls it). */
export function registerTrainCommand(program: Command): void {
  addObserveOptions(program.command('train'))
    .description(
      'train a model under supervision, through injected crashes, OOM and device errors, losing no step',
    )
    .option(
      '--data <path>',
      'IDX files or train.csv + test.csv (default: Fashion-MNIST if installed, else data/tiny); with --model gpt a text file (default data/shakespeare.txt)',
      pathOption,
    )
    .addOption(new Option('--model <name>', 'model').choices(['mlp', 'cnn', 'gpt']).default('mlp'))
    .option('--block-size <n>', 'gpt: context length (1 to 4096, default 64)', integerOption(1, 4096))
    .option('--layers <n>', 'gpt: transformer blocks (1 to 64, default 2)', integerOption(1, 64))
    .option('--heads <n>', 'gpt: attention heads (1 to 64, default 4)', integerOption(1, 64))
    .option('--dim <n>', 'gpt: embedding width, a multiple of --heads (default 64)', integerOption(1, 8192))
    .addOption(
      new Option('--optimizer <name>', 'optimizer').choices(['sgd', 'adam', 'adamw']).default('adam'),
    )
    .option(
      '--epochs <n>',
      `epochs (1 to ${TRAINING_LIMITS.maxEpochs})`,
      integerOption(1, TRAINING_LIMITS.maxEpochs),
      1,
    )
    .option(
      '--batch-size <n>',
      `samples per step (1 to ${TRAINING_LIMITS.maxBatchSize})`,
      integerOption(1, TRAINING_LIMITS.maxBatchSize),
      64,
    )
    .option(
      '--lr <rate>',
      'learning rate in (0, 10] (default 1e-3 for adam, 0.01 for sgd)',
      numberOption(0, 10),
    )
    .option(
      '--device <id>',
      'device to start on: cpu, webgpu:0, cuda:0 (default: ZBMD_DEVICE, else the first detected)',
      parseDevice,
    )
    .option(
      '--cpu-device <kind>',
      "what cpu:0 computes with: 'host' (zbmd's CPU ops) or 'reference' (the GPU layer's cpu reference backend, the device path)",
      parseCpuDevice,
    )
    .option(
      '--device-memory-limit <bytes>',
      'bytes a training device may hold (suffix KiB, MiB or GiB allowed); over it, OutOfDeviceMemory halves the micro-batch',
      parseByteCount,
    )
    .option(
      '--move-device <device@step>',
      'move training to another device before that step (cpu@100, webgpu:0@50), carrying weights, optimizer state and loader position',
      parseMove,
    )
    .option(
      '--faults [spec]',
      `inject faults, e.g. crash=0.01,oom=0.001,device=0.001,seed=7 (bare: ${DEFAULT_TRAINING_FAULTS})`,
      parseFaultsOption,
    )
    .option('--seed <n>', 'seed of initialisation and shuffling', integerOption(0), 42)
    .option('--max-steps <n>', 'stop after this many steps', integerOption(1))
    .option(
      '--checkpoint-dir <dir>',
      'persist checkpoints (safetensors + latest.json) and metrics.jsonl here',
      pathOption,
    )
    .option(
      '--checkpoint-interval <steps>',
      `persist every this many steps (1 to ${TRAINING_LIMITS.maxCheckpointIntervalSteps})`,
      integerOption(1, TRAINING_LIMITS.maxCheckpointIntervalSteps),
      100,
    )
    .option(
      '--snapshot-interval <steps>',
      "steps between in-memory snapshots, or 'auto': every step while a snapshot costs under 1% of a step",
      parseSnapshotInterval,
      'auto',
    )
    .option('--resume', 'continue from the last checkpoint in --checkpoint-dir', false)
    .option(
      '--fresh',
      'start over in a --checkpoint-dir that holds a run (deletes its checkpoints and metrics)',
      false,
    )
    .option('--json', 'print one JSON object', false)
    .option(
      '--workers <n>',
      'train data-parallel on n local worker processes (1 to 64)',
      integerOption(1, 64),
    )
    .option('--join <url>', 'join a running data-parallel job as one worker (nats://HOST:PORT; needs --name)')
    .option('--name <name>', "this worker's name with --join (letters, digits, - and _)")
    .option(
      '--shards <k>',
      'shards per global batch, the unit of data-parallel math (1 to 1024; default 8)',
      integerOption(1, 1024),
    )
    .option('--cluster <name>', "the data-parallel job's cluster name (default zbmd-dp)")
    .option(
      '--initial-workers <n>',
      'with --join: a fresh job waits for n workers before its first step',
      integerOption(1, 64),
    )
    .option(
      '--blas-threads <n>',
      'with --workers: BLAS threads per worker process (default 1)',
      integerOption(1, 256),
    )
    .action(async (options: TrainCommandOptions) => {
      if (options.join !== undefined) {
        if (options.name === undefined)
          throw new UsageError("--join needs --name (this worker's name, e.g. w3)");
        if (options.workers !== undefined)
          throw new UsageError('--join and --workers: join a job or start one, not both');
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(options.name))
          throw new UsageError(`--name ${options.name}: letters, digits, - and _ (1 to 64)`);
        process.title = `zbmd worker ${options.name}`;
      }
      if (options.resume && options.checkpointDir === undefined) {
        throw new UsageError('--resume needs --checkpoint-dir');
      }
      if (options.fresh && (options.resume || options.checkpointDir === undefined)) {
        throw new UsageError('--fresh needs --checkpoint-dir and cannot go with --resume');
      }
      checkGptFlags(options);
      if (
        options.model !== 'gpt' &&
        options.data !== undefined &&
        !statSync(options.data, { throwIfNoEntry: false })?.isDirectory()
      )
        throw new UsageError(`--data ${options.data} is not a directory (IDX files or train.csv + test.csv)`);
      if (
        options.model === 'gpt' &&
        options.data !== undefined &&
        !statSync(options.data, { throwIfNoEntry: false })?.isFile()
      )
        throw new UsageError(`--data ${options.data} is not a file (--model gpt trains on a text file)`);
      try {
        const resolved = await deviceFromEnvironment(faultsFromEnvironment(options));
        await runTrainAction(resolved, process.argv.slice(2));
      } catch (error) {
        const { isTrainingError } = await import('../ml/training/errors.js');
        if (!isTrainingError(error)) throw error;
        console.error(`zbmd train: ${error.message}`);
        // A bad value found once training looked at it is a bad invocation too.
        process.exitCode = error.code === 'invalid_config' ? 2 : 1;
      }
    });
}
