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

/**
 * An event store held in memory: the same rules, limits and errors as `FileEventStore`, nothing
 * survives the process. For tests, simulations and caches.
 */
export class InMemoryEventStore implements EventStore {
  private readonly index = new StreamIndex();
  private readonly timestamp: () => number;
  private readonly maxRecordBytes: number;
  private closed = false;

  constructor(options: EventStoreOptions = {}) {
    this.timestamp = options.timestamp ?? Date.now;
    this.maxRecordBytes = options.maxRecordBytes ?? EVENT_STORE_LIMITS.maxRecordBytes;
  }

  async append(
    streamId: string,
    events: readonly EventInput[],
    expectedVersion: ExpectedVersion,
  ): Promise<AppendResult> {
    this.checkOpen();
    validateAppend(streamId, events, expectedVersion);
    const current = this.index.version(streamId);
    checkExpectedVersion(streamId, expectedVersion, current);
    const normalized = normalizeEvents(events);
    checkRecordSize('append', Buffer.byteLength(normalized.json), this.maxRecordBytes);
    const recorded = this.index.commit(streamId, current + 1, normalized.events, this.timestamp());
    const last = recorded[recorded.length - 1];
    return { streamId, firstVersion: current + 1, lastVersion: last.version, lastPosition: last.position };
  }

  async read(
    streamId: string,
    fromVersion = 1,
    maxCount: number = EVENT_STORE_LIMITS.maxReadCount,
  ): Promise<readonly RecordedEvent[]> {
    this.checkOpen();
    validateStreamId(streamId);
    validateRead(fromVersion, maxCount);
    return this.index.read(streamId, fromVersion, maxCount);
  }

  async streamVersion(streamId: string): Promise<number> {
    this.checkOpen();
    validateStreamId(streamId);
    return this.index.version(streamId);
  }

  async saveSnapshot(streamId: string, version: number, state: unknown): Promise<void> {
    this.checkOpen();
    validateSnapshotVersion(streamId, version, this.index.version(streamId));
    const json = JSON.stringify(state ?? null);
    checkRecordSize('snapshot', Buffer.byteLength(json), this.maxRecordBytes);
    this.index.setSnapshot({
      streamId,
      version,
      state: deepFreeze(JSON.parse(json)),
      savedAtMs: this.timestamp(),
    });
  }

  async loadSnapshot<State = unknown>(streamId: string): Promise<Snapshot<State> | undefined> {
    this.checkOpen();
    validateStreamId(streamId);
    return this.index.getSnapshot(streamId) as Snapshot<State> | undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new EventStoreUnavailable('closed');
  }
}
