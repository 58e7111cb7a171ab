import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import * as ml from '../../src/ml/index.js';
import { expectClose, gradCheck, uniformArray } from './helpers.js';

describe('Module', () => {
  it('names parameters by field path, in declaration order', () => {
    ml.manualSeed(1);
    const model = new ml.Sequential(new ml.Linear(4, 3), new ml.ReLU(), new ml.Linear(3, 2, { bias: false }));
    expect(model.namedParameters().map(([name, p]) => [name, p.shape])).toEqual([
      ['layers.0.weight', [3, 4]],
      ['layers.0.bias', [3]],
      ['layers.2.weight', [2, 3]],
    ]);
    expect(model.parameterCount()).toBe(12 + 3 + 6);
  });

  it('initialisation is seeded: same seed, same weights; PyTorch-style bounds', () => {
    ml.manualSeed(7);
    const a = new ml.Linear(100, 10);
    ml.manualSeed(7);
    const b = new ml.Linear(100, 10);
    expect(Array.from(a.weight.data)).toEqual(Array.from(b.weight.data));
    const c = new ml.Linear(100, 10, { random: new Random(8) });
    expect(Array.from(c.weight.data)).not.toEqual(Array.from(a.weight.data));
    expect(Math.max(...a.weight.data.map(Math.abs))).toBeLessThanOrEqual(0.1);
  });

  it('state dicts load back exactly and reject wrong shapes or names', () => {
    ml.manualSeed(2);
    const model = new ml.Sequential(
      new ml.Conv2d(1, 2, 3),
      new ml.Flatten(),
      new ml.Linear(2 * 4 * 4, 3),
      new ml.LayerNorm(3),
    );
    const state = model.stateDict();
    ml.manualSeed(3);
    const other = new ml.Sequential(
      new ml.Conv2d(1, 2, 3),
      new ml.Flatten(),
      new ml.Linear(2 * 4 * 4, 3),
      new ml.LayerNorm(3),
    );
    other.loadStateDict(state);
    for (const [name, entry] of Object.entries(other.stateDict()))
      expect(Array.from(entry.data)).toEqual(Array.from(state[name].data));
    const x = ml.fromData(uniformArray(new Random(1), 36), [1, 1, 6, 6]);
    expect(ml.toArray(other.forward(x))).toEqual(ml.toArray(model.forward(x)));
    // The saved state is a copy: training the model does not change it.
    model.parameters()[0].data[0] += 1;
    expect(state['layers.0.weight'].data[0]).toBe(other.parameters()[0].data[0]);
    const wrong = { ...state, 'layers.2.bias': { shape: [4], data: new Float32Array(4) } };
    expect(() => other.loadStateDict(wrong)).toThrow(/expects \[3\]/);
    expect(() => other.loadStateDict({ ...state, extra: { shape: [1], data: new Float32Array(1) } })).toThrow(
      /unexpected/,
    );
    const { 'layers.3.weight': _, ...missing } = state;
    expect(() => other.loadStateDict(missing)).toThrow(/missing/);
    other.loadStateDict(missing, { strict: false });
  });

  it('Reshape and Flatten change the per-sample shape only', () => {
    const x = ml.zeros([2, 12]);
    expect(new ml.Reshape([3, -1]).forward(x).shape).toEqual([2, 3, 4]);
    expect(new ml.Flatten().forward(ml.zeros([2, 1, 3, 4])).shape).toEqual([2, 12]);
    expect(() => new ml.Reshape([5]).forward(x)).toThrow(ml.TensorError);
  });

  it('train and eval propagate to children (dropout off in eval)', () => {
    const model = new ml.Sequential(new ml.Dropout(0.5, { random: new Random(1) }));
    const x = ml.ones([100]);
    model.eval();
    expect(model.forward(x)).toBe(x);
    model.train();
    expect(ml.toArray(model.forward(x)).some((v) => v === 0)).toBe(true);
  });
});

describe('attention layers', () => {
  it('MultiHeadAttention and TransformerBlock keep (B, T, D) and pass gradient checks', () => {
    ml.manualSeed(4);
    const attention = new ml.MultiHeadAttention(4, 2, { causal: true });
    const block = new ml.TransformerBlock(4, 2, { causal: true, hidden: 8 });
    const random = new Random(2);
    const shape = [2, 3, 4];
    const x = uniformArray(random, 24);
    expect(attention.forward(ml.fromData(x, shape)).shape).toEqual(shape);
    expect(block.forward(ml.fromData(x, shape)).shape).toEqual(shape);
    gradCheck(([input]) => attention.forward(input), [x], [shape]);
    gradCheck(([input]) => block.forward(input), [x], [shape], { absoluteTolerance: 1e-2 });
    // Causality: the first position's output ignores later positions.
    const changed = Float32Array.from(x);
    changed.fill(5, 8, 12);
    expectClose(
      ml.toArray(block.forward(ml.fromData(changed, shape))).slice(0, 4),
      ml.toArray(block.forward(ml.fromData(x, shape))).slice(0, 4),
      1e-6,
    );
  });

  it('parameters of a transformer block all receive gradients', () => {
    ml.manualSeed(5);
    const block = new ml.TransformerBlock(8, 2);
    const loss = ml.mean(
      ml.pow(block.forward(ml.fromData(uniformArray(new Random(3), 2 * 5 * 8), [2, 5, 8])), 2),
    );
    ml.backward(loss);
    for (const [name, p] of block.namedParameters()) expect(p.grad, name).not.toBeNull();
    expect(block.namedParameters().length).toBe(2 + 8 + 2 + 4);
  });
});

describe('layer order', () => {
  it('max pooling then ReLU equals ReLU then max pooling, values and gradients', () => {
    const values = Float32Array.from({ length: 2 * 3 * 4 * 4 }, (_, i) => Math.sin(i * 1.7));
    const run = (poolFirst: boolean): number[] => {
      const x = ml.tensor(values, [2, 3, 4, 4], { requiresGrad: true });
      const y = poolFirst ? ml.relu(ml.maxPool2d(x, 2)) : ml.maxPool2d(ml.relu(x), 2);
      ml.backward(ml.sum(ml.mul(y, y)));
      return [...ml.toArray(y), ...Array.from(x.grad!)];
    };
    expect(run(true)).toEqual(run(false));
  });
});
