/**
 * Fuzzing the safetensors reader with mutated valid files. Every input parses to exactly what
 * its bytes say (checked by a small independent reading of the format) or fails with a
 * SafetensorsError naming the file and the rule it broke; never another error, never a hang.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isSafetensorsError,
  parseSafetensors,
  readSafetensorsFile,
  type SafetensorsFile,
  safetensorsDtypeBits,
  serializeSafetensors,
} from '../../src/ml/safetensors.js';
import { describeInput, type LengthField, mutate, mutationsArbitrary } from './mutations.js';

const fields: LengthField[] = [{ offset: 0, bytes: 8, endian: 'le' }]; // header length
const source = '/data/model.safetensors';
const bytesOf = (length: number, seed: number) =>
  Uint8Array.from({ length }, (_, index) => (index * 31 + seed) % 256);
const original = Buffer.from(
  serializeSafetensors(
    {
      'layer.0.weight': { dtype: 'F32', shape: [3, 4], data: bytesOf(48, 1) },
      'layer.0.bias': { dtype: 'F16', shape: [4], data: bytesOf(8, 2) },
      steps: { dtype: 'I64', shape: [], data: bytesOf(8, 3) },
      mask: { dtype: 'BOOL', shape: [2, 2], data: bytesOf(4, 4) },
    },
    { format: 'pt', note: 'fuzz' },
  ),
);

/** What the bytes say, read independently of the parser (only called when the parser accepted them). */
function expectSameAsBytes(bytes: Buffer, parsed: SafetensorsFile): void {
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  const dataStart = 8 + headerLength;
  const { __metadata__: metadata, ...entries } = header;
  expect(parsed.metadata).toEqual(metadata ?? undefined);
  expect(Object.keys(parsed.tensors).sort()).toEqual(Object.keys(entries).sort());
  let covered = 0;
  for (const [name, value] of Object.entries(entries)) {
    const entry = value as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const tensor = parsed.tensors[name];
    expect(tensor.dtype).toBe(entry.dtype);
    expect(tensor.shape).toEqual(entry.shape);
    const [begin, end] = entry.data_offsets;
    expect(Buffer.from(tensor.data).equals(bytes.subarray(dataStart + begin, dataStart + end))).toBe(true);
    const elements = entry.shape.reduce((product, dimension) => product * dimension, 1);
    expect(tensor.data.byteLength * 8).toBe(elements * safetensorsDtypeBits(tensor.dtype));
    covered += end - begin;
  }
  expect(covered).toBe(bytes.length - dataStart); // the tensors tile the data region
}

function expectTypedError(error: unknown, bytes: Buffer, name: string): void {
  if (!isSafetensorsError(error))
    throw new Error(
      `not a SafetensorsError: ${(error as Error)?.stack ?? String(error)}\ninput: ${describeInput(bytes)}`,
    );
  expect(error.source).toBe(name);
  expect(error.message.startsWith(`${name}: `)).toBe(true);
}

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zbmd-fuzz-st-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('fuzz: the safetensors reader', () => {
  it('parseSafetensors: thousands of mutated files give what the bytes say or a SafetensorsError naming the file', () => {
    const started = Date.now();
    fc.assert(
      fc.property(mutationsArbitrary(fields.length), (mutations) => {
        const bytes = mutate(original, mutations, fields);
        let parsed: SafetensorsFile;
        try {
          parsed = parseSafetensors(bytes, source);
        } catch (error) {
          expectTypedError(error, bytes, source);
          return;
        }
        expectSameAsBytes(bytes, parsed);
      }),
      { numRuns: 5_000, seed: 31 },
    );
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('readSafetensorsFile: errors name the path', async () => {
    const path = join(root, 'mutated.safetensors');
    await fc.assert(
      fc.asyncProperty(mutationsArbitrary(fields.length), async (mutations) => {
        const bytes = mutate(original, mutations, fields);
        await writeFile(path, bytes);
        const parsed = await readSafetensorsFile(path).catch((error: unknown) => {
          expectTypedError(error, bytes, path);
          return undefined;
        });
        if (parsed !== undefined) expectSameAsBytes(bytes, parsed);
      }),
      { numRuns: 200, seed: 32 },
    );
  });
});
