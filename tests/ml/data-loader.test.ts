import { setImmediate as nextTurn } from 'node:timers/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Batch,
  DATA_LOADER_MAX_BATCH_SIZE,
  DataLoader,
  type DataLoaderOptions,
  InMemoryDataset,
  isDataLoaderError,
  type LoaderState,
} from '../../src/ml/data/index.js';

/** Sample i has features [i, i + 0.5] and label i % 3, so every batch can be checked. */
function numbered(length: number): InMemoryDataset {
  const features = new Float32Array(length * 2);
  for (let i = 0; i < length; i++) {
    features[2 * i] = i;
    features[2 * i + 1] = i + 0.5;
  }
  return new InMemoryDataset({
    features,
    labels: Int32Array.from({ length }, (_, i) => i % 3),
    featureShape: [1, 2],
    numClasses: 3,
  });
}

interface Copy {
  indices: number[];
  labels: number[];
  inputs: number[];
  size: number;
}

const copy = (batch: Batch): Copy => ({
  indices: [...batch.indices],
  labels: [...batch.labels],
  inputs: [...batch.inputs],
  size: batch.size,
});

/** The rest of the current epoch, copied. */
function drain(loader: DataLoader): Copy[] {
  // Copy each batch before asking for the next: the loader reuses its buffers.
  const batches: Copy[] = [];
  for (const batch of loader) batches.push(copy(batch));
  return batches;
}

function expectConsistent(batch: Copy): void {
  expect(batch.inputs).toEqual(batch.indices.flatMap((i) => [i, i + 0.5]));
  expect(batch.labels).toEqual(batch.indices.map((i) => i % 3));
}

describe('DataLoader without shuffling', () => {
  it('hands out the data set in order, the last batch smaller, then undefined and a new epoch', () => {
    const dataset = numbered(10);
    const loader = new DataLoader(dataset, { batchSize: 4 });
    expect(loader.batchesPerEpoch).toBe(3);
    const first = loader.next()!;
    expect(first.size).toBe(4);
    expect(first.featureShape).toEqual([1, 2]);
    expect(first.inputs.buffer).toBe(dataset.features.buffer); // a view, not a copy
    expect([...first.indices]).toEqual([0, 1, 2, 3]);
    expectConsistent(copy(first));
    expect(loader.next()!.size).toBe(4);
    const last = loader.next()!;
    expect([...last.indices]).toEqual([8, 9]);
    expect(last.inputs.length).toBe(4);
    expect(loader.epoch).toBe(0);
    expect(loader.next()).toBeUndefined();
    expect(loader.epoch).toBe(1);
    expect(loader.position).toBe(0);
    expect([...loader.next()!.indices]).toEqual([0, 1, 2, 3]);
  });

  it('drops the last partial batch with dropLast', () => {
    const loader = new DataLoader(numbered(10), { batchSize: 4, dropLast: true });
    expect(drain(loader).map((batch) => batch.size)).toEqual([4, 4]);
    expect(loader.batchesPerEpoch).toBe(2);
    expect(loader.epoch).toBe(1);
  });

  it('iterates one epoch per for-of loop', () => {
    const loader = new DataLoader(numbered(5), { batchSize: 2 });
    for (let epoch = 0; epoch < 3; epoch++) {
      expect(drain(loader).flatMap((batch) => batch.indices)).toEqual([0, 1, 2, 3, 4]);
    }
    expect(loader.epoch).toBe(3);
  });
});

describe('DataLoader with shuffling', () => {
  it('visits every sample once per epoch, in a new order each epoch, the same for the same seed', () => {
    const options: DataLoaderOptions = { batchSize: 7, shuffle: true, seed: 42 };
    const loader = new DataLoader(numbered(50), options);
    const twin = new DataLoader(numbered(50), options);
    const orders: number[][] = [];
    for (let epoch = 0; epoch < 3; epoch++) {
      const batches = drain(loader);
      batches.forEach(expectConsistent);
      const order = batches.flatMap((batch) => batch.indices);
      expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(drain(twin).flatMap((batch) => batch.indices)).toEqual(order);
      orders.push(order);
    }
    expect(orders[1]).not.toEqual(orders[0]);
    expect(orders[2]).not.toEqual(orders[1]);
    const other = new DataLoader(numbered(50), { ...options, seed: 43 });
    expect(drain(other).flatMap((batch) => batch.indices)).not.toEqual(orders[0]);
  });

  it('reuses its buffers: a batch is valid until the next call', () => {
    const loader = new DataLoader(numbered(8), { batchSize: 4, shuffle: true });
    const first = loader.next()!;
    const firstInputs = first.inputs;
    const second = loader.next()!;
    expect(second.inputs.buffer).toBe(firstInputs.buffer);
  });

  it('reset rewinds to the start of the current epoch', () => {
    const loader = new DataLoader(numbered(9), { batchSize: 2, shuffle: true, seed: 3 });
    drain(loader);
    const start = copy(loader.next()!);
    loader.next();
    loader.reset();
    expect(loader.epoch).toBe(1);
    expect(copy(loader.next()!)).toEqual(start);
  });
});

