/**
 * Safetensors reading and writing, byte-compatible with the reference implementation
 * (huggingface/safetensors, used by PyTorch's `safetensors.torch.save_file`).
 *
 * Layout of a file:
 *
 * ```text
 * [0, 8)         header length N, unsigned 64-bit little-endian
 * [8, 8 + N)     JSON header: { "__metadata__"?: {string: string}, name: {dtype, shape, data_offsets} }
 *                padded with spaces (0x20) so that N is a multiple of 8
 * [8 + N, end)   tensor data, little-endian, row-major; every byte belongs to exactly one tensor
 * ```
 *
 * What the writer does exactly as the reference does (checked by golden byte vectors produced
 * by safetensors 0.8.0 in `tests/ml/safetensors.test.ts`):
 * - tensors are ordered by dtype alignment, largest first, in the reference's `Dtype` order
 *   (U64, I64, F64, C64, F32, U32, I32, BF16, F16, U16, I16, F8_*, I8, U8, F6_*, F4, BOOL), and
 *   tensors of one dtype by name, comparing UTF-8 bytes (Rust's `String` order);
 * - the header is compact JSON (`"__metadata__"` first, then the tensors in data order, fields
 *   `dtype`, `shape`, `data_offsets`), with serde_json's string escaping (same as `JSON.stringify`);
 * - header padded with spaces to a multiple of 8, so that tensor data stays aligned.
 *
 * Where zbmd differs from the reference 0.8.0, on purpose:
 * - the reference keeps `__metadata__` in a hash map, so a map with several keys comes out in a
 *   different order on each run; zbmd writes metadata keys in UTF-8 byte order, so its output is
 *   deterministic (readers do not depend on that order);
 * - for no tensors and an empty metadata map the reference writes `{},"__metadata__":{}}`, which
 *   is not JSON and which it cannot read back; zbmd writes `{"__metadata__":{}}`.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict';
 * import { parseSafetensors, serializeSafetensors } from 'zbmd/ml';
 *
 * const bytes = serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: new Uint8Array(8) } });
 * const { tensors } = parseSafetensors(bytes); // tensors.w.data is a view into `bytes`
 * assert.deepEqual(tensors.w?.shape, [2]);
 * assert.equal(tensors.w?.data.buffer, bytes.buffer);
 * ```
 */
import { constants as bufferConstants } from 'node:buffer';
import { open } from 'node:fs/promises';
import { writeFileDurably } from '../internal/durable.js';
import { TaggedError } from '../internal/errors.js';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from './dtype.js';

// The f16 / bf16 conversions live in dtype.ts; they stay importable from here.
export { bfloat16BitsToFloat32, float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits };

/**
 * The largest header the reader accepts and the writer produces: 100,000,000 bytes, the
 * reference's `MAX_HEADER_SIZE`. A larger length prefix is refused before anything is decoded.
 */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

/** The header key that holds the string-to-string metadata map; no tensor may use this name. */
export const SAFETENSORS_METADATA_KEY = '__metadata__';

/**
 * Element bit sizes by dtype name, in the reference's `Dtype` declaration order (increasing
 * alignment). The order is the writer's sort order, so do not reorder these lines.
 */
const DTYPE_BITS = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const;

/** A dtype name as written in safetensors headers. */
export type SafetensorsDtype = keyof typeof DTYPE_BITS;

/** Every dtype the reader and writer know, in the reference's order. */
export const SAFETENSORS_DTYPES: readonly SafetensorsDtype[] = Object.keys(DTYPE_BITS) as SafetensorsDtype[];

const DTYPE_RANK: ReadonlyMap<string, number> = new Map(SAFETENSORS_DTYPES.map((name, rank) => [name, rank]));

/** One tensor as stored: dtype, shape and its raw little-endian bytes (row-major). */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

/** What `parseSafetensors` returns. `metadata` is undefined when the header has none. */
export interface SafetensorsFile {
  tensors: Record<string, SafetensorsEntry>;
  metadata: Record<string, string> | undefined;
}

/** Why a safetensors file or a tensor to write was refused. */
export type SafetensorsErrorCode =
  | 'header_too_small'
  | 'header_too_large'
  | 'invalid_header_length'
  | 'invalid_header_utf8'
  | 'invalid_header_json'
  | 'invalid_header'
  | 'invalid_metadata'
  | 'unknown_dtype'
  | 'unsupported_dtype'
  | 'invalid_shape'
  | 'invalid_name'
  | 'invalid_offsets'
  | 'incomplete_buffer'
  | 'size_mismatch'
  | 'validation_overflow'
  | 'file_too_large';

