/**
 * CUDA C sources, generated from the same op descriptions as the WGSL ones (`ops.ts`). Each
 * kernel is a standalone `extern "C" __global__` function, compiled at run time by NVRTC (and
 * by `nvcc -ptx` in the tests); its parameters are listed so the launcher can pack them.
 * Matmul is not here: the CUDA backend calls cuBLAS for it.
 */
import { toCuda } from './Expression.js';
import {
  ADAGRAD_STEP_SCALARS,
  ADAM_STEP_SCALARS,
  BINARY_OPS,
  type BinaryOpName,
  CONV2D_GEOMETRY_FIELDS,
  FLOAT32_MAX,
  REDUCE_OPS,
  type ReduceOpName,
  RMSPROP_STEP_SCALARS,
  SGD_STEP_SCALARS,
  UNARY_OPS,
  type UnaryOpName,
} from './ops.js';

/** Threads per block of every generated kernel. */
export const CUDA_BLOCK_SIZE = 256;

export type CudaParameterType = 'pointer' | 'u32' | 'f32';

export interface CudaKernel {
  readonly name: string;
  readonly source: string;
  readonly parameters: readonly CudaParameterType[];
}

const CONV_NAMES = [...CONV2D_GEOMETRY_FIELDS, 'count'] as const;

function cudaFloat(value: number): string {
  const text = String(value);
  return `${/[.e]/.test(text) ? text : `${text}.0`}f`;
}

const GLOBAL_INDEX = 'const unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;';

export function cudaUnary(op: UnaryOpName): CudaKernel {
  const name = `unary_${op}`;
  const source = `extern "C" __global__ void ${name}(const float* __restrict__ input0, float* __restrict__ output, unsigned int count) {
  ${GLOBAL_INDEX}
  if (i >= count) return;
  const float x = input0[i];
  output[i] = ${toCuda(UNARY_OPS[op])};
}
`;
  return { name, source, parameters: ['pointer', 'pointer', 'u32'] };
}

export function cudaBinary(op: BinaryOpName, broadcast: boolean): CudaKernel {
  const name = `binary_${op}_${broadcast ? 'broadcast' : 'same'}`;
  const shapeParameters = broadcast
    ? ', unsigned int s0, unsigned int s1, unsigned int s2, unsigned int s3, unsigned int a0, unsigned int a1, unsigned int a2, unsigned int a3, unsigned int b0, unsigned int b1, unsigned int b2, unsigned int b3'
    : '';
  const indexing = broadcast
    ? `const unsigned int shape[4] = {s0, s1, s2, s3};
  const unsigned int stridesA[4] = {a0, a1, a2, a3};
  const unsigned int stridesB[4] = {b0, b1, b2, b3};
  unsigned int rest = i, indexA = 0, indexB = 0;
  for (int d = 3; d >= 0; d--) {
    const unsigned int coordinate = rest % shape[d];
    rest /= shape[d];
    indexA += coordinate * stridesA[d];
    indexB += coordinate * stridesB[d];
  }`
    : 'const unsigned int indexA = i, indexB = i;';
  const source = `extern "C" __global__ void ${name}(const float* __restrict__ inputA, const float* __restrict__ inputB, float* __restrict__ output, unsigned int count${shapeParameters}) {
  ${GLOBAL_INDEX}
  if (i >= count) return;
  ${indexing}
  const float x = inputA[indexA];
  const float y = inputB[indexB];
  output[i] = ${toCuda(BINARY_OPS[op])};
}
`;
  const parameters: CudaParameterType[] = ['pointer', 'pointer', 'pointer', 'u32'];
  if (broadcast) for (let index = 0; index < 12; index++) parameters.push('u32');
  return { name, source, parameters };
}

/** Tree reduction of `scratch` with `combine`; every thread sees the result in scratch[0] after. */
function blockReduce(combine: string): string {
  return `__syncthreads();
  for (unsigned int stride = ${CUDA_BLOCK_SIZE / 2}; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      const float x = scratch[threadIdx.x];
      const float y = scratch[threadIdx.x + stride];
      scratch[threadIdx.x] = ${combine};
    }
    __syncthreads();
  }`;
}

