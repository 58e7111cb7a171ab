/**
 * Op cases shared by the backend tests: each builds fresh random inputs from a seed and runs
 * one op on any device, so a GPU result can be compared with the cpu reference on the same
 * inputs within the tolerance stated in src/gpu/tolerance.ts.
 */
import { expect } from 'vitest';
import { Random } from '../../src/actor/Random.js';
import type {
  AdamStepParameters,
  Conv2dShape,
  Device,
  DeviceBuffer,
  Tolerance,
} from '../../src/gpu/index.js';
import {
  BINARY_OP_NAMES,
  firstMismatch,
  REDUCE_OP_NAMES,
  TOLERANCES,
  UNARY_OP_NAMES,
} from '../../src/gpu/index.js';
import { convGeometry } from '../../src/gpu/internal/checks.js';

export interface OpCase {
  readonly name: string;
  readonly tolerance: Tolerance;
  readonly inputs: readonly Float32Array[];
  readonly outputLength: number;
  run(device: Device, inputs: DeviceBuffer[], output: DeviceBuffer): void;
}

export function uniform(random: Random, count: number, low: number, high: number): Float32Array {
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = low + (high - low) * random.next();
  return values;
}

/** Input ranges where each op is defined and well-conditioned (log and sqrt positive, pow base > 0). */
const UNARY_RANGES: Record<string, [number, number]> = { log: [0.05, 5], sqrt: [0, 5], exp: [-5, 5] };

export function unaryCases(random: Random, count: number): OpCase[] {
  return UNARY_OP_NAMES.map((op) => {
    const [low, high] = UNARY_RANGES[op] ?? [-6, 6];
    return {
      name: `unary ${op} (${count})`,
      tolerance: TOLERANCES.f32.elementwise,
      inputs: [uniform(random, count, low, high)],
      outputLength: count,
      run: (device, [input], output) => device.unary(op, input, output),
    };
  });
}

export function binaryCases(random: Random, rows: number, columns: number): OpCase[] {
  const count = rows * columns;
  return BINARY_OP_NAMES.flatMap((op): OpCase[] => {
    const a = () => (op === 'pow' ? uniform(random, count, 0.1, 3) : uniform(random, count, -3, 3));
    const b = (length: number) =>
      op === 'pow'
        ? uniform(random, length, -2, 2)
        : op === 'div'
          ? uniform(random, length, 0.5, 3)
          : uniform(random, length, -3, 3);
    const tolerance = TOLERANCES.f32.elementwise;
    return [
      {
        name: `binary ${op} same (${count})`,
        tolerance,
        inputs: [a(), b(count)],
        outputLength: count,
        run: (d, [x, y], o) => d.binary(op, x, y, o),
      },
      {
        name: `binary ${op} row broadcast (${rows}x${columns})`,
        tolerance,
        inputs: [a(), b(columns)],
        outputLength: count,
        run: (d, [x, y], o) => d.binary(op, x, y, o, { shapeA: [rows, columns], shapeB: [columns] }),
      },
      {
        name: `binary ${op} scalar broadcast (${count})`,
        tolerance,
        inputs: [a(), b(1)],
        outputLength: count,
        run: (d, [x, y], o) => d.binary(op, x, y, o, { shapeA: [count], shapeB: [1] }),
      },
      {
        name: `binary ${op} column broadcast (${rows}x${columns})`,
        tolerance,
        inputs: [b(rows), a()],
        outputLength: count,
        run: (d, [x, y], o) => d.binary(op, y, x, o, { shapeA: [rows, columns], shapeB: [rows, 1] }),
      },
    ];
  });
}

export function rowCases(random: Random, rows: number, columns: number): OpCase[] {
  const input = () => uniform(random, rows * columns, -4, 4);
  const tolerance = TOLERANCES.f32.reduction;
  const cases: OpCase[] = REDUCE_OP_NAMES.map((op) => ({
    name: `reduce ${op} (${rows}x${columns})`,
    tolerance,
    inputs: [input()],
    outputLength: rows,
    run: (d, [x], o) => d.reduce(op, x, o, rows, columns),
  }));
  cases.push({
    name: `softmax (${rows}x${columns})`,
    tolerance,
    inputs: [input()],
    outputLength: rows * columns,
    run: (d, [x], o) => d.softmax(x, o, rows, columns),
  });
  cases.push({
    name: `layernorm (${rows}x${columns})`,
    tolerance,
    inputs: [input(), uniform(random, columns, 0.5, 1.5), uniform(random, columns, -1, 1)],
    outputLength: rows * columns,
    run: (d, [x, gamma, beta], o) => d.layernorm(x, gamma, beta, o, rows, columns),
  });
  return cases;
}

