import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EventStore, LogRecovery, RecordedEvent } from '../../src/fault/index.js';
import {
  ConcurrencyConflict,
  FileEventStore,
  InMemoryEventStore,
  isConcurrencyConflict,
  isCorruptEventLog,
  isEventStoreUnavailable,
  isFileLocked,
  isInvalidEventStoreArgument,
  replay,
} from '../../src/fault/index.js';

let root: string;
let counter = 0;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'zbmd-events-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
const freshPath = () => join(root, `log-${counter++}.zlog`);

const deposit = (amount: number) => ({ type: 'deposited', data: { amount } });
const amounts = (events: readonly RecordedEvent[]) =>
  events.map((event) => (event.data as { amount: number }).amount);

const implementations: Array<[string, () => Promise<EventStore>]> = [
  ['InMemoryEventStore', async () => new InMemoryEventStore({ timestamp: () => 1000 })],
  ['FileEventStore (sync always)', () => FileEventStore.open(freshPath(), { timestamp: () => 1000 })],
  [
    'FileEventStore (sync batch)',
    () => FileEventStore.open(freshPath(), { timestamp: () => 1000, sync: 'batch' }),
  ],
];

for (const [label, open] of implementations) {
  describe(`${label} contract`, () => {
    let store: EventStore;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    it('appends with versions from 1 and global positions, and reads them back', async () => {
      const first = await store.append('account-1', [deposit(10), deposit(20)], 'no-stream');
      expect(first).toEqual({ streamId: 'account-1', firstVersion: 1, lastVersion: 2, lastPosition: 2 });
      await store.append('account-2', [deposit(5)], 0);
      const second = await store.append('account-1', [deposit(30)], 2);
      expect(second).toMatchObject({ firstVersion: 3, lastVersion: 3, lastPosition: 4 });
      const events = await store.read('account-1');
      expect(events.map((event) => [event.version, event.position])).toEqual([
        [1, 1],
        [2, 2],
        [3, 4],
      ]);
      expect(events[0]).toMatchObject({
        streamId: 'account-1',
        type: 'deposited',
        data: { amount: 10 },
        metadata: {},
        recordedAtMs: 1000,
      });
      expect(await store.streamVersion('account-1')).toBe(3);
      expect(await store.streamVersion('unknown')).toBe(0);
    });

    it('throws ConcurrencyConflict with the expected and the actual version', async () => {
      await store.append('s', [deposit(1)], 'no-stream');
      const error = await store.append('s', [deposit(2)], 0).catch((caught) => caught);
      expect(error).toBeInstanceOf(ConcurrencyConflict);
      expect(
        isConcurrencyConflict(error) && [error.streamId, error.expectedVersion, error.actualVersion],
      ).toEqual(['s', 0, 1]);
      await expect(store.append('s', [deposit(2)], 'no-stream')).rejects.toSatisfy(isConcurrencyConflict);
      await expect(store.append('s', [deposit(2)], 5)).rejects.toSatisfy(isConcurrencyConflict);
      await expect(store.append('s', [deposit(2)], 'any')).resolves.toMatchObject({ firstVersion: 2 });
      expect(amounts(await store.read('s'))).toEqual([1, 2]);
    });

    it('lets exactly one of two writers that read the same version append', async () => {
      await store.append('s', [deposit(1)], 'any');
      const results = await Promise.allSettled([
        store.append('s', [deposit(2)], 1),
        store.append('s', [deposit(3)], 1),
      ]);
      expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected']);
      expect(amounts(await store.read('s'))).toEqual([1, 2]);
    });

    it('reads from a version with a maximum count', async () => {
      await store.append('s', [1, 2, 3, 4, 5].map(deposit), 'any');
      expect(amounts(await store.read('s', 3))).toEqual([3, 4, 5]);
      expect(amounts(await store.read('s', 2, 2))).toEqual([2, 3]);
      expect(await store.read('s', 9)).toEqual([]);
      expect(await store.read('nothing')).toEqual([]);
    });

    it('keeps metadata and stores plain JSON data', async () => {
      await store.append(
        's',
        [{ type: 't', data: { when: undefined, list: [1] }, metadata: { correlationId: 'c1' } }],
        'any',
      );
      const [event] = await store.read('s');
      expect(event.data).toEqual({ list: [1] });
      expect(event.metadata).toEqual({ correlationId: 'c1' });
    });

    it('replays from the latest snapshot plus later events, equal to a full replay', async () => {
      await store.append('s', [1, 2, 3].map(deposit), 'any');
      const reducer = {
        initial: () => 0,
        apply: (sum: number, event: RecordedEvent) => sum + (event.data as { amount: number }).amount,
      };
      await store.saveSnapshot('s', 2, 3);
      await store.append('s', [4, 5].map(deposit), 3);
      const result = await replay(store, 's', reducer);
      expect(result).toEqual({ state: 15, version: 5, snapshotVersion: 2, eventsApplied: 3 });
      expect((await store.loadSnapshot('s'))?.version).toBe(2);
      expect(await store.loadSnapshot('none')).toBeUndefined();
      const empty = await replay(store, 'none', reducer);
      expect(empty).toEqual({ state: 0, version: 0, snapshotVersion: undefined, eventsApplied: 0 });
    });

    it('rejects a snapshot past the stream version and invalid arguments', async () => {
      await store.append('s', [deposit(1)], 'any');
      await expect(store.saveSnapshot('s', 2, {})).rejects.toSatisfy(isInvalidEventStoreArgument);
      await expect(store.append('', [deposit(1)], 'any')).rejects.toSatisfy(isInvalidEventStoreArgument);
      await expect(store.append('s', [], 'any')).rejects.toThrow(/between 1 and/);
      await expect(store.append('s', [{ type: '' }], 'any')).rejects.toThrow(/event type/);
      await expect(store.append('s', [deposit(1)], -1)).rejects.toThrow(/expected version/);
      await expect(store.read('s', 0)).rejects.toThrow(/fromVersion/);
      await expect(
        store.append('s', [{ type: 'big', data: 'x'.repeat(17 * 1024 * 1024) }], 'any'),
      ).rejects.toThrow(/exceeds the limit/);
    });

    it('refuses work once closed', async () => {
      await store.close();
      await expect(store.append('s', [deposit(1)], 'any')).rejects.toSatisfy(isEventStoreUnavailable);
      await expect(store.read('s')).rejects.toSatisfy(isEventStoreUnavailable);
    });
  });
}

