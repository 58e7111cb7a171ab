/**
 * The seeded `FaultInjector` (src/fault) as a device fault hook, so injected device errors,
 * out-of-memory and hung kernels reach every backend (cpu, WebGPU, CUDA) through the one place
 * a `Device` asks before each launch (`DeviceCore.enqueue`).
 *
 * Each launch asks all three questions, in this order: `shouldFailGpu(deviceId)`,
 * `shouldOom()`, `shouldTimeoutKernel()`; then the first yes wins (error, then oom, then
 * timeout). Asking all three every time keeps each fault kind's random stream independent of
 * the others' outcomes, so a run replays from its seed even when one rate is changed.
 *
 * - `'error'`: the launch throws `DeviceError` ("injected device error");
 * - `'oom'`: the launch throws `OutOfDeviceMemory`;
 * - `'timeout'`: the kernel hangs (its stream never completes): the watchdog deadline of the
 *   launch or of the next synchronization point turns it into a `KernelTimeout` on the device's
 *   clock, so a `SimulatedClock` tests it without sleeping.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { SimulatedClock } from 'zbmd';
 * import { FaultInjector } from 'zbmd/fault';
 * import { gpuFaultHook, isDeviceError, openDevice } from 'zbmd/gpu';
 *
 * const faults = new FaultInjector({ gpuErrorRate: 1, seed: 7 }); // every launch fails
 * const device = await openDevice('cpu', { faultHook: gpuFaultHook(faults), clock: new SimulatedClock() });
 * const x = device.upload(new Float32Array([1, -1]));
 * assert.throws(() => device.unary('relu', x, device.allocate(8)), isDeviceError);
 * device.destroy();
 * ```
 */
import type { FaultInjector } from '../fault/FaultInjector.js';
import type { FaultDecision, FaultHook } from './types.js';

export interface GpuFaultHookOptions {
  /**
   * Only launches on these devices are asked about (and consume fault decisions); every device
   * by default. Lets one injector, shared by several devices, fail just one of them.
   */
  readonly deviceIds?: readonly string[];
}

/** A `FaultHook` that draws its decisions from `injector` (see the module comment). */
export function gpuFaultHook(injector: FaultInjector, options: GpuFaultHookOptions = {}): FaultHook {
  const only = options.deviceIds === undefined ? undefined : new Set(options.deviceIds);
  return {
    beforeLaunch(deviceId: string, _kernelName: string): FaultDecision {
      if (only !== undefined && !only.has(deviceId)) return 'ok';
      const error = injector.shouldFailGpu(deviceId);
      const outOfMemory = injector.shouldOom();
      const timeout = injector.shouldTimeoutKernel();
      if (error) return 'error';
      if (outOfMemory) return 'oom';
      if (timeout) return 'timeout';
      return 'ok';
    },
  };
}
