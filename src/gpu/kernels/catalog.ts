/**
 * The one catalog of kernel kinds. Each kind is listed once, with its input roles, its
 * parameters and its shape check; every other description of a kernel takes its type from here:
 *
 * - `KernelLaunch` (Backend.ts): what a backend runs, buffers as `NativeBuffer`s, parameters as
 *   the `Device` worked them out (`launch` below);
 * - `LaunchRequest` (Device.ts): what `Device.launch` accepts, buffers as `DeviceBuffer`s,
 *   parameters as callers give them (`request` below);
 * - `KernelRequest` (KernelRequest.ts): what a kernel actor runs, inputs as host data, device
 *   buffers or resident names, sized by `requestSizes`;
 * - each backend's dispatch (`KernelTable`): a table with one entry per backend kind, so a kind
 *   added here and not implemented by a backend is a type error there.
 *
 * A kind has a `request` form (callers name it), a `launch` form (backends run it), or both.
 * `gather` and `conv2d` are requests the `Device` turns into other launches (`binary.left`;
 * im2col, matmul and convOutput); `convOutput` and the optimizer steps (`adamStep`,
 * `amsgradStep`, `sgdStep`, `adagradStep`, `rmspropStep`) are launches only the `Device` makes
 * (through `Device.adamStep`, `Device.sgdStep`, `Device.adagradStep`, `Device.rmspropStep`).
 *
 * Most kinds read their inputs and write their output. A kind may also list `updated` roles:
 * buffers it reads and writes in place (`adamStep`'s moments), bound read-write by every backend.
 */
import { DeviceError } from '../errors.js';
import {
  broadcastLayout,
  type Conv2dShape,
  checkCount,
  convGeometry,
  MAX_KERNEL_ELEMENTS,
  type Pool2dShape,
  poolGeometry,
} from '../internal/checks.js';
import type { DType, MatmulPrecision } from '../types.js';
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

/** `null` where a kind has no such form. */
interface KindDescription {
  /** Input roles every call names. */
  readonly inputs: string;
  /** Input roles a call may leave out. */
  readonly optional: string;
  /** Roles read and written in place, besides the output (absent: none). */
  readonly updated?: string;
  readonly request: object | null;
  readonly launch: object | null;
}

