/**
 * Which devices this machine has, which one to use by default, and how to open one by name.
 *
 * Default choice, best first: CUDA, WebGPU on a hardware adapter, the cpu backend, WebGPU on a
 * software adapter (SwiftShader runs on the CPU, slower than the cpu backend's plain loops for
 * most work, so it is used only when asked for). `ZBMD_DEVICE` (`cpu`, `webgpu`, `webgpu:0`,
 * `cuda:1`) overrides the choice; a bad value is an `InvalidDeviceSpec`.
 */

import { TaggedError } from '../internal/errors.js';
import { CpuBackend } from './backends/CpuBackend.js';
import { CudaBackend, listCudaDevices } from './backends/CudaBackend.js';
import { requestWebGpuAdapters, WebGpuBackend } from './backends/WebGpuBackend.js';
import { Device, type DeviceOptions } from './Device.js';
import { BackendUnavailable } from './errors.js';
import { BACKEND_KINDS, type BackendKind, type DeviceInfo } from './types.js';

/** A device named as `backend` or `backend:index`. */
export interface DeviceSpec {
  readonly backend: BackendKind;
  readonly index: number;
}

/** `ZBMD_DEVICE` or an `openDevice` argument that names no device. */
export class InvalidDeviceSpec extends TaggedError('InvalidDeviceSpec') {
  constructor(readonly spec: string) {
    super(`invalid device '${spec}': expected cpu, webgpu or cuda, optionally with :index (cuda:1)`);
  }
}

export function parseDeviceSpec(text: string): DeviceSpec {
  const match = /^(cpu|webgpu|cuda)(?::(0|[1-9][0-9]{0,3}))?$/.exec(text.trim().toLowerCase());
  if (match === null) throw new InvalidDeviceSpec(text);
  return { backend: match[1] as BackendKind, index: match[2] === undefined ? 0 : Number(match[2]) };
}

export interface Detection {
  /** Devices present, in backend order (cpu, webgpu, cuda). */
  readonly devices: readonly DeviceInfo[];
  /** Backends that are not usable here, each with its one-line reason. */
  readonly unavailable: readonly BackendUnavailable[];
}

async function detectWebGpu(): Promise<DeviceInfo[]> {
  const reports = await requestWebGpuAdapters();
  return reports.map((report, index) => {
    const info = report.adapter.info;
    const limits = report.adapter.limits;
    return {
      id: `webgpu:${index}`,
      backend: 'webgpu',
      index,
      name: info.description || info.device || 'WebGPU adapter',
      memoryBytes: 0,
      adapter: report.description,
      software: report.software,
      copyAlignmentBytes: 4,
      maxBufferBytes: Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize),
    };
  });
}

/** Lists every device present; a missing backend is reported in `unavailable`, never thrown. */
export async function detectDevices(): Promise<Detection> {
  const devices: DeviceInfo[] = [new CpuBackend(0).info()];
  const unavailable: BackendUnavailable[] = [];
  const probes: [BackendKind, () => Promise<DeviceInfo[]> | DeviceInfo[]][] = [
    ['webgpu', detectWebGpu],
    ['cuda', listCudaDevices],
  ];
  for (const [backend, probe] of probes) {
    try {
      devices.push(...(await probe()));
    } catch (error) {
      unavailable.push(
        error instanceof BackendUnavailable
          ? error
          : new BackendUnavailable(backend, (error as Error).message, { cause: error }),
      );
    }
  }
  return { devices, unavailable };
}

/** Ranking for the default choice: higher is better. */
export function deviceRank(device: DeviceInfo): number {
  if (device.backend === 'cuda') return 3;
  if (device.backend === 'webgpu') return device.software ? 0 : 2;
  return 1;
}

/** The best of `devices` (ties keep detection order). */
export function chooseDefault(devices: readonly DeviceInfo[]): DeviceInfo {
  let best: DeviceInfo | undefined;
  for (const device of devices)
    if (best === undefined || deviceRank(device) > deviceRank(best)) best = device;
  if (best === undefined) throw new RangeError('chooseDefault: no devices');
  return best;
}

/** Opens a device by spec (`'webgpu'`, `'cuda:1'`, or a `DeviceSpec`). */
export async function openDevice(
  spec: string | DeviceSpec = 'cpu',
  options: DeviceOptions = {},
): Promise<Device> {
  const { backend, index } = typeof spec === 'string' ? parseDeviceSpec(spec) : spec;
  if (!BACKEND_KINDS.includes(backend)) throw new InvalidDeviceSpec(String(backend));
  switch (backend) {
    case 'cpu':
      if (index !== 0) throw new BackendUnavailable('cpu', `only cpu:0 exists, asked for cpu:${index}`);
      return new Device(new CpuBackend(0), options);
    case 'webgpu':
      return new Device(await WebGpuBackend.open(index), options);
    case 'cuda':
      return new Device(CudaBackend.open(index), options);
  }
}

/**
 * Opens the device `ZBMD_DEVICE` names, or else the best one present (see the ranking above).
 * `environment` defaults to `process.env`.
 */
export async function defaultDevice(
  options: DeviceOptions = {},
  environment: NodeJS.ProcessEnv = process.env,
): Promise<Device> {
  const override = environment.ZBMD_DEVICE;
  if (override !== undefined && override.trim() !== '') return openDevice(parseDeviceSpec(override), options);
  const { devices } = await detectDevices();
  const best = chooseDefault(devices);
  return openDevice({ backend: best.backend, index: best.index }, options);
}
