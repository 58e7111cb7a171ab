/**
 * A device and its kernels. Every op checks its buffers (owner, liveness, dtype, size,
 * aliasing) and sizes at once, then enqueues; results are read with `copyOut` or waited for
 * with `synchronize` (DeviceCore.ts has memory, streams, the watchdog and errors).
 *
 * Shapes in comments: `// x: (rows, columns)`. All kernels compute in f32; matmul also takes
 * bf16 inputs with `precision: 'bf16'` where the backend supports it (CUDA).
 */
import type { DeviceBuffer } from './DeviceBuffer.js';
import { DeviceCore } from './DeviceCore.js';
import { DeviceError } from './errors.js';
import {
  broadcastLayout,
  type Conv2dShape,
  checkCount,
  checkElements,
  checkNoAlias,
  convGeometry,
  type Pool2dShape,
  poolGeometry,
} from './internal/checks.js';
import {
  type AdamStepParameters,
  checkMatmulBatch,
  type IndexRowsShape,
  inputRoles,
  type MatmulBatch,
  type RequestCall,
  type RequestKind,
  type RmspropStepParameters,
  requestSizes,
  type SgdStepParameters,
} from './kernels/catalog.js';
import type { BinaryLayout, BinaryOpName, PoolOpName, ReduceOpName, UnaryOpName } from './kernels/ops.js';
import {
  ADAGRAD_STEP_SCALARS,
  ADAM_STEP_SCALARS,
  type AdagradStepScalars,
  type AdamStepScalars,
  BINARY_OPS,
  MAX_BROADCAST_RANK,
  REDUCE_OPS,
  RMSPROP_STEP_SCALARS,
  type RmspropStepScalars,
  type SgdStepScalars,
  UNARY_OPS,
} from './kernels/ops.js';
import type { LaunchOptions, MatmulPrecision } from './types.js';

export type { DeviceOptions } from './DeviceCore.js';

export interface BinaryOptions extends LaunchOptions {
  /** Shapes of a and b (rank <= 4) for NumPy broadcasting; same-length inputs when absent. */
  readonly shapeA?: readonly number[];
  readonly shapeB?: readonly number[];
}

/** The batch fields of a matmul launch of one product. */
const ONE_PRODUCT = { batch: 1, strideA: 0, strideB: 0 } as const;

export interface MatmulOptions extends LaunchOptions {
  /** f32 by default; tf32 and bf16 (bf16 inputs) on CUDA. */
  readonly precision?: MatmulPrecision;
  /** a is stored (k, m) and read transposed (BLAS's transa); false by default. */
  readonly transposeA?: boolean;
  /** b is stored (n, k) and read transposed (BLAS's transb); false by default. */
  readonly transposeB?: boolean;
  /**
   * Several products in one launch (BLAS's strided batched gemm): product i reads a from
   * element i * strideA, b from i * strideB (0 shares one matrix) and writes output from
   * i * m * n. One product by default.
   */
  readonly batch?: MatmulBatch;
}

/**
 * One kernel launch as a plain value: what a kernel actor receives as a message and hands to
 * `Device.launch`. Each kind is a request kind of the catalog (`kernels/catalog.ts`) and mirrors
 * the op method of the same name.
 */
export type LaunchRequest<K extends RequestKind = RequestKind> = {
  [P in K]: RequestCall<DeviceBuffer, P> & { readonly output: DeviceBuffer };
}[K];

