import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FaultConfigError } from '../../src/fault/index.js';
import {
  FAULT_KEYS,
  FaultInjector,
  faultConfig,
  formatFaultConfig,
  isFaultConfigError,
  NO_FAULTS,
  parseFaultConfig,
} from '../../src/fault/index.js';

function parseError(text: string): FaultConfigError {
  try {
    parseFaultConfig(text);
  } catch (error) {
    if (isFaultConfigError(error)) return error;
    throw error;
  }
  throw new Error(`'${text}' was accepted`);
}

describe('parseFaultConfig', () => {
  it('reads key=value pairs, with spaces and defaults for missing keys', () => {
    expect(parseFaultConfig('actorCrashRate=0.01, messageDropRate = 0.05,seed=7')).toEqual({
      ...NO_FAULTS,
      actorCrashRate: 0.01,
      messageDropRate: 0.05,
      seed: 7,
    });
  });

  it('reads JSON', () => {
    expect(parseFaultConfig('{"gpuErrorRate":0.2,"messageDelayRate":1,"messageDelayMs":50}')).toEqual({
      ...NO_FAULTS,
      gpuErrorRate: 0.2,
      messageDelayRate: 1,
      messageDelayMs: 50,
    });
  });

  it('reads an empty string as no faults', () => {
    expect(parseFaultConfig('  ')).toEqual(NO_FAULTS);
  });

  it('rejects unknown keys, naming the key and the known ones', () => {
    const error = parseError('actorCrashRat=0.1');
    expect(error.key).toBe('actorCrashRat');
    expect(error.reason).toBe('unknown_key');
    expect(error.message).toMatch(/actorCrashRat.*unknown key.*actorCrashRate/);
  });

  it('rejects rates outside [0, 1], naming the key and the range', () => {
    for (const text of ['oomRate=1.5', 'oomRate=-0.1', '{"oomRate": 2}']) {
      const error = parseError(text);
      expect(error.key).toBe('oomRate');
      expect(error.reason).toBe('out_of_range');
      expect(error.message).toMatch(/a number in \[0, 1\]/);
    }
  });

  it('rejects non-numbers, including JSON strings, booleans and empty values', () => {
    for (const text of [
      'kernelTimeoutRate=abc',
      'kernelTimeoutRate=',
      '{"kernelTimeoutRate": true}',
      '{"kernelTimeoutRate": "x"}',
    ]) {
      const error = parseError(text);
      expect(error.key).toBe('kernelTimeoutRate');
      expect(error.reason).toBe('not_a_number');
    }
  });

  it('rejects non-integer seeds and delays, duplicate keys and malformed input', () => {
    expect(parseError('seed=1.5').reason).toBe('not_an_integer');
    expect(parseError('messageDelayMs=2.5').reason).toBe('not_an_integer');
    expect(parseError('messageDelayMs=99999999').reason).toBe('out_of_range');
    expect(parseError('seed=1,seed=2').reason).toBe('duplicate_key');
    expect(parseError('seed').reason).toBe('syntax');
    expect(parseError('{"seed": 1').reason).toBe('syntax');
    expect(parseError('[1,2]').reason).toBe('syntax');
  });

  it('round-trips through formatFaultConfig', () => {
    fc.assert(
      fc.property(
        fc.record({
          actorCrashRate: fc.double({ min: 0, max: 1, noNaN: true }),
          oomRate: fc.double({ min: 0, max: 1, noNaN: true }),
          messageDelayMs: fc.integer({ min: 0, max: 3_600_000 }),
          seed: fc.nat(),
        }),
        (fields) => {
          const config = faultConfig(fields);
          expect(parseFaultConfig(formatFaultConfig(config))).toEqual(config);
        },
      ),
    );
  });

  it('lists every field of FaultConfig as a key', () => {
    expect([...FAULT_KEYS].sort()).toEqual(Object.keys(NO_FAULTS).sort());
  });
});

