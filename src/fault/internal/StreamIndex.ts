import type { EventInput, ExpectedVersion, RecordedEvent, Snapshot } from '../EventStore.js';
import { ConcurrencyConflict, EVENT_STORE_LIMITS, InvalidEventStoreArgument } from '../EventStore.js';

/** The committed contents of an event store, in memory: streams, snapshots, global position. */
export class StreamIndex {
  private readonly streams = new Map<string, RecordedEvent[]>();
  private readonly snapshots = new Map<string, Snapshot>();
  private lastPosition = 0;

  get position(): number {
    return this.lastPosition;
  }

  version(streamId: string): number {
    return this.streams.get(streamId)?.length ?? 0;
  }

  /** Adds events that start at `firstVersion`; asserts that they follow the stream contiguously. */
  commit(
    streamId: string,
    firstVersion: number,
    events: readonly EventInput[],
    recordedAtMs: number,
  ): RecordedEvent[] {
    let stream = this.streams.get(streamId);
    if (stream === undefined) {
      stream = [];
      this.streams.set(streamId, stream);
    }
    if (firstVersion !== stream.length + 1) {
      throw new Error(
        `event store invariant: stream '${streamId}' at ${stream.length} given version ${firstVersion}`,
      );
    }
    const recorded = events.map((event, index) =>
      Object.freeze({
        streamId,
        version: firstVersion + index,
        position: this.lastPosition + index + 1,
        type: event.type,
        data: event.data ?? null,
        metadata: Object.freeze({ ...(event.metadata ?? {}) }),
        recordedAtMs,
      }),
    );
    this.lastPosition += recorded.length;
    stream.push(...recorded);
    return recorded;
  }

  read(streamId: string, fromVersion: number, maxCount: number): readonly RecordedEvent[] {
    const stream = this.streams.get(streamId);
    if (stream === undefined) return [];
    const start = Math.max(0, fromVersion - 1);
    return stream.slice(start, start + maxCount);
  }

  setSnapshot(snapshot: Snapshot): void {
    this.snapshots.set(snapshot.streamId, Object.freeze(snapshot));
  }

  getSnapshot(streamId: string): Snapshot | undefined {
    return this.snapshots.get(streamId);
  }
}

/** Throws `ConcurrencyConflict` unless the stream is where the caller expects it. */
export function checkExpectedVersion(streamId: string, expected: ExpectedVersion, actual: number): void {
  if (expected === 'any') return;
  const wanted = expected === 'no-stream' ? 0 : expected;
  if (wanted !== actual) throw new ConcurrencyConflict(streamId, expected, actual);
}

export function validateStreamId(streamId: string): void {
  if (
    typeof streamId !== 'string' ||
    streamId.length === 0 ||
    streamId.length > EVENT_STORE_LIMITS.maxStreamIdLength
  ) {
    throw new InvalidEventStoreArgument(
      'stream id',
      `a non-empty string of at most ${EVENT_STORE_LIMITS.maxStreamIdLength} characters, got ${JSON.stringify(streamId)}`,
    );
  }
}

export function validateAppend(
  streamId: string,
  events: readonly EventInput[],
  expected: ExpectedVersion,
): void {
  validateStreamId(streamId);
  if (
    !Array.isArray(events) ||
    events.length === 0 ||
    events.length > EVENT_STORE_LIMITS.maxEventsPerAppend
  ) {
    throw new InvalidEventStoreArgument(
      'events',
      `between 1 and ${EVENT_STORE_LIMITS.maxEventsPerAppend} events per append`,
    );
  }
  for (const event of events) {
    const type = event?.type;
    if (
      typeof type !== 'string' ||
      type.length === 0 ||
      type.length > EVENT_STORE_LIMITS.maxEventTypeLength
    ) {
      throw new InvalidEventStoreArgument(
        'event type',
        `a non-empty string of at most ${EVENT_STORE_LIMITS.maxEventTypeLength} characters`,
      );
    }
  }
  if (expected !== 'any' && expected !== 'no-stream' && (!Number.isSafeInteger(expected) || expected < 0)) {
    throw new InvalidEventStoreArgument(
      'expected version',
      `an integer >= 0, 'any' or 'no-stream', got ${String(expected)}`,
    );
  }
}

export function validateRead(fromVersion: number, maxCount: number): void {
  if (!Number.isSafeInteger(fromVersion) || fromVersion < 1) {
    throw new InvalidEventStoreArgument('fromVersion', `an integer >= 1, got ${fromVersion}`);
  }
  if (!Number.isSafeInteger(maxCount) || maxCount < 0 || maxCount > EVENT_STORE_LIMITS.maxReadCount) {
    throw new InvalidEventStoreArgument(
      'maxCount',
      `an integer in [0, ${EVENT_STORE_LIMITS.maxReadCount}], got ${maxCount}`,
    );
  }
}

export function validateSnapshotVersion(streamId: string, version: number, streamVersion: number): void {
  validateStreamId(streamId);
  if (!Number.isSafeInteger(version) || version < 0 || version > streamVersion) {
    throw new InvalidEventStoreArgument(
      'snapshot version',
      `an integer in [0, ${streamVersion}] (the stream's version), got ${version}`,
    );
  }
}

/**
 * Events as they will be stored: a JSON round trip, so that the in-memory and the file store
 * return the same values (no `undefined`, no class instances) and size limits can be checked.
 */
export function normalizeEvents(events: readonly EventInput[]): { events: EventInput[]; json: string } {
  const plain = events.map((event) => ({
    type: event.type,
    data: event.data ?? null,
    metadata: event.metadata ?? {},
  }));
  const json = JSON.stringify(plain);
  return { events: deepFreeze(JSON.parse(json)) as EventInput[], json };
}

/**
 * Freezes a JSON value in place: stored events are shared by every reader, so none of them may
 * change what the others see.
 */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

export function checkRecordSize(what: string, bytes: number, maxRecordBytes: number): void {
  if (bytes > maxRecordBytes) {
    throw new InvalidEventStoreArgument(
      what,
      `encoded size ${bytes} bytes exceeds the limit of ${maxRecordBytes} bytes`,
    );
  }
}
