import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileEventStore } from './FileEventStore.js';
import type { SimulationContext } from './Simulation.js';
import { InvariantViolation, type Scenario } from './scenarios.js';

const STREAMS = ['account', 'ledger'] as const;

interface Issued {
  readonly id: number;
  readonly streamId: string;
}

/**
 * Watches every fsync and fdatasync of this process while `work` runs: after each one returns,
 * `onDurable` is told, so the caller can copy what is now on stable storage. The real sync still
 * runs; nothing is stubbed. One scenario at a time (the simulator runs seeds one by one).
 */
async function watchingSyncs<T>(onDurable: () => void, work: () => Promise<T>): Promise<T> {
  const probe = await open(join(tmpdir(), `zbmd-sync-probe-${process.pid}`), 'w');
  const prototype = Object.getPrototypeOf(probe) as {
    datasync: (...args: unknown[]) => Promise<void>;
    sync: (...args: unknown[]) => Promise<void>;
  };
  await probe.close();
  rmSync(join(tmpdir(), `zbmd-sync-probe-${process.pid}`), { force: true });
  const { datasync, sync } = prototype;
  prototype.datasync = async function (this: unknown, ...args: unknown[]) {
    await datasync.apply(this, args);
    onDurable();
  };
  prototype.sync = async function (this: unknown, ...args: unknown[]) {
    await sync.apply(this, args);
    onDurable();
  };
  try {
    return await work();
  } finally {
    prototype.datasync = datasync;
    prototype.sync = sync;
  }
}

/**
 * A FileEventStore (a real file in a temp directory) whose writer "crashes" at random (actor
 * crash faults) while appends are in flight. A crash leaves on disk what the last fsync made
 * durable plus a random prefix of the bytes written after it (a torn tail); the store is then
 * reopened from that image. Every acknowledged append must be readable after each reopen, at
 * the version it was acknowledged with; nothing that was never appended appears; each stream's
 * versions stay contiguous and in issue order.
 */
async function fileEventStoreScenario(context: SimulationContext): Promise<void> {
  const name = 'event-store-crash';
  const directory = mkdtempSync(join(tmpdir(), 'zbmd-sim-events-'));
  const path = join(directory, 'events.log');
  let durable: Buffer = Buffer.alloc(0);
  const readDisk = (): Buffer => {
    try {
      return readFileSync(path);
    } catch {
      return Buffer.alloc(0);
    }
  };
  try {
    await watchingSyncs(
      () => {
        durable = readDisk();
      },
      async () => {
        const issued: Issued[] = [];
        const acknowledged = new Map<number, { streamId: string; version: number }>();
        const epochs = 2 + context.random.nextInt(3);
        for (let epoch = 0; epoch < epochs; epoch++) {
          const store = await FileEventStore.open(path, {
            sync: context.random.nextInt(2) === 0 ? 'always' : 'batch',
            timestamp: () => context.clock.now(),
          });
          if (store.recovery !== undefined) context.coverage.hit(`recovered-${store.recovery.kind}`);
          await checkReadable(name, context, store, issued, acknowledged);
          const crash = await runEpoch(context, store, issued, acknowledged, () => durable);
          await store.close();
          if (crash !== undefined) {
            const image = crash(readDisk());
            writeFileSync(path, image);
            durable = image; // after the crash, what is on the disk is all there is
          } else context.coverage.hit('clean-close');
        }
        const store = await FileEventStore.open(path);
        await checkReadable(name, context, store, issued, acknowledged);
        await store.close();
      },
    );
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/**
 * Appends a burst. When the writer crashes, returns how to make the crash image from the file
 * as the writes in flight left it: the bytes synced before the crash, then none, all or a random
 * part of the bytes written after them. (Taken once those writes are done, so the image depends
 * on the seed alone, never on how fast the disk was.) Undefined after a clean run.
 */
async function runEpoch(
  context: SimulationContext,
  store: FileEventStore,
  issued: Issued[],
  acknowledged: Map<number, { streamId: string; version: number }>,
  durable: () => Buffer,
): Promise<((written: Buffer) => Buffer) | undefined> {
  const count = 1 + context.random.nextInt(8);
  const appends: Promise<void>[] = [];
  let crashed = false;
  for (let index = 0; index < count; index++) {
    const id = issued.length;
    const streamId = STREAMS[context.random.nextInt(STREAMS.length)];
    issued.push({ id, streamId });
    appends.push(
      store.append(streamId, [{ type: 'deposited', data: { id } }], 'any').then((result) => {
        if (!crashed) acknowledged.set(id, { streamId, version: result.firstVersion });
      }),
    );
  }
  for (const append of appends) {
    await append;
    if (context.faults.shouldCrashActor()) {
      crashed = true;
      const onDisk = durable();
      const keep = context.random.nextInt(3); // 0: none, 1: all, 2: part of the unsynced bytes
      const fraction = context.random.next();
      await Promise.allSettled(appends);
      return (written) => {
        const extra = Math.max(0, written.length - onDisk.length);
        const torn = keep === 0 ? 0 : keep === 1 ? extra : Math.floor(fraction * extra);
        context.coverage.hit(
          extra === 0 ? 'crash-all-synced' : torn === 0 ? 'crash-unsynced-lost' : torn === extra ? 'crash-unsynced-kept' : 'crash-torn-tail',
        );
        return Buffer.concat([onDisk, written.subarray(onDisk.length, onDisk.length + torn)]);
      };
    }
  }
  return undefined;
}

async function checkReadable(
  name: string,
  context: SimulationContext,
  store: FileEventStore,
  issued: readonly Issued[],
  acknowledged: ReadonlyMap<number, { streamId: string; version: number }>,
): Promise<void> {
  const present = new Map<number, { streamId: string; version: number }>();
  for (const streamId of STREAMS) {
    const events = await store.read(streamId);
    let previousId = -1;
    for (const [index, event] of events.entries()) {
      const id = (event.data as { id: number }).id;
      if (event.version !== index + 1)
        throw new InvariantViolation(name, `${streamId}: version ${event.version} at position ${index + 1}`);
      const origin = issued[id];
      if (origin === undefined || origin.streamId !== streamId || present.has(id))
        throw new InvariantViolation(name, `${streamId} v${event.version}: event ${id} was never appended there`);
      if (id < previousId) throw new InvariantViolation(name, `${streamId}: event ${id} after ${previousId}`);
      previousId = id;
      present.set(id, { streamId, version: event.version });
    }
  }
  for (const [id, ack] of acknowledged) {
    const found = present.get(id);
    if (found === undefined || found.version !== ack.version)
      throw new InvariantViolation(
        name,
        `acknowledged append ${id} (${ack.streamId} v${ack.version}) is ${found === undefined ? 'lost' : `at v${found.version}`} after reopening`,
      );
  }
  const unacknowledged = present.size - acknowledged.size;
  if (unacknowledged > 0) context.coverage.hit('unacknowledged-append-survived');
}

/** Scenarios on real files (a temp directory per seed). */
export const FILE_SCENARIOS: readonly Scenario[] = [
  {
    name: 'event-store-crash',
    description:
      'a file event store whose writer crashes mid-burst: every acknowledged append survives reopening',
    faults: { actorCrashRate: 0.3 },
    run: fileEventStoreScenario,
    branches: [
      'clean-close',
      'crash-all-synced',
      'crash-unsynced-lost',
      'crash-unsynced-kept',
      'crash-torn-tail',
      'recovered-torn_tail',
      'unacknowledged-append-survived',
    ],
  },
];