export function matmulCase(random: Random, m: number, n: number, k: number): OpCase {
  return {
    name: `matmul ${m}x${k} @ ${k}x${n}`,
    tolerance: TOLERANCES.f32.matmul,
    inputs: [uniform(random, m * k, -1, 1), uniform(random, k * n, -1, 1)],
    outputLength: m * n,
    run: (d, [a, b], o) => d.matmul(a, b, o, m, n, k),
  };
}

/**
 * op(a) @ op(b) with BLAS's transpose flags: a stored (k, m) when transposeA, b (n, k) when
 * transposeB. The expected values come from whichever device runs the case (the cpu reference
 * for the backends' tests); `naiveProduct` checks the reference itself.
 */
export function transposedMatmulCase(
  random: Random,
  m: number,
  n: number,
  k: number,
  transposeA: boolean,
  transposeB: boolean,
): OpCase {
  const flags = `${transposeA ? 'aᵀ' : 'a'} @ ${transposeB ? 'bᵀ' : 'b'}`;
  return {
    name: `matmul ${flags} (${m}x${k} @ ${k}x${n})`,
    tolerance: TOLERANCES.f32.matmul,
    inputs: [uniform(random, m * k, -1, 1), uniform(random, k * n, -1, 1)],
    outputLength: m * n,
    run: (d, [a, b], o) => d.matmul(a, b, o, m, n, k, { transposeA, transposeB }),
  };
}

/** Every combination of the transpose flags at shapes that do not fill a 64x64 tile. */
export function transposedMatmulCases(random: Random): OpCase[] {
  return [false, true].flatMap((transposeA) =>
    [false, true].flatMap((transposeB) => [
      transposedMatmulCase(random, 70, 65, 33, transposeA, transposeB),
      transposedMatmulCase(random, 3, 130, 17, transposeA, transposeB),
    ]),
  );
}

/**
 * Batched products in one launch: a with a gap of 5 elements between its matrices (strideA >
 * m k reads each from its own offset), b shared by every product (strideB 0) or one per
 * product, with each combination of the transpose flags.
 */
export function batchedMatmulCases(random: Random): OpCase[] {
  const [count, m, n, k] = [3, 9, 70, 6];
  const strideA = m * k + 5;
  return [false, true].flatMap((transposeA) =>
    [false, true].flatMap((transposeB) =>
      [0, k * n].map((strideB): OpCase => {
        const flags = `${transposeA ? 'aᵀ' : 'a'} @ ${transposeB ? 'bᵀ' : 'b'}`;
        return {
          name: `batched matmul of ${count}, ${flags}, b ${strideB === 0 ? 'shared' : 'per product'}`,
          tolerance: TOLERANCES.f32.matmul,
          inputs: [
            uniform(random, (count - 1) * strideA + m * k, -1, 1),
            uniform(random, (count - 1) * strideB + k * n, -1, 1),
          ],
          outputLength: count * m * n,
          run: (d, [a, b], o) =>
            d.matmul(a, b, o, m, n, k, { transposeA, transposeB, batch: { count, strideA, strideB } }),
        };
      }),
    ),
  );
}

/**
 * Embedding lookups and their gradient: rows by number, with repeats, a number past the table
 * and a negative one (rows of zeros); the gradient of 9 lookups grouped by row (counting sort),
 * with a row no lookup reads.
 */