const ROW_START = `__shared__ float scratch[${CUDA_BLOCK_SIZE}];
  const unsigned int row = blockIdx.x;
  if (row >= rows) return;
  const float* rowInput = input0 + (size_t)row * columns;`;

/**
 * Each thread's pass over its strided share of a row; a sum is compensated (Kahan), as in the
 * WGSL kernel: a thread's partial sum stays within about 2 ulp of exact, and the tree over the
 * block's partials adds one rounding per level. NVRTC keeps the order (no fast-math flags).
 */
function cudaRowPass(op: ReduceOpName, combine: string): string {
  if (op === 'sum') {
    return `float compensation = 0.0f;
  for (unsigned int c = threadIdx.x; c < columns; c += blockDim.x) {
    const float term = rowInput[c] - compensation;
    const float total = accumulator + term;
    compensation = (total - accumulator) - term;
    accumulator = total;
  }`;
  }
  return `for (unsigned int c = threadIdx.x; c < columns; c += blockDim.x) {
    const float x = accumulator;
    const float y = rowInput[c];
    accumulator = ${combine};
  }`;
}

export function cudaReduce(op: ReduceOpName): CudaKernel {
  const name = `reduce_${op}`;
  const description = REDUCE_OPS[op];
  const combine = toCuda(description.combine);
  const source = `extern "C" __global__ void ${name}(const float* __restrict__ input0, float* __restrict__ output, unsigned int rows, unsigned int columns) {
  ${ROW_START}
  float accumulator = ${cudaFloat(description.identity)};
  ${cudaRowPass(op, combine)}
  scratch[threadIdx.x] = accumulator;
  ${blockReduce(combine)}
  if (threadIdx.x == 0) output[row] = scratch[0];
}
`;
  return { name, source, parameters: ['pointer', 'pointer', 'u32', 'u32'] };
}

export function cudaSoftmax(): CudaKernel {
  const source = `extern "C" __global__ void softmax(const float* __restrict__ input0, float* __restrict__ output, unsigned int rows, unsigned int columns) {
  ${ROW_START}
  float* rowOutput = output + (size_t)row * columns;
  float localMax = ${cudaFloat(-FLOAT32_MAX)};
  for (unsigned int c = threadIdx.x; c < columns; c += blockDim.x) localMax = fmaxf(localMax, rowInput[c]);
  scratch[threadIdx.x] = localMax;
  ${blockReduce(toCuda(REDUCE_OPS.max.combine))}
  const float rowMax = scratch[0];
  __syncthreads();
  float localSum = 0.0f;
  for (unsigned int c = threadIdx.x; c < columns; c += blockDim.x) localSum += expf(rowInput[c] - rowMax);
  scratch[threadIdx.x] = localSum;
  ${blockReduce(toCuda(REDUCE_OPS.sum.combine))}
  const float inverseSum = 1.0f / scratch[0];
  for (unsigned int c = threadIdx.x; c < columns; c += blockDim.x) rowOutput[c] = expf(rowInput[c] - rowMax) * inverseSum;
}
`;
  return { name: 'softmax', source, parameters: ['pointer', 'pointer', 'u32', 'u32'] };
}

