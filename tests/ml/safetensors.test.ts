import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  float32ToSafetensorsEntry,
  isSafetensorsError,
  parseSafetensors,
  readSafetensorsFile,
  SAFETENSORS_DTYPES,
  type SafetensorsDtype,
  type SafetensorsEntry,
  SafetensorsError,
  type SafetensorsErrorCode,
  safetensorsByteSize,
  safetensorsEntryToFloat32,
  serializeSafetensors,
  writeSafetensorsFile,
} from '../../src/ml/safetensors.js';

// Golden files written by the reference implementation (Python `safetensors` 0.8.0,
// `safetensors.serialize`), pasted as base64 so the tests need no Python.
const GOLDEN = {
  // {"attn.0": F32 [1,2,3] = 0..5}: also the Rust crate's own `test_serialization` vector.
  attention:
    'QAAAAAAAAAB7ImF0dG4uMCI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMSwyLDNdLCJkYXRhX29mZnNldHMiOlswLDI0XX19AAAAAAAAgD8AAABAAABAQAAAgEAAAKBA',
  empty: 'CAAAAAAAAAB7fSAgICAgIA==',
  emptyWithMetadata: 'KAAAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmcmFtZXdvcmsiOiJwdCJ9fSAgICAg',
  // Eleven tensors of nine dtypes, a zero-size one, a scalar, and a name needing JSON escapes.
  mixed:
    'yAIAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJmb3JtYXQiOiJwdCJ9LCJzdGVwIjp7ImR0eXBlIjoiSTY0Iiwic2hhcGUiOltdLCJkYXRhX29mZnNldHMiOlswLDhdfSwiZG91YmxlIjp7ImR0eXBlIjoiRjY0Iiwic2hhcGUiOlsxXSwiZGF0YV9vZmZzZXRzIjpbOCwxNl19LCJlbXB0eSI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMCw0XSwiZGF0YV9vZmZzZXRzIjpbMTYsMTZdfSwibGF5ZXIuYmlhcyI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6WzE2LDI0XX0sImxheWVyLndlaWdodCI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMiwyXSwiZGF0YV9vZmZzZXRzIjpbMjQsNDBdfSwiaWRzIjp7ImR0eXBlIjoiSTMyIiwic2hhcGUiOlsxLDJdLCJkYXRhX29mZnNldHMiOls0MCw0OF19LCJub3JtIjp7ImR0eXBlIjoiQkYxNiIsInNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6WzQ4LDUyXX0sImVtYmVkIjp7ImR0eXBlIjoiRjE2Iiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNTIsNThdfSwiw6lcInFcXFxuXHTPhPCfmIAiOnsiZHR5cGUiOiJJOCIsInNoYXBlIjpbMV0sImRhdGFfb2Zmc2V0cyI6WzU4LDU5XX0sInBpeGVscyI6eyJkdHlwZSI6IlU4Iiwic2hhcGUiOlsyLDJdLCJkYXRhX29mZnNldHMiOls1OSw2M119LCJtYXNrIjp7ImR0eXBlIjoiQk9PTCIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzYzLDY2XX19ICAgICAgBwAAAAAAAAAYLURU+yEJQAAAAD8AAAC/AADAPwAAAMAAAIA+gqj7N/////////9/gD8AwAA8VLX/e/8Af4D/AQAB',
  // Four U8 tensors named "B", "a", "\uFF21", "\u{1F600}": names sort by UTF-8 bytes, not UTF-16.
  nameOrder:
    '2AAAAAAAAAB7IkIiOnsiZHR5cGUiOiJVOCIsInNoYXBlIjpbMV0sImRhdGFfb2Zmc2V0cyI6WzAsMV19LCJhIjp7ImR0eXBlIjoiVTgiLCJzaGFwZSI6WzFdLCJkYXRhX29mZnNldHMiOlsxLDJdfSwi77yhIjp7ImR0eXBlIjoiVTgiLCJzaGFwZSI6WzFdLCJkYXRhX29mZnNldHMiOlsyLDNdfSwi8J+YgCI6eyJkdHlwZSI6IlU4Iiwic2hhcGUiOlsxXSwiZGF0YV9vZmZzZXRzIjpbMyw0XX19ICAEAwEC',
  // Control characters, DEL and U+2028 in a name and in metadata: serde_json's escaping.
  escapes:
    'aAAAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJrXGIiOiJ2XGZcIi8ifSwiY1x1MDAwMVx1MDAxZn/igKgvPCI6eyJkdHlwZSI6IlU4Iiwic2hhcGUiOlsxXSwiZGF0YV9vZmZzZXRzIjpbMCwxXX19IAE=',
};