/** `Device.launch`'s dispatch: one entry per request kind of the catalog. */
const LAUNCHERS: {
  readonly [K in RequestKind]: (device: Device, request: LaunchRequest<K>, options: LaunchOptions) => void;
} = {
  unary: (device, r, options) => device.unary(r.op, r.input, r.output, { ...options, count: r.count }),
  binary: (device, r, options) =>
    device.binary(r.op, r.a, r.b, r.output, { ...options, shapeA: r.shapeA, shapeB: r.shapeB }),
  gather: (device, r, options) => device.gather(r.input, r.output, r.shape, r.strides, options),
  reduce: (device, r, options) => device.reduce(r.op, r.input, r.output, r.rows, r.columns, options),
  softmax: (device, r, options) => device.softmax(r.input, r.output, r.rows, r.columns, options),
  layernorm: (device, r, options) =>
    device.layernorm(r.input, r.gamma, r.beta, r.output, r.rows, r.columns, {
      ...options,
      epsilon: r.epsilon,
    }),
  matmul: (device, r, options) =>
    device.matmul(r.a, r.b, r.output, r.m, r.n, r.k, {
      ...options,
      precision: r.precision,
      transposeA: r.transposeA,
      transposeB: r.transposeB,
      batch: r.batch,
    }),
  conv2d: (device, r, options) => {
    device.conv2d(r.input, r.weight, r.bias, r.output, r.shape, options);
  },
  im2col: (device, r, options) => device.im2col(r.input, r.output, r.shape, options),
  col2im: (device, r, options) => device.col2im(r.columns, r.output, r.shape, options),
  pool2d: (device, r, options) => device.pool2d(r.op, r.input, r.output, r.shape, options),
  pool2dBackward: (device, r, options) =>
    device.pool2dBackward(r.op, r.input, r.gradient, r.output, r.shape, options),
  indexRows: (device, r, options) => device.indexRows(r.table, r.indices, r.output, r, options),
  indexRowsBackward: (device, r, options) =>
    device.indexRowsBackward(r.gradient, r.positions, r.starts, r.output, r, options),
};

export class Device extends DeviceCore {
  /** Enqueues any op described as a value (see `LaunchRequest`); the same checks as the op methods. */
  launch(request: LaunchRequest, options: LaunchOptions = {}): void {
    const kind = (request as { kind: unknown }).kind;
    if (typeof kind !== 'string' || !Object.hasOwn(LAUNCHERS, kind))
      throw new DeviceError(this.id, 'launch', `unknown launch kind '${String(kind)}'`);
    const launcher = LAUNCHERS[kind as RequestKind] as (
      device: Device,
      request: LaunchRequest,
      options: LaunchOptions,
    ) => void;
    launcher(this, request, options);
  }

  /** output = op(input), elementwise over `count` elements (output's length by default). */
  unary(
    op: UnaryOpName,
    input: DeviceBuffer,
    output: DeviceBuffer,
    options: LaunchOptions & { count?: number } = {},
  ): void {
    const operation = `unary.${op}`;
    if (!Object.hasOwn(UNARY_OPS, op))
      throw new DeviceError(this.id, 'unary', `unknown unary op '${String(op)}'`);
    this.checkBuffer(operation, input, 'input');
    this.checkBuffer(operation, output, 'output');
    const count = options.count ?? output.length;
    checkCount(this.id, operation, 'count', count);
    checkElements(this.id, operation, 'input', input, count);
    checkElements(this.id, operation, 'output', output, count);
    checkNoAlias(this.id, operation, output, [input]);
    this.enqueue({ kind: 'unary', op, input: input.native, output: output.native, count }, options);
  }

  /**
   * output = a op b, elementwise. Without shapes, a and b have output's length; with
   * `shapeA`/`shapeB` they broadcast NumPy-style (scalar, row, column, any rank <= 4).
   */
  binary(
    op: BinaryOpName,
    a: DeviceBuffer,
    b: DeviceBuffer,
    output: DeviceBuffer,
    options: BinaryOptions = {},
  ): void {
    const operation = `binary.${op}`;
    if (!Object.hasOwn(BINARY_OPS, op))
      throw new DeviceError(this.id, 'binary', `unknown binary op '${String(op)}'`);
    for (const [role, buffer] of [
      ['a', a],
      ['b', b],
      ['output', output],
    ] as const)
      this.checkBuffer(operation, buffer, role);
    checkNoAlias(this.id, operation, output, [a, b]);
    let layout: BinaryLayout = { kind: 'same' };
    let count = output.length;
    if (options.shapeA !== undefined || options.shapeB !== undefined) {
      const broadcast = broadcastLayout(
        this.id,
        operation,
        options.shapeA ?? [a.length],
        options.shapeB ?? [b.length],
      );
      layout = broadcast.layout;
      count = broadcast.count;
      checkElements(
        this.id,
        operation,
        'a',
        a,
        (options.shapeA ?? [a.length]).reduce((x, y) => x * y, 1),
      );
      checkElements(
        this.id,
        operation,
        'b',
        b,
        (options.shapeB ?? [b.length]).reduce((x, y) => x * y, 1),
      );
    } else {
      checkElements(this.id, operation, 'a', a, count);
      checkElements(this.id, operation, 'b', b, count);
    }
    checkCount(this.id, operation, 'count', count);
    checkElements(this.id, operation, 'output', output, count);
    this.enqueue(
      { kind: 'binary', op, a: a.native, b: b.native, output: output.native, count, layout },
      options,
    );
  }

