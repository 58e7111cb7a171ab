import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseTrainingFaults } from '../../src/cli/train.js';
import { FAULT_ALIASES, FAULT_KEYS, faultConfig, parseFaultConfig } from '../../src/fault/FaultConfig.js';
import { TINY_DATASET_DIR } from '../../src/ml/data/index.js';
import { isTrainingError, train } from '../../src/ml/training/index.js';
import { cli } from '../cli/helpers.js';
import { smallRun } from './helpers.js';

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  process.exitCode = undefined;
});

describe('one fault vocabulary', () => {
  it('ZBMD_FAULTS, faultConfig and --faults accept every short key as its long one', () => {
    for (const [alias, key] of Object.entries(FAULT_ALIASES)) {
      const value = key === 'messageDelayMs' ? 5 : 0.25;
      expect(parseFaultConfig(`${alias}=${value}`), alias).toEqual(parseFaultConfig(`${key}=${value}`));
      expect(parseFaultConfig(JSON.stringify({ [alias]: value }))).toEqual(faultConfig({ [key]: value }));
    }
    for (const key of FAULT_KEYS.filter((name) => name !== 'seed'))
      expect(Object.values(FAULT_ALIASES), key).toContain(key);
    expect(() => parseFaultConfig('crash=0.1,actorCrashRate=0.2')).toThrow(/given twice/);
    expect(() => parseFaultConfig('crsh=0.1')).toThrow(/short forms crash \(actorCrashRate\)/);
  });

  it('train({ faults }) takes short and long keys, as text or an object', async () => {
    const long = await train(await smallRun({ maxSteps: 30, faults: 'actorCrashRate=0.2,seed=4' }));
    const short = await train(await smallRun({ maxSteps: 30, faults: 'crash=0.2,seed=4' }));
    const object = await train(await smallRun({ maxSteps: 30, faults: { crash: 0.2, seed: 4 } }));
    expect(long.recoveries.length).toBeGreaterThan(0);
    expect(short.recoveries.map((r) => r.step)).toEqual(long.recoveries.map((r) => r.step));
    expect(object.recoveries.map((r) => r.step)).toEqual(long.recoveries.map((r) => r.step));
  });

  it('a kind training does not act on is refused, listing the kinds it does', async () => {
    for (const faults of [
      'drop=0.1',
      'messageDelayRate=0.1',
      { messageDelayRate: 0.5 },
      'drop=0.1,crash=0.1',
    ]) {
      const attempt = train(await smallRun({ maxSteps: 5, faults }));
      await expect(attempt).rejects.toSatisfy(
        (error: unknown) =>
          isTrainingError(error, 'invalid_config') &&
          /training does not act on/.test(String(error)) &&
          /actorCrashRate \(crash\), oomRate \(oom\), gpuErrorRate \(device\), kernelTimeoutRate \(timeout\)/.test(
            String(error),
          ),
      );
    }
    expect(() => parseTrainingFaults('drop=0.1')).toThrow(/training does not act on messageDropRate/);
    const bad = await cli(['train', '--data', TINY_DATASET_DIR, '--max-steps', '2', '--faults', 'drop=0.1']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--faults.*training does not act on messageDropRate/);
  });

  it('zbmd train honours ZBMD_FAULTS, and checks it as it checks --faults', async () => {
    const args = ['train', '--data', TINY_DATASET_DIR, '--max-steps', '30', '--batch-size', '16', '--json'];
    vi.stubEnv('ZBMD_FAULTS', 'crash=0.2,seed=4');
    const withFaults = await cli(args);
    expect(withFaults.code, withFaults.err).toBe(0);
    expect(JSON.parse(withFaults.out).recoveries).toBeGreaterThan(0);
    vi.stubEnv('ZBMD_FAULTS', 'drop=0.5');
    const refused = await cli(args);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/^zbmd: ZBMD_FAULTS: training does not act on messageDropRate/);
    vi.stubEnv('ZBMD_FAULTS', 'crash=7');
    expect((await cli(args)).code).toBe(2);
  });
});