/** A safetensors file or input that cannot be read or written; `code` says which rule it broke. */
export class SafetensorsError extends TaggedError('SafetensorsError') {
  constructor(
    readonly code: SafetensorsErrorCode,
    message: string,
    /** The file (or other source) the bytes came from, when known; the message starts with it. */
    readonly source?: string,
  ) {
    super(source === undefined ? message : `${source}: ${message}`);
  }
}

/** True when `error` is a `SafetensorsError` (optionally with the given code). */
export function isSafetensorsError(error: unknown, code?: SafetensorsErrorCode): error is SafetensorsError {
  return error instanceof SafetensorsError && (code === undefined || error.code === code);
}

/** True when `name` is a dtype the safetensors format defines. */
export function isSafetensorsDtype(name: unknown): name is SafetensorsDtype {
  return typeof name === 'string' && DTYPE_RANK.has(name);
}

/** Bits per element of `dtype` (4 for F4, 6 for F6_*, else a multiple of 8). */
export function safetensorsDtypeBits(dtype: SafetensorsDtype): number {
  return DTYPE_BITS[dtype];
}

/**
 * Bytes that a tensor of `dtype` and `shape` occupies. Throws `invalid_shape` for a dimension
 * that is not a non-negative safe integer, `validation_overflow` when the element count passes
 * 2^53 - 1, and `size_mismatch` when a sub-byte dtype does not fill a whole number of bytes.
 */
export function safetensorsByteSize(
  dtype: SafetensorsDtype,
  shape: readonly number[],
  name = 'tensor',
): number {
  let elements = 1;
  for (const dimension of shape) {
    if (!Number.isSafeInteger(dimension) || dimension < 0) {
      throw new SafetensorsError(
        'invalid_shape',
        `${describe(name)}: shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer`,
      );
    }
    elements *= dimension;
    if (elements > Number.MAX_SAFE_INTEGER) {
      throw new SafetensorsError(
        'validation_overflow',
        `${describe(name)}: shape ${JSON.stringify(shape)} has more than 2^53 - 1 elements`,
      );
    }
  }
  const bits = elements * DTYPE_BITS[dtype];
  if (bits % 8 !== 0) {
    throw new SafetensorsError(
      'size_mismatch',
      `${describe(name)}: ${elements} elements of ${dtype} (${DTYPE_BITS[dtype]} bits) do not fill whole bytes`,
    );
  }
  return bits / 8;
}

// ---------------------------------------------------------------------------------------------
// Writing

interface PreparedFile {
  /** The 8-byte length prefix followed by the padded header. */
  readonly head: Uint8Array;
  /** Tensor data in file order. */
  readonly chunks: readonly Uint8Array[];
  readonly dataByteLength: number;
}

/**
 * Serializes tensors (and optional string metadata) to the bytes of a safetensors file, exactly
 * as the reference writes them. The whole file is built in memory, so it is limited to
 * `buffer.constants.MAX_LENGTH` bytes; `writeSafetensorsFile` streams instead.
 *
 * Throws `SafetensorsError`: `invalid_name` (`__metadata__`, or a name or metadata string with a
 * lone UTF-16 surrogate, which no UTF-8 file can hold), `unknown_dtype`, `invalid_shape`,
 * `size_mismatch` (data length differs from what dtype and shape need), `invalid_metadata`,
 * `header_too_large`, `file_too_large`.
 */
