/**
 * The reference kernels: plain TypeScript on Float32Array, generated from the same
 * descriptions as the GPU ones (elementwise ops compile to JavaScript closures once per op).
 * Every GPU result in the tests is compared with these.
 */
import { compileJavaScript } from './Expression.js';
import {
  type AdagradStepScalars,
  type AdamStepScalars,
  BINARY_OPS,
  type BinaryLayout,
  type BinaryOpName,
  type Conv2dGeometry,
  type Pool2dGeometry,
  type PoolOpName,
  REDUCE_OPS,
  type ReduceOpName,
  type RmspropStepScalars,
  type SgdStepScalars,
  UNARY_OPS,
  type UnaryOpName,
} from './ops.js';

type Scalar = (x: number, y: number) => number;

const compiled = new Map<string, Scalar>();

function scalarFunction(key: string, build: () => Scalar): Scalar {
  let function_ = compiled.get(key);
  if (function_ === undefined) {
    function_ = build();
    compiled.set(key, function_);
  }
  return function_;
}

export function cpuUnary(op: UnaryOpName, input: Float32Array, output: Float32Array, count: number): void {
  const apply = scalarFunction(`unary.${op}`, () => compileJavaScript(UNARY_OPS[op]));
  for (let i = 0; i < count; i++) output[i] = apply(input[i], 0);
}

export function cpuBinary(
  op: BinaryOpName,
  a: Float32Array,
  b: Float32Array,
  output: Float32Array,
  count: number,
  layout: BinaryLayout,
): void {
  const apply = scalarFunction(`binary.${op}`, () => compileJavaScript(BINARY_OPS[op]));
  if (layout.kind === 'same') {
    for (let i = 0; i < count; i++) output[i] = apply(a[i], b[i]);
    return;
  }
  const { shape, stridesA, stridesB } = layout;
  for (let i = 0; i < count; i++) {
    let rest = i;
    let indexA = 0;
    let indexB = 0;
    for (let d = 3; d >= 0; d--) {
      const coordinate = rest % shape[d];
      rest = Math.floor(rest / shape[d]);
      indexA += coordinate * stridesA[d];
      indexB += coordinate * stridesB[d];
    }
    output[i] = apply(a[indexA], b[indexB]);
  }
}

// input: (rows, columns) -> output: (rows)
export function cpuReduce(
  op: ReduceOpName,
  input: Float32Array,
  output: Float32Array,
  rows: number,
  columns: number,
): void {
  const description = REDUCE_OPS[op];
  const combine = scalarFunction(`reduce.${op}`, () => compileJavaScript(description.combine));
  for (let row = 0; row < rows; row++) {
    let accumulator = description.identity;
    const base = row * columns;
    for (let c = 0; c < columns; c++) accumulator = combine(accumulator, input[base + c]);
    output[row] = accumulator;
  }
}

// input, output: (rows, columns); each row exp(x - max) / sum
export function cpuSoftmax(input: Float32Array, output: Float32Array, rows: number, columns: number): void {
  for (let row = 0; row < rows; row++) {
    const base = row * columns;
    let rowMax = -Number.MAX_VALUE;
    for (let c = 0; c < columns; c++) rowMax = Math.max(rowMax, input[base + c]);
    let sum = 0;
    for (let c = 0; c < columns; c++) sum += Math.exp(input[base + c] - rowMax);
    for (let c = 0; c < columns; c++) output[base + c] = Math.exp(input[base + c] - rowMax) / sum;
  }
}

// input, output: (rows, columns); gamma, beta: (columns)
export function cpuLayernorm(
  input: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  output: Float32Array,
  rows: number,
  columns: number,
  epsilon: number,
): void {
  for (let row = 0; row < rows; row++) {
    const base = row * columns;
    let sum = 0;
    for (let c = 0; c < columns; c++) sum += input[base + c];
    const mean = sum / columns;
    let squares = 0;
    for (let c = 0; c < columns; c++) squares += (input[base + c] - mean) ** 2;
    const inverseDeviation = 1 / Math.sqrt(squares / columns + epsilon);
    for (let c = 0; c < columns; c++)
      output[base + c] = (input[base + c] - mean) * inverseDeviation * gamma[c] + beta[c];
  }
}

/** Rows of a handled together: each element of b read feeds four accumulating rows. */
const MATMUL_ROW_BLOCK = 4;

