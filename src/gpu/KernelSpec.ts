/**
 * A kernel actor as users describe it: a plain object, validated once at the edge
 * (`resolveKernelSpec`), field by field, each failure an `InvalidKernelSpec` naming the field.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { type KernelSpec, resolveKernelSpec } from 'zbmd/gpu';
 *
 * const weights = new Float32Array(784 * 10);
 * const spec: KernelSpec = {
 *   id: 'dense1',
 *   device: 'webgpu:0',                    // preferred; the healthiest device by default
 *   resident: { weight: weights },         // kept on the device, re-uploaded after a move
 *   maxRetriesPerDevice: 3,                // default
 *   maxMigrationsPerLaunch: 3,             // default
 *   deadlineMs: 10_000,                    // default watchdog deadline per attempt
 * };
 * assert.equal(resolveKernelSpec(spec).deadlineMs, 10_000);
 * ```
 */
import { TaggedError } from '../internal/errors.js';

export interface KernelSpec {
  /** Unique within its GPU supervisor: 1 to 128 characters of letters, digits, `_ - . :`. */
  readonly id: string;
  /** Preferred device id (`cuda:0`); it must be one of the supervisor's devices. */
  readonly device?: string;
  /** Arrays the kernel keeps on its device (weights), referred to as `{ resident: name }`. */
  readonly resident?: Readonly<Record<string, Float32Array>>;
  /** Retries on one device after a failed attempt; default 3, at most 100. */
  readonly maxRetriesPerDevice?: number;
  /** Moves to another device within one launch; default 3, at most 16. */
  readonly maxMigrationsPerLaunch?: number;
  /** Watchdog deadline of each attempt (launch and read-back) in ms; default 10 s. */
  readonly deadlineMs?: number;
}

/** A kernel spec with every default filled in. */
export interface ResolvedKernelSpec {
  readonly id: string;
  readonly device: string | undefined;
  readonly resident: ReadonlyMap<string, Float32Array>;
  readonly maxRetriesPerDevice: number;
  readonly maxMigrationsPerLaunch: number;
  readonly deadlineMs: number;
}

export const DEFAULT_MAX_RETRIES_PER_DEVICE = 3;
export const MAX_RETRIES_PER_DEVICE = 100;
export const DEFAULT_MAX_MIGRATIONS_PER_LAUNCH = 3;
export const MAX_MIGRATIONS_PER_LAUNCH = 16;
export const DEFAULT_KERNEL_DEADLINE_MS = 10_000;
/** Longest per-attempt deadline accepted (one hour). */
export const MAX_KERNEL_DEADLINE_MS = 3_600_000;
/** Most resident arrays per kernel. */
export const MAX_RESIDENT_ARRAYS = 64;

const ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;
const KNOWN_FIELDS = new Set([
  'id',
  'device',
  'resident',
  'maxRetriesPerDevice',
  'maxMigrationsPerLaunch',
  'deadlineMs',
]);

export type InvalidKernelSpecReason =
  | 'invalid_kernel_spec'
  | 'invalid_kernel_id'
  | 'invalid_device'
  | 'invalid_resident'
  | 'invalid_max_retries'
  | 'invalid_max_migrations'
  | 'invalid_deadline';

export class InvalidKernelSpec extends TaggedError('InvalidKernelSpec') {
  constructor(
    readonly reason: InvalidKernelSpecReason,
    readonly value: unknown,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

export function isInvalidKernelSpec(error: unknown): error is InvalidKernelSpec {
  return error instanceof InvalidKernelSpec;
}

/** Validates `spec` and fills in the defaults; throws `InvalidKernelSpec` for the first bad field. */
export function resolveKernelSpec(spec: KernelSpec): ResolvedKernelSpec {
  if (typeof spec !== 'object' || spec === null)
    throw new InvalidKernelSpec('invalid_kernel_spec', spec, 'a kernel spec must be an object');
  for (const key of Object.keys(spec)) {
    if (!KNOWN_FIELDS.has(key))
      throw new InvalidKernelSpec('invalid_kernel_spec', key, `unknown field '${key}'`);
  }
  if (typeof spec.id !== 'string' || !ID_PATTERN.test(spec.id))
    throw new InvalidKernelSpec('invalid_kernel_id', spec.id, 'id must be 1-128 of [A-Za-z0-9_.:-]');
  if (spec.device !== undefined && typeof spec.device !== 'string')
    throw new InvalidKernelSpec('invalid_device', spec.device, 'device must be a device id string');
  return {
    id: spec.id,
    device: spec.device,
    resident: residentArrays(spec.resident),
    maxRetriesPerDevice: integerIn(
      spec.maxRetriesPerDevice,
      DEFAULT_MAX_RETRIES_PER_DEVICE,
      MAX_RETRIES_PER_DEVICE,
      'invalid_max_retries',
    ),
    maxMigrationsPerLaunch: integerIn(
      spec.maxMigrationsPerLaunch,
      DEFAULT_MAX_MIGRATIONS_PER_LAUNCH,
      MAX_MIGRATIONS_PER_LAUNCH,
      'invalid_max_migrations',
    ),
    deadlineMs: deadline(spec.deadlineMs),
  };
}

function residentArrays(
  resident: Readonly<Record<string, Float32Array>> | undefined,
): ReadonlyMap<string, Float32Array> {
  if (resident === undefined) return new Map();
  if (typeof resident !== 'object' || resident === null || Object.keys(resident).length > MAX_RESIDENT_ARRAYS)
    throw new InvalidKernelSpec('invalid_resident', resident, `at most ${MAX_RESIDENT_ARRAYS} named arrays`);
  const entries = Object.entries(resident);
  for (const [name, data] of entries) {
    if (!(data instanceof Float32Array) || data.length === 0)
      throw new InvalidKernelSpec(
        'invalid_resident',
        name,
        `resident '${name}' must be a non-empty Float32Array`,
      );
  }
  return new Map(entries);
}

function integerIn(
  value: number | undefined,
  fallback: number,
  max: number,
  reason: InvalidKernelSpecReason,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0 || value > max)
    throw new InvalidKernelSpec(reason, value, `expected an integer in [0, ${max}], got ${String(value)}`);
  return value;
}

function deadline(value: number | undefined): number {
  if (value === undefined) return DEFAULT_KERNEL_DEADLINE_MS;
  if (typeof value !== 'number' || !(value > 0) || value > MAX_KERNEL_DEADLINE_MS)
    throw new InvalidKernelSpec(
      'invalid_deadline',
      value,
      `deadlineMs must be a number in (0, ${MAX_KERNEL_DEADLINE_MS}], got ${String(value)}`,
    );
  return value;
}
