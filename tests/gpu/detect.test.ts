import { describe, expect, it } from 'vitest';
import { devicesCommand } from '../../src/cli/devices.js';
import {
  addSwiftshaderDriver,
  chooseDefault,
  type DeviceInfo,
  defaultDevice,
  detectDevices,
  InvalidDeviceSpec,
  openDevice,
  parseDeviceSpec,
  prepareVulkan,
  SWIFTSHADER_ICD,
} from '../../src/gpu/index.js';

function info(backend: DeviceInfo['backend'], software: boolean, index = 0): DeviceInfo {
  return {
    id: `${backend}:${index}`,
    backend,
    index,
    name: backend,
    memoryBytes: 1,
    software,
    copyAlignmentBytes: 1,
    maxBufferBytes: 1,
  };
}

describe('device specs and the default choice', () => {
  it('parses backend[:index] and rejects anything else with a clear error', () => {
    expect(parseDeviceSpec('cpu')).toEqual({ backend: 'cpu', index: 0 });
    expect(parseDeviceSpec('webgpu:0')).toEqual({ backend: 'webgpu', index: 0 });
    expect(parseDeviceSpec(' CUDA:1 ')).toEqual({ backend: 'cuda', index: 1 });
    for (const bad of ['gpu', 'cuda:', 'cuda:-1', 'cuda:01', 'cpu:0:1', '']) {
      expect(() => parseDeviceSpec(bad)).toThrow(InvalidDeviceSpec);
    }
    expect(() => parseDeviceSpec('tpu')).toThrow(
      "invalid device 'tpu': expected cpu, webgpu or cuda, optionally with :index (cuda:1)",
    );
  });

  it('ranks cuda > hardware webgpu > cpu > software webgpu', () => {
    const cpu = info('cpu', true);
    const swiftshader = info('webgpu', true);
    const hardware = info('webgpu', false);
    const cuda = info('cuda', false, 1);
    expect(chooseDefault([cpu, swiftshader])).toBe(cpu);
    expect(chooseDefault([cpu, hardware])).toBe(hardware);
    expect(chooseDefault([cpu, hardware, cuda])).toBe(cuda);
  });

  it('ZBMD_DEVICE overrides the choice; a bad value is an error', async () => {
    const device = await defaultDevice({}, { ZBMD_DEVICE: 'cpu' });
    expect(device.id).toBe('cpu:0');
    device.destroy();
    await expect(defaultDevice({}, { ZBMD_DEVICE: 'quantum' })).rejects.toThrow(InvalidDeviceSpec);
    await expect(openDevice('cpu:3')).rejects.toThrow(/only cpu:0 exists/);
  });

  it('without an override picks the best device present (never SwiftShader over the cpu)', async () => {
    const { devices } = await detectDevices();
    const device = await defaultDevice({}, {});
    expect(device.id).toBe(chooseDefault(devices).id);
    if (devices.every((d) => d.backend !== 'cuda' && !(d.backend === 'webgpu' && !d.software)))
      expect(device.id).toBe('cpu:0');
    device.destroy();
  });
});

describe('zbmd devices', () => {
  it('prints a table with the default marked and the missing backends explained', async () => {
    const lines: string[] = [];
    await devicesCommand({ json: false }, (line) => lines.push(line));
    expect(lines[0]).toMatch(/^ {2}id\s+name\s+memory\s+details$/);
    expect(lines.some((line) => /^\* /.test(line))).toBe(true);
    expect(lines.some((line) => line.startsWith('default: '))).toBe(true);
    const { unavailable } = await detectDevices();
    for (const error of unavailable)
      expect(lines).toContain(`${error.backend}: unavailable: ${error.reason}`);
  });

  it('prints one JSON object with --json', async () => {
    const lines: string[] = [];
    await devicesCommand({ json: true }, (line) => lines.push(line));
    expect(lines).toHaveLength(1);
    const report = JSON.parse(lines[0]);
    expect(report.devices.some((device: DeviceInfo) => device.id === 'cpu:0')).toBe(true);
    expect(typeof report.default).toBe('string');
    expect(Array.isArray(report.unavailable)).toBe(true);
  });
});

describe('finding SwiftShader', () => {
  it('adds the SwiftShader manifest next to other drivers unless the user chose the drivers', () => {
    const empty: NodeJS.ProcessEnv = {};
    expect(addSwiftshaderDriver(empty, true)).toBe(SWIFTSHADER_ICD);
    expect(empty.VK_ADD_DRIVER_FILES).toBe(SWIFTSHADER_ICD);
    expect(addSwiftshaderDriver(empty, true)).toBe(SWIFTSHADER_ICD);
    expect(empty.VK_ADD_DRIVER_FILES).toBe(SWIFTSHADER_ICD);
    const other: NodeJS.ProcessEnv = { VK_ADD_DRIVER_FILES: '/etc/other.json' };
    addSwiftshaderDriver(other, true);
    expect(other.VK_ADD_DRIVER_FILES).toBe(`/etc/other.json:${SWIFTSHADER_ICD}`);
    const chosen: NodeJS.ProcessEnv = { VK_ICD_FILENAMES: '/mine.json' };
    expect(addSwiftshaderDriver(chosen, true)).toBeUndefined();
    expect(chosen.VK_ADD_DRIVER_FILES).toBeUndefined();
    expect(addSwiftshaderDriver({}, false)).toBeUndefined();
  });

  it('prepares the Vulkan loader once and says where it came from', () => {
    const setup = prepareVulkan();
    expect(prepareVulkan()).toBe(setup);
    if (process.platform === 'linux')
      expect(setup.problem === undefined ? setup.loader : setup.problem).toMatch(/libvulkan/);
  });
});
