/**
 * Typed GPU errors. Each carries the device id and the operation that failed, so a supervisor
 * can match on the class (`isOutOfDeviceMemory(error)`) and act: shrink the batch on
 * `OutOfDeviceMemory`, restart the kernel on `KernelTimeout`, pick another backend on
 * `BackendUnavailable`.
 */
import { TaggedError } from '../internal/errors.js';

/** Any failure of a device operation: a bad argument, a backend error, an injected fault. */
/** The tags of the DeviceError family. */
export type DeviceErrorTag = 'DeviceError' | 'OutOfDeviceMemory' | 'KernelTimeout';

export class DeviceError extends TaggedError<'DeviceError', DeviceErrorTag>('DeviceError') {
  constructor(
    /** The device, as `backend:index` (`cpu:0`, `webgpu:0`, `cuda:1`). */
    readonly deviceId: string,
    /** The public operation that failed (`allocate`, `copyIn`, `matmul`, ...). */
    readonly operation: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${deviceId} ${operation}: ${message}`, options);
  }
}

/** The device (or its configured memory limit) cannot hold `requestedBytes` more. */
export class OutOfDeviceMemory extends DeviceError {
  static override readonly tag = 'OutOfDeviceMemory';
  override readonly _tag = 'OutOfDeviceMemory';
  override readonly name = 'OutOfDeviceMemory';
  constructor(
    deviceId: string,
    operation: string,
    readonly requestedBytes: number,
    /** Bytes that could still be allocated when the request failed (best knowledge). */
    readonly availableBytes: number,
    detail = '',
  ) {
    super(
      deviceId,
      operation,
      `out of device memory: requested ${requestedBytes} bytes, ${availableBytes} available${detail ? ` (${detail})` : ''}`,
    );
  }
}

/** A kernel did not finish before its watchdog deadline. */
export class KernelTimeout extends DeviceError {
  static override readonly tag = 'KernelTimeout';
  override readonly _tag = 'KernelTimeout';
  override readonly name = 'KernelTimeout';
  constructor(
    deviceId: string,
    readonly kernelName: string,
    readonly deadlineMs: number,
  ) {
    super(deviceId, kernelName, `kernel did not finish within its ${deadlineMs} ms deadline`);
  }
}

/** A backend cannot be used on this machine; `reason` is one line (library missing, no adapter). */
export class BackendUnavailable extends TaggedError('BackendUnavailable') {
  constructor(
    readonly backend: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${backend} backend unavailable: ${reason}`, options);
  }
}

export function isDeviceError(error: unknown): error is DeviceError {
  return error instanceof DeviceError;
}

export function isOutOfDeviceMemory(error: unknown): error is OutOfDeviceMemory {
  return error instanceof OutOfDeviceMemory;
}

export function isKernelTimeout(error: unknown): error is KernelTimeout {
  return error instanceof KernelTimeout;
}

export function isBackendUnavailable(error: unknown): error is BackendUnavailable {
  return error instanceof BackendUnavailable;
}

/** Thrown by a backend hook when the native allocator is out of memory; the Device types it. */
export class NativeOutOfMemory extends TaggedError('NativeOutOfMemory') {
  constructor(
    readonly requestedBytes: number,
    readonly availableBytes: number,
  ) {
    super(`native allocator out of memory for ${requestedBytes} bytes`);
  }
}