const golden = (name: keyof typeof GOLDEN) => new Uint8Array(Buffer.from(GOLDEN[name], 'base64'));
const bytesOf = (array: ArrayBufferView) => new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
const hex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'));

function mixedTensors(): Record<string, SafetensorsEntry> {
  return {
    'layer.weight': { dtype: 'F32', shape: [2, 2], data: bytesOf(new Float32Array([1.5, -2, 0.25, 3e-5])) },
    'layer.bias': { dtype: 'F32', shape: [2], data: bytesOf(new Float32Array([0.5, -0.5])) },
    embed: { dtype: 'F16', shape: [3], data: hex('003c54b5ff7b') },
    norm: { dtype: 'BF16', shape: [2], data: hex('803f00c0') },
    step: { dtype: 'I64', shape: [], data: bytesOf(new BigInt64Array([7n])) },
    mask: { dtype: 'BOOL', shape: [3], data: hex('010001') },
    ids: { dtype: 'I32', shape: [1, 2], data: bytesOf(new Int32Array([-1, 2 ** 31 - 1])) },
    pixels: { dtype: 'U8', shape: [2, 2], data: hex('007f80ff') },
    double: { dtype: 'F64', shape: [1], data: bytesOf(new Float64Array([Math.PI])) },
    'é"q\\\n\tτ😀': { dtype: 'I8', shape: [1], data: hex('ff') },
    empty: { dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) },
  };
}

