/**
 * `GpuSupervisor` (seeds/001 ch. 5 "GPU Supervisor"): kernel actors under supervision, with
 * each device's health tracked from the errors they report. It is a small supervision tree:
 *
 * ```
 * <name>              rest_for_one, intensity 0
 * ├── <name>.health   the device health server (GenServer): error counts, kernel placement, events
 * └── <name>.kernels  one_for_one supervisor of the kernel actors, each `transient`,
 *     └── <name>.kernel.<id>   registered under this name
 * ```
 *
 * - Health per device over a sliding window (DeviceHealth.ts): `warning` after the first error,
 *   `degraded` after more than 5, `critical` after more than 10.
 * - When a device becomes critical, every kernel actor on it is moved to the healthiest other
 *   device (`kernel_migrated`), and it uploads its resident arrays there from its host copy.
 * - Kernel actors are `transient`: one that finishes (`stopKernel`, exit `normal`) is not
 *   restarted; one that crashes is, on the device it was placed on (unless that is critical).
 * - Restart intensity of the kernel actors: `kernelRestartIntensity` restarts (10) within
 *   `kernelRestartPeriodMs` (5 s); one more and the kernels supervisor gives up. The GPU
 *   supervisor does not restart its own parts (intensity 0): when the health server crashes or
 *   the kernels supervisor gives up, it stops and the failure escalates to its parent.
 *
 * The devices are opened (and later destroyed) by the caller; give each its own fault hook and
 * the system's clock so watchdogs and the health window share one time. Start it on its own
 * (`GpuSupervisor.start`) or as a child of your tree (`GpuSupervisor.childSpec`, then
 * `GpuSupervisor.lookup` for a handle).
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { ActorSystem } from 'zbmd';
 * import { CpuBackend, Device, GpuSupervisor } from 'zbmd/gpu';
 *
 * const system = new ActorSystem();
 * // two devices in preference order (a webgpu:0 and the CPU, on a machine that has both)
 * const devices = [new Device(new CpuBackend(0), { clock: system.clock }), new Device(new CpuBackend(1), { clock: system.clock })];
 * const gpu = await GpuSupervisor.start(system, { devices, onEvent: () => {} });
 * const weight = new Float32Array([1, 0, 0, 1, 1, 1]); // 3 x 2
 * await gpu.startKernel({ id: 'dense1', resident: { weight } });
 * const { output, deviceId } = await gpu.launch('dense1', {
 *   kind: 'matmul', a: new Float32Array([1, 2, 3]), b: { resident: 'weight' }, m: 1, n: 2, k: 3,
 * });
 * assert.deepEqual(Array.from(output), [4, 5]);
 * assert.equal(deviceId, 'cpu:0');
 * assert.equal((await gpu.health())[0]?.level, 'healthy'); // [{ deviceId: 'cpu:0', level: 'healthy', errorCount: 0, ... }, ...]
 * system.shutdown();
 * for (const device of devices) device.destroy();
 * ```
 */
import {
  type ActorSystem,
  type Context,
  DEFAULT_CALL_TIMEOUT_MS,
  type Pid,
  startGenServer,
  systemOf,
} from '../actor/index.js';
import { TaggedError } from '../internal/errors.js';
import {
  type ChildInfo,
  type ChildSpec,
  deleteChild,
  startChild,
  startSupervisor,
  stopSupervisor,
  whichChildren,
} from '../supervision/index.js';
import type { Device } from './Device.js';
import { DEFAULT_HEALTH_WINDOW_MS, type DeviceHealthLevel, type DeviceHealthReport } from './DeviceHealth.js';
import type { GpuEventListener } from './GpuEvent.js';
import {
  type ErrorAcknowledged,
  HealthQuery,
  PlacementQuery,
  ReportDeviceError,
} from './internal/gpuMessages.js';
import { DeviceHealthServer } from './internal/healthServer.js';
import {
  DEFAULT_LAUNCH_TIMEOUT_MS,
  finishKernel,
  GpuKernelActor,
  type KernelOutput,
  type KernelStatus,
  kernelStatus,
  launchKernel,
} from './KernelActor.js';
import type { KernelRequest } from './KernelRequest.js';
import { InvalidKernelSpec, type KernelSpec, resolveKernelSpec } from './KernelSpec.js';

export interface GpuSupervisorOptions {
  /** The devices, in preference order (ties between equally healthy devices go to the earlier). */
  readonly devices: readonly Device[];
  /** Registered name of the supervisor; its parts are `<name>.health`, `<name>.kernels`. Default `gpu`. */
  readonly name?: string;
  /** Sliding window of the error counts, in ms. Default 60 s. */
  readonly healthWindowMs?: number;
  /** Kernel actor restarts allowed within `kernelRestartPeriodMs`. Default 10. */
  readonly kernelRestartIntensity?: number;
  readonly kernelRestartPeriodMs?: number;
  /** Most kernel actors at once. Default 1024. */
  readonly maxKernels?: number;
  /** Told about every health change and move (GpuEvent.ts); runs in the health server's turn. */
  readonly onEvent?: GpuEventListener;
}