/** Shapes: `// x: (rows, columns)`; every buffer is f32 unless a parameter says otherwise. */
export interface KernelCatalog {
  // output = op(input), elementwise
  unary: {
    inputs: 'input';
    optional: never;
    request: { op: UnaryOpName; count?: number };
    launch: { op: UnaryOpName; count: number };
  };
  // output = a op b, elementwise, NumPy broadcasting over shapes of rank <= 4
  binary: {
    inputs: 'a' | 'b';
    optional: never;
    request: { op: BinaryOpName; shapeA?: readonly number[]; shapeB?: readonly number[] };
    launch: { op: BinaryOpName; count: number; layout: BinaryLayout };
  };
  // output = input read through strides over shape (rank <= 4); runs as binary.left
  gather: {
    inputs: 'input';
    optional: never;
    request: { shape: readonly number[]; strides: readonly number[] };
    launch: null;
  };
  // input: (rows, columns) -> output: (rows)
  reduce: {
    inputs: 'input';
    optional: never;
    request: { op: ReduceOpName; rows: number; columns: number };
    launch: { op: ReduceOpName; rows: number; columns: number };
  };
  // input, output: (rows, columns)
  softmax: {
    inputs: 'input';
    optional: never;
    request: { rows: number; columns: number };
    launch: { rows: number; columns: number };
  };
  // input, output: (rows, columns); gamma, beta: (columns)
  layernorm: {
    inputs: 'input' | 'gamma' | 'beta';
    optional: never;
    request: { rows: number; columns: number; epsilon?: number };
    launch: { rows: number; columns: number; epsilon: number };
  };
  // output (m, n) = op(a) (m, k) @ op(b) (k, n), row-major, as BLAS: a is stored (m, k), or
  // (k, m) with transposeA; b is stored (k, n), or (n, k) with transposeB. With batch > 1,
  // product i reads a from element i * strideA, b from i * strideB (0: the same matrix for
  // every product) and writes output from i * m * n.
  matmul: {
    inputs: 'a' | 'b';
    optional: never;
    request: {
      m: number;
      n: number;
      k: number;
      precision?: MatmulPrecision;
      transposeA?: boolean;
      transposeB?: boolean;
      batch?: MatmulBatch;
    };
    /** outputDType: f32, or bf16 when precision is bf16 (inputs are then bf16 too). */
    launch: {
      m: number;
      n: number;
      k: number;
      precision: MatmulPrecision;
      outputDType: DType;
      transposeA: boolean;
      transposeB: boolean;
      batch: number;
      strideA: number;
      strideB: number;
    };
  };
  // input (N, C, H, W), weight (O, C, KH, KW), bias (O) -> output (N, O, OH, OW)
  conv2d: {
    inputs: 'input' | 'weight';
    optional: 'bias';
    request: { shape: Conv2dShape };
    launch: null;
  };
  // input (N, C, H, W) -> output, the columns: (C * KH * KW, N * OH * OW)
  im2col: {
    inputs: 'input';
    optional: never;
    request: { shape: Conv2dShape };
    launch: { geometry: Conv2dGeometry };
  };
  // columns (C * KH * KW, N * OH * OW) -> output (N, C, H, W), summing overlaps (im2col's adjoint)
  col2im: {
    inputs: 'columns';
    optional: never;
    request: { shape: Conv2dShape };
    launch: { geometry: Conv2dGeometry };
  };
  // input (N, C, H, W) -> output (N, C, OH, OW): max (first maximum) or avg of each window
  pool2d: {
    inputs: 'input';
    optional: never;
    request: { op: PoolOpName; shape: Pool2dShape };
    launch: { op: PoolOpName; geometry: Pool2dGeometry };
  };
  // input (N, C, H, W), gradient (N, C, OH, OW) -> output (N, C, H, W), the input gradient
  pool2dBackward: {
    inputs: 'input' | 'gradient';
    optional: never;
    request: { op: PoolOpName; shape: Pool2dShape };
    launch: { op: PoolOpName; geometry: Pool2dGeometry };
  };
  // table (rows, dimension), indices (count): row numbers as f32 -> output (count, dimension):
  // output[i] = table[indices[i]], a row of zeros where indices[i] is not in [0, rows)
  indexRows: {
    inputs: 'table' | 'indices';
    optional: never;
    request: IndexRowsShape;
    launch: IndexRowsShape;
  };
  // indexRows' gradient with its positions grouped by row: gradient (count, dimension),
  // positions (count) and starts (rows + 1), f32 -> output (rows, dimension): output[r] = the sum
  // of gradient[positions[p]] for p from starts[r] up to starts[r + 1] (and count), in that order
  indexRowsBackward: {
    inputs: 'gradient' | 'positions' | 'starts';
    optional: never;
    request: IndexRowsShape;
    launch: IndexRowsShape;
  };
  // product: (O, N * OH * OW) -> output: (N, O, OH, OW), plus bias[o] when present
  convOutput: {
    inputs: 'product';
    optional: 'bias';
    request: null;
    launch: { geometry: Conv2dGeometry };
  };
  // One Adam/AdamW step of `count` elements, in place. output: the parameter p (read and
  // written); gradient g; firstMoment m and secondMoment v (updated). In f32, per element:
  //   g' = g + coupledDecay * p;  m = beta1 * m + oneMinusBeta1 * g';  v = beta2 * v + oneMinusBeta2 * g'^2
  //   p = p * shrink - stepSize * m / (sqrt(v) * inverseCorrection2 + epsilon)
  adamStep: {
    inputs: 'gradient';
    optional: never;
    updated: 'firstMoment' | 'secondMoment';
    request: null;
    launch: AdamStepScalars & { count: number };
  };
  // adamStep with amsgrad: also maxSecondMoment (updated), the largest v so far, per element:
  //   vMax = max(vMax, v);  p = p * shrink - stepSize * m / (sqrt(vMax) * inverseCorrection2 + epsilon)
  amsgradStep: {
    inputs: 'gradient';
    optional: never;
    updated: 'firstMoment' | 'secondMoment' | 'maxSecondMoment';
    request: null;
    launch: AdamStepScalars & { count: number };
  };
  // One SGD step with momentum of `count` elements, in place (PyTorch's SGD). output: the
  // parameter p (read and written); gradient g; momentumBuffer b (updated). Per element:
  //   g' = g + weightDecay * p;  b = first ? g' : momentum * b + oneMinusDampening * g'
  //   p = p - learningRate * (nesterov ? g' + momentum * b : b)
  sgdStep: {
    inputs: 'gradient';
    optional: never;
    updated: 'momentumBuffer';
    request: null;
    launch: SgdStepScalars & { count: number };
  };
  // One Adagrad step of `count` elements, in place (PyTorch's Adagrad). output: the parameter p
  // (read and written); gradient g; sumOfSquares s (updated). Per element:
  //   g' = g + weightDecay * p;  s = s + g'^2;  p = p - rate * g' / (sqrt(s) + epsilon)
  adagradStep: {
    inputs: 'gradient';
    optional: never;
    updated: 'sumOfSquares';
    request: null;
    launch: AdagradStepScalars & { count: number };
  };
  // One plain RMSprop step (no momentum, not centered) of `count` elements, in place (PyTorch's
  // RMSprop). output: the parameter p (read and written); gradient g; squareAverage v (updated):
  //   g' = g + weightDecay * p;  v = alpha * v + oneMinusAlpha * g'^2;  p = p - learningRate * g' / (sqrt(v) + epsilon)
  rmspropStep: {
    inputs: 'gradient';
    optional: never;
    updated: 'squareAverage';
    request: null;
    launch: RmspropStepScalars & { count: number };
  };
}