/** Builds a file by hand: length prefix + header text + data, to craft invalid files. */
function craft(header: string, data: Uint8Array = new Uint8Array(0), length?: number): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(length ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectCode(action: () => unknown, code: SafetensorsErrorCode): SafetensorsError {
  try {
    action();
  } catch (error) {
    expect(isSafetensorsError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
    return error as SafetensorsError;
  }
  throw new Error(`expected a SafetensorsError ${code}, nothing was thrown`);
}

describe('serializeSafetensors matches the reference byte for byte', () => {
  it('writes the Rust crate test vector', () => {
    const data = bytesOf(new Float32Array([0, 1, 2, 3, 4, 5]));
    expect(serializeSafetensors({ 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data } })).toEqual(
      golden('attention'),
    );
  });

  it('writes an empty file, with and without metadata', () => {
    expect(serializeSafetensors({})).toEqual(golden('empty'));
    expect(serializeSafetensors({}, { framework: 'pt' })).toEqual(golden('emptyWithMetadata'));
  });

  it('orders tensors by dtype alignment, then name, as the reference does', () => {
    expect(serializeSafetensors(mixedTensors(), { format: 'pt' })).toEqual(golden('mixed'));
  });

  it('compares names by UTF-8 bytes', () => {
    const u8 = (value: number): SafetensorsEntry => ({
      dtype: 'U8',
      shape: [1],
      data: new Uint8Array([value]),
    });
    const tensors = { '\u{1F600}': u8(2), a: u8(3), '\uFF21': u8(1), B: u8(4) };
    expect(serializeSafetensors(tensors)).toEqual(golden('nameOrder'));
  });

  it('escapes names and metadata as serde_json does', () => {
    const tensors = {
      'c\x01\x1f\x7f\u2028/<': { dtype: 'U8' as const, shape: [1], data: new Uint8Array([1]) },
    };
    expect(serializeSafetensors(tensors, { 'k\b': 'v\f"/' })).toEqual(golden('escapes'));
  });

  it('writes metadata keys in UTF-8 order, whatever the object order', () => {
    const bytes = serializeSafetensors({}, { zeta: '1', '10': 'b', alpha: '2', '2': 'a' });
    const text = new TextDecoder().decode(bytes.subarray(8)).trimEnd();
    expect(text).toBe('{"__metadata__":{"10":"b","2":"a","alpha":"2","zeta":"1"}}');
  });
});

describe('parseSafetensors reads reference files', () => {
  it('reads every golden file back to what was written', () => {
    const parsed = parseSafetensors(golden('mixed'));
    expect(parsed.metadata).toEqual({ format: 'pt' });
    expect(Object.keys(parsed.tensors)).toEqual([
      'step',
      'double',
      'empty',
      'layer.bias',
      'layer.weight',
      'ids',
      'norm',
      'embed',
      'é"q\\\n\tτ😀',
      'pixels',
      'mask',
    ]);
    const expected = mixedTensors();
    for (const [name, entry] of Object.entries(parsed.tensors)) expect(entry).toEqual(expected[name]);
    expect(parseSafetensors(golden('empty'))).toEqual({ tensors: {}, metadata: undefined });
    expect(parseSafetensors(golden('emptyWithMetadata')).metadata).toEqual({ framework: 'pt' });
  });

  it('returns views into the input, aligned for typed arrays', () => {
    const bytes = golden('attention');
    const entry = parseSafetensors(bytes).tensors['attn.0'];
    expect(entry.data.buffer).toBe(bytes.buffer);
    const values = safetensorsEntryToFloat32(entry);
    expect(values.buffer).toBe(bytes.buffer);
    expect([...values]).toEqual([0, 1, 2, 3, 4, 5]);
    const fromBuffer = parseSafetensors(Buffer.from(bytes)).tensors['attn.0'].data;
    expect(fromBuffer.constructor).toBe(Uint8Array);
  });

  it('accepts what the reference accepts: unpadded header, extra fields, null metadata, leading space', () => {
    const u8 = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]';
    expect(parseSafetensors(craft(`{"a":${u8}}}`, hex('05'))).tensors.a.data).toEqual(hex('05'));
    expect(parseSafetensors(craft(`{"a":${u8},"extra":1}}`, hex('05'))).tensors.a.shape).toEqual([1]);
    expect(parseSafetensors(craft('{"__metadata__":null}')).metadata).toBeUndefined();
    expect(Object.keys(parseSafetensors(craft(` {"a":${u8}}}`, hex('05'))).tensors)).toEqual(['a']);
    expect(
      parseSafetensors(craft('{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}', hex('1234'))).tensors.a
        .dtype,
    ).toBe('F4');
  });

  it('keeps a tensor named __proto__ as an ordinary key', () => {
    const bytes = serializeSafetensors({ ['__proto__']: { dtype: 'U8', shape: [1], data: hex('07') } });
    const { tensors } = parseSafetensors(bytes);
    expect(Object.keys(tensors)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(tensors, '__proto__')?.value.data).toEqual(hex('07'));
  });
});