export const DEFAULT_GPU_SUPERVISOR_NAME = 'gpu';
export const DEFAULT_KERNEL_RESTART_INTENSITY = 10;
export const DEFAULT_KERNEL_RESTART_PERIOD_MS = 5000;
export const DEFAULT_MAX_KERNELS = 1024;
/** Most devices one GPU supervisor watches. */
export const MAX_SUPERVISED_DEVICES = 64;

export type InvalidGpuSupervisorOptionsReason =
  | 'invalid_devices'
  | 'invalid_name'
  | 'invalid_health_window'
  | 'invalid_on_event';

export class InvalidGpuSupervisorOptions extends TaggedError('InvalidGpuSupervisorOptions') {
  constructor(
    readonly reason: InvalidGpuSupervisorOptionsReason,
    readonly value: unknown,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

/** A kernel actor that could not be started (`already_started`, or the supervisor's error). */
export class KernelStartFailed extends TaggedError('KernelStartFailed') {
  constructor(
    readonly kernelId: string,
    readonly reason: unknown,
  ) {
    super(`kernel '${kernelId}' did not start: ${reason instanceof Error ? reason.message : String(reason)}`);
  }
}

type Where = ActorSystem | Context;
type ResolvedOptions = Required<Omit<GpuSupervisorOptions, 'onEvent'>> & { onEvent?: GpuEventListener };

/** A handle on a running GPU supervisor: every method is a message to one of its processes. */
export class GpuSupervisor {
  /** The names its processes are registered under. */
  readonly names: { readonly health: string; readonly kernels: string };

  private constructor(
    readonly system: ActorSystem,
    /** The top supervisor (registered as `name`). */
    readonly pid: Pid,
    readonly name: string,
    private readonly deviceIds: ReadonlySet<string>,
  ) {
    this.names = { health: `${name}.health`, kernels: `${name}.kernels` };
  }

  /** Starts the tree (linked to the calling process when `where` is a context). */
  static async start(where: Where, options: GpuSupervisorOptions): Promise<GpuSupervisor> {
    const config = resolveOptions(options);
    const health = `${config.name}.health`;
    const healthSpec: ChildSpec = {
      id: 'health',
      start: (context) =>
        startGenServer(
          context,
          DeviceHealthServer,
          { devices: config.devices, windowMs: config.healthWindowMs, onEvent: config.onEvent },
          { link: true, name: health },
        ),
    };
    const kernelsSpec: ChildSpec = {
      id: 'kernels',
      type: 'supervisor',
      start: (context) =>
        startSupervisor(context, {
          strategy: 'one_for_one',
          intensity: config.kernelRestartIntensity,
          periodMs: config.kernelRestartPeriodMs,
          maxChildren: config.maxKernels,
          name: `${config.name}.kernels`,
        }),
    };
    const pid = await startSupervisor(where, {
      strategy: 'rest_for_one',
      intensity: 0,
      name: config.name,
      children: [healthSpec, kernelsSpec],
    });
    const system = systemOf(where);
    return new GpuSupervisor(system, pid, config.name, new Set(config.devices.map((device) => device.id)));
  }

  /**
   * A child spec that runs a GPU supervisor in a supervision tree of yours (options validated
   * now). Get a handle on it with `GpuSupervisor.lookup(system, name)`. Restarted by its parent,
   * it starts with no kernel actors: start them again from the parent's code.
   */
  static childSpec(id: string, options: GpuSupervisorOptions): ChildSpec {
    resolveOptions(options);
    return {
      id,
      type: 'supervisor',
      start: async (context) => (await GpuSupervisor.start(context, options)).pid,
    };
  }

  /** A handle on the running GPU supervisor registered as `name`; throws `RangeError` when none is. */
  static async lookup(system: ActorSystem, name = DEFAULT_GPU_SUPERVISOR_NAME): Promise<GpuSupervisor> {
    const pid = system.whereis(name);
    if (pid === undefined) throw new RangeError(`no GPU supervisor is registered as '${name}'`);
    const reports = await system.call<DeviceHealthReport[]>(`${name}.health`, new HealthQuery());
    return new GpuSupervisor(system, pid, name, new Set(reports.map((report) => report.deviceId)));
  }

  /** The registered name of kernel `kernelId`'s actor. */
  kernelName(kernelId: string): string {
    return `${this.name}.kernel.${kernelId}`;
  }

  /**
   * Starts a kernel actor (transient) on its preferred device, or the healthiest. A kernel that
   * finished earlier under the same id is replaced. Throws `InvalidKernelSpec` or `KernelStartFailed`.
   */
  async startKernel(spec: KernelSpec): Promise<Pid> {
    const resolved = resolveKernelSpec(spec);
    if (resolved.device !== undefined && !this.deviceIds.has(resolved.device))
      throw new InvalidKernelSpec('invalid_device', resolved.device, `not one of ${[...this.deviceIds]}`);
    const childSpec: ChildSpec = {
      id: resolved.id,
      restart: 'transient',
      start: (context) =>
        startGenServer(
          context,
          GpuKernelActor,
          { spec: resolved, healthServer: this.names.health },
          { link: true, name: this.kernelName(resolved.id) },
        ),
    };
    let result = await startChild(this.system, this.names.kernels, childSpec);
    if ('error' in result && result.error === 'already_present') {
      await deleteChild(this.system, this.names.kernels, resolved.id);
      result = await startChild(this.system, this.names.kernels, childSpec);
    }
    if ('error' in result) throw new KernelStartFailed(resolved.id, result.error);
    if (result.pid === undefined) throw new KernelStartFailed(resolved.id, 'ignored');
    return result.pid;
  }

  /**
   * Finishes kernel `kernelId`: it exits `normal` and, being transient, is not restarted (its
   * spec stays in the kernels supervisor, stopped). False when it was not running.
   */
  async stopKernel(kernelId: string): Promise<boolean> {
    const pid = this.system.whereis(this.kernelName(kernelId));
    if (pid === undefined) return false;
    const exited = this.system.whenExited(pid);
    await finishKernel(this.system, pid);
    await exited;
    return true;
  }

  /** Runs `request` on kernel `kernelId`; rejects with `InvalidKernelRequest` or `KernelLaunchFailed`. */
  launch(
    kernelId: string,
    request: KernelRequest,
    timeoutMs = DEFAULT_LAUNCH_TIMEOUT_MS,
  ): Promise<KernelOutput> {
    return launchKernel(this.system, this.kernelName(kernelId), request, timeoutMs);
  }

  kernelStatus(kernelId: string): Promise<KernelStatus> {
    return kernelStatus(this.system, this.kernelName(kernelId));
  }

  /** Every device's health now, in preference order. */
  health(timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<DeviceHealthReport[]> {
    return this.system.call(this.names.health, new HealthQuery(), timeoutMs);
  }

  /** Kernel id -> the id of the device it lives on. */
  placement(timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<Record<string, string>> {
    return this.system.call(this.names.health, new PlacementQuery(), timeoutMs);
  }

  /**
   * Counts an error against `deviceId` seen outside the kernel actors (a training step, a health
   * probe); it can make the device critical and move its kernels. Resolves with the new level.
   */
  async reportDeviceError(deviceId: string, error: string | Error): Promise<DeviceHealthLevel> {
    if (!this.deviceIds.has(deviceId))
      throw new RangeError(`reportDeviceError: unknown device '${deviceId}'`);
    const description = typeof error === 'string' ? error : `${error.name}: ${error.message}`;
    const report = new ReportDeviceError(deviceId, description, undefined);
    const acknowledged = await this.system.call<ErrorAcknowledged>(this.names.health, report);
    return acknowledged.level;
  }

  /** The kernel actors as their supervisor reports them (id, pid, restart type). */
  kernels(): Promise<ChildInfo[]> {
    return whichChildren(this.system, this.names.kernels);
  }

  /** Stops the kernel actors, then the health server (reverse start order). */
  stop(): Promise<void> {
    return stopSupervisor(this.system, this.pid);
  }
}

function resolveOptions(options: GpuSupervisorOptions): ResolvedOptions {
  const devices = options?.devices;
  if (!Array.isArray(devices) || devices.length === 0 || devices.length > MAX_SUPERVISED_DEVICES)
    throw new InvalidGpuSupervisorOptions(
      'invalid_devices',
      devices,
      `1 to ${MAX_SUPERVISED_DEVICES} devices`,
    );
  const ids = devices.map((device: Device) => device?.id);
  if (new Set(ids).size !== ids.length || ids.some((id) => typeof id !== 'string'))
    throw new InvalidGpuSupervisorOptions(
      'invalid_devices',
      ids,
      'devices must be open devices with distinct ids',
    );
  const name = options.name ?? DEFAULT_GPU_SUPERVISOR_NAME;
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(name))
    throw new InvalidGpuSupervisorOptions('invalid_name', name, 'name must be 1-64 of [A-Za-z0-9_.:-]');
  const healthWindowMs = options.healthWindowMs ?? DEFAULT_HEALTH_WINDOW_MS;
  if (typeof healthWindowMs !== 'number' || !(healthWindowMs > 0) || !Number.isFinite(healthWindowMs))
    throw new InvalidGpuSupervisorOptions(
      'invalid_health_window',
      healthWindowMs,
      'a finite number of ms > 0',
    );
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function')
    throw new InvalidGpuSupervisorOptions('invalid_on_event', options.onEvent, 'onEvent must be a function');
  return {
    devices,
    name,
    healthWindowMs,
    // intensity, period and maxChildren are checked by the kernels supervisor at start
    kernelRestartIntensity: options.kernelRestartIntensity ?? DEFAULT_KERNEL_RESTART_INTENSITY,
    kernelRestartPeriodMs: options.kernelRestartPeriodMs ?? DEFAULT_KERNEL_RESTART_PERIOD_MS,
    maxKernels: options.maxKernels ?? DEFAULT_MAX_KERNELS,
    onEvent: options.onEvent,
  };
}