describe('FaultInjector', () => {
  it('injects nothing when disabled', () => {
    const faults = FaultInjector.disabled();
    for (let index = 0; index < 1000; index++) {
      expect(faults.shouldCrashActor() || faults.shouldDropMessage() || faults.shouldOom()).toBe(false);
      expect(faults.messageDelayMs()).toBe(0);
    }
    expect(faults.enabled).toBe(false);
    expect(faults.total).toBe(0);
  });

  it('injects always at rate 1', () => {
    const faults = new FaultInjector({
      gpuErrorRate: 1,
      kernelTimeoutRate: 1,
      messageDelayRate: 1,
      messageDelayMs: 10,
    });
    expect(faults.shouldFailGpu('gpu0')).toBe(true);
    expect(faults.shouldTimeoutKernel()).toBe(true);
    const delayMs = faults.messageDelayMs();
    expect(delayMs).toBeGreaterThanOrEqual(1);
    expect(delayMs).toBeLessThanOrEqual(10);
    expect(faults.log.map((fault) => fault.kind)).toEqual(['gpu_error', 'kernel_timeout', 'message_delay']);
    expect(faults.log[0].detail).toBe('gpu0');
    expect(faults.log[2].detail).toBe(delayMs);
  });

  it('replays exactly from its seed: same decisions, same log, same fingerprint', () => {
    const run = (seed: number) => {
      const faults = new FaultInjector({ actorCrashRate: 0.1, messageDropRate: 0.2, oomRate: 0.05, seed });
      const decisions: boolean[] = [];
      for (let index = 0; index < 500; index++) {
        decisions.push(faults.shouldCrashActor(), faults.shouldDropMessage(), faults.shouldOom());
      }
      return { decisions, log: faults.log, fingerprint: faults.fingerprint(), counts: faults.counts() };
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42).fingerprint).not.toBe(run(43).fingerprint);
  });

  it('keeps kinds independent: asking about GPUs does not change which messages drop', () => {
    const dropsOnly = new FaultInjector({ messageDropRate: 0.3, gpuErrorRate: 0.5, seed: 9 });
    const mixed = new FaultInjector({ messageDropRate: 0.3, gpuErrorRate: 0.5, seed: 9 });
    const a: boolean[] = [];
    const b: boolean[] = [];
    for (let index = 0; index < 300; index++) {
      a.push(dropsOnly.shouldDropMessage());
      mixed.shouldFailGpu(index % 4);
      b.push(mixed.shouldDropMessage());
    }
    expect(a).toEqual(b);
  });

  it('injects at about the configured rate', () => {
    const faults = new FaultInjector({ messageDropRate: 0.25, seed: 1 });
    let drops = 0;
    for (let index = 0; index < 20_000; index++) if (faults.shouldDropMessage()) drops++;
    expect(drops / 20_000).toBeGreaterThan(0.23);
    expect(drops / 20_000).toBeLessThan(0.27);
    expect(faults.counts().message_drop).toBe(drops);
  });

  it('numbers log entries globally and per kind', () => {
    const faults = new FaultInjector({ actorCrashRate: 1, oomRate: 1 });
    faults.shouldCrashActor();
    faults.shouldOom();
    faults.shouldCrashActor();
    expect(faults.log).toEqual([
      { sequence: 0, kind: 'actor_crash', decision: 0 },
      { sequence: 1, kind: 'oom', decision: 0 },
      { sequence: 2, kind: 'actor_crash', decision: 1 },
    ]);
  });

  it('caps the log but keeps counting and fingerprinting', () => {
    const capped = new FaultInjector({ actorCrashRate: 1 }, { maxLogEntries: 2 });
    const full = new FaultInjector({ actorCrashRate: 1 });
    for (let index = 0; index < 5; index++) {
      capped.shouldCrashActor();
      full.shouldCrashActor();
    }
    expect(capped.log).toHaveLength(2);
    expect(capped.droppedLogEntries).toBe(3);
    expect(capped.total).toBe(5);
    expect(capped.fingerprint()).toBe(full.fingerprint());
  });

  it('fromEnvironment reads ZBMD_FAULTS and rejects bad values', () => {
    const faults = FaultInjector.fromEnvironment({ ZBMD_FAULTS: 'actorCrashRate=0.5,seed=3' });
    expect(faults.config.actorCrashRate).toBe(0.5);
    expect(faults.seed).toBe(3);
    expect(faults.enabled).toBe(true);
    expect(FaultInjector.fromEnvironment({}).enabled).toBe(false);
    expect(() => FaultInjector.fromEnvironment({ ZBMD_FAULTS: 'messageDropRate=2' })).toThrow(
      /messageDropRate/,
    );
  });

  it('validates configuration given in code too', () => {
    expect(() => new FaultInjector({ oomRate: 7 })).toThrow(/oomRate/);
  });
});
