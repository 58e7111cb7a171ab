/**
 * A small procedural image data set in Fashion-MNIST's format, shipped in `data/tiny` so that
 * training works on a machine without Fashion-MNIST. Ten classes of simple 28x28 shapes (bars,
 * diagonals, ring, disk, plus, square, cross, triangle), each drawn with a seeded random
 * position, size, stroke width and brightness, anti-aliased, with sparse noise. Generation is
 * deterministic: the same options always give the same pixels.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Random } from '../../actor/Random.js';
import { writeIdxFile } from './Idx.js';

/** Names of the ten classes, by label. */
export const TINY_DATASET_CLASSES: readonly string[] = Object.freeze([
  'horizontal bar',
  'vertical bar',
  'diagonal',
  'anti-diagonal',
  'ring',
  'disk',
  'plus',
  'square',
  'cross',
  'triangle',
]);

/** Image side in pixels (as Fashion-MNIST). */
export const TINY_DATASET_IMAGE_SIDE = 28;

/** Options of `generateTinyDataset`; the defaults are what `data/tiny` holds. */
export interface TinyDatasetOptions {
  /** Training images, default 8000 (at most 100,000). */
  trainCount?: number;
  /** Test images, default 2000 (at most 100,000). */
  testCount?: number;
  /** Generator seed, default 20240611. */
  seed?: number;
}

/** Raw images ([count, 28, 28] uint8) and labels ([count] uint8) of one split. */
export interface TinySplit {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

const MAX_COUNT = 100_000;

/** The directory holding the shipped tiny data set (`data/tiny` at the package root). */
export const TINY_DATASET_DIR = findTinyDatasetDir();

function findTinyDatasetDir(): string {
  // Works from src/ml/data (tests, vite-node) and from dist/src/ml/data (the built package).
  let directory = dirname(fileURLToPath(import.meta.url));
  for (let level = 0; level < 6; level++) {
    const candidate = join(directory, 'data', 'tiny');
    if (existsSync(join(candidate, 'train-labels-idx1-ubyte.gz'))) return candidate;
    directory = dirname(directory);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'data', 'tiny');
}

/** Generates the train and test splits (test images use a separate stream of the same seed). */
export function generateTinyDataset(options: TinyDatasetOptions = {}): { train: TinySplit; test: TinySplit } {
  const trainCount = options.trainCount ?? 8000;
  const testCount = options.testCount ?? 2000;
  const seed = options.seed ?? 20240611;
  for (const [name, count] of [
    ['trainCount', trainCount],
    ['testCount', testCount],
  ] as const) {
    if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
      throw new RangeError(`${name} must be an integer from 1 to ${MAX_COUNT}, got ${count}`);
    }
  }
  return {
    train: generateSplit(trainCount, new Random(seed)),
    test: generateSplit(testCount, new Random(BigInt(seed) + (1n << 32n))),
  };
}

function generateSplit(count: number, random: Random): TinySplit {
  const pixels = TINY_DATASET_IMAGE_SIDE * TINY_DATASET_IMAGE_SIDE;
  const images = new Uint8Array(count * pixels);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const label = i % TINY_DATASET_CLASSES.length; // balanced classes; the loader shuffles
    labels[i] = label;
    drawShape(images.subarray(i * pixels, (i + 1) * pixels), label, random);
  }
  return { images, labels, count };
}

interface Stroke {
  readonly radius: number;
  readonly width: number;
}

/** Whether the point (dx, dy) from the centre is inside the shape of `label`. */
function inside(label: number, dx: number, dy: number, { radius, width }: Stroke): boolean {
  const distance = Math.hypot(dx, dy);
  const along = Math.abs(dx + dy) / Math.SQRT2;
  const across = Math.abs(dx - dy) / Math.SQRT2;
  const horizontal = Math.abs(dy) <= width && Math.abs(dx) <= radius;
  const vertical = Math.abs(dx) <= width && Math.abs(dy) <= radius;
  const diagonal = across <= width && along <= radius;
  const antiDiagonal = along <= width && across <= radius;
  const box = Math.max(Math.abs(dx), Math.abs(dy));
  switch (label) {
    case 0:
      return horizontal;
    case 1:
      return vertical;
    case 2:
      return diagonal;
    case 3:
      return antiDiagonal;
    case 4:
      return Math.abs(distance - radius) <= width;
    case 5:
      return distance <= radius;
    case 6:
      return horizontal || vertical;
    case 7:
      return box <= radius && box >= radius - 2 * width;
    case 8:
      return diagonal || antiDiagonal;
    default:
      return dy >= -radius && dy <= radius && Math.abs(dx) <= (dy + radius) / 2;
  }
}

/** Draws one image: the shape with 2x2 supersampling (anti-aliased edges), then sparse noise. */
function drawShape(image: Uint8Array, label: number, random: Random): void {
  const side = TINY_DATASET_IMAGE_SIDE;
  const centreX = 13.5 + (random.next() * 6 - 3);
  const centreY = 13.5 + (random.next() * 6 - 3);
  const stroke = { radius: 6 + random.next() * 4, width: 1 + random.next() * 1.5 };
  const brightness = 160 + random.nextInt(96);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      let covered = 0;
      for (const [offsetX, offsetY] of SUBPIXELS) {
        if (inside(label, x + offsetX - centreX, y + offsetY - centreY, stroke)) covered++;
      }
      let value = (brightness * covered) / SUBPIXELS.length;
      if (random.chance(0.02)) value += random.nextInt(96);
      image[y * side + x] = Math.min(255, Math.round(value));
    }
  }
}

const SUBPIXELS: readonly (readonly [number, number])[] = [
  [0.25, 0.25],
  [0.75, 0.25],
  [0.25, 0.75],
  [0.75, 0.75],
];

/**
 * Writes the tiny data set as four gzip IDX files with Fashion-MNIST's names
 * (`train-images-idx3-ubyte.gz`, ...) in `dir` (default: the shipped `data/tiny`).
 */
export async function writeTinyDataset(
  dir: string = TINY_DATASET_DIR,
  options: TinyDatasetOptions = {},
): Promise<void> {
  const { train, test } = generateTinyDataset(options);
  await mkdir(dir, { recursive: true });
  const side = TINY_DATASET_IMAGE_SIDE;
  const gzip = { gzip: true };
  await writeIdxFile(
    join(dir, 'train-images-idx3-ubyte.gz'),
    { dataType: 'uint8', dimensions: [train.count, side, side], data: train.images },
    gzip,
  );
  await writeIdxFile(
    join(dir, 'train-labels-idx1-ubyte.gz'),
    { dataType: 'uint8', dimensions: [train.count], data: train.labels },
    gzip,
  );
  await writeIdxFile(
    join(dir, 't10k-images-idx3-ubyte.gz'),
    { dataType: 'uint8', dimensions: [test.count, side, side], data: test.images },
    gzip,
  );
  await writeIdxFile(
    join(dir, 't10k-labels-idx1-ubyte.gz'),
    { dataType: 'uint8', dimensions: [test.count], data: test.labels },
    gzip,
  );
}
