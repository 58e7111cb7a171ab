/**
 * `GpuKernelActor` (seeds/001 ch. 4 "GPU Kernel Actor"): a GenServer that owns one kernel's work
 * on one device. A launch is a call carrying a `KernelRequest`; the actor uploads the inputs,
 * launches, synchronizes (the read-back is the synchronization point, under the watchdog
 * deadline) and replies with the output on the host.
 *
 * Failures, and what happens at each limit:
 * - Any `DeviceError` of an attempt (`OutOfDeviceMemory`, `KernelTimeout` included) is reported
 *   to the GPU supervisor's health server, which counts it against the device.
 * - The attempt is retried on the same device up to `maxRetriesPerDevice` times (3 by default,
 *   so 4 attempts per device); before retrying after `OutOfDeviceMemory` the device's pool is
 *   trimmed.
 * - When the retries are used up, the actor asks the supervisor for the healthiest device the
 *   launch has not tried, moves there (its resident arrays are uploaded again from the host copy
 *   it keeps) and tries again with a fresh retry budget. A launch moves at most
 *   `maxMigrationsPerLaunch` times (3 by default).
 * - When the supervisor moves the kernel itself (its device went critical), the reply to the
 *   error report says so, and the launch continues on the new device at once.
 * - When no healthy device is left, or the moves are used up, the call fails with
 *   `KernelLaunchFailed` (the last device error is its `cause`).
 *
 * Errors that are not `DeviceError`s are bugs: the actor crashes and its supervisor restarts it
 * (transient), from the resident arrays it was started with.
 *
 * Host arrays given in a request (and resident arrays) are used in place, not copied: do not
 * change them until the call returns.
 */
import {
  type CallFrom,
  type Context,
  DEFAULT_CALL_TIMEOUT_MS,
  type ExitReason,
  type GenServer,
  type Pid,
  reply,
  type Stop,
  stop,
} from '../actor/index.js';
import { TaggedError } from '../internal/errors.js';
import type { Device } from './Device.js';
import type { DeviceBuffer } from './DeviceBuffer.js';
import { DeviceError, OutOfDeviceMemory } from './errors.js';
import {
  type ErrorAcknowledged,
  KernelStatusQuery,
  LaunchKernel,
  MigrateKernel,
  RegisterKernel,
  ReportDeviceError,
  RequestMigration,
  StopKernel,
} from './internal/gpuMessages.js';
import {
  InvalidKernelRequest,
  type KernelInput,
  type KernelPlan,
  type KernelRequest,
  planKernelRequest,
  toLaunchRequest,
} from './KernelRequest.js';
import type { ResolvedKernelSpec } from './KernelSpec.js';

/**
 * Default wait of `launchKernel` for the reply: as long as it takes (OTP's `infinity`). The
 * kernel actor bounds the launch itself: at most (maxRetriesPerDevice + 1) *
 * (maxMigrationsPerLaunch + 1) attempts, each under its `deadlineMs` watchdog, so a reply (or
 * the actor's exit, which ends the call) always comes; a shorter timeout would drop a late reply.
 */
export const DEFAULT_LAUNCH_TIMEOUT_MS = Number.POSITIVE_INFINITY;

/** A launch's result. */
export interface KernelOutput {
  readonly output: Float32Array;
  /** The device that ran the successful attempt. */
  readonly deviceId: string;
  /** Attempts made, the successful one included. */
  readonly attempts: number;
  /** Devices the launch moved to. */
  readonly migrations: number;
}

export type LaunchFailure = 'no_healthy_device' | 'migrations_exhausted' | 'input_unreadable';

/** A launch that failed on every device it could use; `cause` is the last device error. */
export class KernelLaunchFailed extends TaggedError('KernelLaunchFailed') {
  constructor(
    readonly kernelId: string,
    readonly reason: LaunchFailure,
    readonly attempts: number,
    readonly devicesTried: readonly string[],
    cause: DeviceError | undefined,
  ) {
    super(
      `kernel '${kernelId}' failed (${reason}) after ${attempts} attempts on ${devicesTried.join(', ')}` +
        (cause === undefined ? '' : `: ${cause.message}`),
      { cause },
    );
  }
}

export function isKernelLaunchFailed(error: unknown): error is KernelLaunchFailed {
  return error instanceof KernelLaunchFailed;
}

/** What a launch call replies: expected outcomes are values. */
export type KernelReply =
  | { readonly ok: true; readonly value: KernelOutput }
  | { readonly ok: false; readonly error: InvalidKernelRequest | KernelLaunchFailed };

export interface KernelStatus {
  readonly kernelId: string;
  readonly deviceId: string;
  readonly launches: number;
  readonly failedAttempts: number;
  /** Moves since this actor started (by its own launches or by the supervisor). */
  readonly migrations: number;
}

/** Who can call a kernel actor: the `ActorSystem` (from outside) or a process's `Context`. */
export type Caller = Pick<Context, 'call'>;

/** Start arguments of a kernel actor. */
export interface KernelActorArgs {
  readonly spec: ResolvedKernelSpec;
  /** The health server it registers with and reports to (a pid or a registered name). */
  readonly healthServer: Pid | string;
}

