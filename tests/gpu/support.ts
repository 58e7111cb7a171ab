/** Which backends this machine has, probed once per test file; a skip always says why. */
import { isBackendUnavailable, listCudaDevices, requestWebGpuAdapter } from '../../src/gpu/index.js';

export interface Availability {
  readonly available: boolean;
  readonly reason: string;
}

export async function probeWebGpu(): Promise<Availability> {
  try {
    const report = await requestWebGpuAdapter();
    return { available: true, reason: report.description };
  } catch (error) {
    if (!isBackendUnavailable(error)) throw error;
    console.warn(`skipping WebGPU tests: ${error.message}`);
    return { available: false, reason: error.message };
  }
}

export function probeCuda(): Availability {
  try {
    const devices = listCudaDevices();
    if (devices.length === 0) {
      console.warn('skipping CUDA device tests: the driver sees no device');
      return { available: false, reason: 'no CUDA device' };
    }
    return { available: true, reason: devices.map((device) => device.name).join(', ') };
  } catch (error) {
    if (!isBackendUnavailable(error)) throw error;
    console.warn(`skipping CUDA device tests: ${error.message}`);
    return { available: false, reason: error.message };
  }
}
