import { describe, expect, it } from 'vitest';
import { isCallTimeout } from '../../src/actor/errors.js';
import * as fault from '../../src/fault/index.js';
import { guardOf, TaggedError } from '../../src/internal/errors.js';

class DiskFull extends TaggedError('DiskFull') {
  constructor(
    readonly path: string,
    readonly freeBytes: number,
  ) {
    super(`${path}: disk full (${freeBytes} bytes free)`);
  }
}
const isDiskFull = guardOf(DiskFull);

class QuotaExceeded extends TaggedError('QuotaExceeded') {
  constructor(readonly user: string) {
    super(`${user} is over quota`, { cause: new Error('below') });
  }
}

describe('TaggedError', () => {
  it('gives an error its tag, name, typed fields, message and stack', () => {
    const error = new DiskFull('/data', 12);
    expect(error).toBeInstanceOf(Error);
    expect(error._tag).toBe('DiskFull');
    expect(error.name).toBe('DiskFull');
    expect(DiskFull.tag).toBe('DiskFull');
    expect(error.path).toBe('/data');
    expect(error.freeBytes).toBe(12);
    expect(error.message).toBe('/data: disk full (12 bytes free)');
    expect(String(error)).toBe('DiskFull: /data: disk full (12 bytes free)');
    expect(error.stack).toContain('DiskFull');
  });

  it('passes a cause on', () => {
    expect((new QuotaExceeded('ada').cause as Error).message).toBe('below');
  });

  it('guards match their own class only, never by name', () => {
    const disk = new DiskFull('/data', 0);
    const quota = new QuotaExceeded('ada');
    const impostor = Object.assign(new Error('x'), { name: 'DiskFull', _tag: 'DiskFull' });
    expect(DiskFull.is(disk)).toBe(true);
    expect(isDiskFull(disk)).toBe(true);
    expect(DiskFull.is(quota)).toBe(false);
    expect(QuotaExceeded.is(quota)).toBe(true);
    expect(isDiskFull(impostor)).toBe(false);
    expect(DiskFull.is(undefined)).toBe(false);
    expect(isDiskFull('DiskFull')).toBe(false);
  });
});

describe('the fault layer on the factory', () => {
  const errorClasses = Object.entries(fault as Record<string, unknown>).filter(
    (entry): entry is [string, { tag: string; is(error: unknown): boolean }] =>
      typeof entry[1] === 'function' && (entry[1] as { prototype: unknown }).prototype instanceof Error,
  );

  it('exports its errors as tagged classes whose tag is the class name, each with an isX guard', () => {
    expect(errorClasses.length).toBeGreaterThanOrEqual(20);
    for (const [name, errorClass] of errorClasses) {
      expect(errorClass.tag, name).toBe(name);
      const guard = (fault as Record<string, unknown>)[`is${name}`];
      expect(typeof guard, `is${name}`).toBe('function');
    }
  });

  it("names the breaker's timeout apart from the actor layer's CallTimeout", () => {
    const error = new fault.BreakerCallTimeout('payments', 250);
    expect(error).toMatchObject({
      _tag: 'BreakerCallTimeout',
      name: 'BreakerCallTimeout',
      circuit: 'payments',
    });
    expect(fault.isBreakerCallTimeout(error)).toBe(true);
    expect(isCallTimeout(error)).toBe(false);
    expect('isCallTimeout' in fault).toBe(false);
  });
});