interface KernelState {
  readonly spec: ResolvedKernelSpec;
  readonly healthServer: Pid | string;
  device: Device;
  /** Resident arrays uploaded to `device` so far, by name. */
  readonly residentBuffers: Map<string, DeviceBuffer>;
  launches: number;
  failedAttempts: number;
  migrations: number;
}

/** The kernel actor's callbacks; start it with `startGenServer` (GpuSupervisor does). */
export const GpuKernelActor: GenServer<KernelState, KernelActorArgs> = {
  async init(args, context) {
    const spec = args.spec;
    const device = await context.call<Device>(args.healthServer, new RegisterKernel(spec.id, spec.device));
    return {
      spec,
      healthServer: args.healthServer,
      device,
      residentBuffers: new Map(),
      launches: 0,
      failedAttempts: 0,
      migrations: 0,
    };
  },

  async handleCall(request: unknown, _from: CallFrom, state: KernelState, context: Context) {
    if (request instanceof LaunchKernel) return reply(await launch(request.request, state, context), state);
    if (request instanceof KernelStatusQuery) return reply(statusOf(state), state);
    if (request instanceof StopKernel) return stop('normal', state, 'ok');
    throw new TypeError(`kernel actor '${state.spec.id}': unexpected call ${String(request)}`);
  },

  async handleCast(
    message: unknown,
    state: KernelState,
    context: Context,
  ): Promise<KernelState | Stop<KernelState>> {
    if (message instanceof MigrateKernel) await moveAndUpload(message.device, state, context);
    return state;
  },

  terminate(_reason: ExitReason, state: KernelState) {
    releaseResident(state);
  },
};

/** Runs a launch on the kernel actor `kernel`; rejects with `InvalidKernelRequest` or `KernelLaunchFailed`. */
export async function launchKernel(
  where: Caller,
  kernel: Pid | string,
  request: KernelRequest,
  timeoutMs = DEFAULT_LAUNCH_TIMEOUT_MS,
): Promise<KernelOutput> {
  const result = await where.call<KernelReply>(kernel, new LaunchKernel(request), timeoutMs);
  if (!result.ok) throw result.error;
  return result.value;
}

/** What a kernel actor is doing (its device, launches, failures, moves). */
export function kernelStatus(
  where: Caller,
  kernel: Pid | string,
  timeoutMs = DEFAULT_CALL_TIMEOUT_MS,
): Promise<KernelStatus> {
  return where.call<KernelStatus>(kernel, new KernelStatusQuery(), timeoutMs);
}

/** Asks a kernel actor to finish: it exits `normal`, so a transient child is not restarted. */
export function finishKernel(
  where: Caller,
  kernel: Pid | string,
  timeoutMs = DEFAULT_CALL_TIMEOUT_MS,
): Promise<unknown> {
  return where.call(kernel, new StopKernel(), timeoutMs);
}

function statusOf(state: KernelState): KernelStatus {
  const { launches, failedAttempts, migrations } = state;
  return { kernelId: state.spec.id, deviceId: state.device.id, launches, failedAttempts, migrations };
}

async function launch(request: KernelRequest, state: KernelState, context: Context): Promise<KernelReply> {
  const id = state.spec.id;
  let plan: KernelPlan;
  try {
    const residentLengths = new Map([...state.spec.resident].map(([name, data]) => [name, data.length]));
    plan = planKernelRequest(id, request, residentLengths);
  } catch (error) {
    if (error instanceof InvalidKernelRequest) return { ok: false, error };
    throw error;
  }
  state.launches++;
  let hosts: Map<string, Float32Array | string>;
  try {
    hosts = await hostInputs(plan, state.spec.deadlineMs);
  } catch (error) {
    if (!(error instanceof DeviceError)) throw error;
    return { ok: false, error: new KernelLaunchFailed(id, 'input_unreadable', 0, [error.deviceId], error) };
  }
  return runWithFailover(plan, hosts, state, context);
}

/**
 * Each input role as host data (an array) or a resident array's name. Device buffers are read
 * back once here, so every retry and every device after a move starts from the host copy.
 */
async function hostInputs(plan: KernelPlan, deadlineMs: number): Promise<Map<string, Float32Array | string>> {
  const hosts = new Map<string, Float32Array | string>();
  const request = plan.request as unknown as Record<string, KernelInput>;
  for (const role of plan.inputs.keys()) {
    const input = request[role];
    if (input instanceof Float32Array) hosts.set(role, input);
    else if ('resident' in input) hosts.set(role, input.resident);
    else hosts.set(role, await (input.owner as Device).readFloat32(input, { deadlineMs }));
  }
  return hosts;
}

type NextStep = { readonly retry: true } | { readonly retry: false; readonly failure: LaunchFailure };