export function serializeSafetensors(
  tensors: Readonly<Record<string, SafetensorsEntry>>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const prepared = prepareFile(tensors, metadata);
  const total = prepared.head.byteLength + prepared.dataByteLength;
  if (total > bufferConstants.MAX_LENGTH) {
    throw new SafetensorsError(
      'file_too_large',
      `the file would take ${total} bytes, more than one buffer holds (${bufferConstants.MAX_LENGTH}); use writeSafetensorsFile, which streams`,
    );
  }
  const out = new Uint8Array(total);
  out.set(prepared.head, 0);
  let offset = prepared.head.byteLength;
  for (const chunk of prepared.chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

function prepareFile(
  tensors: Readonly<Record<string, SafetensorsEntry>>,
  metadata: Readonly<Record<string, string>> | undefined,
): PreparedFile {
  const encoder = new TextEncoder();
  const ordered = Object.entries(tensors).map(([name, entry]) => {
    checkEntryToWrite(name, entry);
    return { name, entry, nameBytes: encoder.encode(name) };
  });
  ordered.sort(
    (left, right) =>
      DTYPE_RANK.get(right.entry.dtype)! - DTYPE_RANK.get(left.entry.dtype)! ||
      compareBytes(left.nameBytes, right.nameBytes),
  );
  const parts: string[] = [];
  if (metadata !== undefined)
    parts.push(`${JSON.stringify(SAFETENSORS_METADATA_KEY)}:${metadataJson(metadata)}`);
  let offset = 0;
  for (const { name, entry } of ordered) {
    const end = offset + entry.data.byteLength;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${entry.dtype}","shape":[${entry.shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = encoder.encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded > SAFETENSORS_MAX_HEADER_BYTES) {
    throw new SafetensorsError(
      'header_too_large',
      `the header would take ${padded} bytes, over the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit readers enforce; store fewer tensors or less metadata per file`,
    );
  }
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { head, chunks: ordered.map(({ entry }) => entry.data), dataByteLength: offset };
}

function checkEntryToWrite(name: string, entry: SafetensorsEntry): void {
  if (name === SAFETENSORS_METADATA_KEY) {
    throw new SafetensorsError(
      'invalid_name',
      `"${SAFETENSORS_METADATA_KEY}" is reserved for metadata; rename the tensor`,
    );
  }
  checkWellFormed(name, 'invalid_name', `tensor name ${JSON.stringify(name)}`);
  if (!isSafetensorsDtype(entry?.dtype)) {
    throw new SafetensorsError(
      'unknown_dtype',
      `${describe(name)}: unknown dtype ${JSON.stringify(entry?.dtype)}; use one of ${SAFETENSORS_DTYPES.join(', ')}`,
    );
  }
  if (!Array.isArray(entry.shape)) {
    throw new SafetensorsError('invalid_shape', `${describe(name)}: shape must be an array of integers`);
  }
  if (!(entry.data instanceof Uint8Array)) {
    throw new SafetensorsError('size_mismatch', `${describe(name)}: data must be a Uint8Array of raw bytes`);
  }
  const expected = safetensorsByteSize(entry.dtype, entry.shape, name);
  if (entry.data.byteLength !== expected) {
    throw new SafetensorsError(
      'size_mismatch',
      `${describe(name)}: ${entry.dtype} ${JSON.stringify(entry.shape)} needs ${expected} bytes, data has ${entry.data.byteLength}`,
    );
  }
}

function metadataJson(metadata: Readonly<Record<string, string>>): string {
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new SafetensorsError('invalid_metadata', 'metadata must be an object mapping strings to strings');
  }
  const encoder = new TextEncoder();
  const entries = Object.entries(metadata).map(([key, value]) => {
    if (typeof value !== 'string') {
      throw new SafetensorsError(
        'invalid_metadata',
        `metadata ${JSON.stringify(key)} is a ${typeof value}; safetensors metadata values must be strings (JSON-encode structured values)`,
      );
    }
    checkWellFormed(key, 'invalid_metadata', `metadata key ${JSON.stringify(key)}`);
    checkWellFormed(value, 'invalid_metadata', `metadata value of ${JSON.stringify(key)}`);
    return { key, value, keyBytes: encoder.encode(key) };
  });
  // Object key order is not the insertion order for integer-like keys, so the JSON is built by
  // hand from a sorted list rather than with JSON.stringify(metadata).
  entries.sort((left, right) => compareBytes(left.keyBytes, right.keyBytes));
  return `{${entries.map(({ key, value }) => `${JSON.stringify(key)}:${JSON.stringify(value)}`).join(',')}}`;
}

const LONE_SURROGATE = /\p{Cs}/u;

function checkWellFormed(text: string, code: SafetensorsErrorCode, what: string): void {
  if (LONE_SURROGATE.test(text)) {
    throw new SafetensorsError(code, `${what} has a lone UTF-16 surrogate, which UTF-8 cannot encode`);
  }
}

function compareBytes(left: Uint8Array, right: Uint8Array): number {
  const length = Math.min(left.length, right.length);
  for (let i = 0; i < length; i++) {
    if (left[i] !== right[i]) return left[i] - right[i];
  }
  return left.length - right.length;
}

function describe(name: string): string {
  return `tensor ${JSON.stringify(name)}`;
}

// ---------------------------------------------------------------------------------------------
// Reading

interface HeaderEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

/**
 * Parses the bytes of a safetensors file. Each tensor's `data` is a view into `bytes` (no copy),
 * so it stays valid as long as `bytes` is not modified. Tensors come back in data order.
 *
 * Validation follows the reference, with a typed error for each rule: `header_too_small` (under
 * 8 bytes), `header_too_large` (length prefix over `SAFETENSORS_MAX_HEADER_BYTES`),
 * `invalid_header_length` (header runs past the end), `invalid_header_utf8`,
 * `invalid_header_json`, `invalid_header` (not an object, or a tensor entry without a string
 * `dtype`, an array `shape` or a two-integer `data_offsets`), `invalid_metadata` (not a map of
 * strings), `unknown_dtype`, `invalid_shape`, `invalid_offsets` (gap, overlap, end before begin,
 * or past the data region), `size_mismatch` (byte range differs from dtype and shape),
 * `incomplete_buffer` (bytes after the last tensor), `validation_overflow`. As in the reference,
 * unknown fields in a tensor entry are ignored and a duplicate JSON key keeps its last value.
 * With `source` (a file name), every error carries it in `source` and starts its message with it;
 * `readSafetensorsFile` passes the path.
 */
export function parseSafetensors(bytes: Uint8Array, source?: string): SafetensorsFile {
  if (source === undefined) return parseBytes(bytes);
  try {
    return parseBytes(bytes);
  } catch (error) {
    if (!isSafetensorsError(error) || error.source !== undefined) throw error;
    throw new SafetensorsError(error.code, error.message, source);
  }
}

function parseBytes(bytes: Uint8Array): SafetensorsFile {
  const { headerByteLength, header } = readHeader(bytes);
  const metadata = readMetadata(header[SAFETENSORS_METADATA_KEY]);
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name !== SAFETENSORS_METADATA_KEY) entries.push(readHeaderEntry(name, value));
  }
  const dataStart = 8 + headerByteLength;
  checkOffsets(entries, bytes.byteLength - dataStart);
  const tensors = Object.fromEntries(
    entries.map((entry) => [
      entry.name,
      {
        dtype: entry.dtype,
        shape: entry.shape,
        // A plain Uint8Array view even when `bytes` is a Node Buffer.
        data: new Uint8Array(
          bytes.buffer,
          bytes.byteOffset + dataStart + entry.begin,
          entry.end - entry.begin,
        ),
      },
    ]),
  );
  return { tensors, metadata };
}