describe('parseSafetensors rejects bad files with typed errors', () => {
  const u8 = (name: string, begin: number, end: number, count = end - begin) =>
    `"${name}":{"dtype":"U8","shape":[${count}],"data_offsets":[${begin},${end}]}`;
  const cases: [string, () => Uint8Array, SafetensorsErrorCode][] = [
    ['fewer than 8 bytes', () => hex('0102'), 'header_too_small'],
    ['a header length over 100 MB', () => craft('{}', undefined, 100_000_001), 'header_too_large'],
    ['a u64 header length over 2^53', () => hex('ffffffffffffffff7b7d'), 'header_too_large'],
    ['a header length past the end', () => craft('{}', undefined, 100), 'invalid_header_length'],
    ['a truncated file', () => golden('attention').subarray(0, 50), 'invalid_header_length'],
    ['truncated tensor data', () => golden('attention').subarray(0, 90), 'invalid_offsets'],
    [
      'invalid UTF-8',
      () => craft('{"?":1}').map((byte, index) => (index === 10 ? 0xff : byte)),
      'invalid_header_utf8',
    ],
    ['an empty header', () => craft(''), 'invalid_header_json'],
    ['invalid JSON', () => craft('{"a":'), 'invalid_header_json'],
    ['NUL padding', () => craft('{}\0\0\0\0\0\0'), 'invalid_header_json'],
    ['a JSON array', () => craft('[]'), 'invalid_header'],
    ['an entry that is not an object', () => craft('{"a":1}'), 'invalid_header'],
    ['a missing dtype', () => craft('{"a":{"shape":[],"data_offsets":[0,0]}}'), 'invalid_header'],
    [
      'three offsets',
      () => craft('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}', hex('00')),
      'invalid_header',
    ],
    [
      'negative offsets',
      () => craft('{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}', hex('00')),
      'invalid_header',
    ],
    [
      'a shape that is not an array',
      () => craft('{"a":{"dtype":"U8","shape":1,"data_offsets":[0,1]}}'),
      'invalid_header',
    ],
    [
      'an unknown dtype',
      () => craft('{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}', new Uint8Array(16)),
      'unknown_dtype',
    ],
    [
      'a negative dimension',
      () => craft('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}', hex('00')),
      'invalid_shape',
    ],
    [
      'a fractional dimension',
      () => craft('{"a":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}}', hex('00')),
      'invalid_shape',
    ],
    [
      'an overflowing shape',
      () => craft('{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,1]}}', hex('00')),
      'validation_overflow',
    ],
    ['non-string metadata', () => craft('{"__metadata__":{"k":1}}'), 'invalid_metadata'],
    ['array metadata', () => craft('{"__metadata__":["k"]}'), 'invalid_metadata'],
    ['a gap before the first tensor', () => craft(`{${u8('a', 1, 2)}}`, hex('0000')), 'invalid_offsets'],
    [
      'overlapping tensors',
      () => craft(`{${u8('a', 0, 2)},${u8('b', 1, 3)}}`, hex('000000')),
      'invalid_offsets',
    ],
    [
      'a gap between tensors',
      () => craft(`{${u8('a', 0, 1)},${u8('b', 2, 3)}}`, hex('000000')),
      'invalid_offsets',
    ],
    [
      'end before begin',
      () => craft(`{${u8('a', 0, 0)},"b":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}`, hex('00')),
      'invalid_offsets',
    ],
    ['offsets past the data', () => craft(`{${u8('a', 0, 4)}}`, hex('0000')), 'invalid_offsets'],
    ['bytes after the last tensor', () => craft(`{${u8('a', 0, 1)}}`, hex('0000')), 'incomplete_buffer'],
    [
      'a shape that does not match the bytes',
      () => craft(`{${u8('a', 0, 2, 3)}}`, hex('0000')),
      'size_mismatch',
    ],
    [
      'half a byte of F4',
      () => craft('{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', hex('0000')),
      'size_mismatch',
    ],
  ];
  for (const [what, make, code] of cases) {
    it(`rejects ${what} (${code})`, () => {
      const error = expectCode(() => parseSafetensors(make()), code);
      expect(error).toBeInstanceOf(SafetensorsError);
      expect(error.message.length).toBeGreaterThan(20);
    });
  }

  it('names the tensor whose offsets are wrong', () => {
    const error = expectCode(
      () => parseSafetensors(craft(`{${u8('a', 0, 2)},${u8('b', 1, 3)}}`, hex('000000'))),
      'invalid_offsets',
    );
    expect(error.message).toContain('"b"');
    expect(error.message).toContain('overlaps');
  });
});

