import { afterEach, describe, expect, it, vi } from 'vitest';
import { devicesCommand } from '../../src/cli/devices.js';
import { TINY_DATASET_DIR } from '../../src/ml/data/index.js';
import { cli } from './helpers.js';

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  process.exitCode = undefined;
});

describe('ZBMD_DEVICE naming a device that is not present', () => {
  it('zbmd train reports it and exits 2 instead of ignoring it', async () => {
    vi.stubEnv('ZBMD_DEVICE', 'cuda:7');
    const run = await cli(['train', '--data', TINY_DATASET_DIR, '--max-steps', '2']);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(
      /^zbmd: ZBMD_DEVICE=cuda:7 names cuda:7, which is not present; devices here: cpu:0/,
    );
    vi.stubEnv('ZBMD_DEVICE', 'tpu');
    expect((await cli(['train', '--data', TINY_DATASET_DIR, '--max-steps', '2'])).err).toMatch(/ZBMD_DEVICE/);
  });

  it('zbmd train uses it when it is present; --device wins', async () => {
    vi.stubEnv('ZBMD_DEVICE', 'cpu');
    const run = await cli(['train', '--data', TINY_DATASET_DIR, '--max-steps', '2']);
    expect(run.code, run.err).toBe(0);
    expect(run.out).toMatch(/device cpu:0/);
    vi.stubEnv('ZBMD_DEVICE', 'cuda:7');
    expect(
      (await cli(['train', '--data', TINY_DATASET_DIR, '--max-steps', '2', '--device', 'cpu'])).code,
    ).toBe(0);
  });

  it('zbmd devices reports it and resolves to 2', async () => {
    vi.stubEnv('ZBMD_DEVICE', 'cuda:7');
    const lines: string[] = [];
    expect(await devicesCommand({ json: false }, (line) => lines.push(line))).toBe(2);
    expect(lines.at(-1)).toMatch(/ZBMD_DEVICE=cuda:7 names cuda:7, which is not present/);
    const json: string[] = [];
    expect(await devicesCommand({ json: true }, (line) => json.push(line))).toBe(2);
    expect(JSON.parse(json[0]).override_error).toMatch(/not present/);
    vi.stubEnv('ZBMD_DEVICE', 'cpu');
    expect(await devicesCommand({ json: true }, () => undefined)).toBe(0);
  });
});
