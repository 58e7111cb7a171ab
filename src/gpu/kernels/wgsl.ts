/**
 * WGSL sources, generated from the op descriptions in `ops.ts`. Every kernel reads its sizes
 * from a uniform `Params` struct of 32-bit words (the order of fields is the order the WebGPU
 * backend writes them), binds its buffers in the order listed, and indexes with
 * `workgroup_id.y * num_workgroups.x + workgroup_id.x` so a launch can span more than the 65535
 * workgroups one dimension allows.
 */
import { toWgsl, toWgslVector } from './Expression.js';
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

/** Threads per workgroup of the elementwise and row kernels. */
export const WGSL_WORKGROUP_SIZE = 256;
/** The matmul tile: each 16x16 workgroup computes a 64x64 block of the output, 4x4 per thread. */
export const WGSL_MATMUL_TILE = 64;

export interface WgslKernel {
  readonly name: string;
  readonly source: string;
}

function wgslFloat(value: number): string {
  const text = String(value);
  return /[.e]/.test(text) ? text : `${text}.0`;
}

const HEADER_INDEX = `fn linearGroup(wid: vec3<u32>, groups: vec3<u32>) -> u32 {
  return wid.y * groups.x + wid.x;
}`;

/** The invocation's element index `name`, returning past the last element (params.count). */
function elementIndex(name: 'i' | 'e'): string {
  return `let ${name} = linearGroup(wid, groups) * ${WGSL_WORKGROUP_SIZE}u + lid.x;
  if (${name} >= params.count) { return; }`;
}

const ENTRY = `@compute @workgroup_size(${WGSL_WORKGROUP_SIZE})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>)`;

export function wgslUnary(op: UnaryOpName): WgslKernel {
  const source = `struct Params { count: u32 }
@group(0) @binding(0) var<storage, read> input0: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('i')}
  let x = input0[i];
  output[i] = ${toWgsl(UNARY_OPS[op])};
}
`;
  return { name: `unary_${op}`, source };
}

/**
 * The same-length elementwise kernels on vec4<f32>: four elements per invocation, for counts
 * that are a multiple of 4 (buffers are allocated in multiples of 256 bytes, so the vec4 view
 * always fits). About 3x faster on SwiftShader, which runs each invocation on SIMD lanes.
 */
export function wgslVectorized(kind: 'unary', op: UnaryOpName): WgslKernel;
export function wgslVectorized(kind: 'binary', op: BinaryOpName): WgslKernel;
export function wgslVectorized(kind: 'unary' | 'binary', op: UnaryOpName | BinaryOpName): WgslKernel {
  const binary = kind === 'binary';
  const expression = binary ? BINARY_OPS[op as BinaryOpName] : UNARY_OPS[op as UnaryOpName];
  const source = `struct Params { count: u32 }
@group(0) @binding(0) var<storage, read> inputA: array<vec4<f32>>;
${binary ? '@group(0) @binding(1) var<storage, read> inputB: array<vec4<f32>>;\n' : ''}@group(0) @binding(${binary ? 2 : 1}) var<storage, read_write> output: array<vec4<f32>>;
@group(0) @binding(${binary ? 3 : 2}) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  let i = linearGroup(wid, groups) * ${WGSL_WORKGROUP_SIZE}u + lid.x;
  if (i >= params.count / 4u) { return; }
  let x = inputA[i];
  ${binary ? 'let y = inputB[i];' : ''}
  output[i] = ${toWgslVector(expression)};
}
`;
  return { name: `${kind}_${op}_vec4`, source };
}

export function wgslBinary(op: BinaryOpName, broadcast: boolean): WgslKernel {
  const indexing = broadcast
    ? `var rest = i;
  var indexA = 0u;
  var indexB = 0u;
  for (var d = 3; d >= 0; d--) {
    let coordinate = rest % params.shape[d];
    rest = rest / params.shape[d];
    indexA += coordinate * params.stridesA[d];
    indexB += coordinate * params.stridesB[d];
  }`
    : `let indexA = i;
  let indexB = i;`;
  const source = `struct Params { count: u32, pad0: u32, pad1: u32, pad2: u32, shape: vec4<u32>, stridesA: vec4<u32>, stridesB: vec4<u32> }
@group(0) @binding(0) var<storage, read> inputA: array<f32>;
@group(0) @binding(1) var<storage, read> inputB: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('i')}
  ${indexing}
  let x = inputA[indexA];
  let y = inputB[indexB];
  output[i] = ${toWgsl(BINARY_OPS[op])};
}
`;
  return { name: `binary_${op}_${broadcast ? 'broadcast' : 'same'}`, source };
}

