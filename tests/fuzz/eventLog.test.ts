/**
 * Fuzzing the event log reader with mutated valid logs (bit flips, byte edits, truncations,
 * insertions, deletions, record length edits). Every input gives a prefix of the logged events
 * (a cut reported in `recovery`) or CorruptEventLog naming the file and the offset; never
 * another error, never an event that differs from the file.
 *
 * Thousands of inputs go through `readLog` (what `FileEventStore.open` decides with, minus the
 * file); a few hundred through `FileEventStore.open` on a real file.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_STORE_LIMITS, FileEventStore, isCorruptEventLog } from '../../src/fault/index.js';
import type { LogEntry } from '../../src/fault/internal/LogEntry.js';
import { readLog } from '../../src/fault/internal/LogReader.js';
import { LOG_HEADER_BYTES } from '../../src/fault/internal/RecordLog.js';
import { describeInput, type LengthField, mutate, mutationsArbitrary } from './mutations.js';

let root: string;
let original: Buffer;
let fields: LengthField[];
let boundaries: number[]; // offsets where a record ends (a truncation there loses whole records)
const loggedEvents: string[] = []; // stream:version:type:data, in log order
const loggedSnapshots = new Map<string, string[]>();
const streams = ['orders', 'payments', 'audit'];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zbmd-fuzz-log-'));
  const path = join(root, 'original.zlog');
  const store = await FileEventStore.open(path, { timestamp: () => 1_000 });
  const starts: number[] = [];
  for (let index = 0; index < 8; index++) {
    const stream = streams[index % streams.length];
    starts.push(store.bytes);
    const events = Array.from({ length: 1 + (index % 3) }, (_, n) => ({
      type: `t${n}`,
      data: { index, n, text: 'é'.repeat(index) },
      metadata: { by: 'fuzz' },
    }));
    const result = await store.append(stream, events, 'any');
    events.forEach((event, n) => {
      loggedEvents.push(eventText(stream, result.firstVersion + n, event.type, event.data));
    });
    if (index % 3 === 2) {
      starts.push(store.bytes);
      const state = { upTo: result.lastVersion, index };
      await store.saveSnapshot(stream, result.lastVersion, state);
      const texts = loggedSnapshots.get(stream) ?? [];
      loggedSnapshots.set(stream, [...texts, JSON.stringify({ version: result.lastVersion, state })]);
    }
  }
  boundaries = [...starts, store.bytes];
  await store.close();
  original = await readFile(path);
  fields = starts.map((offset) => ({ offset, bytes: 4, endian: 'le' }));
  expect(starts[0]).toBe(LOG_HEADER_BYTES);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function eventText(stream: string, version: number, type: string, data: unknown): string {
  return `${stream}:${version}:${type}:${JSON.stringify(data ?? null)}`;
}

/** Whole records lost without a word are only allowed when the file is the log cut at a record end. */
function cutAtRecordEnd(bytes: Buffer): boolean {
  return boundaries.includes(bytes.length) && original.subarray(0, bytes.length).equals(bytes);
}

/** Checks that what was read is the log's beginning: events, versions, positions and snapshots. */
function expectPrefix(
  events: string[],
  snapshots: Map<string, string>,
  reported: boolean,
  bytes: Buffer,
): void {
  expect(events).toEqual(loggedEvents.slice(0, events.length));
  for (const [stream, text] of snapshots) expect(loggedSnapshots.get(stream) ?? []).toContain(text);
  if (events.length < loggedEvents.length && !reported && bytes.length > 0)
    expect(cutAtRecordEnd(bytes)).toBe(true);
}

function textsOf(entries: readonly LogEntry[]): { events: string[]; snapshots: Map<string, string> } {
  const events: string[] = [];
  const snapshots = new Map<string, string>();
  for (const entry of entries) {
    if (entry.k === 'e') {
      for (const [n, event] of entry.e.entries())
        events.push(eventText(entry.s, entry.v + n, event.type, event.data));
    } else snapshots.set(entry.s, JSON.stringify({ version: entry.v, state: entry.st }));
  }
  return { events, snapshots };
}

function withInput<T>(bytes: Buffer, check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw new Error(`${(error as Error).stack}\ninput: ${describeInput(bytes)}`);
  }
}

describe('fuzz: the event log reader', () => {
  it('readLog: thousands of mutated logs give a prefix of the events (a cut reported) or corruption at an offset', () => {
    const started = Date.now();
    let runs = 0;
    fc.assert(
      fc.property(
        mutationsArbitrary(fields.length),
        fc.constantFrom('fail', 'truncate'),
        (mutations, policy) => {
          runs++;
          const bytes = mutate(original, mutations, fields);
          withInput(bytes, () => {
            const reading = readLog(bytes, {
              maxRecordBytes: EVENT_STORE_LIMITS.maxRecordBytes,
              corruptionPolicy: policy as 'fail' | 'truncate',
            });
            if (reading.kind === 'missing_header') expect(bytes.length).toBeLessThan(LOG_HEADER_BYTES);
            else if (reading.kind === 'corrupt') {
              expect(reading.offset).toBeGreaterThanOrEqual(0);
              expect(reading.offset).toBeLessThan(Math.max(bytes.length, 1));
              expect(reading.reason.length).toBeGreaterThan(0);
            } else {
              expect(reading.goodEnd).toBeLessThanOrEqual(bytes.length);
              if (reading.stop === undefined) expect(reading.goodEnd).toBe(bytes.length);
              const { events, snapshots } = textsOf(reading.entries);
              expectPrefix(events, snapshots, reading.stop !== undefined, bytes);
            }
          });
        },
      ),
      { numRuns: 3_000, seed: 11 },
    );
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(runs).toBe(3_000);
  }, 30_000);

  it('FileEventStore.open: mutated log files open to a prefix of the events or fail with CorruptEventLog naming the file', async () => {
    const path = join(root, 'mutated.zlog');
    await fc.assert(
      fc.asyncProperty(mutationsArbitrary(fields.length), async (mutations) => {
        const bytes = mutate(original, mutations, fields);
        await writeFile(path, bytes);
        let store: FileEventStore;
        try {
          store = await FileEventStore.open(path);
        } catch (error) {
          withInput(bytes, () => {
            expect(isCorruptEventLog(error), String(error)).toBe(true);
            expect((error as Error).message).toContain(path);
          });
          return;
        }
        try {
          const read: Array<{ position: number; text: string }> = [];
          const snapshots = new Map<string, string>();
          for (const stream of streams) {
            for (const event of await store.read(stream))
              read.push({
                position: event.position,
                text: eventText(stream, event.version, event.type, event.data),
              });
            const snapshot = await store.loadSnapshot(stream);
            if (snapshot !== undefined) {
              snapshots.set(stream, JSON.stringify({ version: snapshot.version, state: snapshot.state }));
              expect(snapshot.version).toBeLessThanOrEqual(await store.streamVersion(stream));
            }
          }
          read.sort((a, b) => a.position - b.position);
          withInput(bytes, () => {
            expect(read.map((event) => event.position)).toEqual(read.map((_, index) => index + 1));
            expectPrefix(
              read.map((event) => event.text),
              snapshots,
              store.recovery !== undefined,
              bytes,
            );
          });
        } finally {
          await store.close();
        }
      }),
      { numRuns: 150, seed: 12 },
    );
  }, 30_000);
});