function readHeader(bytes: Uint8Array): { headerByteLength: number; header: Record<string, unknown> } {
  if (bytes.byteLength < 8) {
    throw new SafetensorsError(
      'header_too_small',
      `a safetensors file starts with an 8-byte header length; this one has ${bytes.byteLength} bytes (truncated or not safetensors)`,
    );
  }
  const length = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    throw new SafetensorsError(
      'header_too_large',
      `header length ${length} is over the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit (corrupt or not safetensors)`,
    );
  }
  const headerByteLength = Number(length);
  if (8 + headerByteLength > bytes.byteLength) {
    throw new SafetensorsError(
      'invalid_header_length',
      `header length ${headerByteLength} runs past the end of the ${bytes.byteLength}-byte file (truncated?)`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(
      bytes.subarray(8, 8 + headerByteLength),
    );
  } catch {
    throw new SafetensorsError(
      'invalid_header_utf8',
      'the header is not valid UTF-8 (corrupt or not safetensors)',
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(
      'invalid_header_json',
      `the header is not valid JSON: ${(error as Error).message}`,
    );
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new SafetensorsError(
      'invalid_header',
      'the header must be a JSON object mapping tensor names to entries',
    );
  }
  return { headerByteLength, header: header as Record<string, unknown> };
}

function readMetadata(value: unknown): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(
      'invalid_metadata',
      `"${SAFETENSORS_METADATA_KEY}" must be an object of strings`,
    );
  }
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      throw new SafetensorsError(
        'invalid_metadata',
        `metadata ${JSON.stringify(key)} is ${JSON.stringify(item)}; safetensors metadata values must be strings`,
      );
    }
  }
  return { ...(value as Record<string, string>) };
}