describe('FileEventStore durability', () => {
  it('reopens with every stream, version, position and snapshot', async () => {
    const path = freshPath();
    const store = await FileEventStore.open(path);
    await store.append('a', [deposit(1), deposit(2)], 'no-stream');
    await store.append('b', [deposit(3)], 'no-stream');
    await store.saveSnapshot('a', 2, { total: 3 });
    await store.append('a', [deposit(4)], 2);
    await store.close();
    const reopened = await FileEventStore.open(path);
    expect(reopened.recovery).toBeUndefined();
    expect(amounts(await reopened.read('a'))).toEqual([1, 2, 4]);
    expect((await reopened.read('a')).map((event) => event.position)).toEqual([1, 2, 4]);
    expect(await reopened.loadSnapshot('a')).toMatchObject({ version: 2, state: { total: 3 } });
    await expect(reopened.append('a', [deposit(5)], 2)).rejects.toSatisfy(isConcurrencyConflict);
    await reopened.append('a', [deposit(5)], 3);
    await reopened.close();
  });

  it('group-commits appends of one turn in batch mode, each resolving once durable', async () => {
    const path = freshPath();
    const store = await FileEventStore.open(path, { sync: 'batch' });
    const appends = Array.from({ length: 100 }, (_, index) =>
      store.append(`s${index % 7}`, [deposit(index)], 'any'),
    );
    const results = await Promise.all(appends);
    expect(results.map((result) => result.lastPosition)).toEqual(
      Array.from({ length: 100 }, (_, index) => index + 1),
    );
    const bytes = store.bytes;
    await store.close();
    expect((await stat(path)).size).toBe(bytes);
    const reopened = await FileEventStore.open(path);
    expect(reopened.position).toBe(100);
    await reopened.close();
  });

  async function storeWithThreeRecords(): Promise<{ path: string; ends: number[] }> {
    const path = freshPath();
    const store = await FileEventStore.open(path);
    const ends: number[] = [];
    for (let index = 1; index <= 3; index++) {
      await store.append('s', [deposit(index)], 'any');
      ends.push(store.bytes);
    }
    await store.close();
    return { path, ends };
  }

  it('cuts a torn tail (partial last record), reports it, and appends after the cut', async () => {
    const { path, ends } = await storeWithThreeRecords();
    await truncate(path, ends[2] - 3);
    const recoveries: LogRecovery[] = [];
    const store = await FileEventStore.open(path, { onRecovery: (recovery) => recoveries.push(recovery) });
    expect(amounts(await store.read('s'))).toEqual([1, 2]);
    expect(store.recovery).toMatchObject({
      kind: 'torn_tail',
      offset: ends[1],
      truncatedBytes: ends[2] - 3 - ends[1],
    });
    expect(recoveries).toHaveLength(1);
    expect((await stat(path)).size).toBe(ends[1]);
    await store.append('s', [deposit(9)], 2);
    await store.close();
    const reopened = await FileEventStore.open(path);
    expect(amounts(await reopened.read('s'))).toEqual([1, 2, 9]);
    expect(reopened.recovery).toBeUndefined();
    await reopened.close();
  });

  it('cuts a last record whose checksum fails, and a zero-filled tail', async () => {
    const { path, ends } = await storeWithThreeRecords();
    const file = await readFile(path);
    file[ends[2] - 2] ^= 0xff;
    await writeFile(path, Buffer.concat([file, Buffer.alloc(64)]));
    const store = await FileEventStore.open(path);
    expect(amounts(await store.read('s'))).toEqual([1, 2]);
    expect(store.recovery?.kind).toBe('torn_tail');
    await store.close();
  });

  it('refuses to open a log corrupt in the middle, unless told to truncate', async () => {
    const { path, ends } = await storeWithThreeRecords();
    const file = await readFile(path);
    file[ends[0] + 10] ^= 0x01; // inside the second record, with the third after it
    await writeFile(path, file);
    const error = await FileEventStore.open(path).catch((caught) => caught);
    expect(isCorruptEventLog(error) && error.offset).toBe(ends[0]);
    const store = await FileEventStore.open(path, { corruptionPolicy: 'truncate' });
    expect(amounts(await store.read('s'))).toEqual([1]);
    expect(store.recovery?.kind).toBe('corrupt');
    await store.close();
  });

  it('catches a damaged record length that still points inside the log (the checksum covers it)', async () => {
    const { path, ends } = await storeWithThreeRecords();
    const file = await readFile(path);
    file.writeUInt32LE(file.readUInt32LE(ends[0]) - 1, ends[0]); // second record's length, one short
    await writeFile(path, file);
    const error = await FileEventStore.open(path).catch((caught) => caught);
    expect(isCorruptEventLog(error) && error.offset).toBe(ends[0]);
    expect(error.reason).toMatch(/^record checksum mismatch; valid records follow at byte/);
  });

  it('rewrites a header torn at creation, and refuses a file that is not an event log', async () => {
    const torn = freshPath();
    await writeFile(torn, Buffer.from('ZBMD'));
    const store = await FileEventStore.open(torn);
    expect(store.recovery?.kind).toBe('missing_header');
    await store.append('s', [deposit(1)], 'any');
    await store.close();
    const foreign = freshPath();
    await writeFile(foreign, Buffer.from('this is not an event log at all'));
    await expect(FileEventStore.open(foreign)).rejects.toThrow(/not a zbmd event log/);
  });

  it('property: truncating the log at any byte reopens to a prefix of the acknowledged appends', async () => {
    const append = fc.record({
      stream: fc.constantFrom('a', 'b', 'c'),
      count: fc.integer({ min: 1, max: 3 }),
      size: fc.integer({ min: 0, max: 300 }),
      snapshot: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(append, { minLength: 1, maxLength: 12 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (plan, cutAt) => {
          const path = freshPath();
          const store = await FileEventStore.open(path, { sync: 'batch' });
          const acknowledged: string[] = []; // every event, in log order, as stream:version:payload
          for (const [index, step] of plan.entries()) {
            const events = Array.from({ length: step.count }, (_, n) => ({
              type: 't',
              data: `${index}-${n}-${'x'.repeat(step.size)}`,
            }));
            const result = await store.append(step.stream, events, 'any');
            for (const [n, event] of events.entries()) {
              acknowledged.push(`${step.stream}:${result.firstVersion + n}:${event.data}`);
            }
            if (step.snapshot)
              await store.saveSnapshot(step.stream, result.lastVersion, { upTo: result.lastVersion });
          }
          await store.close();
          const size = (await stat(path)).size;
          await truncate(path, Math.floor(size * cutAt));
          const reopened = await FileEventStore.open(path);
          const survived: string[] = [];
          for (const stream of ['a', 'b', 'c']) {
            for (const event of await reopened.read(stream))
              survived.push(`${event.position}|${stream}:${event.version}:${event.data}`);
            const snapshot = await reopened.loadSnapshot(stream);
            if (snapshot !== undefined && snapshot.version > (await reopened.streamVersion(stream)))
              return false;
          }
          survived.sort((x, y) => Number(x.split('|')[0]) - Number(y.split('|')[0]));
          const inOrder = survived.map((entry) => entry.split('|')[1]);
          const isPrefix = inOrder.every((entry, index) => entry === acknowledged[index]);
          // The store is consistent afterwards: appends continue the streams.
          await reopened.append('a', [{ type: 'after' }], await reopened.streamVersion('a'));
          await reopened.close();
          const again = await FileEventStore.open(path);
          const consistent = again.recovery === undefined && again.position === inOrder.length + 1;
          await again.close();
          await rm(path);
          return isPrefix && consistent;
        },
      ),
      { numRuns: 60 },
    );
  }, 60_000);
});

describe('FileEventStore writer lock', () => {
  it('refuses a second open of the same log while the first is open, and allows it after close', async () => {
    const path = freshPath();
    const first = await FileEventStore.open(path);
    const error = await FileEventStore.open(path).catch((caught) => caught);
    expect(isFileLocked(error) && error.holderPid).toBe(process.pid);
    await first.close();
    const second = await FileEventStore.open(path);
    await second.close();
  });

  it('takes over a lock left by a process that no longer exists', async () => {
    const path = freshPath();
    await writeFile(`${path}.lock`, '2147483646'); // no such process
    const store = await FileEventStore.open(path);
    await store.append('s', [deposit(1)], 'any');
    await store.close();
  });
});

describe('stored events are immutable', () => {
  for (const [label, open] of implementations.slice(0, 2)) {
    it(`${label}: a reader cannot change what other readers see`, async () => {
      const store = await open();
      await store.append('s', [{ type: 't', data: { nested: { value: 1 } } }], 'any');
      const [event] = await store.read('s');
      expect(() => {
        (event.data as { nested: { value: number } }).nested.value = 2;
      }).toThrow(TypeError);
      const [again] = await store.read('s');
      expect(again.data).toEqual({ nested: { value: 1 } });
      await store.close();
    });
  }
});

describe('FileEventStore after a failed write', () => {
  it('rejects the failed append and all later work with EventStoreUnavailable, and reopens cleanly', async () => {
    const path = freshPath();
    const store = await FileEventStore.open(path);
    await store.append('s', [deposit(1)], 'any');
    // Make the next write fail as a full or vanished disk would: the descriptor is gone.
    await (store as unknown as { handle: { close(): Promise<void> } }).handle.close();
    const failed = await store.append('s', [deposit(2)], 1).catch((caught) => caught);
    expect(isEventStoreUnavailable(failed) && failed.reason).toBe('failed');
    await expect(store.append('s', [deposit(3)], 'any')).rejects.toSatisfy(isEventStoreUnavailable);
    await store.close();
    const reopened = await FileEventStore.open(path);
    expect(amounts(await reopened.read('s'))).toEqual([1]);
    await reopened.close();
  });
});
