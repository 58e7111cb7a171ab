/**
 * What a kernel actor is asked to run: one op as a plain value whose inputs are host data, a
 * device buffer (read back to the host once, at the start of the launch), or the name of one of
 * the actor's resident arrays. Unlike `LaunchRequest`, nothing in it belongs to a device, so the
 * same request can run on any device after a migration. The output is always a fresh f32 array.
 *
 * Requests are validated once, at the edge (`planKernelRequest`), field by field: a bad request
 * is an `InvalidKernelRequest`, never retried and never counted against a device's health.
 * Kernel actors compute in f32 (matmul precision f32), the precision every backend has.
 */
import type { LaunchRequest } from './Device.js';
import { DeviceBuffer } from './DeviceBuffer.js';
import { DeviceError } from './errors.js';
import { broadcastLayout, type Conv2dShape, checkCount, convGeometry } from './internal/checks.js';
import {
  BINARY_OPS,
  type BinaryOpName,
  REDUCE_OPS,
  type ReduceOpName,
  UNARY_OPS,
  type UnaryOpName,
} from './kernels/ops.js';

/** Names one of the kernel actor's resident arrays (`KernelSpec.resident`). */
export interface ResidentInput {
  readonly resident: string;
}

export type KernelInput = Float32Array | DeviceBuffer | ResidentInput;

// Shapes as in Device.ts: reduce input (rows, columns) -> (rows); matmul a (m, k), b (k, n) -> (m, n).
export type KernelRequest =
  | { readonly kind: 'unary'; readonly op: UnaryOpName; readonly input: KernelInput; readonly count?: number }
  | {
      readonly kind: 'binary';
      readonly op: BinaryOpName;
      readonly a: KernelInput;
      readonly b: KernelInput;
      readonly shapeA?: readonly number[];
      readonly shapeB?: readonly number[];
    }
  | {
      readonly kind: 'reduce';
      readonly op: ReduceOpName;
      readonly input: KernelInput;
      readonly rows: number;
      readonly columns: number;
    }
  | { readonly kind: 'softmax'; readonly input: KernelInput; readonly rows: number; readonly columns: number }
  | {
      readonly kind: 'layernorm';
      readonly input: KernelInput;
      readonly gamma: KernelInput;
      readonly beta: KernelInput;
      readonly rows: number;
      readonly columns: number;
      readonly epsilon?: number;
    }
  | {
      readonly kind: 'matmul';
      readonly a: KernelInput;
      readonly b: KernelInput;
      readonly m: number;
      readonly n: number;
      readonly k: number;
    }
  | {
      readonly kind: 'conv2d';
      readonly input: KernelInput;
      readonly weight: KernelInput;
      readonly bias?: KernelInput;
      readonly shape: Conv2dShape;
    };

export type KernelKind = KernelRequest['kind'];

/** The input roles of each kind, in launch order. */
export const KERNEL_INPUT_ROLES: Readonly<Record<KernelKind, readonly string[]>> = {
  unary: ['input'],
  binary: ['a', 'b'],
  reduce: ['input'],
  softmax: ['input'],
  layernorm: ['input', 'gamma', 'beta'],
  matmul: ['a', 'b'],
  conv2d: ['input', 'weight', 'bias'],
};

/** A request the kernel actor cannot run on any device: a caller's mistake, as a value. */
export class InvalidKernelRequest extends Error {
  override readonly name = 'InvalidKernelRequest';
  readonly _tag = 'InvalidKernelRequest';
  constructor(
    readonly kernelId: string,
    readonly field: string,
    readonly detail: string,
  ) {
    super(`kernel '${kernelId}': invalid request (${field}): ${detail}`);
  }
}

export function isInvalidKernelRequest(error: unknown): error is InvalidKernelRequest {
  return error instanceof InvalidKernelRequest;
}

