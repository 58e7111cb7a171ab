/**
 * `zbmd train`: fault-tolerant training from the command line.
 *
 *   zbmd train                                  MLP, 1 epoch, Fashion-MNIST if installed, else data/tiny
 *   zbmd train --model cnn --epochs 5 --json
 *   zbmd train --faults                         with the default faults (actor crashes, ~19 per epoch)
 *   zbmd train --faults crash=0.01,oom=0.001,device=0.001,seed=7 --checkpoint-dir ckpt
 *   zbmd train --checkpoint-dir ckpt --resume   continue a killed run
 *
 * `--faults` takes short keys (crash, oom, device, seed) or the `ZBMD_FAULTS` syntax (full keys
 * such as actorCrashRate, or JSON). Bad options exit with code 2 and say what is wrong; a run
 * that cannot start (bad data, no checkpoint to resume) exits with code 1.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { parseFaultConfig } from '../fault/FaultConfig.js';
import type { Recovery, TrainingResult } from '../ml/training/index.js';
import { addObserveOptions, type ObserveCliOptions, observeTraining } from './observe.js';

/** The faults of a bare `--faults`: actor crashes at 2% of steps (about 19 per Fashion-MNIST epoch at batch 64). */
export const DEFAULT_TRAINING_FAULTS = 'actorCrashRate=0.02,seed=7';

const FAULT_ALIASES: Readonly<Record<string, string>> = {
  crash: 'actorCrashRate',
  oom: 'oomRate',
  device: 'gpuErrorRate',
  gpu: 'gpuErrorRate',
};

export interface TrainCommandOptions extends ObserveCliOptions {
  readonly data?: string;
  readonly model: 'mlp' | 'cnn';
  readonly optimizer: 'sgd' | 'adam' | 'adamw';
  readonly epochs: number;
  readonly batchSize: number;
  readonly lr?: number;
  readonly device?: string;
  /** A fault spec, or true for the default faults. */
  readonly faults?: string | true;
  readonly seed: number;
  readonly maxSteps?: number;
  readonly checkpointDir?: string;
  readonly checkpointInterval: number;
  /** Steps between in-memory snapshots, or 'auto' (default). */
  readonly snapshotInterval?: number | 'auto';
  readonly resume: boolean;
  readonly json: boolean;
}

/** Reads `--faults`: short keys (crash, oom, device, seed) or the ZBMD_FAULTS syntax. */
export function parseTrainingFaults(text: string): string {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    parseFaultConfig(trimmed);
    return trimmed;
  }
  const expanded = trimmed
    .split(',')
    .filter((pair) => pair.trim() !== '')
    .map((pair) => {
      const [key, ...rest] = pair.split('=');
      const name = FAULT_ALIASES[key.trim()] ?? key.trim();
      return rest.length === 0 ? name : `${name}=${rest.join('=')}`;
    })
    .join(',');
  parseFaultConfig(expanded);
  return expanded;
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
  return {
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
    epochs: result.epochs.map((epoch) => ({
      epoch: epoch.epoch,
      mean_loss: round(epoch.meanLoss, 5),
      test_accuracy: epoch.testAccuracy === undefined ? null : round(epoch.testAccuracy, 4),
      steps_per_sec: round(epoch.stepsPerSec, 1),
    })),
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
  for (const epoch of result.epochs) {
    const accuracy =
      epoch.testAccuracy === undefined ? '' : ` test accuracy ${epoch.testAccuracy.toFixed(4)}`;
    write(
      `epoch ${epoch.epoch + 1}: mean loss ${epoch.meanLoss.toFixed(4)}${accuracy} ${epoch.stepsPerSec.toFixed(1)} steps/s`,
    );
  }
  const causes = Object.entries(countCauses(result.recoveries)).map(([cause, count]) => `${cause} ${count}`);
  const medianMs = median(result.recoveries.map((recovery) => recovery.recoveryMs));
  write(
    `recoveries ${result.recoveries.length}${causes.length > 0 ? ` (${causes.join(', ')}), median ${medianMs.toFixed(2)} ms` : ''}`,
  );
  write(
    `steps ${result.steps}, ${result.stepsPerSec.toFixed(1)} steps/s, lost steps ${result.lostSteps}, final test accuracy ${result.finalTestAccuracy.toFixed(4)}`,
  );
  write(`weights sha256 ${result.weightsSha256}`);
}