function readHeaderEntry(name: string, value: unknown): HeaderEntry {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SafetensorsError(
      'invalid_header',
      `${describe(name)}: entry must be an object {dtype, shape, data_offsets}`,
    );
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') {
    throw new SafetensorsError('invalid_header', `${describe(name)}: "dtype" must be a string`);
  }
  if (!isSafetensorsDtype(dtype)) {
    throw new SafetensorsError(
      'unknown_dtype',
      `${describe(name)}: unknown dtype ${JSON.stringify(dtype)}; known: ${SAFETENSORS_DTYPES.join(', ')}`,
    );
  }
  if (!Array.isArray(shape)) {
    throw new SafetensorsError('invalid_header', `${describe(name)}: "shape" must be an array of integers`);
  }
  const isOffset = (item: unknown) => Number.isSafeInteger(item) && (item as number) >= 0;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isOffset)) {
    throw new SafetensorsError(
      'invalid_header',
      `${describe(name)}: "data_offsets" must be [begin, end], two non-negative integers; got ${JSON.stringify(offsets)}`,
    );
  }
  safetensorsByteSize(dtype, shape, name); // validates the shape itself
  return { name, dtype, shape: [...shape], begin: offsets[0], end: offsets[1] };
}

/**
 * The reference's rule: sorted by offsets, the tensors must tile the data region exactly, from
 * byte 0 to its last byte, each range matching its dtype and shape.
 */
