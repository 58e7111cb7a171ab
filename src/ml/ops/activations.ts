/**
 * Activations beyond elementwise.ts's, with PyTorch's definitions and defaults:
 *   leakyRelu(x, s = 0.01):  x > 0 ? x : s*x                      y' = x > 0 ? 1 : s
 *   silu(x):                 x * sigmoid(x)                        y' = sig(x) * (1 + x*(1 - sig(x)))
 *   elu(x, a = 1):           x > 0 ? x : a*(exp(x) - 1)            y' = x > 0 ? 1 : a*exp(x)
 *   softplus(x, b = 1, t = 20): b*x > t ? x : log(1 + exp(b*x))/b y' = b*x > t ? 1 : sig(b*x)
 *   geluTanh(x): 0.5*x*(1 + tanh(k*(x + 0.044715 x^3))), k = sqrt(2/pi)   (GPT-2's GELU)
 *
 * On the CPU each is one fused op: the forward computes y and y' in one pass and records one
 * rule, gx = g * y' (y' saved). On a GPU-layer device each is composed from device ops (relu,
 * exp, log, tanh, mul, ...), whose own rules give the gradient; that composition is also
 * exported (`composedActivation`) and tested against the fused form on the CPU.
 */

import { check } from '../errors.js';
import { geluTanhKernel } from '../internal/expKernels.js';
import { pool } from '../internal/pool.js';
import { contiguousData, dispose, hostTensor, record, releaseTemporary, type Tensor } from '../Tensor.js';
import { add, exp, log, mul, neg, relu, sigmoid, sub, tanh } from './elementwise.js';

const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/** An activation's value and slope at one point. */
type Pointwise = (x: number, out: { y: number; dy: number }) => void;

/** An activation over a whole buffer: y and y' of every x. */
type ArrayKernel = (x: Float32Array, y: Float32Array, slope: Float32Array) => void;

/** A pointwise activation as a whole-buffer kernel (one call of `f` per element). */
function perElement(f: Pointwise): ArrayKernel {
  return (x, y, slope) => {
    const point = { y: 0, dy: 0 };
    for (let i = 0; i < y.length; i++) {
      f(x[i], point);
      y[i] = point.y;
      slope[i] = point.dy;
    }
  };
}

/** The fused CPU op: y and y' in one pass, one rule g * y'. */
function fused(name: string, input: Tensor, kernel: ArrayKernel): Tensor {
  check(
    input.dtype === 'f32',
    'invalid_dtype',
    () => `${name}: ops compute in f32, got ${input.dtype}; convert with toDtype(x, 'f32')`,
  );
  const x = contiguousData(input);
  const y = pool.take(input.size);
  const slope = pool.take(input.size);
  kernel(x, y, slope);
  releaseTemporary(input, x);
  const out = hostTensor(y, input.shape);
  const saved = hostTensor(slope, input.shape);
  return record(out, name, [input], (g) => [mul(g, saved)], [saved]);
}

export type ActivationName = 'leakyRelu' | 'silu' | 'elu' | 'softplus' | 'geluTanh';

export interface ActivationParameters {
  /** leakyRelu's slope for x < 0 (0.01). */
  readonly negativeSlope?: number;
  /** elu's alpha (1). */
  readonly alpha?: number;
  /** softplus's beta (1). */
  readonly beta?: number;
  /** softplus's threshold (20): above it (beta*x) the output is x. */
  readonly threshold?: number;
}

/** The activation written with existing ops (the device path); same values as the fused op. */
export function composedActivation(
  name: ActivationName,
  x: Tensor,
  options: ActivationParameters = {},
): Tensor {
  const temporaries: Tensor[] = [];
  const keep = (t: Tensor): Tensor => {
    temporaries.push(t);
    return t;
  };
  let out: Tensor;
  switch (name) {
    case 'leakyRelu': {
      // relu(x) - s * relu(-x)
      const s = options.negativeSlope ?? 0.01;
      out = sub(keep(relu(x)), keep(mul(keep(relu(keep(neg(x)))), s)));
      break;
    }
    case 'silu':
      out = mul(x, keep(sigmoid(x)));
      break;
    case 'elu': {
      // relu(x) + a * (exp(-relu(-x)) - 1)
      const a = options.alpha ?? 1;
      const negativePart = keep(neg(keep(relu(keep(neg(x))))));
      out = add(keep(relu(x)), keep(mul(keep(sub(keep(exp(negativePart)), 1)), a)));
      break;
    }
    case 'softplus': {
      // (relu(bx) + log(1 + exp(-|bx|))) / b, |z| = relu(z) + relu(-z); no threshold needed
      const b = options.beta ?? 1;
      const z = keep(mul(x, b));
      const positive = keep(relu(z));
      const magnitude = keep(add(positive, keep(relu(keep(neg(z))))));
      const tail = keep(log(keep(add(keep(exp(keep(neg(magnitude)))), 1))));
      out = mul(keep(add(positive, tail)), 1 / b);
      break;
    }
    case 'geluTanh': {
      const cube = keep(mul(keep(mul(x, x)), x));
      const inner = keep(mul(keep(add(x, keep(mul(cube, GELU_C)))), GELU_K));
      out = mul(keep(mul(x, 0.5)), keep(add(keep(tanh(inner)), 1)));
      break;
    }
  }
  // Intermediates that a recorded graph still reads stay alive through it; others go back now.
  if (!out.requiresGrad) for (const t of temporaries) dispose(t);
  return out;
}