// output (m, n) = op(a) (m, k) @ op(b) (k, n): a stored (m, k), or (k, m) when transposeA; b
// stored (k, n), or (n, k) when transposeB. Sums accumulate in f64 and round once.
export function cpuMatmul(
  a: Float32Array,
  b: Float32Array,
  output: Float32Array,
  m: number,
  n: number,
  k: number,
  transposeA = false,
  transposeB = false,
): void {
  if (transposeB) matmulDots(a, b, output, m, n, k, transposeA);
  else matmulRows(a, b, output, m, n, k, transposeA);
}

// b (k, n): i-k-j order walks rows of b contiguously; four rows of the output accumulate at
// once in f64, so every load of b serves four multiply-adds. a(i, p) is a[i k + p], or a[p m + i].
function matmulRows(
  a: Float32Array,
  b: Float32Array,
  output: Float32Array,
  m: number,
  n: number,
  k: number,
  transposeA: boolean,
): void {
  const rows = Array.from({ length: MATMUL_ROW_BLOCK }, () => new Float64Array(n));
  const [row0, row1, row2, row3] = rows;
  const rowStride = transposeA ? 1 : k;
  const innerStride = transposeA ? m : 1;
  for (let i = 0; i < m; i += MATMUL_ROW_BLOCK) {
    const count = Math.min(MATMUL_ROW_BLOCK, m - i);
    for (const row of rows) row.fill(0);
    for (let p = 0; p < k; p++) {
      const at = i * rowStride + p * innerStride;
      const a0 = a[at];
      const a1 = count > 1 ? a[at + rowStride] : 0;
      const a2 = count > 2 ? a[at + 2 * rowStride] : 0;
      const a3 = count > 3 ? a[at + 3 * rowStride] : 0;
      const base = p * n;
      for (let j = 0; j < n; j++) {
        const value = b[base + j];
        row0[j] += a0 * value;
        row1[j] += a1 * value;
        row2[j] += a2 * value;
        row3[j] += a3 * value;
      }
    }
    for (let r = 0; r < count; r++) output.set(rows[r], (i + r) * n);
  }
}

// b stored (n, k): each output element is a dot product of a row of op(a) with a row of b.
function matmulDots(
  a: Float32Array,
  b: Float32Array,
  output: Float32Array,
  m: number,
  n: number,
  k: number,
  transposeA: boolean,
): void {
  const rowOfA = new Float64Array(k);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) rowOfA[p] = transposeA ? a[p * m + i] : a[i * k + p];
    for (let j = 0; j < n; j++) {
      const base = j * k;
      let sum = 0;
      for (let p = 0; p < k; p++) sum += rowOfA[p] * b[base + p];
      output[i * n + j] = sum;
    }
  }
}

// p, g, m, v: (count); m, v and p updated in place, each value rounded to f32 as it is stored;
// with vMax (amsgrad), vMax = max(vMax, v) and the denominator takes it in place of v
export function cpuAdamStep(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  count: number,
  s: AdamStepScalars,
  vMax: Float32Array | null = null,
): void {
  for (let i = 0; i < count; i++) {
    const gradient = g[i] + s.coupledDecay * p[i];
    const first = s.beta1 * m[i] + s.oneMinusBeta1 * gradient;
    const second = s.beta2 * v[i] + s.oneMinusBeta2 * gradient * gradient;
    m[i] = first;
    v[i] = second;
    let denominator = second;
    if (vMax !== null) {
      // (v is stored as f32 first: the maximum compares what the moments hold)
      if (v[i] > vMax[i]) vMax[i] = v[i];
      denominator = vMax[i];
    }
    p[i] =
      p[i] * s.shrink - (s.stepSize * first) / (Math.sqrt(denominator) * s.inverseCorrection2 + s.epsilon);
  }
}

// p, g, b: (count); b and p updated in place (catalog `sgdStep`), each value rounded to f32 as it is stored
export function cpuSgdStep(
  p: Float32Array,
  g: Float32Array,
  b: Float32Array,
  count: number,
  s: SgdStepScalars,
): void {
  for (let i = 0; i < count; i++) {
    const gradient = g[i] + s.weightDecay * p[i];
    b[i] = s.first !== 0 ? gradient : s.momentum * b[i] + s.oneMinusDampening * gradient;
    const direction = s.nesterov !== 0 ? gradient + s.momentum * b[i] : b[i];
    p[i] = p[i] - s.learningRate * direction;
  }
}

