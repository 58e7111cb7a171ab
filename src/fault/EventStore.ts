import { guardOf, TaggedError } from '../internal/errors.js';
/**
 * Event sourcing (seeds/001 ch. 7): streams of events with optimistic concurrency, snapshots,
 * and replay from the latest snapshot plus the events after it.
 *
 * Versions: a stream's version is the number of events in it (0 for a stream that does not
 * exist yet); its first event has version 1. `append` takes the version the caller expects the
 * stream to be at and fails with `ConcurrencyConflict` when another writer got there first.
 */

/** An event as the caller gives it. `data` and `metadata` must be JSON-serializable. */
export interface EventInput {
  readonly type: string;
  readonly data?: unknown;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/** An event as stored. */
export interface RecordedEvent {
  readonly streamId: string;
  /** Position within the stream, from 1. */
  readonly version: number;
  /** Position within the whole store, from 1. */
  readonly position: number;
  readonly type: string;
  readonly data: unknown;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Wall-clock time of the append (ms since the Unix epoch), for record keeping only. */
  readonly recordedAtMs: number;
}

/** `number`: the stream must be at exactly this version; `'any'`: no check; `'no-stream'`: version 0. */
export type ExpectedVersion = number | 'any' | 'no-stream';

export interface AppendResult {
  readonly streamId: string;
  readonly firstVersion: number;
  /** The stream's version after the append. */
  readonly lastVersion: number;
  readonly lastPosition: number;
}

export interface Snapshot<State = unknown> {
  readonly streamId: string;
  /** The stream version the state includes (events 1..version are folded into it). */
  readonly version: number;
  readonly state: State;
  readonly savedAtMs: number;
}

export interface EventStore {
  append(
    streamId: string,
    events: readonly EventInput[],
    expectedVersion: ExpectedVersion,
  ): Promise<AppendResult>;
  /** Events of `streamId` with version >= fromVersion (default 1), at most `maxCount`. */
  read(streamId: string, fromVersion?: number, maxCount?: number): Promise<readonly RecordedEvent[]>;
  /** Current version of a stream (0 when it has no events). */
  streamVersion(streamId: string): Promise<number>;
  saveSnapshot(streamId: string, version: number, state: unknown): Promise<void>;
  loadSnapshot<State = unknown>(streamId: string): Promise<Snapshot<State> | undefined>;
  close(): Promise<void>;
}

/** Limits shared by every event store. */
export const EVENT_STORE_LIMITS = {
  /** Longest stream id, in UTF-16 code units. */
  maxStreamIdLength: 256,
  /** Longest event type name. */
  maxEventTypeLength: 256,
  /** Most events in one `append` (one append is one atomic record). */
  maxEventsPerAppend: 10_000,
  /** Largest encoded append or snapshot (one record), in bytes. */
  maxRecordBytes: 16 * 1024 * 1024,
  /** Most events returned by one `read`. */
  maxReadCount: 1_000_000,
} as const;

/** Another writer appended first: the stream is at `actualVersion`, not `expectedVersion`. */
export class ConcurrencyConflict extends TaggedError('ConcurrencyConflict') {
  constructor(
    readonly streamId: string,
    readonly expectedVersion: ExpectedVersion,
    readonly actualVersion: number,
  ) {
    super(`stream '${streamId}' is at version ${actualVersion}, the append expected ${expectedVersion}`);
  }
}

export const isConcurrencyConflict = guardOf(ConcurrencyConflict);

/** An argument outside the documented limits (bad stream id, too many events, record too big). */
export class InvalidEventStoreArgument extends TaggedError('InvalidEventStoreArgument') {
  constructor(
    readonly argument: string,
    readonly detail: string,
  ) {
    super(`event store: invalid ${argument}: ${detail}`);
  }
}

export const isInvalidEventStoreArgument = guardOf(InvalidEventStoreArgument);

/** The store was closed, or a write failed and the store stopped accepting work (reopen it). */
export class EventStoreUnavailable extends TaggedError('EventStoreUnavailable') {
  constructor(
    readonly reason: 'closed' | 'failed',
    override readonly cause?: unknown,
  ) {
    super(
      reason === 'closed'
        ? 'event store is closed'
        : `event store stopped after a failed write (reopen it to recover): ${String((cause as Error)?.message ?? cause)}`,
    );
  }
}

export const isEventStoreUnavailable = guardOf(EventStoreUnavailable);

export interface EventStoreOptions {
  /** Wall-clock source for `recordedAtMs` / `savedAtMs` (record keeping only). Default `Date.now`. */
  readonly timestamp?: () => number;
  /** Override of `EVENT_STORE_LIMITS.maxRecordBytes`. */
  readonly maxRecordBytes?: number;
}

/** Folds a stream into a state: the latest snapshot (if any), then every later event. */
export async function replay<State>(
  store: EventStore,
  streamId: string,
  reducer: { readonly initial: () => State; readonly apply: (state: State, event: RecordedEvent) => State },
): Promise<{ state: State; version: number; snapshotVersion: number | undefined; eventsApplied: number }> {
  const snapshot = await store.loadSnapshot<State>(streamId);
  let state = snapshot === undefined ? reducer.initial() : snapshot.state;
  const events = await store.read(streamId, (snapshot?.version ?? 0) + 1);
  for (const event of events) state = reducer.apply(state, event);
  const version = events.length > 0 ? events[events.length - 1].version : (snapshot?.version ?? 0);
  return { state, version, snapshotVersion: snapshot?.version, eventsApplied: events.length };
}
