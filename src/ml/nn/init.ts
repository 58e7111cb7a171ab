/**
 * Seeded initialisation. Layers draw from the `random` they are given, or from a default
 * generator that `manualSeed` resets (like `torch.manual_seed`), so a model built after
 * `manualSeed(s)` is the same every run.
 */
import { Random } from '../../actor/Random.js';
import { check, TensorError } from '../errors.js';
import { isContiguous, type Tensor } from '../Tensor.js';
import { Parameter } from './Module.js';

let defaultRandom = new Random(0);

export function manualSeed(seed: number): void {
  defaultRandom = new Random(seed);
}

export function initRandom(random?: Random): Random {
  return random ?? defaultRandom;
}

/** U(-bound, bound) values. */
export function uniformParameter(shape: readonly number[], bound: number, random: Random): Parameter {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = (2 * random.next() - 1) * bound;
  return new Parameter(data, shape);
}

/** N(0, std^2) values. */
export function normalParameter(
  shape: readonly number[],
  standardDeviation: number,
  random: Random,
): Parameter {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) data[i] = random.normal(0, standardDeviation);
  return new Parameter(data, shape);
}

export function constantParameter(shape: readonly number[], value: number): Parameter {
  const size = shape.reduce((a, b) => a * b, 1);
  return new Parameter(new Float32Array(size).fill(value), shape);
}

/**
 * PyTorch's `torch.nn.init`, in place on a CPU tensor (a parameter), giving it back: the same
 * formulas for bounds and standard deviations, drawn from zbmd's seeded generators (`random`,
 * or the default one `manualSeed` resets), so values differ from PyTorch's but distributions
 * do not.
 */
export type Nonlinearity =
  | 'linear'
  | 'identity'
  | 'conv1d'
  | 'conv2d'
  | 'conv3d'
  | 'conv_transpose1d'
  | 'conv_transpose2d'
  | 'conv_transpose3d'
  | 'sigmoid'
  | 'tanh'
  | 'relu'
  | 'leaky_relu'
  | 'selu';

const UNIT_GAIN = new Set<string>([
  'linear',
  'identity',
  'conv1d',
  'conv2d',
  'conv3d',
  'conv_transpose1d',
  'conv_transpose2d',
  'conv_transpose3d',
  'sigmoid',
]);

/** The recommended gain for a nonlinearity (`torch.nn.init.calculate_gain`); `slope` for leaky_relu (default 0.01). */
export function calculateGain(nonlinearity: Nonlinearity, slope?: number): number {
  if (UNIT_GAIN.has(nonlinearity)) return 1;
  switch (nonlinearity) {
    case 'tanh':
      return 5 / 3;
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu': {
      const a = slope ?? 0.01;
      check(Number.isFinite(a), 'invalid_argument', () => `calculateGain: slope must be a number, got ${a}`);
      return Math.sqrt(2 / (1 + a * a));
    }
    case 'selu':
      return 3 / 4;
  }
  throw new TensorError('invalid_argument', `calculateGain: unknown nonlinearity '${String(nonlinearity)}'`);
}

/** fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field (rank >= 2). */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  check(shape.length >= 2, 'invalid_argument', () => {
    return `init: fan in and fan out need a tensor of rank >= 2, got shape [${shape.join(', ')}]`;
  });
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

export interface SeededInit {
  readonly random?: Random;
}

function writable(tensor: Tensor, what: string): Float32Array {
  check(
    tensor.device === 'cpu' &&
      tensor.dtype === 'f32' &&
      isContiguous(tensor) &&
      tensor.data.length === tensor.size,
    'invalid_argument',
    () => `${what}: needs a whole contiguous f32 tensor on the CPU (initialise before moving to a device)`,
  );
  return tensor.data;
}

function fillUniform(tensor: Tensor, bound: number, random: Random, what: string): Tensor {
  const data = writable(tensor, what);
  for (let i = 0; i < data.length; i++) data[i] = (2 * random.next() - 1) * bound;
  return tensor;
}

function fillNormal(tensor: Tensor, standardDeviation: number, random: Random, what: string): Tensor {
  const data = writable(tensor, what);
  for (let i = 0; i < data.length; i++) data[i] = random.normal(0, standardDeviation);
  return tensor;
}

/** U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio). */
export function xavierUniform(tensor: Tensor, options: SeededInit & { gain?: number } = {}): Tensor {
  const { fanIn, fanOut } = fans(tensor.shape);
  const std = (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut));
  return fillUniform(tensor, Math.sqrt(3) * std, initRandom(options.random), 'xavierUniform');
}

/** N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out)). */
export function xavierNormal(tensor: Tensor, options: SeededInit & { gain?: number } = {}): Tensor {
  const { fanIn, fanOut } = fans(tensor.shape);
  const std = (options.gain ?? 1) * Math.sqrt(2 / (fanIn + fanOut));
  return fillNormal(tensor, std, initRandom(options.random), 'xavierNormal');
}