export function cudaLayernorm(): CudaKernel {
  const sum = toCuda(REDUCE_OPS.sum.combine);
  const source = `extern "C" __global__ void layernorm(const float* __restrict__ input0, const float* __restrict__ gamma, const float* __restrict__ beta, float* __restrict__ output, unsigned int rows, unsigned int columns, float epsilon) {
  ${ROW_START}
  float* rowOutput = output + (size_t)row * columns;
  float localSum = 0.0f;
  for (unsigned int c = threadIdx.x; c < columns; c += blockDim.x) localSum += rowInput[c];
  scratch[threadIdx.x] = localSum;
  ${blockReduce(sum)}
  const float mean = scratch[0] / (float)columns;
  __syncthreads();
  float localSquares = 0.0f;
  for (unsigned int c = threadIdx.x; c < columns; c += blockDim.x) {
    const float centered = rowInput[c] - mean;
    localSquares += centered * centered;
  }
  scratch[threadIdx.x] = localSquares;
  ${blockReduce(sum)}
  const float inverseDeviation = rsqrtf(scratch[0] / (float)columns + epsilon);
  for (unsigned int c = threadIdx.x; c < columns; c += blockDim.x) {
    rowOutput[c] = (rowInput[c] - mean) * inverseDeviation * gamma[c] + beta[c];
  }
}
`;
  return {
    name: 'layernorm',
    source,
    parameters: ['pointer', 'pointer', 'pointer', 'pointer', 'u32', 'u32', 'f32'],
  };
}

const CONV_PARAMETERS = CONV_NAMES.map((name) => `unsigned int ${name}`).join(', ');
const CONV_TYPES: CudaParameterType[] = CONV_NAMES.map(() => 'u32');

/** input (N, C, H, W) -> columns (C * KH * KW, N * OH * OW); zero outside the padded input. */
export function cudaIm2col(): CudaKernel {
  const source = `extern "C" __global__ void im2col(const float* __restrict__ input0, float* __restrict__ output, ${CONV_PARAMETERS}) {
  const unsigned int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= count) return;
  const unsigned int positions = outHeight * outWidth;
  const unsigned int columns = batch * positions;
  const unsigned int r = e / columns, q = e % columns;
  const unsigned int n = q / positions, p = q % positions;
  const unsigned int window = kernelHeight * kernelWidth;
  const unsigned int channel = r / window;
  const unsigned int ky = (r % window) / kernelWidth, kx = r % kernelWidth;
  const int iy = (int)((p / outWidth) * strideHeight + ky * dilationHeight) - (int)paddingHeight;
  const int ix = (int)((p % outWidth) * strideWidth + kx * dilationWidth) - (int)paddingWidth;
  float value = 0.0f;
  if (iy >= 0 && iy < (int)height && ix >= 0 && ix < (int)width) {
    value = input0[((size_t)(n * inChannels + channel) * height + iy) * width + ix];
  }
  output[e] = value;
}
`;
  return { name: 'im2col', source, parameters: ['pointer', 'pointer', ...CONV_TYPES] };
}

/** product (O, N * OH * OW) -> output (N, O, OH, OW), adding bias[o] when hasBias is 1. */
export function cudaConvOutput(): CudaKernel {
  const source = `extern "C" __global__ void conv_output(const float* __restrict__ product, const float* __restrict__ bias, float* __restrict__ output, ${CONV_PARAMETERS}, unsigned int hasBias) {
  const unsigned int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= count) return;
  const unsigned int positions = outHeight * outWidth;
  const unsigned int n = e / (outChannels * positions);
  const unsigned int o = (e / positions) % outChannels;
  const unsigned int p = e % positions;
  float value = product[(size_t)o * batch * positions + n * positions + p];
  if (hasBias == 1) value += bias[o];
  output[e] = value;
}
`;
  return { name: 'conv_output', source, parameters: ['pointer', 'pointer', 'pointer', ...CONV_TYPES, 'u32'] };
}

