/**
 * The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a 4-byte magic
 * `0x00 0x00 <type> <dimension count>`, one big-endian u32 per dimension, then the values,
 * big-endian, row-major. Files may be gzip-compressed (recognised by their `1f 8b` magic).
 */
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip, gunzipSync, gzipSync } from 'node:zlib';
import { writeFileDurably } from '../../internal/durable.js';
import { InMemoryDataset } from './Dataset.js';
import { DatasetError } from './DatasetError.js';

/**
 * The largest IDX payload accepted, after decompression: 1 GiB. Fashion-MNIST's training images
 * are 47 MB. A larger (or corrupt, or hostile) file is refused with `too_large` rather than
 * exhausting memory.
 */
export const IDX_MAX_BYTES = 1 << 30;

/** The most dimensions an IDX array may declare here: 8 (MNIST-style files use 1 to 4). */
export const IDX_MAX_DIMENSIONS = 8;

const IDX_TYPES = {
  8: { name: 'uint8', bytes: 1 },
  9: { name: 'int8', bytes: 1 },
  11: { name: 'int16', bytes: 2 },
  12: { name: 'int32', bytes: 4 },
  13: { name: 'float32', bytes: 4 },
  14: { name: 'float64', bytes: 8 },
} as const;

/** The element type of an IDX array. */
export type IdxDataType = (typeof IDX_TYPES)[keyof typeof IDX_TYPES]['name'];

/** An IDX array: its element type, dimensions and values in host byte order. */
export interface IdxArray {
  dataType: IdxDataType;
  dimensions: number[];
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const GZIP_MAGIC = [0x1f, 0x8b];

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1];
}

function decompressionError(error: unknown, source: string): DatasetError {
  if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || error instanceof RangeError) {
    return new DatasetError(
      'too_large',
      `${source}: decompresses to more than ${IDX_MAX_BYTES} bytes`,
      source,
    );
  }
  return new DatasetError(
    'invalid_gzip',
    `${source}: corrupt gzip data (${(error as Error).message})`,
    source,
  );
}

/**
 * Parses an IDX array from bytes (gzip-compressed or not). A uint8 array is a view of the
 * (decompressed) input; other types are converted from big-endian into new arrays.
 *
 * Throws `DatasetError`: `invalid_gzip`, `too_large` (over `IDX_MAX_BYTES`), `bad_magic` (the
 * first two bytes are not zero), `unknown_idx_type`, `truncated` (header or values cut short),
 * `size_mismatch` (bytes left over after the values the dimensions declare).
 */
export function parseIdx(bytes: Uint8Array, source = 'IDX data'): IdxArray {
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: IDX_MAX_BYTES });
    } catch (error) {
      throw decompressionError(error, source);
    }
  }
  if (bytes.length > IDX_MAX_BYTES) {
    throw new DatasetError(
      'too_large',
      `${source}: ${bytes.length} bytes, over the ${IDX_MAX_BYTES}-byte limit`,
      source,
    );
  }
  const { dataType, elementBytes, dimensions, headerBytes } = parseIdxHeader(bytes, source);
  const count = dimensions.reduce((product, dimension) => product * dimension, 1);
  const expected = count * elementBytes;
  const available = bytes.length - headerBytes;
  if (available < expected) {
    throw new DatasetError(
      'truncated',
      `${source}: dimensions ${JSON.stringify(dimensions)} need ${expected} bytes of ${dataType}, the file has ${available} (truncated download?)`,
      source,
    );
  }
  if (available > expected) {
    throw new DatasetError(
      'size_mismatch',
      `${source}: dimensions ${JSON.stringify(dimensions)} need ${expected} bytes of ${dataType}, the file has ${available}; the header does not match the data`,
      source,
    );
  }
  return { dataType, dimensions, data: decodeValues(bytes.subarray(headerBytes), dataType, count) };
}

