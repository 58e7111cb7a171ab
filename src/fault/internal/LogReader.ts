import type { LogEntry } from './LogEntry.js';
import { decodeEntries } from './LogEntry.js';
import { checkHeader, RECORD_FRAME_BYTES, scanRecords } from './RecordLog.js';

/** Where reading the log stopped before its end, and why. */
export interface LogStop {
  readonly kind: 'torn_tail' | 'corrupt';
  readonly offset: number;
  readonly reason: string;
}

/** What the bytes of a log hold, decided without touching the file. */
export type LogReading =
  /** Fewer bytes than a header: only a crash while creating the file leaves that. */
  | { readonly kind: 'missing_header' }
  /** The entries to load, up to `goodEnd`; `stop` says what to cut after it, if anything. */
  | {
      readonly kind: 'entries';
      readonly entries: LogEntry[];
      readonly goodEnd: number;
      readonly stop: LogStop | undefined;
    }
  /** The log cannot be opened without losing data a crash cannot explain. */
  | { readonly kind: 'corrupt'; readonly offset: number; readonly reason: string };

/**
 * Reads a whole log: the header, the frames and checksums (`scanRecords`), then what each record
 * says (`decodeEntries`), and applies the corruption policy. Pure, so that the decision is
 * tested (and fuzzed) apart from the file it came from.
 */
export function readLog(
  contents: Buffer,
  options: { readonly maxRecordBytes: number; readonly corruptionPolicy: 'fail' | 'truncate' },
): LogReading {
  const header = checkHeader(contents);
  if (header === 'missing') return { kind: 'missing_header' };
  if (header !== 'ok') {
    const reason = header === 'bad_magic' ? 'not a zbmd event log' : 'unsupported format version';
    return { kind: 'corrupt', offset: 0, reason };
  }
  const scan = scanRecords(contents, options.maxRecordBytes);
  const offsetOf = (index: number) =>
    scan.bodies[index].byteOffset - contents.byteOffset - RECORD_FRAME_BYTES;
  const decoded = decodeEntries(scan.bodies);
  // A record that says something impossible passed its checksum: it was written so, or damaged
  // in a way the checksum missed; either way it is corruption, never a torn write.
  const stop: LogStop | undefined =
    decoded.bad === undefined
      ? scan.stop
      : { kind: 'corrupt', offset: offsetOf(decoded.bad.index), reason: decoded.bad.reason };
  const goodEnd = decoded.bad === undefined ? scan.goodEnd : offsetOf(decoded.bad.index);
  if (stop?.kind === 'corrupt' && options.corruptionPolicy === 'fail')
    return { kind: 'corrupt', offset: stop.offset, reason: stop.reason };
  return { kind: 'entries', entries: decoded.entries, goodEnd, stop };
}
