import type { FileHandle } from 'node:fs/promises';
import { writeFully } from '../internal/durable.js';
import { guardOf, TaggedError } from '../internal/errors.js';
import type {
  AppendResult,
  EventInput,
  EventStore,
  EventStoreOptions,
  ExpectedVersion,
  RecordedEvent,
  Snapshot,
} from './EventStore.js';
import { EVENT_STORE_LIMITS, EventStoreUnavailable } from './EventStore.js';
import { openOrCreate, readFully } from './internal/files.js';
import type { LogEntry } from './internal/LogEntry.js';
import { readLog } from './internal/LogReader.js';
import { encodeHeader, encodeRecord, LOG_HEADER_BYTES } from './internal/RecordLog.js';
import {
  checkExpectedVersion,
  checkRecordSize,
  deepFreeze,
  normalizeEvents,
  StreamIndex,
  validateAppend,
  validateRead,
  validateSnapshotVersion,
  validateStreamId,
} from './internal/StreamIndex.js';
import { acquireWriterLock } from './internal/WriterLock.js';

export interface FileEventStoreOptions extends EventStoreOptions {
  /**
   * `'always'` (default): every append is written and fdatasync'ed on its own before it resolves.
   * `'batch'`: appends issued in the same event-loop turn are written together with one
   * fdatasync (group commit); each still resolves only once it is durable.
   */
  readonly sync?: 'always' | 'batch';
  /**
   * What to do with a bad record that a crash of this writer cannot explain (media corruption,
   * a damaged length, impossible contents): `'fail'` (default) refuses to open with
   * `CorruptEventLog`; `'truncate'` cuts the log there, losing the records after it, and
   * reports it in `recovery` (kind `'corrupt'`).
   */
  readonly corruptionPolicy?: 'fail' | 'truncate';
  /** Largest log accepted at open (the whole log is read into memory). Default 1 GiB. */
  readonly maxLogBytes?: number;
  /** Most records written by one group commit. Default 1024. */
  readonly maxBatchRecords?: number;
  /** Told when opening repaired the log (torn tail cut, header rewritten). */
  readonly onRecovery?: (recovery: LogRecovery) => void;
}

/** What opening the log had to repair. */
export interface LogRecovery {
  readonly path: string;
  readonly kind: 'torn_tail' | 'corrupt' | 'missing_header';
  /** Offset the log was cut at. */
  readonly offset: number;
  readonly truncatedBytes: number;
  readonly reason: string;
}

/** The log cannot be opened without losing data that a crash cannot explain. */
export class CorruptEventLog extends TaggedError('CorruptEventLog') {
  constructor(
    readonly path: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`event log ${path} is corrupt at byte ${offset}: ${reason}`);
  }
}

export const isCorruptEventLog = guardOf(CorruptEventLog);

export const FILE_EVENT_STORE_DEFAULTS = {
  maxLogBytes: 1024 * 1024 * 1024,
  maxBatchRecords: 1024,
} as const;

interface PendingWrite {
  readonly frame: Buffer;
  readonly entry: LogEntry;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * An event store on one local append-only file (format in `internal/RecordLog.ts`). Each append
 * or snapshot is one checksummed record, so it is all there after a crash or not at all.
 *
 * On open, the whole log is read and checked, frames and contents. A torn tail (the last,
 * unacknowledged write: a record cut short, or failing its checksum with only zero bytes after
 * it) is cut off and reported in `recovery`. Anything else fails the open with
 * `CorruptEventLog` naming the file and the byte offset (see `corruptionPolicy`): a bad record
 * followed by any valid record (a damaged length that runs past the end is told from a torn
 * write this way), a whole last record whose length field is damaged, and a record whose
 * checksum verifies but whose contents are impossible (a version that does not continue its
 * stream, a bad stream id or event, a snapshot of a version the stream does not have).
 * Acknowledged records are never cut unless `corruptionPolicy: 'truncate'` says so. Nothing
 * half-written is ever returned.
 *
 * Memory: every committed event stays in memory (streams are indexed there; reads never touch
 * the disk), and the whole log is read at open, bounded by `maxLogBytes` (default 1 GiB). It is
 * meant for the runtime's own histories (training runs, sagas, supervisor decisions), not as a
 * general-purpose database.
 *
 * One open store per log: `open` takes a writer lock (`<path>.lock` with the owner's pid and
 * host; a lock of a dead process of this host is taken over) and fails with `FileLocked` naming
 * the holder (`pid@host`) while another store, in this process, a live other one or one on
 * another host, has the log open. After a failed write the store
 * rejects all work with `EventStoreUnavailable('failed')`; close and reopen it.
 */
export class FileEventStore implements EventStore {
  /** What opening had to repair, if anything. */
  recovery: LogRecovery | undefined;
  private readonly index = new StreamIndex();
  private readonly reserved = new Map<string, number>();
  private readonly pending: PendingWrite[] = [];
  private readonly timestamp: () => number;
  private readonly maxRecordBytes: number;
  private readonly syncMode: 'always' | 'batch';
  private readonly maxBatchRecords: number;
  private flushRun: Promise<void> | undefined;
  private failure: unknown;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly releaseLock: () => Promise<void>,
    private size: number,
    options: FileEventStoreOptions,
  ) {
    this.timestamp = options.timestamp ?? Date.now;
    this.maxRecordBytes = options.maxRecordBytes ?? EVENT_STORE_LIMITS.maxRecordBytes;
    this.syncMode = options.sync ?? 'always';
    this.maxBatchRecords = options.maxBatchRecords ?? FILE_EVENT_STORE_DEFAULTS.maxBatchRecords;
  }