function parseIdxHeader(bytes: Uint8Array, source: string) {
  if (bytes.length < 4) {
    throw new DatasetError(
      'truncated',
      `${source}: ${bytes.length} bytes, too short for the 4-byte IDX magic`,
      source,
    );
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = [...bytes.subarray(0, 4)].map((byte) => byte.toString(16).padStart(2, '0')).join(' ');
    throw new DatasetError(
      'bad_magic',
      `${source}: magic ${magic} is not IDX (expected 00 00 <type> <dims>)`,
      source,
    );
  }
  const type = IDX_TYPES[bytes[2] as keyof typeof IDX_TYPES];
  if (type === undefined) {
    throw new DatasetError(
      'unknown_idx_type',
      `${source}: IDX type code 0x${bytes[2].toString(16)} is not one of 08, 09, 0b, 0c, 0d, 0e`,
      source,
    );
  }
  const dimensionCount = bytes[3];
  if (dimensionCount < 1 || dimensionCount > IDX_MAX_DIMENSIONS) {
    throw new DatasetError(
      'bad_magic',
      `${source}: ${dimensionCount} dimensions; IDX arrays here have 1 to ${IDX_MAX_DIMENSIONS}`,
      source,
    );
  }
  const headerBytes = 4 + 4 * dimensionCount;
  if (bytes.length < headerBytes) {
    throw new DatasetError(
      'truncated',
      `${source}: the header of ${dimensionCount} dimensions is cut short`,
      source,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerBytes);
  const dimensions = Array.from({ length: dimensionCount }, (_, i) => view.getUint32(4 + 4 * i, false));
  return { dataType: type.name, elementBytes: type.bytes, dimensions, headerBytes };
}

function decodeValues(body: Uint8Array, dataType: IdxDataType, count: number): IdxArray['data'] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  switch (dataType) {
    case 'uint8':
      return new Uint8Array(body.buffer, body.byteOffset, count); // a plain view, even of a Buffer
    case 'int8':
      return new Int8Array(body.buffer, body.byteOffset, count);
    case 'int16':
      return Int16Array.from({ length: count }, (_, i) => view.getInt16(2 * i, false));
    case 'int32':
      return Int32Array.from({ length: count }, (_, i) => view.getInt32(4 * i, false));
    case 'float32':
      return Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, false));
    case 'float64':
      return Float64Array.from({ length: count }, (_, i) => view.getFloat64(8 * i, false));
  }
}

/** Reads and parses an IDX file, gzip-compressed or not (decompressed off the main thread). */
export async function readIdxFile(path: string): Promise<IdxArray> {
  let bytes: Uint8Array = await readFile(path);
  if (isGzip(bytes)) {
    try {
      bytes = await promisify(gunzip)(bytes, { maxOutputLength: IDX_MAX_BYTES });
    } catch (error) {
      throw decompressionError(error, path);
    }
  }
  return parseIdx(bytes, path);
}

/**
 * The bytes of an IDX file holding `array` (gzip-compressed when `gzip` is true, with a fixed
 * header so the same array always gives the same bytes). Throws `size_mismatch` when the data
 * length is not the product of the dimensions.
 */
export function serializeIdx(array: IdxArray, options: { gzip?: boolean } = {}): Uint8Array {
  const code = Number(Object.entries(IDX_TYPES).find(([, type]) => type.name === array.dataType)?.[0]);
  const count = array.dimensions.reduce((product, dimension) => product * dimension, 1);
  if (
    array.data.length !== count ||
    array.dimensions.length < 1 ||
    array.dimensions.length > IDX_MAX_DIMENSIONS
  ) {
    throw new DatasetError(
      'size_mismatch',
      `dimensions ${JSON.stringify(array.dimensions)} hold ${count} values, data has ${array.data.length}`,
    );
  }
  const elementBytes = IDX_TYPES[code as keyof typeof IDX_TYPES].bytes;
  const headerBytes = 4 + 4 * array.dimensions.length;
  const out = new Uint8Array(headerBytes + count * elementBytes);
  const view = new DataView(out.buffer);
  out.set([0, 0, code, array.dimensions.length]);
  array.dimensions.forEach((dimension, i) => {
    view.setUint32(4 + 4 * i, dimension, false);
  });
  const writers = {
    uint8: (i: number, value: number) => view.setUint8(headerBytes + i, value),
    int8: (i: number, value: number) => view.setInt8(headerBytes + i, value),
    int16: (i: number, value: number) => view.setInt16(headerBytes + 2 * i, value, false),
    int32: (i: number, value: number) => view.setInt32(headerBytes + 4 * i, value, false),
    float32: (i: number, value: number) => view.setFloat32(headerBytes + 4 * i, value, false),
    float64: (i: number, value: number) => view.setFloat64(headerBytes + 8 * i, value, false),
  };
  const write = writers[array.dataType];
  for (let i = 0; i < count; i++) write(i, array.data[i]);
  if (!options.gzip) return out;
  const compressed = gzipSync(out, { level: 9 });
  return new Uint8Array(compressed.buffer, compressed.byteOffset, compressed.byteLength);
}