describe('serializeSafetensors rejects bad input', () => {
  const f32 = (data = new Uint8Array(4)): SafetensorsEntry => ({ dtype: 'F32', shape: [1], data });
  it.each<[string, () => unknown, SafetensorsErrorCode]>([
    ['the reserved name', () => serializeSafetensors({ __metadata__: f32() }), 'invalid_name'],
    ['a lone surrogate in a name', () => serializeSafetensors({ '\uD800': f32() }), 'invalid_name'],
    [
      'an unknown dtype',
      () => serializeSafetensors({ a: { ...f32(), dtype: 'F128' as SafetensorsDtype } }),
      'unknown_dtype',
    ],
    ['a bad shape', () => serializeSafetensors({ a: { ...f32(), shape: [-1] } }), 'invalid_shape'],
    ['a wrong data length', () => serializeSafetensors({ a: f32(new Uint8Array(3)) }), 'size_mismatch'],
    [
      'non-byte data',
      () => serializeSafetensors({ a: { ...f32(), data: [0, 0, 0, 0] as unknown as Uint8Array } }),
      'size_mismatch',
    ],
    [
      'non-string metadata',
      () => serializeSafetensors({}, { k: 1 as unknown as string }),
      'invalid_metadata',
    ],
    ['a lone surrogate in metadata', () => serializeSafetensors({}, { k: '\uDC00' }), 'invalid_metadata'],
    [
      'a header over 100 MB',
      () => serializeSafetensors({}, { k: 'x'.repeat(100_000_000) }),
      'header_too_large',
    ],
  ])('rejects %s', (_what, action, code) => {
    expectCode(action, code);
  });
});

const dtypeArbitrary = fc.constantFrom(
  ...SAFETENSORS_DTYPES.filter((dtype) => !dtype.startsWith('F4') && !dtype.startsWith('F6')),
);
const entryArbitrary = fc
  .record({ dtype: dtypeArbitrary, shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }) })
  .chain(({ dtype, shape }) =>
    fc
      .uint8Array({
        minLength: safetensorsByteSize(dtype, shape),
        maxLength: safetensorsByteSize(dtype, shape),
      })
      .map((data): SafetensorsEntry => ({ dtype, shape, data })),
  );
const filesArbitrary = fc.record({
  tensors: fc.dictionary(
    fc.string({ unit: 'grapheme', maxLength: 8 }).filter((name) => name !== '__metadata__'),
    entryArbitrary,
    { maxKeys: 6 },
  ),
  metadata: fc.option(fc.dictionary(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' })), {
    nil: undefined,
  }),
});

describe('round trips', () => {
  it('parse(serialize(x)) gives x back, aligned, and serializing again gives the same bytes', () => {
    fc.assert(
      fc.property(filesArbitrary, ({ tensors, metadata }) => {
        const bytes = serializeSafetensors(tensors, metadata);
        const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        expect(headerLength % 8).toBe(0);
        const parsed = parseSafetensors(bytes);
        expect(parsed.metadata).toEqual(metadata);
        expect(Object.keys(parsed.tensors).sort()).toEqual(Object.keys(tensors).sort());
        for (const [name, entry] of Object.entries(parsed.tensors)) {
          expect(entry).toEqual(tensors[name]);
          const elementBytes = Math.max(1, safetensorsByteSize(entry.dtype, [1]));
          expect((entry.data.byteOffset - 8 - headerLength) % elementBytes).toBe(0);
        }
        expect(serializeSafetensors(parsed.tensors, parsed.metadata)).toEqual(bytes);
      }),
      { numRuns: 200 },
    );
  });
});