/** Tree reduction of `scratch` (one value per thread) with `combine`; result in scratch[0]. */
function blockReduce(combine: string): string {
  return `workgroupBarrier();
  for (var stride = ${WGSL_WORKGROUP_SIZE / 2}u; stride > 0u; stride = stride >> 1u) {
    if (lid.x < stride) {
      let x = scratch[lid.x];
      let y = scratch[lid.x + stride];
      scratch[lid.x] = ${combine};
    }
    workgroupBarrier();
  }`;
}

const ROW_PREAMBLE = `var<workgroup> scratch: array<f32, ${WGSL_WORKGROUP_SIZE}>;
${HEADER_INDEX}`;

const ROW_START = `let row = linearGroup(wid, groups);
  if (row >= params.rows) { return; }
  let base = row * params.columns;`;

/**
 * Each thread's pass over its strided share of a row. A sum is compensated (Kahan): the f32
 * rounding error of each addition is carried in `compensation` and fed back, so a thread's
 * partial sum is within about 2 ulp of exact however long the row; the tree over the 256
 * partials that follows adds at most 8 roundings (one per level). Other ops combine directly.
 */
function wgslRowPass(op: ReduceOpName, combine: string): string {
  if (op === 'sum') {
    return `var compensation: f32 = 0.0;
  for (var c = lid.x; c < params.columns; c += ${WGSL_WORKGROUP_SIZE}u) {
    let term = input0[base + c] - compensation;
    let total = accumulator + term;
    compensation = (total - accumulator) - term;
    accumulator = total;
  }`;
  }
  return `for (var c = lid.x; c < params.columns; c += ${WGSL_WORKGROUP_SIZE}u) {
    let x = accumulator;
    let y = input0[base + c];
    accumulator = ${combine};
  }`;
}

export function wgslReduce(op: ReduceOpName): WgslKernel {
  const description = REDUCE_OPS[op];
  const combine = toWgsl(description.combine);
  const source = `struct Params { rows: u32, columns: u32 }
@group(0) @binding(0) var<storage, read> input0: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${ROW_PREAMBLE}
${ENTRY} {
  ${ROW_START}
  var accumulator: f32 = ${wgslFloat(description.identity)};
  ${wgslRowPass(op, combine)}
  scratch[lid.x] = accumulator;
  ${blockReduce(combine)}
  if (lid.x == 0u) { output[row] = scratch[0]; }
}
`;
  return { name: `reduce_${op}`, source };
}

export function wgslSoftmax(): WgslKernel {
  const source = `struct Params { rows: u32, columns: u32 }
@group(0) @binding(0) var<storage, read> input0: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${ROW_PREAMBLE}
${ENTRY} {
  ${ROW_START}
  var localMax: f32 = ${wgslFloat(-FLOAT32_MAX)};
  for (var c = lid.x; c < params.columns; c += ${WGSL_WORKGROUP_SIZE}u) { localMax = max(localMax, input0[base + c]); }
  scratch[lid.x] = localMax;
  ${blockReduce(toWgsl(REDUCE_OPS.max.combine))}
  let rowMax = scratch[0];
  workgroupBarrier();
  var localSum: f32 = 0.0;
  for (var c = lid.x; c < params.columns; c += ${WGSL_WORKGROUP_SIZE}u) { localSum += exp(input0[base + c] - rowMax); }
  scratch[lid.x] = localSum;
  ${blockReduce(toWgsl(REDUCE_OPS.sum.combine))}
  let inverseSum = 1.0 / scratch[0];
  for (var c = lid.x; c < params.columns; c += ${WGSL_WORKGROUP_SIZE}u) {
    output[base + c] = exp(input0[base + c] - rowMax) * inverseSum;
  }
}
`;
  return { name: 'softmax', source };
}

