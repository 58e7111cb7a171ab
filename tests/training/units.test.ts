import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import { faultConfig } from '../../src/fault/FaultConfig.js';
import { DataLoader } from '../../src/ml/data/DataLoader.js';
import { Adam } from '../../src/ml/optim/Adam.js';
import {
  buildMlp,
  FaultPlan,
  isTrainingError,
  resolveTrainingConfig,
  runTrainingStep,
  StepLineage,
  train,
} from '../../src/ml/training/index.js';
import { SnapshotPolicy } from '../../src/ml/training/SnapshotPolicy.js';
import { smallRun, tinySlice } from './helpers.js';

describe('FaultPlan', () => {
  it('decides each step once, replayably from the seed', () => {
    const config = faultConfig({ actorCrashRate: 0.2, oomRate: 0.1, seed: 3 });
    const first = new FaultPlan(config);
    const second = new FaultPlan(config);
    const decisions = Array.from({ length: 50 }, (_, step) => first.decide(step, 'cpu:0'));
    expect(Array.from({ length: 50 }, (_, step) => second.decide(step, 'cpu:0'))).toEqual(decisions);
    expect(decisions.filter((faults) => faults.crash !== undefined).length).toBeGreaterThan(0);
    expect(first.decide(10, 'cpu:0')).toEqual({
      crash: undefined,
      outOfMemory: false,
      deviceError: false,
      kernelTimeout: false,
    });
  });

  it('fast-forwards to the faults an uninterrupted run meets next, with or without faults', () => {
    const config = faultConfig({ actorCrashRate: 0.2, seed: 8 });
    const straight = new FaultPlan(config);
    for (let step = 0; step < 30; step++) straight.decide(step, 'cpu:0');
    const resumed = new FaultPlan(config);
    resumed.fastForward(30, 'cpu:0');
    expect(resumed.decide(30, 'cpu:0')).toEqual(straight.decide(30, 'cpu:0'));
    const quiet = new FaultPlan(faultConfig({}));
    quiet.fastForward(1000, 'cpu:0');
    expect(quiet.decide(1000, 'cpu:0').crash).toBeUndefined();
  });
});

describe('StepLineage', () => {
  it('counts missing steps, gaps and overlaps in the samples the steps consumed', () => {
    const tiled = new StepLineage(4, 0);
    for (const [step, start] of [0, 4, 8].entries()) tiled.commit(step, 0, start, 4);
    tiled.commit(3, 1, 0, 4);
    expect(tiled.audit(12, { epoch: 0, position: 0 })).toEqual({ lostSteps: 0, committedSteps: 4 });
    const broken = new StepLineage(4, 0);
    broken.commit(0, 0, 0, 4);
    broken.commit(1, 0, 0, 4);
    broken.commit(2, 0, 8, 4);
    expect(broken.audit(12, { epoch: 0, position: 0 })).toEqual({ lostSteps: 3, committedSteps: 3 });
  });
});

describe('SnapshotPolicy', () => {
  it('snapshots every step while the copy is cheap and spaces them out when it is not, within the bound', () => {
    const policy = new SnapshotPolicy('auto');
    for (let round = 0; round < 100; round++) policy.observe(10, 0.01);
    expect(policy.intervalSteps).toBe(1);
    for (let round = 0; round < 100; round++) policy.observe(1, 0.04);
    expect(policy.intervalSteps).toBe(4);
    for (let round = 0; round < 100; round++) policy.observe(1, 5);
    expect(policy.intervalSteps).toBe(8);
    expect(policy.shouldCapture(13, 10, false)).toBe(false);
    expect(policy.shouldCapture(13, 10, true)).toBe(true);
    const fixed = new SnapshotPolicy(1);
    fixed.observe(1, 5);
    expect(fixed.intervalSteps).toBe(1);
  });
});

describe('runTrainingStep', () => {
  it('accumulates micro-batches to the update of the whole batch', async () => {
    const data = await tinySlice();
    const shape = { featureShape: data.train.featureShape, numClasses: data.train.numClasses };
    const batch = new DataLoader(data.train, { batchSize: 32 }).next()!;
    const whole = buildMlp(shape, new Random(1));
    const split = buildMlp(shape, new Random(1));
    const wholeLoss = runTrainingStep(whole, new Adam(whole.parameters(), { learningRate: 0.01 }), batch, 32);
    const splitLoss = runTrainingStep(split, new Adam(split.parameters(), { learningRate: 0.01 }), batch, 5);
    expect(splitLoss).toBeCloseTo(wholeLoss, 5);
    const [a, b] = [whole.parameters(), split.parameters()];
    for (let index = 0; index < a.length; index++) {
      let largest = 0;
      for (let i = 0; i < a[index].size; i++)
        largest = Math.max(largest, Math.abs(a[index].data[i] - b[index].data[i]));
      expect(largest).toBeLessThan(1e-5);
    }
  });
});

describe('resolveTrainingConfig', () => {
  it('names the bad field', () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ model: 'rnn' }, 'model'],
      [{ model: 'mlp', batchSize: 0 }, 'batchSize'],
      [{ model: 'mlp', epochs: 1.5 }, 'epochs'],
      [{ model: 'mlp', learningRate: -1 }, 'learningRate'],
      [{ model: 'mlp', optimizer: 'lbfgs' }, 'optimizer'],
      [{ model: 'mlp', resume: true }, 'resume'],
      [{ model: 'mlp', faults: 'crash=2' }, 'faults'],
      [{ model: 'mlp', snapshotIntervalSteps: 0 }, 'snapshotIntervalSteps'],
    ];
    for (const [config, field] of bad) {
      expect(() => resolveTrainingConfig(config as never)).toThrow(field);
      try {
        resolveTrainingConfig(config as never);
      } catch (error) {
        expect(isTrainingError(error, 'invalid_config')).toBe(true);
      }
    }
    expect(resolveTrainingConfig({ model: 'mlp' }).batchSize).toBe(64);
  });

  it('refuses an unknown device and data it cannot read', async () => {
    await expect(train(await smallRun({ device: 'cuda:3' }))).rejects.toSatisfy((error: unknown) =>
      isTrainingError(error, 'invalid_config'),
    );
    await expect(train(await smallRun({ data: '/nonexistent/zbmd' }))).rejects.toSatisfy((error: unknown) =>
      isTrainingError(error, 'invalid_data'),
    );
  });
});
