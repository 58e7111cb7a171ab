import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadMnistFormat } from '../../src/ml/data/FashionMnist.js';
import { referenceStep, runShardedReference } from '../../src/ml/elastic/reference.js';
import { type ReplicaSpec, ShardedReplica } from '../../src/ml/elastic/ShardedReplica.js';
import {
  assignShards,
  coveringNodes,
  nodeKey,
  reduceNumbers,
  reduceNumbersRange,
  reduceRange,
  reduceTree,
  shardRows,
  treeComplete,
} from '../../src/ml/elastic/shardMath.js';
import { buildMlp } from '../../src/ml/training/models.js';
import type { TrainingData } from '../../src/ml/training/TrainingConfig.js';

async function tinyData(samples: number): Promise<TrainingData> {
  const { train, test } = await loadMnistFormat('data/tiny');
  const featureSize = train.features.length / train.length;
  const cut = {
    ...train,
    length: samples,
    features: train.features.subarray(0, samples * featureSize),
    labels: train.labels.subarray(0, samples),
  };
  return { train: cut, test, name: 'tiny' };
}

function spec(plannedSteps: number, shards = 8): ReplicaSpec {
  return {
    model: 'mlp',
    factory: buildMlp,
    optimizer: 'adam',
    learningRate: 1e-3,
    batchSize: 20,
    shards,
    seed: 3,
    shuffle: true,
    plannedSteps,
  };
}

describe('shard math', () => {
  it('cuts a batch into contiguous shards that tile it, sizes differing by at most one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 64 }), (batch, shards) => {
        let next = 0;
        const sizes: number[] = [];
        for (let shard = 0; shard < shards; shard++) {
          const { start, end } = shardRows(batch, shards, shard);
          expect(start).toBe(next);
          next = end;
          sizes.push(end - start);
        }
        expect(next).toBe(batch);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('covers any set of held shards by the tree and sums any cover to the same bits as the leaves', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 24 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 24, maxLength: 24 }),
        (shards, owners) => {
          const leaves = Array.from({ length: shards }, (_, shard) =>
            Float32Array.from({ length: 5 }, (_, index) => Math.sin(shard * 7 + index) * 10 ** (shard % 5)),
          );
          const leafParts = new Map(
            leaves.map((leaf, shard) => [nodeKey({ lo: shard, hi: shard + 1 }), leaf.slice()]),
          );
          const expected = reduceTree(shards, leafParts)!;
          // Each of four workers sends the sums of the largest subtrees it holds whole.
          const parts = new Map<string, Float32Array>();
          for (let worker = 0; worker < 4; worker++) {
            const held = new Set([...Array(shards).keys()].filter((shard) => owners[shard] === worker));
            for (const node of coveringNodes(shards, held)) {
              const sub = new Map<string, Float32Array>();
              for (let shard = node.lo; shard < node.hi; shard++)
                sub.set(`${shard}-${shard + 1}`, leaves[shard].slice());
              // A subtree's own sum: the tree restricted to [lo, hi) is the same recursion.
              parts.set(nodeKey(node), reduceRange(node.lo, node.hi, sub)!);
            }
          }
          expect(treeComplete(shards, new Set(parts.keys()))).toBe(true);
          expect(Buffer.from(reduceTree(shards, parts)!.buffer)).toEqual(Buffer.from(expected.buffer));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('splits shards among workers in contiguous runs', () => {
    expect(assignShards(8, ['a', 'b', 'c'])).toEqual(['a', 'a', 'b', 'b', 'b', 'c', 'c', 'c']);
    expect(assignShards(8, ['a'])).toEqual(Array(8).fill('a'));
    expect(
      reduceNumbers(
        4,
        new Map([
          ['0-2', 1],
          ['2-3', 2],
          ['3-4', 3],
        ]),
      ),
    ).toBe(6);
    expect(treeComplete(4, new Set(['0-2', '3-4']))).toBe(false);
  });

  it('gives the reference bits with two replicas and a random reassignment of shards each step', async () => {
    const data = await tinyData(100);
    const planned = 12;
    const reference = runShardedReference(spec(planned), data, { evaluateEachEpoch: false });
    const replicas = [new ShardedReplica(spec(planned), data), new ShardedReplica(spec(planned), data)];
    let seed = 11;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let step = 0; step < planned; step++) {
      const parts = new Map<string, Float32Array>();
      const losses = new Map<string, number>();
      const owners = Array.from({ length: 8 }, () => (random() < 0.5 ? 0 : 1));
      for (const [worker, replica] of replicas.entries()) {
        const held = new Set([...Array(8).keys()].filter((shard) => owners[shard] === worker));
        for (const node of coveringNodes(8, held)) {
          const leaves = new Map<string, Float32Array>();
          const leafLosses = new Map<string, number>();
          for (let shard = node.lo; shard < node.hi; shard++) {
            const result = replica.computeShard(step, shard);
            leaves.set(`${shard}-${shard + 1}`, result.gradient);
            leafLosses.set(`${shard}-${shard + 1}`, result.loss);
          }
          parts.set(nodeKey(node), reduceRange(node.lo, node.hi, leaves)!);
          losses.set(nodeKey(node), reduceNumbersRange(node.lo, node.hi, leafLosses));
        }
      }
      const sum = reduceTree(8, parts)!;
      const loss = reduceNumbers(8, losses);
      for (const replica of replicas) expect(replica.apply(step, sum.slice(), loss)).toBe(true);
      // A commit heard twice changes nothing.
      expect(replicas[0].apply(step, sum.slice(), loss)).toBe(false);
    }
    expect(replicas[0].weightsSha256()).toBe(reference.replica.weightsSha256());
    expect(replicas[1].weightsSha256()).toBe(reference.replica.weightsSha256());
    expect(replicas[0].audit()).toEqual({ lostSteps: 0, repeatedSteps: 0, appliedSteps: planned });
  });

  it('continues bit for bit from a state handed to a fresh replica', async () => {
    const data = await tinyData(100);
    const reference = runShardedReference(spec(10), data, { evaluateEachEpoch: false });
    const partial = new ShardedReplica(spec(10), data);
    for (let step = 0; step < 4; step++) referenceStep(partial);
    const joined = new ShardedReplica(spec(10), data);
    joined.importState(partial.exportState());
    for (let step = 4; step < 10; step++) referenceStep(joined);
    expect(joined.weightsSha256()).toBe(reference.replica.weightsSha256());
    expect(joined.audit().lostSteps).toBe(0);
  });

  it('does not depend on the shard count being a power of two, and differs from another shard count', async () => {
    const data = await tinyData(100);
    const three = runShardedReference(spec(5, 3), data, { evaluateEachEpoch: false });
    const eight = runShardedReference(spec(5, 8), data, { evaluateEachEpoch: false });
    expect(three.steps).toBe(5);
    expect(Number.isFinite(three.loss)).toBe(true);
    // Different shard counts sum in different orders: the shard count is part of the math.
    expect(three.replica.weightsSha256()).not.toBe(eight.replica.weightsSha256());
  });
});