export function wgslLayernorm(): WgslKernel {
  const sum = toWgsl(REDUCE_OPS.sum.combine);
  const source = `struct Params { rows: u32, columns: u32, epsilon: f32 }
@group(0) @binding(0) var<storage, read> input0: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
${ROW_PREAMBLE}
${ENTRY} {
  ${ROW_START}
  var localSum: f32 = 0.0;
  for (var c = lid.x; c < params.columns; c += ${WGSL_WORKGROUP_SIZE}u) { localSum += input0[base + c]; }
  scratch[lid.x] = localSum;
  ${blockReduce(sum)}
  let mean = scratch[0] / f32(params.columns);
  workgroupBarrier();
  var localSquares: f32 = 0.0;
  for (var c = lid.x; c < params.columns; c += ${WGSL_WORKGROUP_SIZE}u) {
    let centered = input0[base + c] - mean;
    localSquares += centered * centered;
  }
  scratch[lid.x] = localSquares;
  ${blockReduce(sum)}
  let inverseDeviation = inverseSqrt(scratch[0] / f32(params.columns) + params.epsilon);
  for (var c = lid.x; c < params.columns; c += ${WGSL_WORKGROUP_SIZE}u) {
    output[base + c] = (input0[base + c] - mean) * inverseDeviation * gamma[c] + beta[c];
  }
}
`;
  return { name: 'layernorm', source };
}

/** Depth of one step along k of the matmul tile. */
const TILE_K = 16;

/**
 * Each thread stages TILE_K / 4 elements of a and TILE_K / 16 vec4s of b per step along k.
 * a(row, k) is a[row * k + k], or a[k * m + row] when transposed; b(k, column) is
 * b[k * n + column], or b[column * k + k].
 */
function matmulLoads(transposeA: boolean, transposeB: boolean): { loadA: string; loadB: string } {
  const readA = transposeA ? 'a[baseA + kA * params.m + rowA]' : 'a[baseA + rowA * params.k + kA]';
  const readB = (lane: number) =>
    transposeB
      ? `b[baseB + (columnB + ${lane}u) * params.k + kB]`
      : `b[baseB + kB * params.n + columnB + ${lane}u]`;
  const loadA = Array.from(
    { length: TILE_K / 4 },
    (_, load) => `    {
      let e = thread + ${load * 256}u;
      let rowA = rowBase + e / ${TILE_K}u;
      let kA = k0 + e % ${TILE_K}u;
      var value = 0.0;
      if (rowA < params.m && kA < params.k) { value = ${readA}; }
      tileA[e] = value;
    }`,
  ).join('\n');
  const loadB = Array.from({ length: TILE_K / 16 }, (_, load) => load)
    .map((load) => {
      const lanes = [0, 1, 2, 3].map(
        (lane) =>
          `      if (kB < params.k && columnB + ${lane}u < params.n) { valueB[${lane}] = ${readB(lane)}; }`,
      );
      return `    {
      let e = thread + ${load * 256}u;
      let kB = k0 + e / 16u;
      let columnB = wid.x * 64u + (e % 16u) * 4u;
      var valueB = vec4<f32>(0.0);
${lanes.join('\n')}
      tileB[e] = valueB;
    }`;
    })
    .join('\n');
  return { loadA, loadB };
}

/** The matmul kernel's name for the transpose flags: matmul, matmul_ta, matmul_tb, matmul_ta_tb. */
export function wgslMatmulName(transposeA: boolean, transposeB: boolean): string {
  return `matmul${transposeA ? '_ta' : ''}${transposeB ? '_tb' : ''}`;
}