function checkOffsets(entries: HeaderEntry[], dataByteLength: number): void {
  entries.sort((left, right) => left.begin - right.begin || left.end - right.end);
  let expectedBegin = 0;
  for (const entry of entries) {
    if (entry.end < entry.begin) {
      throw new SafetensorsError(
        'invalid_offsets',
        `${describe(entry.name)}: data_offsets end before they begin`,
      );
    }
    if (entry.begin !== expectedBegin) {
      const problem = entry.begin < expectedBegin ? 'overlaps the previous tensor' : 'leaves a gap before it';
      throw new SafetensorsError(
        'invalid_offsets',
        `${describe(entry.name)}: begins at ${entry.begin}, expected ${expectedBegin}; it ${problem}`,
      );
    }
    if (entry.end > dataByteLength) {
      throw new SafetensorsError(
        'invalid_offsets',
        `${describe(entry.name)}: ends at ${entry.end}, past the ${dataByteLength}-byte data region (truncated?)`,
      );
    }
    const expectedBytes = safetensorsByteSize(entry.dtype, entry.shape, entry.name);
    if (entry.end - entry.begin !== expectedBytes) {
      throw new SafetensorsError(
        'size_mismatch',
        `${describe(entry.name)}: ${entry.dtype} ${JSON.stringify(entry.shape)} needs ${expectedBytes} bytes, offsets give ${entry.end - entry.begin}`,
      );
    }
    expectedBegin = entry.end;
  }
  if (expectedBegin !== dataByteLength) {
    throw new SafetensorsError(
      'incomplete_buffer',
      `the tensors cover ${expectedBegin} of the ${dataByteLength} data bytes; the rest belongs to no tensor`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Files

/**
 * Reads and parses a safetensors file. The file is read whole into one buffer aligned at 8, so
 * typed-array views of its tensors are possible; it is limited to `buffer.constants.MAX_LENGTH`
 * bytes. File system errors (ENOENT, EACCES) are passed through as Node's errors.
 */
export async function readSafetensorsFile(path: string): Promise<SafetensorsFile> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size > bufferConstants.MAX_LENGTH) {
      throw new SafetensorsError(
        'file_too_large',
        `${path} has ${size} bytes, more than one buffer holds (${bufferConstants.MAX_LENGTH})`,
      );
    }
    const bytes = new Uint8Array(size);
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await handle.read(bytes, offset, Math.min(size - offset, 1 << 30), offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    return parseSafetensors(offset === size ? bytes : bytes.subarray(0, offset), path);
  } finally {
    await handle.close();
  }
}

/**
 * Writes a safetensors file atomically: the bytes go to a temporary file beside `path`, which is
 * flushed (fsync), renamed over `path`, and the directory is flushed, so a crash leaves either
 * the old file or the new one, never a torn one. Tensor data is streamed, not concatenated.
 * Throws the same `SafetensorsError`s as `serializeSafetensors`, before touching the disk.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: Readonly<Record<string, SafetensorsEntry>>,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const prepared = prepareFile(tensors, metadata);
  await writeFileDurably(path, [prepared.head, ...prepared.chunks]);
}

// ---------------------------------------------------------------------------------------------
// Entries <-> Float32Array

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The dtypes `safetensorsEntryToFloat32` converts; all others (F8, F6, F4, C64) are refused. */
export type SafetensorsFloat32Convertible =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'U64'
  | 'I32'
  | 'U32'
  | 'I16'
  | 'U16'
  | 'I8'
  | 'U8'
  | 'BOOL';

/**
 * The values of an entry as float32. An F32 entry whose bytes sit at a 4-byte aligned offset
 * (always the case for files written by the reference or by zbmd and read with
 * `readSafetensorsFile`) comes back as a view of the same memory, without a copy; anything else
 * is converted into a new array (64-bit integers through Number, so above 2^24 they round).
 * Throws `unsupported_dtype` for F8_*, F6_*, F4 and C64.
 */
export function safetensorsEntryToFloat32(entry: SafetensorsEntry): Float32Array {
  const { data } = entry;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const count = data.byteLength / Math.max(1, DTYPE_BITS[entry.dtype] / 8);
  switch (entry.dtype) {
    case 'F32':
      if (HOST_IS_LITTLE_ENDIAN && data.byteOffset % 4 === 0)
        return new Float32Array(data.buffer, data.byteOffset, count);
      return Float32Array.from({ length: count }, (_, i) => view.getFloat32(i * 4, true));
    case 'F16':
    case 'BF16': {
      const bits = Uint16Array.from({ length: count }, (_, i) => view.getUint16(i * 2, true));
      return entry.dtype === 'F16' ? float16BitsToFloat32(bits) : bfloat16BitsToFloat32(bits);
    }
    case 'F64':
      return Float32Array.from({ length: count }, (_, i) => view.getFloat64(i * 8, true));
    case 'I64':
      return Float32Array.from({ length: count }, (_, i) => Number(view.getBigInt64(i * 8, true)));
    case 'U64':
      return Float32Array.from({ length: count }, (_, i) => Number(view.getBigUint64(i * 8, true)));
    case 'I32':
      return Float32Array.from({ length: count }, (_, i) => view.getInt32(i * 4, true));
    case 'U32':
      return Float32Array.from({ length: count }, (_, i) => view.getUint32(i * 4, true));
    case 'I16':
      return Float32Array.from({ length: count }, (_, i) => view.getInt16(i * 2, true));
    case 'U16':
      return Float32Array.from({ length: count }, (_, i) => view.getUint16(i * 2, true));
    case 'I8':
      return Float32Array.from(new Int8Array(data.buffer, data.byteOffset, data.byteLength));
    case 'U8':
    case 'BOOL':
      return Float32Array.from(data);
    default:
      throw new SafetensorsError(
        'unsupported_dtype',
        `${entry.dtype} cannot be converted to float32 here; convert it with a library that knows the format`,
      );
  }
}

/**
 * An entry holding `values` as F32 (the bytes are a view of `values`, no copy: do not modify
 * `values` until the entry is written), F16 or BF16 (converted, rounding to nearest even).
 * Throws `size_mismatch` when `values.length` is not the element count of `shape`.
 */
export function float32ToSafetensorsEntry(
  values: Float32Array,
  shape: readonly number[],
  dtype: 'F32' | 'F16' | 'BF16' = 'F32',
): SafetensorsEntry {
  const expected = safetensorsByteSize('F32', shape) / 4;
  if (values.length !== expected) {
    throw new SafetensorsError(
      'size_mismatch',
      `shape ${JSON.stringify(shape)} has ${expected} elements, values ${values.length}`,
    );
  }
  let data: Uint8Array;
  if (dtype === 'F32') {
    data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    if (!HOST_IS_LITTLE_ENDIAN) data = littleEndianCopy(values);
  } else {
    const bits = dtype === 'F16' ? float32ToFloat16Bits(values) : float32ToBfloat16Bits(values);
    data = new Uint8Array(bits.byteLength);
    const view = new DataView(data.buffer);
    for (let i = 0; i < bits.length; i++) view.setUint16(i * 2, bits[i], true);
  }
  return { dtype, shape: [...shape], data };
}

function littleEndianCopy(values: Float32Array): Uint8Array {
  const data = new Uint8Array(values.byteLength);
  const view = new DataView(data.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return data;
}
