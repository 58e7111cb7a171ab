/**
 * How healthy each device is, from the errors reported against it (seeds/001 `GpuSupervisor`,
 * `handleGpuError`). Errors are counted over a sliding window on the injected clock, so a device
 * that stops failing recovers on its own, and tests drive the window with a `SimulatedClock`.
 *
 * | errors in the window | level      |
 * | -------------------- | ---------- |
 * | 0                    | `healthy`  |
 * | 1 to 5               | `warning`  |
 * | 6 to 10              | `degraded` |
 * | 11 or more           | `critical` |
 *
 * An error counts while `nowMs - errorMs < windowMs` (60 s by default). At most 1024 error times
 * are kept per device (`MAX_ERRORS_KEPT_PER_DEVICE`); beyond that the oldest is dropped, so the
 * count saturates at 1024, far above `critical`.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { DeviceHealthTracker } from 'zbmd/gpu';
 *
 * const tracker = new DeviceHealthTracker(['cpu:0', 'cpu:1']);
 * const change = tracker.record('cpu:0', 0, 'injected device error');
 * assert.equal(change?.current, 'warning'); // { previous: 'healthy', current: 'warning', ... }
 * assert.equal(tracker.healthiest(0, new Set(['cpu:0'])), 'cpu:1');
 * ```
 */
import { TaggedError } from '../internal/errors.js';

export type DeviceHealthLevel = 'healthy' | 'warning' | 'degraded' | 'critical';

/** Levels from best to worst; a level's index is its severity. */
export const DEVICE_HEALTH_LEVELS: readonly DeviceHealthLevel[] = [
  'healthy',
  'warning',
  'degraded',
  'critical',
];

/** More than this many errors in the window: `degraded`. */
export const DEGRADED_AFTER_ERRORS = 5;
/** More than this many errors in the window: `critical` (kernel actors are moved off the device). */
export const CRITICAL_AFTER_ERRORS = 10;
/** Default length of the sliding window errors are counted over. */
export const DEFAULT_HEALTH_WINDOW_MS = 60_000;
/** Error times kept per device; the oldest is dropped beyond it. */
export const MAX_ERRORS_KEPT_PER_DEVICE = 1024;

/** The level for a number of errors in the window (the table above). */
export function healthLevel(errorCount: number): DeviceHealthLevel {
  if (errorCount > CRITICAL_AFTER_ERRORS) return 'critical';
  if (errorCount > DEGRADED_AFTER_ERRORS) return 'degraded';
  if (errorCount > 0) return 'warning';
  return 'healthy';
}

/** Severity of a level: 0 (healthy) to 3 (critical). */
export function healthSeverity(level: DeviceHealthLevel): number {
  return DEVICE_HEALTH_LEVELS.indexOf(level);
}

/** One device's health as queries report it. */
export interface DeviceHealthReport {
  readonly deviceId: string;
  readonly level: DeviceHealthLevel;
  /** Errors within the window now. */
  readonly errorCount: number;
  /** When the last error in the window was recorded (clock ms); undefined when there is none. */
  readonly lastErrorMs: number | undefined;
  /** The last error's description; undefined when none was recorded. */
  readonly lastError: string | undefined;
}

/** What one recorded error did to its device's level. */
export interface HealthChange {
  readonly deviceId: string;
  readonly previous: DeviceHealthLevel;
  readonly current: DeviceHealthLevel;
  readonly errorCount: number;
}

/** Thrown for a device id the tracker was not given: a caller's bug. */
export class UnknownDevice extends TaggedError('UnknownDevice') {
  constructor(readonly deviceId: string) {
    super(`unknown device '${deviceId}'`);
  }
}

interface DeviceErrors {
  /** Error times in ms, oldest first. */
  readonly times: number[];
  lastError: string | undefined;
}

/** Error counts per device over a sliding window; pure bookkeeping, no actors, no timers. */
export class DeviceHealthTracker {
  private readonly devices = new Map<string, DeviceErrors>();

  constructor(
    /** Device ids in preference order: ties between equally healthy devices go to the earlier one. */
    deviceIds: readonly string[],
    readonly windowMs: number = DEFAULT_HEALTH_WINDOW_MS,
  ) {
    if (!(windowMs > 0) || !Number.isFinite(windowMs))
      throw new RangeError(`windowMs must be a finite number > 0, got ${windowMs}`);
    for (const id of deviceIds) this.devices.set(id, { times: [], lastError: undefined });
  }

  get deviceIds(): string[] {
    return [...this.devices.keys()];
  }

  has(deviceId: string): boolean {
    return this.devices.has(deviceId);
  }

  /** Records one error against `deviceId` at `nowMs` and says how its level changed. */
  record(deviceId: string, nowMs: number, description?: string): HealthChange {
    const errors = this.errorsOf(deviceId, nowMs);
    const previous = healthLevel(errors.times.length);
    errors.times.push(nowMs);
    if (errors.times.length > MAX_ERRORS_KEPT_PER_DEVICE) errors.times.shift();
    errors.lastError = description ?? errors.lastError;
    const errorCount = errors.times.length;
    return { deviceId, previous, current: healthLevel(errorCount), errorCount };
  }

  level(deviceId: string, nowMs: number): DeviceHealthLevel {
    return healthLevel(this.errorsOf(deviceId, nowMs).times.length);
  }

  report(deviceId: string, nowMs: number): DeviceHealthReport {
    const errors = this.errorsOf(deviceId, nowMs);
    const errorCount = errors.times.length;
    return {
      deviceId,
      level: healthLevel(errorCount),
      errorCount,
      lastErrorMs: errorCount > 0 ? errors.times[errorCount - 1] : undefined,
      lastError: errors.lastError,
    };
  }

  reports(nowMs: number): DeviceHealthReport[] {
    return this.deviceIds.map((id) => this.report(id, nowMs));
  }

  /**
   * The healthiest device not in `excluded`: lowest level, then fewest errors, then the earlier in
   * preference order. Critical devices are never chosen unless `allowCritical` (a kernel must live
   * somewhere when every device is critical). Undefined when none qualifies.
   */
  healthiest(nowMs: number, excluded: ReadonlySet<string>, allowCritical = false): string | undefined {
    let best: DeviceHealthReport | undefined;
    for (const id of this.devices.keys()) {
      if (excluded.has(id)) continue;
      const candidate = this.report(id, nowMs);
      if (candidate.level === 'critical' && !allowCritical) continue;
      if (best === undefined || candidate.errorCount < best.errorCount) best = candidate;
    }
    return best?.deviceId;
  }

  /** The device's error record with errors older than the window dropped. */
  private errorsOf(deviceId: string, nowMs: number): DeviceErrors {
    const errors = this.devices.get(deviceId);
    if (errors === undefined) throw new UnknownDevice(deviceId);
    const oldestKeptMs = nowMs - this.windowMs;
    while (errors.times.length > 0 && errors.times[0] <= oldestKeptMs) errors.times.shift();
    return errors;
  }
}