/** One plain RMSprop step as `Device.rmspropStep` takes it (RMSprop.ts's options). */
export interface RmspropStepParameters {
  readonly learningRate: number;
  readonly alpha: number;
  readonly weightDecay: number;
  readonly epsilon: number;
}

/** The lookups of `indexRows`: `count` rows of `dimension` elements from a table of `rows`. */
export interface IndexRowsShape {
  readonly count: number;
  readonly dimension: number;
  readonly rows: number;
}

/**
 * The scalars of one Adam step (Adam.ts works them out per parameter): stepSize is
 * lr / (1 - beta1^t), inverseCorrection2 1 / sqrt(1 - beta2^t); Adam's weight decay is
 * `coupledDecay` (added to the gradient), AdamW's is `shrink` = 1 - lr * weightDecay.
 */
export interface AdamStepParameters {
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly stepSize: number;
  readonly inverseCorrection2: number;
  readonly coupledDecay: number;
  readonly shrink: number;
}

/** One SGD step with momentum as `Device.sgdStep` takes it (SGD.ts's options and the step's `first`). */
export interface SgdStepParameters {
  readonly learningRate: number;
  readonly weightDecay: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;
  /** The parameter's first step: the buffer starts as the gradient (PyTorch's rule). */
  readonly first: boolean;
}

// Every entry is a KindDescription (a compile-time check of the catalog itself).
type CatalogIsWellFormed<T extends Record<keyof KernelCatalog, KindDescription>> = T;
export type CheckedCatalog = CatalogIsWellFormed<KernelCatalog>;

/** Every kernel kind. */
/**
 * Products of a batched matmul: `count` of them, a's i-th matrix `strideA` elements after the
 * (i-1)-th, b's `strideB` after (0 for one matrix shared by every product).
 */
export interface MatmulBatch {
  readonly count: number;
  readonly strideA: number;
  readonly strideB: number;
}

export type KernelKind = keyof KernelCatalog;
/** Kinds a caller can ask a `Device` or a kernel actor for. */
export type RequestKind = {
  [K in KernelKind]: KernelCatalog[K]['request'] extends null ? never : K;
}[KernelKind];
/** Kinds a backend runs. */
export type BackendKernelKind = {
  [K in KernelKind]: KernelCatalog[K]['launch'] extends null ? never : K;
}[KernelKind];

/** The input roles of kind `K` (required ones, then optional ones). */
export type InputRole<K extends KernelKind> = KernelCatalog[K]['inputs'] | KernelCatalog[K]['optional'];

/** The roles kind `K` reads and writes in place (none for most kinds). */
export type UpdatedRole<K extends KernelKind> = KernelCatalog[K] extends { updated: infer U extends string }
  ? U
  : never;

type Call<K extends KernelKind, Buffer, Parameters> = { readonly kind: K } & {
  readonly [R in KernelCatalog[K]['inputs'] | UpdatedRole<K>]: Buffer;
} & { readonly [R in KernelCatalog[K]['optional']]?: Buffer } & Readonly<Parameters>;

/** A request of kind `K` with its inputs as `Input` (no output). */
export type RequestCall<Input, K extends RequestKind = RequestKind> = {
  [P in K]: Call<P, Input, KernelCatalog[P]['request']>;
}[K];