  /**
   * output = input read through `strides` over `shape` (rank <= 4), as one contiguous copy:
   * transposes and permutations (strides reordered) and broadcasts (stride 0). Every index
   * `sum((shape[d] - 1) * strides[d])` must lie inside input. Runs the strided binary kernel
   * with the op `left` (x itself), input bound as both operands.
   */
  gather(
    input: DeviceBuffer,
    output: DeviceBuffer,
    shape: readonly number[],
    strides: readonly number[],
    options: LaunchOptions = {},
  ): void {
    const operation = 'gather';
    this.checkBuffer(operation, input, 'input');
    this.checkBuffer(operation, output, 'output');
    checkNoAlias(this.id, operation, output, [input]);
    const sizes = requestSizes(this.id, { kind: 'gather', input, shape, strides }, new Map());
    const count = sizes.outputLength;
    const padded = broadcastLayout(this.id, operation, shape, [1]).shape;
    checkElements(this.id, operation, 'input', input, sizes.inputs.get('input') ?? 0);
    checkElements(this.id, operation, 'output', output, count);
    const layout: BinaryLayout = {
      kind: 'broadcast',
      shape: padded,
      stridesA: [...new Array<number>(MAX_BROADCAST_RANK - strides.length).fill(0), ...strides],
      stridesB: new Array<number>(MAX_BROADCAST_RANK).fill(0),
    };
    const native = input.native;
    this.enqueue(
      { kind: 'binary', op: 'left', a: native, b: native, output: output.native, count, layout },
      options,
    );
  }

  // input: (rows, columns) -> output: (rows)
  reduce(
    op: ReduceOpName,
    input: DeviceBuffer,
    output: DeviceBuffer,
    rows: number,
    columns: number,
    options: LaunchOptions = {},
  ): void {
    const operation = `reduce.${op}`;
    if (!Object.hasOwn(REDUCE_OPS, op))
      throw new DeviceError(this.id, 'reduce', `unknown reduction '${String(op)}'`);
    this.checkRows(operation, input, output, rows, columns, rows);
    this.enqueue({ kind: 'reduce', op, input: input.native, output: output.native, rows, columns }, options);
  }

  // input, output: (rows, columns); softmax of each row, max-subtracted for stability
  softmax(
    input: DeviceBuffer,
    output: DeviceBuffer,
    rows: number,
    columns: number,
    options: LaunchOptions = {},
  ): void {
    this.checkRows('softmax', input, output, rows, columns, rows * columns);
    this.enqueue({ kind: 'softmax', input: input.native, output: output.native, rows, columns }, options);
  }

  // input, output: (rows, columns); gamma, beta: (columns)
  layernorm(
    input: DeviceBuffer,
    gamma: DeviceBuffer,
    beta: DeviceBuffer,
    output: DeviceBuffer,
    rows: number,
    columns: number,
    options: LaunchOptions & { epsilon?: number } = {},
  ): void {
    const epsilon = options.epsilon ?? 1e-5;
    this.checkRows('layernorm', input, output, rows, columns, rows * columns);
    for (const [role, buffer] of [
      ['gamma', gamma],
      ['beta', beta],
    ] as const) {
      this.checkBuffer('layernorm', buffer, role);
      checkElements(this.id, 'layernorm', role, buffer, columns);
    }
    checkNoAlias(this.id, 'layernorm', output, [input, gamma, beta]);
    if (!(epsilon > 0) || !Number.isFinite(epsilon))
      throw new DeviceError(this.id, 'layernorm', `epsilon must be > 0, got ${epsilon}`);
    const launch = {
      input: input.native,
      gamma: gamma.native,
      beta: beta.native,
      output: output.native,
      rows,
      columns,
      epsilon,
    };
    this.enqueue({ kind: 'layernorm', ...launch }, options);
  }