/**
 * Tiled matmul, c (m, n) = op(a) (m, k) op(b) (k, n), row-major (op: transposed when the flag
 * says a is stored (k, m), b (n, k); only the loads into workgroup memory differ). A 16x16 workgroup stages a 64x16 tile
 * of a and a 16x64 tile of b (as vec4 rows) in workgroup memory per step along k; each thread
 * accumulates a 4x4 block of c in four vec4 registers (rows 4 ly .. 4 ly + 3, columns
 * 4 lx .. 4 lx + 3). Edges are zero-padded, so any m, n, k works. No private arrays: software
 * rasterizers (SwiftShader) spill dynamically indexed ones to memory. Workgroups x are the
 * column tiles; the row tiles of every product of a batched launch are numbered together,
 * tile = wid.z * num_workgroups.y + wid.y (so neither the rows nor the products are bound by
 * 65535 workgroups a dimension): row tile tile % tilesY of product tile / tilesY, whose a, b and
 * c start at product strideA, product strideB and product m n. Workgroups past the last tile
 * return at once (the launch rounds up to whole rows of y).
 */
export function wgslMatmul(transposeA = false, transposeB = false): WgslKernel {
  const { loadA, loadB } = matmulLoads(transposeA, transposeB);
  const multiply = [0, 1, 2, 3]
    .map((i) => `      accumulator${i} += tileA[(lid.y * 4u + ${i}u) * ${TILE_K}u + kk] * fromB;`)
    .join('\n');
  const store = [0, 1, 2, 3]
    .map(
      (i) => `  {
    let row = rowBase + lid.y * 4u + ${i}u;
    if (row < params.m) {
      for (var j = 0u; j < 4u; j++) {
        if (columnBase + j < params.n) { c[baseC + row * params.n + columnBase + j] = accumulator${i}[j]; }
      }
    }
  }`,
    )
    .join('\n');
  const source = `struct Params { m: u32, n: u32, k: u32, strideA: u32, strideB: u32, tilesY: u32, count: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
var<workgroup> tileA: array<f32, ${64 * TILE_K}>;
var<workgroup> tileB: array<vec4<f32>, ${16 * TILE_K}>;
@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  // (uniform across the workgroup: returning here keeps the barriers below uniform)
  let tile = wid.z * groups.y + wid.y;
  if (tile >= params.tilesY * params.count) { return; }
  let rowBase = (tile % params.tilesY) * 64u;
  let product = tile / params.tilesY;
  let thread = lid.y * 16u + lid.x;
  // the product of a batched launch (0 for one product)
  let baseA = product * params.strideA;
  let baseB = product * params.strideB;
  let baseC = product * params.m * params.n;
  var accumulator0 = vec4<f32>(0.0);
  var accumulator1 = vec4<f32>(0.0);
  var accumulator2 = vec4<f32>(0.0);
  var accumulator3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < params.k; k0 += ${TILE_K}u) {
${loadA}
${loadB}
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE_K}u; kk++) {
      let fromB = tileB[kk * 16u + lid.x];
${multiply}
    }
    workgroupBarrier();
  }
  let columnBase = wid.x * 64u + lid.x * 4u;
${store}
}
`;
  return { name: wgslMatmulName(transposeA, transposeB), source };
}

/**
 * One Adam/AdamW step per element, in place (catalog `adamStep`): reads gradient, updates the
 * moments and the parameter, all in f32. With `amsgrad` (catalog `amsgradStep`) it also keeps
 * the largest second moment so far, bound after the other moments, and divides by its root.
 */
export function wgslAdamStep(amsgrad = false): WgslKernel {
  const scalars = ADAM_STEP_SCALARS.map((name) => `${name}: f32,`).join(' ');
  const largest = amsgrad
    ? `@group(0) @binding(3) var<storage, read_write> maxSecondMoment: array<f32>;
@group(0) @binding(4) var<storage, read_write> parameter: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;`
    : `@group(0) @binding(3) var<storage, read_write> parameter: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;`;
  const denominator = amsgrad
    ? `let d = max(maxSecondMoment[i], v);
  maxSecondMoment[i] = d;`
    : 'let d = v;';
  const source = `struct Params { count: u32, ${scalars} }
@group(0) @binding(0) var<storage, read> gradient: array<f32>;
@group(0) @binding(1) var<storage, read_write> firstMoment: array<f32>;
@group(0) @binding(2) var<storage, read_write> secondMoment: array<f32>;
${largest}
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('i')}
  let p = parameter[i];
  let g = gradient[i] + params.coupledDecay * p;
  let m = params.beta1 * firstMoment[i] + params.oneMinusBeta1 * g;
  let v = params.beta2 * secondMoment[i] + params.oneMinusBeta2 * g * g;
  firstMoment[i] = m;
  secondMoment[i] = v;
  ${denominator}
  parameter[i] = p * params.shrink - params.stepSize * m / (sqrt(d) * params.inverseCorrection2 + params.epsilon);
}
`;
  return { name: amsgrad ? 'amsgrad_step' : 'adam_step', source };
}