export function indexRowsCases(random: Random): OpCase[] {
  const [rows, dimension] = [5, 7];
  const lookups = [3, 0, 3, 4, 1, 3, 0, 4, 1];
  const count = lookups.length;
  const starts = new Float32Array(rows + 1);
  for (const row of lookups) starts[row + 1]++;
  for (let r = 0; r < rows; r++) starts[r + 1] += starts[r];
  const positions = new Float32Array(count);
  const next = starts.slice(0, rows);
  lookups.forEach((row, position) => {
    positions[next[row]++] = position;
  });
  const shape = { count, dimension, rows };
  return [
    {
      name: 'indexRows: rows by number, zeros for -1 and 5',
      tolerance: TOLERANCES.f32.elementwise,
      inputs: [uniform(random, rows * dimension, -1, 1), Float32Array.of(...lookups.slice(0, 7), -1, 5)],
      outputLength: count * dimension,
      run: (d, [table, indices], o) => d.indexRows(table, indices, o, shape),
    },
    {
      name: 'indexRowsBackward: lookups grouped by row, row 2 read by none',
      tolerance: TOLERANCES.f32.reduction,
      inputs: [uniform(random, count * dimension, -1, 1), positions, starts],
      outputLength: rows * dimension,
      run: (d, [gradient, at, from], o) => d.indexRowsBackward(gradient, at, from, o, shape),
    },
  ];
}

export function conv2dCase(random: Random, withBias: boolean): OpCase {
  const shape = {
    batch: 2,
    inChannels: 3,
    height: 7,
    width: 6,
    outChannels: 4,
    kernelHeight: 3,
    kernelWidth: 2,
    stride: [2, 1] as const,
    padding: 1,
  };
  const outHeight = Math.floor((7 + 2 - 3) / 2) + 1;
  const outWidth = Math.floor((6 + 2 - 2) / 1) + 1;
  const inputs = [uniform(random, 2 * 3 * 7 * 6, -1, 1), uniform(random, 4 * 3 * 3 * 2, -1, 1)];
  if (withBias) inputs.push(uniform(random, 4, -1, 1));
  return {
    name: `conv2d ${withBias ? 'with' : 'without'} bias`,
    tolerance: TOLERANCES.f32.matmul,
    inputs,
    outputLength: 2 * 4 * outHeight * outWidth,
    run: (d, [input, weight, bias], o) => {
      d.conv2d(input, weight, bias, o, shape);
    },
  };
}

/** The conv2d backward kernels: im2col and its adjoint col2im, with stride and padding, then with dilation. */
export function convColumnCases(random: Random): OpCase[] {
  return [
    ...columnCases(random, 'im2col', 'col2im', { stride: [2, 1] as const, padding: 1 }),
    ...columnCases(random, 'im2col dilated', 'col2im dilated', {
      stride: 1,
      padding: [2, 1] as const,
      dilation: [2, 3] as const,
    }),
  ];
}

function columnCases(
  random: Random,
  forward: string,
  adjoint: string,
  steps: Pick<Conv2dShape, 'stride' | 'padding' | 'dilation'>,
): OpCase[] {
  const shape: Conv2dShape = {
    batch: 2,
    inChannels: 3,
    height: 7,
    width: 6,
    outChannels: 4,
    kernelHeight: 3,
    kernelWidth: 2,
    ...steps,
  };
  const g = convGeometry('test', shape);
  const image = 2 * 3 * 7 * 6;
  const columns = 3 * 3 * 2 * g.batch * g.outHeight * g.outWidth;
  return [
    {
      name: forward,
      tolerance: TOLERANCES.f32.elementwise,
      inputs: [uniform(random, image, -1, 1)],
      outputLength: columns,
      run: (d, [input], o) => d.im2col(input, o, shape),
    },
    {
      name: adjoint,
      tolerance: TOLERANCES.f32.reduction,
      inputs: [uniform(random, columns, -1, 1)],
      outputLength: image,
      run: (d, [input], o) => d.col2im(input, o, shape),
    },
  ];
}