  /**
   * output (m, n) = op(a) (m, k) @ op(b) (k, n), row-major. a is stored (m, k), or (k, m) with
   * `transposeA`; b (k, n), or (n, k) with `transposeB` (BLAS's flags: no copy is made). With
   * `batch`, `batch.count` such products in one launch (`MatmulOptions.batch`).
   */
  matmul(
    a: DeviceBuffer,
    b: DeviceBuffer,
    output: DeviceBuffer,
    m: number,
    n: number,
    k: number,
    options: MatmulOptions = {},
  ): void {
    const precision = options.precision ?? 'f32';
    if (!this.backend.matmulPrecisions.includes(precision)) {
      throw new DeviceError(
        this.id,
        'matmul',
        `precision '${precision}' is not supported here (${this.backend.matmulPrecisions.join(', ')})`,
      );
    }
    for (const [name, value] of [
      ['m', m],
      ['n', n],
      ['k', k],
    ] as const)
      checkCount(this.id, 'matmul', name, value);
    for (const [role, buffer] of [
      ['a', a],
      ['b', b],
      ['output', output],
    ] as const)
      this.checkBuffer('matmul', buffer, role);
    const inputDType = precision === 'bf16' ? 'bf16' : 'f32';
    const { count, strideA, strideB } = checkMatmulBatch(this.id, options.batch);
    checkCount(this.id, 'matmul', 'batch.count * m * n', count * m * n);
    checkElements(this.id, 'matmul', 'a', a, (count - 1) * strideA + m * k, [inputDType]);
    checkElements(this.id, 'matmul', 'b', b, (count - 1) * strideB + k * n, [inputDType]);
    checkElements(
      this.id,
      'matmul',
      'output',
      output,
      count * m * n,
      precision === 'bf16' ? ['f32', 'bf16'] : ['f32'],
    );
    checkNoAlias(this.id, 'matmul', output, [a, b]);
    const transposeA = options.transposeA ?? false;
    const transposeB = options.transposeB ?? false;
    for (const [name, flag] of [
      ['transposeA', transposeA],
      ['transposeB', transposeB],
    ] as const) {
      if (typeof flag !== 'boolean')
        throw new DeviceError(this.id, 'matmul', `${name} must be a boolean, got ${String(flag)}`);
    }
    const launch = {
      a: a.native,
      b: b.native,
      output: output.native,
      m,
      n,
      k,
      precision,
      outputDType: output.dtype,
      transposeA,
      transposeB,
      batch: count,
      strideA,
      strideB,
    };
    this.enqueue({ kind: 'matmul', ...launch }, options);
  }