// p, g, s: (count); s and p updated in place (catalog `adagradStep`), each value rounded to f32 as it is stored
export function cpuAdagradStep(
  p: Float32Array,
  g: Float32Array,
  sum: Float32Array,
  count: number,
  scalars: AdagradStepScalars,
): void {
  for (let i = 0; i < count; i++) {
    const gradient = g[i] + scalars.weightDecay * p[i];
    sum[i] = sum[i] + gradient * gradient;
    p[i] = p[i] - (scalars.rate * gradient) / (Math.sqrt(sum[i]) + scalars.epsilon);
  }
}

// p, g, v: (count); v and p updated in place (catalog `rmspropStep`), each value rounded to f32 as it is stored
export function cpuRmspropStep(
  p: Float32Array,
  g: Float32Array,
  v: Float32Array,
  count: number,
  s: RmspropStepScalars,
): void {
  for (let i = 0; i < count; i++) {
    const gradient = g[i] + s.weightDecay * p[i];
    v[i] = s.alpha * v[i] + s.oneMinusAlpha * gradient * gradient;
    p[i] = p[i] - (s.learningRate * gradient) / (Math.sqrt(v[i]) + s.epsilon);
  }
}

// input: (N, C, H, W) -> output: (C * KH * KW, N * OH * OW)
export function cpuIm2col(input: Float32Array, output: Float32Array, g: Conv2dGeometry): void {
  const positions = g.outHeight * g.outWidth;
  const columns = g.batch * positions;
  for (let channel = 0; channel < g.inChannels; channel++) {
    for (let ky = 0; ky < g.kernelHeight; ky++) {
      for (let kx = 0; kx < g.kernelWidth; kx++) {
        const r = (channel * g.kernelHeight + ky) * g.kernelWidth + kx;
        for (let n = 0; n < g.batch; n++) {
          for (let p = 0; p < positions; p++) {
            const iy = Math.floor(p / g.outWidth) * g.strideHeight + ky * g.dilationHeight - g.paddingHeight;
            const ix = (p % g.outWidth) * g.strideWidth + kx * g.dilationWidth - g.paddingWidth;
            const inside = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width;
            const source = ((n * g.inChannels + channel) * g.height + iy) * g.width + ix;
            output[r * columns + n * positions + p] = inside ? input[source] : 0;
          }
        }
      }
    }
  }
}

// product: (O, N * OH * OW) -> output: (N, O, OH, OW), plus bias[o]
export function cpuConvOutput(
  product: Float32Array,
  bias: Float32Array | undefined,
  output: Float32Array,
  g: Conv2dGeometry,
): void {
  const positions = g.outHeight * g.outWidth;
  for (let n = 0; n < g.batch; n++) {
    for (let o = 0; o < g.outChannels; o++) {
      const add = bias === undefined ? 0 : bias[o];
      for (let p = 0; p < positions; p++) {
        output[(n * g.outChannels + o) * positions + p] =
          product[o * g.batch * positions + n * positions + p] + add;
      }
    }
  }
}

// columns: (C * KH * KW, N * OH * OW) -> output: (N, C, H, W), the adjoint of im2col
export function cpuCol2im(columns: Float32Array, output: Float32Array, g: Conv2dGeometry): void {
  const positions = g.outHeight * g.outWidth;
  const stride = g.batch * positions;
  const accumulated = new Float64Array(g.batch * g.inChannels * g.height * g.width);
  for (let channel = 0; channel < g.inChannels; channel++) {
    for (let ky = 0; ky < g.kernelHeight; ky++) {
      for (let kx = 0; kx < g.kernelWidth; kx++) {
        const r = (channel * g.kernelHeight + ky) * g.kernelWidth + kx;
        for (let n = 0; n < g.batch; n++) {
          for (let p = 0; p < positions; p++) {
            const iy = Math.floor(p / g.outWidth) * g.strideHeight + ky * g.dilationHeight - g.paddingHeight;
            const ix = (p % g.outWidth) * g.strideWidth + kx * g.dilationWidth - g.paddingWidth;
            if (iy < 0 || iy >= g.height || ix < 0 || ix >= g.width) continue;
            accumulated[((n * g.inChannels + channel) * g.height + iy) * g.width + ix] +=
              columns[r * stride + n * positions + p];
          }
        }
      }
    }
  }
  output.set(accumulated);
}