/** A backend launch of kind `K` with its buffers as `Buffer`, output included. */
export type LaunchCall<Buffer, K extends BackendKernelKind = BackendKernelKind> = {
  [P in K]: Call<P, Buffer, KernelCatalog[P]['launch']> & { readonly output: Buffer };
}[K];

/** A backend's dispatch: one entry per kind it runs (a kind missing is a type error). */
export type KernelTable<Buffer, Result, K extends BackendKernelKind = BackendKernelKind> = {
  readonly [P in K]: (launch: LaunchCall<Buffer, P>) => Result;
};

/** Runs `launch` through its table entry. */
export function dispatchKernel<Buffer, Result, K extends BackendKernelKind>(
  table: KernelTable<Buffer, Result, K>,
  launch: LaunchCall<Buffer, K>,
): Result {
  const entry = table[launch.kind] as (launch: LaunchCall<Buffer, K>) => Result;
  return entry(launch);
}

interface RoleList<K extends KernelKind> {
  readonly inputs: readonly KernelCatalog[K]['inputs'][];
  readonly optional: readonly KernelCatalog[K]['optional'][];
  /** Roles read and written in place, bound after the inputs (before the output). */
  readonly updated?: readonly UpdatedRole<K>[];
  /** Whether a launch of this kind carries an `op` (its name is then `kind.op`, as `unary.relu`). */
  readonly named: boolean;
}

/** The input roles of each kind, in launch order, at run time. */
export const KERNEL_ROLES: { readonly [K in KernelKind]: RoleList<K> } = {
  unary: { inputs: ['input'], optional: [], named: true },
  binary: { inputs: ['a', 'b'], optional: [], named: true },
  gather: { inputs: ['input'], optional: [], named: false },
  reduce: { inputs: ['input'], optional: [], named: true },
  softmax: { inputs: ['input'], optional: [], named: false },
  layernorm: { inputs: ['input', 'gamma', 'beta'], optional: [], named: false },
  matmul: { inputs: ['a', 'b'], optional: [], named: false },
  conv2d: { inputs: ['input', 'weight'], optional: ['bias'], named: false },
  im2col: { inputs: ['input'], optional: [], named: false },
  col2im: { inputs: ['columns'], optional: [], named: false },
  pool2d: { inputs: ['input'], optional: [], named: true },
  pool2dBackward: { inputs: ['input', 'gradient'], optional: [], named: true },
  indexRows: { inputs: ['table', 'indices'], optional: [], named: false },
  indexRowsBackward: { inputs: ['gradient', 'positions', 'starts'], optional: [], named: false },
  convOutput: { inputs: ['product'], optional: ['bias'], named: false },
  adamStep: {
    inputs: ['gradient'],
    optional: [],
    updated: ['firstMoment', 'secondMoment'],
    named: false,
  },
  amsgradStep: {
    inputs: ['gradient'],
    optional: [],
    updated: ['firstMoment', 'secondMoment', 'maxSecondMoment'],
    named: false,
  },
  sgdStep: { inputs: ['gradient'], optional: [], updated: ['momentumBuffer'], named: false },
  adagradStep: { inputs: ['gradient'], optional: [], updated: ['sumOfSquares'], named: false },
  rmspropStep: { inputs: ['gradient'], optional: [], updated: ['squareAverage'], named: false },
};

/** Kinds only the `Device` launches (no request form). */
const LAUNCH_ONLY_KINDS: readonly KernelKind[] = [
  'convOutput',
  'adamStep',
  'amsgradStep',
  'sgdStep',
  'adagradStep',
  'rmspropStep',
];

export const REQUEST_KINDS = (Object.keys(KERNEL_ROLES) as KernelKind[]).filter(
  (kind): kind is RequestKind => !LAUNCH_ONLY_KINDS.includes(kind),
);

/** Every input role of `kind`, required ones first. */
export function inputRoles<K extends KernelKind>(kind: K): readonly InputRole<K>[] {
  const roles = KERNEL_ROLES[kind] as RoleList<K>;
  return [...roles.inputs, ...roles.optional];
}

/** The name a launch is known by in errors, fault hooks and statistics (`unary.relu`, `matmul`). */
export function kernelName(launch: { readonly kind: KernelKind; readonly op?: string }): string {
  return KERNEL_ROLES[launch.kind].named ? `${launch.kind}.${launch.op}` : launch.kind;
}

