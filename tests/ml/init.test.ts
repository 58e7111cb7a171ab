/**
 * torch.nn.init's formulas: gains and fans against PyTorch's (fixtures/optim_goldens.json), and
 * the distributions drawn (bounds, mean, standard deviation, orthogonality), since zbmd's
 * generators are not PyTorch's.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import * as ml from '../../src/ml/index.js';

const golden = (
  JSON.parse(readFileSync(new URL('./fixtures/optim_goldens.json', import.meta.url), 'utf8')) as {
    init: {
      gains: Record<string, number>;
      'leakyReluGain0.2': number;
      fans: number[][];
      fanShapes: number[][];
    };
  }
).init;

function blank(shape: number[]): ml.Parameter {
  return new ml.Parameter(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
}

function moments(values: Float32Array): { mean: number; std: number; maxAbs: number } {
  let sum = 0;
  let maxAbs = 0;
  for (const v of values) {
    sum += v;
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  const mean = sum / values.length;
  let squares = 0;
  for (const v of values) squares += (v - mean) ** 2;
  return { mean, std: Math.sqrt(squares / values.length), maxAbs };
}

describe('init gains and fans match PyTorch', () => {
  it('calculateGain', () => {
    for (const [name, gain] of Object.entries(golden.gains))
      expect(ml.calculateGain(name as ml.Nonlinearity)).toBeCloseTo(gain, 12);
    expect(ml.calculateGain('leaky_relu', 0.2)).toBeCloseTo(golden['leakyReluGain0.2'], 12);
    expect(() => ml.calculateGain('swish' as ml.Nonlinearity)).toThrow(/unknown nonlinearity 'swish'/);
  });

  it('fans', () => {
    golden.fanShapes.forEach((shape, index) => {
      const { fanIn, fanOut } = ml.fans(shape);
      expect([fanIn, fanOut]).toEqual(golden.fans[index]);
    });
    expect(() => ml.fans([7])).toThrow(/rank >= 2/);
  });
});

// 60 000 draws: the sample standard deviation is within 1% of the true one (about 0.3% error).
const SHAPE = [200, 300];
const FAN_SUM = 500;

describe('init distributions', () => {
  it('xavierUniform: U(-a, a), a = gain sqrt(6 / (fan_in + fan_out))', () => {
    const a = 2 * Math.sqrt(6 / FAN_SUM);
    const { mean, std, maxAbs } = moments(
      ml.xavierUniform(blank(SHAPE), { gain: 2, random: new Random(1) }).data,
    );
    expect(maxAbs).toBeLessThanOrEqual(a);
    expect(maxAbs).toBeGreaterThan(0.999 * a);
    expect(Math.abs(mean)).toBeLessThan(0.01 * a);
    expect(Math.abs(std / (a / Math.sqrt(3)) - 1)).toBeLessThan(0.01);
  });

  it('xavierNormal: std = gain sqrt(2 / (fan_in + fan_out))', () => {
    const expected = Math.sqrt(2 / FAN_SUM);
    const { mean, std } = moments(ml.xavierNormal(blank(SHAPE), { random: new Random(2) }).data);
    expect(Math.abs(mean)).toBeLessThan(0.01 * expected);
    expect(Math.abs(std / expected - 1)).toBeLessThan(0.01);
  });

  it('kaimingUniform: fan_in, leaky_relu gain with slope a (a conv weight)', () => {
    const shape = [64, 32, 5, 5]; // fan_in 800
    const bound = ml.calculateGain('leaky_relu', 0.2) * Math.sqrt(3 / 800);
    const { std, maxAbs } = moments(ml.kaimingUniform(blank(shape), { a: 0.2, random: new Random(3) }).data);
    expect(maxAbs).toBeLessThanOrEqual(bound);
    expect(maxAbs).toBeGreaterThan(0.999 * bound);
    expect(Math.abs(std / (bound / Math.sqrt(3)) - 1)).toBeLessThan(0.01);
  });

  it('kaimingNormal: fan_out with relu', () => {
    const expected = Math.SQRT2 / Math.sqrt(200);
    const tensor = ml.kaimingNormal(blank(SHAPE), {
      mode: 'fan_out',
      nonlinearity: 'relu',
      random: new Random(4),
    });
    expect(Math.abs(moments(tensor.data).std / expected - 1)).toBeLessThan(0.01);
    expect(() => ml.kaimingNormal(blank(SHAPE), { mode: 'fan_middle' as 'fan_in' })).toThrow(/mode must be/);
  });

  for (const shape of [
    [6, 4],
    [3, 4, 2],
  ]) {
    it(`orthogonal [${shape}]: the smaller side is orthonormal, times gain`, () => {
      const gain = 1.5;
      const data = ml.orthogonal(blank(shape), { gain, random: new Random(5) }).data;
      const rows = shape[0];
      const columns = data.length / rows;
      const wide = rows < columns;
      const k = Math.min(rows, columns);
      const n = Math.max(rows, columns);
      const at = (vector: number, i: number) =>
        wide ? data[vector * columns + i] : data[i * columns + vector];
      for (let x = 0; x < k; x++)
        for (let y = 0; y < k; y++) {
          let dot = 0;
          for (let i = 0; i < n; i++) dot += at(x, i) * at(y, i);
          expect(dot).toBeCloseTo(x === y ? gain * gain : 0, 5);
        }
    });
  }

  it('seeded: the same generator state gives the same values, another seed others', () => {
    const a = ml.kaimingUniform(blank([4, 5]), { random: new Random(9) }).data;
    const b = ml.kaimingUniform(blank([4, 5]), { random: new Random(9) }).data;
    const c = ml.kaimingUniform(blank([4, 5]), { random: new Random(10) }).data;
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    ml.manualSeed(3);
    const d = ml.xavierNormal(blank([4, 5])).data;
    ml.manualSeed(3);
    expect(Array.from(ml.xavierNormal(blank([4, 5])).data)).toEqual(Array.from(d));
  });

  it('zeros, ones, constant; a rank-1 tensor has no fans', () => {
    const p = ml.init.ones(blank([2, 3]));
    expect(Array.from(p.data)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(Array.from(ml.init.zeros(p).data)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(Array.from(ml.init.constant(p, 0.5).data)).toEqual([0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
    expect(() => ml.xavierUniform(blank([3]))).toThrow(/rank >= 2/);
    expect(() => ml.orthogonal(blank([3]))).toThrow(/rank >= 2/);
  });
});