describe('files', () => {
  let directory: string;
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'zbmd-safetensors-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('writes atomically and reads back the same bytes as serializeSafetensors', async () => {
    const path = join(directory, 'model.safetensors');
    await writeFile(path, 'old contents');
    await writeSafetensorsFile(path, mixedTensors(), { format: 'pt' });
    expect(new Uint8Array(await readFile(path))).toEqual(golden('mixed'));
    expect(await readdir(directory)).toEqual(['model.safetensors']); // no temporary file left
    const parsed = await readSafetensorsFile(path);
    expect(parsed.tensors['layer.weight']).toEqual(mixedTensors()['layer.weight']);
  });

  it('leaves the old file in place when the input is invalid', async () => {
    const path = join(directory, 'keep.safetensors');
    await writeFile(path, golden('empty'));
    await expect(
      writeSafetensorsFile(path, { a: { dtype: 'F32', shape: [2], data: new Uint8Array(1) } }),
    ).rejects.toThrow(SafetensorsError);
    expect(new Uint8Array(await readFile(path))).toEqual(golden('empty'));
  });

  it('reports a truncated file on disk', async () => {
    const path = join(directory, 'truncated.safetensors');
    await writeFile(path, golden('attention').subarray(0, 90));
    await expect(readSafetensorsFile(path)).rejects.toMatchObject({ code: 'invalid_offsets' });
  });

  it('passes a missing file through as ENOENT', async () => {
    await expect(readSafetensorsFile(join(directory, 'missing.safetensors'))).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});

describe('half-precision conversions', () => {
  // Inputs and outputs from numpy 2.4 (`np.float32(x).astype(np.float16)`, round to nearest even).
  const float16Cases: [number, number][] = [
    [0x00000000, 0x0000],
    [0x80000000, 0x8000],
    [0x3f800000, 0x3c00],
    [0xc0200000, 0xc100],
    [0x477fe000, 0x7bff],
    [0x477ff000, 0x7c00],
    [0x477feffd, 0x7bff],
    [0x322bcc77, 0x0000],
    [0x33800000, 0x0001],
    [0x33000000, 0x0000],
    [0x33000001, 0x0001],
    [0x38800000, 0x0400],
    [0x387fc000, 0x03ff],
    [0x3dcccccd, 0x2e66],
    [0x3eaaaaab, 0x3555],
    [0x7f800000, 0x7c00],
    [0xff800000, 0xfc00],
    [0x7fc00000, 0x7e00],
    [0x3f802000, 0x3c01],
    [0x3f801000, 0x3c00],
    [0x3f803000, 0x3c02],
    [0xce6e6b28, 0xfc00],
    [0x38000000, 0x0200],
  ];

  it('float32ToFloat16Bits matches numpy on edge cases', () => {
    const input = new Float32Array(new Uint32Array(float16Cases.map(([bits]) => bits)).buffer);
    expect([...float32ToFloat16Bits(input)]).toEqual(float16Cases.map(([, half]) => half));
  });

  it('float16BitsToFloat32 matches numpy', () => {
    const input = new Uint16Array([
      0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff, 0x7c00, 0xfc00, 0x8001, 0x3555, 0x7e00,
    ]);
    const expected = [
      0x33800000, 0x387fc000, 0x38800000, 0x3f800000, 0x477fe000, 0x7f800000, 0xff800000, 0xb3800000,
      0x3eaaa000, 0x7fc00000,
    ];
    expect([...new Uint32Array(float16BitsToFloat32(input).buffer)]).toEqual(expected);
  });

  it('every half value survives half -> float -> half', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const back = float32ToFloat16Bits(float16BitsToFloat32(all));
    const wrong: number[] = [];
    for (let i = 0; i < 65536; i++) {
      const isNotANumber = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      const ok = isNotANumber ? (back[i] & 0x7e00) === 0x7e00 : back[i] === i;
      if (!ok) wrong.push(i);
    }
    expect(wrong).toEqual([]);
  });

  it('rounds each float to the nearest half, ties to even', () => {
    const halves = float16BitsToFloat32(Uint16Array.from({ length: 0x7c01 }, (_, i) => i)); // +0 .. +Inf
    fc.assert(
      fc.property(fc.float({ noNaN: true, min: 0, max: 65519 }), (value) => {
        const half = float32ToFloat16Bits(new Float32Array([value]))[0];
        const chosen = halves[half];
        const below = half > 0 ? halves[half - 1] : chosen;
        const above = halves[half + 1];
        const distance = Math.abs(chosen - value);
        expect(distance).toBeLessThanOrEqual(Math.abs(below - value));
        expect(distance).toBeLessThanOrEqual(Math.abs(above - value));
        if (distance === Math.abs(below - value) && below !== chosen) expect(half % 2).toBe(0);
        if (distance === Math.abs(above - value)) expect(half % 2).toBe(0);
      }),
      { numRuns: 2000 },
    );
  });

  it('bfloat16 keeps the top half, rounding to nearest even, NaN quiet', () => {
    const input = new Float32Array(
      new Uint32Array([
        0x3f800000, 0x3f808000, 0x3f818000, 0x3f808001, 0x7f7fffff, 0xff800000, 0x7f800001, 0x00000001,
        0xbf7fffff,
      ]).buffer,
    );
    expect([...float32ToBfloat16Bits(input)]).toEqual([
      0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x7f80, 0xff80, 0x7fc0, 0x0000, 0xbf80,
    ]);
    expect([...bfloat16BitsToFloat32(new Uint16Array([0x3f80, 0xc000, 0x7f80]))]).toEqual([
      1,
      -2,
      Number.POSITIVE_INFINITY,
    ]);
  });

  it('bfloat16 round trip is exact for values with 8 significant bits', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), (bits) => {
        if ((bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0) return; // NaN
        const value = bfloat16BitsToFloat32(new Uint16Array([bits]));
        expect(float32ToBfloat16Bits(value)[0]).toBe(bits);
      }),
    );
  });

  it('rejects an output of the wrong length', () => {
    expect(() => float32ToFloat16Bits(new Float32Array(2), new Uint16Array(1))).toThrow(RangeError);
  });
});