  /**
   * 2-d convolution as im2col + matmul (+ bias): input (N, C, H, W), weight (O, C, KH, KW),
   * bias (O) or undefined, output (N, O, OH, OW). Uses C*KH*KW * N*OH*OW + O * N*OH*OW scratch
   * floats from the pool, released once the stream has run the launch.
   */
  conv2d(
    input: DeviceBuffer,
    weight: DeviceBuffer,
    bias: DeviceBuffer | undefined,
    output: DeviceBuffer,
    shape: Conv2dShape,
    options: LaunchOptions = {},
  ): { outHeight: number; outWidth: number } {
    const g = convGeometry(this.id, shape);
    if (g.groups !== 1) {
      throw new DeviceError(
        this.id,
        'conv2d',
        `groups must be 1 on a device, got ${g.groups}: run grouped convolutions on the host (device 'cpu')`,
      );
    }
    const patch = g.inChannels * g.kernelHeight * g.kernelWidth;
    const positions = g.batch * g.outHeight * g.outWidth;
    const buffers: [string, DeviceBuffer | undefined, number][] = [
      ['input', input, g.batch * g.inChannels * g.height * g.width],
      ['weight', weight, g.outChannels * patch],
      ['bias', bias, g.outChannels],
      ['output', output, g.outChannels * positions],
    ];
    for (const [role, buffer, elements] of buffers) {
      if (buffer === undefined) continue;
      this.checkBuffer('conv2d', buffer, role);
      checkElements(this.id, 'conv2d', role, buffer, elements);
    }
    checkNoAlias(this.id, 'conv2d', output, bias === undefined ? [input, weight] : [input, weight, bias]);
    checkCount(this.id, 'conv2d', 'columns', patch * positions);
    const columns = this.allocate(patch * positions * 4);
    const product = this.tryAllocate(g.outChannels * positions * 4, [columns]);
    try {
      this.enqueue({ kind: 'im2col', input: input.native, output: columns.native, geometry: g }, options);
      this.enqueue(
        {
          kind: 'matmul',
          a: weight.native,
          b: columns.native,
          output: product.native,
          m: g.outChannels,
          n: positions,
          k: patch,
          precision: 'f32',
          outputDType: 'f32',
          transposeA: false,
          transposeB: false,
          ...ONE_PRODUCT,
        },
        options,
      );
      this.enqueue(
        {
          kind: 'convOutput',
          product: product.native,
          bias: bias?.native,
          output: output.native,
          geometry: g,
        },
        options,
      );
    } finally {
      this.releaseAfter(options.stream, [columns, product]);
    }
    return { outHeight: g.outHeight, outWidth: g.outWidth };
  }

  /** input (N, C, H, W) -> output, the columns (C * KH * KW, N * OH * OW) conv2d multiplies. */
  im2col(input: DeviceBuffer, output: DeviceBuffer, shape: Conv2dShape, options: LaunchOptions = {}): void {
    this.checkSized({ kind: 'im2col', input, shape }, output);
    const geometry = convGeometry(this.id, shape);
    this.enqueue({ kind: 'im2col', input: input.native, output: output.native, geometry }, options);
  }

  /**
   * columns (C * KH * KW, N * OH * OW) -> output (N, C, H, W): each image element sums the column
   * entries im2col copied from it (the input gradient of conv2d from the columns' gradient).
   */
  col2im(columns: DeviceBuffer, output: DeviceBuffer, shape: Conv2dShape, options: LaunchOptions = {}): void {
    this.checkSized({ kind: 'col2im', columns, shape }, output);
    const geometry = convGeometry(this.id, shape);
    this.enqueue({ kind: 'col2im', columns: columns.native, output: output.native, geometry }, options);
  }

  /** input (N, C, H, W) -> output (N, C, OH, OW): each window's first maximum (max) or mean (avg); no padding. */
  pool2d(
    op: PoolOpName,
    input: DeviceBuffer,
    output: DeviceBuffer,
    shape: Pool2dShape,
    options: LaunchOptions = {},
  ): void {
    this.checkSized({ kind: 'pool2d', op, input, shape }, output);
    const geometry = poolGeometry(this.id, `pool2d.${op}`, shape);
    this.enqueue({ kind: 'pool2d', op, input: input.native, output: output.native, geometry }, options);
  }

  /**
   * input (N, C, H, W), gradient (N, C, OH, OW) -> output (N, C, H, W): the gradient of `pool`
   * with respect to its input (max: to each window's first maximum; avg: spread evenly).
   */
  pool2dBackward(
    op: PoolOpName,
    input: DeviceBuffer,
    gradient: DeviceBuffer,
    output: DeviceBuffer,
    shape: Pool2dShape,
    options: LaunchOptions = {},
  ): void {
    this.checkSized({ kind: 'pool2dBackward', op, input, gradient, shape }, output);
    const geometry = poolGeometry(this.id, `pool2dBackward.${op}`, shape);
    const launch = {
      kind: 'pool2dBackward' as const,
      op,
      input: input.native,
      gradient: gradient.native,
      output: output.native,
      geometry,
    };
    this.enqueue(launch, options);
  }

