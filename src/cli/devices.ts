/**
 * `zbmd devices`: the devices present, the default choice, and why a backend is missing.
 * `write` gets one line at a time (a table, or one JSON object with `--json`).
 */
import { cpus } from 'node:os';
import { chooseDefault, detectDevices, parseDeviceSpec } from '../gpu/detect.js';
import type { DeviceInfo } from '../gpu/types.js';

const GIBIBYTE = 1024 ** 3;

function details(device: DeviceInfo): string {
  if (device.computeCapability !== undefined) return `compute capability ${device.computeCapability}`;
  if (device.adapter !== undefined) return `${device.adapter}${device.software ? ' (software)' : ''}`;
  return device.backend === 'cpu' ? `${cpus().length} cores, reference kernels` : '';
}

function memory(device: DeviceInfo): string {
  return device.memoryBytes > 0 ? `${(device.memoryBytes / GIBIBYTE).toFixed(1)} GiB` : 'n/a';
}

export async function devicesCommand(
  options: { json: boolean },
  write: (line: string) => void,
): Promise<void> {
  const { devices, unavailable } = await detectDevices();
  const override = process.env.ZBMD_DEVICE?.trim();
  // A bad override is reported here as it would be when opening the default device.
  const chosen = override ? parseDeviceSpec(override) : chooseDefault(devices);
  const defaultId = `${chosen.backend}:${chosen.index}`;
  if (options.json) {
    const missing = unavailable.map((error) => ({ backend: error.backend, reason: error.reason }));
    write(JSON.stringify({ default: defaultId, override: override || null, devices, unavailable: missing }));
    return;
  }
  const rows = devices.map((device) => [
    device.id === defaultId ? `* ${device.id}` : `  ${device.id}`,
    device.name,
    memory(device),
    details(device),
  ]);
  const header = ['  id', 'name', 'memory', 'details'];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length)),
  );
  for (const row of [header, ...rows])
    write(
      row
        .map((cell, column) => cell.padEnd(widths[column]))
        .join('  ')
        .trimEnd(),
    );
  write(`default: ${defaultId}${override ? ' (from ZBMD_DEVICE)' : ''}`);
  for (const error of unavailable) write(`${error.backend}: unavailable: ${error.reason}`);
}