describe('entries and Float32Array', () => {
  it('converts F32, F16, BF16, integers and bools to float32', () => {
    const tensors = parseSafetensors(golden('mixed')).tensors;
    expect([...safetensorsEntryToFloat32(tensors['layer.bias'])]).toEqual([0.5, -0.5]);
    expect([...safetensorsEntryToFloat32(tensors.embed)]).toEqual([1, -0.3330078125, 65504]);
    expect([...safetensorsEntryToFloat32(tensors.norm)]).toEqual([1, -2]);
    expect([...safetensorsEntryToFloat32(tensors.step)]).toEqual([7]);
    expect([...safetensorsEntryToFloat32(tensors.ids)]).toEqual([-1, 2 ** 31]);
    expect([...safetensorsEntryToFloat32(tensors.pixels)]).toEqual([0, 127, 128, 255]);
    expect([...safetensorsEntryToFloat32(tensors.mask)]).toEqual([1, 0, 1]);
    expect([...safetensorsEntryToFloat32(tensors['é"q\\\n\tτ😀'])]).toEqual([-1]);
    expect(safetensorsEntryToFloat32(tensors.double)[0]).toBeCloseTo(Math.PI, 6);
  });

  it('copies misaligned F32 data instead of failing', () => {
    const data = new Uint8Array(9).subarray(1);
    new DataView(data.buffer).setFloat32(1, 2.5, true);
    expect([...safetensorsEntryToFloat32({ dtype: 'F32', shape: [2], data })]).toEqual([2.5, 0]);
  });

  it('refuses dtypes it cannot convert', () => {
    expectCode(
      () => safetensorsEntryToFloat32({ dtype: 'F8_E4M3', shape: [1], data: hex('00') }),
      'unsupported_dtype',
    );
  });

  it('makes F32 (shared), F16 and BF16 entries from float32', () => {
    const values = new Float32Array([1, -2, 0.1]);
    const entry = float32ToSafetensorsEntry(values, [3]);
    expect(entry.data.buffer).toBe(values.buffer);
    expect(float32ToSafetensorsEntry(values, [1, 3], 'F16').data).toEqual(hex('003c00c0662e'));
    expect(float32ToSafetensorsEntry(values, [3], 'BF16').data).toEqual(hex('803f00c0cd3d'));
    expectCode(() => float32ToSafetensorsEntry(values, [2]), 'size_mismatch');
  });
});