/** columns (C * KH * KW, N * OH * OW) -> image (N, C, H, W): the adjoint of im2col. */
export function cudaCol2im(): CudaKernel {
  const source = `extern "C" __global__ void col2im(const float* __restrict__ columns, float* __restrict__ output, ${CONV_PARAMETERS}) {
  const unsigned int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= count) return;
  const unsigned int x = e % width, y = (e / width) % height;
  const unsigned int channel = (e / (width * height)) % inChannels;
  const unsigned int n = e / (width * height * inChannels);
  const unsigned int positions = outHeight * outWidth;
  const size_t stride = (size_t)batch * positions;
  float total = 0.0f;
  for (unsigned int ky = 0; ky < kernelHeight; ky++) {
    const int ty = (int)(y + paddingHeight) - (int)(ky * dilationHeight);
    if (ty < 0 || (unsigned int)ty % strideHeight != 0) continue;
    const unsigned int oy = (unsigned int)ty / strideHeight;
    if (oy >= outHeight) continue;
    for (unsigned int kx = 0; kx < kernelWidth; kx++) {
      const int tx = (int)(x + paddingWidth) - (int)(kx * dilationWidth);
      if (tx < 0 || (unsigned int)tx % strideWidth != 0) continue;
      const unsigned int ox = (unsigned int)tx / strideWidth;
      if (ox >= outWidth) continue;
      const unsigned int r = (channel * kernelHeight + ky) * kernelWidth + kx;
      total += columns[r * stride + n * positions + oy * outWidth + ox];
    }
  }
  output[e] = total;
}
`;
  return { name: 'col2im', source, parameters: ['pointer', 'pointer', ...CONV_TYPES] };
}

const POOL_NAMES = ['planes', 'height', 'width', 'kernelSize', 'stride', 'outHeight', 'outWidth', 'count'];
const POOL_PARAMETERS = POOL_NAMES.map((name) => `unsigned int ${name}`).join(', ');
const POOL_TYPES: CudaParameterType[] = POOL_NAMES.map(() => 'u32');

/** input (planes, H, W) -> output (planes, OH, OW): the first maximum, or the mean, of each window. */
export function cudaPool(op: 'max' | 'avg'): CudaKernel {
  const source = `extern "C" __global__ void pool_${op}(const float* __restrict__ input0, float* __restrict__ output, ${POOL_PARAMETERS}) {
  const unsigned int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= count) return;
  const unsigned int positions = outHeight * outWidth;
  const unsigned int plane = e / positions, oy = (e % positions) / outWidth, ox = e % outWidth;
  const size_t base = (size_t)plane * height * width + oy * stride * width + ox * stride;
  float best = ${op === 'max' ? 'input0[base]' : '0.0f'};
  for (unsigned int ky = 0; ky < kernelSize; ky++)
    for (unsigned int kx = 0; kx < kernelSize; kx++) {
      const float value = input0[base + ky * width + kx];
      ${op === 'max' ? 'if (value > best) best = value;' : 'best += value;'}
    }
  output[e] = ${op === 'max' ? 'best' : 'best / (float)(kernelSize * kernelSize)'};
}
`;
  return { name: `pool_${op}`, source, parameters: ['pointer', 'pointer', ...POOL_TYPES] };
}

/** (input, gradient) -> input gradient, as `wgslPoolBackward` describes. */
export function cudaPoolBackward(op: 'max' | 'avg'): CudaKernel {
  const contribution =
    op === 'max'
      ? `const size_t base = (size_t)plane * height * width + oy * stride * width + ox * stride;
      size_t winner = base;
      for (unsigned int wy = 0; wy < kernelSize; wy++)
        for (unsigned int wx = 0; wx < kernelSize; wx++) {
          const size_t at = base + wy * width + wx;
          if (input0[at] > input0[winner]) winner = at;
        }
      if (winner == e) total += gradient[(size_t)plane * positions + oy * outWidth + ox];`
      : 'total += gradient[(size_t)plane * positions + oy * outWidth + ox] / (float)(kernelSize * kernelSize);';
  const source = `extern "C" __global__ void pool_backward_${op}(const float* __restrict__ input0, const float* __restrict__ gradient, float* __restrict__ output, ${POOL_PARAMETERS}) {
  const unsigned int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= count) return;
  const unsigned int positions = outHeight * outWidth;
  const unsigned int x = e % width, y = (e / width) % height, plane = e / (width * height);
  float total = 0.0f;
  for (unsigned int ky = 0; ky < kernelSize; ky++) {
    if (y < ky || (y - ky) % stride != 0) continue;
    const unsigned int oy = (y - ky) / stride;
    if (oy >= outHeight) continue;
    for (unsigned int kx = 0; kx < kernelSize; kx++) {
      if (x < kx || (x - kx) % stride != 0) continue;
      const unsigned int ox = (x - kx) / stride;
      if (ox >= outWidth) continue;
      ${contribution}
    }
  }
  output[e] = total;
}
`;
  return {
    name: `pool_backward_${op}`,
    source,
    parameters: ['pointer', 'pointer', 'pointer', ...POOL_TYPES],
  };
}

