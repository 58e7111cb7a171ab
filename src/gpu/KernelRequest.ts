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

import { TaggedError } from '../internal/errors.js';
import type { LaunchRequest } from './Device.js';
import { DeviceBuffer } from './DeviceBuffer.js';
import { DeviceError } from './errors.js';
import {
  inputRoles,
  KERNEL_ROLES,
  type KernelKind,
  REQUEST_KINDS,
  type RequestCall,
  type RequestKind,
  type RequestSizes,
  requestSizes,
} from './kernels/catalog.js';

/** Names one of the kernel actor's resident arrays (`KernelSpec.resident`). */
export interface ResidentInput {
  readonly resident: string;
}

export type KernelInput = Float32Array | DeviceBuffer | ResidentInput;

/** A request kind of the catalog (`kernels/catalog.ts`) with its inputs as `KernelInput`s. */
export type KernelRequest = RequestCall<KernelInput>;

export type { KernelKind };

/** The input roles of each request kind, in launch order (the catalog's). */
export const KERNEL_INPUT_ROLES: Readonly<Record<RequestKind, readonly string[]>> = Object.fromEntries(
  REQUEST_KINDS.map((kind) => [kind, inputRoles(kind)]),
) as Record<RequestKind, readonly string[]>;

/** A request the kernel actor cannot run on any device: a caller's mistake, as a value. */
export class InvalidKernelRequest extends TaggedError('InvalidKernelRequest') {
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
  if (request.kind === 'matmul' && request.precision !== undefined && request.precision !== 'f32')
    throw new InvalidKernelRequest(
      kernelId,
      'precision',
      `kernel actors compute in f32, not ${request.precision}`,
    );
  const lengths = new Map<string, number>();
  const optional: readonly string[] = KERNEL_ROLES[request.kind].optional;
  for (const role of KERNEL_INPUT_ROLES[request.kind]) {
    const input = (request as unknown as Record<string, KernelInput | undefined>)[role];
    if (input === undefined && optional.includes(role)) continue;
    lengths.set(role, inputLength(kernelId, role, input, residentLengths));
  }
  let sizes: RequestSizes;
  try {
    sizes = requestSizes(REQUEST, request, lengths);
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
