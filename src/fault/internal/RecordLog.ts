import { crc32 } from './crc32.js';

/**
 * Framing of the event log file.
 *
 *     file   := header record*
 *     header := magic "ZBMDEVLG" (8 bytes) | format version u32 LE | reserved u32 LE (0)
 *     record := body length u32 LE | checksum u32 LE | body
 *     checksum := CRC-32 (IEEE, as zlib; see crc32.ts) of the 4 length bytes, then the body
 *
 * The checksum covers the length, so a damaged length that still points inside the file is
 * caught as a checksum mismatch. A damaged length that points past the end looks like a record
 * cut short by a crash; it is told apart from one by what follows (see `scanRecords`).
 * A body is never empty, so a run of zero bytes (a file extended but never written, as after a
 * power loss on some file systems) never reads as a record. A body is JSON, which holds no byte
 * below 0x20, so a record frame (whose length has a zero high byte) never appears inside one.
 */
export const LOG_MAGIC = Buffer.from('ZBMDEVLG', 'latin1');
export const LOG_FORMAT_VERSION = 1;
export const LOG_HEADER_BYTES = 16;
export const RECORD_FRAME_BYTES = 8;

export function encodeHeader(): Buffer {
  const header = Buffer.alloc(LOG_HEADER_BYTES);
  LOG_MAGIC.copy(header, 0);
  header.writeUInt32LE(LOG_FORMAT_VERSION, 8);
  return header;
}

export function encodeRecord(body: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(RECORD_FRAME_BYTES + body.length);
  frame.writeUInt32LE(body.length, 0);
  frame.writeUInt32LE(crc32(body, crc32(frame.subarray(0, 4))), 4);
  body.copy(frame, RECORD_FRAME_BYTES);
  return frame;
}

/** Why the scan stopped before the end of the file. */
export type ScanStop =
  | { readonly kind: 'torn_tail'; readonly offset: number; readonly reason: string }
  | { readonly kind: 'corrupt'; readonly offset: number; readonly reason: string };

export interface ScanResult {
  /** Bodies of the good records, in order. */
  readonly bodies: Buffer[];
  /** Offset just past the last good record. */
  readonly goodEnd: number;
  readonly stop: ScanStop | undefined;
}

/**
 * Reads records from `file` (header included) up to the first bad one.
 *
 * Only the last, unacknowledged write can be torn, so a bad record is a torn tail (to be cut)
 * only when all of these hold:
 * - no valid record frame starts anywhere after it (acknowledged records never follow a torn
 *   write; a damaged record followed by intact ones is damage in the middle);
 * - its bytes are not a whole record with a damaged length (a record whose checksum verifies
 *   when its length is taken as "up to the end of the file" was written whole);
 * - a crash can explain it: it runs past the end of the file, or nothing but zero bytes follow.
 * Anything else is reported as `corrupt` and must not be cut silently.
 */
export function scanRecords(file: Buffer, maxRecordBytes: number): ScanResult {
  const bodies: Buffer[] = [];
  let offset = LOG_HEADER_BYTES;
  while (offset < file.length) {
    const record = readRecord(file, offset, maxRecordBytes);
    if (record.ok) {
      bodies.push(record.body);
      offset = record.end;
      continue;
    }
    return { bodies, goodEnd: offset, stop: classifyBadRecord(file, offset, maxRecordBytes, record) };
  }
  return { bodies, goodEnd: offset, stop: undefined };
}

type RecordRead =
  | { readonly ok: true; readonly body: Buffer; readonly end: number }
  | { readonly ok: false; readonly reason: string; readonly crashCanExplain: boolean };

function readRecord(file: Buffer, offset: number, maxRecordBytes: number): RecordRead {
  if (file.length - offset < RECORD_FRAME_BYTES)
    return { ok: false, reason: 'partial record frame', crashCanExplain: true };
  const length = file.readUInt32LE(offset);
  if (length === 0 || length > maxRecordBytes) {
    return {
      ok: false,
      reason: `record length ${length} outside [1, ${maxRecordBytes}]`,
      crashCanExplain: onlyZerosAfter(file, offset),
    };
  }
  const end = offset + RECORD_FRAME_BYTES + length;
  if (end > file.length)
    return {
      ok: false,
      reason: `record of ${length} bytes runs past the end of the file`,
      crashCanExplain: true,
    };
  if (!checksumMatches(file, offset, length)) {
    return { ok: false, reason: 'record checksum mismatch', crashCanExplain: onlyZerosAfter(file, end) };
  }
  return { ok: true, body: file.subarray(offset + RECORD_FRAME_BYTES, end), end };
}

function classifyBadRecord(
  file: Buffer,
  offset: number,
  maxRecordBytes: number,
  bad: { readonly reason: string; readonly crashCanExplain: boolean },
): ScanStop {
  const resumesAt = nextValidFrame(file, offset + 1, maxRecordBytes);
  if (resumesAt !== undefined) {
    return {
      kind: 'corrupt',
      offset,
      reason: `${bad.reason}; valid records follow at byte ${resumesAt}, so this is damage in the middle of the log, not a torn write`,
    };
  }
  const wholeLength = file.length - offset - RECORD_FRAME_BYTES;
  if (
    wholeLength >= 1 &&
    wholeLength <= maxRecordBytes &&
    wholeLength !== file.readUInt32LE(offset) &&
    checksumMatches(file, offset, wholeLength)
  ) {
    return {
      kind: 'corrupt',
      offset,
      reason: `${bad.reason}; the record is whole (its checksum verifies with length ${wholeLength}): its length field is damaged`,
    };
  }
  return { kind: bad.crashCanExplain ? 'torn_tail' : 'corrupt', offset, reason: bad.reason };
}

/** Checksum of the record at `offset`, computed as if its length field held `length`. */
function checksumMatches(file: Buffer, offset: number, length: number): boolean {
  const lengthBytes = Buffer.allocUnsafe(4);
  lengthBytes.writeUInt32LE(length, 0);
  const body = file.subarray(offset + RECORD_FRAME_BYTES, offset + RECORD_FRAME_BYTES + length);
  return crc32(body, crc32(lengthBytes)) === file.readUInt32LE(offset + 4);
}

/**
 * First offset at or after `from` where a whole record with a valid checksum starts. Only
 * offsets whose length field is in range and fits the file are checksummed, and JSON bodies
 * hold no such length, so this is about one checksum per real record after `from`.
 */
function nextValidFrame(file: Buffer, from: number, maxRecordBytes: number): number | undefined {
  for (let offset = from; offset + RECORD_FRAME_BYTES < file.length; offset++) {
    const length = file.readUInt32LE(offset);
    if (length === 0 || length > maxRecordBytes) continue;
    if (offset + RECORD_FRAME_BYTES + length > file.length) continue;
    if (checksumMatches(file, offset, length)) return offset;
  }
  return undefined;
}

function onlyZerosAfter(file: Buffer, offset: number): boolean {
  for (let index = offset; index < file.length; index++) if (file[index] !== 0) return false;
  return true;
}

export function checkHeader(file: Buffer): 'ok' | 'missing' | 'bad_magic' | 'unsupported_version' {
  if (file.length < LOG_HEADER_BYTES) return 'missing';
  if (!file.subarray(0, 8).equals(LOG_MAGIC)) return 'bad_magic';
  if (file.readUInt32LE(8) !== LOG_FORMAT_VERSION) return 'unsupported_version';
  return 'ok';
}
