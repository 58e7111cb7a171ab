/** Messages between kernel actors and the device health server (GpuSupervisor.ts). */
import type { Device } from '../Device.js';
import type { DeviceHealthLevel } from '../DeviceHealth.js';
import type { KernelRequest } from '../KernelRequest.js';

// ---- to the health server (calls) -------------------------------------------------------------

/** A kernel actor starting (or restarting): reply its `Device`. */
export class RegisterKernel {
  constructor(
    readonly kernelId: string,
    readonly preferredDeviceId: string | undefined,
  ) {}
}

/** An error on `deviceId` (from kernel `kernelId`, or from outside): reply `ErrorAcknowledged`. */
export class ReportDeviceError {
  constructor(
    readonly deviceId: string,
    readonly error: string,
    readonly kernelId: string | undefined,
  ) {}
}

export interface ErrorAcknowledged {
  readonly level: DeviceHealthLevel;
  /** The kernel's device now (another one when this error made its device critical). */
  readonly assigned: Device | undefined;
}

/** A kernel's launch used up its retries on `fromDeviceId`: reply the new `Device` or undefined. */
export class RequestMigration {
  constructor(
    readonly kernelId: string,
    readonly fromDeviceId: string,
    /** Devices the launch already tried. */
    readonly excluded: readonly string[],
  ) {}
}

export class HealthQuery {}

export class PlacementQuery {}

// ---- to a kernel actor ------------------------------------------------------------------------

/** Call: run `request`; reply a `KernelReply`. */
export class LaunchKernel {
  constructor(readonly request: KernelRequest) {}
}

/** Cast from the health server: the kernel now lives on `device`. */
export class MigrateKernel {
  constructor(readonly device: Device) {}
}

/** Call: finish (exit `normal`; a transient kernel is then not restarted). */
export class StopKernel {}

/** Call: reply the kernel's `KernelStatus`. */
export class KernelStatusQuery {}