  /**
   * output (count, dimension) = the rows of table (rows, dimension) that `indices` (count, row
   * numbers as f32) name, in order: an embedding lookup. A number that is no row (negative,
   * past the table, not an integer) gives a row of zeros. count and rows are at most 2^24.
   */
  indexRows(
    table: DeviceBuffer,
    indices: DeviceBuffer,
    output: DeviceBuffer,
    shape: IndexRowsShape,
    options: LaunchOptions = {},
  ): void {
    const { count, dimension, rows } = shape;
    this.checkSized({ kind: 'indexRows', table, indices, count, dimension, rows }, output);
    const launch = { table: table.native, indices: indices.native, output: output.native };
    this.enqueue({ kind: 'indexRows', ...launch, count, dimension, rows }, options);
  }

  /**
   * The gradient of `indexRows` with respect to its table: output (rows, dimension), row r the
   * sum (f32, in order) of the gradient rows (count, dimension) at positions[p] for p from
   * starts[r] up to starts[r + 1]: the lookups grouped by the row they read (counting sort on
   * the host), so every output element has one writer and the sums are deterministic.
   */
  indexRowsBackward(
    gradient: DeviceBuffer,
    positions: DeviceBuffer,
    starts: DeviceBuffer,
    output: DeviceBuffer,
    shape: IndexRowsShape,
    options: LaunchOptions = {},
  ): void {
    const { count, dimension, rows } = shape;
    this.checkSized(
      { kind: 'indexRowsBackward', gradient, positions, starts, count, dimension, rows },
      output,
    );
    const launch = {
      gradient: gradient.native,
      positions: positions.native,
      starts: starts.native,
      output: output.native,
    };
    this.enqueue({ kind: 'indexRowsBackward', ...launch, count, dimension, rows }, options);
  }

  /**
   * One Adam/AdamW step of every element of `parameter`, in one launch, in place: reads
   * `gradient`, updates `firstMoment` and `secondMoment`, then `parameter` (formula in the
   * catalog's `adamStep`). All four are f32 buffers of this device holding at least `count`
   * elements (parameter's length by default), and no two are the same buffer. With
   * `maxSecondMoment` (a fifth such buffer) the step is amsgrad's (catalog `amsgradStep`): it
   * keeps the largest second moment so far there and divides by its root.
   */
  adamStep(
    parameter: DeviceBuffer,
    gradient: DeviceBuffer,
    firstMoment: DeviceBuffer,
    secondMoment: DeviceBuffer,
    step: AdamStepParameters,
    options: LaunchOptions & { count?: number; maxSecondMoment?: DeviceBuffer } = {},
  ): void {
    const largest = options.maxSecondMoment;
    const operation = largest === undefined ? 'adamStep' : 'amsgradStep';
    const buffers: (readonly [string, DeviceBuffer])[] = [
      ['parameter', parameter],
      ['gradient', gradient],
      ['firstMoment', firstMoment],
      ['secondMoment', secondMoment],
    ];
    if (largest !== undefined) buffers.push(['maxSecondMoment', largest]);
    const count = this.checkStepBuffers(operation, buffers, options.count ?? parameter.length);
    const scalars: AdamStepScalars = {
      ...step,
      oneMinusBeta1: 1 - step.beta1,
      oneMinusBeta2: 1 - step.beta2,
    };
    checkAdamStep(this.id, operation, scalars);
    const launch = {
      output: parameter.native,
      gradient: gradient.native,
      firstMoment: firstMoment.native,
      secondMoment: secondMoment.native,
      count,
      ...scalars,
    };
    this.enqueue(
      largest === undefined
        ? { kind: 'adamStep', ...launch }
        : { kind: 'amsgradStep', ...launch, maxSecondMoment: largest.native },
      options,
    );
  }

