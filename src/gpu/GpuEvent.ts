/**
 * What the GPU supervisor did, one event per action (told to `GpuSupervisorOptions.onEvent`):
 * - `device_warning`, `device_degraded`, `device_critical`: a reported error raised a device's
 *   health to that level (see DeviceHealth.ts for the thresholds);
 * - `kernel_migrated`: a kernel actor was moved `from` one device `to` another, because its
 *   device went critical or because its launch used up its retries there;
 * - `no_healthy_device`: a kernel actor had to move but every other device is critical (or
 *   already tried by the launch); it stays where it is.
 *
 * `timeMs` is the supervisor's clock (`system.clock.now()`) when it happened.
 */
import type { DeviceHealthLevel } from './DeviceHealth.js';

export interface DeviceHealthEvent {
  readonly kind: 'device_warning' | 'device_degraded' | 'device_critical';
  readonly deviceId: string;
  readonly level: Exclude<DeviceHealthLevel, 'healthy'>;
  /** Errors in the health window, this one included. */
  readonly errorCount: number;
  /** The error that raised the level. */
  readonly error: string;
  readonly timeMs: number;
}

export type MigrationReason = 'device_critical' | 'retries_exhausted';

export interface KernelMigratedEvent {
  readonly kind: 'kernel_migrated';
  readonly kernelId: string;
  readonly from: string;
  readonly to: string;
  readonly reason: MigrationReason;
  readonly timeMs: number;
}

export interface NoHealthyDeviceEvent {
  readonly kind: 'no_healthy_device';
  readonly kernelId: string;
  readonly from: string;
  readonly reason: MigrationReason;
  readonly timeMs: number;
}

export type GpuEvent = DeviceHealthEvent | KernelMigratedEvent | NoHealthyDeviceEvent;

export type GpuEventListener = (event: GpuEvent) => void;

/** One log line: `[12.0 ms] kernel_migrated matmul cpu:0 -> cpu:1 (device_critical)`. */
export function formatGpuEvent(event: GpuEvent): string {
  const time = `[${event.timeMs.toFixed(1)} ms]`;
  switch (event.kind) {
    case 'kernel_migrated':
      return `${time} kernel_migrated ${event.kernelId} ${event.from} -> ${event.to} (${event.reason})`;
    case 'no_healthy_device':
      return `${time} no_healthy_device ${event.kernelId} stays on ${event.from} (${event.reason})`;
    default:
      return `${time} ${event.kind} ${event.deviceId} after ${event.errorCount} errors (${event.error})`;
  }
}