/**
 * An optimizer step over one slot, per element and in place, in f32: the gradient (read), the
 * slot `slot` and the parameter (read and written), then the uniform (count, the f32 `scalars`).
 * `body` computes from p = parameter[i] and g = gradient[i] + weightDecay * p.
 */
function wgslOneSlotStep(name: string, slot: string, scalars: readonly string[], body: string): WgslKernel {
  const fields = scalars.map((scalar) => `${scalar}: f32,`).join(' ');
  const source = `struct Params { count: u32, ${fields} }
@group(0) @binding(0) var<storage, read> gradient: array<f32>;
@group(0) @binding(1) var<storage, read_write> ${slot}: array<f32>;
@group(0) @binding(2) var<storage, read_write> parameter: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('i')}
  let p = parameter[i];
  let g = gradient[i] + params.weightDecay * p;
${body}
}
`;
  return { name, source };
}

/** One plain RMSprop step per element, in place (catalog `rmspropStep`), in f32. */
export function wgslRmspropStep(): WgslKernel {
  return wgslOneSlotStep(
    'rmsprop_step',
    'squareAverage',
    RMSPROP_STEP_SCALARS,
    `  let v = params.alpha * squareAverage[i] + params.oneMinusAlpha * g * g;
  squareAverage[i] = v;
  parameter[i] = p - params.learningRate * g / (sqrt(v) + params.epsilon);`,
  );
}

/** One Adagrad step per element, in place (catalog `adagradStep`), in f32. */
export function wgslAdagradStep(): WgslKernel {
  return wgslOneSlotStep(
    'adagrad_step',
    'sumOfSquares',
    ADAGRAD_STEP_SCALARS,
    `  let s = sumOfSquares[i] + g * g;
  sumOfSquares[i] = s;
  parameter[i] = p - params.rate * g / (sqrt(s) + params.epsilon);`,
  );
}

/** One SGD step with momentum per element, in place (catalog `sgdStep`), in f32. */
export function wgslSgdStep(): WgslKernel {
  return wgslOneSlotStep(
    'sgd_step',
    'momentumBuffer',
    SGD_STEP_SCALARS,
    `  var b = g;
  if (params.first == 0.0) {
    b = params.momentum * momentumBuffer[i] + params.oneMinusDampening * g;
  }
  momentumBuffer[i] = b;
  var direction = b;
  if (params.nesterov != 0.0) {
    direction = g + params.momentum * b;
  }
  parameter[i] = p - params.learningRate * direction;`,
  );
}

/** The uniform words of the conv kernels: CONV2D_GEOMETRY_FIELDS in order, then count and hasBias. */
export const CONV_UNIFORM_FIELDS = [...CONV2D_GEOMETRY_FIELDS, 'count', 'hasBias'] as const;

const CONV_PARAMS = `struct Params {
  ${CONV_UNIFORM_FIELDS.map((field) => `${field}: u32,`).join(' ')}
}`;

/** input (N, C, H, W) -> columns (C * KH * KW, N * OH * OW); zero outside the padded input. */
export function wgslIm2col(): WgslKernel {
  const source = `${CONV_PARAMS}
@group(0) @binding(0) var<storage, read> input0: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('e')}
  let positions = params.outHeight * params.outWidth;
  let columns = params.batch * positions;
  let r = e / columns;
  let q = e % columns;
  let n = q / positions;
  let p = q % positions;
  let window = params.kernelHeight * params.kernelWidth;
  let channel = r / window;
  let ky = (r % window) / params.kernelWidth;
  let kx = r % params.kernelWidth;
  let iy = i32((p / params.outWidth) * params.strideHeight + ky * params.dilationHeight) - i32(params.paddingHeight);
  let ix = i32((p % params.outWidth) * params.strideWidth + kx * params.dilationWidth) - i32(params.paddingWidth);
  var value = 0.0;
  if (iy >= 0 && iy < i32(params.height) && ix >= 0 && ix < i32(params.width)) {
    value = input0[((n * params.inChannels + channel) * params.height + u32(iy)) * params.width + u32(ix)];
  }
  output[e] = value;
}
`;
  return { name: 'im2col', source };
}