/** The most rows (and lookups) of `indexRows`: f32 holds integers exactly up to 2^24. */
export const INDEX_ROWS_MAX = 2 ** 24;

/**
 * The most products one batched matmul launch makes: cuBLAS counts them in an int. (WebGPU
 * numbers the row tiles of all products together over two dimensions of workgroups, at most
 * 65535 x 65535 row tiles of 64 rows in all.)
 */
export const MATMUL_BATCH_MAX = 2 ** 31 - 1;

/** `batch` checked (count in [1, MATMUL_BATCH_MAX], strides integers >= 0); one product when absent. */
export function checkMatmulBatch(where: string, batch: MatmulBatch | undefined): MatmulBatch {
  if (batch === undefined) return { count: 1, strideA: 0, strideB: 0 };
  const { count, strideA, strideB } = batch;
  if (!Number.isInteger(count) || count < 1 || count > MATMUL_BATCH_MAX) {
    throw new DeviceError(
      where,
      'matmul',
      `batch.count must be an integer in [1, ${MATMUL_BATCH_MAX}], got ${String(count)}`,
    );
  }
  for (const [name, stride] of [
    ['strideA', strideA],
    ['strideB', strideB],
  ] as const) {
    if (!Number.isInteger(stride) || stride < 0 || stride > MAX_KERNEL_ELEMENTS)
      throw new DeviceError(
        where,
        'matmul',
        `batch.${name} must be an integer in [0, 2^32 - 1], got ${String(stride)}`,
      );
  }
  return { count, strideA, strideB };
}

/** What a request reads and writes: elements needed per present input role, and the output's. */
export interface RequestSizes {
  readonly inputs: Map<string, number>;
  readonly outputLength: number;
}

/**
 * The shape check of each request kind: given the elements each present input holds, the
 * elements the op reads from each and the output's length. A bad parameter is a `DeviceError`
 * raised with `where` as its device id (the device's, or `request` for a kernel actor).
 */