describe('state and restore', () => {
  it('state is plain JSON', () => {
    const loader = new DataLoader(numbered(10), { batchSize: 3, shuffle: true, seed: 9 });
    loader.next();
    const state = loader.state();
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
    expect(state).toEqual({
      version: 1,
      epoch: 0,
      position: 3,
      seed: 9,
      shuffle: true,
      batchSize: 3,
      dropLast: false,
      datasetLength: 10,
    });
  });

  it('a restored loader makes the same remaining batches, bit for bit (property)', () => {
    fc.assert(
      fc.property(
        fc.record({
          length: fc.integer({ min: 1, max: 40 }),
          batchSize: fc.integer({ min: 1, max: 12 }),
          shuffle: fc.boolean(),
          dropLast: fc.boolean(),
          seed: fc.nat(),
          steps: fc.nat({ max: 30 }),
          savedPrefetch: fc.boolean(),
          restoredPrefetch: fc.boolean(),
        }),
        ({ length, batchSize, shuffle, dropLast, seed, steps, savedPrefetch, restoredPrefetch }) => {
          fc.pre(!dropLast || batchSize <= length);
          const dataset = numbered(length);
          const options = { batchSize, shuffle, dropLast, seed };
          const original = new DataLoader(dataset, { ...options, prefetch: savedPrefetch });
          for (let i = 0; i < steps; i++) original.next();
          const saved = JSON.parse(JSON.stringify(original.state())) as LoaderState;
          // A loader set up with another seed and position still follows the saved one.
          const restored = new DataLoader(dataset, {
            ...options,
            seed: seed + 1,
            prefetch: restoredPrefetch,
          });
          restored.next();
          restored.restore(saved);
          for (let i = 0; i < 12; i++) {
            const expected = original.next();
            const actual = restored.next();
            expect(actual && copy(actual)).toEqual(expected && copy(expected));
          }
          expect(restored.state()).toEqual({ ...original.state(), seed });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a loader with another batch size continues over the same remaining samples', () => {
    const original = new DataLoader(numbered(20), { batchSize: 4, shuffle: true, seed: 5 });
    original.next();
    const halved = new DataLoader(numbered(20), { batchSize: 2, shuffle: true });
    halved.restore(original.state());
    const remaining = drain(original).flatMap((batch) => batch.indices);
    expect(drain(halved).flatMap((batch) => batch.indices)).toEqual(remaining);
  });

  it('rejects malformed states and states of another data set', () => {
    const loader = new DataLoader(numbered(10), { batchSize: 3 });
    const good = loader.state();
    const bad: [unknown, string][] = [
      [null, 'invalid_state'],
      [{ ...good, version: 2 }, 'invalid_state'],
      [{ ...good, epoch: -1 }, 'invalid_state'],
      [{ ...good, position: 11 }, 'invalid_state'],
      [{ ...good, seed: 1.5 }, 'invalid_state'],
      [{ ...good, shuffle: 'yes' }, 'invalid_state'],
      [{ ...good, datasetLength: 11 }, 'state_mismatch'],
    ];
    for (const [state, code] of bad) {
      expect(() => loader.restore(state as LoaderState)).toThrow(expect.objectContaining({ code }));
    }
    expect(loader.state()).toEqual(good);
  });
});

describe('prefetch', () => {
  it('gives the same batches, whether or not the prefetch ran before next()', async () => {
    const options = { batchSize: 3, shuffle: true, seed: 11 };
    const plain = new DataLoader(numbered(20), options);
    const prefetching = new DataLoader(numbered(20), { ...options, prefetch: true });
    for (let i = 0; i < 25; i++) {
      if (i % 2 === 0) await nextTurn(); // let the prefetch run on even steps only
      const expected = plain.next();
      const actual = prefetching.next();
      expect(actual && copy(actual)).toEqual(expected && copy(expected));
    }
  });

  it('a prefetched batch does not overwrite the batch in hand', async () => {
    const loader = new DataLoader(numbered(12), { batchSize: 4, shuffle: true, prefetch: true });
    const batch = loader.next()!;
    const before = copy(batch);
    await nextTurn();
    await nextTurn();
    expect(copy(batch)).toEqual(before);
  });
});

describe('options', () => {
  it.each<[string, () => unknown]>([
    ['a zero batch size', () => new DataLoader(numbered(3), { batchSize: 0 })],
    ['a fractional batch size', () => new DataLoader(numbered(3), { batchSize: 1.5 })],
    [
      'a batch size over the limit',
      () => new DataLoader(numbered(3), { batchSize: DATA_LOADER_MAX_BATCH_SIZE + 1 }),
    ],
    ['a negative seed', () => new DataLoader(numbered(3), { batchSize: 1, seed: -1 })],
    [
      'an empty data set',
      () =>
        new DataLoader(
          new InMemoryDataset({
            features: new Float32Array(0),
            labels: new Int32Array(0),
            featureShape: [1],
          }),
          { batchSize: 1 },
        ),
    ],
    [
      'dropLast with a batch larger than the data set',
      () => new DataLoader(numbered(3), { batchSize: 4, dropLast: true }),
    ],
  ])('rejects %s', (_what, make) => {
    let thrown: unknown;
    try {
      make();
    } catch (error) {
      thrown = error;
    }
    expect(isDataLoaderError(thrown, 'invalid_option')).toBe(true);
  });

  it('allows a batch larger than the data set without dropLast', () => {
    const loader = new DataLoader(numbered(3), { batchSize: 100 });
    expect(loader.next()!.size).toBe(3);
    expect(loader.next()).toBeUndefined();
  });
});