export interface KaimingOptions extends SeededInit {
  /** The negative slope of leaky_relu (PyTorch's `a`); default 0. */
  readonly a?: number;
  /** Default 'fan_in' (keeps the forward variance); 'fan_out' keeps the backward one. */
  readonly mode?: 'fan_in' | 'fan_out';
  /** Default 'leaky_relu' (with a = 0, ReLU's gain). */
  readonly nonlinearity?: Nonlinearity;
}

function kaimingStd(tensor: Tensor, options: KaimingOptions, what: string): number {
  const mode = options.mode ?? 'fan_in';
  check(mode === 'fan_in' || mode === 'fan_out', 'invalid_argument', () => {
    return `${what}: mode must be 'fan_in' or 'fan_out', got '${String(mode)}'`;
  });
  const { fanIn, fanOut } = fans(tensor.shape);
  const gain = calculateGain(options.nonlinearity ?? 'leaky_relu', options.a ?? 0);
  return gain / Math.sqrt(mode === 'fan_in' ? fanIn : fanOut);
}

/** U(-b, b), b = gain sqrt(3 / fan) (He et al.). */
export function kaimingUniform(tensor: Tensor, options: KaimingOptions = {}): Tensor {
  const std = kaimingStd(tensor, options, 'kaimingUniform');
  return fillUniform(tensor, Math.sqrt(3) * std, initRandom(options.random), 'kaimingUniform');
}

/** N(0, std^2), std = gain / sqrt(fan). */
export function kaimingNormal(tensor: Tensor, options: KaimingOptions = {}): Tensor {
  const std = kaimingStd(tensor, options, 'kaimingNormal');
  return fillNormal(tensor, std, initRandom(options.random), 'kaimingNormal');
}

/**
 * A (semi-)orthogonal matrix times gain, over the tensor seen as shape[0] x (the rest): the Q of
 * the QR decomposition of a standard normal matrix, signs fixed so R's diagonal is positive
 * (Saxe et al.; PyTorch's `orthogonal_`). Rows are orthonormal when there are fewer rows than
 * columns, columns otherwise.
 */
export function orthogonal(tensor: Tensor, options: SeededInit & { gain?: number } = {}): Tensor {
  check(tensor.shape.length >= 2, 'invalid_argument', () => {
    return `orthogonal: needs a tensor of rank >= 2, got shape [${tensor.shape.join(', ')}]`;
  });
  const data = writable(tensor, 'orthogonal');
  const random = initRandom(options.random);
  const gain = options.gain ?? 1;
  const rows = tensor.shape[0];
  const columns = rows === 0 ? 0 : tensor.size / rows;
  if (tensor.size === 0) return tensor;
  // Orthonormalise the k vectors of length n, k = min(rows, columns), n = max: columns of the
  // normal matrix (transposed first when it is wide), by modified Gram-Schmidt twice over, in
  // float64. Gram-Schmidt's R has a positive diagonal, so no sign fix is needed.
  const wide = rows < columns;
  const n = wide ? columns : rows;
  const k = wide ? rows : columns;
  const normal = new Float64Array(rows * columns);
  for (let i = 0; i < normal.length; i++) normal[i] = random.normal();
  const vectors: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const v = new Float64Array(n);
    // Column j of the (possibly transposed) n x k matrix.
    for (let i = 0; i < n; i++) v[i] = wide ? normal[j * columns + i] : normal[i * columns + j];
    for (let pass = 0; pass < 2; pass++)
      for (const q of vectors) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += q[i] * v[i];
        for (let i = 0; i < n; i++) v[i] -= dot * q[i];
      }
    let norm = 0;
    for (let i = 0; i < n; i++) norm += v[i] * v[i];
    norm = Math.sqrt(norm);
    check(
      norm > 1e-12,
      'invalid_argument',
      () => 'orthogonal: the random matrix was rank-deficient; draw again',
    );
    for (let i = 0; i < n; i++) v[i] /= norm;
    vectors.push(v);
  }
  for (let j = 0; j < k; j++)
    for (let i = 0; i < n; i++) {
      const value = gain * vectors[j][i];
      if (wide) data[j * columns + i] = value;
      else data[i * columns + j] = value;
    }
  return tensor;
}

/** Fills with a constant (`torch.nn.init.constant_`). */
export function constantInit(tensor: Tensor, value: number): Tensor {
  writable(tensor, 'constant').fill(value);
  return tensor;
}

/** `torch.nn.init` under one name: `init.kaimingUniform(weight)`, `init.zeros(bias)`. */
export const init = {
  calculateGain,
  fans,
  xavierUniform,
  xavierNormal,
  kaimingUniform,
  kaimingNormal,
  orthogonal,
  constant: constantInit,
  zeros: (tensor: Tensor): Tensor => constantInit(tensor, 0),
  ones: (tensor: Tensor): Tensor => constantInit(tensor, 1),
} as const;