/**
 * Writes an IDX file durably and atomically (a temporary file, fsync, rename, fsync of the
 * directory: readers, and a crash, see the old file or the whole new one).
 */
export async function writeIdxFile(
  path: string,
  array: IdxArray,
  options: { gzip?: boolean } = {},
): Promise<void> {
  await writeFileDurably(path, serializeIdx(array, options));
}

/** Options of `readIdxDataset`. */
export interface IdxDatasetOptions {
  /** Overrides the per-sample shape (same element count), e.g. [1, 28, 28] for channels-first. */
  featureShape?: readonly number[];
  /** Number of classes; defaults to the largest label + 1. */
  numClasses?: number;
  /** Multiplier for the features; defaults to 1/255 for uint8 images (pixels in [0, 1]), else 1. */
  scale?: number;
}

/**
 * A data set from an images file (dimensions [N, ...sample]) and a labels file ([N], integer
 * type). Throws `count_mismatch` when the counts differ, `invalid_labels` for non-integer label
 * files, and `size_mismatch` for a `featureShape` of the wrong size.
 */
export async function readIdxDataset(
  imagesPath: string,
  labelsPath: string,
  options: IdxDatasetOptions = {},
): Promise<InMemoryDataset> {
  const [images, labels] = await Promise.all([readIdxFile(imagesPath), readIdxFile(labelsPath)]);
  return idxDataset(images, labels, options, `${imagesPath} and ${labelsPath}`);
}

/** The data set of two parsed IDX arrays (see `readIdxDataset`). */
export function idxDataset(
  images: IdxArray,
  labels: IdxArray,
  options: IdxDatasetOptions = {},
  source = 'IDX data',
): InMemoryDataset {
  const [count, ...sampleShape] = images.dimensions;
  if (labels.dimensions.length !== 1 || labels.dimensions[0] !== count) {
    throw new DatasetError(
      'count_mismatch',
      `${source}: ${count} images but labels have dimensions ${JSON.stringify(labels.dimensions)}`,
      source,
    );
  }
  if (labels.dataType === 'float32' || labels.dataType === 'float64') {
    throw new DatasetError(
      'invalid_labels',
      `${source}: labels are ${labels.dataType}; class labels must be integers`,
      source,
    );
  }
  const sampleSize = sampleShape.reduce((product, dimension) => product * dimension, 1);
  const featureShape = options.featureShape ?? (sampleShape.length > 0 ? sampleShape : [1]);
  if (featureShape.reduce((product, dimension) => product * dimension, 1) !== sampleSize) {
    throw new DatasetError(
      'size_mismatch',
      `${source}: featureShape ${JSON.stringify(featureShape)} does not hold the ${sampleSize} values of a sample`,
      source,
    );
  }
  const scale = options.scale ?? (images.dataType === 'uint8' ? 1 / 255 : 1);
  const features = new Float32Array(images.data.length);
  if (images.dataType === 'uint8') {
    const table = Float32Array.from({ length: 256 }, (_, value) => value * scale);
    for (let i = 0; i < features.length; i++) features[i] = table[images.data[i]];
  } else {
    for (let i = 0; i < features.length; i++) features[i] = images.data[i] * scale;
  }
  return new InMemoryDataset({
    features,
    labels: Int32Array.from(labels.data),
    featureShape,
    numClasses: options.numClasses,
  });
}
