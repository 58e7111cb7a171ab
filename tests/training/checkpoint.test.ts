import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readSafetensorsFile, safetensorsEntryToFloat32 } from '../../src/ml/safetensors.js';
import { isTrainingError, MANIFEST_FILE, readManifest, train } from '../../src/ml/training/index.js';
import { smallRun } from './helpers.js';

let directory: string;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-train-'));
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('train: checkpoints', () => {
  it('persists standard safetensors files and a manifest that name each other', async () => {
    const result = await train(await smallRun({ checkpointDir: directory, checkpointIntervalSteps: 40 }));
    const manifest = await readManifest(directory);
    expect(manifest?.step).toBe(150);
    expect(manifest?.reason).toBe('final');
    const file = await readSafetensorsFile(join(directory, manifest!.tensorsFile));
    expect(file.metadata).toMatchObject({ format: 'zbmd-training-checkpoint', step: '150' });
    expect(JSON.parse(file.metadata!.run).batchSize).toBe(16);
    const weight = file.tensors['weights.layers.1.weight'];
    expect(weight.dtype).toBe('F32');
    expect(weight.shape).toEqual([128, 784]);
    expect(file.tensors['optimizer.0.m'].shape).toEqual([128, 784]);
    expect(Object.keys(file.tensors).filter((name) => name.startsWith('weights.')).length).toBe(4);
    expect(safetensorsEntryToFloat32(weight).length).toBe(128 * 784);
    const metrics = (await readFile(join(directory, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    expect(metrics.filter((line) => JSON.parse(line).kind === 'step').length).toBe(result.steps);
  });

  it('resumes from the last checkpoint to the weights of an uninterrupted run', async () => {
    const uninterrupted = await train(await smallRun());
    const first = await train(
      await smallRun({ checkpointDir: directory, checkpointIntervalSteps: 20, maxSteps: 70 }),
    );
    expect(first.steps).toBe(70);
    const resumed = await train(await smallRun({ checkpointDir: directory, resume: true }));
    expect(resumed.resumedFromStep).toBe(70);
    expect(resumed.steps).toBe(150);
    expect(resumed.lostSteps).toBe(0);
    expect(resumed.weightsSha256).toBe(uninterrupted.weightsSha256);
  });

  it('refuses to resume without a checkpoint, from another run, or from a corrupt file', async () => {
    const nothing = train(await smallRun({ checkpointDir: directory, resume: true }));
    await expect(nothing).rejects.toSatisfy((error: unknown) => isTrainingError(error, 'no_checkpoint'));
    await train(await smallRun({ checkpointDir: directory, maxSteps: 20 }));
    const other = train(await smallRun({ checkpointDir: directory, resume: true, batchSize: 32 }));
    await expect(other).rejects.toSatisfy((error: unknown) => isTrainingError(error, 'checkpoint_mismatch'));
    const manifest = await readManifest(directory);
    const path = join(directory, manifest!.tensorsFile);
    const bytes = await readFile(path);
    bytes[bytes.length - 1] ^= 0xff;
    await writeFile(path, bytes);
    const corrupt = train(await smallRun({ checkpointDir: directory, resume: true }));
    await expect(corrupt).rejects.toSatisfy((error: unknown) => isTrainingError(error, 'checkpoint_corrupt'));
    await writeFile(join(directory, MANIFEST_FILE), '{ not json');
    const garbled = train(await smallRun({ checkpointDir: directory, resume: true }));
    await expect(garbled).rejects.toSatisfy((error: unknown) => isTrainingError(error, 'checkpoint_corrupt'));
  });

  it('writes an emergency checkpoint when a failure is detected', async () => {
    await train(
      await smallRun({
        checkpointDir: directory,
        checkpointIntervalSteps: 1000,
        faults: 'actorCrashRate=0.08,seed=10',
        maxSteps: 30,
      }),
    );
    const manifest = await readManifest(directory);
    expect(manifest?.step).toBe(30);
    const lines = (await readFile(join(directory, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines.some((line) => line.kind === 'recovery')).toBe(true);
  });
});