  /** Opens (or creates) the log at `path`, repairing a torn tail. */
  static async open(path: string, options: FileEventStoreOptions = {}): Promise<FileEventStore> {
    const release = await acquireWriterLock(path);
    let handle: FileHandle | undefined;
    try {
      handle = (await openOrCreate(path)).handle;
      const { file, recovery } = await prepareLog(path, handle, options);
      const store = new FileEventStore(path, handle, release, file.goodEnd, options);
      store.recovery = recovery;
      for (const entry of file.entries) store.apply(entry);
      if (recovery !== undefined) options.onRecovery?.(recovery);
      return store;
    } catch (error) {
      await handle?.close();
      await release();
      throw error;
    }
  }

  /** Size of the log in bytes (committed records only). */
  get bytes(): number {
    return this.size;
  }

  /** Global position of the last committed event. */
  get position(): number {
    return this.index.position;
  }

  append(
    streamId: string,
    events: readonly EventInput[],
    expectedVersion: ExpectedVersion,
  ): Promise<AppendResult> {
    try {
      this.checkUsable();
      validateAppend(streamId, events, expectedVersion);
      const current = this.reservedVersion(streamId);
      checkExpectedVersion(streamId, expectedVersion, current);
      const normalized = normalizeEvents(events);
      const entry: LogEntry = {
        k: 'e',
        s: streamId,
        v: current + 1,
        t: this.timestamp(),
        e: normalized.events,
      };
      const body = Buffer.from(JSON.stringify(entry));
      checkRecordSize('append', body.length, this.maxRecordBytes);
      this.reserved.set(streamId, current + events.length);
      return this.enqueue(body, entry).then(() => ({
        streamId,
        firstVersion: current + 1,
        lastVersion: current + events.length,
        lastPosition: this.positionOf(streamId, current + events.length),
      }));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async read(
    streamId: string,
    fromVersion = 1,
    maxCount: number = EVENT_STORE_LIMITS.maxReadCount,
  ): Promise<readonly RecordedEvent[]> {
    this.checkUsable();
    validateStreamId(streamId);
    validateRead(fromVersion, maxCount);
    return this.index.read(streamId, fromVersion, maxCount);
  }

  async streamVersion(streamId: string): Promise<number> {
    this.checkUsable();
    validateStreamId(streamId);
    return this.index.version(streamId);
  }

  saveSnapshot(streamId: string, version: number, state: unknown): Promise<void> {
    try {
      this.checkUsable();
      validateSnapshotVersion(streamId, version, this.reservedVersion(streamId));
      const entry: LogEntry = { k: 's', s: streamId, v: version, t: this.timestamp(), st: state ?? null };
      const body = Buffer.from(JSON.stringify(entry));
      checkRecordSize('snapshot', body.length, this.maxRecordBytes);
      return this.enqueue(body, JSON.parse(body.toString('utf8')) as LogEntry);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async loadSnapshot<State = unknown>(streamId: string): Promise<Snapshot<State> | undefined> {
    this.checkUsable();
    validateStreamId(streamId);
    return this.index.getSnapshot(streamId) as Snapshot<State> | undefined;
  }

  /** Waits for queued writes, then closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushRun !== undefined) await this.flushRun;
    await this.handle.close();
    await this.releaseLock();
  }

  private checkUsable(): void {
    if (this.closed) throw new EventStoreUnavailable('closed');
    if (this.failure !== undefined) throw new EventStoreUnavailable('failed', this.failure);
  }

  private reservedVersion(streamId: string): number {
    return this.reserved.get(streamId) ?? this.index.version(streamId);
  }

  private positionOf(streamId: string, version: number): number {
    return this.index.read(streamId, version, 1)[0]?.position ?? this.index.position;
  }

  private enqueue(body: Buffer, entry: LogEntry): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ frame: encodeRecord(body), entry, resolve, reject });
      if (this.flushRun !== undefined) return;
      this.flushRun = new Promise<void>((done) => {
        const start = () => void this.flush().finally(done);
        // 'batch' waits for the end of this turn so that every append issued in it joins the
        // same write; 'always' starts at once.
        if (this.syncMode === 'batch') setImmediate(start);
        else queueMicrotask(start);
      });
    });
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0 && this.failure === undefined) await this.writeBatch();
    } finally {
      this.flushRun = undefined;
    }
  }

  /** Writes and syncs the next batch, then commits it to the index and resolves its appends. */
  private async writeBatch(): Promise<void> {
    const batch = this.pending.splice(0, this.syncMode === 'always' ? 1 : this.maxBatchRecords);
    const frames = batch.length === 1 ? batch[0].frame : Buffer.concat(batch.map((write) => write.frame));
    try {
      await writeFully(this.handle, frames, this.size);
      await this.handle.datasync();
      this.size += frames.length;
      for (const write of batch) this.apply(write.entry);
    } catch (error) {
      // The file may now end in a partial record: stop here; reopening cuts it.
      this.fail(error, batch);
      return;
    }
    for (const write of batch) write.resolve();
  }

  private fail(error: unknown, batch: PendingWrite[]): void {
    this.failure = error;
    const unavailable = new EventStoreUnavailable('failed', error);
    for (const write of [...batch, ...this.pending.splice(0)]) write.reject(unavailable);
  }

  private apply(entry: LogEntry): void {
    deepFreeze(entry);
    if (entry.k === 'e') {
      this.index.commit(entry.s, entry.v, entry.e, entry.t);
      if (this.reserved.get(entry.s) === this.index.version(entry.s)) this.reserved.delete(entry.s);
    } else {
      this.index.setSnapshot({ streamId: entry.s, version: entry.v, state: entry.st, savedAtMs: entry.t });
    }
  }
}

interface PreparedLog {
  readonly entries: LogEntry[];
  readonly goodEnd: number;
}

/** Reads and checks the log (`readLog`); cuts a torn tail, or damage under 'truncate'. */
async function prepareLog(
  path: string,
  handle: FileHandle,
  options: FileEventStoreOptions,
): Promise<{ file: PreparedLog; recovery: LogRecovery | undefined }> {
  const { size } = await handle.stat();
  const maxLogBytes = options.maxLogBytes ?? FILE_EVENT_STORE_DEFAULTS.maxLogBytes;
  if (size > maxLogBytes)
    throw new CorruptEventLog(path, 0, `log of ${size} bytes exceeds maxLogBytes ${maxLogBytes}`);
  const contents = await readFully(handle, size);
  const reading = readLog(contents, {
    maxRecordBytes: options.maxRecordBytes ?? EVENT_STORE_LIMITS.maxRecordBytes,
    corruptionPolicy: options.corruptionPolicy ?? 'fail',
  });
  if (reading.kind === 'missing_header') return rewriteHeader(path, handle, size);
  if (reading.kind === 'corrupt') throw new CorruptEventLog(path, reading.offset, reading.reason);
  const { entries, goodEnd, stop } = reading;
  const file: PreparedLog = { entries, goodEnd };
  if (stop === undefined) return { file, recovery: undefined };
  await handle.truncate(goodEnd);
  await handle.datasync();
  const recovery: LogRecovery = {
    path,
    kind: stop.kind,
    offset: goodEnd,
    truncatedBytes: size - goodEnd,
    reason: stop.reason,
  };
  return { file, recovery };
}

/** Only a crash while creating the file leaves fewer bytes than a header. */
async function rewriteHeader(
  path: string,
  handle: FileHandle,
  size: number,
): Promise<{ file: PreparedLog; recovery: LogRecovery | undefined }> {
  await handle.truncate(0);
  await writeFully(handle, encodeHeader(), 0);
  await handle.datasync();
  const recovery: LogRecovery | undefined =
    size === 0
      ? undefined
      : {
          path,
          kind: 'missing_header',
          offset: 0,
          truncatedBytes: size,
          reason: 'file shorter than its header',
        };
  return { file: { entries: [], goodEnd: LOG_HEADER_BYTES }, recovery };
}
