import { createHash } from 'node:crypto';

/**
 * One checkpoint file:
 *
 *     offset  size  field
 *     0       8     magic "ZBMDCKPT"
 *     8       4     format version, u32 LE (1)
 *     12      4     metadata length in bytes, u32 LE
 *     16      8     payload length in bytes, u64 LE
 *     24      32    SHA-256 of bytes 0..24, then the metadata, then the payload
 *     56      m     metadata: UTF-8 JSON object
 *     56 + m  p     payload
 *
 * The checksum covers the lengths too, so a flipped length bit is caught like a flipped
 * payload bit. The file must be exactly 56 + m + p bytes long.
 */
export const CHECKPOINT_MAGIC = Buffer.from('ZBMDCKPT', 'latin1');
export const CHECKPOINT_FORMAT_VERSION = 1;
export const CHECKPOINT_HEADER_BYTES = 56;
const CHECKSUMMED_HEADER_BYTES = 24;

export type CheckpointDefect =
  | 'too_short'
  | 'bad_magic'
  | 'unsupported_version'
  | 'length_mismatch'
  | 'checksum_mismatch'
  | 'bad_metadata';

/** Header, metadata and payload as separate buffers (written with one writev). */
export function encodeCheckpoint(metadataJson: string, payload: Uint8Array): Buffer[] {
  const metadata = Buffer.from(metadataJson, 'utf8');
  const header = Buffer.alloc(CHECKPOINT_HEADER_BYTES);
  CHECKPOINT_MAGIC.copy(header, 0);
  header.writeUInt32LE(CHECKPOINT_FORMAT_VERSION, 8);
  header.writeUInt32LE(metadata.length, 12);
  header.writeBigUInt64LE(BigInt(payload.byteLength), 16);
  const hash = createHash('sha256');
  hash.update(header.subarray(0, CHECKSUMMED_HEADER_BYTES));
  hash.update(metadata);
  hash.update(payload);
  hash.digest().copy(header, CHECKSUMMED_HEADER_BYTES);
  return [header, metadata, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)];
}

export type DecodedCheckpoint =
  | { readonly ok: true; readonly metadata: Record<string, unknown>; readonly payload: Buffer }
  | { readonly ok: false; readonly defect: CheckpointDefect; readonly detail: string };

/** Checks everything before returning anything: a checkpoint is either whole or rejected. */
export function decodeCheckpoint(file: Buffer): DecodedCheckpoint {
  if (file.length < CHECKPOINT_HEADER_BYTES) {
    return {
      ok: false,
      defect: 'too_short',
      detail: `${file.length} bytes, less than the ${CHECKPOINT_HEADER_BYTES}-byte header`,
    };
  }
  if (!file.subarray(0, 8).equals(CHECKPOINT_MAGIC))
    return { ok: false, defect: 'bad_magic', detail: 'not a zbmd checkpoint' };
  const version = file.readUInt32LE(8);
  if (version !== CHECKPOINT_FORMAT_VERSION) {
    return {
      ok: false,
      defect: 'unsupported_version',
      detail: `format version ${version}, expected ${CHECKPOINT_FORMAT_VERSION}`,
    };
  }
  const metadataLength = file.readUInt32LE(12);
  const payloadLength = file.readBigUInt64LE(16);
  const expected = BigInt(CHECKPOINT_HEADER_BYTES + metadataLength) + payloadLength;
  if (expected !== BigInt(file.length)) {
    return {
      ok: false,
      defect: 'length_mismatch',
      detail: `header says ${expected} bytes, file has ${file.length}`,
    };
  }
  const metadataEnd = CHECKPOINT_HEADER_BYTES + metadataLength;
  const hash = createHash('sha256');
  hash.update(file.subarray(0, CHECKSUMMED_HEADER_BYTES));
  hash.update(file.subarray(CHECKPOINT_HEADER_BYTES));
  if (!hash.digest().equals(file.subarray(CHECKSUMMED_HEADER_BYTES, CHECKPOINT_HEADER_BYTES))) {
    return {
      ok: false,
      defect: 'checksum_mismatch',
      detail: 'SHA-256 of the contents does not match the header',
    };
  }
  let metadata: unknown;
  try {
    metadata = JSON.parse(file.subarray(CHECKPOINT_HEADER_BYTES, metadataEnd).toString('utf8'));
  } catch (error) {
    return { ok: false, defect: 'bad_metadata', detail: (error as Error).message };
  }
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    return { ok: false, defect: 'bad_metadata', detail: 'metadata is not a JSON object' };
  }
  return { ok: true, metadata: metadata as Record<string, unknown>, payload: file.subarray(metadataEnd) };
}
