/**
 * The small GPT against PyTorch (tests/ml/fixtures/gpt_goldens.json, made by make_gpt_goldens.py
 * with Debian's python3-torch 1.13): the same weights give the same logits, mean cross-entropy
 * and gradient of every parameter (the tied head included), within 1e-5 absolute + 1e-4
 * relative. Then: causality, configuration checks, and seeded sampling.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import {
  add,
  backward,
  causalMask,
  causalSoftmax,
  crossEntropy,
  fromData,
  Gpt,
  type GptConfigError,
  generateTokens,
  isGptConfigError,
  mul,
  reshape,
  type StateDict,
  sampleToken,
  softmax,
  sum,
  toArray,
} from '../../src/ml/index.js';

interface Golden {
  readonly shape: number[];
  readonly data: number[];
}
interface GptGoldens {
  readonly config: { vocabSize: number; blockSize: number; layers: number; heads: number; dimension: number };
  readonly ids: number[];
  readonly targets: number[];
  readonly weights: Record<string, Golden>;
  readonly logits: Golden;
  readonly loss: number;
  readonly grads: Record<string, Golden>;
}

const goldens = JSON.parse(
  readFileSync(new URL('./fixtures/gpt_goldens.json', import.meta.url), 'utf8'),
) as GptGoldens;

function expectClose(actual: ArrayLike<number>, expected: readonly number[], label: string): void {
  expect(actual.length, label).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tolerance = 1e-5 + 1e-4 * Math.abs(expected[i]);
    if (!(Math.abs(actual[i] - expected[i]) <= tolerance))
      throw new Error(`${label}[${i}]: ${actual[i]} vs PyTorch ${expected[i]}`);
  }
}

function goldenModel(): Gpt {
  const model = new Gpt(goldens.config, { random: new Random(1) });
  const state: StateDict = {};
  for (const [name, { shape, data }] of Object.entries(goldens.weights))
    state[name] = { shape, data: Float32Array.from(data) };
  model.loadStateDict(state);
  return model;
}

describe('Gpt against PyTorch', () => {
  it('has the parameters of the PyTorch model, by name and shape, and no separate head', () => {
    const model = new Gpt(goldens.config, { random: new Random(1) });
    const named = model
      .namedParameters()
      .map(([name, parameter]): [string, number[]] => [name, [...parameter.shape]]);
    const expected = Object.entries(goldens.weights).map(([name, { shape }]): [string, number[]] => [
      name,
      shape,
    ]);
    expect(new Map(named)).toEqual(new Map(expected));
  });

  it('gives PyTorch logits, loss and the gradient of every parameter', () => {
    const model = goldenModel();
    const ids = fromData(Float32Array.from(goldens.ids), [2, 5]);
    const logits = model.forward(ids);
    expect(logits.shape).toEqual(goldens.logits.shape);
    expectClose(toArray(logits), goldens.logits.data, 'logits');
    const loss = crossEntropy(
      reshape(logits, [-1, goldens.config.vocabSize]),
      Int32Array.from(goldens.targets),
    );
    expect(Math.abs(toArray(loss)[0] - goldens.loss)).toBeLessThan(1e-5);
    backward(loss);
    for (const [name, parameter] of model.namedParameters()) {
      expect(parameter.grad, name).not.toBeNull();
      expectClose(parameter.grad!, goldens.grads[name].data, `grad ${name}`);
    }
  });
});

describe('causalSoftmax', () => {
  it('equals softmax(scale * s + causal mask), values and gradients', () => {
    const random = new Random(11);
    const data = Float32Array.from({ length: 2 * 3 * 4 * 4 }, () => random.normal(0, 2));
    const weights = Float32Array.from({ length: data.length }, () => random.normal(0, 1));
    const run = (fused: boolean) => {
      const scores = fromData(data.slice(), [2, 3, 4, 4], { requiresGrad: true });
      const y = fused ? causalSoftmax(scores, 0.5) : softmax(add(mul(scores, 0.5), causalMask(4, 4)), -1);
      backward(sum(mul(y, fromData(weights, [2, 3, 4, 4]))));
      return { y: toArray(y), grad: [...scores.grad!] };
    };
    const fused = run(true);
    const reference = run(false);
    expectClose(fused.y, reference.y, 'y');
    expectClose(fused.grad, reference.grad, 'grad');
  });
});

describe('Gpt', () => {
  const config = { vocabSize: 7, blockSize: 8, layers: 1, heads: 2, dimension: 8 };

  it('is causal: changing a later token leaves earlier logits unchanged', () => {
    const model = new Gpt(config, { random: new Random(3) });
    const a = toArray(model.forward(fromData(Float32Array.from([1, 2, 3, 4, 5]), [1, 5])));
    const b = toArray(model.forward(fromData(Float32Array.from([1, 2, 3, 6, 0]), [1, 5])));
    expect(b.slice(0, 3 * 7)).toEqual(a.slice(0, 3 * 7));
    expect(b.slice(3 * 7)).not.toEqual(a.slice(3 * 7));
  });

  it('starts from GPT-2 initialisation, the same for the same seed', () => {
    const first = new Gpt(config, { random: new Random(5) });
    const second = new Gpt(config, { random: new Random(5) });
    expect(second.stateDict()).toEqual(first.stateDict());
    const fc = first.blocks[0].fc.weight.data;
    const spread = Math.sqrt(fc.reduce((total, value) => total + value * value, 0) / fc.length);
    expect(spread).toBeGreaterThan(0.015);
    expect(spread).toBeLessThan(0.025);
    expect([...first.blocks[0].fc.bias.data].every((value) => value === 0)).toBe(true);
  });

  it('refuses a bad configuration, naming the field', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...config, vocabSize: 0 }, 'vocabSize'],
      [{ ...config, blockSize: 1.5 }, 'blockSize'],
      [{ ...config, layers: 65 }, 'layers'],
      [{ ...config, dimension: 9 }, 'dimension'],
      [{ ...config, dropout: 1 }, 'dropout'],
    ];
    for (const [bad, field] of cases) {
      let caught: unknown;
      try {
        new Gpt(bad as never);
      } catch (error) {
        caught = error;
      }
      expect(isGptConfigError(caught), field).toBe(true);
      expect((caught as GptConfigError).field).toBe(field);
    }
  });

  it('refuses a context longer than its block, and ids out of the vocabulary', () => {
    const model = new Gpt(config, { random: new Random(3) });
    expect(() => model.forward(fromData(new Float32Array(9), [1, 9]))).toThrow(/1 to 8 \(its blockSize\)/);
    expect(() => model.forward(fromData(Float32Array.from([7]), [1, 1]))).toThrow(/not in \[0, 7\)/);
  });

  it('samples the same tokens for the same seed, and crops the context to its block', () => {
    const model = new Gpt(config, { random: new Random(3) });
    const run = (seed: number) =>
      generateTokens(model, [1, 2], { tokens: 12, temperature: 0.9, topK: 5, random: new Random(seed) });
    expect(run(4)).toEqual(run(4));
    expect(run(4)).toHaveLength(12);
    expect(run(4)).not.toEqual(run(5));
    expect(() => generateTokens(model, [], { tokens: 1 })).toThrow(/at least one token/);
    expect(() => generateTokens(model, [1], { tokens: 1, temperature: 0 })).toThrow(/temperature/);
  });

  it('sampleToken keeps to the top k and follows the temperature', () => {
    const logits = Float32Array.from([0, 3, 1, 2]);
    const random = new Random(9);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 2000; i++) counts[sampleToken(logits, 1, 2, random)]++;
    expect(counts[0] + counts[2]).toBe(0);
    // p(1) / p(3) = e under temperature 1.
    expect(counts[1] / counts[3]).toBeGreaterThan(2.2);
    expect(counts[1] / counts[3]).toBeLessThan(3.3);
    for (let i = 0; i < 50; i++) expect(sampleToken(logits, 1e-3, 4, random)).toBe(1);
  });
});
