/**
 * More element-wise functions, each with its rule written with ops (x the input, y the output):
 *   abs:   g * sign(x)   (0 at x = 0, as PyTorch)     sign: no gradient (0 almost everywhere)
 *   sin:   g * cos(x)    cos: -g * sin(x)             rsqrt: g * (-1/2) * y^3
 * CPU only: on a device they refuse (`unavailableOnDevice`).
 */
import { anyOnDevice, unavailableOnDevice } from '../deviceOps.js';
import { check } from '../errors.js';
import { pool } from '../internal/pool.js';
import { contiguousData, dispose, hostTensor, record, releaseTemporary, type Tensor } from '../Tensor.js';
import { mul, neg } from './elementwise.js';

type MathOp = 'abs' | 'sign' | 'sin' | 'cos' | 'rsqrt';

const FUNCTIONS: Record<MathOp, (v: number) => number> = {
  abs: Math.abs,
  sign: (v) => (Number.isNaN(v) ? v : Math.sign(v) + 0),
  sin: Math.sin,
  cos: Math.cos,
  rsqrt: (v) => 1 / Math.sqrt(v),
};

function rule(op: MathOp, x: Tensor, y: Tensor, g: Tensor): Tensor | null {
  switch (op) {
    case 'abs': {
      const s = sign(x);
      const out = mul(g, s);
      dispose(s);
      return out;
    }
    case 'sign':
      return null;
    case 'sin': {
      const c = cos(x);
      const out = mul(g, c);
      dispose(c);
      return out;
    }
    case 'cos': {
      const s = sin(x);
      const product = mul(g, s);
      const out = neg(product);
      dispose(s);
      dispose(product);
      return out;
    }
    case 'rsqrt': {
      const squared = mul(y, y);
      const cubed = mul(squared, y);
      const scaled = mul(cubed, -0.5);
      const out = mul(g, scaled);
      for (const t of [squared, cubed, scaled]) dispose(t);
      return out;
    }
  }
}

function apply(op: MathOp, x: Tensor): Tensor {
  if (anyOnDevice([x])) unavailableOnDevice(op, [x]);
  check(
    x.dtype === 'f32',
    'invalid_dtype',
    () => `${op}: ops compute in f32, got ${x.dtype}; convert with toDtype(x, 'f32')`,
  );
  const values = contiguousData(x);
  const out = pool.take(x.size);
  const f = FUNCTIONS[op];
  for (let i = 0; i < out.length; i++) out[i] = f(values[i]);
  releaseTemporary(x, values);
  const y = hostTensor(out, x.shape);
  return record(y, op, [x], (g) => [rule(op, x, y, g)]);
}

/** |x|. */
export const abs = (x: Tensor): Tensor => apply('abs', x);
/** -1, 0 or 1 by the sign of x (NaN stays NaN); no gradient. */
export const sign = (x: Tensor): Tensor => apply('sign', x);
export const sin = (x: Tensor): Tensor => apply('sin', x);
export const cos = (x: Tensor): Tensor => apply('cos', x);
/** 1 / sqrt(x). */
export const rsqrt = (x: Tensor): Tensor => apply('rsqrt', x);
