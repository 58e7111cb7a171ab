import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import { fromData, noGrad, toArray } from '../../src/ml/index.js';
import { isModelFileError, loadModel, MODEL_MANIFEST_FILE, saveModel } from '../../src/ml/modelFiles.js';
import type { Module } from '../../src/ml/nn/Module.js';
import { buildCnn, buildMlp, train } from '../../src/ml/training/index.js';
import { CPU_ONLY, tinySlice } from '../training/helpers.js';

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-model-files-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

function outputOf(module: Module, shape: number[]): number[] {
  const size = shape.reduce((a, b) => a * b, 1);
  const input = Float32Array.from({ length: size }, (_, index) => Math.sin(index));
  return noGrad(() => toArray(module.forward(fromData(input, shape))) as number[]);
}

describe('saveModel / loadModel', () => {
  it('round-trips an mlp and a cnn: the loaded module computes the same outputs', async () => {
    const shape = { featureShape: [1, 8, 8], numClasses: 3 };
    for (const [kind, build] of [
      ['mlp', buildMlp],
      ['cnn', buildCnn],
    ] as const) {
      const model = build(shape, new Random(7)).eval();
      const target = join(directory, kind);
      const manifest = await saveModel(model, target, { model: kind, ...shape });
      expect(manifest.parameters.length).toBe(model.namedParameters().length);
      const loaded = await loadModel(target);
      expect(loaded.spec).toEqual({ model: kind, ...shape });
      expect(loaded.source.kind).toBe('saved_model');
      expect(outputOf(loaded.module, [2, 1, 8, 8])).toEqual(outputOf(model, [2, 1, 8, 8]));
    }
  });

  it('rejects a manifest field by field, naming the field', async () => {
    const model = buildMlp({ featureShape: [4], numClasses: 2 }, new Random(1));
    await saveModel(model, directory, { model: 'mlp', featureShape: [4], numClasses: 2 });
    const path = join(directory, MODEL_MANIFEST_FILE);
    const manifest = JSON.parse(await readFile(path, 'utf8'));
    await writeFile(path, JSON.stringify({ ...manifest, numClasses: 0 }));
    await expect(loadModel(directory)).rejects.toThrow(/numClasses/);
    await writeFile(path, JSON.stringify({ ...manifest, model: 'gpt' }));
    await expect(loadModel(directory)).rejects.toSatisfy((error) => isModelFileError(error, 'unknown_model'));
    await writeFile(path, JSON.stringify({ ...manifest, tensorsSha256: '0'.repeat(64) }));
    await expect(loadModel(directory)).rejects.toSatisfy((error) =>
      isModelFileError(error, 'tensors_corrupt'),
    );
    await expect(loadModel(join(directory, 'nothing-here'))).rejects.toSatisfy((error) =>
      isModelFileError(error, 'not_a_model_directory'),
    );
  });

  it('rebuilds the model of a training checkpoint; a manifest without modelShape says to retrain', async () => {
    const data = await tinySlice();
    const result = await train({
      model: 'mlp',
      data,
      batchSize: 64,
      epochs: 1,
      maxSteps: 5,
      seed: 3,
      devices: CPU_ONLY,
      checkpointDir: directory,
      evaluateEachEpoch: false,
    });
    const loaded = await loadModel(directory);
    expect(loaded.spec).toEqual({ model: 'mlp', featureShape: [1, 28, 28], numClasses: 10 });
    expect(loaded.source).toEqual({ kind: 'checkpoint', step: 5 });
    expect(outputOf(loaded.module, [3, 1, 28, 28])).toEqual(outputOf(result.model, [3, 1, 28, 28]));

    const path = join(directory, 'latest.json');
    const { modelShape: _dropped, ...old } = JSON.parse(await readFile(path, 'utf8'));
    await writeFile(path, JSON.stringify(old));
    await expect(loadModel(directory)).rejects.toThrow(/train again/);
  });
});