export function requestSizes(
  where: string,
  request: RequestCall<unknown>,
  lengths: ReadonlyMap<string, number>,
): RequestSizes {
  const operation = request.kind;
  const dimensions = (names: Record<string, number>): void => {
    for (const [name, value] of Object.entries(names)) checkCount(where, operation, name, value);
  };
  switch (request.kind) {
    case 'unary': {
      checkOp(where, operation, UNARY_OPS, request.op);
      const count = request.count ?? lengths.get('input') ?? 0;
      dimensions({ count });
      return { inputs: new Map([['input', count]]), outputLength: count };
    }
    case 'binary':
      checkOp(where, operation, BINARY_OPS, request.op);
      return binarySizes(where, request, lengths);
    case 'gather': {
      const { count } = broadcastLayout(where, operation, request.shape, [1]);
      const { shape, strides } = request;
      if (
        !Array.isArray(strides) ||
        strides.length !== shape.length ||
        strides.some((stride) => !Number.isInteger(stride) || stride < 0)
      ) {
        throw new DeviceError(
          where,
          operation,
          `strides must be ${shape.length} integers >= 0, one per dimension of [${shape.join(', ')}], got [${String(strides)}]`,
        );
      }
      const reach = shape.reduce((last, size, d) => last + (size - 1) * strides[d], 0);
      dimensions({ count });
      return { inputs: new Map([['input', reach + 1]]), outputLength: count };
    }
    case 'reduce':
      checkOp(where, operation, REDUCE_OPS, request.op);
      dimensions({ rows: request.rows, columns: request.columns, elements: request.rows * request.columns });
      return { inputs: new Map([['input', request.rows * request.columns]]), outputLength: request.rows };
    case 'softmax': {
      dimensions({ rows: request.rows, columns: request.columns, elements: request.rows * request.columns });
      const elements = request.rows * request.columns;
      return { inputs: new Map([['input', elements]]), outputLength: elements };
    }
    case 'layernorm': {
      const { rows, columns } = request;
      dimensions({ rows, columns, elements: rows * columns });
      const epsilon = request.epsilon ?? 1e-5;
      if (!(epsilon > 0) || !Number.isFinite(epsilon))
        throw new DeviceError(where, operation, `epsilon must be > 0, got ${epsilon}`);
      const inputs = new Map([
        ['input', rows * columns],
        ['gamma', columns],
        ['beta', columns],
      ]);
      return { inputs, outputLength: rows * columns };
    }
    case 'matmul': {
      const { m, n, k } = request;
      dimensions({ m, n, k, 'm * k': m * k, 'k * n': k * n, 'm * n': m * n });
      const { count, strideA, strideB } = checkMatmulBatch(where, request.batch);
      dimensions({ 'batch.count * m * n': count * m * n });
      return {
        inputs: new Map([
          ['a', (count - 1) * strideA + m * k],
          ['b', (count - 1) * strideB + k * n],
        ]),
        outputLength: count * m * n,
      };
    }
    case 'im2col':
    case 'col2im': {
      const g = convGeometry(where, request.shape);
      const image = g.batch * g.inChannels * g.height * g.width;
      const columns = g.inChannels * g.kernelHeight * g.kernelWidth * g.batch * g.outHeight * g.outWidth;
      dimensions({ columns });
      return request.kind === 'im2col'
        ? { inputs: new Map([['input', image]]), outputLength: columns }
        : { inputs: new Map([['columns', columns]]), outputLength: image };
    }
    case 'indexRows':
    case 'indexRowsBackward': {
      const { count, dimension, rows } = request;
      // (f32 holds every row number and position exactly up to 2^24)
      dimensions({
        count,
        dimension,
        rows,
        'count * dimension': count * dimension,
        'rows * dimension': rows * dimension,
      });
      for (const [name, value] of [
        ['count', count],
        ['rows', rows],
      ] as const) {
        if (value > INDEX_ROWS_MAX)
          throw new DeviceError(
            where,
            operation,
            `${name} must be at most 2^24 (f32 holds its indices exactly), got ${value}`,
          );
      }
      return request.kind === 'indexRows'
        ? {
            inputs: new Map([
              ['table', rows * dimension],
              ['indices', count],
            ]),
            outputLength: count * dimension,
          }
        : {
            inputs: new Map([
              ['gradient', count * dimension],
              ['positions', count],
              ['starts', rows + 1],
            ]),
            outputLength: rows * dimension,
          };
    }
    case 'pool2d':
    case 'pool2dBackward': {
      checkOp(where, operation, POOL_OPS, request.op);
      const g = poolGeometry(where, operation, request.shape);
      const image = g.planes * g.height * g.width;
      const pooled = g.planes * g.outHeight * g.outWidth;
      return request.kind === 'pool2d'
        ? { inputs: new Map([['input', image]]), outputLength: pooled }
        : {
            inputs: new Map([
              ['input', image],
              ['gradient', pooled],
            ]),
            outputLength: image,
          };
    }
    case 'conv2d': {
      const g = convGeometry(where, request.shape);
      const inputs = new Map([
        ['input', g.batch * g.inChannels * g.height * g.width],
        ['weight', g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth],
      ]);
      if (request.bias !== undefined) inputs.set('bias', g.outChannels);
      return { inputs, outputLength: g.batch * g.outChannels * g.outHeight * g.outWidth };
    }
  }
}

const POOL_OPS = { max: true, avg: true } as const;

function checkOp(where: string, operation: string, table: object, op: unknown): void {
  if (typeof op !== 'string' || !Object.hasOwn(table, op))
    throw new DeviceError(where, operation, `unknown op '${String(op)}'`);
}

function binarySizes(
  where: string,
  request: RequestCall<unknown, 'binary'>,
  lengths: ReadonlyMap<string, number>,
): RequestSizes {
  const lengthA = lengths.get('a') ?? 0;
  const lengthB = lengths.get('b') ?? 0;
  if (request.shapeA === undefined && request.shapeB === undefined) {
    if (lengthA !== lengthB)
      throw new DeviceError(
        where,
        'binary',
        `a has ${lengthA} elements and b ${lengthB}; give shapes to broadcast`,
      );
    checkCount(where, 'binary', 'count', lengthA);
    return {
      inputs: new Map([
        ['a', lengthA],
        ['b', lengthB],
      ]),
      outputLength: lengthA,
    };
  }
  const shapeA = request.shapeA ?? [lengthA];
  const shapeB = request.shapeB ?? [lengthB];
  const { count } = broadcastLayout(where, 'binary', shapeA, shapeB);
  checkCount(where, 'binary', 'count', count);
  const product = (shape: readonly number[]) => shape.reduce((x, y) => x * y, 1);
  return {
    inputs: new Map([
      ['a', product(shapeA)],
      ['b', product(shapeB)],
    ]),
    outputLength: count,
  };
}
