import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { DirectoryCheckpointStore } from './CheckpointStore.js';
import { FileEventStore } from './FileEventStore.js';
import type { SimulationContext } from './Simulation.js';
import { InvariantViolation, type Scenario } from './scenarios.js';

const STREAMS = ['account', 'ledger'] as const;

/**
 * Where a seed's files go: /dev/shm when there is one (memory: an fsync costs nothing there, and
 * the scenarios decide what a crash keeps from the syncs they watch, not from the disk), else the
 * system's temp directory.
 */
function scratchDirectory(prefix: string): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  return mkdtempSync(join(base, prefix));
}

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
  const probePath = join(tmpdir(), `zbmd-sync-probe-${process.pid}`);
  const probe = await open(probePath, 'w');
  const prototype = Object.getPrototypeOf(probe) as {
    datasync: (...args: unknown[]) => Promise<void>;
    sync: (...args: unknown[]) => Promise<void>;
  };
  await probe.close();
  rmSync(probePath, { force: true });
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
  const directory = scratchDirectory('zbmd-sim-events-');
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
          extra === 0
            ? 'crash-all-synced'
            : torn === 0
              ? 'crash-unsynced-lost'
              : torn === extra
                ? 'crash-unsynced-kept'
                : 'crash-torn-tail',
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
        throw new InvariantViolation(
          name,
          `${streamId} v${event.version}: event ${id} was never appended there`,
        );
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

const CHECKPOINT_KEYS = ['model', 'optimizer'] as const;

/** Every file under `root` with its bytes (what a crash image of the directory holds). */
function readTree(root: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (directory: string): void => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(directory, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.set(relative(root, path), readFileSync(path));
    }
  };
  walk(root);
  return files;
}

function writeTree(root: string, files: ReadonlyMap<string, Buffer>): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  for (const [path, bytes] of files) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), bytes);
  }
}

/**
 * A DirectoryCheckpointStore (real files) saving checkpoints of two keys one after another; its
 * process crashes at random (actor crash faults). The crash image is the directory as it was at
 * the last fsync of any file or directory (a coarse model: one sync makes everything written so
 * far durable), sometimes with a torn temporary file of a save that was under way, and sometimes
 * a checkpoint file is corrupted on the medium (one flipped byte). After each reopen the newest
 * checkpoint that loads must be the newest acknowledged save whose file was not corrupted, with
 * the same bytes; sequence numbers never go back or repeat; nothing unsaved appears.
 */
