/**
 * Activations, norms and losses against PyTorch's values (tests/ml/fixtures/layers_goldens.json,
 * made by make_layers_goldens.py with Debian's python3-torch): outputs and the gradients of
 * sum(out * w) for a seeded w. Tolerance: 1e-5 absolute + 1e-4 relative (float32 on both sides).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  backward,
  composedActivation,
  elu,
  GELU,
  gelu,
  geluTanh,
  leakyRelu,
  mul,
  silu,
  softplus,
  sum,
  type Tensor,
  tensor,
  toArray,
} from '../../src/ml/index.js';

interface Values {
  readonly shape: number[];
  readonly data: number[];
}

interface Case {
  readonly inputs: Record<string, Values>;
  readonly w: Values;
  readonly out: Values;
  readonly grads: Record<string, Values>;
  readonly [key: string]: unknown;
}

const golden = JSON.parse(
  readFileSync(new URL('./fixtures/layers_goldens.json', import.meta.url), 'utf8'),
) as {
  cases: Record<string, Case>;
};

function goldenCase(name: string): Case {
  const found = golden.cases[name];
  if (found === undefined) throw new Error(`no golden case ${name}`);
  return found;
}

function leaf(values: Values, requiresGrad = true): Tensor {
  return tensor(values.data, values.shape, { requiresGrad });
}

function expectClose(actual: ArrayLike<number>, expected: Values | number[], label: string): void {
  const want = Array.isArray(expected) ? expected : expected.data;
  expect(actual.length, `${label}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const tolerance = 1e-5 + 1e-4 * Math.abs(want[i]);
    const difference = Math.abs(actual[i] - want[i]);
    if (!(difference <= tolerance)) {
      throw new Error(`${label}[${i}]: got ${actual[i]}, PyTorch ${want[i]} (tolerance ${tolerance})`);
    }
  }
}

/** Runs f on the case's inputs, checks the output and each listed input's gradient. */
function checkCase(name: string, f: (inputs: Record<string, Tensor>) => Tensor): void {
  const c = goldenCase(name);
  const inputs: Record<string, Tensor> = {};
  for (const [key, values] of Object.entries(c.inputs)) inputs[key] = leaf(values, key in c.grads);
  const out = f(inputs);
  expect(out.shape).toEqual(c.out.shape);
  expectClose(toArray(out), c.out, `${name} output`);
  backward(sum(mul(out, tensor(c.w.data, c.w.shape))));
  for (const [key, values] of Object.entries(c.grads)) {
    expectClose(inputs[key].grad ?? [], values, `${name} gradient of ${key}`);
  }
}

describe('activations match PyTorch', () => {
  it('leakyRelu, silu, elu, softplus, gelu (exact and tanh)', () => {
    checkCase('leakyRelu', ({ x }) => leakyRelu(x, 0.2));
    checkCase('silu', ({ x }) => silu(x));
    checkCase('elu', ({ x }) => elu(x, 0.7));
    checkCase('softplus', ({ x }) => softplus(x, 2, 3));
    checkCase('geluTanh', ({ x }) => geluTanh(x));
    checkCase('gelu', ({ x }) => gelu(x));
    checkCase('geluTanh', ({ x }) => new GELU('tanh').forward(x));
  });

  it('the composed forms (the device path) agree with the fused ones, values and gradients', () => {
    checkCase('leakyRelu', ({ x }) => composedActivation('leakyRelu', x, { negativeSlope: 0.2 }));
    checkCase('silu', ({ x }) => composedActivation('silu', x));
    checkCase('elu', ({ x }) => composedActivation('elu', x, { alpha: 0.7 }));
    checkCase('geluTanh', ({ x }) => composedActivation('geluTanh', x));
    // softplus's composition has no threshold: compare away from it (beta x <= threshold)
    const x = tensor([-30, -3, -0.5, 0, 0.5, 4], [6], { requiresGrad: true });
    const fusedOut = toArray(softplus(x, 2, 20));
    expectClose(toArray(composedActivation('softplus', x, { beta: 2 })), fusedOut, 'softplus composed');
  });

  it('softplus is linear above its threshold and never overflows', () => {
    const x = tensor([100, 1000, -1000], [3], { requiresGrad: true });
    expect(toArray(softplus(x))).toEqual([100, 1000, 0]);
  });

  it('refuses bad parameters with a clear error', () => {
    const x = tensor([1], [1]);
    expect(() => softplus(x, 0)).toThrow(/beta must be a positive number/);
    expect(() => leakyRelu(x, Number.NaN)).toThrow(/negativeSlope/);
    expect(() => new GELU('fast' as 'tanh')).toThrow(/approximate must be/);
  });
});
