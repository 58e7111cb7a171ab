import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_TRAINING_FAULTS,
  parseTrainingFaults,
  registerTrainCommand,
  type TrainCommandOptions,
  trainCommand,
} from '../../src/cli/train.js';
import { TINY_DATASET_DIR } from '../../src/ml/data/index.js';
import { isTrainingError } from '../../src/ml/training/index.js';

let directory: string;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-cli-train-'));
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

const base: TrainCommandOptions = {
  model: 'mlp',
  optimizer: 'adam',
  epochs: 1,
  batchSize: 32,
  seed: 1,
  checkpointInterval: 100,
  resume: false,
  json: true,
  data: TINY_DATASET_DIR,
  maxSteps: 30,
};

function program(): Command {
  const root = new Command('zbmd').exitOverride().configureOutput({ writeErr: () => undefined });
  registerTrainCommand(root);
  for (const command of root.commands) command.exitOverride().configureOutput({ writeErr: () => undefined });
  return root;
}

describe('zbmd train', () => {
  it('--json reports the figures the issue names', async () => {
    const lines: string[] = [];
    await trainCommand({ ...base, faults: 'crash=0.1,seed=4' }, (line) => lines.push(line));
    expect(lines.length).toBe(1);
    const report = JSON.parse(lines[0]);
    for (const key of [
      'final_test_accuracy',
      'steps',
      'steps_per_sec',
      'recoveries',
      'recovery_ms',
      'lost_steps',
      'weights_sha256',
    ]) {
      expect(report).toHaveProperty(key);
    }
    expect(report.steps).toBe(30);
    expect(report.lost_steps).toBe(0);
    expect(report.recovery_ms.length).toBe(report.recoveries);
    expect(report.recoveries).toBeGreaterThan(0);
    expect(report.weights_sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('prints a readable summary without --json', async () => {
    const lines: string[] = [];
    await trainCommand({ ...base, json: false, maxSteps: 10 }, (line) => lines.push(line));
    expect(lines.some((line) => line.startsWith('steps 10,'))).toBe(true);
    expect(lines.some((line) => line.startsWith('weights sha256 '))).toBe(true);
  });

  it('reads train.csv and test.csv from --data', async () => {
    const rows = (count: number) =>
      Array.from({ length: count }, (_, row) =>
        [row % 3, ...Array.from({ length: 16 }, (_, i) => ((row * 7 + i) % 5) / 5)].join(','),
      );
    await writeFile(join(directory, 'train.csv'), `${rows(64).join('\n')}\n`);
    await writeFile(join(directory, 'test.csv'), `${rows(16).join('\n')}\n`);
    const lines: string[] = [];
    await trainCommand({ ...base, data: directory, batchSize: 8, maxSteps: 8, model: 'cnn' }, (line) =>
      lines.push(line),
    );
    expect(JSON.parse(lines[0]).steps).toBe(8);
  });

  it('says clearly what is wrong with a data directory or its files', async () => {
    const empty = trainCommand({ ...base, data: directory }, () => undefined);
    await expect(empty).rejects.toSatisfy((error: unknown) => isTrainingError(error, 'invalid_data'));
    for (const name of [
      'train-images-idx3-ubyte',
      'train-labels-idx1-ubyte',
      't10k-images-idx3-ubyte',
      't10k-labels-idx1-ubyte',
    ]) {
      await writeFile(join(directory, name), 'not an IDX file');
    }
    const corrupt = trainCommand({ ...base, data: directory }, () => undefined);
    await expect(corrupt).rejects.toSatisfy(
      (error: unknown) => isTrainingError(error, 'invalid_data') && /idx/i.test((error as Error).message),
    );
  });

  it('reads --faults in short keys or the ZBMD_FAULTS syntax', () => {
    expect(parseTrainingFaults('crash=0.01,oom=0.001,device=0.002,seed=7')).toBe(
      'actorCrashRate=0.01,oomRate=0.001,gpuErrorRate=0.002,seed=7',
    );
    expect(parseTrainingFaults('actorCrashRate=0.5')).toBe('actorCrashRate=0.5');
    expect(parseTrainingFaults('{"oomRate":0.1}')).toBe('{"oomRate":0.1}');
    expect(() => parseTrainingFaults('crash=lots')).toThrow(/actorCrashRate/);
  });

  it('rejects bad options before training', async () => {
    const attempts = [
      ['train', '--batch-size', '0'],
      ['train', '--model', 'rnn'],
      ['train', '--epochs', 'two'],
      ['train', '--lr', '-3'],
      ['train', '--faults', 'crash=2'],
      ['train', '--resume'],
    ];
    for (const argv of attempts) {
      await expect(program().parseAsync(argv, { from: 'user' })).rejects.toThrow();
    }
    expect(DEFAULT_TRAINING_FAULTS).toContain('actorCrashRate');
  });
});