/**
 * One Adam/AdamW step per element, in place (catalog `adamStep`), in f32. With `amsgrad`
 * (catalog `amsgradStep`) the largest second moment so far comes after the other moments and
 * the denominator takes it.
 */
export function cudaAdamStep(amsgrad = false): CudaKernel {
  const name = amsgrad ? 'amsgrad_step' : 'adam_step';
  const scalars = ADAM_STEP_SCALARS.map((scalar) => `float ${scalar}`).join(', ');
  const largest = amsgrad ? ' float* __restrict__ maxSecondMoment,' : '';
  const denominator = amsgrad
    ? 'const float d = fmaxf(maxSecondMoment[i], v);\n  maxSecondMoment[i] = d;'
    : 'const float d = v;';
  const source = `extern "C" __global__ void ${name}(const float* __restrict__ gradient, float* __restrict__ firstMoment, float* __restrict__ secondMoment,${largest} float* __restrict__ parameter, unsigned int count, ${scalars}) {
  ${GLOBAL_INDEX}
  if (i >= count) return;
  const float p = parameter[i];
  const float g = gradient[i] + coupledDecay * p;
  const float m = beta1 * firstMoment[i] + oneMinusBeta1 * g;
  const float v = beta2 * secondMoment[i] + oneMinusBeta2 * g * g;
  firstMoment[i] = m;
  secondMoment[i] = v;
  ${denominator}
  parameter[i] = p * shrink - stepSize * m / (sqrtf(d) * inverseCorrection2 + epsilon);
}
`;
  const parameters: CudaParameterType[] = ['pointer', 'pointer', 'pointer', 'pointer', 'u32'];
  if (amsgrad) parameters.unshift('pointer');
  for (const _ of ADAM_STEP_SCALARS) parameters.push('f32');
  return { name, source, parameters };
}

/**
 * An optimizer step over one slot, per element and in place, in f32 (as `wgslOneSlotStep`):
 * arguments gradient, the slot `slot`, parameter, count, then the f32 `scalars`. `body` computes
 * from p = parameter[i] and g = gradient[i] + weightDecay * p.
 */
function cudaOneSlotStep(name: string, slot: string, scalars: readonly string[], body: string): CudaKernel {
  const floats = scalars.map((scalar) => `float ${scalar}`).join(', ');
  const source = `extern "C" __global__ void ${name}(const float* __restrict__ gradient, float* __restrict__ ${slot}, float* __restrict__ parameter, unsigned int count, ${floats}) {
  ${GLOBAL_INDEX}
  if (i >= count) return;
  const float p = parameter[i];
  const float g = gradient[i] + weightDecay * p;
${body}
}
`;
  const parameters: CudaParameterType[] = ['pointer', 'pointer', 'pointer', 'u32'];
  for (const _ of scalars) parameters.push('f32');
  return { name, source, parameters };
}

/** One plain RMSprop step per element, in place (catalog `rmspropStep`), in f32. */
export function cudaRmspropStep(): CudaKernel {
  return cudaOneSlotStep(
    'rmsprop_step',
    'squareAverage',
    RMSPROP_STEP_SCALARS,
    `  const float v = alpha * squareAverage[i] + oneMinusAlpha * g * g;
  squareAverage[i] = v;
  parameter[i] = p - learningRate * g / (sqrtf(v) + epsilon);`,
  );
}

/** One Adagrad step per element, in place (catalog `adagradStep`), in f32. */
export function cudaAdagradStep(): CudaKernel {
  return cudaOneSlotStep(
    'adagrad_step',
    'sumOfSquares',
    ADAGRAD_STEP_SCALARS,
    `  const float s = sumOfSquares[i] + g * g;
  sumOfSquares[i] = s;
  parameter[i] = p - rate * g / (sqrtf(s) + epsilon);`,
  );
}