  /**
   * One SGD step with momentum of every element of `parameter`, in one launch, in place: reads
   * `gradient`, updates `momentumBuffer`, then `parameter` (PyTorch's SGD, formula in the
   * catalog's `sgdStep`; `first` says the buffer starts as the gradient). All three are distinct
   * f32 buffers of this device holding at least `count` elements (parameter's length by default).
   */
  sgdStep(
    parameter: DeviceBuffer,
    gradient: DeviceBuffer,
    momentumBuffer: DeviceBuffer,
    step: SgdStepParameters,
    options: LaunchOptions & { count?: number } = {},
  ): void {
    const operation = 'sgdStep';
    const buffers = [
      ['parameter', parameter],
      ['gradient', gradient],
      ['momentumBuffer', momentumBuffer],
    ] as const;
    const count = this.checkStepBuffers(operation, buffers, options.count ?? parameter.length);
    checkFinite(this.id, operation, step, ['learningRate', 'weightDecay', 'momentum', 'dampening']);
    if (!(step.momentum > 0))
      throw new DeviceError(
        this.id,
        operation,
        `momentum must be > 0, got ${step.momentum} (without it there is no buffer)`,
      );
    const scalars: SgdStepScalars = {
      learningRate: step.learningRate,
      weightDecay: step.weightDecay,
      momentum: step.momentum,
      oneMinusDampening: 1 - step.dampening,
      first: step.first ? 1 : 0,
      nesterov: step.nesterov ? 1 : 0,
    };
    const launch = {
      output: parameter.native,
      gradient: gradient.native,
      momentumBuffer: momentumBuffer.native,
    };
    this.enqueue({ kind: 'sgdStep', ...launch, count, ...scalars }, options);
  }

  /**
   * One Adagrad step of every element of `parameter`, in one launch, in place: reads `gradient`,
   * updates `sumOfSquares`, then `parameter` (PyTorch's Adagrad, formula in the catalog's
   * `adagradStep`; `rate` is the step's decayed learning rate). All three are distinct f32
   * buffers of this device holding at least `count` elements (parameter's length by default).
   */
  adagradStep(
    parameter: DeviceBuffer,
    gradient: DeviceBuffer,
    sumOfSquares: DeviceBuffer,
    step: AdagradStepScalars,
    options: LaunchOptions & { count?: number } = {},
  ): void {
    const operation = 'adagradStep';
    const buffers = [
      ['parameter', parameter],
      ['gradient', gradient],
      ['sumOfSquares', sumOfSquares],
    ] as const;
    const count = this.checkStepBuffers(operation, buffers, options.count ?? parameter.length);
    checkFinite(this.id, operation, step, ADAGRAD_STEP_SCALARS);
    const { rate, weightDecay, epsilon } = step;
    const launch = { output: parameter.native, gradient: gradient.native, sumOfSquares: sumOfSquares.native };
    this.enqueue({ kind: 'adagradStep', ...launch, count, rate, weightDecay, epsilon }, options);
  }

  /**
   * One plain RMSprop step (no momentum, not centered) of every element of `parameter`, in one
   * launch, in place: reads `gradient`, updates `squareAverage`, then `parameter` (PyTorch's
   * RMSprop, formula in the catalog's `rmspropStep`). All three are distinct f32 buffers of this
   * device holding at least `count` elements (parameter's length by default).
   */
  rmspropStep(
    parameter: DeviceBuffer,
    gradient: DeviceBuffer,
    squareAverage: DeviceBuffer,
    step: RmspropStepParameters,
    options: LaunchOptions & { count?: number } = {},
  ): void {
    const operation = 'rmspropStep';
    const buffers = [
      ['parameter', parameter],
      ['gradient', gradient],
      ['squareAverage', squareAverage],
    ] as const;
    const count = this.checkStepBuffers(operation, buffers, options.count ?? parameter.length);
    const { learningRate, alpha, weightDecay, epsilon } = step;
    const scalars: RmspropStepScalars = {
      learningRate,
      alpha,
      oneMinusAlpha: 1 - alpha,
      weightDecay,
      epsilon,
    };
    // (alpha is checked before the 1 - alpha derived from it)
    checkFinite(this.id, operation, scalars, RMSPROP_STEP_SCALARS);
    const launch = {
      output: parameter.native,
      gradient: gradient.native,
      squareAverage: squareAverage.native,
    };
    this.enqueue({ kind: 'rmspropStep', ...launch, count, ...scalars }, options);
  }

