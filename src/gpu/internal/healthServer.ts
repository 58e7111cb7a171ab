/**
 * The GPU supervisor's device health server: a GenServer that counts the errors reported
 * against each device (DeviceHealth.ts), knows which device each kernel actor lives on, and
 * moves kernel actors off a device the moment it becomes critical. Kernel actors call it; it
 * only ever casts to them, so the two can never wait on each other.
 */
import {
  type CallFrom,
  type Context,
  castTo,
  DownMessage,
  type GenServer,
  isNormalOrShutdown,
  type Pid,
  type Ref,
  reply,
} from '../../actor/index.js';
import type { Device } from '../Device.js';
import { DeviceHealthTracker, healthSeverity } from '../DeviceHealth.js';
import type { GpuEvent, GpuEventListener, MigrationReason } from '../GpuEvent.js';
import {
  type ErrorAcknowledged,
  HealthQuery,
  MigrateKernel,
  PlacementQuery,
  RegisterKernel,
  ReportDeviceError,
  RequestMigration,
} from './gpuMessages.js';

export interface HealthServerArgs {
  /** In preference order: ties between equally healthy devices go to the earlier one. */
  readonly devices: readonly Device[];
  readonly windowMs: number;
  readonly onEvent: GpuEventListener | undefined;
}

interface Placement {
  deviceId: string;
  /** The running kernel actor; undefined while its supervisor restarts it. */
  pid: Pid | undefined;
  monitor: Ref | undefined;
}

interface HealthState {
  readonly devices: ReadonlyMap<string, Device>;
  readonly tracker: DeviceHealthTracker;
  /** Kernel id -> where it lives, in registration order. */
  readonly kernels: Map<string, Placement>;
  readonly onEvent: GpuEventListener | undefined;
}

export const DeviceHealthServer: GenServer<HealthState, HealthServerArgs> = {
  init(args) {
    const devices = new Map(args.devices.map((device) => [device.id, device]));
    return {
      devices,
      tracker: new DeviceHealthTracker([...devices.keys()], args.windowMs),
      kernels: new Map(),
      onEvent: args.onEvent,
    };
  },

  handleCall(request: unknown, from: CallFrom, state: HealthState, context: Context) {
    const now = context.system.clock.now();
    if (request instanceof RegisterKernel) return reply(register(request, from, state, context), state);
    if (request instanceof ReportDeviceError) return reply(recordError(request, state, context), state);
    if (request instanceof RequestMigration) return reply(moveOnRequest(request, state, now), state);
    if (request instanceof HealthQuery) return reply(state.tracker.reports(now), state);
    if (request instanceof PlacementQuery) {
      const placement = [...state.kernels].map(([kernelId, { deviceId }]) => [kernelId, deviceId]);
      return reply(Object.fromEntries(placement), state);
    }
    throw new TypeError(`device health server: unexpected call ${String(request)}`);
  },

  handleInfo(message: unknown, state: HealthState) {
    if (message instanceof DownMessage) kernelDown(message, state);
    return state;
  },
};

/** A kernel actor (re)starting: it keeps its device unless that is critical now. */
function register(request: RegisterKernel, from: CallFrom, state: HealthState, context: Context): Device {
  const pid = from.caller;
  if (pid === undefined) throw new TypeError('RegisterKernel must come from a kernel actor');
  const now = context.system.clock.now();
  const { tracker } = state;
  const existing = state.kernels.get(request.kernelId);
  if (existing?.monitor !== undefined) context.demonitor(existing.monitor, { flush: true });
  const preferred = request.preferredDeviceId;
  const usable = (id: string | undefined): id is string =>
    id !== undefined && tracker.has(id) && tracker.level(id, now) !== 'critical';
  let deviceId = existing?.deviceId ?? (usable(preferred) ? preferred : undefined);
  deviceId ??= tracker.healthiest(now, new Set(), true) as string;
  if (tracker.level(deviceId, now) === 'critical') {
    const better = tracker.healthiest(now, new Set([deviceId]));
    if (better !== undefined) {
      emit(state, migrated(request.kernelId, deviceId, better, 'device_critical', now));
      deviceId = better;
    }
  }
  state.kernels.set(request.kernelId, { deviceId, pid, monitor: context.monitor(pid) });
  return deviceOf(state, deviceId);
}