/** Attempts until one succeeds or a limit says stop; at most (retries + 1) * (moves + 1) attempts. */
async function runWithFailover(
  plan: KernelPlan,
  hosts: ReadonlyMap<string, Float32Array | string>,
  state: KernelState,
  context: Context,
): Promise<KernelReply> {
  const tried = [state.device.id];
  const progress = { attempts: 0, attemptsOnDevice: 0, migrations: 0 };
  for (;;) {
    const device = state.device;
    progress.attempts++;
    progress.attemptsOnDevice++;
    try {
      const output = await attempt(plan, hosts, state, device);
      const { attempts, migrations } = progress;
      return { ok: true, value: { output, deviceId: device.id, attempts, migrations } };
    } catch (error) {
      if (!(error instanceof DeviceError)) throw error;
      state.failedAttempts++;
      const next = await afterFailure(error, device, tried, progress, state, context);
      if (!next.retry) {
        const failed = new KernelLaunchFailed(state.spec.id, next.failure, progress.attempts, tried, error);
        return { ok: false, error: failed };
      }
    }
  }
}

/** Reports the failure, then decides: retry here, move (and retry there), or give up. */
async function afterFailure(
  error: DeviceError,
  device: Device,
  tried: string[],
  progress: { attempts: number; attemptsOnDevice: number; migrations: number },
  state: KernelState,
  context: Context,
): Promise<NextStep> {
  const acknowledged = await reportError(error, device, state, context);
  let target = acknowledged.assigned?.id === device.id ? undefined : acknowledged.assigned;
  if (target === undefined) {
    if (progress.attemptsOnDevice <= state.spec.maxRetriesPerDevice) {
      if (error instanceof OutOfDeviceMemory && !device.isDestroyed) device.trimPool();
      return { retry: true };
    }
    if (progress.migrations >= state.spec.maxMigrationsPerLaunch)
      return { retry: false, failure: 'migrations_exhausted' };
    target = await context.call<Device | undefined>(
      state.healthServer,
      new RequestMigration(state.spec.id, device.id, tried),
    );
    if (target === undefined) return { retry: false, failure: 'no_healthy_device' };
  }
  adopt(target, state);
  if (!tried.includes(target.id)) tried.push(target.id);
  progress.migrations++;
  progress.attemptsOnDevice = 0;
  if (progress.migrations > state.spec.maxMigrationsPerLaunch)
    return { retry: false, failure: 'migrations_exhausted' };
  return { retry: true };
}

/** One try on `device`: upload, launch, read back under the watchdog; buffers released after. */
async function attempt(
  plan: KernelPlan,
  hosts: ReadonlyMap<string, Float32Array | string>,
  state: KernelState,
  device: Device,
): Promise<Float32Array> {
  const options = { deadlineMs: state.spec.deadlineMs };
  const owned: DeviceBuffer[] = [];
  try {
    const buffers = new Map<string, DeviceBuffer>();
    for (const [role, host] of hosts) {
      if (typeof host === 'string') {
        buffers.set(role, residentBuffer(host, state));
      } else {
        const buffer = device.upload(host);
        owned.push(buffer);
        buffers.set(role, buffer);
      }
    }
    const output = device.allocate(plan.outputLength * 4);
    owned.push(output);
    device.launch(toLaunchRequest(plan, buffers, output), options);
    return await device.readFloat32(output, options);
  } finally {
    for (const buffer of owned) buffer.release();
  }
}

/** The resident array `name` on the actor's device, uploaded from the host copy on first use. */
function residentBuffer(name: string, state: KernelState): DeviceBuffer {
  let buffer = state.residentBuffers.get(name);
  if (buffer === undefined) {
    const host = state.spec.resident.get(name);
    if (host === undefined) throw new RangeError(`kernel '${state.spec.id}': no resident array '${name}'`);
    buffer = state.device.upload(host);
    state.residentBuffers.set(name, buffer);
  }
  return buffer;
}

function reportError(
  error: DeviceError,
  device: Device,
  state: KernelState,
  context: Context,
): Promise<ErrorAcknowledged> {
  const report = new ReportDeviceError(device.id, `${error.name}: ${error.message}`, state.spec.id);
  return context.call<ErrorAcknowledged>(state.healthServer, report);
}

/** Moves to `device`: the old device's resident buffers are released (uploaded again lazily). */
function adopt(device: Device, state: KernelState): void {
  if (device === state.device) return;
  releaseResident(state);
  state.device = device;
  state.migrations++;
}

/**
 * The supervisor moved this kernel: adopt `device` and upload the resident arrays now, so the
 * next launch finds them. An upload that fails is reported like a launch error (the next launch
 * uploads again, wherever the kernel is by then).
 */
async function moveAndUpload(device: Device, state: KernelState, context: Context): Promise<void> {
  adopt(device, state);
  try {
    for (const name of state.spec.resident.keys()) residentBuffer(name, state);
  } catch (error) {
    if (!(error instanceof DeviceError)) throw error;
    releaseResident(state);
    const acknowledged = await reportError(error, state.device, state, context);
    if (acknowledged.assigned !== undefined) adopt(acknowledged.assigned, state);
  }
}

function releaseResident(state: KernelState): void {
  for (const buffer of state.residentBuffers.values()) if (!buffer.released) buffer.release();
  state.residentBuffers.clear();
}
