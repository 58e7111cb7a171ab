/**
 * Fuzzing the checkpoint reader with mutated valid checkpoint files. Every input decodes to
 * exactly the saved payload and metadata (only when the file is unchanged: the SHA-256 covers
 * every byte) or is refused with a defect; through DirectoryCheckpointStore, a refused file is
 * passed over and reported with its location. Never a thrown error, never other data.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryCheckpointStore } from '../../src/fault/index.js';
import { decodeCheckpoint } from '../../src/fault/internal/CheckpointFormat.js';
import { describeInput, type LengthField, mutate, mutationsArbitrary } from './mutations.js';

const fields: LengthField[] = [
  { offset: 12, bytes: 4, endian: 'le' }, // metadata length
  { offset: 16, bytes: 8, endian: 'le' }, // payload length
];
const payload = Buffer.from(Array.from({ length: 300 }, (_, index) => (index * 37) % 256));
const metadata = { step: 42, note: 'fuzz ✓', nested: { loss: 0.125 } };
const defects = [
  'too_short',
  'bad_magic',
  'unsupported_version',
  'length_mismatch',
  'checksum_mismatch',
  'bad_metadata',
];

let root: string;
let original: Buffer;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zbmd-fuzz-ckpt-'));
  const store = new DirectoryCheckpointStore(join(root, 'original'));
  await store.save('model', payload, metadata);
  original = await readFile(store.fileOf('model', 1));
  await store.close();
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('fuzz: the checkpoint reader', () => {
  it('decodeCheckpoint: thousands of mutated files give the saved data (file unchanged) or a defect', () => {
    const started = Date.now();
    fc.assert(
      fc.property(mutationsArbitrary(fields.length), (mutations) => {
        const bytes = mutate(original, mutations, fields);
        const decoded = decodeCheckpoint(bytes);
        if (decoded.ok) {
          if (!bytes.equals(original)) throw new Error(`a changed file decoded: ${describeInput(bytes)}`);
          expect(decoded.payload.equals(payload)).toBe(true);
          expect(decoded.metadata).toEqual(metadata);
        } else {
          expect(defects).toContain(decoded.defect);
          expect(decoded.detail.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 3_000, seed: 21 },
    );
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('DirectoryCheckpointStore.loadLatest: a mutated latest file is passed over and reported with its location', async () => {
    const directory = join(root, 'store');
    await mkdir(join(directory, 'model'), { recursive: true });
    const previous = new DirectoryCheckpointStore(directory);
    await previous.save('model', Buffer.from('previous'), { step: 41 });
    await previous.close();
    const store = new DirectoryCheckpointStore(directory);
    const latest = join(directory, 'model', '0000000000000002.ckpt');
    await fc.assert(
      fc.asyncProperty(mutationsArbitrary(fields.length), async (mutations) => {
        const bytes = mutate(original, mutations, fields);
        await writeFile(latest, bytes);
        const loaded = await store.loadLatest('model');
        if (bytes.equals(original)) {
          expect(loaded?.sequence).toBe(2);
          expect(loaded?.payload.equals(payload)).toBe(true);
          return;
        }
        expect(loaded?.sequence, describeInput(bytes)).toBe(1);
        expect(loaded?.payload.toString()).toBe('previous');
        expect(loaded?.skipped).toHaveLength(1);
        expect(loaded?.skipped[0].location).toBe(latest);
        expect(defects).toContain(loaded?.skipped[0].defect);
      }),
      { numRuns: 100, seed: 22 },
    );
  }, 30_000);
});