function recordError(request: ReportDeviceError, state: HealthState, context: Context): ErrorAcknowledged {
  const now = context.system.clock.now();
  const change = state.tracker.record(request.deviceId, now, request.error);
  const { current, previous, errorCount } = change;
  if (current !== 'healthy' && healthSeverity(current) > healthSeverity(previous)) {
    const kind = `device_${current}` as const;
    emit(state, {
      kind,
      deviceId: request.deviceId,
      level: current,
      errorCount,
      error: request.error,
      timeMs: now,
    });
  }
  if (current === 'critical' && previous !== 'critical') moveAllOff(request.deviceId, state, context, now);
  const placement = request.kernelId === undefined ? undefined : state.kernels.get(request.kernelId);
  return {
    level: current,
    assigned: placement === undefined ? undefined : deviceOf(state, placement.deviceId),
  };
}

/** Moves every kernel on the critical device `from` to the healthiest other device. */
function moveAllOff(from: string, state: HealthState, context: Context, now: number): void {
  for (const [kernelId, placement] of state.kernels) {
    if (placement.deviceId !== from) continue;
    const target = state.tracker.healthiest(now, new Set([from]));
    if (target === undefined) {
      emit(state, { kind: 'no_healthy_device', kernelId, from, reason: 'device_critical', timeMs: now });
      continue;
    }
    placement.deviceId = target;
    emit(state, migrated(kernelId, from, target, 'device_critical', now));
    if (placement.pid !== undefined)
      castTo(context, placement.pid, new MigrateKernel(deviceOf(state, target)));
  }
}

/** A launch used up its retries: the healthiest device it has not tried, or undefined. */
function moveOnRequest(request: RequestMigration, state: HealthState, now: number): Device | undefined {
  const { kernelId, fromDeviceId: from } = request;
  const target = state.tracker.healthiest(now, new Set(request.excluded));
  if (target === undefined) {
    emit(state, { kind: 'no_healthy_device', kernelId, from, reason: 'retries_exhausted', timeMs: now });
    return undefined;
  }
  const placement = state.kernels.get(kernelId);
  if (placement !== undefined) placement.deviceId = target;
  emit(state, migrated(kernelId, from, target, 'retries_exhausted', now));
  return deviceOf(state, target);
}

/** A kernel that finished (normal, shutdown) is forgotten; one that crashed keeps its place for its restart. */
function kernelDown(message: DownMessage, state: HealthState): void {
  for (const [kernelId, placement] of state.kernels) {
    if (placement.monitor !== message.ref) continue;
    if (isNormalOrShutdown(message.reason)) state.kernels.delete(kernelId);
    else {
      placement.pid = undefined;
      placement.monitor = undefined;
    }
    return;
  }
}

function migrated(
  kernelId: string,
  from: string,
  to: string,
  reason: MigrationReason,
  timeMs: number,
): GpuEvent {
  return { kind: 'kernel_migrated', kernelId, from, to, reason, timeMs };
}

function deviceOf(state: HealthState, deviceId: string): Device {
  const device = state.devices.get(deviceId);
  if (device === undefined) throw new RangeError(`device health server: unknown device '${deviceId}'`);
  return device;
}

/** Tells the listener; a listener that throws is reported on stderr and never stops the server. */
function emit(state: HealthState, event: GpuEvent): void {
  if (state.onEvent === undefined) return;
  try {
    state.onEvent(event);
  } catch (error) {
    console.error(`GPU supervisor event listener failed on ${event.kind}:`, error);
  }
}