/** Pooling forward and backward, max and avg: non-overlapping 2x2 windows and overlapping 3x3 at stride 2. */
export function poolCases(random: Random): OpCase[] {
  const cases: OpCase[] = [];
  for (const op of ['max', 'avg'] as const) {
    for (const [kernelSize, stride, height, width] of [
      [2, 2, 8, 6],
      [3, 2, 7, 9],
    ] as const) {
      const shape = { batch: 2, channels: 3, height, width, kernelSize, stride };
      const image = 2 * 3 * height * width;
      const pooled =
        2 *
        3 *
        (Math.floor((height - kernelSize) / stride) + 1) *
        (Math.floor((width - kernelSize) / stride) + 1);
      const input = uniform(random, image, -1, 1);
      // Ties: equal values in a window send max's gradient to the first of them.
      if (op === 'max') input.fill(0.5, 0, 4);
      cases.push(
        {
          name: `pool2d ${op} ${kernelSize}x${kernelSize} stride ${stride}`,
          tolerance: TOLERANCES.f32.elementwise,
          inputs: [input],
          outputLength: pooled,
          run: (d, [x], o) => d.pool2d(op, x, o, shape),
        },
        {
          name: `pool2dBackward ${op} ${kernelSize}x${kernelSize} stride ${stride}`,
          tolerance: TOLERANCES.f32.reduction,
          inputs: [input, uniform(random, pooled, -1, 1)],
          outputLength: image,
          run: (d, [x, g], o) => d.pool2dBackward(op, x, g, o, shape),
        },
      );
    }
  }
  return cases;
}

/** Uploads the inputs, runs the op, reads the output, releases everything. */
export async function runCase(device: Device, opCase: OpCase): Promise<Float32Array> {
  const inputs = opCase.inputs.map((values) => device.upload(values));
  const output = device.allocate(opCase.outputLength * 4);
  try {
    opCase.run(device, inputs, output);
    return await device.readFloat32(output);
  } finally {
    for (const buffer of [...inputs, output]) buffer.release();
  }
}

/** gather: a 3-d permutation, and a broadcast with stride 0, of one input. */
export function gatherCases(random: Random): OpCase[] {
  const input = uniform(random, 2 * 3 * 5, -3, 3);
  return [
    {
      name: 'gather (2, 3, 5) permuted to (5, 2, 3)',
      tolerance: TOLERANCES.f32.elementwise,
      inputs: [input],
      outputLength: 30,
      run: (device, [x], output) => device.gather(x, output, [5, 2, 3], [1, 15, 5]),
    },
    {
      name: 'gather a row of 5 broadcast to (4, 5)',
      tolerance: TOLERANCES.f32.elementwise,
      inputs: [input],
      outputLength: 20,
      run: (device, [x], output) => device.gather(x, output, [4, 5], [0, 1]),
    },
  ];
}

/** Every op with small shapes (SwiftShader is slow), from one seed. */
export function allCases(seed: number): OpCase[] {
  const random = new Random(seed);
  return [
    // Counts divisible by 4 take the vec4 kernels on WebGPU; the others the scalar ones.
    ...unaryCases(random, 1000),
    ...unaryCases(random, 37),
    ...binaryCases(random, 7, 33),
    ...binaryCases(random, 4, 16),
    ...rowCases(random, 5, 300),
    ...rowCases(random, 3, 1),
    matmulCase(random, 70, 65, 33),
    matmulCase(random, 1, 1, 1),
    matmulCase(random, 128, 64, 96),
    ...transposedMatmulCases(random),
    ...batchedMatmulCases(random),
    ...indexRowsCases(random),
    conv2dCase(random, true),
    conv2dCase(random, false),
    ...gatherCases(random),
    ...convColumnCases(random),
    ...poolCases(random),
  ];
}

/** The scalars of Adam's step t (Adam.ts's coefficients), Adam's or AdamW's weight decay. */
export function adamScalars(
  t: number,
  options: { learningRate: number; weightDecay: number; decoupled: boolean; beta1?: number; beta2?: number },
): AdamStepParameters {
  const beta1 = options.beta1 ?? 0.9;
  const beta2 = options.beta2 ?? 0.999;
  return {
    beta1,
    beta2,
    epsilon: 1e-8,
    stepSize: options.learningRate / (1 - beta1 ** t),
    inverseCorrection2: 1 / Math.sqrt(1 - beta2 ** t),
    coupledDecay: options.decoupled ? 0 : options.weightDecay,
    shrink: options.decoupled ? 1 - options.learningRate * options.weightDecay : 1,
  };
}

/** The options of one fused Adam comparison (ADAM_VARIANTS). */
export interface AdamVariant {
  readonly name: string;
  readonly learningRate: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  readonly beta2?: number;
  readonly amsgrad?: boolean;
}

/**
 * `steps` fused Adam steps of `count` elements on `device`, a fresh seeded gradient per step
 * (the moments start at zero); the final p, m and v, and with amsgrad vMax, concatenated.
 */
