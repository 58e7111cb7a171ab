import { crc32 as nativeCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Portable } from '../../src/fault/internal/crc32.js';

describe('crc32 of the event log', () => {
  it('gives the standard check value for "123456789"', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32Portable(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32Portable(new Uint8Array(0))).toBe(0);
  });

  it('portable and native versions agree on any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => crc32Portable(bytes) === nativeCrc32(bytes)),
    );
  });
});

describe('crc32 continuation', () => {
  it('crc32(b, crc32(a)) equals crc32(a + b), natively and portably', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (a, b) => {
        const whole = nativeCrc32(Buffer.concat([a, b]));
        return crc32(b, crc32(a)) === whole && crc32Portable(b, crc32Portable(a)) === whole;
      }),
    );
  });
});
