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

/**
 * Lists the devices; resolves to the exit code: 0, or 2 when `ZBMD_DEVICE` names a device that
 * is not present (reported, with the devices that are, rather than ignored).
 */
export async function devicesCommand(
  options: { json: boolean },
  write: (line: string) => void,
): Promise<number> {
  const { devices, unavailable } = await detectDevices();
  const override = process.env.ZBMD_DEVICE?.trim();
  // A bad override is reported here as it would be when opening the default device.
  const chosen = override ? parseDeviceSpec(override) : chooseDefault(devices);
  const defaultId = `${chosen.backend}:${chosen.index}`;
  const absent = override && !devices.some((device) => device.id === defaultId);
  const overrideError = absent
    ? `ZBMD_DEVICE=${override} names ${defaultId}, which is not present; devices here: ${devices.map((device) => device.id).join(', ')}`
    : undefined;
  if (options.json) {
    const missing = unavailable.map((error) => ({ backend: error.backend, reason: error.reason }));
    write(
      JSON.stringify({
        default: defaultId,
        override: override || null,
        override_error: overrideError ?? null,
        devices,
        unavailable: missing,
      }),
    );
    return overrideError === undefined ? 0 : 2;
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
  if (overrideError === undefined) return 0;
  write(overrideError);
  return 2;
}