  /**
   * The checks of an optimizer step's buffers: each a live f32 buffer of this device holding
   * `count` elements, no two the same; returns the checked count.
   */
  private checkStepBuffers(
    operation: string,
    buffers: readonly (readonly [string, DeviceBuffer])[],
    count: number,
  ): number {
    for (const [role, buffer] of buffers) this.checkBuffer(operation, buffer, role);
    checkCount(this.id, operation, 'count', count);
    for (const [role, buffer] of buffers) checkElements(this.id, operation, role, buffer, count);
    for (let i = 0; i < buffers.length; i++)
      for (let j = i + 1; j < buffers.length; j++)
        if (buffers[i][1] === buffers[j][1])
          throw new DeviceError(
            this.id,
            operation,
            `${buffers[i][0]} and ${buffers[j][0]} are the same buffer; each needs its own`,
          );
    return count;
  }

  /**
   * The catalog's checks of a request: every input role a live f32 buffer of this device holding
   * the elements the shape check asks for, the output too, and no input aliasing the output.
   */
  private checkSized(request: RequestCall<DeviceBuffer>, output: DeviceBuffer): void {
    const kind = request.kind;
    const record = request as unknown as Record<string, DeviceBuffer | undefined>;
    const present = inputRoles(kind).flatMap((role) => {
      const buffer = record[role];
      return buffer === undefined ? [] : [[role, buffer] as const];
    });
    for (const [role, buffer] of present) this.checkBuffer(kind, buffer, role);
    this.checkBuffer(kind, output, 'output');
    const sizes = requestSizes(
      this.id,
      request,
      new Map(present.map(([role, buffer]) => [role, buffer.length])),
    );
    for (const [role, buffer] of present)
      checkElements(this.id, kind, role, buffer, sizes.inputs.get(role) ?? 0);
    checkElements(this.id, kind, 'output', output, sizes.outputLength);
    checkNoAlias(
      this.id,
      kind,
      output,
      present.map(([, buffer]) => buffer),
    );
  }

  private tryAllocate(byteLength: number, releaseOnFailure: DeviceBuffer[]): DeviceBuffer {
    try {
      return this.allocate(byteLength);
    } catch (error) {
      for (const buffer of releaseOnFailure) buffer.release();
      throw error;
    }
  }

  private checkRows(
    operation: string,
    input: DeviceBuffer,
    output: DeviceBuffer,
    rows: number,
    columns: number,
    outputElements: number,
  ): void {
    checkCount(this.id, operation, 'rows', rows);
    checkCount(this.id, operation, 'columns', columns);
    checkCount(this.id, operation, 'rows * columns', rows * columns);
    this.checkBuffer(operation, input, 'input');
    this.checkBuffer(operation, output, 'output');
    checkElements(this.id, operation, 'input', input, rows * columns);
    checkElements(this.id, operation, 'output', output, outputElements);
    checkNoAlias(this.id, operation, output, [input]);
  }
}

/** Each of `fields` of `values` a finite number (an optimizer step's scalars). */
function checkFinite<T extends object>(
  deviceId: string,
  operation: string,
  values: T,
  fields: readonly (keyof T & string)[],
): void {
  for (const field of fields) {
    const value: unknown = values[field];
    if (typeof value !== 'number' || !Number.isFinite(value))
      throw new DeviceError(deviceId, operation, `${field} must be a finite number, got ${String(value)}`);
  }
}

/** Each scalar of an Adam step finite, betas in [0, 1), epsilon > 0 (Adam.ts checks its options likewise). */
function checkAdamStep(deviceId: string, operation: string, step: AdamStepScalars): void {
  checkFinite(deviceId, operation, step, ADAM_STEP_SCALARS);
  for (const field of ['beta1', 'beta2'] as const)
    if (!(step[field] >= 0 && step[field] < 1))
      throw new DeviceError(deviceId, operation, `${field} must be in [0, 1), got ${step[field]}`);
  if (!(step.epsilon > 0))
    throw new DeviceError(deviceId, operation, `epsilon must be > 0, got ${step.epsilon}`);
}