/** A validated request: the elements each input role needs and the output's length. */
export interface KernelPlan {
  readonly request: KernelRequest;
  /** Present input roles with the elements the op reads from each. */
  readonly inputs: ReadonlyMap<string, number>;
  readonly outputLength: number;
}

/**
 * Validates `request` against the resident arrays' lengths and works out its sizes. Throws
 * `InvalidKernelRequest` naming the first bad field.
 */
export function planKernelRequest(
  kernelId: string,
  request: KernelRequest,
  residentLengths: ReadonlyMap<string, number>,
): KernelPlan {
  if (typeof request !== 'object' || request === null || !Object.hasOwn(KERNEL_INPUT_ROLES, request.kind)) {
    throw new InvalidKernelRequest(kernelId, 'kind', `expected one of ${Object.keys(KERNEL_INPUT_ROLES)}`);
  }
  const lengths = new Map<string, number>();
  for (const role of KERNEL_INPUT_ROLES[request.kind]) {
    const input = (request as unknown as Record<string, KernelInput | undefined>)[role];
    if (input === undefined && role === 'bias') continue;
    lengths.set(role, inputLength(kernelId, role, input, residentLengths));
  }
  let sizes: { inputs: Map<string, number>; outputLength: number };
  try {
    sizes = requiredSizes(request, lengths);
  } catch (error) {
    if (error instanceof DeviceError) throw new InvalidKernelRequest(kernelId, request.kind, error.message);
    throw error;
  }
  for (const [role, needed] of sizes.inputs) {
    const available = lengths.get(role) ?? 0;
    if (available < needed)
      throw new InvalidKernelRequest(kernelId, role, `holds ${available} elements, needs ${needed}`);
  }
  return { request, inputs: sizes.inputs, outputLength: sizes.outputLength };
}

function inputLength(
  kernelId: string,
  role: string,
  input: KernelInput | undefined,
  residentLengths: ReadonlyMap<string, number>,
): number {
  if (input instanceof Float32Array) return input.length;
  if (input instanceof DeviceBuffer) {
    if (input.dtype !== 'f32')
      throw new InvalidKernelRequest(kernelId, role, `buffer is ${input.dtype}, not f32`);
    if (input.released) throw new InvalidKernelRequest(kernelId, role, 'buffer was released');
    return input.length;
  }
  if (typeof input === 'object' && input !== null && typeof input.resident === 'string') {
    const length = residentLengths.get(input.resident);
    if (length === undefined)
      throw new InvalidKernelRequest(kernelId, role, `no resident array named '${input.resident}'`);
    return length;
  }
  throw new InvalidKernelRequest(kernelId, role, 'expected a Float32Array, a DeviceBuffer or { resident }');
}

const REQUEST = 'request';

/** Elements needed per input role and the output length; argument errors are `DeviceError`s here. */
function requiredSizes(
  request: KernelRequest,
  lengths: ReadonlyMap<string, number>,
): { inputs: Map<string, number>; outputLength: number } {
  const operation = request.kind;
  const dimensions = (names: Record<string, number>): void => {
    for (const [name, value] of Object.entries(names)) checkCount(REQUEST, operation, name, value);
  };
  switch (request.kind) {
    case 'unary': {
      checkOp(operation, UNARY_OPS, request.op);
      const count = request.count ?? lengths.get('input') ?? 0;
      dimensions({ count });
      return { inputs: new Map([['input', count]]), outputLength: count };
    }
    case 'binary':
      checkOp(operation, BINARY_OPS, request.op);
      return binarySizes(request, lengths);
    case 'reduce':
      checkOp(operation, REDUCE_OPS, request.op);
      dimensions({ rows: request.rows, columns: request.columns, elements: request.rows * request.columns });
      return { inputs: new Map([['input', request.rows * request.columns]]), outputLength: request.rows };
    case 'softmax': {
      dimensions({ rows: request.rows, columns: request.columns, elements: request.rows * request.columns });
      const elements = request.rows * request.columns;
      return { inputs: new Map([['input', elements]]), outputLength: elements };
    }
    case 'layernorm':
      return layernormSizes(request);
    case 'matmul': {
      const { m, n, k } = request;
      dimensions({ m, n, k, 'm * k': m * k, 'k * n': k * n, 'm * n': m * n });
      return {
        inputs: new Map([
          ['a', m * k],
          ['b', k * n],
        ]),
        outputLength: m * n,
      };
    }
    case 'conv2d':
      return conv2dSizes(request);
  }
}