/** product (O, N * OH * OW) -> output (N, O, OH, OW), adding bias[o] when hasBias is 1. */
export function wgslConvOutput(): WgslKernel {
  const source = `${CONV_PARAMS}
@group(0) @binding(0) var<storage, read> product: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('e')}
  let positions = params.outHeight * params.outWidth;
  let n = e / (params.outChannels * positions);
  let o = (e / positions) % params.outChannels;
  let p = e % positions;
  var value = product[o * params.batch * positions + n * positions + p];
  if (params.hasBias == 1u) { value += bias[o]; }
  output[e] = value;
}
`;
  return { name: 'conv_output', source };
}

/**
 * columns (C * KH * KW, N * OH * OW) -> image (N, C, H, W): each image element sums the column
 * entries that im2col copied from it (the adjoint of im2col, the input gradient of conv2d).
 */
export function wgslCol2im(): WgslKernel {
  const source = `${CONV_PARAMS}
@group(0) @binding(0) var<storage, read> columns: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('e')}
  let x = e % params.width;
  let y = (e / params.width) % params.height;
  let channel = (e / (params.width * params.height)) % params.inChannels;
  let n = e / (params.width * params.height * params.inChannels);
  let positions = params.outHeight * params.outWidth;
  let stride = params.batch * positions;
  var total = 0.0;
  for (var ky = 0u; ky < params.kernelHeight; ky++) {
    let ty = i32(y + params.paddingHeight) - i32(ky * params.dilationHeight);
    if (ty < 0 || u32(ty) % params.strideHeight != 0u) { continue; }
    let oy = u32(ty) / params.strideHeight;
    if (oy >= params.outHeight) { continue; }
    for (var kx = 0u; kx < params.kernelWidth; kx++) {
      let tx = i32(x + params.paddingWidth) - i32(kx * params.dilationWidth);
      if (tx < 0 || u32(tx) % params.strideWidth != 0u) { continue; }
      let ox = u32(tx) / params.strideWidth;
      if (ox >= params.outWidth) { continue; }
      let r = (channel * params.kernelHeight + ky) * params.kernelWidth + kx;
      total += columns[r * stride + n * positions + oy * params.outWidth + ox];
    }
  }
  output[e] = total;
}
`;
  return { name: 'col2im', source };
}

/** Pooling geometry in the order of the uniform words. */
const POOL_PARAMS = `struct Params {
  planes: u32, height: u32, width: u32, kernelSize: u32, stride: u32, outHeight: u32, outWidth: u32, count: u32,
}`;

/** input (planes, H, W) -> output (planes, OH, OW): the first maximum, or the mean, of each window. */
export function wgslPool(op: 'max' | 'avg'): WgslKernel {
  const combine = op === 'max' ? 'if (value > best) { best = value; }' : 'best += value;';
  const result = op === 'max' ? 'best' : 'best / f32(params.kernelSize * params.kernelSize)';
  const source = `${POOL_PARAMS}
@group(0) @binding(0) var<storage, read> input0: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('e')}
  let positions = params.outHeight * params.outWidth;
  let plane = e / positions;
  let oy = (e % positions) / params.outWidth;
  let ox = e % params.outWidth;
  let base = plane * params.height * params.width + oy * params.stride * params.width + ox * params.stride;
  var best = ${op === 'max' ? 'input0[base]' : '0.0'};
  for (var ky = 0u; ky < params.kernelSize; ky++) {
    for (var kx = 0u; kx < params.kernelSize; kx++) {
      let value = input0[base + ky * params.width + kx];
      ${combine}
    }
  }
  output[e] = ${result};
}
`;
  return { name: `pool_${op}`, source };
}

