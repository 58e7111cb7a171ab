import type { EventInput } from '../EventStore.js';
import { EVENT_STORE_LIMITS } from '../EventStore.js';

/** One record body of the event log, as JSON: an append (`k: 'e'`) or a snapshot (`k: 's'`). */
export type LogEntry =
  | { readonly k: 'e'; readonly s: string; readonly v: number; readonly t: number; readonly e: EventInput[] }
  | { readonly k: 's'; readonly s: string; readonly v: number; readonly t: number; readonly st: unknown };

/** The first record that says something impossible. */
export interface BadEntry {
  /** Index of the record in the log (0 for the first record after the header). */
  readonly index: number;
  readonly reason: string;
}

/**
 * Parses and checks record bodies in log order: a record with a valid checksum is still only
 * accepted when what it says is possible, field by field, as `append` and `saveSnapshot` check
 * their arguments: an append continues its stream at the next version, a snapshot is of a
 * version its stream has, stream ids and event types keep the store's limits.
 */
export function decodeEntries(bodies: readonly Buffer[]): { entries: LogEntry[]; bad: BadEntry | undefined } {
  const versions = new Map<string, number>();
  const entries: LogEntry[] = [];
  for (const [index, body] of bodies.entries()) {
    const result = decodeEntry(body, versions);
    if (typeof result === 'string') return { entries, bad: { index, reason: result } };
    if (result.k === 'e') versions.set(result.s, result.v + result.e.length - 1);
    entries.push(result);
  }
  return { entries, bad: undefined };
}

/** The entry, or why it is refused. */
function decodeEntry(body: Buffer, versions: ReadonlyMap<string, number>): LogEntry | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (error) {
    return `record is not valid JSON (${(error as Error).message})`;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    return 'record is not a JSON object';
  const entry = parsed as Record<string, unknown>;
  if (entry.k !== 'e' && entry.k !== 's')
    return `field 'k' (record kind): 'e' or 's', got ${describe(entry.k)}`;
  const streamId = entry.s;
  if (
    typeof streamId !== 'string' ||
    streamId.length === 0 ||
    streamId.length > EVENT_STORE_LIMITS.maxStreamIdLength
  )
    return `field 's' (stream id): a non-empty string of at most ${EVENT_STORE_LIMITS.maxStreamIdLength} characters, got ${describe(streamId)}`;
  if (typeof entry.t !== 'number' || !Number.isFinite(entry.t))
    return `field 't' (timestamp): a finite number, got ${describe(entry.t)}`;
  const current = versions.get(streamId) ?? 0;
  const version = entry.v;
  if (entry.k === 's') {
    if (!Number.isSafeInteger(version) || (version as number) < 0 || (version as number) > current)
      return `field 'v' (snapshot version): an integer in [0, ${current}] (stream '${streamId}' is at version ${current}), got ${describe(version)}`;
    if (!('st' in entry)) return "field 'st' (snapshot state): missing";
    return entry as LogEntry;
  }
  if (version !== current + 1)
    return `field 'v' (version): stream '${streamId}' is at version ${current}, so the next append is version ${current + 1}, got ${describe(version)}`;
  const problem = checkEvents(entry.e);
  return problem ?? (entry as LogEntry);
}

function checkEvents(events: unknown): string | undefined {
  if (!Array.isArray(events) || events.length === 0 || events.length > EVENT_STORE_LIMITS.maxEventsPerAppend)
    return `field 'e' (events): an array of 1 to ${EVENT_STORE_LIMITS.maxEventsPerAppend} events`;
  for (const [index, event] of events.entries()) {
    if (event === null || typeof event !== 'object' || Array.isArray(event))
      return `field 'e[${index}]' (event): an object, got ${describe(event)}`;
    const { type, metadata } = event as Record<string, unknown>;
    if (typeof type !== 'string' || type.length === 0 || type.length > EVENT_STORE_LIMITS.maxEventTypeLength)
      return `field 'e[${index}].type' (event type): a non-empty string of at most ${EVENT_STORE_LIMITS.maxEventTypeLength} characters, got ${describe(type)}`;
    if (
      metadata !== undefined &&
      (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata))
    )
      return `field 'e[${index}].metadata' (event metadata): an object, got ${describe(metadata)}`;
  }
  return undefined;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