function checkOp(operation: string, table: object, op: unknown): void {
  if (typeof op !== 'string' || !Object.hasOwn(table, op))
    throw new DeviceError(REQUEST, operation, `unknown op '${String(op)}'`);
}

function binarySizes(
  request: Extract<KernelRequest, { kind: 'binary' }>,
  lengths: ReadonlyMap<string, number>,
): { inputs: Map<string, number>; outputLength: number } {
  const lengthA = lengths.get('a') ?? 0;
  const lengthB = lengths.get('b') ?? 0;
  if (request.shapeA === undefined && request.shapeB === undefined) {
    if (lengthA !== lengthB)
      throw new DeviceError(
        REQUEST,
        'binary',
        `a has ${lengthA} elements and b ${lengthB}; give shapes to broadcast`,
      );
    checkCount(REQUEST, 'binary', 'count', lengthA);
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
  const { count } = broadcastLayout(REQUEST, 'binary', shapeA, shapeB);
  checkCount(REQUEST, 'binary', 'count', count);
  const product = (shape: readonly number[]) => shape.reduce((x, y) => x * y, 1);
  return {
    inputs: new Map([
      ['a', product(shapeA)],
      ['b', product(shapeB)],
    ]),
    outputLength: count,
  };
}

function layernormSizes(request: Extract<KernelRequest, { kind: 'layernorm' }>): {
  inputs: Map<string, number>;
  outputLength: number;
} {
  const { rows, columns } = request;
  checkCount(REQUEST, 'layernorm', 'rows', rows);
  checkCount(REQUEST, 'layernorm', 'columns', columns);
  checkCount(REQUEST, 'layernorm', 'elements', rows * columns);
  const epsilon = request.epsilon ?? 1e-5;
  if (!(epsilon > 0) || !Number.isFinite(epsilon))
    throw new DeviceError(REQUEST, 'layernorm', `epsilon must be > 0, got ${epsilon}`);
  const elements = rows * columns;
  const inputs = new Map([
    ['input', elements],
    ['gamma', columns],
    ['beta', columns],
  ]);
  return { inputs, outputLength: elements };
}

function conv2dSizes(request: Extract<KernelRequest, { kind: 'conv2d' }>): {
  inputs: Map<string, number>;
  outputLength: number;
} {
  const g = convGeometry(REQUEST, request.shape);
  const inputs = new Map([
    ['input', g.batch * g.inChannels * g.height * g.width],
    ['weight', g.outChannels * g.inChannels * g.kernelHeight * g.kernelWidth],
  ]);
  if (request.bias !== undefined) inputs.set('bias', g.outChannels);
  return { inputs, outputLength: g.batch * g.outChannels * g.outHeight * g.outWidth };
}

/** The device-bound launch for `plan`: each input role replaced by its buffer on the device. */
export function toLaunchRequest(
  plan: KernelPlan,
  buffers: ReadonlyMap<string, DeviceBuffer>,
  output: DeviceBuffer,
): LaunchRequest {
  const launch: Record<string, unknown> = { ...plan.request, output };
  for (const role of plan.inputs.keys()) {
    const buffer = buffers.get(role);
    if (buffer === undefined) throw new RangeError(`toLaunchRequest: no buffer for input '${role}'`);
    launch[role] = buffer;
  }
  return launch as unknown as LaunchRequest;
}