export async function runAdamSteps(
  device: Device,
  seed: number,
  count: number,
  steps: number,
  options: AdamVariant,
): Promise<Float32Array> {
  const random = new Random(seed);
  const parameter = device.upload(uniform(random, count, -1, 1));
  const moments = Array.from({ length: options.amsgrad ? 3 : 2 }, () =>
    device.upload(new Float32Array(count)),
  );
  const [firstMoment, secondMoment, maxSecondMoment] = moments;
  const gradients: DeviceBuffer[] = [];
  try {
    for (let t = 1; t <= steps; t++) {
      const gradient = device.upload(uniform(random, count, -2, 2));
      gradients.push(gradient);
      const scalars = adamScalars(t, options);
      device.adamStep(parameter, gradient, firstMoment, secondMoment, scalars, { maxSecondMoment });
    }
    const parts: Float32Array[] = [];
    for (const buffer of [parameter, ...moments])
      parts.push((await device.readFloat32(buffer)).subarray(0, count));
    const out = new Float32Array(parts.length * count);
    for (const [index, values] of parts.entries()) out.set(values, index * count);
    return out;
  } finally {
    for (const buffer of [parameter, ...moments, ...gradients]) buffer.release();
  }
}

/** The weight-decay variants every backend's fused Adam is compared in. */
export const ADAM_VARIANTS = [
  { name: 'Adam', learningRate: 1e-2, weightDecay: 0, decoupled: false },
  { name: 'Adam with coupled weight decay 0.1', learningRate: 1e-2, weightDecay: 0.1, decoupled: false },
  { name: 'AdamW with decoupled weight decay 0.01', learningRate: 1e-2, weightDecay: 0.01, decoupled: true },
  { name: 'AdamW with decoupled weight decay 0.5', learningRate: 3e-2, weightDecay: 0.5, decoupled: true },
  // beta2 0.5: v falls often within five steps, so vMax and v part (with 0.999 they would not)
  {
    name: 'Adam with amsgrad',
    learningRate: 1e-2,
    weightDecay: 0,
    decoupled: false,
    beta2: 0.5,
    amsgrad: true,
  },
  {
    name: 'AdamW with amsgrad and decoupled weight decay 0.1',
    learningRate: 1e-2,
    weightDecay: 0.1,
    decoupled: true,
    beta2: 0.5,
    amsgrad: true,
  },
] as const satisfies readonly AdamVariant[];

/** The SGD-with-momentum variants every backend's fused step is compared in. */
export const SGD_VARIANTS = [
  { name: 'momentum 0.9', learningRate: 0.1, weightDecay: 0, momentum: 0.9, dampening: 0, nesterov: false },
  {
    name: 'momentum 0.8, dampening 0.3, weight decay 0.1',
    learningRate: 0.05,
    weightDecay: 0.1,
    momentum: 0.8,
    dampening: 0.3,
    nesterov: false,
  },
  {
    name: 'Nesterov momentum 0.9, weight decay 0.01',
    learningRate: 0.05,
    weightDecay: 0.01,
    momentum: 0.9,
    dampening: 0,
    nesterov: true,
  },
] as const;

export type SgdVariant = (typeof SGD_VARIANTS)[number];

/**
 * `steps` fused SGD steps of `count` elements on `device`, a fresh seeded gradient per step (the
 * first step starts the buffer, as PyTorch's); the final p and momentum buffer, concatenated.
 */
export async function runSgdSteps(
  device: Device,
  seed: number,
  count: number,
  steps: number,
  variant: SgdVariant,
): Promise<Float32Array> {
  const random = new Random(seed);
  const parameter = device.upload(uniform(random, count, -1, 1));
  // (a stale buffer: the first step must overwrite it, not decay it)
  const buffer = device.upload(uniform(random, count, -1, 1));
  const gradients: DeviceBuffer[] = [];
  try {
    for (let t = 1; t <= steps; t++) {
      const gradient = device.upload(uniform(random, count, -2, 2));
      gradients.push(gradient);
      device.sgdStep(parameter, gradient, buffer, { ...variant, first: t === 1 });
    }
    const out = new Float32Array(2 * count);
    out.set((await device.readFloat32(parameter)).subarray(0, count));
    out.set((await device.readFloat32(buffer)).subarray(0, count), count);
    return out;
  } finally {
    for (const each of [parameter, buffer, ...gradients]) each.release();
  }
}