/**
 * (input (planes, H, W), gradient (planes, OH, OW)) -> input gradient (planes, H, W): each input
 * element sums the gradients of the windows it is in, for max only where it is the window's first
 * maximum, for avg divided by the window's size. Overlapping windows (stride < kernel) add up.
 */
export function wgslPoolBackward(op: 'max' | 'avg'): WgslKernel {
  const contribution =
    op === 'max'
      ? `let base = plane * params.height * params.width + oy * params.stride * params.width + ox * params.stride;
      var winner = base;
      for (var wy = 0u; wy < params.kernelSize; wy++) {
        for (var wx = 0u; wx < params.kernelSize; wx++) {
          let at = base + wy * params.width + wx;
          if (input0[at] > input0[winner]) { winner = at; }
        }
      }
      if (winner == e) { total += gradient[plane * positions + oy * params.outWidth + ox]; }`
      : 'total += gradient[plane * positions + oy * params.outWidth + ox] / f32(params.kernelSize * params.kernelSize);';
  // avg never reads the input; the phony read keeps its binding in the layout (bindings are fixed).
  const keepInput = op === 'avg' ? '\n  _ = input0[0];' : '';
  const source = `${POOL_PARAMS}
@group(0) @binding(0) var<storage, read> input0: array<f32>;
@group(0) @binding(1) var<storage, read> gradient: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('e')}
  let positions = params.outHeight * params.outWidth;
  let x = e % params.width;
  let y = (e / params.width) % params.height;
  let plane = e / (params.width * params.height);${keepInput}
  var total = 0.0;
  for (var ky = 0u; ky < params.kernelSize; ky++) {
    if (y < ky || (y - ky) % params.stride != 0u) { continue; }
    let oy = (y - ky) / params.stride;
    if (oy >= params.outHeight) { continue; }
    for (var kx = 0u; kx < params.kernelSize; kx++) {
      if (x < kx || (x - kx) % params.stride != 0u) { continue; }
      let ox = (x - kx) / params.stride;
      if (ox >= params.outWidth) { continue; }
      ${contribution}
    }
  }
  output[e] = total;
}
`;
  return { name: `pool_backward_${op}`, source };
}

const INDEX_ROWS_PARAMS = 'struct Params { count: u32, lookups: u32, dimension: u32, rows: u32 }';

/**
 * table (rows, dimension), indices (lookups), f32 row numbers -> output (lookups, dimension):
 * one element per invocation (params.count = lookups * dimension); zero for a number that is no
 * row.
 */
export function wgslIndexRows(): WgslKernel {
  const source = `${INDEX_ROWS_PARAMS}
@group(0) @binding(0) var<storage, read> table: array<f32>;
@group(0) @binding(1) var<storage, read> indices: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('e')}
  let value = indices[e / params.dimension];
  var result = 0.0;
  if (value >= 0.0 && value < f32(params.rows) && fract(value) == 0.0) {
    result = table[u32(value) * params.dimension + e % params.dimension];
  }
  output[e] = result;
}
`;
  return { name: 'index_rows', source };
}

/**
 * indexRows' gradient: output (rows, dimension), one element per invocation (params.count =
 * rows * dimension), the f32 sum in order of gradient[positions[p]] for p from starts[r] up to
 * starts[r + 1] (and lookups). No atomics: each output element has one writer.
 */
export function wgslIndexRowsBackward(): WgslKernel {
  const source = `${INDEX_ROWS_PARAMS}
@group(0) @binding(0) var<storage, read> gradient: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<f32>;
@group(0) @binding(2) var<storage, read> starts: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
${HEADER_INDEX}
${ENTRY} {
  ${elementIndex('e')}
  let row = e / params.dimension;
  let d = e % params.dimension;
  let end = u32(clamp(starts[row + 1u], 0.0, f32(params.lookups)));
  var total = 0.0;
  for (var p = u32(clamp(starts[row], 0.0, f32(params.lookups))); p < end; p++) {
    let position = positions[p];
    if (position >= 0.0 && position < f32(params.lookups)) {
      total += gradient[u32(position) * params.dimension + d];
    }
  }
  output[e] = total;
}
`;
  return { name: 'index_rows_backward', source };
}
