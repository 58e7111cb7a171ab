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
 * caught as a checksum mismatch (and, followed by more data, refused as corruption). A damaged
 * length that points past the end cannot be told from a record cut short by a crash; it is
 * cut as a torn tail.
 * A body is never empty, so a run of zero bytes (a file extended but never written, as after a
 * power loss on some file systems) never reads as a record.
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
 * A bad record is a torn tail, to be cut, when it is the last thing in the file: its frame or
 * body runs past the end, or its checksum fails and nothing but zero bytes follows it. A bad
 * record followed by other data is corruption in the middle of the log, which no crash of an
 * append-only writer produces; it is reported as `corrupt` and must not be cut silently.
 */
export function scanRecords(file: Buffer, maxRecordBytes: number): ScanResult {
  const bodies: Buffer[] = [];
  let offset = LOG_HEADER_BYTES;
  while (offset < file.length) {
    const remaining = file.length - offset;
    if (remaining < RECORD_FRAME_BYTES) {
      return stopAt(bodies, offset, 'partial record frame', true);
    }
    const length = file.readUInt32LE(offset);
    const checksum = file.readUInt32LE(offset + 4);
    if (length === 0 || length > maxRecordBytes) {
      return stopAt(
        bodies,
        offset,
        `record length ${length} outside [1, ${maxRecordBytes}]`,
        onlyZerosAfter(file, offset),
      );
    }
    const end = offset + RECORD_FRAME_BYTES + length;
    if (end > file.length) return stopAt(bodies, offset, `record of ${length} bytes cut short`, true);
    // A record that fails its checksum is the torn tail when nothing but zeros follows it.
    const body = file.subarray(offset + RECORD_FRAME_BYTES, end);
    if (crc32(body, crc32(file.subarray(offset, offset + 4))) !== checksum) {
      return stopAt(bodies, offset, 'record checksum mismatch', onlyZerosAfter(file, end));
    }
    bodies.push(body);
    offset = end;
  }
  return { bodies, goodEnd: offset, stop: undefined };
}

function stopAt(bodies: Buffer[], offset: number, reason: string, tail: boolean): ScanResult {
  return { bodies, goodEnd: offset, stop: { kind: tail ? 'torn_tail' : 'corrupt', offset, reason } };
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