// input: (planes, H, W) -> output: (planes, OH, OW); max keeps the first maximum of each window
export function cpuPool(op: PoolOpName, input: Float32Array, output: Float32Array, g: Pool2dGeometry): void {
  const window = g.kernelSize * g.kernelSize;
  for (let plane = 0; plane < g.planes; plane++) {
    for (let oy = 0; oy < g.outHeight; oy++) {
      for (let ox = 0; ox < g.outWidth; ox++) {
        const base = (plane * g.height + oy * g.stride) * g.width + ox * g.stride;
        let best = op === 'max' ? input[base] : 0;
        for (let ky = 0; ky < g.kernelSize; ky++) {
          for (let kx = 0; kx < g.kernelSize; kx++) {
            const value = input[base + ky * g.width + kx];
            if (op === 'avg') best += value;
            else if (value > best) best = value;
          }
        }
        output[(plane * g.outHeight + oy) * g.outWidth + ox] = op === 'max' ? best : best / window;
      }
    }
  }
}

// (input (planes, H, W), gradient (planes, OH, OW)) -> output: the input gradient (planes, H, W)
export function cpuPoolBackward(
  op: PoolOpName,
  input: Float32Array,
  gradient: Float32Array,
  output: Float32Array,
  g: Pool2dGeometry,
): void {
  const window = g.kernelSize * g.kernelSize;
  output.fill(0, 0, g.planes * g.height * g.width);
  for (let plane = 0; plane < g.planes; plane++) {
    for (let oy = 0; oy < g.outHeight; oy++) {
      for (let ox = 0; ox < g.outWidth; ox++) {
        const base = (plane * g.height + oy * g.stride) * g.width + ox * g.stride;
        const g0 = gradient[(plane * g.outHeight + oy) * g.outWidth + ox];
        if (op === 'max') {
          let winner = base;
          for (let ky = 0; ky < g.kernelSize; ky++)
            for (let kx = 0; kx < g.kernelSize; kx++) {
              const at = base + ky * g.width + kx;
              if (input[at] > input[winner]) winner = at;
            }
          output[winner] += g0;
        } else {
          for (let ky = 0; ky < g.kernelSize; ky++)
            for (let kx = 0; kx < g.kernelSize; kx++) output[base + ky * g.width + kx] += g0 / window;
        }
      }
    }
  }
}

/** The row number `value` stands for, or -1 where it is none of [0, rows) (an integer f32). */
function rowOf(value: number, rows: number): number {
  return value >= 0 && value < rows && Number.isInteger(value) ? value : -1;
}

// table (rows, dimension), indices (count) -> output (count, dimension): rows by number, zeros for none
export function cpuIndexRows(
  table: Float32Array,
  indices: Float32Array,
  output: Float32Array,
  shape: { readonly count: number; readonly dimension: number; readonly rows: number },
): void {
  const { count, dimension, rows } = shape;
  for (let i = 0; i < count; i++) {
    const row = rowOf(indices[i], rows);
    const at = i * dimension;
    if (row < 0) output.fill(0, at, at + dimension);
    else output.set(table.subarray(row * dimension, (row + 1) * dimension), at);
  }
}

// gradient (count, dimension), positions (count), starts (rows + 1) -> output (rows, dimension):
// each row the f32 sum, in order, of the gradient rows its positions name
export function cpuIndexRowsBackward(
  gradient: Float32Array,
  positions: Float32Array,
  starts: Float32Array,
  output: Float32Array,
  shape: { readonly count: number; readonly dimension: number; readonly rows: number },
): void {
  const { count, dimension, rows } = shape;
  const total = new Float32Array(dimension);
  for (let r = 0; r < rows; r++) {
    total.fill(0);
    // (truncated and clamped to [0, count], as the device kernels convert them)
    const [begin, end] = [starts[r], starts[r + 1]].map((at) => Math.trunc(Math.min(Math.max(at, 0), count)));
    for (let p = begin; p < end; p++) {
      const position = rowOf(positions[p], count);
      if (position < 0) continue;
      // (a Float32Array adds in f32, as the device kernels do)
      for (let d = 0; d < dimension; d++) total[d] += gradient[position * dimension + d];
    }
    output.set(total, r * dimension);
  }
}