/** Runs `zbmd train` with parsed options; `write` gets the report lines (stdout). */
export async function trainCommand(
  options: TrainCommandOptions,
  write: (line: string) => void,
): Promise<TrainingResult> {
  const faults =
    options.faults === true ? DEFAULT_TRAINING_FAULTS : options.faults && parseTrainingFaults(options.faults);
  const stderr = process.stderr;
  const live = stderr.isTTY === true;
  // Loaded on use, so that `zbmd --help` and the other commands do not load the ML stack.
  const { train } = await import('../ml/training/index.js');
  const observation = await observeTraining(options, (line) => stderr.write(`${line}\n`));
  const result = await train({
    ...observation.hooks,
    model: options.model,
    optimizer: options.optimizer,
    learningRate: options.lr,
    data: options.data,
    batchSize: options.batchSize,
    epochs: options.epochs,
    maxSteps: options.maxSteps,
    device: options.device,
    faults,
    seed: options.seed,
    checkpointDir: options.checkpointDir,
    checkpointIntervalSteps: options.checkpointInterval,
    snapshotIntervalSteps: options.snapshotInterval,
    resume: options.resume,
    progress: live ? (line) => stderr.write(`\r\x1b[K${line}`) : undefined,
  }).finally(() => observation.finish());
  if (live) stderr.write('\n');
  if (options.json) write(JSON.stringify(trainingReport(result)));
  else writeSummary(result, write);
  return result;
}

function integerParser(minimum: number): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < minimum) {
      throw new InvalidArgumentError(`expected an integer >= ${minimum}, got '${value}'`);
    }
    return parsed;
  };
}

function parseLearningRate(value: string): number {
  const parsed = Number(value);
  if (!(parsed > 0 && parsed <= 10))
    throw new InvalidArgumentError(`expected a number in (0, 10], got '${value}'`);
  return parsed;
}

function parseSnapshotInterval(value: string): number | 'auto' {
  if (value === 'auto') return value;
  return integerParser(1)(value);
}

function parseFaultsOption(value: string): string {
  try {
    return parseTrainingFaults(value);
  } catch (error) {
    throw new InvalidArgumentError(`${(error as Error).message} (short keys: crash, oom, device, seed)`);
  }
}

/** Adds `zbmd train` to the program (src/cli/main.ts calls it). */
export function registerTrainCommand(program: Command): void {
  addObserveOptions(program.command('train'))
    .description(
      'train a model under supervision, through injected crashes, OOM and device errors, losing no step',
    )
    .option(
      '--data <dir>',
      'IDX files or train.csv + test.csv (default: Fashion-MNIST if installed, else data/tiny)',
    )
    .addOption(new Option('--model <name>', 'model').choices(['mlp', 'cnn']).default('mlp'))
    .addOption(
      new Option('--optimizer <name>', 'optimizer').choices(['sgd', 'adam', 'adamw']).default('adam'),
    )
    .option('--epochs <n>', 'epochs', integerParser(1), 1)
    .option('--batch-size <n>', 'samples per step', integerParser(1), 64)
    .option('--lr <rate>', 'learning rate (default 1e-3 for adam, 0.01 for sgd)', parseLearningRate)
    .option('--device <id>', 'device to start on: cpu, webgpu:0, cuda:0 (default: the first detected)')
    .option(
      '--faults [spec]',
      `inject faults, e.g. crash=0.01,oom=0.001,device=0.001,seed=7 (bare: ${DEFAULT_TRAINING_FAULTS})`,
      parseFaultsOption,
    )
    .option('--seed <n>', 'seed of initialisation and shuffling', integerParser(0), 42)
    .option('--max-steps <n>', 'stop after this many steps', integerParser(1))
    .option(
      '--checkpoint-dir <dir>',
      'persist checkpoints (safetensors + latest.json) and metrics.jsonl here',
    )
    .option('--checkpoint-interval <steps>', 'persist every this many steps', integerParser(1), 100)
    .option(
      '--snapshot-interval <steps>',
      "steps between in-memory snapshots, or 'auto': every step while a snapshot costs under 1% of a step",
      parseSnapshotInterval,
      'auto',
    )
    .option('--resume', 'continue from the last checkpoint in --checkpoint-dir', false)
    .option('--json', 'print one JSON object', false)
    .action(async (options: TrainCommandOptions) => {
      if (options.resume && options.checkpointDir === undefined) {
        throw new InvalidArgumentError('--resume needs --checkpoint-dir');
      }
      try {
        await trainCommand(options, (line) => console.log(line));
      } catch (error) {
        const { isTrainingError } = await import('../ml/training/errors.js');
        if (!isTrainingError(error)) throw error;
        console.error(`zbmd train: ${error.message}`);
        process.exitCode = 1;
      }
    });
}
