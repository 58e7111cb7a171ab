/**
 * `zbmd train --model gpt` and `zbmd sample`: a tiny GPT trained for a few dozen steps on a tiny
 * corpus through the CLI's command functions (crashes injected and recovered, a checkpoint
 * resumed), then sampled from its checkpoint; and the refusals of bad flags and files.
 */
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerSampleCommand, sampleCommand } from '../../src/cli/sample.js';
import { registerTrainCommand, type TrainCommandOptions, trainCommand } from '../../src/cli/train.js';
import { detectDevices } from '../../src/gpu/detect.js';
import { DEFAULT_TEXT_CORPUS, isDatasetError, textCorpus } from '../../src/ml/data/index.js';
import { isTrainingError, type TrainingConfig, train } from '../../src/ml/training/index.js';

const CORPUS = [
  'Shall I compare thee to a summer day?',
  'Thou art more lovely and more temperate:',
  'Rough winds do shake the darling buds of May,',
  'And summer lease hath all too short a date.',
].join('\n');

let directory: string;
let corpusPath: string;
/** Steps of the first test's run (its checkpoint is sampled from). */
let trainedSteps = 0;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-gpt-'));
  corpusPath = join(directory, 'corpus.txt');
  await writeFile(corpusPath, `${CORPUS}\n${CORPUS}\n${CORPUS}\n`);
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

const base: TrainCommandOptions = {
  model: 'gpt',
  blockSize: 8,
  layers: 1,
  heads: 2,
  dim: 16,
  optimizer: 'adam',
  lr: 1e-2,
  epochs: 3,
  batchSize: 8,
  seed: 1,
  checkpointInterval: 100,
  resume: false,
  json: true,
};

async function runTrain(options: Partial<TrainCommandOptions>): Promise<Record<string, unknown>> {
  const lines: string[] = [];
  await trainCommand({ ...base, data: corpusPath, ...options }, (line) => lines.push(line));
  return JSON.parse(lines.at(-1)!) as Record<string, unknown>;
}

function program(): Command {
  const root = new Command('zbmd').exitOverride().configureOutput({ writeErr: () => undefined });
  registerTrainCommand(root);
  registerSampleCommand(root);
  for (const command of root.commands) command.exitOverride().configureOutput({ writeErr: () => undefined });
  return root;
}