/** One SGD step with momentum per element, in place (catalog `sgdStep`), in f32. */
export function cudaSgdStep(): CudaKernel {
  return cudaOneSlotStep(
    'sgd_step',
    'momentumBuffer',
    SGD_STEP_SCALARS,
    `  const float b = first != 0.0f ? g : momentum * momentumBuffer[i] + oneMinusDampening * g;
  momentumBuffer[i] = b;
  const float direction = nesterov != 0.0f ? g + momentum * b : b;
  parameter[i] = p - learningRate * direction;`,
  );
}

/** The conv geometry as the 13 u32 arguments both conv kernels take after their buffers (count excluded). */
export const CONV_GEOMETRY_FIELDS = CONV_NAMES.slice(0, 13);

/** table, indices -> output (lookups, dimension), as `wgslIndexRows` describes. */
export function cudaIndexRows(): CudaKernel {
  const source = `extern "C" __global__ void index_rows(const float* __restrict__ table, const float* __restrict__ indices, float* __restrict__ output, unsigned int count, unsigned int lookups, unsigned int dimension, unsigned int rows) {
  const unsigned int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= count) return;
  const float value = indices[e / dimension];
  float result = 0.0f;
  if (value >= 0.0f && value < (float)rows && value == floorf(value))
    result = table[(size_t)(unsigned int)value * dimension + e % dimension];
  output[e] = result;
}
`;
  return {
    name: 'index_rows',
    source,
    parameters: ['pointer', 'pointer', 'pointer', 'u32', 'u32', 'u32', 'u32'],
  };
}

/** indexRows' gradient, one writer per output element, as `wgslIndexRowsBackward` describes. */
export function cudaIndexRowsBackward(): CudaKernel {
  const source = `extern "C" __global__ void index_rows_backward(const float* __restrict__ gradient, const float* __restrict__ positions, const float* __restrict__ starts, float* __restrict__ output, unsigned int count, unsigned int lookups, unsigned int dimension, unsigned int rows) {
  const unsigned int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= count) return;
  const unsigned int row = e / dimension, d = e % dimension;
  const unsigned int begin = (unsigned int)fminf(fmaxf(starts[row], 0.0f), (float)lookups);
  const unsigned int end = (unsigned int)fminf(fmaxf(starts[row + 1], 0.0f), (float)lookups);
  float total = 0.0f;
  for (unsigned int p = begin; p < end; p++) {
    const float position = positions[p];
    if (position >= 0.0f && position < (float)lookups)
      total += gradient[(size_t)(unsigned int)position * dimension + d];
  }
  output[e] = total;
}
`;
  return {
    name: 'index_rows_backward',
    source,
    parameters: ['pointer', 'pointer', 'pointer', 'pointer', 'u32', 'u32', 'u32', 'u32'],
  };
}

/** Every generated CUDA kernel, for compile checks and ahead-of-time warm-up. */
export function allCudaKernels(): CudaKernel[] {
  const kernels: CudaKernel[] = [];
  for (const op of Object.keys(UNARY_OPS) as UnaryOpName[]) kernels.push(cudaUnary(op));
  for (const op of Object.keys(BINARY_OPS) as BinaryOpName[])
    kernels.push(cudaBinary(op, false), cudaBinary(op, true));
  for (const op of Object.keys(REDUCE_OPS) as ReduceOpName[]) kernels.push(cudaReduce(op));
  kernels.push(cudaSoftmax(), cudaLayernorm(), cudaIm2col(), cudaConvOutput(), cudaCol2im());
  for (const op of ['max', 'avg'] as const) kernels.push(cudaPool(op), cudaPoolBackward(op));
  kernels.push(
    cudaAdamStep(false),
    cudaAdamStep(true),
    cudaSgdStep(),
    cudaAdagradStep(),
    cudaRmspropStep(),
    cudaIndexRows(),
    cudaIndexRowsBackward(),
  );
  return kernels;
}
