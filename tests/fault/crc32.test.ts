import * as zlib from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32, crc32IsNative, crc32Portable } from '../../src/fault/internal/crc32.js';

/** Node's own CRC-32 where this Node has it (>= 20.15); undefined on older 20.x releases. */
const nativeCrc32 = (zlib as Partial<Pick<typeof zlib, 'crc32'>>).crc32;
/** The reference for the properties: the native one, else the portable one. */
const reference = nativeCrc32 ?? crc32Portable;

describe('crc32 of the event log', () => {
  it('gives the standard check value for "123456789"', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32Portable(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32Portable(new Uint8Array(0))).toBe(0);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it("uses node:zlib's crc32 whenever this Node has it", () => {
    const [major, minor] = process.versions.node.split('.').map(Number);
    const expected = major > 20 || (major === 20 && minor >= 15);
    expect(typeof nativeCrc32 === 'function').toBe(expected);
    expect(crc32IsNative).toBe(expected);
  });

  it('portable and native versions agree on any bytes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2000 }),
        (bytes) => crc32Portable(bytes) === reference(bytes) && crc32(bytes) === reference(bytes),
      ),
    );
  });
});

describe('crc32 continuation', () => {
  it('crc32(b, crc32(a)) equals crc32(a + b), natively and portably', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }), (a, b) => {
        const whole = reference(Buffer.concat([a, b]));
        return crc32(b, crc32(a)) === whole && crc32Portable(b, crc32Portable(a)) === whole;
      }),
    );
  });
});
