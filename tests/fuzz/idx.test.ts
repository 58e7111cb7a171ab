/**
 * Fuzzing the IDX reader with mutated valid files (plain and gzip-compressed). Every input gives
 * exactly the values its bytes hold (checked by a small independent decoding) or a DatasetError
 * naming the file and the problem; never another error, never a hang.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDatasetError } from '../../src/ml/data/DatasetError.js';
import { type IdxArray, parseIdx, readIdxFile, serializeIdx } from '../../src/ml/data/Idx.js';
import { describeInput, type LengthField, mutate, mutationsArbitrary } from './mutations.js';

const TYPES: Record<number, { bytes: number; read: (view: DataView, offset: number) => number }> = {
  8: { bytes: 1, read: (view, offset) => view.getUint8(offset) },
  9: { bytes: 1, read: (view, offset) => view.getInt8(offset) },
  11: { bytes: 2, read: (view, offset) => view.getInt16(offset, false) },
  12: { bytes: 4, read: (view, offset) => view.getInt32(offset, false) },
  13: { bytes: 4, read: (view, offset) => view.getFloat32(offset, false) },
  14: { bytes: 8, read: (view, offset) => view.getFloat64(offset, false) },
};

const originals: Array<{ label: string; bytes: Buffer; fields: LengthField[] }> = [];
function add(label: string, array: IdxArray): void {
  const fields = array.dimensions.map((_, index) => ({
    offset: 4 + 4 * index,
    bytes: 4 as const,
    endian: 'be' as const,
  }));
  originals.push({ label, bytes: Buffer.from(serializeIdx(array)), fields });
}
add('uint8 images', {
  dataType: 'uint8',
  dimensions: [3, 4, 5],
  data: Uint8Array.from({ length: 60 }, (_, i) => i * 4),
});
add('int16', {
  dataType: 'int16',
  dimensions: [2, 6],
  data: Int16Array.from({ length: 12 }, (_, i) => i * 1000 - 6000),
});
add('float32', {
  dataType: 'float32',
  dimensions: [10],
  data: Float32Array.from({ length: 10 }, (_, i) => i / 3),
});
add('float64 labels', { dataType: 'float64', dimensions: [4], data: Float64Array.from([1.5, -2, 1e300, 0]) });

const gzipped = originals.map(({ bytes }) => Buffer.from(serializeIdx(parseIdx(bytes), { gzip: true })));

/** The values the (decompressed) bytes hold, decoded independently; only called when the reader accepted them. */
function expectSameAsBytes(input: Buffer, parsed: IdxArray): void {
  const bytes = input[0] === 0x1f && input[1] === 0x8b ? gunzipSync(input) : input;
  const type = TYPES[bytes[2]];
  const dimensions = Array.from({ length: bytes[3] }, (_, index) => bytes.readUInt32BE(4 + 4 * index));
  expect(parsed.dimensions).toEqual(dimensions);
  const count = dimensions.reduce((product, dimension) => product * dimension, 1);
  const start = 4 + 4 * dimensions.length;
  expect(bytes.length).toBe(start + count * type.bytes);
  expect(parsed.data.length).toBe(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset + start, count * type.bytes);
  for (let index = 0; index < count; index++) {
    expect(Object.is(parsed.data[index], type.read(view, index * type.bytes))).toBe(true);
  }
}

function expectTypedError(error: unknown, bytes: Buffer, name: string): void {
  if (!isDatasetError(error))
    throw new Error(
      `not a DatasetError: ${(error as Error)?.stack ?? String(error)}\ninput: ${describeInput(bytes)}`,
    );
  expect(error.source).toBe(name);
  expect(error.message).toContain(name);
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zbmd-fuzz-idx-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('fuzz: the IDX reader', () => {
  for (const compressed of [false, true]) {
    it(`parseIdx (${compressed ? 'gzip' : 'plain'}): thousands of mutated files give what the bytes hold or a DatasetError naming the file`, () => {
      const started = Date.now();
      const source = 'train-images-idx3-ubyte';
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: originals.length - 1 }),
          mutationsArbitrary(compressed ? 0 : 3),
          (which, mutations) => {
            const { bytes: plain, fields } = originals[which];
            // Length fields are the dimensions; a gzip file has none at known places.
            const base = compressed ? gzipped[which] : plain;
            const bytes = mutate(base, mutations, compressed ? [] : fields);
            let parsed: IdxArray;
            try {
              parsed = parseIdx(bytes, source);
            } catch (error) {
              expectTypedError(error, bytes, source);
              return;
            }
            expectSameAsBytes(bytes, parsed);
          },
        ),
        { numRuns: compressed ? 2_000 : 5_000, seed: compressed ? 42 : 41 },
      );
      expect(Date.now() - started).toBeLessThan(20_000);
    });
  }

  it('readIdxFile: errors name the path', async () => {
    const path = join(root, 'mutated-idx1-ubyte');
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: originals.length - 1 }),
        mutationsArbitrary(3),
        async (which, mutations) => {
          const bytes = mutate(originals[which].bytes, mutations, originals[which].fields);
          await writeFile(path, bytes);
          const parsed = await readIdxFile(path).catch((error: unknown) => {
            expectTypedError(error, bytes, path);
            return undefined;
          });
          if (parsed !== undefined) expectSameAsBytes(bytes, parsed);
        },
      ),
      { numRuns: 100, seed: 43 },
    );
  });
});