function activation(name: ActivationName, x: Tensor, options: ActivationParameters, f: Pointwise): Tensor {
  if (x.device !== 'cpu') return composedActivation(name, x, options);
  return fused(name, x, perElement(f));
}

/** LeakyReLU: x for x > 0, negativeSlope * x otherwise (PyTorch's default slope 0.01). */
export function leakyRelu(x: Tensor, negativeSlope = 0.01): Tensor {
  check(Number.isFinite(negativeSlope), 'invalid_argument', () => {
    return `leakyRelu: negativeSlope must be a finite number, got ${negativeSlope}`;
  });
  return activation('leakyRelu', x, { negativeSlope }, (v, o) => {
    o.y = v > 0 ? v : v * negativeSlope;
    o.dy = v > 0 ? 1 : negativeSlope;
  });
}

/** SiLU (swish): x * sigmoid(x). */
export function silu(x: Tensor): Tensor {
  return activation('silu', x, {}, (v, o) => {
    const s = 1 / (1 + Math.exp(-v));
    o.y = v * s;
    o.dy = s * (1 + v * (1 - s));
  });
}

/** ELU: x for x > 0, alpha * (exp(x) - 1) otherwise. */
export function elu(x: Tensor, alpha = 1): Tensor {
  check(Number.isFinite(alpha), 'invalid_argument', () => `elu: alpha must be a finite number, got ${alpha}`);
  return activation('elu', x, { alpha }, (v, o) => {
    if (v > 0) {
      o.y = v;
      o.dy = 1;
    } else {
      const e = Math.exp(v);
      o.y = alpha * (e - 1);
      o.dy = alpha * e;
    }
  });
}

/** Softplus: log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as PyTorch). */
export function softplus(x: Tensor, beta = 1, threshold = 20): Tensor {
  check(Number.isFinite(beta) && beta > 0, 'invalid_argument', () => {
    return `softplus: beta must be a positive number, got ${beta}`;
  });
  check(!Number.isNaN(threshold), 'invalid_argument', () => 'softplus: threshold must be a number');
  return activation('softplus', x, { beta, threshold }, (v, o) => {
    const z = v * beta;
    if (z > threshold) {
      o.y = v;
      o.dy = 1;
      return;
    }
    // log1p(exp(z)) computed stably for negative z too
    o.y = (Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)))) / beta;
    o.dy = 1 / (1 + Math.exp(-z));
  });
}

/** GELU's tanh approximation (PyTorch's `gelu(x, approximate='tanh')`, GPT-2's). */
export function geluTanh(x: Tensor): Tensor {
  // WebAssembly SIMD where it runs (internal/expKernels.ts), else its own loop (no call per
  // element): the GPT's MLP runs it on every hidden activation
  const kernel: ArrayKernel = (input, y, slope) => {
    if (geluTanhKernel(input, y, slope)) return;
    for (let i = 0; i < y.length; i++) {
      const v = input[i];
      const inner = GELU_K * (v + GELU_C * v * v * v);
      // tanh through exp (within 4e-16 of Math.tanh, which V8 takes about 1.4x as long over):
      // exp's overflow to Infinity gives exactly 1, its underflow -1
      const t = 1 - 2 / (Math.exp(2 * inner) + 1);
      y[i] = 0.5 * v * (1 + t);
      slope[i] = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * v * v);
    }
  };
  return x.device !== 'cpu' ? composedActivation('geluTanh', x) : fused('geluTanh', x, kernel);
}