describe('zbmd train --model gpt', () => {
  it('learns: the mean loss falls epoch after epoch, through injected crashes, losing no step', async () => {
    const report = await runTrain({ faults: 'crash=0.1,seed=3', checkpointDir: join(directory, 'run') });
    const epochs = report.epochs as Array<{ mean_loss: number }>;
    expect(epochs).toHaveLength(3);
    expect(epochs[0].mean_loss).toBeGreaterThan(epochs[2].mean_loss + 0.3);
    expect(report.recoveries as number).toBeGreaterThan(0);
    expect(report.lost_steps).toBe(0);
    trainedSteps = report.steps as number;
    // Recovery is exact: the same run without faults ends with the same weights.
    const clean = await runTrain({});
    expect(clean.weights_sha256).toBe(report.weights_sha256);
  });

  it('runs out of memory into micro-batches whose gradients add up to the whole batch', async () => {
    const clean = await runTrain({});
    const report = await runTrain({ faults: 'oom=0.05,seed=5' });
    const causes = report.recovery_causes as Record<string, number>;
    expect(causes.out_of_memory).toBeGreaterThan(0);
    expect(report.final_micro_batch_size as number).toBeLessThan(base.batchSize);
    const losses = (report.epochs as Array<{ mean_loss: number }>).map((epoch) => epoch.mean_loss);
    const cleanLosses = (clean.epochs as Array<{ mean_loss: number }>).map((epoch) => epoch.mean_loss);
    losses.forEach((loss, index) => {
      expect(Math.abs(loss - cleanLosses[index])).toBeLessThan(1e-3);
    });
  });

  it('resumes from its checkpoint to the weights of an uninterrupted run', async () => {
    const whole = await runTrain({ maxSteps: 10 });
    const dir = join(directory, 'resumed');
    await runTrain({ maxSteps: 5, checkpointDir: dir, checkpointInterval: 5 });
    const resumed = await runTrain({ maxSteps: 10, checkpointDir: dir, resume: true });
    expect(resumed.resumed_from_step).toBe(5);
    expect(resumed.weights_sha256).toBe(whole.weights_sha256);
  });

  it('trains on the cpu reference device and on WebGPU with the host losses', async () => {
    const config = {
      model: 'gpt' as const,
      gpt: { blockSize: 8, layers: 1, heads: 2, dimension: 16 },
      data: corpusPath,
      batchSize: 8,
      seed: 3,
      maxSteps: 4,
      evaluateEachEpoch: false,
    };
    const run = async (overrides: Partial<TrainingConfig>) => {
      const losses: number[] = [];
      const result = await train({ ...config, ...overrides, onStep: (step) => losses.push(step.loss) });
      return { losses, result };
    };
    const host = await run({});
    const expectHostLosses = (losses: readonly number[]) => {
      expect(losses).toHaveLength(host.losses.length);
      // (the device kernels sum in other orders than the host's BLAS: float32 rounding)
      for (const [index, loss] of losses.entries())
        expect(Math.abs(loss - host.losses[index])).toBeLessThan(1e-4 * host.losses[index]);
    };
    const reference = await run({ cpuDevice: 'reference' });
    expect(reference.result.tensorBackend).toBe('cpu-reference');
    expectHostLosses(reference.losses);
    // Dropout's masks are drawn on the host from the run's generator: the same on every device.
    const dropout = { gpt: { ...config.gpt, dropout: 0.2 } };
    const hostWithDropout = await run(dropout);
    const referenceWithDropout = await run({ ...dropout, cpuDevice: 'reference' });
    expect(referenceWithDropout.losses).toHaveLength(4);
    for (const [index, loss] of referenceWithDropout.losses.entries())
      expect(Math.abs(loss - hostWithDropout.losses[index])).toBeLessThan(1e-4 * loss);
    expect(hostWithDropout.losses).not.toEqual(host.losses);
    const { devices } = await detectDevices();
    const webgpu = devices.find((device) => device.backend === 'webgpu');
    if (webgpu === undefined) return;
    const gpu = await run({ device: webgpu.id, devices, maxSteps: 2 });
    expect(gpu.result.tensorBackend).toBe('webgpu');
    expectHostLosses([...gpu.losses, ...host.losses.slice(2)]);
  }, 60_000);

  it('with dropout, checkpoints its generator and resumes to the same weights', async () => {
    const config = {
      model: 'gpt' as const,
      gpt: { blockSize: 8, layers: 1, heads: 2, dimension: 16, dropout: 0.1 },
      data: corpusPath,
      batchSize: 8,
      seed: 2,
      evaluateEachEpoch: false,
    };
    const whole = await train({ ...config, maxSteps: 8 });
    const dir = join(directory, 'dropout');
    await train({ ...config, maxSteps: 4, checkpointDir: dir, checkpointIntervalSteps: 4 });
    const resumed = await train({ ...config, maxSteps: 8, checkpointDir: dir, resume: true });
    expect(resumed.resumedFromStep).toBe(4);
    expect(resumed.weightsSha256).toBe(whole.weightsSha256);
  });

  it('samples the same text for the same seed from the checkpoint, in the corpus alphabet', async () => {
    const dir = join(directory, 'run');
    const options = { tokens: 40, temperature: 0.8, topK: 10, seed: 7, json: true, prompt: 'Thou' };
    const first = await sampleCommand(dir, options);
    const again = await sampleCommand(dir, options);
    const other = await sampleCommand(dir, { ...options, seed: 8 });
    expect(first.step).toBe(trainedSteps);
    expect(trainedSteps).toBeGreaterThan(0);
    expect(Array.from(first.text)).toHaveLength(40);
    expect(again.text).toBe(first.text);
    expect(other.text).not.toBe(first.text);
    const alphabet = new Set(CORPUS);
    expect(Array.from(first.text).every((character) => alphabet.has(character))).toBe(true);
  });

  it('refuses a prompt outside the vocabulary, and a checkpoint of another model or none', async () => {
    const dir = join(directory, 'run');
    const options = { tokens: 5, temperature: 1, seed: 0, json: false };
    await expect(sampleCommand(dir, { ...options, prompt: 'Zebra' })).rejects.toSatisfy(
      (error: unknown) =>
        isDatasetError(error) && /"Z" is not in the vocabulary/.test((error as Error).message),
    );
    await expect(sampleCommand(join(directory, 'none'), options)).rejects.toSatisfy((error: unknown) =>
      isTrainingError(error, 'no_checkpoint'),
    );
    const mlp = join(directory, 'mlp');
    const { TINY_DATASET_DIR } = await import('../../src/ml/data/index.js');
    await trainCommand(
      {
        ...base,
        model: 'mlp',
        blockSize: undefined,
        layers: undefined,
        heads: undefined,
        dim: undefined,
        data: TINY_DATASET_DIR,
        maxSteps: 2,
        checkpointDir: mlp,
      },
      () => undefined,
    );
    await expect(sampleCommand(mlp, options)).rejects.toSatisfy(
      (error: unknown) =>
        isTrainingError(error, 'checkpoint_mismatch') && /--model gpt/.test((error as Error).message),
    );
  });

  it('rejects bad flags before training or sampling', async () => {
    const attempts: Array<[string[], RegExp]> = [
      [['train', '--layers', '2'], /shape the gpt model: add --model gpt/],
      [['train', '--model', 'gpt', '--dim', '30', '--heads', '4'], /not a multiple of --heads/],
      [['train', '--model', 'gpt', '--data', directory], /is not a file/],
      [['train', '--model', 'gpt', '--block-size', '0'], /--block-size/],
      [['sample', directory, '--temperature', '0'], /--temperature/],
      [['sample', directory, '--tokens', '-1'], /--tokens/],
      [['sample', directory, '--top-k', '0'], /--top-k/],
      [['sample', directory, '--prompt', ''], /--prompt/],
    ];
    for (const [argv, message] of attempts) {
      await expect(program().parseAsync(argv, { from: 'user' }), argv.join(' ')).rejects.toThrow(message);
    }
  });

  it('a corpus too short for its block is refused, saying how much text it needs', async () => {
    const short = join(directory, 'short.txt');
    await writeFile(short, 'to be or not to be');
    await expect(runTrain({ data: short })).rejects.toSatisfy(
      (error: unknown) =>
        isTrainingError(error, 'invalid_data') &&
        /needs at least 90 \(9 in the test split/.test((error as Error).message),
    );
  });

  it('ships a public-domain corpus under 200 KB that splits into windows', () => {
    expect(statSync(DEFAULT_TEXT_CORPUS).size).toBeLessThan(200 * 1024);
    const corpus = textCorpus(readFileSync(DEFAULT_TEXT_CORPUS, 'utf8'), 64);
    expect(corpus.train.length).toBeGreaterThan(300);
    expect(corpus.train.labels[0]).toBe(corpus.train.features[1]);
  });
});
