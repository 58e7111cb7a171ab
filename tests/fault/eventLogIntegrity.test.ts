import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CorruptEventLog, FileEventStore, isCorruptEventLog } from '../../src/fault/index.js';
import { encodeHeader, encodeRecord } from '../../src/fault/internal/RecordLog.js';

let root: string;
let counter = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zbmd-log-integrity-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
const freshPath = () => join(root, `log-${counter++}.zlog`);

/** A log of five appends to stream 's' (one event each); returns the offset where each record starts. */
async function logOfFive(): Promise<{ path: string; starts: number[]; size: number }> {
  const path = freshPath();
  const store = await FileEventStore.open(path);
  const starts: number[] = [];
  for (let index = 1; index <= 5; index++) {
    starts.push(store.bytes);
    await store.append('s', [{ type: 'deposited', data: { amount: index } }], 'any');
  }
  const size = store.bytes;
  await store.close();
  return { path, starts, size };
}

async function openError(path: string): Promise<unknown> {
  return FileEventStore.open(path).then(
    async (store) => {
      const events = await store.read('s');
      await store.close();
      return `opened with ${events.length} events (recovery ${JSON.stringify(store.recovery)})`;
    },
    (error: unknown) => error,
  );
}

describe('FileEventStore: damage in the middle is never cut as a torn tail', () => {
  it('fails, naming the file and the offset, for any single bit flipped in the length of records 1 to 4', async () => {
    const { path, starts } = await logOfFive();
    const intact = await readFile(path);
    for (const record of [0, 1, 2, 3]) {
      for (let bit = 0; bit < 32; bit++) {
        const damaged = Buffer.from(intact);
        damaged.writeUInt32LE((damaged.readUInt32LE(starts[record]) ^ (1 << bit)) >>> 0, starts[record]);
        await writeFile(path, damaged);
        const error = await openError(path);
        expect(isCorruptEventLog(error), `record ${record + 1}, bit ${bit}: ${String(error)}`).toBe(true);
        expect((error as CorruptEventLog).offset).toBe(starts[record]);
        expect((error as CorruptEventLog).path).toBe(path);
        expect((error as Error).message).toContain(path);
        // Nothing was deleted: the file is exactly as damaged, acknowledged records included.
        expect((await readFile(path)).equals(damaged)).toBe(true);
      }
    }
  });

  it('fails for a bit flipped in the length of the last record when its body is all there', async () => {
    const { path, starts } = await logOfFive();
    const intact = await readFile(path);
    for (let bit = 0; bit < 32; bit++) {
      const damaged = Buffer.from(intact);
      damaged.writeUInt32LE((damaged.readUInt32LE(starts[4]) ^ (1 << bit)) >>> 0, starts[4]);
      await writeFile(path, damaged);
      const error = await openError(path);
      expect(isCorruptEventLog(error), `bit ${bit}: ${String(error)}`).toBe(true);
      expect((error as CorruptEventLog).offset).toBe(starts[4]);
    }
  });

  it('says where valid records resume after a damaged length', async () => {
    const { path, starts } = await logOfFive();
    const damaged = await readFile(path);
    damaged.writeUInt32LE(damaged.readUInt32LE(starts[0]) + 4096, starts[0]);
    await writeFile(path, damaged);
    const error = (await openError(path)) as CorruptEventLog;
    expect(error.reason).toMatch(new RegExp(`valid records follow at byte ${starts[1]}`));
  });

  it("still cuts a real torn tail: the last record cut short, with 'truncate' the damage is cut and reported", async () => {
    const { path, starts, size } = await logOfFive();
    const intact = await readFile(path);
    await writeFile(path, intact.subarray(0, size - 5));
    const store = await FileEventStore.open(path);
    expect(store.recovery).toMatchObject({ kind: 'torn_tail', offset: starts[4] });
    expect(await store.streamVersion('s')).toBe(4);
    await store.close();
    const damaged = Buffer.from(intact);
    damaged.writeUInt32LE(damaged.readUInt32LE(starts[1]) ^ (1 << 12), starts[1]);
    await writeFile(path, damaged);
    const cut = await FileEventStore.open(path, { corruptionPolicy: 'truncate' });
    expect(cut.recovery).toMatchObject({ kind: 'corrupt', offset: starts[1] });
    expect(await cut.streamVersion('s')).toBe(1);
    await cut.close();
  });
});