export const ADAGRAD_VARIANTS = [
  { name: 'plain', learningRate: 0.1, learningRateDecay: 0, weightDecay: 0, initialAccumulator: 0 },
  {
    name: 'rate decay 0.1, weight decay 0.05, initial accumulator 0.5',
    learningRate: 0.05,
    learningRateDecay: 0.1,
    weightDecay: 0.05,
    initialAccumulator: 0.5,
  },
] as const;

export type AdagradVariant = (typeof ADAGRAD_VARIANTS)[number];

/** Adagrad's rate at its step t (Adagrad.ts): lr / (1 + (t - 1) lrDecay). */
export function adagradRate(variant: AdagradVariant, t: number): number {
  return variant.learningRate / (1 + (t - 1) * variant.learningRateDecay);
}

/**
 * `steps` fused Adagrad steps of `count` elements on `device`, a fresh seeded gradient per step;
 * the final p and sum of squares, concatenated.
 */
export async function runAdagradSteps(
  device: Device,
  seed: number,
  count: number,
  steps: number,
  variant: AdagradVariant,
): Promise<Float32Array> {
  const random = new Random(seed);
  const parameter = device.upload(uniform(random, count, -1, 1));
  const sum = device.upload(new Float32Array(count).fill(variant.initialAccumulator));
  const gradients: DeviceBuffer[] = [];
  try {
    for (let t = 1; t <= steps; t++) {
      const gradient = device.upload(uniform(random, count, -2, 2));
      gradients.push(gradient);
      const step = { rate: adagradRate(variant, t), weightDecay: variant.weightDecay, epsilon: 1e-10 };
      device.adagradStep(parameter, gradient, sum, step);
    }
    const out = new Float32Array(2 * count);
    out.set((await device.readFloat32(parameter)).subarray(0, count));
    out.set((await device.readFloat32(sum)).subarray(0, count), count);
    return out;
  } finally {
    for (const each of [parameter, sum, ...gradients]) each.release();
  }
}

export const RMSPROP_VARIANTS = [
  { name: 'alpha 0.99 (the default)', learningRate: 0.01, alpha: 0.99, weightDecay: 0, epsilon: 1e-8 },
  { name: 'alpha 0.5, weight decay 0.1', learningRate: 0.02, alpha: 0.5, weightDecay: 0.1, epsilon: 1e-6 },
] as const;

export type RmspropVariant = (typeof RMSPROP_VARIANTS)[number];

/**
 * `steps` fused plain RMSprop steps of `count` elements on `device`, a fresh seeded gradient per
 * step; the final p and square average, concatenated.
 */
export async function runRmspropSteps(
  device: Device,
  seed: number,
  count: number,
  steps: number,
  variant: RmspropVariant,
): Promise<Float32Array> {
  const random = new Random(seed);
  const parameter = device.upload(uniform(random, count, -1, 1));
  const square = device.upload(new Float32Array(count));
  const gradients: DeviceBuffer[] = [];
  try {
    for (let t = 1; t <= steps; t++) {
      const gradient = device.upload(uniform(random, count, -2, 2));
      gradients.push(gradient);
      device.rmspropStep(parameter, gradient, square, variant);
    }
    const out = new Float32Array(2 * count);
    out.set((await device.readFloat32(parameter)).subarray(0, count));
    out.set((await device.readFloat32(square)).subarray(0, count), count);
    return out;
  } finally {
    for (const each of [parameter, square, ...gradients]) each.release();
  }
}

/**
 * Each variant's fused optimizer steps on `gpu` against the same steps on the cpu reference
 * (`runSteps(device, count, variant)`, seeded), at a vec4 count and a ragged one.
 */
export async function expectSameSteps<V extends { readonly name: string }>(
  cpu: Device,
  gpu: Device,
  variants: readonly V[],
  runSteps: (device: Device, count: number, variant: V) => Promise<Float32Array>,
  tolerance: Tolerance,
): Promise<void> {
  for (const variant of variants)
    for (const count of [1024, 37]) {
      const expected = await runSteps(cpu, count, variant);
      const actual = await runSteps(gpu, count, variant);
      expect(firstMismatch(actual, expected, tolerance), `${variant.name} (${count})`).toBeUndefined();
    }
}
