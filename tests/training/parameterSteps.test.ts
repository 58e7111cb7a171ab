/**
 * Checkpoints keep Adam's per-parameter step counts (PyTorch's state['step']): a parameter whose
 * first gradient came late resumes with its own bias correction, not the global step's.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import { Adam, Parameter } from '../../src/ml/index.js';
import { readCheckpoint, writeCheckpoint } from '../../src/ml/training/checkpointFiles.js';
import { isTrainingError, MANIFEST_FILE } from '../../src/ml/training/index.js';
import { TrainingSnapshot } from '../../src/ml/training/TrainingSnapshot.js';

const names = ['a', 'b'];
const shapes = [[3], [2]];

function setup() {
  const parameters = [
    new Parameter(Float32Array.from([1, 2, 3]), [3]),
    new Parameter(Float32Array.from([4, 5]), [2]),
  ];
  const adam = new Adam(parameters, { learningRate: 0.1 });
  const access = {
    optimizer: adam,
    slotNames: () => adam.slotNames(),
    slotBuffers: (n: string) => adam.slotBuffers(n),
  };
  return { parameters, adam, access };
}

/** Three steps; the second parameter has no gradient on the first (its grad is null). */
function stepThrice({ parameters, adam }: ReturnType<typeof setup>): void {
  for (let step = 0; step < 3; step++) {
    parameters[0].grad = Float32Array.from([0.1, -0.2, 0.3 + step]);
    parameters[1].grad = step === 0 ? null : Float32Array.from([0.5, -0.5 * step]);
    adam.step();
  }
}

const loaderState = {
  version: 1 as const,
  epoch: 0,
  position: 12,
  seed: 1,
  shuffle: false,
  batchSize: 4,
  dropLast: false,
  datasetLength: 100,
};
const loader = { state: () => loaderState, restore() {} };
const run = {
  model: 'mlp',
  optimizer: 'adam',
  batchSize: 4,
  seed: 1,
  shuffle: false,
  datasetLength: 100,
  parameterNames: names,
};

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-steps-'));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('checkpoints store each parameter step count', () => {
  it('a resumed Adam continues exactly as the uninterrupted one', async () => {
    const live = setup();
    stepThrice(live);
    expect(live.adam.parameterSteps).toEqual([3, 2]);
    const snapshot = new TrainingSnapshot(names, shapes, 4, 'cpu:0');
    snapshot.capture({ parameters: live.parameters, optimizer: live.access, loader, randoms: new Map() }, 3);
    snapshot.epochProgress = { steps: 3, lossSum: 1 };
    const manifest = await writeCheckpoint(directory, snapshot.copy(), run, 'periodic');
    expect(manifest.optimizer.parameterSteps).toEqual([3, 2]);

    const resumed = setup();
    const loaded = new TrainingSnapshot(names, shapes, 4, 'cpu:0');
    loaded.load(await readCheckpoint(directory, run, shapes));
    loaded.restore({ parameters: resumed.parameters, optimizer: resumed.access, loader, randoms: new Map() });
    expect(resumed.adam.parameterSteps).toEqual([3, 2]);
    for (const model of [live, resumed]) {
      model.parameters[0].grad = Float32Array.from([1, 1, 1]);
      model.parameters[1].grad = Float32Array.from([1, -1]);
      model.adam.step();
    }
    expect([...resumed.parameters[1].data]).toEqual([...live.parameters[1].data]);
    expect([...resumed.parameters[0].data]).toEqual([...live.parameters[0].data]);
  });

  it('an older manifest without them resumes with every count at the global step; bad ones are refused', async () => {
    const live = setup();
    stepThrice(live);
    const snapshot = new TrainingSnapshot(names, shapes, 4, 'cpu:0');
    snapshot.capture({ parameters: live.parameters, optimizer: live.access, loader, randoms: new Map() }, 3);
    snapshot.epochProgress = { steps: 3, lossSum: 1 };
    await writeCheckpoint(directory, snapshot.copy(), run, 'periodic');
    const path = join(directory, MANIFEST_FILE);
    const manifest = JSON.parse(await readFile(path, 'utf8'));
    for (const bad of [[3], [4, 2], [3, -1], 'all']) {
      await writeFile(
        path,
        JSON.stringify({ ...manifest, optimizer: { ...manifest.optimizer, parameterSteps: bad } }),
      );
      const error = await readCheckpoint(directory, run, shapes).catch((caught: unknown) => caught);
      expect(isTrainingError(error, 'checkpoint_invalid'), String(error)).toBe(true);
      expect((error as { field?: string }).field).toBe('optimizer.parameterSteps');
    }
    const { parameterSteps: _dropped, ...older } = manifest.optimizer;
    await writeFile(path, JSON.stringify({ ...manifest, optimizer: older }));
    const resumed = setup();
    const loaded = new TrainingSnapshot(names, shapes, 4, 'cpu:0');
    loaded.load(await readCheckpoint(directory, run, shapes));
    loaded.restore({
      parameters: resumed.parameters,
      optimizer: resumed.access,
      loader,
      randoms: new Map([['x', new Random(1)]]),
    });
    expect(resumed.adam.parameterSteps).toEqual([3, 3]);
  });
});