describe('FileEventStore: a record is checked for what it says, not only its checksum', () => {
  const entry = (fields: Record<string, unknown>) => encodeRecord(Buffer.from(JSON.stringify(fields)));
  const event = (version: number, stream = 's') => ({
    k: 'e',
    s: stream,
    v: version,
    t: 1,
    e: [{ type: 'x' }],
  });

  async function logOf(records: Buffer[]): Promise<{ path: string; offsets: number[] }> {
    const path = freshPath();
    const offsets: number[] = [];
    let offset = 16;
    for (const record of records) {
      offsets.push(offset);
      offset += record.length;
    }
    await writeFile(path, Buffer.concat([encodeHeader(), ...records]));
    return { path, offsets };
  }

  const cases: Array<[string, Array<Record<string, unknown>>, RegExp]> = [
    ['a negative version', [event(1), { ...event(-1) }], /version/],
    ['a version that skips ahead', [event(1), event(3)], /version/],
    ['a version that repeats', [event(1), event(1)], /version/],
    ['a fractional version', [event(1), event(1.5)], /version/],
    ['an empty stream id', [event(1), event(1, '')], /stream id/],
    ['a stream id that is not a string', [event(1), { ...event(1), s: 7 }], /stream id/],
    ['a stream id longer than the limit', [event(1), event(1, 'x'.repeat(300))], /stream id/],
    [
      'a snapshot for a version the stream does not have',
      [event(1), { k: 's', s: 's', v: 2, t: 1, st: {} }],
      /snapshot/,
    ],
    ['a snapshot of a negative version', [event(1), { k: 's', s: 's', v: -1, t: 1, st: {} }], /snapshot/],
    [
      'a snapshot for a stream that does not exist',
      [event(1), { k: 's', s: 'other', v: 1, t: 1, st: {} }],
      /snapshot/,
    ],
    ['an unknown record kind', [event(1), { k: 'q', s: 's', v: 2, t: 1 }], /kind/],
    ['no events', [event(1), { k: 'e', s: 's', v: 2, t: 1, e: [] }], /events/],
    ['an event without a type', [event(1), { k: 'e', s: 's', v: 2, t: 1, e: [{ data: 1 }] }], /type/],
    ['an event that is null', [event(1), { k: 'e', s: 's', v: 2, t: 1, e: [null] }], /event/],
    [
      'metadata that is not an object',
      [event(1), { k: 'e', s: 's', v: 2, t: 1, e: [{ type: 'x', metadata: 3 }] }],
      /metadata/,
    ],
    ['a timestamp that is not a number', [event(1), { ...event(2), t: 'noon' }], /timestamp/],
  ];
  for (const [label, records, reason] of cases) {
    it(`refuses ${label}, naming the offset`, async () => {
      const { path, offsets } = await logOf(records.map(entry));
      const error = await openError(path);
      expect(isCorruptEventLog(error), String(error)).toBe(true);
      expect((error as CorruptEventLog).offset).toBe(offsets[1]);
      expect((error as CorruptEventLog).reason).toMatch(reason);
    });
  }

  it('refuses a record that is not JSON, and one that is JSON but not an object', async () => {
    for (const body of ['{"k":', '[1,2]', 'null', '42']) {
      const { path, offsets } = await logOf([entry(event(1)), encodeRecord(Buffer.from(body))]);
      const error = await openError(path);
      expect(isCorruptEventLog(error) && error.offset, body).toBe(offsets[1]);
    }
  });

  it("with 'truncate', cuts at the first record that says something impossible", async () => {
    const { path, offsets } = await logOf([
      entry(event(1)),
      entry(event(2)),
      entry(event(5)),
      entry(event(3)),
    ]);
    const store = await FileEventStore.open(path, { corruptionPolicy: 'truncate' });
    expect(store.recovery).toMatchObject({ kind: 'corrupt', offset: offsets[2] });
    expect(await store.streamVersion('s')).toBe(2);
    await store.close();
  });
});
