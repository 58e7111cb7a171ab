import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTrainingError, readManifest, train } from '../../src/ml/training/index.js';
import { smallRun } from './helpers.js';

let directory: string;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-rundir-'));
});

afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('train: a checkpoint directory that holds a run', () => {
  it('is refused without resume, saying how to resume or start over, and left as it was', async () => {
    await train(await smallRun({ checkpointDir: directory, maxSteps: 20 }));
    const before = (await readdir(directory)).sort();
    const manifestBefore = await readFile(join(directory, 'latest.json'), 'utf8');
    const again = train(await smallRun({ checkpointDir: directory, maxSteps: 10 }));
    await expect(again).rejects.toSatisfy(
      (error: unknown) =>
        isTrainingError(error, 'run_exists') &&
        /--resume/.test((error as Error).message) &&
        /--fresh/.test((error as Error).message) &&
        (error as Error).message.includes(directory),
    );
    expect((await readdir(directory)).sort()).toEqual(before);
    expect(await readFile(join(directory, 'latest.json'), 'utf8')).toBe(manifestBefore);
  });

  it('is refused when only metrics are left, too', async () => {
    await writeFile(join(directory, 'metrics.jsonl'), '{"kind":"step"}\n');
    const again = train(await smallRun({ checkpointDir: directory, maxSteps: 10 }));
    await expect(again).rejects.toSatisfy((error: unknown) => isTrainingError(error, 'run_exists'));
  });

  it('starts over with fresh, removing only its own files', async () => {
    await train(await smallRun({ checkpointDir: directory, maxSteps: 20 }));
    await writeFile(join(directory, 'notes.txt'), 'mine');
    const result = await train(await smallRun({ checkpointDir: directory, maxSteps: 10, fresh: true }));
    expect(result.resumedFromStep).toBe(0);
    expect((await readManifest(directory))?.step).toBe(10);
    expect(await readFile(join(directory, 'notes.txt'), 'utf8')).toBe('mine');
    const steps = (await readFile(join(directory, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .filter((line) => JSON.parse(line).kind === 'step');
    expect(steps.length).toBe(10);
  });

  it('resuming from a directory that does not exist creates nothing', async () => {
    const missing = join(directory, 'not-here');
    const attempt = train(await smallRun({ checkpointDir: missing, resume: true }));
    await expect(attempt).rejects.toSatisfy((error: unknown) => isTrainingError(error, 'no_checkpoint'));
    expect(await readdir(directory)).toEqual([]);
  });

  it('fresh and resume together are refused', async () => {
    const both = train(await smallRun({ checkpointDir: directory, resume: true, fresh: true }));
    await expect(both).rejects.toSatisfy((error: unknown) => isTrainingError(error, 'invalid_config'));
  });
});
