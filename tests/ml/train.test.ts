import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import * as ml from '../../src/ml/index.js';
import { pool } from '../../src/ml/internal/pool.js';

/** Two noisy Gaussian blobs per class in 2-D, 3 classes. */
function syntheticBatches(count: number, size: number, seed: number): ml.TrainBatch[] {
  const random = new Random(seed);
  const centers = [
    [2, 0],
    [-1, 1.7],
    [-1, -1.7],
  ];
  return Array.from({ length: count }, () => {
    const inputs = new Float32Array(size * 2);
    const labels = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      const label = random.nextInt(3);
      labels[i] = label;
      inputs[2 * i] = centers[label][0] + 0.5 * random.normal();
      inputs[2 * i + 1] = centers[label][1] + 0.5 * random.normal();
    }
    return { inputs, labels, size, featureShape: [2] };
  });
}

function mlp(): ml.Module {
  ml.manualSeed(10);
  return new ml.Sequential(new ml.Linear(2, 16), new ml.ReLU(), new ml.Linear(16, 3));
}

describe('trainPlain', () => {
  it('training a tiny MLP reduces the loss and classifies the blobs', () => {
    const model = mlp();
    const batches = syntheticBatches(20, 16, 1);
    const result = ml.trainPlain({
      model,
      optimizer: new ml.Adam(model.parameters(), { learningRate: 0.02 }),
      batches,
      epochs: 5,
    });
    expect(result.steps).toBe(100);
    expect(result.epochLosses[4]).toBeLessThan(result.epochLosses[0] * 0.5);
    const test = syntheticBatches(1, 300, 2)[0];
    const accuracy = ml.evaluateAccuracy(model, {
      features: test.inputs,
      labels: test.labels,
      featureShape: [2],
    });
    expect(accuracy).toBeGreaterThan(0.9);
  });

  it('reuses buffers: in steady state a step takes from the pool exactly what it gives back', () => {
    const model = new ml.Sequential(
      new ml.Conv2d(1, 2, 3, { padding: 1 }),
      new ml.ReLU(),
      new ml.MaxPool2d(2),
      new ml.Flatten(),
      new ml.Linear(8, 3),
    );
    const optimizer = new ml.Adam(model.parameters());
    const batch = {
      inputs: new Float32Array(4 * 16).fill(0.5),
      labels: new Int32Array([0, 1, 2, 0]),
      size: 4,
      featureShape: [1, 4, 4],
    };
    for (let i = 0; i < 3; i++) ml.trainStep(model, optimizer, batch);
    const pooled = pool.bytes;
    const gradients = model.parameters().map((p) => p.grad);
    for (let i = 0; i < 10; i++) ml.trainStep(model, optimizer, batch);
    expect(pool.bytes).toBe(pooled);
    // Parameter gradients are accumulated in place, never reallocated.
    model.parameters().forEach((p, i) => {
      expect(p.grad).toBe(gradients[i]);
    });
    ml.clearBufferPools();
    expect(pool.bytes).toBe(0);
  });

  it('is deterministic: the same seeds give the same losses', () => {
    const run = (): number[] => {
      const model = mlp();
      const losses: number[] = [];
      ml.trainPlain({
        model,
        optimizer: new ml.SGD(model.parameters(), { learningRate: 0.1, momentum: 0.9 }),
        batches: syntheticBatches(5, 8, 3),
        epochs: 2,
        onStep: ({ loss }) => {
          losses.push(loss);
        },
      });
      return losses;
    };
    expect(run()).toEqual(run());
  });

  it('reads a loader epoch by epoch, resetting a loader that waits for reset, and honours maxSteps and onStep', () => {
    const batches = syntheticBatches(3, 4, 4);
    let position = 0;
    let resets = 0;
    const loader: ml.BatchSource = {
      next: () => batches[position++],
      reset: () => {
        position = 0;
        resets++;
      },
    };
    const model = mlp();
    const optimizer = new ml.SGD(model.parameters(), { learningRate: 0.01 });
    const result = ml.trainPlain({ model, optimizer, loader, epochs: 3 });
    expect(result.steps).toBe(9);
    expect(resets).toBe(2);
    const limited = ml.trainPlain({ model, optimizer, batches, epochs: 10, maxSteps: 4 });
    expect(limited.steps).toBe(4);
    const stopped = ml.trainPlain({ model, optimizer, batches, epochs: 10, onStep: ({ step }) => step < 2 });
    expect(stopped.steps).toBe(2);
    expect(() => ml.trainPlain({ model, optimizer, epochs: 1 } as ml.TrainPlainOptions)).toThrow(
      /exactly one/,
    );
  });

  it('trains from the data layer DataLoader, epoch after epoch', () => {
    const batches = syntheticBatches(1, 200, 7)[0];
    const dataset = new ml.InMemoryDataset({
      features: batches.inputs,
      labels: batches.labels,
      featureShape: [2],
      numClasses: 3,
    });
    const loader = new ml.DataLoader(dataset, { batchSize: 16, shuffle: true, seed: 3 });
    const model = mlp();
    const result = ml.trainPlain({
      model,
      optimizer: new ml.Adam(model.parameters(), { learningRate: 0.02 }),
      loader,
      epochs: 4,
    });
    expect(result.steps).toBe(4 * 13);
    expect(loader.epoch).toBe(4);
    expect(result.epochLosses[3]).toBeLessThan(result.epochLosses[0]);
    expect(ml.evaluateAccuracy(model, dataset)).toBeGreaterThan(0.9);
  });

  it('supports schedules, clipping and a custom loss (MSE regression)', () => {
    ml.manualSeed(12);
    const model = new ml.Sequential(new ml.Linear(1, 1));
    const random = new Random(5);
    const batches = Array.from({ length: 10 }, () => {
      const inputs = Float32Array.from({ length: 8 }, () => random.next() * 2 - 1);
      return { inputs, labels: new Int32Array(8), size: 8, featureShape: [1] };
    });
    // Learn y = 3x - 1.
    const loss: ml.LossFunction = (output, batch) =>
      ml.mseLoss(
        output,
        ml.fromData(
          batch.inputs.map((x) => 3 * x - 1),
          [8, 1],
        ),
      );
    const optimizer = new ml.SGD(model.parameters(), { learningRate: 0.3 });
    const schedule = ml.warmupSchedule({
      warmupSteps: 5,
      after: ml.cosineSchedule({ learningRate: 0.3, totalSteps: 300 }),
    });
    const result = ml.trainPlain({ model, optimizer, batches, epochs: 30, loss, schedule, clipGradNorm: 5 });
    expect(result.lastLoss).toBeLessThan(1e-3);
    const [weight, bias] = model.parameters();
    expect(weight.data[0]).toBeCloseTo(3, 1);
    expect(bias.data[0]).toBeCloseTo(-1, 1);
  });

  it('a small CNN trains on synthetic images (bars: horizontal vs vertical)', () => {
    ml.manualSeed(13);
    const random = new Random(6);
    const makeBatch = (): ml.TrainBatch => {
      const inputs = new Float32Array(16 * 36);
      const labels = new Int32Array(16);
      for (let n = 0; n < 16; n++) {
        labels[n] = random.nextInt(2);
        const line = random.nextInt(6);
        for (let i = 0; i < 6; i++) inputs[n * 36 + (labels[n] === 0 ? line * 6 + i : i * 6 + line)] = 1;
        for (let i = 0; i < 36; i++) inputs[n * 36 + i] += 0.1 * random.normal();
      }
      return { inputs, labels, size: 16, featureShape: [1, 6, 6] };
    };
    const model = new ml.Sequential(
      new ml.Conv2d(1, 4, 3, { padding: 1 }),
      new ml.ReLU(),
      new ml.MaxPool2d(2),
      new ml.Flatten(),
      new ml.Linear(36, 2),
    );
    const batches = Array.from({ length: 10 }, makeBatch);
    const result = ml.trainPlain({
      model,
      optimizer: new ml.Adam(model.parameters(), { learningRate: 0.01 }),
      batches,
      epochs: 8,
    });
    expect(result.epochLosses[7]).toBeLessThan(0.2);
    const test = makeBatch();
    expect(
      ml.evaluateAccuracy(model, { features: test.inputs, labels: test.labels, featureShape: [1, 6, 6] }),
    ).toBeGreaterThan(0.9);
  });
});