async function checkpointCrashScenario(context: SimulationContext): Promise<void> {
  const name = 'checkpoint-crash';
  const root = scratchDirectory('zbmd-sim-checkpoints-');
  let durable = new Map<string, Buffer>();
  try {
    await watchingSyncs(
      () => {
        durable = readTree(root);
      },
      async () => {
        // per key: acknowledged saves, oldest first (sequence, payload), and corrupted sequences
        const saved = new Map<string, { sequence: number; payload: Buffer }[]>(
          CHECKPOINT_KEYS.map((key) => [key, []]),
        );
        const corrupted = new Set<string>();
        const epochs = 2 + context.random.nextInt(3);
        let previous: DirectoryCheckpointStore | undefined;
        for (let epoch = 0; epoch <= epochs; epoch++) {
          // the crashed process is gone, and with it its writer locks (a dead pid's lock is
          // stale and taken over): closing the previous store here stands for that
          await previous?.close();
          const store = new DirectoryCheckpointStore(root);
          previous = store;
          for (const key of CHECKPOINT_KEYS)
            await checkLatest(name, context, store, key, saved.get(key)!, corrupted);
          if (epoch === epochs) {
            await store.close();
            break;
          }
          const crashed = await saveUntilCrash(name, context, store, saved);
          if (!crashed) {
            context.coverage.hit('clean-stop');
            durable = readTree(root);
          }
          const image = new Map(durable);
          if (crashed && context.random.nextInt(2) === 0) {
            context.coverage.hit('torn-temporary-file');
            const key = CHECKPOINT_KEYS[context.random.nextInt(CHECKPOINT_KEYS.length)];
            image.set(
              join(key, `.${String(99).padStart(16, '0')}.ckpt.1.0.tmp`),
              Buffer.from('ZBMDCKPT torn'),
            );
          }
          corruptOne(context, image, corrupted);
          writeTree(root, image);
        }
      },
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Saves checkpoints one at a time; true when the process crashed after one of them. */
async function saveUntilCrash(
  name: string,
  context: SimulationContext,
  store: DirectoryCheckpointStore,
  saved: Map<string, { sequence: number; payload: Buffer }[]>,
): Promise<boolean> {
  const count = 1 + context.random.nextInt(6);
  for (let index = 0; index < count; index++) {
    const key = CHECKPOINT_KEYS[context.random.nextInt(CHECKPOINT_KEYS.length)];
    const payload = Buffer.from(
      Array.from({ length: 1 + context.random.nextInt(64) }, () => context.random.nextInt(256)),
    );
    const result = await store.save(key, payload, { step: index });
    const history = saved.get(key)!;
    const previous = history[history.length - 1]?.sequence ?? 0;
    if (result.sequence <= previous)
      throw new InvariantViolation(name, `${key}: save got sequence ${result.sequence} after ${previous}`);
    history.push({ sequence: result.sequence, payload });
    if (context.random.nextInt(4) === 0) {
      const keep = 1 + context.random.nextInt(2);
      await store.prune(key, keep);
      context.coverage.hit('pruned');
    }
    if (context.faults.shouldCrashActor()) {
      context.coverage.hit('crash-after-save');
      return true;
    }
  }
  return false;
}

/** Flips one byte of a random checkpoint file in the image, sometimes (media corruption). */
function corruptOne(context: SimulationContext, image: Map<string, Buffer>, corrupted: Set<string>): void {
  if (context.random.nextInt(3) !== 0) return;
  const files = [...image.keys()].filter((path) => path.endsWith('.ckpt')).sort();
  if (files.length === 0) return;
  const path = files[context.random.nextInt(files.length)];
  const bytes = Buffer.from(image.get(path)!);
  // a byte of the metadata or payload (after the 56-byte header), so only the checksum sees it
  const offset = 56 + context.random.nextInt(bytes.length - 56);
  bytes[offset] ^= 0x5a;
  image.set(path, bytes);
  corrupted.add(path);
  context.coverage.hit('media-corruption');
}

async function checkLatest(
  name: string,
  context: SimulationContext,
  store: DirectoryCheckpointStore,
  key: string,
  history: readonly { sequence: number; payload: Buffer }[],
  corrupted: ReadonlySet<string>,
): Promise<void> {
  const acknowledged = new Set(history.map((entry) => entry.sequence));
  for (const info of await store.list(key))
    if (!acknowledged.has(info.sequence))
      throw new InvariantViolation(name, `${key}: checkpoint ${info.sequence} was never saved`);
  const fileOf = (sequence: number) => relative(store.root, store.fileOf(key, sequence));
  const present = new Set((await store.list(key)).map((info) => info.sequence));
  const expected = [...history]
    .reverse()
    .find((entry) => present.has(entry.sequence) && !corrupted.has(fileOf(entry.sequence)));
  const newest = history[history.length - 1];
  if (newest !== undefined && !present.has(newest.sequence))
    throw new InvariantViolation(
      name,
      `${key}: acknowledged checkpoint ${newest.sequence} is lost after the crash`,
    );
  const loaded = await store.loadLatest(key);
  if (expected === undefined) {
    if (loaded !== undefined)
      throw new InvariantViolation(name, `${key}: loaded checkpoint ${loaded.sequence}, none is intact`);
    return;
  }
  if (
    loaded === undefined ||
    loaded.sequence !== expected.sequence ||
    !loaded.payload.equals(expected.payload)
  ) {
    throw new InvariantViolation(
      name,
      `${key}: loaded ${loaded === undefined ? 'nothing' : `checkpoint ${loaded.sequence}${loaded.sequence === expected.sequence ? ' with other bytes' : ''}`}, expected checkpoint ${expected.sequence}`,
    );
  }
  if (loaded.skipped.length > 0) context.coverage.hit('corrupt-checkpoint-passed-over');
  context.coverage.hit('latest-intact');
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
  {
    name: 'checkpoint-crash',
    description:
      'a checkpoint directory under crashes, torn temporary files and flipped bytes: the newest intact save loads',
    faults: { actorCrashRate: 0.3 },
    run: checkpointCrashScenario,
    branches: [
      'clean-stop',
      'crash-after-save',
      'torn-temporary-file',
      'media-corruption',
      'corrupt-checkpoint-passed-over',
      'pruned',
      'latest-intact',
    ],
  },
];
