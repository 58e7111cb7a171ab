import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DatasetErrorCode,
  FASHION_MNIST_DIR,
  featureSizeOf,
  generateTinyDataset,
  hasMnistFiles,
  type IdxArray,
  InMemoryDataset,
  idxDataset,
  isDatasetError,
  loadDefaultDataset,
  loadFashionMnist,
  loadMnistFormat,
  parseCsvDataset,
  parseIdx,
  readCsvDataset,
  readIdxDataset,
  readIdxFile,
  serializeIdx,
  sliceDataset,
  TINY_DATASET_DIR,
  writeIdxFile,
  writeTinyDataset,
} from '../../src/ml/data/index.js';

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-data-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

function expectDatasetError(action: () => unknown, code: DatasetErrorCode) {
  try {
    action();
  } catch (error) {
    expect(isDatasetError(error, code), `expected ${code}, got ${String(error)}`).toBe(true);
    return error as Error & { line?: number };
  }
  throw new Error(`expected DatasetError ${code}, nothing was thrown`);
}

const hex = (text: string) => new Uint8Array(Buffer.from(text.replace(/ /g, ''), 'hex'));

describe('IDX', () => {
  it('parses a hand-written MNIST-style file, plain and gzip', () => {
    // Two 2x3 uint8 images: magic 00 00 08 03, dimensions 2, 2, 3 (big-endian u32).
    const bytes = hex('00000803 00000002 00000002 00000003 000102030405 fffefdfcfbfa');
    for (const input of [bytes, new Uint8Array(gzipSync(bytes))]) {
      const parsed = parseIdx(input);
      expect(parsed.dataType).toBe('uint8');
      expect(parsed.dimensions).toEqual([2, 2, 3]);
      expect([...parsed.data]).toEqual([0, 1, 2, 3, 4, 5, 255, 254, 253, 252, 251, 250]);
    }
  });

  it('decodes big-endian values of every type', () => {
    expect([...parseIdx(hex('00000901 00000002 ff7f')).data]).toEqual([-1, 127]);
    expect([...parseIdx(hex('00000b01 00000002 fffe 0102')).data]).toEqual([-2, 258]);
    expect([...parseIdx(hex('00000c01 00000001 fffffffd')).data]).toEqual([-3]);
    expect([...parseIdx(hex('00000d01 00000001 3fc00000')).data]).toEqual([1.5]);
    expect([...parseIdx(hex('00000e01 00000001 c004000000000000')).data]).toEqual([-2.5]);
  });

  it('round-trips every type through serializeIdx, plain and gzip', () => {
    const arrays: IdxArray[] = [
      { dataType: 'uint8', dimensions: [3], data: new Uint8Array([1, 2, 255]) },
      { dataType: 'int8', dimensions: [1, 2], data: new Int8Array([-128, 127]) },
      { dataType: 'int16', dimensions: [2], data: new Int16Array([-300, 300]) },
      { dataType: 'int32', dimensions: [2, 1, 1], data: new Int32Array([-70000, 70000]) },
      { dataType: 'float32', dimensions: [2], data: new Float32Array([0.25, -1e30]) },
      { dataType: 'float64', dimensions: [1], data: new Float64Array([Math.PI]) },
    ];
    for (const array of arrays) {
      expect(parseIdx(serializeIdx(array))).toEqual(array);
      expect(parseIdx(serializeIdx(array, { gzip: true }))).toEqual(array);
    }
    expect(() => serializeIdx({ dataType: 'uint8', dimensions: [2], data: new Uint8Array(3) })).toThrow(
      /hold 2 values/,
    );
  });

  it.each<[string, Uint8Array, DatasetErrorCode]>([
    ['bad magic', hex('01020803 00000001 00'), 'bad_magic'],
    ['a PNG', hex('89504e47 0d0a1a0a'), 'bad_magic'],
    ['zero dimensions', hex('00000800'), 'bad_magic'],
    ['too many dimensions', hex('00000809'), 'bad_magic'],
    ['an unknown type code', hex('00000a01 00000001 00'), 'unknown_idx_type'],
    ['fewer than 4 bytes', hex('0000'), 'truncated'],
    ['a truncated header', hex('00000803 00000002'), 'truncated'],
    ['truncated values', hex('00000803 00000002 00000002 00000002 00010203040506'), 'truncated'],
    ['more values than the dimensions', hex('00000801 00000002 000102'), 'size_mismatch'],
    ['corrupt gzip', hex('1f8b0800 00000000 0003ffff'), 'invalid_gzip'],
  ])('rejects %s', (_what, bytes, code) => {
    const error = expectDatasetError(() => parseIdx(bytes, 'sample.idx'), code);
    expect(error.message).toContain('sample.idx');
  });

  it('reads files and builds a data set with pixels scaled to [0, 1]', async () => {
    const images = join(directory, 'images.gz');
    const labels = join(directory, 'labels');
    await writeIdxFile(
      images,
      { dataType: 'uint8', dimensions: [2, 1, 2], data: new Uint8Array([0, 255, 51, 102]) },
      { gzip: true },
    );
    await writeIdxFile(labels, { dataType: 'uint8', dimensions: [2], data: new Uint8Array([3, 1]) });
    expect((await readIdxFile(images)).dimensions).toEqual([2, 1, 2]);
    const dataset = await readIdxDataset(images, labels, { numClasses: 10 });
    expect(dataset.length).toBe(2);
    expect(dataset.featureShape).toEqual([1, 2]);
    expect(dataset.numClasses).toBe(10);
    expect([...dataset.features]).toEqual([0, 1, 0.2, 0.4].map(Math.fround));
    expect([...dataset.labels]).toEqual([3, 1]);
    await expect(readIdxFile(join(directory, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rejects image and label files that do not belong together', () => {
    const images: IdxArray = { dataType: 'uint8', dimensions: [2, 2], data: new Uint8Array(4) };
    const labels = (count: number): IdxArray => ({
      dataType: 'uint8',
      dimensions: [count],
      data: new Uint8Array(count),
    });
    expectDatasetError(() => idxDataset(images, labels(3)), 'count_mismatch');
    expectDatasetError(
      () => idxDataset(images, { dataType: 'float32', dimensions: [2], data: new Float32Array(2) }),
      'invalid_labels',
    );
    expectDatasetError(() => idxDataset(images, labels(2), { featureShape: [3] }), 'size_mismatch');
    expectDatasetError(
      () =>
        idxDataset(
          images,
          { dataType: 'uint8', dimensions: [2], data: new Uint8Array([0, 5]) },
          { numClasses: 3 },
        ),
      'invalid_dataset',
    );
  });
});

describe('CSV', () => {
  it('reads labels and features, with or without a header, any label column', () => {
    const withHeader = parseCsvDataset('label,a,b\n1,0.5,2\n\n0,-1,3e2\n');
    expect(withHeader.length).toBe(2);
    expect(withHeader.featureShape).toEqual([2]);
    expect([...withHeader.features]).toEqual([0.5, 2, -1, 300]);
    expect([...withHeader.labels]).toEqual([1, 0]);
    expect(withHeader.numClasses).toBe(2);

    const last = parseCsvDataset('1;2;4\r\n3;4;0\r\n', {
      labelColumn: 'last',
      delimiter: ';',
      numClasses: 5,
    });
    expect([...last.labels]).toEqual([4, 0]);
    expect([...last.features]).toEqual([1, 2, 3, 4]);
    expect(last.numClasses).toBe(5);

    const named = parseCsvDataset('x,"class",y\n"1.5",2,3\n', { labelColumn: 'class' });
    expect([...named.labels]).toEqual([2]);
    expect([...named.features]).toEqual([1.5, 3]);

    const noHeader = parseCsvDataset('0,1\n1,2', { header: false, featureShape: [1, 1] });
    expect(noHeader.featureShape).toEqual([1, 1]);
  });

  it.each<[string, string, object, DatasetErrorCode, number | undefined]>([
    ['an empty file', '\n\n', {}, 'csv_empty', undefined],
    ['a header and no rows', 'label,x\n', {}, 'csv_empty', undefined],
    ['a short row', '1,2,3\n0,1\n', {}, 'csv_column_count', 2],
    ['a header wider than the rows', 'label,a,b\n1,2\n', {}, 'csv_column_count', 2],
    ['a header narrower than the rows', 'label,a\n1,2,3\n', {}, 'csv_column_count', 2],
    ['a non-numeric feature', 'label,x\n1,2\n0,abc\n', {}, 'csv_invalid_number', 3],
    ['an empty feature', '1,2\n0,\n', {}, 'csv_invalid_number', 2],
    ['an infinite feature', '1,Infinity\n', { header: false }, 'csv_invalid_number', 1],
    ['a fractional label', '1.5,2\n', {}, 'csv_invalid_label', 1],
    ['a negative label', '\n-1,2\n', {}, 'csv_invalid_label', 2],
    ['a label over numClasses', '1,2\n10,3\n', { numClasses: 10 }, 'csv_invalid_label', 2],
    ['an unknown label name', 'a,b\n1,2\n', { labelColumn: 'label' }, 'csv_unknown_column', undefined],
    ['a label name without header', '1,2\n', { labelColumn: 'label' }, 'csv_unknown_column', undefined],
    ['a label column out of range', '1,2\n', { labelColumn: 5 }, 'csv_unknown_column', undefined],
    ['a single column', '1\n2\n', {}, 'csv_unknown_column', undefined],
    ['an unterminated quote', '1,"2\n', {}, 'csv_unterminated_quote', 1],
    ['a bad delimiter', '1,2\n', { delimiter: ',,' }, 'invalid_dataset', undefined],
  ])('rejects %s', (_what, text, options, code, line) => {
    const error = expectDatasetError(() => parseCsvDataset(text, options, 'sample.csv'), code);
    expect(error.line).toBe(line);
    if (line !== undefined)
      expect(error.message).toMatch(new RegExp(`^sample\\.csv, line ${line}(, column \\d+)?:`));
  });

  it('reads a file and names it in errors', async () => {
    const path = join(directory, 'bad.csv');
    await writeFile(path, '0,1\n1,x\n');
    await expect(readCsvDataset(path)).rejects.toThrow(
      `${path}, line 2, column 2: "x" is not a finite decimal number`,
    );
    await writeFile(path, '0,1\n1,2\n');
    expect((await readCsvDataset(path)).length).toBe(2);
  });
});

describe('InMemoryDataset', () => {
  it('checks shapes and labels', () => {
    const features = new Float32Array(6);
    expect(
      new InMemoryDataset({ features, labels: new Int32Array([0, 2]), featureShape: [3] }).numClasses,
    ).toBe(3);
    expect(() => new InMemoryDataset({ features, labels: new Int32Array(3), featureShape: [3] })).toThrow(
      /need 9 features/,
    );
    expect(() => new InMemoryDataset({ features, labels: new Int32Array(2), featureShape: [0] })).toThrow(
      /positive integers/,
    );
    expect(
      () =>
        new InMemoryDataset({ features, labels: new Int32Array([0, 3]), featureShape: [3], numClasses: 3 }),
    ).toThrow(/label 3 of sample 1/);
    expect(
      () =>
        new InMemoryDataset({
          features: [] as unknown as Float32Array,
          labels: new Int32Array(0),
          featureShape: [1],
        }),
    ).toThrow(/Float32Array/);
  });

  it('slices without copying', () => {
    const dataset = new InMemoryDataset({
      features: Float32Array.from([0, 1, 2, 3, 4, 5]),
      labels: Int32Array.from([0, 1, 2]),
      featureShape: [2],
    });
    const slice = sliceDataset(dataset, 1, 3);
    expect(slice.length).toBe(2);
    expect([...slice.features]).toEqual([2, 3, 4, 5]);
    expect(slice.features.buffer).toBe(dataset.features.buffer);
    expect(slice.numClasses).toBe(3);
    expect(() => sliceDataset(dataset, 2, 1)).toThrow(/not within/);
    expect(featureSizeOf([1, 28, 28])).toBe(784);
  });
});

describe('tiny data set', () => {
  it('ships in data/tiny, under 2 MB, and matches its generator', async () => {
    const files = await readdir(TINY_DATASET_DIR);
    let total = 0;
    for (const file of files) total += (await stat(join(TINY_DATASET_DIR, file))).size;
    expect(total).toBeLessThan(2 * 1024 * 1024);
    const { train, test } = await loadMnistFormat(TINY_DATASET_DIR);
    expect([train.length, test.length]).toEqual([8000, 2000]);
    expect(train.featureShape).toEqual([1, 28, 28]);
    // The generator is sequential, so a short run reproduces the first images of each split.
    const fresh = generateTinyDataset({ trainCount: 300, testCount: 100 });
    const scale = (pixels: Uint8Array) => Float32Array.from(pixels, (value) => Math.fround(value / 255));
    expect(train.features.subarray(0, 300 * 784)).toEqual(scale(fresh.train.images));
    expect(test.features.subarray(0, 100 * 784)).toEqual(scale(fresh.test.images));
    expect([...train.labels.subarray(0, 300)]).toEqual([...fresh.train.labels]);
  });

  it('is deterministic and balanced, and writeTinyDataset writes a loadable directory', async () => {
    const a = generateTinyDataset({ trainCount: 50, testCount: 20, seed: 7 });
    const b = generateTinyDataset({ trainCount: 50, testCount: 20, seed: 7 });
    expect(a).toEqual(b);
    expect(generateTinyDataset({ trainCount: 50, testCount: 20, seed: 8 }).train.images).not.toEqual(
      a.train.images,
    );
    expect(a.train.labels.filter((label) => label === 3).length).toBe(5);
    const out = join(directory, 'tiny');
    await writeTinyDataset(out, { trainCount: 30, testCount: 10 });
    expect(await hasMnistFiles(out)).toBe(true);
    const loaded = await loadMnistFormat(out);
    expect([loaded.train.length, loaded.test.length, loaded.train.numClasses]).toEqual([30, 10, 10]);
    expect(() => generateTinyDataset({ trainCount: 0 })).toThrow(RangeError);
  });
});

const fashionMnistPresent =
  existsSync(join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz')) ||
  existsSync(join(FASHION_MNIST_DIR, 'train-images-idx3-ubyte'));

describe('Fashion-MNIST', () => {
  it.skipIf(!fashionMnistPresent)('loads 60,000 training and 10,000 test images in [0, 1]', async () => {
    const { train, test } = await loadFashionMnist();
    expect([train.length, test.length]).toEqual([60000, 10000]);
    expect(train.featureShape).toEqual([1, 28, 28]);
    expect(train.features.length).toBe(60000 * 784);
    expect(train.numClasses).toBe(10);
    let minimum = Number.POSITIVE_INFINITY;
    let maximum = Number.NEGATIVE_INFINITY;
    for (const value of test.features) {
      if (value < minimum) minimum = value;
      if (value > maximum) maximum = value;
    }
    expect([minimum, maximum]).toEqual([0, 1]);
    expect(new Set(train.labels).size).toBe(10);
    const defaults = await loadDefaultDataset();
    expect(defaults.name).toBe('fashion-mnist');
  });

  it('reports a directory without the files, and falls back to the tiny set', async () => {
    await expect(loadFashionMnist(directory)).rejects.toMatchObject({ code: 'not_found' });
    await expect(loadFashionMnist(directory)).rejects.toThrow(/train-images-idx3-ubyte/);
    const fallback = await loadDefaultDataset(join(directory, 'nowhere'));
    expect(fallback.name).toBe('tiny');
    expect(fallback.train.length).toBe(8000);
  });
});
